"""Frames and boxes of a COCO-VID set (a ``tdgen shapes`` or ``tdgen synth`` output) in memory.

A :class:`FrameSet` holds every frame of the chosen videos as one uint8 array with, per frame,
the boxes to learn or score and the *ignore* boxes: crowd boxes (``iscrowd``, the gate's
``--box-action ignore``), MOT conf 0, and boxes less visible than ``min_visibility`` (shapes
mostly hidden behind others, as ``tdgen eval`` treats them). Ignore boxes are neither targets
nor misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AnnotationError

__all__ = ["FrameSet", "load_frameset"]


@dataclass(frozen=True)
class FrameSet:
    """Frames ``(N, H, W, 3)`` RGB uint8 with per-frame boxes; frames grouped by video in order."""

    images: np.ndarray
    boxes: list[np.ndarray]   # (n, 4) xywh pixels: the targets
    ignore: list[np.ndarray]  # (k, 4) xywh pixels: ignore regions
    video: np.ndarray         # (N,) row in ``videos``
    videos: list[str]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(b) for b in self.boxes))

    def video_frames(self, v: int) -> np.ndarray:
        """Rows of video ``v``'s frames, in frame order."""
        return np.flatnonzero(self.video == v)

    @staticmethod
    def concat(sets: list["FrameSet"]) -> "FrameSet":
        sets = [s for s in sets if len(s)]
        if not sets:
            return FrameSet(np.zeros((0, 1, 1, 3), np.uint8), [], [], np.zeros(0, np.int64), [])
        offs = np.cumsum([0] + [len(s.videos) for s in sets])
        return FrameSet(np.concatenate([s.images for s in sets]), [b for s in sets for b in s.boxes],
                        [b for s in sets for b in s.ignore],
                        np.concatenate([s.video + o for s, o in zip(sets, offs)]),
                        [v for s in sets for v in s.videos])


def load_frameset(ann: str | Path, *, videos: int | None = None, min_visibility: float = 0.4) -> FrameSet:
    """Read ``ann`` (COCO-VID; image file names relative to its directory) and its frames.

    ``videos``: only the first so many videos (in the file's order), for the real-data fractions.
    """
    from ..imageops import opencv
    from ..tracks.io import read_tracks

    cv2 = opencv("reading the benchmark's frames")
    ann = Path(ann)
    ts = read_tracks(ann)
    nv = ts.num_videos if videos is None else min(int(videos), ts.num_videos)
    fo = ts.video_offsets()
    box_off = ts.frame_offsets()
    b = ts.boxes
    ign = b.iscrowd != 0
    if b.conf is not None:
        ign |= b.conf == 0
    if b.visibility is not None and min_visibility > 0:
        ign |= np.nan_to_num(b.visibility, nan=1.0) < min_visibility
    images, boxes, ignore, video = [], [], [], []
    for v in range(nv):
        for f in range(int(fo[v]), int(fo[v + 1])):
            path = ann.parent / str(ts.frames.file_name[f])
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise AnnotationError(path, None, "frame is missing or not a readable image")
            images.append(img[..., ::-1])
            sel = slice(int(box_off[f]), int(box_off[f + 1]))
            bb, ii = b.bbox[sel], ign[sel]
            boxes.append(np.asarray(bb[~ii], np.float64).reshape(-1, 4))
            ignore.append(np.asarray(bb[ii], np.float64).reshape(-1, 4))
            video.append(v)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise AnnotationError(ann, None, f"frames of several sizes {sorted(shapes)}: the detector takes one size")
    arr = np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)
    return FrameSet(np.ascontiguousarray(arr), boxes, ignore, np.asarray(video, np.int64),
                    [str(n) for n in ts.videos.name[:nv]])
