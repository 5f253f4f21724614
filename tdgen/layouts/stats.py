"""What the density and sampling transforms learn from the source set: per-category statistics.

Positions are fractions of the frame (x of its width, y of its height); sizes and velocities are
fractions of the frame height (so a box keeps its aspect ratio in a video of another shape).
Only tracking targets count (:meth:`Layout.targets`). :func:`seen` and :func:`seen_runs` follow the shared
definition of *seen* (a box with visibility >= 0.25, or none given).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .boxes import Layout

__all__ = ["CategoryStats", "SetStats", "fit_stats", "seen", "seen_runs", "MIN_VISIBILITY"]

MIN_VISIBILITY = 0.25


def seen(lay: Layout) -> np.ndarray:
    """Per box: the track is seen there (visibility >= 0.25, NaN counts as seen)."""
    return ~(lay.vis < MIN_VISIBILITY)


def seen_runs(lay: Layout, rows: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs ``(first, last)`` of consecutive frames where the track of ``rows`` is seen."""
    t = np.sort(lay.t[rows][~(lay.vis[rows] < MIN_VISIBILITY)])
    if t.size == 0:
        return []
    cut = np.flatnonzero(np.diff(t) > 1)
    starts = np.concatenate([[0], cut + 1])
    ends = np.concatenate([cut, [t.size - 1]])
    return [(int(t[s]), int(t[e])) for s, e in zip(starts, ends)]


@dataclass
class CategoryStats:
    """The empirical pieces of one category (arrays, one row per box or per track) and the
    constant-velocity model fitted on them."""

    sizes: np.ndarray  # (B, 2) w, h / frame height, every box
    lifetimes: np.ndarray  # (T,) frames from first to last box
    velocities: np.ndarray  # (T, 2) mean centre velocity / frame height per frame
    entries: np.ndarray  # (T, 2) first box's centre x / width, bottom y / height
    exits: np.ndarray  # (T, 2) last box's, the same
    # constant velocity with noise, fitted
    v_mean: np.ndarray = field(default_factory=lambda: np.zeros(2))
    v_cov: np.ndarray = field(default_factory=lambda: np.eye(2) * 1e-6)
    accel_std: float = 0.0  # per-frame velocity noise / frame height
    log_h: tuple[float, float] = (0.0, 0.0)  # mean, std of log(h / frame height)
    log_aspect: tuple[float, float] = (0.0, 0.0)  # mean, std of log(w / h)
    log_h_step: float = 0.0  # std of the per-frame change of log h
    log_life: tuple[float, float] = (0.0, 0.0)
    entry_mean: np.ndarray = field(default_factory=lambda: np.full(2, 0.5))
    entry_cov: np.ndarray = field(default_factory=lambda: np.eye(2) * 0.01)


@dataclass
class SetStats:
    """Per-category statistics of a set, and how often each category's tracks occur."""

    categories: dict[int, CategoryStats]
    track_counts: dict[int, int]

    def pick_category(self, rng: np.random.Generator, among: np.ndarray | None = None) -> int:
        """A category drawn with the frequency of its tracks (restricted to ``among`` if any of it is known)."""
        cats = sorted(self.categories)
        if among is not None:
            local = [c for c in cats if c in set(among.tolist())]
            cats = local or cats
        p = np.array([self.track_counts[c] for c in cats], dtype=np.float64)
        return int(cats[int(rng.choice(len(cats), p=p / p.sum()))])


def _robust_std(x: np.ndarray) -> float:
    """Median absolute deviation scaled to a normal's std: annotation jitter and id switches barely move it."""
    if x.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def fit_stats(lay: Layout) -> SetStats:
    """Per-category statistics of ``lay``'s ordinary boxes (categories with no track are absent)."""
    sub = lay.take(np.flatnonzero(lay.targets()))
    H = sub.height[sub.video]
    W = sub.width[sub.video]
    x, y, w, h = sub.bbox.T
    cx, bottom = x + w / 2, y + h
    order = np.lexsort((sub.t, sub.track))
    cats: dict[int, CategoryStats] = {}
    counts: dict[int, int] = {}
    tr = sub.track[order]
    bounds = np.flatnonzero(np.concatenate([[True], tr[1:] != tr[:-1], [True]]))
    per_cat: dict[int, dict[str, list]] = {}
    for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        r = order[s:e]
        c = int(sub.category[r[0]])
        d = per_cat.setdefault(c, {"life": [], "vel": [], "entry": [], "exit": [], "acc": [], "dlogh": []})
        t = sub.t[r]
        hh = H[r]
        d["life"].append(int(t[-1] - t[0] + 1))
        d["entry"].append((cx[r[0]] / W[r[0]], bottom[r[0]] / hh[0]))
        d["exit"].append((cx[r[-1]] / W[r[-1]], bottom[r[-1]] / hh[-1]))
        step = np.diff(t) == 1
        if step.any():
            vx = np.diff(cx[r])[step] / hh[1:][step]
            vy = np.diff(y[r] + h[r] / 2)[step] / hh[1:][step]
            d["vel"].append((float(vx.mean()), float(vy.mean())))
            d["dlogh"].append(np.diff(np.log(h[r]))[step])
            v = np.diff(cx[r]) / hh[1:]
            both = step[1:] & step[:-1]  # two steps in a row: a change of velocity
            d["acc"].append(np.diff(v)[both])
        else:
            d["vel"].append((0.0, 0.0))
    for c, d in per_cat.items():
        sel = sub.category == c
        sizes = np.stack([w[sel] / H[sel], h[sel] / H[sel]], axis=1)
        vel = np.asarray(d["vel"], dtype=np.float64).reshape(-1, 2)
        entries = np.asarray(d["entry"], dtype=np.float64).reshape(-1, 2)
        lifetimes = np.asarray(d["life"], dtype=np.int64)
        acc = np.concatenate(d["acc"]) if d["acc"] else np.zeros(0)
        dlogh = np.concatenate(d["dlogh"]) if d["dlogh"] else np.zeros(0)
        logh = np.log(sizes[:, 1])
        loga = np.log(sizes[:, 0] / sizes[:, 1])
        st = CategoryStats(sizes=sizes, lifetimes=lifetimes, velocities=vel, entries=entries,
                           exits=np.asarray(d["exit"], dtype=np.float64).reshape(-1, 2))
        st.v_mean = vel.mean(axis=0)
        st.v_cov = np.cov(vel.T) + np.eye(2) * 1e-8 if len(vel) > 1 else np.eye(2) * 1e-6
        st.accel_std = _robust_std(acc)
        st.log_h = (float(logh.mean()), float(logh.std()))
        st.log_aspect = (float(loga.mean()), float(loga.std()))
        st.log_h_step = _robust_std(dlogh)
        ll = np.log(lifetimes.astype(np.float64))
        st.log_life = (float(ll.mean()), float(ll.std()))
        st.entry_mean = entries.mean(axis=0)
        st.entry_cov = np.cov(entries.T) + np.eye(2) * 1e-6 if len(entries) > 1 else np.eye(2) * 0.01
        cats[c] = st
        counts[c] = int(lifetimes.size)
    return SetStats(categories=cats, track_counts=counts)
