"""The layout transforms: small pure functions ``(Layout, rng, Context, **params) -> Layout``.

Each reads a :class:`~tdgen.layouts.boxes.Layout`, draws any randomness from the
``numpy.random.Generator`` it is given, and returns a new Layout (the input is never changed).
:data:`TRANSFORMS` lists them with their parameters (name, kind, default, allowed range, help),
which recipes are checked against and ``tdgen layouts --help`` prints. The caller runs
:func:`~tdgen.layouts.boxes.normalize` after each one (clipping, 1 px minimum, one box per track
and frame) and the depth-order visibility once at the end.

Counts of things to add (``hide``, ``cross``, ``crowd``, ``sample``) are ``count + ratio * base``
per video, where *base* is the source video's own count (re-appearances, crossings, tracks),
rounded at random to a whole number so that the expectation is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from .boxes import Layout
from .stats import SetStats, seen_runs

__all__ = ["Context", "Param", "TransformSpec", "TRANSFORMS"]


@dataclass
class Donor:
    """A source track that ``cross`` may copy: its frames and bottom-centre path."""

    t: np.ndarray
    cx: np.ndarray
    bottom: np.ndarray
    w: np.ndarray
    h: np.ndarray
    category: int
    record: dict[str, Any]


@dataclass
class Context:
    """What a transform may know besides the video it changes.

    ``stats``: the source set's per-category statistics; ``donors``: tracks ``cross`` may copy;
    ``base``: per video row of the Layout being changed, the source video's counts
    (``reappearances``, ``crossings``, ``tracks``).
    """

    stats: SetStats
    donors: list[Donor] = field(default_factory=list)
    base: list[dict[str, int]] = field(default_factory=list)

    def with_base(self, base: list[dict[str, int]]) -> "Context":
        return replace(self, base=base)


@dataclass(frozen=True)
class Param:
    """One parameter of a transform: ``kind`` is ``float``, ``int`` or ``bool``; numbers must lie
    in ``[lo, hi]`` (``hi_open``: strictly below ``hi``). A number may also be given as a range
    ``[a, b]``: drawn uniformly for each copy (``per_item``: for each track the transform adds or
    changes)."""

    name: str
    kind: str
    default: Any
    lo: float | None = None
    hi: float | None = None
    help: str = ""
    hi_open: bool = False
    per_item: bool = False

    def describe(self) -> str:
        if self.kind == "bool":
            rng = "true|false"
        else:
            rng = f"[{_fmt(self.lo)}, {_fmt(self.hi)}{')' if self.hi_open else ']'}"
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        return f"{self.name}={_fmt(default)} {rng}: {self.help}"


def _fmt(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return str(x)


@dataclass(frozen=True)
class TransformSpec:
    name: str
    fn: Callable[..., Layout]
    params: tuple[Param, ...]
    help: str


def _stoch_round(x: float, rng: np.random.Generator) -> int:
    """``x`` rounded down or up at random, so that the mean is ``x``."""
    base = int(np.floor(x))
    return base + int(rng.random() < x - base)


def _videos(lay: Layout) -> range:
    return range(int(lay.nframes.size))


def _track_rows(lay: Layout, rows: np.ndarray) -> list[np.ndarray]:
    """``rows`` grouped by track (each group sorted by frame), groups in track-id order."""
    order = rows[np.lexsort((lay.t[rows], lay.track[rows]))]
    tr = lay.track[order]
    cut = np.flatnonzero(tr[1:] != tr[:-1]) + 1
    return np.split(order, cut) if order.size else []


def _base(ctx: Context, v: int, key: str) -> int:
    return int(ctx.base[v][key]) if v < len(ctx.base) else 0


# --------------------------------------------------------------------------- geometric
def mirror(lay: Layout, rng: np.random.Generator, ctx: Context) -> Layout:
    """Horizontal mirror: ``x -> W - x - w``."""
    bbox = lay.bbox.copy()
    bbox[:, 0] = lay.width[lay.video] - bbox[:, 0] - bbox[:, 2]
    return replace(lay, bbox=bbox)


def reverse(lay: Layout, rng: np.random.Generator, ctx: Context) -> Layout:
    """Time reversal: frame ``t -> n - 1 - t``."""
    return replace(lay, t=lay.nframes[lay.video] - 1 - lay.t)


def speed(lay: Layout, rng: np.random.Generator, ctx: Context, factor: float = 2.0) -> Layout:
    """Play ``factor`` times faster: new frame ``t'`` shows source time ``t' * factor``, each box
    linearly interpolated between the two source frames around it (a track's gaps stay gaps)."""
    nframes = np.floor((lay.nframes - 1) / factor + 1e-9).astype(np.int64) + 1
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("video", "t", "bbox", "track", "category", "vis", "conf",
                                                          "iscrowd")}
    for rows in _track_rows(lay, np.arange(len(lay))):
        t = lay.t[rows]
        new_t = np.arange(int(np.ceil(t[0] / factor - 1e-9)), int(np.floor(t[-1] / factor + 1e-9)) + 1)
        s = new_t * factor
        i = np.clip(np.searchsorted(t, np.floor(s + 1e-9), side="right") - 1, 0, t.size - 1)
        j = np.minimum(i + 1, t.size - 1)
        frac = s - t[i]
        exact = np.abs(frac) < 1e-9
        ok = exact | ((t[j] - t[i] == 1) & (frac > 0) & (frac < 1))  # both neighbours present
        i, j, frac, new_t = i[ok], j[ok], np.where(exact[ok], 0.0, frac[ok]), new_t[ok]
        ri, rj = rows[i], rows[j]
        f = frac[:, None]
        parts["bbox"].append(lay.bbox[ri] * (1 - f) + lay.bbox[rj] * f)
        vi, vj = lay.vis[ri], lay.vis[rj]
        parts["vis"].append(np.where(np.isnan(vi) | np.isnan(vj), vi, vi * (1 - frac) + vj * frac))
        parts["conf"].append(np.where(frac < 0.5, lay.conf[ri], lay.conf[rj]))
        parts["t"].append(new_t)
        for k in ("video", "track", "category", "iscrowd"):
            parts[k].append(getattr(lay, k)[ri])
    if not parts["t"]:
        return replace(lay, nframes=nframes)
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    return replace(lay, nframes=nframes, **cols)


def zoom(lay: Layout, rng: np.random.Generator, ctx: Context, scale: float = 1.25) -> Layout:
    """Zoom about the frame centre: positions and sizes times ``scale`` (> 1 zooms in)."""
    W, H = lay.width[lay.video], lay.height[lay.video]
    x, y, w, h = lay.bbox.T
    bbox = np.stack([W / 2 + (x - W / 2) * scale, H / 2 + (y - H / 2) * scale, w * scale, h * scale], axis=1)
    return replace(lay, bbox=bbox)


def pan(lay: Layout, rng: np.random.Generator, ctx: Context, dx: float = 0.2, dy: float = 0.0) -> Layout:
    """A camera pan: over the video the camera turns by ``dx`` frame widths right and ``dy``
    heights down at constant speed, so every box drifts the other way."""
    n = lay.nframes[lay.video]
    ramp = np.where(n > 1, lay.t / np.maximum(n - 1, 1), 0.0)
    bbox = lay.bbox.copy()
    bbox[:, 0] -= dx * lay.width[lay.video] * ramp
    bbox[:, 1] -= dy * lay.height[lay.video] * ramp
    return replace(lay, bbox=bbox)


def shake(lay: Layout, rng: np.random.Generator, ctx: Context, amplitude: float = 0.02,
          smooth: float = 0.8) -> Layout:
    """Camera shake: every box of a frame moves by one camera offset, a smooth random walk
    (AR(1) with coefficient ``smooth``) whose typical size is ``amplitude`` frame heights."""
    bbox = lay.bbox.copy()
    for v in _videos(lay):
        n = int(lay.nframes[v])
        noise = rng.normal(size=(n, 2)) * np.sqrt(1 - smooth ** 2)
        off = np.zeros((n, 2))
        if n:
            off[0] = rng.normal(size=2)
        for t in range(1, n):
            off[t] = smooth * off[t - 1] + noise[t]
        off *= amplitude * lay.height[v]
        rows = np.flatnonzero(lay.video == v)
        bbox[rows, 0] += off[lay.t[rows], 0]
        bbox[rows, 1] += off[lay.t[rows], 1]
    return replace(lay, bbox=bbox)


# --------------------------------------------------------------------------- identity and occlusion
def hide(lay: Layout, rng: np.random.Generator, ctx: Context, k: tuple[int, int] = (5, 20), count: int = 0,
         ratio: float = 1.0) -> Layout:
    """Hide tracks for ``k`` frames, then let them re-appear: their boxes in those frames are
    removed. Each hidden run sits inside a run of frames where the track is seen, with a seen
    frame before and after it, so every hide adds one re-appearance. One hide per track."""
    origin = lay.copy_origin()
    drop = np.zeros(len(lay), bool)
    for v in _videos(lay):
        want = count + _stoch_round(ratio * _base(ctx, v, "reappearances"), rng)
        if want <= 0:
            continue
        groups = _track_rows(lay, np.flatnonzero((lay.video == v) & lay.targets()))
        done = 0
        for g in rng.permutation(len(groups)).tolist():
            if done >= want:
                break
            rows = groups[g]
            kk = int(rng.integers(k[0], k[1] + 1))
            runs = [(a, b) for a, b in seen_runs(lay, rows) if b - a + 1 >= kk + 2]
            if not runs:
                continue
            lengths = np.array([b - a + 1 - kk - 1 for a, b in runs], dtype=np.float64)
            a, b = runs[int(rng.choice(len(runs), p=lengths / lengths.sum()))]
            start = int(rng.integers(a + 1, b - kk + 1))  # frames start..start+kk-1 go; a and b stay
            drop[rows[(lay.t[rows] >= start) & (lay.t[rows] < start + kk)]] = True
            tid = int(lay.track[rows[0]])
            origin[tid]["ops"].append({"hide": {"from_frame": start, "frames": kk}})
            done += 1
    out = lay.take(np.flatnonzero(~drop))
    out.origin = {t: origin[t] for t in out.origin}
    return out


def cross(lay: Layout, rng: np.random.Generator, ctx: Context, count: int = 0, ratio: float = 1.0,
          same_category: bool = True, offset: tuple[float, float] = (0.35, 0.6),
          frames: tuple[int, int] = (16, 48), max_cover: float = 0.5) -> Layout:
    """Insert crossings: a track copied from the source set (another video or the same one) is
    re-timed, scaled to the target's height and shifted so that its centre passes the target's
    between two frames where the target is seen, its horizontal motion mirrored when that makes
    the crossing faster. Its bottom edge sits ``offset`` target heights above or below the
    target's (at random), so the two overlap vertically and one is in front: the depth order
    then records the occlusion as visibility. Only ``frames`` frames of the copy, centred on the
    crossing, are kept: a crossing is a local event, and a whole copied track would cross (and
    hide) much else. A placement where the copy and a track other than its target cover more
    than ``max_cover`` of the smaller box in some frame is refused (another donor is tried, up
    to 8), so the inserted event is the crossing, not a pile-up."""
    out = lay
    donors = ctx.donors
    if not donors:
        return lay
    by_cat: dict[int, list[int]] = {}
    for i, d in enumerate(donors):
        by_cat.setdefault(d.category, []).append(i)
    for v in _videos(lay):
        want = count + _stoch_round(ratio * _base(ctx, v, "crossings"), rng)
        if want <= 0:
            continue
        n = int(lay.nframes[v])
        groups = _track_rows(lay, np.flatnonzero((lay.video == v) & lay.targets()))
        targets = []  # (rows, frames t where seen at t and t + 1)
        for rows in groups:
            runs = seen_runs(lay, rows)
            steps = np.concatenate([np.arange(a, b) for a, b in runs]) if runs else np.zeros(0, np.int64)
            if steps.size:
                targets.append((rows, steps))
        if not targets:
            continue
        for _ in range(want):
            rows, steps = targets[int(rng.integers(len(targets)))]
            tc = int(steps[int(rng.integers(steps.size // 4, max(steps.size - steps.size // 4, steps.size // 4 + 1)))])
            by_t = {int(t): r for t, r in zip(lay.t[rows].tolist(), rows.tolist())}
            r0, r1 = by_t[tc], by_t[tc + 1]
            (x0, y0, w0, h0), (x1, _, w1, _) = lay.bbox[r0], lay.bbox[r1]
            cxa, cxb, bot = x0 + w0 / 2, x1 + w1 / 2, y0 + h0
            cat = int(lay.category[r0])
            tid = int(lay.track[r0])
            rec = lay.origin.get(tid, {})
            pool = by_cat.get(cat) if same_category and by_cat.get(cat) else list(range(len(donors)))
            for _attempt in range(8):
                d = donors[pool[int(rng.integers(len(pool)))]]
                if (d.record.get("source_video") == rec.get("source_video")
                        and d.record.get("source_track_id") == rec.get("source_track_id")):
                    continue  # not the target itself
                dsteps = np.flatnonzero(np.diff(d.t) == 1)
                if dsteps.size == 0:
                    continue
                q = int(dsteps[int(rng.integers(dsteps.size // 4, max(dsteps.size - dsteps.size // 4,
                                                                       dsteps.size // 4 + 1)))])
                s = float(np.clip(h0 / d.h[q], 0.5, 2.0))
                dd = (d.cx[q + 1] - d.cx[q]) * s
                dt = cxb - cxa
                flip = -1.0 if abs(-dd - dt) > abs(dd - dt) else 1.0
                if abs(flip * dd - dt) < 0.5:
                    continue  # the two move alike: no crossing in one frame
                centre = (cxa + cxb - flip * dd) / 2  # the donor's centre at tc: the order flips at tc + 1/2
                side = 1.0 if rng.random() < 0.5 else -1.0
                off = float(rng.uniform(offset[0], offset[1]))
                base_bottom = bot + side * off * h0
                t = d.t - d.t[q] + tc
                span = int(rng.integers(frames[0], frames[1] + 1))
                lo = tc - span // 2
                # only the donor's unbroken run around q: its own gaps are not this crossing's
                brk = np.flatnonzero(np.diff(d.t) != 1)
                run0 = int(brk[brk < q].max()) + 1 if np.any(brk < q) else 0
                run1 = int(brk[brk >= q].min()) if np.any(brk >= q) else d.t.size - 1
                idx = np.arange(d.t.size)
                keep = (t >= max(lo, 0)) & (t < min(lo + span, n)) & (idx >= run0) & (idx <= run1)
                if keep.sum() < 2:
                    continue
                cx = centre + flip * (d.cx - d.cx[q]) * s
                bottom = base_bottom + (d.bottom - d.bottom[q]) * s
                w, h = d.w * s, d.h * s
                bbox = np.stack([cx - w / 2, bottom - h, w, h], axis=1)[keep]
                if _covers(out, v, tid, t[keep], bbox) > max_cover:
                    continue
                new_id = out.next_track_id()
                m = int(keep.sum())
                record = {k: d.record[k] for k in ("source_video", "source_video_id", "source_track_id",
                                                   "source_gt_id") if k in d.record}
                record.update(origin="cross", ops=[{"cross": {
                    "target_track": tid, "frame": tc, "shift_frames": int(tc - d.t[q]), "scale": round(s, 4),
                    "mirrored": flip < 0, "in_front": side > 0}}])
                out = out.append(np.full(m, v), t[keep], bbox, np.full(m, new_id), np.full(m, d.category),
                                 origin={new_id: record})
                break
    return out


def _covers(lay: Layout, v: int, skip_track: int, t: np.ndarray, bbox: np.ndarray) -> float:
    """The largest fraction of the smaller box that a new box (``t``, ``bbox``) and an ordinary box
    of video ``v`` in the same frame (not of ``skip_track``) cover of each other."""
    rows = np.flatnonzero((lay.video == v) & (lay.track != skip_track) & (lay.iscrowd == 0)
                          & (lay.t >= t.min()) & (lay.t <= t.max()))
    if rows.size == 0:
        return 0.0
    rows = rows[np.argsort(lay.t[rows], kind="stable")]
    rt = lay.t[rows]
    lo, hi = np.searchsorted(rt, t, side="left"), np.searchsorted(rt, t, side="right")
    cnt = hi - lo
    total = int(cnt.sum())
    if total == 0:
        return 0.0
    i = np.repeat(np.arange(t.size), cnt)  # every (new box, box of the same frame) pair
    j = rows[np.repeat(lo, cnt) + np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)]
    a, o = bbox[i], lay.bbox[j]
    iw = np.minimum(a[:, 0] + a[:, 2], o[:, 0] + o[:, 2]) - np.maximum(a[:, 0], o[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], o[:, 1] + o[:, 3]) - np.maximum(a[:, 1], o[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    return float((inter / np.minimum(a[:, 2] * a[:, 3], o[:, 2] * o[:, 3])).max())


# --------------------------------------------------------------------------- density
def _new_track(out: Layout, v: int, t: np.ndarray, cx: np.ndarray, bottom: np.ndarray, w: np.ndarray,
               h: np.ndarray, cat: int, record: dict[str, Any]) -> Layout:
    new_id = out.next_track_id()
    bbox = np.stack([cx - w / 2, bottom - h, w, h], axis=1)
    m = t.size
    return out.append(np.full(m, v), t, bbox, np.full(m, new_id), np.full(m, cat), origin={new_id: record})


def _new_tracks_plan(lay: Layout, rng: np.random.Generator, ctx: Context, v: int, count: int,
                     ratio: float) -> tuple[int, int, float, float, np.ndarray | None]:
    """What crowd and sample start each video from: how many tracks to add (``count`` plus
    ``ratio`` of the video's source track count, rounded stochastically: the one draw made
    here), the video's frame count and size, and the categories its targets have (None when it
    has none: any category of the set then)."""
    want = count + _stoch_round(ratio * _base(ctx, v, "tracks"), rng)
    present = lay.category[(lay.video == v) & lay.targets()]
    return (want, int(lay.nframes[v]), float(lay.width[v]), float(lay.height[v]),
            present if present.size else None)


def crowd(lay: Layout, rng: np.random.Generator, ctx: Context, count: int = 0, ratio: float = 0.5,
          jitter: float = 0.01, max_cover: float = 1.0) -> Layout:
    """Add tracks drawn from the set's own statistics: for each, a category (by track
    frequency, among the video's own categories), and independently a lifetime, an entry point,
    a velocity and a box size, each taken from a random source track (box) of that category.
    The track moves at that velocity from its entry point (its exit follows), with ``jitter``
    box heights of noise per frame. With ``max_cover`` below 1, a track that would cover or be
    covered by another beyond that fraction (of the smaller box) in some frame is drawn again
    (8 tries, then left out)."""
    out = lay
    stats = ctx.stats
    if not stats.categories:
        return lay
    for v in _videos(lay):
        want, n, W, H, present = _new_tracks_plan(lay, rng, ctx, v, count, ratio)
        for _ in range(want * 8 if max_cover < 1 else want):
            if want <= 0:
                break
            c = stats.pick_category(rng, present)
            cs = stats.categories[c]
            life = int(np.clip(cs.lifetimes[int(rng.integers(cs.lifetimes.size))], 2, max(n, 2)))
            start = int(rng.integers(0, max(n - life, 0) + 1))
            entry = cs.entries[int(rng.integers(len(cs.entries)))]
            vel = cs.velocities[int(rng.integers(len(cs.velocities)))] * H
            bw, bh = cs.sizes[int(rng.integers(len(cs.sizes)))] * H
            k = np.arange(life)
            noise = rng.normal(size=(life, 2)) * jitter * bh
            cx = entry[0] * W + vel[0] * k + noise[:, 0]
            bottom = entry[1] * H + vel[1] * k + noise[:, 1]
            if max_cover < 1 and _covers(out, v, -1, start + k, np.stack([cx - bw / 2, bottom - bh,
                                                                         np.full(life, bw), np.full(life, bh)],
                                                                        axis=1)) > max_cover:
                continue
            want -= 1
            out = _new_track(out, v, start + k, cx, bottom, np.full(life, bw), np.full(life, bh), c,
                             {"origin": "crowd", "source_video": None, "source_video_id": None,
                              "source_track_id": None, "ops": [{"crowd": {"category": c, "frames": life,
                                                                          "from_frame": start}}]})
    return out


def thin(lay: Layout, rng: np.random.Generator, ctx: Context, fraction: float = 0.3) -> Layout:
    """Remove each ordinary track with probability ``fraction`` (crowd / ignore regions stay)."""
    tracks = np.unique(lay.track[lay.iscrowd == 0])
    gone = tracks[rng.random(tracks.size) < fraction]
    return lay.take(np.flatnonzero(~np.isin(lay.track, gone) | (lay.iscrowd != 0)))


def sample(lay: Layout, rng: np.random.Generator, ctx: Context, count: int = 0, ratio: float = 0.5,
           damping: float = 0.9) -> Layout:
    """Add tracks sampled from a constant-velocity-with-noise model fitted per category:
    start point, velocity, log height, log aspect and log lifetime from Gaussians fitted on the
    source tracks; each frame the velocity relaxes towards the track's own (``damping``) plus
    noise of the size of the source tracks' velocity changes, and the log height walks with the
    source's per-frame scale noise."""
    out = lay
    stats = ctx.stats
    if not stats.categories:
        return lay
    for v in _videos(lay):
        want, n, W, H, present = _new_tracks_plan(lay, rng, ctx, v, count, ratio)
        for _ in range(want):
            c = stats.pick_category(rng, present)
            cs = stats.categories[c]
            life = int(np.clip(round(float(np.exp(rng.normal(*cs.log_life)))), 2, max(n, 2)))
            start = int(rng.integers(0, max(n - life, 0) + 1))
            p0 = np.clip(rng.multivariate_normal(cs.entry_mean, cs.entry_cov), 0.0, 1.0)
            v0 = rng.multivariate_normal(cs.v_mean, cs.v_cov)
            acc = rng.normal(size=(life, 2)) * cs.accel_std
            vel = np.zeros((life, 2))
            cur = v0.copy()
            for i in range(life):
                cur = v0 + damping * (cur - v0) + acc[i]
                vel[i] = cur
            pos = np.cumsum(np.vstack([[0.0, 0.0], vel[:-1]]), axis=0)
            logh = rng.normal(*cs.log_h) + np.cumsum(np.concatenate([[0.0], rng.normal(size=life - 1)
                                                                     * cs.log_h_step]))
            h = np.exp(logh) * H
            w = h * float(np.exp(rng.normal(*cs.log_aspect)))
            k = np.arange(life)
            out = _new_track(out, v, start + k, p0[0] * W + pos[:, 0] * H, p0[1] * H + pos[:, 1] * H, w, h, c,
                             {"origin": "sample", "source_video": None, "source_video_id": None,
                              "source_track_id": None, "ops": [{"sample": {"category": c, "frames": life,
                                                                           "from_frame": start}}]})
    return out


_COUNT = Param("count", "int", 0, 0, 1000, "tracks/events to add per video, besides ratio")


def _ratio(default: float, what: str) -> Param:
    return Param("ratio", "float", default, 0, 20, f"add ratio x the source video's {what}")


TRANSFORMS: dict[str, TransformSpec] = {s.name: s for s in (
    TransformSpec("mirror", mirror, (), "horizontal mirror"),
    TransformSpec("reverse", reverse, (), "play the video backwards"),
    TransformSpec("speed", speed, (Param("factor", "float", 2.0, 0.25, 4.0, "speed-up (< 1 slows down); boxes "
                                         "interpolated linearly, the video has (n - 1) / factor + 1 frames"),),
                  "resample time"),
    TransformSpec("zoom", zoom, (Param("scale", "float", 1.25, 0.5, 2.0, "> 1 zooms in about the frame centre"),),
                  "scale about the frame centre"),
    TransformSpec("pan", pan, (Param("dx", "float", 0.2, -1.0, 1.0, "camera turn right over the video, in frame "
                                     "widths"),
                               Param("dy", "float", 0.0, -1.0, 1.0, "camera turn down, in frame heights")),
                  "camera pan (all boxes drift)"),
    TransformSpec("shake", shake, (Param("amplitude", "float", 0.02, 0.0, 0.2, "typical camera offset, in frame "
                                         "heights"),
                                   Param("smooth", "float", 0.8, 0.0, 0.99, "AR(1) coefficient of the offset "
                                         "(0: jitter, near 1: slow sway)")),
                  "camera shake (all boxes of a frame move together)"),
    TransformSpec("hide", hide, (Param("k", "int", (5, 20), 1, 10000, "frames hidden (a range: drawn per track)",
                                       per_item=True),
                                 _COUNT, _ratio(1.0, "re-appearances")),
                  "hide tracks for k frames, then let them re-appear (boxes removed)"),
    TransformSpec("cross", cross, (_COUNT, _ratio(1.0, "crossings"),
                                   Param("same_category", "bool", True, help="copy a track of the target's "
                                         "category when there is one"),
                                   Param("offset", "float", (0.35, 0.6), 0.0, 0.9, "vertical offset of the two "
                                         "bottoms, in target heights (drawn per crossing)", per_item=True),
                                   Param("frames", "int", (16, 48), 2, 100000, "frames of the copied track kept "
                                         "around the crossing (drawn per crossing)", per_item=True),
                                   Param("max_cover", "float", 0.5, 0.0, 1.0, "refuse a placement where the copy "
                                         "and another track (not the target) overlap more than this")),
                  "insert tracks that cross existing ones"),
    TransformSpec("crowd", crowd, (_COUNT, _ratio(0.5, "tracks"),
                                   Param("jitter", "float", 0.01, 0.0, 0.5, "per-frame position noise, in box "
                                         "heights"),
                                   Param("max_cover", "float", 1.0, 0.0, 1.0, "redraw a track that overlaps "
                                         "another more than this (1: never)")),
                  "add tracks drawn from the set's statistics"),
    TransformSpec("thin", thin, (Param("fraction", "float", 0.3, 0.0, 1.0, "probability that a track is "
                                       "removed"),),
                  "remove tracks at random"),
    TransformSpec("sample", sample, (_COUNT, _ratio(0.5, "tracks"),
                                     Param("damping", "float", 0.9, 0.0, 1.0, "how slowly velocity noise fades")),
                  "add tracks from a constant-velocity model fitted per category"),
)}
