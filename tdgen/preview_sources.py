"""Where preview frames come from: the annotation source, its frame images, and the frames chosen.

Frame images are looked up as ``ROOT / file_name`` for each candidate root in turn, the first
that exists winning: the roots given (``--images``), then the annotation file's directory and
its ``images/`` folder (for a directory input: the directory, its ``images/`` folder and its
parent, which is where a single MOT sequence's ``<seq>/img1/...`` names are relative to). A
frame whose image is not found is drawn on a neutral gray canvas of the frame's size, with a
single warning, so tracklets can be inspected from an annotation file alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import AnnotationError, UsageError
from .preview_draw import _cv2
from .tracks.trackset import TrackSet

__all__ = ["GRAY", "default_image_roots", "load_preview_source"]

GRAY = (128, 128, 128)  # canvas of frames without an image


def default_image_roots(source: str | os.PathLike | None) -> list[Path]:
    """Where file names of an annotation source are looked up, in order (see the module doc)."""
    if not source:
        return []
    p = Path(source)
    if p.is_dir():
        return [p, p / "images", p.parent]
    return [p.parent, p.parent / "images"]


def load_preview_source(path: str | os.PathLike, fmt: str | None = None) -> TrackSet:
    """Read an annotation source, or the ``annotations.json`` of a synth output directory."""
    from .tracks.io import read_tracks

    p = Path(path)
    if p.is_dir() and (p / "annotations.json").is_file():
        return read_tracks(p / "annotations.json", fmt)
    return read_tracks(p, fmt)


class _Frames:
    """Loads frame images (RGB) of a TrackSet, or gray canvases when they are missing."""

    def __init__(self, ts: TrackSet, roots: list[Path], warn: Callable[[str], None]):
        self.ts = ts
        self.roots = roots or [Path(".")]
        self.warn = warn
        self.missing = 0
        self.size_warned = False
        self.names = ts.category_names()
        self.foff = ts.frame_offsets()
        self._fallback: dict[int, tuple[int, int]] = {}

    def frame_size(self, f: int) -> tuple[int, int]:
        """(width, height) the annotation gives the frame (its video's, or the boxes' extent)."""
        ts = self.ts
        v = int(ts.frames.video[f])
        w, h = int(ts.frames.width[f]), int(ts.frames.height[f])
        if w <= 0 or h <= 0:
            w, h = int(ts.videos.width[v]), int(ts.videos.height[v])
        if w <= 0 or h <= 0:
            if v not in self._fallback:
                vb = ts.boxes.bbox[ts.box_video() == v]
                ok = np.all(np.isfinite(vb), axis=1)
                vb = vb[ok]
                if len(vb):
                    fw = int(np.ceil(max(64.0, float(np.max(vb[:, 0] + vb[:, 2])))))
                    fh = int(np.ceil(max(64.0, float(np.max(vb[:, 1] + vb[:, 3])))))
                else:
                    fw, fh = 640, 480
                self._fallback[v] = (min(fw, 8192), min(fh, 8192))
            w, h = self._fallback[v]
        return w, h

    def find(self, file_name: str) -> Path | None:
        for root in self.roots:
            p = root / file_name
            if p.is_file():
                return p
        return None

    def image(self, f: int) -> np.ndarray:
        cv2 = _cv2()
        name = str(self.ts.frames.file_name[f])
        path = self.find(name) if name else None
        w, h = self.frame_size(f)
        if path is None:
            if self.missing == 0:
                tried = ", ".join(str(r) for r in self.roots)
                self.warn(f"{name or '(no file name)'}: frame image not found (looked in: {tried}); drawing boxes on "
                          "a gray canvas of the frame size (pass --images ROOT to use the images)")
            self.missing += 1
            canvas = np.empty((h, w, 3), dtype=np.uint8)
            canvas[:] = GRAY
            return canvas
        data = np.fromfile(str(path), dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise AnnotationError(path, None, "cannot decode the image (corrupt or not an image file)")
        ih, iw = bgr.shape[:2]
        if (iw, ih) != (w, h) and int(self.ts.frames.width[f]) > 0 and not self.size_warned:
            self.size_warned = True
            self.warn(f"{path}: image is {iw}x{ih} but the annotation says {w}x{h}; boxes are drawn as annotated")
        return np.ascontiguousarray(bgr[..., ::-1])

    def boxes(self, f: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        a, b = int(self.foff[f]), int(self.foff[f + 1])
        cats = self.ts.boxes.category[a:b]
        labels = [self.names.get(int(c), str(int(c))) for c in cats]
        return self.ts.boxes.bbox[a:b], self.ts.boxes.track[a:b], labels

    def title(self, f: int) -> str:
        ts = self.ts
        v = int(ts.frames.video[f])
        num = ts.frames.number[f] if ts.frames.number is not None else np.nan
        n = int(num) if np.isfinite(num) else int(ts.frames.index[f])
        return f"{ts.videos.name[v]} #{n}"


def _select_videos(ts: TrackSet, videos: Sequence[str] | None, max_videos: int | None,
                   warn: Callable[[str], None]) -> list[int]:
    names = [str(n) for n in ts.videos.name.tolist()]
    if videos:
        wanted: list[str] = []
        for v in videos:
            wanted.extend(s.strip() for s in str(v).split(",") if s.strip())
        index: dict[str, int] = {}
        for i, n in enumerate(names):
            index.setdefault(n, i)
        unknown = [w for w in wanted if w not in index]
        if unknown:
            some = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise UsageError(f"{ts.source or 'input'}: no video named {', '.join(map(repr, unknown))} "
                             f"({len(names)} videos: {some})")
        rows: list[int] = []
        for w in wanted:
            if index[w] not in rows:
                rows.append(index[w])
        return rows
    rows = list(range(len(names)))
    if max_videos is not None and len(rows) > max_videos:
        warn(f"showing the first {max_videos} of {len(rows)} videos; choose others with --videos")
        rows = rows[:max_videos]
    return rows


def _sampled(off: np.ndarray, v: int, every: int, max_frames: int | None) -> np.ndarray:
    rows = np.arange(int(off[v]), int(off[v + 1]), every, dtype=np.int64)
    return rows if max_frames is None else rows[:max_frames]
