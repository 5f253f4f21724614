"""Training data: clips of a COCO-VID (or MOT / YouTube-VIS) set with their frames, as tensors.

:class:`ClipDataset` cuts an annotation file into clips with :func:`tdgen.tracks.clips.plan_clips`
(F frames, N slots, slot k = one identity) and serves, per clip:

* ``pixels`` ``(F, 3, H, W)`` float32 in ``[-1, 1]``: the clip's frames resized to the model
  resolution (the whole frame, aspect ratio not kept, as the published loader's
  ``Resize(keep_ratio=False)``), or ``latents`` ``(C, F, h, w)`` from a :class:`LatentCache`;
* ``boxes`` ``(F, N, 4)`` normalised xyxy in ``[0, 1]`` and ``mask`` ``(F, N)``: normalised
  coordinates do not change under a whole-frame resize; a horizontal flip maps ``x`` to ``1 - x``;
* ``category_names`` (N strings, ``""`` for unused slots) and ``prompt`` (the caption of the
  clip's video from a captions file, else the prompt template filled with the clip's categories).

Where frames come from (decided once per video):

1. image files: ``images[].file_name`` relative to ``images_root`` (default: the annotation
   file's folder), read with OpenCV;
2. otherwise, when the video's name (COCO-VID ``videos[].name`` or ``file_name``) is a video file
   (.mp4, .avi, .mkv, .mov, .webm, .m4v) under ``images_root``, frames are decoded with decord:
   frame number ``n`` (``frame_id`` + 1 for 0-based files, as :class:`~tdgen.tracks.TrackSet`
   records it) is video frame ``n - 1``.

Randomness lives outside the dataset: an item is addressed by ``(clip index, flip)`` and
:class:`ClipOrder` maps a global sample position to that pair from the run seed alone, so the data
a training step sees depends only on (seed, step), which makes ``--resume`` exact.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..prompts import PromptTemplate, load_captions, make_prompt, parse_template
from ..tracks.clips import Clip, ClipSpec, plan_clips
from ..errors import AnnotationError, UsageError
from ..tracks.io import read_tracks
from ..tracks.trackset import TrackSet

__all__ = [
    "VIDEO_EXTENSIONS",
    "ClipDataset",
    "ClipOrder",
    "DataSummary",
    "LatentCache",
    "collate_items",
    "derive_seed",
    "encode_pixels",
    "flip_boxes",
    "latent_cache_key",
    "load_captions",
    "precompute_latents",
    "prompt_for",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def derive_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from the run seed and any labels/numbers (a keyed hash, stable across runs,
    processes and Python versions; never ``hash()``)."""
    text = json.dumps([int(seed), *[p if isinstance(p, (int, str)) else str(p) for p in parts]])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8, person=b"tdgen-tr").digest(),
                          "little") >> 1


# --------------------------------------------------------------------------- prompts


# Captions and templates are read and filled by tdgen.prompts, the same code synth uses, so a model
# is sampled with prompts built exactly as in training. ``load_captions`` is re-exported from there;
# ``prompt_for`` is the old name of ``make_prompt``.
prompt_for = make_prompt


def flip_boxes(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised xyxy boxes of the horizontally mirrored frame (absent slots stay all-zero)."""
    out = boxes.copy()
    out[..., 0] = 1.0 - boxes[..., 2]
    out[..., 2] = 1.0 - boxes[..., 0]
    out[mask <= 0] = 0.0
    return out


# --------------------------------------------------------------------------- frames


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - part of the model extra
        raise UsageError("reading training frames needs OpenCV: pip install opencv-python-headless") from None
    return cv2


def _resize(cv2, img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if img.shape[1] == w and img.shape[0] == h:
        return img
    shrink = img.shape[1] > w or img.shape[0] > h
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class _FrameSource:
    """Reads a clip's frames (RGB uint8, resized) from image files or a video file."""

    def __init__(self, ts: TrackSet, root: Path, size: tuple[int, int], ann: Path) -> None:
        self.ts = ts
        self.root = root
        self.size = size
        self.ann = ann
        self._kind: dict[int, tuple[str, Path]] = {}
        self._readers: OrderedDict[Path, Any] = OrderedDict()

    def _video_kind(self, video: int, first_row: int) -> tuple[str, Path]:
        if video in self._kind:
            return self._kind[video]
        image = self.root / str(self.ts.frames.file_name[first_row])
        name = str(self.ts.videos.name[video])
        vfile = self.root / name
        if image.is_file():
            kind = ("images", self.root)
        elif name.lower().endswith(VIDEO_EXTENSIONS) and vfile.is_file():
            kind = ("video", vfile)
        else:
            hint = "pass --images ROOT, the folder the file names are relative to"
            if name.lower().endswith(VIDEO_EXTENSIONS):
                raise AnnotationError(self.ann, f"video {name!r}",
                                      f"neither frame image {image} nor video file {vfile} exists", hint)
            raise AnnotationError(self.ann, f"video {name!r}", f"frame image {image} does not exist", hint)
        self._kind[video] = kind
        return kind

    def _decord(self, path: Path):
        if path in self._readers:
            self._readers.move_to_end(path)
            return self._readers[path]
        try:
            import decord
        except ImportError:
            raise UsageError(f"{path}: reading frames from video files needs decord: pip install decord") from None
        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises its own DECORDError
            raise AnnotationError(path, None, f"cannot open video: {str(exc).splitlines()[0]}") from None
        self._readers[path] = reader
        while len(self._readers) > 4:
            self._readers.popitem(last=False)
        return reader

    def read(self, clip: Clip) -> np.ndarray:
        """``(F, H, W, 3)`` uint8 RGB at the target size."""
        cv2 = _cv2()
        rows = np.asarray(clip.frame_rows, dtype=np.int64)
        kind, where = self._video_kind(int(clip.video), int(rows[0]))
        w, h = self.size
        out = np.empty((rows.size, h, w, 3), dtype=np.uint8)
        if kind == "images":
            for i, r in enumerate(rows.tolist()):
                file = self.root / str(self.ts.frames.file_name[r])
                img = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if img is None:
                    raise AnnotationError(self.ann, f"image {self.ts.frames.file_name[r]!r}",
                                          f"cannot read frame image {file}")
                out[i] = _resize(cv2, cv2.cvtColor(img, cv2.COLOR_BGR2RGB), self.size)
            return out
        reader = self._decord(where)
        numbers = self.ts.frames.number
        idx = (np.round(numbers[rows]).astype(np.int64) - 1) if numbers is not None else \
            self.ts.frames.index[rows].astype(np.int64)
        if idx.min() < 0 or idx.max() >= len(reader):
            raise AnnotationError(self.ann, f"video {clip.video_name!r}",
                                  f"frame numbers {idx.min() + 1}..{idx.max() + 1} outside the {len(reader)} "
                                  f"frames of {where}")
        try:
            frames = reader.get_batch(idx.tolist()).asnumpy()
        except Exception as exc:  # decord's DECORDError
            raise AnnotationError(where, None, f"cannot decode frames {idx.min() + 1}..{idx.max() + 1}: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
        for i in range(rows.size):
            out[i] = _resize(cv2, frames[i], self.size)
        return out


# --------------------------------------------------------------------------- latent cache


class LatentCache:
    """Latents of clips, one ``.npy`` per (clip, flip) under ``root``: written atomically, read
    memory-mapped. The latents are the autoencoder's deterministic output (the posterior mean
    for AutoencoderKL), before ``scaling_factor``; the folder name (:func:`latent_cache_key`)
    pins everything they depend on."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, clip_id: str, flip: bool) -> Path:
        return self.root / f"{clip_id}{'.flip' if flip else ''}.npy"

    def has(self, clip_id: str, flip: bool) -> bool:
        return self.path(clip_id, flip).is_file()

    def load(self, clip_id: str, flip: bool) -> np.ndarray:
        file = self.path(clip_id, flip)
        try:
            return np.load(file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise AnnotationError(file, None, f"unreadable cached latent ({exc}); delete the file to rebuild it") \
                from None

    def save(self, clip_id: str, flip: bool, latent: np.ndarray) -> None:
        file = self.path(clip_id, flip)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(latent, dtype=np.float32))
        os.replace(tmp, file)


def latent_cache_key(vae: torch.nn.Module, *, ann: Path, images_root: Path, resolution: tuple[int, int],
                     spec: ClipSpec) -> str:
    """A short digest of what cached latents depend on: the autoencoder (class, config and
    weights), the annotation file's bytes, the frames' root, the resolution and the clip spec."""
    h = hashlib.sha256()
    h.update(type(vae).__name__.encode())
    h.update(json.dumps({k: v for k, v in dict(vae.config).items() if not k.startswith("_")},
                        sort_keys=True, default=str).encode())
    for name, t in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    with open(ann, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps([str(images_root.resolve()), list(resolution), spec.frames, spec.stride, spec.step,
                         spec.max_slots, spec.overflow, spec.min_tracks]).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- dataset


class ClipDataset(torch.utils.data.Dataset):
    """Clips of an annotation file with their frames (see the module docstring).

    Args:
        ann: annotation file (COCO-VID; MOT directories and YouTube-VIS files work too).
        images: root the frames' file names are relative to (default: ``ann``'s folder).
        captions: ``{video name: caption}`` file, JSON object or ``name<TAB>caption`` lines
            (optional; see :func:`tdgen.prompts.load_captions`).
        frames, slots, stride, step, min_tracks, overflow: the :class:`~tdgen.tracks.clips.ClipSpec`.
        resolution: ``(W, H)`` of the model.
        prompt_template: used for videos without a caption (``{categories}``, ``{video}``),
            checked before anything is read (:func:`tdgen.prompts.parse_template`).
        latent_cache: serve cached latents instead of pixels (fill it with
            :func:`precompute_latents` first).
        trackset: an already loaded :class:`TrackSet` of ``ann`` (skips reading it again).

    Items (``dataset[i]`` or ``dataset[(i, flip)]``) are dicts: ``index``, ``clip_id``, ``flip``,
    ``prompt``, ``boxes`` (F, N, 4), ``mask`` (F, N), ``category_names`` (N,), and ``pixels``
    (F, 3, H, W) in [-1, 1] or ``latents`` (C, F, h, w).
    """

    def __init__(
        self,
        ann: str | os.PathLike,
        *,
        images: str | os.PathLike | None = None,
        captions: str | os.PathLike | None = None,
        frames: int = 16,
        slots: int = 20,
        resolution: tuple[int, int] = (128, 128),
        stride: int | None = None,
        step: int = 1,
        min_tracks: int = 1,
        overflow: str = "longest",
        prompt_template: str | PromptTemplate = "a video of {categories}",
        latent_cache: LatentCache | None = None,
        trackset: TrackSet | None = None,
    ) -> None:
        self.ann = Path(ann)
        # template and captions first: a bad one fails before the (possibly large) annotations are read
        self.template: PromptTemplate = (prompt_template if isinstance(prompt_template, PromptTemplate)
                                         else parse_template(prompt_template))
        self.prompt_template = self.template.text
        self.captions = load_captions(captions)
        self.images_root = Path(images) if images is not None else self.ann.resolve().parent
        if images is not None and not self.images_root.is_dir():
            raise UsageError(f"--images {images}: no such directory")
        w, h = (int(x) for x in resolution)
        if w <= 0 or h <= 0:
            raise UsageError(f"resolution {w}x{h}: must be positive")
        self.resolution = (w, h)
        self.spec = ClipSpec(frames=frames, stride=stride, step=step, max_slots=slots, overflow=overflow,
                             min_tracks=min_tracks)
        self.ts = trackset if trackset is not None else read_tracks(self.ann)
        self.clips: list[Clip] = plan_clips(self.ts, self.spec)
        if not self.clips:
            raise UsageError(f"{self.ann}: no clip of {frames} frames with at least {min_tracks} track(s) "
                             "(use fewer --frames, or a set with longer videos)")
        self.prompts = [make_prompt(c, self.template, self.captions) for c in self.clips]
        self.latent_cache = latent_cache
        self._frames = _FrameSource(self.ts, self.images_root, self.resolution, self.ann)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def num_videos(self) -> int:
        return len({c.video for c in self.clips})

    def frames(self, index: int, flip: bool = False) -> np.ndarray:
        """The clip's frames, ``(F, H, W, 3)`` uint8 RGB at the model resolution."""
        out = self._frames.read(self.clips[index])
        return np.ascontiguousarray(out[:, :, ::-1]) if flip else out

    def pixels(self, index: int, flip: bool = False) -> torch.Tensor:
        """``(F, 3, H, W)`` float32 in [-1, 1]."""
        u8 = torch.from_numpy(self.frames(index, flip))
        return u8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def conditioning(self, index: int, flip: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``boxes`` (F, N, 4), ``mask`` (F, N) and the N category names of a clip."""
        clip = self.clips[index]
        boxes = clip.boxes.astype(np.float32, copy=True)
        mask = clip.mask.astype(np.float32, copy=True)
        if flip:
            boxes = flip_boxes(boxes, mask)
        names = [""] * clip.num_slots
        names[: clip.num_tracks] = list(clip.category_names)
        return boxes, mask, names

    def __getitem__(self, key) -> dict[str, Any]:
        index, flip = (key if isinstance(key, tuple) else (key, False))
        index, flip = int(index), bool(flip)
        if not 0 <= index < len(self.clips):
            raise IndexError(index)
        clip = self.clips[index]
        boxes, mask, names = self.conditioning(index, flip)
        item: dict[str, Any] = {
            "index": index,
            "clip_id": clip.clip_id,
            "flip": flip,
            "prompt": self.prompts[index],
            "boxes": torch.from_numpy(boxes),
            "mask": torch.from_numpy(mask),
            "category_names": names,
        }
        if self.latent_cache is not None:
            item["latents"] = torch.from_numpy(np.array(self.latent_cache.load(clip.clip_id, flip), dtype=np.float32))
        else:
            item["pixels"] = self.pixels(index, flip)
        return item


def collate_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack dataset items: tensors gain a batch axis, strings and flags become lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        out[key] = torch.stack(vals) if torch.is_tensor(vals[0]) else vals
    return out


class ClipOrder:
    """Global sample position -> ``(clip index, flip)``, from the run seed alone.

    Positions run over epochs: epoch ``e = p // n`` visits the clips in a permutation drawn from
    ``(seed, e)``; ``flip`` (with ``hflip``) is a fair coin drawn from ``(seed, p)``.
    """

    def __init__(self, n: int, seed: int, hflip: bool = False) -> None:
        if n < 1:
            raise ValueError("ClipOrder needs at least one clip")
        self.n = int(n)
        self.seed = int(seed)
        self.hflip = bool(hflip)
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            rng = np.random.default_rng(derive_seed(self.seed, "epoch", epoch))
            self._perms[epoch] = rng.permutation(self.n)
            while len(self._perms) > 4:
                self._perms.popitem(last=False)
        return self._perms[epoch]

    def __call__(self, position: int) -> tuple[int, bool]:
        epoch, pos = divmod(int(position), self.n)
        flip = self.hflip and bool(derive_seed(self.seed, "flip", int(position)) & 1)
        return int(self.permutation(epoch)[pos]), flip


# --------------------------------------------------------------------------- encoding


@torch.no_grad()
def encode_pixels(vae: torch.nn.Module, pixels: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``(B, F, 3, H, W)`` pixels in [-1, 1] -> raw latents ``(B, C, F, h, w)`` (float32, no
    scaling factor): the autoencoder's deterministic output (``latent_dist.mode()``), ``chunk``
    frames per call."""
    B, F = pixels.shape[:2]
    flat = pixels.reshape(B * F, *pixels.shape[2:])
    dtype = next((t.dtype for t in list(vae.parameters()) + list(vae.buffers()) if t.is_floating_point()),
                 torch.float32)
    device = next((t.device for t in list(vae.parameters()) + list(vae.buffers())), flat.device)
    parts = []
    for a in range(0, flat.shape[0], chunk):
        x = flat[a:a + chunk].to(device=device, dtype=dtype)
        parts.append(vae.encode(x).latent_dist.mode().float())
    z = torch.cat(parts)
    return z.reshape(B, F, *z.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


def precompute_latents(
    dataset: ClipDataset,
    vae: torch.nn.Module,
    cache: LatentCache,
    *,
    flips: bool = False,
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Encode every clip (and its mirror image with ``flips``) missing from ``cache``; return how
    many were encoded. ``shard=(k, n)`` does every n-th clip starting at k (one per process)."""
    k, n = shard
    todo = [(i, f) for i in range(k, len(dataset), n) for f in ((False, True) if flips else (False,))
            if not cache.has(dataset.clips[i].clip_id, f)]
    for done, (i, f) in enumerate(todo, 1):
        z = encode_pixels(vae, dataset.pixels(i, f)[None])[0]
        cache.save(dataset.clips[i].clip_id, f, z.cpu().numpy())
        if progress is not None:
            progress(done, len(todo))
    return len(todo)


@dataclass
class DataSummary:
    """What a training run read (recorded in the exported model's ``tdgen.json``)."""

    ann: str
    images: str
    captions: str | None
    videos: int
    clips: int
    frames: int
    slots: int
    resolution: list[int]
    ann_sha256: str

    @classmethod
    def of(cls, ds: ClipDataset, captions: str | os.PathLike | None) -> "DataSummary":
        h = hashlib.sha256()
        with open(ds.ann, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return cls(ann=str(ds.ann.resolve()), images=str(ds.images_root.resolve()),
                   captions=str(Path(captions).resolve()) if captions else None, videos=ds.num_videos,
                   clips=len(ds), frames=ds.spec.frames, slots=ds.spec.max_slots,
                   resolution=list(ds.resolution), ann_sha256=h.hexdigest()[:16])
