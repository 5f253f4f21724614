"""Detection and tracking metrics: IoU matching, a simple IoU tracker, HOTA, CLEAR MOT, Identity.

Boxes are ``x, y, w, h`` arrays ``(n, 4)``. A *sequence* is a list of frames, each a pair
``(ids, boxes)``: ``ids`` (n,) integer identities (unique inside the frame) and ``boxes`` (n, 4).

HOTA follows Luiten et al., "HOTA: A Higher Order Metric for Evaluating Multi-Object Tracking"
(IJCV 2020), as TrackEval computes it: a global alignment score between every GT and tracker id
decides the per-frame matching; for each localisation threshold alpha in 0.05, 0.10, ..., 0.95
it counts detection TP/FN/FP and scores association by AssIoU = TPA / (TPA + FNA + FPA);
``DetA = TP / (TP + FN + FP)``, ``AssA = mean AssIoU over TPs``, ``HOTA_alpha = sqrt(DetA * AssA)``
and HOTA is the mean over the alphas. Several sequences combine by summing TP/FN/FP and
weighting AssA by TP.

MOTA and IDF1 come from the plain implementations here by default, or from ``motmetrics`` when
asked for (``backend="motmetrics"``, a cross-check where it is installed: tdgen does not depend on
it, since its last release calls numpy functions that numpy 2 removed). Same definitions: CLEAR MOT with continuity-preferring
Hungarian matching at IoU >= 0.5; Identity with one global id matching per sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "ALPHAS", "HotaCounts", "box_iou", "linear_assignment", "match_boxes", "ignored_detections",
    "iou_tracker", "identity_consistency", "hota_counts", "hota_summary", "hota", "clear_counts",
    "identity_counts", "mot_metrics",
]

ALPHAS = np.arange(1, 20) * 0.05  # 0.05, 0.10, ..., 0.95
_EPS = np.finfo(np.float64).eps

Frame = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- basics
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(n, m)`` of xywh boxes ``a`` (n, 4) and ``b`` (m, 4)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax1[:, None], bx1[None, :]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay1[:, None], by1[None, :]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _intersection_over_second(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a ∩ b| / |b|`` for every pair (how much of each ``b`` lies inside each ``a``)."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax1[:, None], bx1[None, :]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay1[:, None], by1[None, :]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area = (b[:, 2] * b[:, 3])[None, :]
    return np.where(area > 0, inter / np.where(area > 0, area, 1), 0.0)


def linear_assignment(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the assignment that maximises the total ``score``.

    Hungarian (``scipy.optimize.linear_sum_assignment``) when SciPy is installed, else greedy by
    decreasing score (optimal in the common unambiguous cases).
    """
    score = np.asarray(score, np.float64)
    if score.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # pragma: no cover - scipy is usually there
        return _greedy_assignment(score)
    r, c = linear_sum_assignment(-score)
    return r.astype(np.int64), c.astype(np.int64)


def _greedy_assignment(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.argsort(-score, axis=None, kind="stable")
    used_r, used_c = set(), set()
    rows, cols = [], []
    n_max = min(score.shape)
    for f in flat:
        r, c = divmod(int(f), score.shape[1])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        rows.append(r)
        cols.append(c)
        if len(rows) == n_max:
            break
    return np.array(rows, np.int64), np.array(cols, np.int64)


def match_boxes(gt: np.ndarray, det: np.ndarray, iou_threshold: float = 0.5
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of GT and detected boxes with IoU >= ``iou_threshold``.

    Maximises the number of matches, then their total IoU. Returns ``(gt_rows, det_rows, ious)``.
    """
    iou = box_iou(gt, det)
    if iou.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    valid = iou >= iou_threshold - _EPS
    if not valid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    # A valid pair is worth more than any sum of IoUs, so the count of matches comes first.
    rows, cols = linear_assignment(np.where(valid, 1000.0 + iou, 0.0))
    ok = valid[rows, cols]
    rows, cols = rows[ok], cols[ok]
    return rows, cols, iou[rows, cols]


def ignored_detections(ignored_gt: np.ndarray, det: np.ndarray, iou_threshold: float = 0.5,
                       containment: float = 0.8) -> np.ndarray:
    """Boolean mask of detections explained by ignored GT boxes (neither TP nor FP).

    A detection is ignored when it matches an ignored box at IoU >= ``iou_threshold`` or lies
    inside one (at least ``containment`` of its area): heavily occluded objects show only part
    of their box. Pass only the detections no regular GT box matched.
    """
    det = np.asarray(det, np.float64).reshape(-1, 4)
    ignored_gt = np.asarray(ignored_gt, np.float64).reshape(-1, 4)
    out = np.zeros(len(det), bool)
    if not len(det) or not len(ignored_gt):
        return out
    rows, cols, _ = match_boxes(ignored_gt, det, iou_threshold)
    out[cols] = True
    inside = _intersection_over_second(ignored_gt, det) >= containment
    out |= inside.any(0)
    return out


# --------------------------------------------------------------------------- a simple tracker
def iou_tracker(boxes: Sequence[np.ndarray], iou_threshold: float = 0.3, max_age: int = 1) -> list[np.ndarray]:
    """Track ids for per-frame detections by greedy frame-to-frame IoU association.

    A detection continues the track whose last box (seen at most ``max_age`` frames ago) it
    overlaps most, if that IoU is >= ``iou_threshold``; otherwise it starts a new track. Ids
    start at 1 in order of appearance.
    """
    last_box = np.zeros((0, 4))
    last_seen = np.zeros(0, np.int64)
    track_id = np.zeros(0, np.int64)
    next_id = 1
    out: list[np.ndarray] = []
    for t, b in enumerate(boxes):
        b = np.asarray(b, np.float64).reshape(-1, 4)
        ids = np.zeros(len(b), np.int64)
        live = np.flatnonzero(t - last_seen <= max_age)
        matched_det = np.zeros(len(b), bool)
        if len(b) and live.size:
            iou = box_iou(last_box[live], b)
            taken = np.zeros(live.size, bool)
            for f in np.argsort(-iou, axis=None, kind="stable"):
                r, c = divmod(int(f), iou.shape[1])
                if iou[r, c] < iou_threshold:
                    break
                if taken[r] or matched_det[c]:
                    continue
                taken[r] = matched_det[c] = True
                k = live[r]
                ids[c] = track_id[k]
                last_box[k] = b[c]
                last_seen[k] = t
        new = np.flatnonzero(~matched_det)
        if new.size:
            ids[new] = np.arange(next_id, next_id + new.size)
            next_id += new.size
            last_box = np.concatenate([last_box, b[new]])
            last_seen = np.concatenate([last_seen, np.full(new.size, t, np.int64)])
            track_id = np.concatenate([track_id, ids[new]])
        out.append(ids)
    return out


def identity_consistency(track_ids: np.ndarray, colors: np.ndarray, tol: float = 30.0
                         ) -> tuple[float | None, dict[int, float]]:
    """How stable the colour of each GT track's matched detections is across frames.

    ``track_ids`` (K,) is the GT track of each matched pair and ``colors`` (K, 3) the matched
    detection's mean colour. For each track seen in two or more matched frames: the fraction
    of those frames whose colour lies within ``tol`` (RGB distance) of the track's per-channel
    median colour. Returns the mean over tracks (None without such tracks) and the per-track
    values.
    """
    track_ids = np.asarray(track_ids, np.int64)
    colors = np.asarray(colors, np.float64).reshape(-1, 3)
    per: dict[int, float] = {}
    if track_ids.size:
        order = np.argsort(track_ids, kind="stable")
        tid, col = track_ids[order], colors[order]
        starts = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]])
        ends = np.r_[starts[1:], tid.size]
        for s, e in zip(starts, ends):
            if e - s < 2:
                continue
            c = col[s:e]
            med = np.median(c, axis=0)
            per[int(tid[s])] = float(np.mean(np.linalg.norm(c - med, axis=1) <= tol))
    return (float(np.mean(list(per.values()))) if per else None), per


# --------------------------------------------------------------------------- HOTA
def _compact_ids(seq: Sequence[Frame]) -> tuple[list[np.ndarray], int]:
    """Map a sequence's ids to 0..n-1 (per frame arrays) and check they are unique per frame."""
    all_ids = np.concatenate([np.asarray(ids, np.int64).reshape(-1) for ids, _ in seq]) if len(seq) else \
        np.zeros(0, np.int64)
    uniq = np.unique(all_ids)
    out = []
    for t, (ids, _) in enumerate(seq):
        ids = np.asarray(ids, np.int64).reshape(-1)
        if np.unique(ids).size != ids.size:
            raise ValueError(f"frame {t}: an id occurs twice")
        out.append(np.searchsorted(uniq, ids))
    return out, int(uniq.size)


def _check_pair(gt: Sequence[Frame], tr: Sequence[Frame]) -> None:
    if len(gt) != len(tr):
        raise ValueError(f"GT has {len(gt)} frames, the tracker {len(tr)}")


@dataclass
class HotaCounts:
    """Per-alpha sums of one or more sequences (combine by adding)."""

    tp: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    fn: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    fp: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))
    ass: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))  # sum of AssIoU over TPs
    loc: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHAS)))  # sum of IoU over TPs

    def __add__(self, other: "HotaCounts") -> "HotaCounts":
        return HotaCounts(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp, self.ass + other.ass,
                          self.loc + other.loc)


def hota_counts(gt: Sequence[Frame], tr: Sequence[Frame]) -> HotaCounts:
    """HOTA sums of one sequence (GT ``gt`` vs tracker ``tr``, IoU similarity)."""
    _check_pair(gt, tr)
    g_ids, n_g = _compact_ids(gt)
    t_ids, n_t = _compact_ids(tr)
    res = HotaCounts()
    sims = [box_iou(gb, tb) for (_, gb), (_, tb) in zip(gt, tr)]

    # Global alignment: how much each GT id and tracker id overlap over the whole sequence.
    potential = np.zeros((n_g, n_t))
    g_count = np.zeros((n_g, 1))
    t_count = np.zeros((1, n_t))
    for gi, ti, sim in zip(g_ids, t_ids, sims):
        if gi.size and ti.size:
            denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
            share = np.where(denom > _EPS, sim / np.where(denom > _EPS, denom, 1), 0.0)
            potential[gi[:, None], ti[None, :]] += share
        g_count[gi, 0] += 1
        t_count[0, ti] += 1
    align = potential / np.maximum(g_count + t_count - potential, _EPS)

    matches = np.zeros((len(ALPHAS), n_g, n_t))
    for gi, ti, sim in zip(g_ids, t_ids, sims):
        if gi.size == 0 or ti.size == 0:
            res.fn += gi.size
            res.fp += ti.size
            continue
        rows, cols = linear_assignment(align[gi[:, None], ti[None, :]] * sim)
        matched_sim = sim[rows, cols]
        for a, alpha in enumerate(ALPHAS):
            ok = matched_sim >= alpha - _EPS
            n = int(ok.sum())
            res.tp[a] += n
            res.fn[a] += gi.size - n
            res.fp[a] += ti.size - n
            if n:
                res.loc[a] += matched_sim[ok].sum()
                matches[a, gi[rows[ok]], ti[cols[ok]]] += 1
    for a in range(len(ALPHAS)):
        m = matches[a]
        ass_iou = m / np.maximum(1, g_count + t_count - m)
        res.ass[a] = float((m * ass_iou).sum())
    return res


def hota_summary(counts: HotaCounts | Iterable[HotaCounts]) -> dict:
    """HOTA, DetA, AssA, LocA (means over alphas) and the per-alpha HOTA curve."""
    if not isinstance(counts, HotaCounts):
        total = HotaCounts()
        for c in counts:
            total = total + c
        counts = total
    det_a = counts.tp / np.maximum(1, counts.tp + counts.fn + counts.fp)
    ass_a = counts.ass / np.maximum(1, counts.tp)
    loc_a = np.where(counts.tp > 0, counts.loc / np.maximum(1, counts.tp), 1.0)
    h = np.sqrt(det_a * ass_a)
    return {
        "hota": float(h.mean()), "deta": float(det_a.mean()), "assa": float(ass_a.mean()),
        "loca": float(loc_a.mean()), "hota_alpha": [float(x) for x in h],
        "hota_tp": float(counts.tp.mean()), "hota_fn": float(counts.fn.mean()), "hota_fp": float(counts.fp.mean()),
    }


def hota(gt: Sequence[Frame], tr: Sequence[Frame]) -> dict:
    """HOTA of one sequence; see :func:`hota_summary`."""
    return hota_summary(hota_counts(gt, tr))


# --------------------------------------------------------------------------- CLEAR MOT and Identity
def clear_counts(gt: Sequence[Frame], tr: Sequence[Frame], iou_threshold: float = 0.5) -> dict[str, float]:
    """CLEAR MOT counts of one sequence: ``tp, fn, fp, idsw, motp_sum, gt``.

    Each frame is matched by Hungarian on IoU >= ``iou_threshold``, preferring the pairs that
    were matched in the previous frame; an ID switch is a GT matched to a tracker id other than
    the last one it was matched to.
    """
    _check_pair(gt, tr)
    g_ids, n_g = _compact_ids(gt)
    t_ids, _ = _compact_ids(tr)
    last = np.full(n_g, -1, np.int64)  # last tracker id each GT was matched to, ever
    prev = np.full(n_g, -1, np.int64)  # tracker id each GT was matched to in the previous frame
    out = {"tp": 0.0, "fn": 0.0, "fp": 0.0, "idsw": 0.0, "motp_sum": 0.0, "gt": 0.0}
    for gi, ti, (_, gb), (_, tb) in zip(g_ids, t_ids, gt, tr):
        out["gt"] += gi.size
        if gi.size == 0 or ti.size == 0:
            out["fn"] += gi.size
            out["fp"] += ti.size
            prev[:] = -1
            continue
        sim = box_iou(gb, tb)
        score = 1000.0 * (ti[None, :] == prev[gi][:, None]) + sim
        score[sim < iou_threshold - _EPS] = 0
        rows, cols = linear_assignment(score)
        ok = score[rows, cols] > _EPS
        rows, cols = rows[ok], cols[ok]
        mg, mt = gi[rows], ti[cols]
        out["idsw"] += int(((last[mg] >= 0) & (last[mg] != mt)).sum())
        last[mg] = mt
        prev[:] = -1
        prev[mg] = mt
        out["tp"] += rows.size
        out["fn"] += gi.size - rows.size
        out["fp"] += ti.size - rows.size
        out["motp_sum"] += float(sim[rows, cols].sum())
    return out


def identity_counts(gt: Sequence[Frame], tr: Sequence[Frame], iou_threshold: float = 0.5) -> dict[str, float]:
    """Identity counts of one sequence: ``idtp, idfn, idfp`` (one global GT <-> tracker id matching
    that maximises the frames where matched ids overlap at IoU >= ``iou_threshold``)."""
    _check_pair(gt, tr)
    g_ids, n_g = _compact_ids(gt)
    t_ids, n_t = _compact_ids(tr)
    overlap = np.zeros((n_g, n_t))
    total_g = total_t = 0
    for gi, ti, (_, gb), (_, tb) in zip(g_ids, t_ids, gt, tr):
        total_g += gi.size
        total_t += ti.size
        if gi.size and ti.size:
            r, c = np.nonzero(box_iou(gb, tb) >= iou_threshold - _EPS)
            overlap[gi[r], ti[c]] += 1
    rows, cols = linear_assignment(overlap)
    idtp = float(overlap[rows, cols].sum())
    return {"idtp": idtp, "idfn": total_g - idtp, "idfp": total_t - idtp}


def _own_mot_metrics(seqs: Sequence[tuple[Sequence[Frame], Sequence[Frame]]], iou_threshold: float) -> list[dict]:
    rows = []
    for gt, tr in seqs:
        c = clear_counts(gt, tr, iou_threshold)
        i = identity_counts(gt, tr, iou_threshold)
        rows.append({**c, **i})
    return rows


def _mot_row(c: dict) -> dict:
    gt = c["tp"] + c["fn"]
    idd = 2 * c["idtp"] + c["idfp"] + c["idfn"]
    return {
        "mota": (1.0 - (c["fn"] + c["fp"] + c["idsw"]) / gt) if gt else None,
        "idf1": (2 * c["idtp"] / idd) if idd else None,
        "motp": (c["motp_sum"] / c["tp"]) if c["tp"] else None,
        "id_switches": int(c["idsw"]),
    }


def _motmetrics(seqs: Sequence[tuple[Sequence[Frame], Sequence[Frame]]], iou_threshold: float
                ) -> tuple[list[dict], dict]:
    import motmetrics as mm

    accs, names = [], []
    for k, (gt, tr) in enumerate(seqs):
        acc = mm.MOTAccumulator(auto_id=True)
        for (gid, gb), (tid, tb) in zip(gt, tr):
            iou = box_iou(gb, tb)
            dist = np.where(iou >= iou_threshold - _EPS, 1.0 - iou, np.nan)
            acc.update(np.asarray(gid).tolist(), np.asarray(tid).tolist(), dist)
        accs.append(acc)
        names.append(str(k))
    mh = mm.metrics.create()
    df = mh.compute_many(accs, names=names, metrics=["mota", "idf1", "motp", "num_switches", "num_objects"],
                         generate_overall=True)

    def row(name: str) -> dict:
        r = df.loc[name]
        n_obj = float(r["num_objects"])
        idf1 = float(r["idf1"])
        motp = float(r["motp"])
        return {"mota": float(r["mota"]) if n_obj else None,
                "idf1": idf1 if np.isfinite(idf1) else None,
                "motp": (1.0 - motp) if np.isfinite(motp) else None,  # motmetrics reports the distance
                "id_switches": int(r["num_switches"])}

    return [row(n) for n in names], row("OVERALL")


def mot_metrics(seqs: Sequence[tuple[Sequence[Frame], Sequence[Frame]]], iou_threshold: float = 0.5,
                backend: str = "auto") -> dict:
    """MOTA, IDF1, MOTP (mean IoU of matches) and ID switches per sequence and overall.

    ``seqs`` is a list of ``(gt, tracker)`` sequences. ``backend``: ``own`` (also what ``auto``
    means) or ``motmetrics`` (a cross-check; raises ImportError when it is not installed).
    Returns ``{"backend", "overall", "per_sequence"}``.
    """
    if backend not in ("auto", "motmetrics", "own"):
        raise ValueError(f"unknown backend {backend!r}")
    if backend == "auto":
        backend = "own"
    if backend == "motmetrics" and len(seqs):
        per, overall = _motmetrics(seqs, iou_threshold)
        return {"backend": "motmetrics", "overall": overall, "per_sequence": per}
    counts = _own_mot_metrics(seqs, iou_threshold)
    total = {k: sum(c[k] for c in counts) for k in ("tp", "fn", "fp", "idsw", "motp_sum", "gt", "idtp", "idfn",
                                                     "idfp")}
    return {"backend": "own", "overall": _mot_row(total), "per_sequence": [_mot_row(c) for c in counts]}
