"""Layout statistics of a TrackSet: the hard cases of tracking (occlusions, crossings, gaps, motion).

:func:`layout_stats` measures what makes a set hard to track, so that ``tdgen inspect`` can show
it and ``tdgen inspect A --compare B`` can tell what a layout transform changed. Every quantity
is computed on columns (numpy only); no loop runs per box, per track or per frame: 600,000
boxes take about a second on one core.

Definitions (docs/layout_stats.md says the same, with examples):

- Only ordinary boxes count: crowd / ignore boxes (``iscrowd``) and boxes with a non-finite or
  non-positive width or height are left out of everything below, including ``boxes``.
- A track is **seen** in a frame when it has a box there with ``visibility >= min_visibility``
  (0.25); a box without a visibility value (no column, or NaN) is seen.
- A track's **life** runs from its first to its last seen frame; ``track_length`` is that span in
  frames (inclusive), over the tracks seen at least once.
- A **gap** is a maximal run of one or more frames inside a track's life where the track is not
  seen (no box, or a box below ``min_visibility``). Each gap ends in a **re-appearance**, so the
  two are counted alike: ``gaps`` in the set, ``reappearances_per_video = gaps / videos``.
  ``gap_length`` is a gap's length in frames.
- A **step** is a track seen in two consecutive frames ``t`` and ``t + 1``. ``speed`` is the
  distance its box centre moves in a step (pixels per frame); ``relative_speed`` divides it by
  the box size (the geometric mean of the two boxes' sizes, so reversing time changes nothing);
  ``scale_change`` is ``|log(size(t + 1) / size(t))|``.
- **Box size** is ``sqrt(w * h)`` in pixels; ``box_size`` gives its median, quartiles, IQR and
  count per category (every ordinary box, seen or not: the box is the object's full extent).
- A **crossing** is an unordered pair of tracks of one video, both seen in frames ``t`` and
  ``t + 1``, whose horizontal centre order flips strictly between ``t`` and ``t + 1`` (the sign of
  ``cx_a - cx_b`` goes from + to - or back; equal centres are no order) while their boxes'
  vertical extents overlap (by more than zero pixels) at ``t`` or at ``t + 1``. Each such
  (pair, t) is one crossing: a pair that crosses twice counts twice.
- An **occlusion pair** is an unordered pair of seen boxes in one frame whose intersection covers
  at least ``min_overlap`` (0.1) of the smaller box's area. Intersection over the smaller box,
  not IoU: a small person half hidden by a big one is an occlusion although their IoU is small.
- ``..._per_frame`` divides by every frame of the set (frames without boxes included).
- Each distribution is summarised by its median and 90th percentile (``None`` when empty).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .trackset import TrackSet

__all__ = ["layout_stats", "compare_stats", "MIN_VISIBILITY", "MIN_OVERLAP"]

MIN_VISIBILITY = 0.25
MIN_OVERLAP = 0.1

# Most candidate pairs materialised at once (index arrays of this many pairs: ~100 MB at most).
_PAIR_BUDGET = 4_000_000


def _r(x: float) -> float:
    return round(float(x), 4)


def _median_p90(x: np.ndarray) -> dict[str, float | None]:
    if x.size == 0:
        return {"median": None, "p90": None}
    q = np.percentile(x, [50, 90])
    return {"median": _r(q[0]), "p90": _r(q[1])}


def _quartiles(x: np.ndarray) -> dict[str, float | int]:
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return {"median": _r(med), "q1": _r(q1), "q3": _r(q3), "iqr": _r(q3 - q1), "count": int(x.size)}


def _overlap_pairs(group: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every unordered pair ``(i, j)`` of rows with the same ``group`` whose ``[lo, hi]`` intervals meet.

    A sweep along one axis: rows sorted by (group, lo) become one increasing float key, so a
    single ``searchsorted`` finds for each row the last row whose ``lo`` is at most its ``hi``.
    Only those candidates are materialised (in chunks), never all pairs of a crowded frame. The
    test is closed and slightly widened, so it yields a superset of the strictly overlapping
    pairs; callers apply their exact test.
    """
    n = group.size
    if n < 2:
        return
    base = float(lo.min())
    span = float(hi.max()) - base + 2.0  # > any hi - base: a group's keys never reach the next one's
    order = np.lexsort((lo, group))
    g = group[order].astype(np.float64) * span
    klo = g + (lo[order] - base)
    khi = g + (hi[order] - base) + 1e-3
    end = np.searchsorted(klo, khi, side="right")
    pos = np.arange(n)
    count = np.maximum(end - pos - 1, 0)
    cum = np.cumsum(count)
    start = 0
    while start < n:
        # the chunk [start, stop) holds at most _PAIR_BUDGET pairs (or one row, whatever it holds)
        done = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, done + _PAIR_BUDGET, side="right")), start + 1)
        c = count[start:stop]
        total = int(c.sum())
        if total:
            i = np.repeat(pos[start:stop], c)
            within = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            yield order[i], order[i + 1 + within]
        start = stop


def layout_stats(tracks: TrackSet, *, min_visibility: float = MIN_VISIBILITY,
                 min_overlap: float = MIN_OVERLAP) -> dict[str, Any]:
    """Occlusions, crossings, gaps, motion and box sizes of ``tracks`` as a JSON-ready dict.

    The definitions are the module docstring's. Keys: ``videos``, ``frames``, ``tracks``,
    ``boxes``, ``seen_boxes``, ``occlusion_pairs``, ``occlusion_pairs_per_frame``, ``crossings``,
    ``crossings_per_frame``, ``gaps``, ``tracks_with_gaps``, ``reappearances_per_video``,
    ``gap_length``, ``speed``, ``relative_speed``, ``scale_change``, ``track_length`` (each
    ``{"median", "p90"}``), ``box_size`` (category name -> ``{"median", "q1", "q3", "iqr",
    "count"}``) and ``params`` (the thresholds used).
    """
    b = tracks.boxes
    bbox = b.bbox
    w, h = bbox[:, 2], bbox[:, 3]
    ok = (b.iscrowd == 0) & np.isfinite(bbox).all(axis=1) & (w > 0) & (h > 0)
    rows = np.flatnonzero(ok)
    x, y, w, h = (bbox[rows, k] for k in range(4))
    size = np.sqrt(w * h)
    track = b.track[rows]
    frame_row = b.frame[rows]
    fidx = tracks.frames.index[frame_row]
    if b.visibility is None:
        seen = np.ones(rows.size, bool)
    else:
        vis = b.visibility[rows]
        seen = ~(vis < min_visibility)  # NaN (no value) counts as seen

    num_frames = tracks.num_frames
    num_videos = tracks.num_videos

    # ---- box sizes per category (every ordinary box)
    names = tracks.category_names()
    box_size: dict[str, dict] = {}
    cat = b.category[rows]
    if rows.size:
        order = np.argsort(cat, kind="stable")
        cats, starts = np.unique(cat[order], return_index=True)
        for c, part in zip(cats.tolist(), np.split(size[order], starts[1:])):
            key = names.get(int(c), f"category {c}")
            if key in box_size:  # two categories share a name: keep both apart
                key = f"{key} ({c})"
            box_size[key] = _quartiles(part)

    # ---- seen boxes, one per (track, frame), sorted by track then frame index
    s = np.flatnonzero(seen)
    s = s[np.lexsort((fidx[s], track[s]))]
    if s.size > 1:
        dup = (track[s][1:] == track[s][:-1]) & (fidx[s][1:] == fidx[s][:-1])
        s = s[np.concatenate([[True], ~dup])]
    st, sf = track[s], fidx[s]
    same = st[1:] == st[:-1]
    jump = np.diff(sf)

    # ---- lives and gaps
    if s.size:
        first = np.concatenate([[True], ~same])
        last = np.concatenate([~same, [True]])
        life = sf[last] - sf[first] + 1
    else:
        life = np.zeros(0, np.int64)
    gap_at = same & (jump > 1)
    gap_len = jump[gap_at] - 1
    gaps = int(gap_len.size)
    tracks_with_gaps = int(np.unique(st[1:][gap_at]).size)

    # ---- steps: seen at t (row a) and t + 1 (row c)
    step = same & (jump == 1)
    a, c = s[:-1][step], s[1:][step]
    cxa, cya = x[a] + w[a] / 2, y[a] + h[a] / 2
    cxc, cyc = x[c] + w[c] / 2, y[c] + h[c] / 2
    speed = np.hypot(cxc - cxa, cyc - cya)
    step_size = np.sqrt(size[a] * size[c])
    relative_speed = speed / step_size
    scale_change = np.abs(np.log(size[c] / size[a]))

    # ---- crossings: pairs of steps from the same frame t whose centre order flips
    crossings = 0
    if a.size > 1:
        lo, hi = np.minimum(cxa, cxc), np.maximum(cxa, cxc)  # a flip needs these to overlap
        ya0, ya1, yc0, yc1 = y[a], y[a] + h[a], y[c], y[c] + h[c]
        for i, j in _overlap_pairs(frame_row[a], lo, hi):
            flip = (cxa[i] - cxa[j]) * (cxc[i] - cxc[j]) < 0
            vert_t = np.minimum(ya1[i], ya1[j]) > np.maximum(ya0[i], ya0[j])
            vert_t1 = np.minimum(yc1[i], yc1[j]) > np.maximum(yc0[i], yc0[j])
            crossings += int(np.count_nonzero(flip & (vert_t | vert_t1)))

    # ---- occlusion pairs: seen boxes of one frame covering >= min_overlap of the smaller one
    occlusion_pairs = 0
    if s.size > 1:
        x0, x1, y0, y1 = x[s], x[s] + w[s], y[s], y[s] + h[s]
        area = w[s] * h[s]
        for i, j in _overlap_pairs(frame_row[s], x0, x1):
            iw = np.minimum(x1[i], x1[j]) - np.maximum(x0[i], x0[j])
            ih = np.minimum(y1[i], y1[j]) - np.maximum(y0[i], y0[j])
            inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
            hit = (inter > 0) & (inter >= min_overlap * np.minimum(area[i], area[j]))
            occlusion_pairs += int(np.count_nonzero(hit))

    per_frame = (lambda n: _r(n / num_frames)) if num_frames else (lambda n: 0.0)
    return {
        "videos": num_videos,
        "frames": num_frames,
        "tracks": int(np.unique(track).size),
        "boxes": int(rows.size),
        "seen_boxes": int(s.size),
        "occlusion_pairs": occlusion_pairs,
        "occlusion_pairs_per_frame": per_frame(occlusion_pairs),
        "crossings": crossings,
        "crossings_per_frame": per_frame(crossings),
        "gaps": gaps,
        "tracks_with_gaps": tracks_with_gaps,
        "reappearances_per_video": _r(gaps / num_videos) if num_videos else 0.0,
        "gap_length": _median_p90(gap_len),
        "speed": _median_p90(speed),
        "relative_speed": _median_p90(relative_speed),
        "scale_change": _median_p90(scale_change),
        "track_length": _median_p90(life),
        "box_size": box_size,
        "params": {"min_visibility": min_visibility, "min_overlap": min_overlap},
    }


def _ratio(a: Any, b: Any) -> Any:
    if isinstance(a, dict) or isinstance(b, dict):
        a = a if isinstance(a, dict) else {}
        b = b if isinstance(b, dict) else {}
        return {k: _ratio(a.get(k), b.get(k)) for k in {**a, **b}}
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool) and a:
        return _r(b / a)
    return None


def compare_stats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """B/A at every number of two :func:`layout_stats` dicts, in their shape (union of keys).

    A value is ``None`` where A is 0 or either side lacks a number (a category only one set has,
    a distribution one set cannot measure). ``params`` and text values are left out.
    """
    keys = [k for k in {**a, **b} if k != "params"
            and (isinstance(a.get(k), (int, float, dict)) or isinstance(b.get(k), (int, float, dict)))]
    return {k: _ratio(a.get(k), b.get(k)) for k in keys}
