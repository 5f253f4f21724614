"""How well one generated clip shows the boxes it was asked to follow.

Each frame's annotated boxes are matched one-to-one to that frame's detections by the Hungarian
method (``scipy.optimize.linear_sum_assignment``) on IoU, maximising the total IoU over pairs
that overlap at all. Greedy matching by IoU would be cheaper but can hand a detection lying
between two adjacent boxes (a crowd of pedestrians) to the box that has other candidates and
leave the other unmatched; with at most a few dozen boxes per frame the optimal assignment
costs nothing. Matching is class-agnostic (detectors rarely share the annotations' class ids)
and one matching serves every threshold, so a box's IoU does not depend on ``--iou`` and the
clip and box levels of the gate see the same numbers.

From the matching:

- per box: the IoU of its matched detection (0 when unmatched); crowd / ignore regions are
  never scored (NaN);
- per clip: recall (boxes matched at IoU >= the threshold, over scored boxes; 1.0 for a clip
  with no scored box, since it claims nothing) and the mean IoU of those matches;
- per track: the fraction of its scored frames in which it was found.

Everything is plain numpy (SciPy for the assignment) and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError
from .detector import FrameDetections

__all__ = ["ClipScore", "DEFAULT_IOU", "check_iou", "iou_matrix", "match_frame", "score_clip", "score_trackset"]

DEFAULT_IOU = 0.5


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``(n, m)`` of xyxy boxes ``a`` (n, 4) and ``b`` (m, 4); 0 where a union is empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _assignment(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        raise UsageError("the gate needs SciPy to match boxes: pip install scipy (or tdgen[eval])") from None
    rows, cols = linear_sum_assignment(score, maximize=True)
    return rows.astype(np.int64), cols.astype(np.int64)


def match_frame(boxes: np.ndarray, detections: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame: for each xyxy box (n, 4), the IoU of the detection matched to it (0 if none) and
    that detection's row (-1 if none). At most one box per detection and one detection per box."""
    n = int(np.asarray(boxes).reshape(-1, 4).shape[0])
    iou = np.zeros(n, np.float64)
    det = np.full(n, -1, np.int64)
    if n == 0 or len(detections) == 0:
        return iou, det
    m = iou_matrix(boxes, detections)
    rows, cols = _assignment(m)
    keep = m[rows, cols] > 0  # a pair that does not overlap is no match
    iou[rows[keep]] = m[rows[keep], cols[keep]]
    det[rows[keep]] = cols[keep]
    return iou, det


def _round(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(float(x), nd)


@dataclass(frozen=True)
class ClipScore:
    """The score of one clip (see the module docstring).

    ``box_iou`` has one entry per annotated box, in the order given (NaN for crowd / ignore
    regions); ``tracks`` maps each scored track id to ``(frames scored, frames found)``.
    """

    clip_id: str
    iou_threshold: float
    frames: int
    detections: int
    box_iou: np.ndarray = field(repr=False)
    box_track: np.ndarray = field(repr=False)
    box_frame: np.ndarray = field(repr=False)
    tracks: dict[int, tuple[int, int]] = field(repr=False)

    @property
    def scored(self) -> np.ndarray:
        """Which boxes were scored (not crowd / ignore regions)."""
        return ~np.isnan(self.box_iou)

    @property
    def boxes(self) -> int:
        """Number of scored boxes."""
        return int(self.scored.sum())

    @property
    def found(self) -> int:
        """Scored boxes matched at IoU >= ``iou_threshold``."""
        return int((self.box_iou[self.scored] >= self.iou_threshold).sum())

    @property
    def recall(self) -> float:
        """``found / boxes``; 1.0 when the clip has no scored box."""
        return self.found / self.boxes if self.boxes else 1.0

    @property
    def mean_iou(self) -> float | None:
        """Mean IoU of the boxes found (``None`` when none was)."""
        v = self.box_iou[self.scored]
        v = v[v >= self.iou_threshold]
        return float(v.mean()) if v.size else None

    def track_found(self) -> dict[int, float]:
        """Per track, the fraction of its scored frames in which it was found."""
        return {t: (found / n if n else 0.0) for t, (n, found) in sorted(self.tracks.items())}

    def as_dict(self, *, boxes: bool = False) -> dict[str, Any]:
        """The score as JSON-ready values (rounded to 6 decimals); ``boxes`` adds per-box IoUs."""
        d: dict[str, Any] = {
            "clip_id": self.clip_id, "iou_threshold": self.iou_threshold, "frames": self.frames,
            "detections": self.detections, "boxes": self.boxes, "found": self.found,
            "recall": _round(self.recall), "mean_iou": _round(self.mean_iou),
            "tracks": {str(t): _round(f) for t, f in self.track_found().items()},
        }
        if boxes:
            d["box_iou"] = [None if np.isnan(v) else _round(v) for v in self.box_iou.tolist()]
        return d


def check_iou(iou: float) -> float:
    """``iou`` as a float in (0, 1]; anything else is a :class:`UsageError` naming ``--iou``."""
    if isinstance(iou, bool) or not isinstance(iou, (int, float, np.integer, np.floating)) \
            or not 0 < float(iou) <= 1:
        raise UsageError(f"--iou {iou}: must be in (0, 1]")
    return float(iou)


def score_clip(box_frame: np.ndarray, boxes: np.ndarray, track: np.ndarray, crowd: np.ndarray | None,
               detections: Sequence[FrameDetections], *, iou: float = DEFAULT_IOU, clip_id: str = "") -> ClipScore:
    """Score one clip of ``len(detections)`` frames.

    Annotated box ``j`` lies on frame ``box_frame[j]`` (0-based) at ``boxes[j]`` (xyxy pixels)
    and belongs to track ``track[j]``; ``crowd[j]`` marks an ignore region, never scored
    (default: none). ``detections[t]`` are frame ``t``'s detections. Raises ``ValueError`` when
    the arrays disagree or a box lies on a frame with no detections entry.
    """
    iou = check_iou(iou)
    frame = np.asarray(box_frame, np.int64).reshape(-1)
    xyxy = np.asarray(boxes, np.float64).reshape(-1, 4)
    tid = np.asarray(track, np.int64).reshape(-1)
    m = frame.size
    is_crowd = np.zeros(m, bool) if crowd is None else np.asarray(crowd).reshape(-1).astype(bool)
    if not (xyxy.shape[0] == tid.size == is_crowd.size == m):
        raise ValueError(f"score_clip: {m} frames, {xyxy.shape[0]} boxes, {tid.size} tracks and "
                         f"{is_crowd.size} crowd flags do not describe the same boxes")
    t_frames = len(detections)
    if m and (frame.min() < 0 or frame.max() >= t_frames):
        raise ValueError(f"score_clip: a box lies on frame {int(frame.max())}, but only {t_frames} frames "
                         "of detections were given")
    box_iou = np.full(m, np.nan)
    scored = np.flatnonzero(~is_crowd)
    # boxes grouped by frame (stable), so each frame is one slice
    order = scored[np.argsort(frame[scored], kind="stable")]
    starts = np.searchsorted(frame[order], np.arange(t_frames + 1), side="left")
    for t in range(t_frames):
        rows = order[starts[t]:starts[t + 1]]
        if rows.size:
            box_iou[rows], _ = match_frame(xyxy[rows], detections[t].boxes)
    found = box_iou >= iou
    tracks: dict[int, tuple[int, int]] = {}
    for t in np.unique(tid[scored]).tolist():
        sel = scored[tid[scored] == t]
        tracks[int(t)] = (int(sel.size), int(found[sel].sum()))
    return ClipScore(clip_id=clip_id, iou_threshold=iou, frames=t_frames,
                     detections=int(sum(len(d) for d in detections)), box_iou=box_iou, box_track=tid,
                     box_frame=frame, tracks=tracks)


def score_trackset(ts: Any, detections: Sequence[FrameDetections], *, iou: float = DEFAULT_IOU) -> ClipScore:
    """Score the one-video TrackSet of a clip (a synth fragment's) against its detections, one
    entry per frame of the clip. Box scores follow the TrackSet's box order."""
    if ts.num_videos != 1:
        raise ValueError(f"score_trackset: expected one video, got {ts.num_videos}")
    if len(detections) != ts.num_frames:
        raise ValueError(f"score_trackset: {ts.num_frames} frames but {len(detections)} frames of detections")
    b = ts.boxes
    xyxy = np.asarray(b.bbox, np.float64).reshape(-1, 4).copy()
    xyxy[:, 2:] += xyxy[:, :2]
    return score_clip(ts.frames.index[b.frame], xyxy, b.track, b.iscrowd, detections, iou=iou,
                      clip_id=str(ts.videos.name[0]))
