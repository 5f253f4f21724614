"""TrackAP: the YouTube-VIS average precision over spatio-temporal box IoU, in plain numpy.

This is the video-level AP that the TrackDiffusion paper reports for generated videos (see
docs/architecture.md for how tdgen lays out tracks). It treats a whole track as one object:

* **Spatio-temporal IoU** of a predicted track and a GT track of the same video: the sum over
  the video's frames of the intersection area of their two boxes, divided by the sum over the
  frames of the area of their union. A frame where only one of the two has a box adds that box's
  area to the union and nothing to the intersection; frames where neither has one add nothing.
* **Scores**: a predicted track's score is the mean of its box scores (1 where none are given),
  unless a score is given for the track itself.
* **Matching**, per video and per category: predictions are taken in decreasing score order (at
  most ``max_dets`` per video and category); at each IoU threshold t in 0.50, 0.55, ..., 0.95 a
  prediction takes the unmatched GT track with the highest IoU >= t. A GT track marked
  crowd/ignore is only taken when no regular GT track qualifies, may be taken by any number of
  predictions, and a prediction that takes it is left out of the counts (neither true nor false
  positive), as COCO does. Everything else a prediction finds nothing for is a false positive.
* **AP**, per category and threshold: the predictions of every video are ranked by score;
  precision is made monotone (each value becomes the best precision at any higher recall) and
  read at the 101 recall points 0, 0.01, ..., 1 (0 past the highest recall reached) and those
  101 values are averaged. A category without a regular GT track has no AP and is left out; one
  with GT but no prediction scores 0. **AP** is the mean over thresholds and categories, **AP50**
  the mean over categories at 0.5 and **AP75** at 0.75.

Per-box ignore flags: a GT track whose boxes are *all* flagged is a crowd track (above). In a
track with only *some* boxes flagged (boxes a quality gate could not confirm), the flagged frames
count for neither intersection nor union of that track with any prediction, so a prediction is
neither rewarded nor punished for what it does there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

__all__ = ["IOU_THRESHOLDS", "RECALL_POINTS", "VideoTracks", "TrackAPResult", "spatiotemporal_iou", "track_ap"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
_PAIR_CHUNK = 1 << 22  # box pairs handled at once: bounds the temporaries on crowded videos


def _column(values: Any, n: int, name: str, dtype: Any) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} has {arr.size} values for {n} boxes")
    return arr


@dataclass(frozen=True)
class VideoTracks:
    """The boxes of one video's tracks: one row per (frame, track), as columns.

    ``frame`` is any integer frame key shared by GT and predictions of the video, ``bbox`` is
    ``x, y, w, h``. ``category`` (per box; a track takes its most frequent one) is needed unless
    AP is computed class-agnostic; ``score`` (per box) and ``track_scores`` (track id -> score)
    matter for predictions only, ``ignore`` (per box) for GT only.
    """

    frame: np.ndarray
    track: np.ndarray
    bbox: np.ndarray
    category: np.ndarray | None = None
    score: np.ndarray | None = None
    ignore: np.ndarray | None = None
    track_scores: Mapping[int, float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        bbox = np.asarray(self.bbox, np.float64).reshape(-1, 4)
        n = len(bbox)
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "frame", _column(self.frame, n, "frame", np.int64))
        object.__setattr__(self, "track", _column(self.track, n, "track", np.int64))
        object.__setattr__(self, "category", _column(self.category, n, "category", np.int64))
        object.__setattr__(self, "score", _column(self.score, n, "score", np.float64))
        object.__setattr__(self, "ignore", _column(self.ignore, n, "ignore", bool))
        if n > 1:
            key = np.unique(np.stack([self.frame, self.track], 1), axis=0)
            if len(key) != n:
                raise ValueError("a track has two boxes in one frame")

    def __len__(self) -> int:
        return len(self.bbox)

    @staticmethod
    def empty() -> "VideoTracks":
        z = np.zeros(0, np.int64)
        return VideoTracks(frame=z, track=z, bbox=np.zeros((0, 4)), category=z, score=np.zeros(0),
                           ignore=np.zeros(0, bool))


@dataclass
class _Summary:
    """Per-track facts of one side of one video."""

    ids: np.ndarray  # (T,) track ids, ascending
    row_track: np.ndarray  # (M,) index into ids of every box
    category: np.ndarray  # (T,) most frequent category (0 when none given)
    score: np.ndarray  # (T,)
    crowd: np.ndarray  # (T,) bool: every box flagged ignore


def _summarise(v: VideoTracks) -> _Summary:
    ids, inv = np.unique(v.track, return_inverse=True)
    t = len(ids)
    if v.category is None or t == 0:
        cat = np.zeros(t, np.int64)
    else:
        pairs, counts = np.unique(np.stack([inv, v.category], 1), axis=0, return_counts=True)
        # most frequent category per track; ties go to the smallest id
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
        pairs = pairs[order]
        first = np.ones(len(pairs), bool)
        first[1:] = pairs[1:, 0] != pairs[:-1, 0]
        cat = pairs[first, 1]
    n_boxes = np.bincount(inv, minlength=t).astype(np.float64)
    if v.score is None:
        score = np.ones(t)
    else:
        score = np.bincount(inv, weights=v.score, minlength=t) / np.maximum(n_boxes, 1)
    if v.track_scores:
        given = np.array([v.track_scores.get(int(i), np.nan) for i in ids], np.float64)
        score = np.where(np.isnan(given), score, given)
    if v.ignore is None:
        crowd = np.zeros(t, bool)
    else:
        crowd = np.bincount(inv, weights=v.ignore.astype(np.float64), minlength=t) == n_boxes
        crowd &= n_boxes > 0
    return _Summary(ids, inv, cat, score, crowd)


def _same_frame_pairs(gf: np.ndarray, pf: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Row pairs ``(g, p)`` with ``gf[g] == pf[p]``, in chunks of at most ``_PAIR_CHUNK`` pairs."""
    og = np.argsort(gf, kind="stable")
    op = np.argsort(pf, kind="stable")
    gs, ps = gf[og], pf[op]
    common = np.intersect1d(gs, ps)
    if common.size == 0:
        return
    g0 = np.searchsorted(gs, common, "left")
    gn = np.searchsorted(gs, common, "right") - g0
    p0 = np.searchsorted(ps, common, "left")
    pn = np.searchsorted(ps, common, "right") - p0
    n = gn * pn
    ends = np.cumsum(n)
    start = 0
    while start < len(common):
        # take frames until the chunk is full (always at least one frame)
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + _PAIR_CHUNK, "right")), start + 1)
        sel = slice(start, stop)
        cnt = n[sel]
        rep = np.repeat(np.arange(stop - start), cnt)
        local = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        pcount = pn[sel][rep]
        yield og[g0[sel][rep] + local // pcount], op[p0[sel][rep] + local % pcount]
        start = stop


def _iou_matrix(gt: VideoTracks, g: _Summary, pred: VideoTracks, p: _Summary) -> np.ndarray:
    G, P = len(g.ids), len(p.ids)
    if G == 0 or P == 0:
        return np.zeros((G, P))
    g_area = gt.bbox[:, 2] * gt.bbox[:, 3]
    p_area = pred.bbox[:, 2] * pred.bbox[:, 3]
    # flagged boxes of partly flagged tracks leave their frames out; crowd tracks count whole
    masked = np.zeros(len(gt), bool) if gt.ignore is None else gt.ignore & ~g.crowd[g.row_track]
    g_total = np.bincount(g.row_track, weights=np.where(masked, 0.0, g_area), minlength=G)
    p_total = np.bincount(p.row_track, weights=p_area, minlength=P)
    inter = np.zeros(G * P)
    hidden = np.zeros(G * P)  # prediction area in the masked frames of each GT track
    for gi, pj in _same_frame_pairs(gt.frame, pred.frame):
        a, b = gt.bbox[gi], pred.bbox[pj]
        iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
        ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
        area = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        cell = g.row_track[gi] * P + p.row_track[pj]
        m = masked[gi]
        inter += np.bincount(cell, weights=np.where(m, 0.0, area), minlength=G * P)
        if m.any():
            hidden += np.bincount(cell[m], weights=p_area[pj][m], minlength=G * P)
    inter = inter.reshape(G, P)
    union = g_total[:, None] + p_total[None, :] - hidden.reshape(G, P) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def spatiotemporal_iou(gt: VideoTracks, pred: VideoTracks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gt track ids, predicted track ids, IoU (G, P))`` of every GT/predicted track pair of a video."""
    g, p = _summarise(gt), _summarise(pred)
    return g.ids, p.ids, _iou_matrix(gt, g, pred, p)


def _match(iou: np.ndarray, crowd: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of score-ordered predictions (rows of ``iou``.T) at each threshold.

    Returns ``matched`` and ``ignored`` (T, P) booleans: a prediction matched to a crowd track is
    both.
    """
    G, P = iou.shape
    T = len(thresholds)
    matched = np.zeros((T, P), bool)
    ignored = np.zeros((T, P), bool)
    if G == 0 or P == 0:
        return matched, ignored
    # regular GT tracks first, crowd ones last (stable); ties in IoU go to the later track
    order = np.argsort(crowd, kind="stable")
    iou, crowd = iou[order], crowd[order]
    rev = np.arange(G)[::-1]
    for ti, t in enumerate(thresholds):
        thr = min(float(t), 1 - 1e-10)
        taken = np.zeros(G, bool)
        for d in range(P):
            ok = (iou[:, d] >= thr) & (~taken | crowd)
            if not ok.any():
                continue
            pool = ok & ~crowd
            if not pool.any():
                pool = ok
            vals = np.where(pool, iou[:, d], -1.0)
            m = G - 1 - int(np.argmax(vals[rev]))  # the last of the best
            matched[ti, d] = True
            ignored[ti, d] = bool(crowd[m])
            taken[m] = True
    return matched, ignored


@dataclass
class TrackAPResult:
    """TrackAP over a set of videos. ``None`` where no category had a regular GT track."""

    ap: float | None
    ap50: float | None
    ap75: float | None
    per_category: dict[int, dict[str, float | None]]  # category -> {"ap", "ap50", "ap75"}
    precision: np.ndarray  # (thresholds, 101, categories); -1 for a category without GT
    categories: list[int]
    iou_thresholds: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        """The numbers, JSON-ready (no arrays)."""
        return {"track_ap": self.ap, "track_ap50": self.ap50, "track_ap75": self.ap75,
                "per_category": {str(k): v for k, v in self.per_category.items()}}


def _at(thresholds: np.ndarray, value: float) -> int | None:
    hit = np.flatnonzero(np.isclose(thresholds, value))
    return int(hit[0]) if hit.size else None


def track_ap(videos: Iterable[tuple[VideoTracks, VideoTracks]], *, iou_thresholds: Any = IOU_THRESHOLDS,
             max_dets: int = 100, class_agnostic: bool = False) -> TrackAPResult:
    """TrackAP of ``(gt, predictions)`` pairs, one pair per video (definitions: module docstring).

    ``class_agnostic`` puts every track in one category (for trackers that output no class);
    otherwise both sides need ``category``.
    """
    thresholds = np.asarray(iou_thresholds, np.float64).reshape(-1)
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    T = len(thresholds)
    # category -> lists of per-video pieces
    scores: dict[int, list[np.ndarray]] = {}
    hits: dict[int, list[np.ndarray]] = {}
    skips: dict[int, list[np.ndarray]] = {}
    n_gt: dict[int, int] = {}
    for gt, pred in videos:
        if not class_agnostic and ((len(gt) and gt.category is None) or (len(pred) and pred.category is None)):
            raise ValueError("per-category TrackAP needs the category of every box (or class_agnostic=True)")
        g, p = _summarise(gt), _summarise(pred)
        if class_agnostic:
            g.category = np.zeros_like(g.category)
            p.category = np.zeros_like(p.category)
        iou = _iou_matrix(gt, g, pred, p)
        for c in np.union1d(g.category, p.category).tolist():
            gsel = np.flatnonzero(g.category == c)
            psel = np.flatnonzero(p.category == c)
            psel = psel[np.argsort(-p.score[psel], kind="mergesort")][:max_dets]
            m, ig = _match(iou[np.ix_(gsel, psel)], g.crowd[gsel], thresholds)
            n_gt[c] = n_gt.get(c, 0) + int((~g.crowd[gsel]).sum())
            scores.setdefault(c, []).append(p.score[psel])
            hits.setdefault(c, []).append(m)
            skips.setdefault(c, []).append(ig)
    cats = sorted(n_gt)
    precision = -np.ones((T, len(RECALL_POINTS), len(cats)))
    for k, c in enumerate(cats):
        if n_gt[c] == 0:
            continue
        s = np.concatenate(scores[c])
        order = np.argsort(-s, kind="mergesort")
        m = np.concatenate(hits[c], axis=1)[:, order]
        ig = np.concatenate(skips[c], axis=1)[:, order]
        tp = np.cumsum(m & ~ig, axis=1).astype(np.float64)
        fp = np.cumsum(~m & ~ig, axis=1).astype(np.float64)
        for ti in range(T):
            q = np.zeros(len(RECALL_POINTS))
            nd = tp.shape[1]
            if nd:
                rc = tp[ti] / n_gt[c]
                # the exact ratio (COCO adds an epsilon to the denominator, so perfect scores 1 - 2e-16)
                seen = tp[ti] + fp[ti]
                pr = np.divide(tp[ti], seen, out=np.zeros(nd), where=seen > 0)
                pr = np.maximum.accumulate(pr[::-1])[::-1]
                idx = np.searchsorted(rc, RECALL_POINTS, side="left")
                ok = idx < nd
                q[ok] = pr[idx[ok]]
            precision[ti, :, k] = q

    def mean(p: np.ndarray) -> float | None:
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else None

    i50, i75 = _at(thresholds, 0.5), _at(thresholds, 0.75)
    per_cat: dict[int, dict[str, float | None]] = {}
    for k, c in enumerate(cats):
        if n_gt[c]:
            per_cat[c] = {"ap": float(precision[:, :, k].mean()),
                          "ap50": float(precision[i50, :, k].mean()) if i50 is not None else None,
                          "ap75": float(precision[i75, :, k].mean()) if i75 is not None else None}
    return TrackAPResult(
        ap=mean(precision),
        ap50=mean(precision[i50]) if i50 is not None else None,
        ap75=mean(precision[i75]) if i75 is not None else None,
        per_category=per_cat, precision=precision, categories=cats, iou_thresholds=thresholds,
    )
