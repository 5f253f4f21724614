"""Reading a clip's frames at the model resolution, from image files or from a video file.

Where frames come from (decided once per video):

1. image files: ``images[].file_name`` relative to the images root (default: the annotation
   file's folder), read with OpenCV;
2. otherwise, when the video's name (COCO-VID ``videos[].name`` or ``file_name``) is a video file
   (.mp4, .avi, .mkv, .mov, .webm, .m4v) under the images root, frames are decoded with decord:
   frame number ``n`` (``frame_id`` + 1 for 0-based files, as :class:`~tdgen.tracks.TrackSet`
   records it) is video frame ``n - 1``.

Frames are resized to the model resolution as a whole (aspect ratio not kept, as the published
loader's ``Resize(keep_ratio=False)``): area averaging when shrinking, bilinear when enlarging.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AnnotationError, UsageError
from ..imageops import opencv, resize_frame
from ..tracks.clips import Clip
from ..tracks.trackset import TrackSet

__all__ = ["VIDEO_EXTENSIONS", "FrameSource"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def _cv2():
    return opencv("reading training frames")


class FrameSource:
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
                out[i] = resize_frame(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), self.size)
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
            out[i] = resize_frame(frames[i], self.size)
        return out
