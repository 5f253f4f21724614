"""A ByteTrack-style tracker: two-stage IoU association of high- and low-score detections.

Per frame (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box",
ECCV 2022, without the Kalman filter): every live track predicts its box by constant velocity;

1. detections with score >= ``high`` are matched to all live tracks (Hungarian on IoU, a pair
   needs IoU >= ``match_iou``);
2. detections with ``low`` <= score < ``high`` are matched to the tracks still unmatched that
   were seen in the previous frame (IoU >= ``low_match_iou``): a weak detection continues a
   track but never starts one;
3. unmatched high detections with score >= ``new_track`` start new tracks; a track unmatched for
   more than ``max_age`` frames ends.

:func:`tdgen.evaluate.metrics.iou_tracker` (greedy, one stage, no score, no motion) scores the
classical detector in ``tdgen eval``; this one is for a learned detector's scored output, where
the low-score stage is what ByteTrack adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..evaluate.metrics import box_iou, linear_assignment

__all__ = ["ByteTrackConfig", "TrackedFrame", "byte_track", "write_mot_results"]


@dataclass(frozen=True)
class ByteTrackConfig:
    high: float = 0.5
    low: float = 0.1
    new_track: float = 0.6
    match_iou: float = 0.2
    low_match_iou: float = 0.5
    max_age: int = 5  # frames a track may go unmatched and still be continued


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's tracker output: ids (n,), boxes (n, 4) xywh, scores (n,)."""

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray


def _match(tracks: np.ndarray, dets: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``tracks`` and ``dets`` (xywh) matched one-to-one by maximum total IoU, each pair >= ``min_iou``."""
    if not len(tracks) or not len(dets):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    iou = box_iou(tracks, dets)
    rows, cols = linear_assignment(np.where(iou >= min_iou, iou, 0.0))
    ok = iou[rows, cols] >= min_iou
    return rows[ok], cols[ok]


def byte_track(detections: Sequence[tuple[np.ndarray, np.ndarray]], cfg: ByteTrackConfig = ByteTrackConfig()
               ) -> list[TrackedFrame]:
    """Track ``detections`` (per frame: boxes (n, 4) xywh, scores (n,)) through one video.

    Returns the matched detections of every frame with their track ids (from 1, in order of
    birth); a track's unmatched frames produce no box.
    """
    box = np.zeros((0, 4))
    vel = np.zeros((0, 2))
    last = np.zeros(0, np.int64)  # frame the track was last matched
    tid = np.zeros(0, np.int64)
    next_id = 1
    out: list[TrackedFrame] = []
    for t, (b, s) in enumerate(detections):
        b = np.asarray(b, np.float64).reshape(-1, 4)
        s = np.asarray(s, np.float64).reshape(-1)
        live = np.flatnonzero(t - last <= cfg.max_age + 1)
        gap = (t - last[live]).astype(np.float64)
        pred = box[live].copy()
        pred[:, :2] += vel[live] * gap[:, None]
        det_ids = np.zeros(len(b), np.int64)
        used_t = np.zeros(live.size, bool)
        hi = np.flatnonzero(s >= cfg.high)
        lo = np.flatnonzero((s >= cfg.low) & (s < cfg.high))
        r, c = _match(pred, b[hi], cfg.match_iou)
        pairs = [(live[i], hi[j]) for i, j in zip(r, c)]
        used_t[r] = True
        # stage 2: the tracks left that were seen last frame, against the weak detections
        recent = np.flatnonzero(~used_t & (gap == 1))
        r2, c2 = _match(pred[recent], b[lo], cfg.low_match_iou)
        pairs += [(live[recent[i]], lo[j]) for i, j in zip(r2, c2)]
        matched_det = np.zeros(len(b), bool)
        for k, j in pairs:
            shift = (b[j, :2] - box[k, :2]) / max(t - last[k], 1)
            # velocity smoothed over matches: one noisy box must not throw the prediction off
            vel[k] = shift if last[k] == t - 1 and not vel[k].any() else 0.5 * vel[k] + 0.5 * shift
            box[k] = b[j]
            last[k] = t
            det_ids[j] = tid[k]
            matched_det[j] = True
        new = np.array([j for j in hi if not matched_det[j] and s[j] >= cfg.new_track], np.int64)
        if new.size:
            ids = np.arange(next_id, next_id + new.size)
            next_id += new.size
            det_ids[new] = ids
            matched_det[new] = True
            box = np.concatenate([box, b[new]])
            vel = np.concatenate([vel, np.zeros((new.size, 2))])
            last = np.concatenate([last, np.full(new.size, t, np.int64)])
            tid = np.concatenate([tid, ids])
        keep = np.flatnonzero(matched_det)
        out.append(TrackedFrame(det_ids[keep], b[keep], s[keep]))
    return out


def write_mot_results(path: str | Path, frames: Sequence[TrackedFrame]) -> None:
    """One MOT result file (``frame,id,x,y,w,h,score,-1,-1,-1``, frame 1-based), written atomically."""
    from ..atomic import atomic_write_text

    lines = []
    for t, f in enumerate(frames):
        for i, (x, y, w, h), sc in zip(f.ids, f.boxes, f.scores):
            lines.append(f"{t + 1},{int(i)},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{sc:.4f},-1,-1,-1")
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
