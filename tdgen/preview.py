"""Previews: boxes and track ids drawn over real or generated frames, to eyeball inputs and outputs.

Two outputs, chosen by the file's extension:

``.mp4``
    a video of the selected frames (one video's frames after another), each frame letterboxed
    into one size (``size``, else the first frame's), with the video name and frame number in
    the top-left corner. Encoded with OpenCV's ``mp4v`` codec.
``.png`` / ``.jpg`` / ``.jpeg``
    a contact sheet: one row per video, ``cols`` thumbnails per row sampled evenly over the
    video, each labelled ``<video> #<frame number>``.

Frame images are looked up under the roots given (``--images``), then beside the annotation
source; a frame whose image is not found is drawn on a gray canvas of its size, with one warning
(:mod:`tdgen.preview_sources`). Every box is drawn in its track's colour with an
``id:<track> <category>`` label (:mod:`tdgen.preview_draw`). Colours are RGB throughout;
OpenCV's BGR only appears when encoding files. OpenCV (``opencv-python-headless``) is imported
only when a preview is made. This module writes the files and keeps the public names.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .atomic import atomic_write_bytes, plain_file_mode
from .errors import OutputError, UsageError
from .preview_draw import (DEFAULT_TILE_WIDTH, _auto_thickness, _cv2, _font, _put_label, _render_tile, contact_sheet,
                           draw_frame, sheet_shape, track_color)
from .preview_sources import GRAY, _Frames, _sampled, _select_videos, default_image_roots, load_preview_source
from .sizes import parse_wh
from .tracks.trackset import TrackSet

__all__ = [
    "PreviewWarning",
    "track_color",
    "draw_frame",
    "contact_sheet",
    "sheet_shape",
    "render_preview",
    "preview_clip",
    "clip_sheet",
    "load_preview_source",
    "default_image_roots",
    "output_kind",
    "parse_size",
    "DEFAULT_TILE_WIDTH",
    "GRAY",
]

VIDEO_EXTS = (".mp4",)
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
DEFAULT_MAX_VIDEOS = 32


class PreviewWarning(UserWarning):
    """Something a preview could not show as asked (missing images, too many videos, ...)."""


# --------------------------------------------------------------------------- files
def output_kind(path: str | os.PathLike) -> str:
    """``"video"`` or ``"image"`` from the extension; :class:`UsageError` for anything else."""
    ext = Path(path).suffix.lower()
    if ext in VIDEO_EXTS:
        return "video"
    if ext in IMAGE_EXTS:
        return "image"
    raise UsageError(f"{path}: unknown preview type {ext or '(no extension)'!r}; use .mp4 for a video or "
                     ".png/.jpg for a contact sheet")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"640x360"`` -> (640, 360) for ``--size``."""
    return parse_wh(text, "--size", minimum=16, maximum=8192)


def _write_image(rgb: np.ndarray, out: Path) -> None:
    cv2 = _cv2()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    ext = out.suffix.lower()
    params = [cv2.IMWRITE_PNG_COMPRESSION, 3] if ext == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 90]
    ok, buf = cv2.imencode(".png" if ext == ".png" else ".jpg", bgr, params)
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise OutputError(f"{out}: could not encode the image")
    atomic_write_bytes(out, buf.tobytes())


def _write_video(frames: Iterable[np.ndarray], out: Path, width: int, height: int, fps: float) -> int:
    """Write RGB frames of exactly ``width`` x ``height`` to an mp4, atomically. Returns the count."""
    cv2 = _cv2()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp.mp4", dir=out.parent)
    os.close(fd)
    n = 0
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (int(width), int(height)))
        if not writer.isOpened():
            raise OutputError(f"{out}: OpenCV cannot write mp4 video (mp4v codec unavailable)")
        try:
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
                n += 1
        finally:
            writer.release()
        if n == 0 or os.path.getsize(tmp) == 0:
            raise OutputError(f"{out}: no video was written")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, plain_file_mode())  # mkstemp made it 0600 and the encoder kept that
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return n


def _even(v: int) -> int:
    return max(2, v - (v % 2))


def _spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices into ``range(n)``, evenly spread, first and last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def render_preview(ts: TrackSet, out: str | os.PathLike, *, image_root: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                   videos: Sequence[str] | None = None, max_frames: int | None = None, every: int = 1, cols: int = 8,
                   fps: float = 10, size: tuple[int, int] | None = None, max_videos: int | None = DEFAULT_MAX_VIDEOS,
                   on_warning: Callable[[str], None] | None = None, report: dict | None = None) -> Path:
    """Draw ``ts``'s boxes over its frames into ``out`` (``.mp4`` video or ``.png``/``.jpg`` sheet).

    ``image_root``: root(s) tried before the defaults of :func:`default_image_roots` for the
    ``ts.source``. ``videos``: names to show, in that order (comma-separated names are split);
    else all, up to ``max_videos`` (with a warning). Per video, every ``every``-th frame is taken,
    and of those the first ``max_frames`` (None: all). A sheet shows ``cols`` of them per video,
    evenly spread; a video shows all of them at ``fps``. ``size`` (width, height) is the video's
    frame size or the sheet's tile size. Warnings go to ``on_warning`` (default:
    :class:`PreviewWarning` via :mod:`warnings`); ``report``, when given, is filled with a
    summary. Returns ``out``.
    """
    out = Path(out)
    kind = output_kind(out)
    if every < 1:
        raise UsageError(f"--every must be at least 1, got {every}")
    if cols < 1:
        raise UsageError(f"--cols must be at least 1, got {cols}")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {max_frames}")
    if not (fps > 0 and np.isfinite(fps)):
        raise UsageError(f"--fps must be positive, got {fps}")
    if size is not None and (len(size) != 2 or min(size) < 16):
        raise UsageError(f"size must be (width, height) of at least 16 px, got {size}")

    collected: list[str] = []

    def warn(msg: str) -> None:
        collected.append(msg)
        if on_warning is not None:
            on_warning(msg)
        else:
            warnings.warn(msg, PreviewWarning, stacklevel=3)

    if image_root is None:
        given: list[Path] = []
    elif isinstance(image_root, (str, os.PathLike)):
        given = [Path(image_root)]
    else:
        given = [Path(r) for r in image_root]
    roots: list[Path] = []
    for r in given + default_image_roots(ts.source):
        if r not in roots:
            roots.append(r)

    video_rows = _select_videos(ts, videos, max_videos, warn)
    off = ts.video_offsets()
    per_video = [(v, _sampled(off, v, every, max_frames)) for v in video_rows]
    per_video = [(v, rows) for v, rows in per_video if rows.size]
    if not per_video:
        raise UsageError(f"{ts.source or 'input'}: nothing to preview (no frames in the chosen videos)")
    loader = _Frames(ts, roots, warn)
    n_boxes = 0

    if kind == "image":
        tiles: list[list[np.ndarray]] = []
        labels: list[list[str]] = []
        first = per_video[0][1][0]
        if size is not None:
            tw, th = int(size[0]), int(size[1])
        else:
            fw, fh = loader.frame_size(int(first))
            tw = DEFAULT_TILE_WIDTH
            th = int(round(tw * min(max(fh / fw, 0.25), 2.0)))
        for v, rows in per_video:
            row_tiles, row_labels = [], []
            for f in rows[_spread(rows.size, cols)]:
                f = int(f)
                b, t, names = loader.boxes(f)
                n_boxes += len(b)
                row_tiles.append(_render_tile(loader.image(f), b, t, names, tw, th))
                row_labels.append(loader.title(f))
            tiles.append(row_tiles)
            labels.append(row_labels)
        sheet = contact_sheet(tiles, labels, tile_width=tw, tile_height=th)
        _write_image(sheet, out)
        n_frames = sum(len(r) for r in tiles)
        out_size = [int(sheet.shape[1]), int(sheet.shape[0])]
    else:
        first = int(per_video[0][1][0])
        if size is not None:
            W, H = _even(int(size[0])), _even(int(size[1]))
        else:
            W, H = loader.frame_size(first)
            W, H = _even(W), _even(H)

        def frames() -> Iterator[np.ndarray]:
            nonlocal n_boxes
            for _, rows in per_video:
                for f in rows:
                    f = int(f)
                    b, t, names = loader.boxes(f)
                    n_boxes += len(b)
                    img = _render_tile(loader.image(f), b, t, names, W, H)
                    th = _auto_thickness(H, W)
                    scale, weight = _font(th)
                    _put_label(img, loader.title(f), 0, 0, (0, 0, 0), scale=scale, weight=weight, above=False)
                    yield img

        n_frames = _write_video(frames(), out, W, H, fps)
        out_size = [W, H]

    if report is not None:
        report.update({
            "output": str(out), "kind": "video" if kind == "video" else "sheet",
            "videos": len(per_video), "frames": int(n_frames), "boxes": int(n_boxes), "size": out_size,
            "missing_images": loader.missing, "warnings": collected,
        })
    return out


# --------------------------------------------------------------------------- clips (synth --preview)
def _clip_arrays(frames: np.ndarray, boxes_xywh: np.ndarray, mask: np.ndarray | None, track_ids: np.ndarray,
                 labels: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    F = frames.shape[0]
    boxes = np.asarray(boxes_xywh, dtype=np.float64)
    ids = np.asarray(track_ids).reshape(-1)
    N = ids.size
    if boxes.shape != (F, N, 4):
        raise ValueError(f"boxes must be (F, N, 4) = ({F}, {N}, 4), got {boxes.shape}")
    m = np.ones((F, N), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != (F, N):
        raise ValueError(f"mask must be (F, N) = ({F}, {N}), got {m.shape}")
    names = [""] * N if labels is None else [str(x) for x in labels]
    if len(names) != N:
        raise ValueError(f"{N} tracks but {len(names)} labels")
    return frames, boxes, m, ids, names


def _clip_frame(frames, boxes, m, ids, names, k: int, width: int, height: int) -> np.ndarray:
    sel = np.flatnonzero(m[k])
    return _render_tile(frames[k], boxes[k, sel], ids[sel], [names[i] for i in sel], width, height)


def preview_clip(frames: np.ndarray, boxes_xywh: np.ndarray, mask: np.ndarray | None, track_ids: np.ndarray,
                 labels: Sequence[str] | None, out_mp4: str | os.PathLike, *, fps: float = 8) -> Path:
    """An mp4 of a generated clip with its boxes: ``frames`` (F, H, W, 3) uint8 RGB, ``boxes_xywh``
    (F, N, 4) in frame pixels, ``mask`` (F, N) true where track n is present in frame k,
    ``track_ids`` (N,), ``labels`` (N,) category names. Written atomically; returns the path."""
    out = Path(out_mp4)
    if output_kind(out) != "video":
        raise UsageError(f"{out}: a clip preview is an .mp4 file")
    frames, boxes, m, ids, names = _clip_arrays(frames, boxes_xywh, mask, track_ids, labels)
    if frames.shape[0] == 0:
        raise ValueError("a clip preview needs at least one frame")
    H, W = frames.shape[1:3]
    We, He = _even(W), _even(H)
    gen = (_clip_frame(frames, boxes, m, ids, names, k, We, He) for k in range(frames.shape[0]))
    _write_video(gen, out, We, He, fps)
    return out


def clip_sheet(frames: np.ndarray, boxes_xywh: np.ndarray, mask: np.ndarray | None, track_ids: np.ndarray,
               labels: Sequence[str] | None, *, cols: int = 8, tile_width: int = 256, title: str | None = None) -> np.ndarray:
    """A one-row contact sheet (RGB array) of up to ``cols`` frames of a clip, evenly spread,
    each labelled ``[<title>] #<frame index>``. Arguments as :func:`preview_clip`."""
    frames, boxes, m, ids, names = _clip_arrays(frames, boxes_xywh, mask, track_ids, labels)
    F, H, W = frames.shape[:3]
    if F == 0:
        raise ValueError("a clip sheet needs at least one frame")
    tw = int(tile_width)
    th = int(round(tw * min(max(H / W, 0.25), 2.0)))
    pick = _spread(F, max(1, int(cols)))
    row = [_clip_frame(frames, boxes, m, ids, names, int(k), tw, th) for k in pick]
    prefix = f"{title} " if title else ""
    return contact_sheet([row], [[f"{prefix}#{int(k)}" for k in pick]], tile_width=tw, tile_height=th)
