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

Frames are read by :mod:`tdgen.train.frames` (image files or video files); latents and their
cache are in :mod:`tdgen.train.latents` (re-exported here).

Randomness lives outside the dataset: an item is addressed by ``(clip index, flip)`` and
:class:`ClipOrder` maps a global sample position to that pair from the run seed alone, so the data
a training step sees depends only on (seed, step), which makes ``--resume`` exact.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..conditioning import clip_arrays, flip_boxes
from ..errors import UsageError
from ..prompts import PromptTemplate, load_captions, make_prompt, parse_template
from ..seeds import derive_seed
from ..tracks.clips import Clip, ClipSpec, plan_clips
from ..tracks.io import read_tracks
from ..tracks.trackset import TrackSet
from .frames import VIDEO_EXTENSIONS, FrameSource
from .latents import LatentCache, encode_pixels, latent_cache_key, precompute_latents

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
    "clip_conditioning",
    "load_captions",
    "precompute_latents",
]

# --------------------------------------------------------------------------- conditioning


def clip_conditioning(clip: Clip, flip: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A clip's boxes ``(F, N, 4)``, mask ``(F, N)`` and N slot names, as sampling builds them
    (:func:`tdgen.conditioning.clip_arrays`: one adapter for synth and train)."""
    return clip_arrays(clip, flip=flip)


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
        self._frames = FrameSource(self.ts, self.images_root, self.resolution, self.ann)

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
        """``boxes`` (F, N, 4), ``mask`` (F, N) and the N category names of a clip
        (:func:`clip_conditioning`)."""
        return clip_conditioning(self.clips[index], flip)

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
