"""``tdgen layouts``: K transformed copies of every source video, as a COCO-VID tracklet set.

The output holds only the new videos (``<source video>_L01``, ``_L02``, ...); ``tdgen merge``
folds them into the source set when both are wanted. Each copy draws its randomness from a
generator seeded by (seed, source video name, copy number), so a copy does not depend on the
other videos or on the order they are read in, and the same seed gives the same bytes.
"""

from __future__ import annotations

import copy as _copy
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..errors import AnnotationError, UsageError
from ..tracks.layout_stats import layout_stats
from ..tracks.trackset import TrackSet, Videos
from .boxes import Layout, frame_size, from_trackset, normalize, to_trackset, with_depth_visibility
from .provenance import provenance_path, write_provenance
from .recipes import Recipe
from .stats import fit_stats
from .transforms import TRANSFORMS, Context, Donor

__all__ = ["LayoutsResult", "copy_seed", "make_layouts", "source_context", "write_layouts", "MAX_COPIES"]

MAX_COPIES = 1000


@dataclass
class LayoutsResult:
    trackset: TrackSet
    provenance: list[dict[str, Any]]
    empty_copies: list[str] = field(default_factory=list)  # copies that lost every box

    def summary(self) -> dict[str, Any]:
        ts = self.trackset
        origins: dict[str, int] = {}
        for r in self.provenance:
            origins[r["origin"]] = origins.get(r["origin"], 0) + 1
        return {"videos": ts.num_videos, "frames": ts.num_frames, "tracks": ts.num_tracks, "boxes": ts.num_boxes,
                "tracks_by_origin": origins, "empty_copies": len(self.empty_copies)}


def _check_source(ts: TrackSet) -> None:
    if ts.num_boxes == 0 or not np.any(ts.boxes.iscrowd == 0):
        raise AnnotationError(ts.source, None, "has no boxes to make layouts from")
    w, h = frame_size(ts)
    for v in np.flatnonzero((w <= 0) | (h <= 0)).tolist():
        raise AnnotationError(ts.source, f"video {ts.videos.name[v]!r}", "has no frame size (width, height): "
                              "layouts need it to clip boxes")
    names = ts.videos.name.tolist()
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AnnotationError(ts.source, f"video {dup!r}", "two videos share this name")


def _donors(src: Layout) -> list[Donor]:
    """Source target tracks with at least 4 boxes and one step between consecutive frames."""
    out = []
    rows = np.flatnonzero(src.targets())
    order = rows[np.lexsort((src.t[rows], src.track[rows]))]
    tr = src.track[order]
    for g in np.split(order, np.flatnonzero(tr[1:] != tr[:-1]) + 1) if order.size else []:
        t = src.t[g]
        if g.size < 4 or not np.any(np.diff(t) == 1):
            continue
        x, y, w, h = src.bbox[g].T
        out.append(Donor(t=t, cx=x + w / 2, bottom=y + h, w=w, h=h, category=int(src.category[g[0]]),
                         record=src.origin[int(src.track[g[0]])]))
    return out


def _video_base(ts: TrackSet, src: Layout) -> list[dict[str, int]]:
    """Per source video: re-appearances and crossings (the shared layout statistics) and tracks."""
    out = []
    for v in range(ts.num_videos):
        st = layout_stats(ts.select_videos([v]))
        tracks = int(np.unique(src.track[(src.video == v) & src.targets()]).size)
        out.append({"reappearances": int(st["gaps"]), "crossings": int(st["crossings"]), "tracks": tracks})
    return out


def _one_video(src: Layout, v: int) -> Layout:
    lay = src.take(np.flatnonzero(src.video == v))
    return replace(lay, video=np.zeros(len(lay), np.int64), nframes=src.nframes[v:v + 1].copy(),
                   width=src.width[v:v + 1].copy(), height=src.height[v:v + 1].copy())


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def copy_seed(seed: int, video_name: str, copy: int) -> np.random.SeedSequence:
    """The seed of one copy: a function of (seed, source video name, copy number) only."""
    return np.random.SeedSequence([int(seed), zlib.crc32(video_name.encode("utf-8")), int(copy)])


def source_context(ts: TrackSet) -> tuple[Layout, Context]:
    """The source's boxes as a Layout and what the transforms may know of it (statistics, donor
    tracks, per-video counts); :class:`AnnotationError` if layouts cannot be made from it."""
    _check_source(ts)
    src = from_trackset(ts)
    return src, Context(stats=fit_stats(src), donors=_donors(src), base=_video_base(ts, src))


def make_layouts(ts: TrackSet, recipe: Recipe, *, copies: int = 1, seed: int = 0,
                 on_video: Callable[[int, int], None] | None = None) -> LayoutsResult:
    """``copies`` transformed copies of every video of ``ts`` (the output holds only those)."""
    if not 1 <= copies <= MAX_COPIES:
        raise UsageError(f"--copies {copies}: must be between 1 and {MAX_COPIES}")
    if seed < 0:
        raise UsageError(f"--seed {seed}: must be >= 0")
    src, ctx = source_context(ts)
    base = ctx.base
    parts: list[tuple[Layout, dict[str, Any], int]] = []  # (layout, video record, source row)
    empty: list[str] = []
    for v in range(ts.num_videos):
        name = str(ts.videos.name[v])
        one = _one_video(src, v)
        vctx = ctx.with_base([base[v]])
        for k in range(copies):
            rng = np.random.default_rng(copy_seed(seed, name, k + 1))
            cur = one
            ops = []
            for step in recipe.steps:
                params = step.draw(rng)
                run = bool(rng.random() < step.p) if step.p < 1 else True
                if run:
                    cur = normalize(TRANSFORMS[step.transform].fn(cur, rng, vctx, **params), recipe.min_inside)
                ops.append({"transform": step.transform, **{kk: _plain(vv) for kk, vv in params.items()},
                            **({} if run else {"applied": False})})
            cur = with_depth_visibility(cur)
            out_name = f"{name}_L{k + 1:02d}"
            if np.any(one.iscrowd == 0) and not np.any(cur.iscrowd == 0):
                empty.append(out_name)  # the recipe removed every box the source video had
            record = {"source_video": name, "source_video_id": int(ts.videos.id[v]), "copy": k + 1,
                      "seed": int(seed), "recipe": recipe.name, "transforms": ops}
            parts.append((cur, {"name": out_name, **record}, v))
        if on_video is not None:
            on_video(v + 1, ts.num_videos)
    if not any(np.any(p[0].iscrowd == 0) for p in parts):
        raise AnnotationError(recipe.source, None, "leaves no box (but ignore regions) in any video of "
                              f"{ts.source or 'the input'}; nothing written")
    return _assemble(ts, parts, empty)


def _assemble(ts: TrackSet, parts: list[tuple[Layout, dict[str, Any], int]], empty: list[str]) -> LayoutsResult:
    """One TrackSet of every copy: ids renumbered (tracks 1..T in video order), provenance attached."""
    pieces = []
    origin: dict[int, dict[str, Any]] = {}
    next_id = 1
    for vi, (lay, _rec, _v) in enumerate(parts):
        old = np.unique(lay.track)
        new = np.arange(next_id, next_id + old.size, dtype=np.int64)
        remap = dict(zip(old.tolist(), new.tolist()))
        track = new[np.searchsorted(old, lay.track)] if old.size else lay.track
        for o, n in remap.items():
            rec = origin[n] = _copy.deepcopy(lay.origin[o])
            for op in rec.get("ops", []):
                if "cross" in op:  # the target's id as it is in the output (None: it was removed)
                    op["cross"]["target_track"] = remap.get(op["cross"]["target_track"])
        next_id += old.size
        pieces.append(replace(lay, video=np.full(len(lay), vi, np.int64), track=track))
    cat = {k: np.concatenate([getattr(p, k) for p in pieces]) for k in
           ("video", "t", "track", "category", "vis", "conf", "iscrowd")}
    whole = Layout(bbox=np.concatenate([p.bbox for p in pieces]).reshape(-1, 4),
                   nframes=np.concatenate([p.nframes for p in pieces]),
                   width=np.concatenate([p.width for p in pieces]),
                   height=np.concatenate([p.height for p in pieces]), origin=origin, **cat)
    names = np.empty(len(parts), dtype=object)
    names[:] = [rec["name"] for _, rec, _ in parts]
    vextra = np.empty(len(parts), dtype=object)
    vextra[:] = [{"layout": {k: v for k, v in rec.items() if k != "name"}} for _, rec, _ in parts]
    fps = ts.videos.fps[[v for _, _, v in parts]] if ts.videos.fps is not None else None
    videos = Videos(name=names, id=np.zeros(len(parts), np.int64), width=np.zeros(len(parts), np.int64),
                    height=np.zeros(len(parts), np.int64), fps=fps, extra=vextra)
    ext = Path(str(ts.frames.file_name[0])).suffix if ts.num_frames else ""
    out = to_trackset(whole, videos, ts, frame_ext=ext or ".jpg", numbers=ts.frames.number is not None)
    # per annotation: where its track came from (pycocotools and the readers keep unknown keys)
    cols = ("origin", "source_video_id", "source_track_id")
    # one dict per track, shared by its boxes (the writer only reads them): no dict per box
    per_track = {t: {"layout": {c: rec.get(c) for c in cols}} for t, rec in origin.items()}
    aextra = np.empty(out.num_boxes, dtype=object)
    aextra[:] = [per_track[t] for t in out.boxes.track.tolist()]
    out = replace(out, boxes=replace(out.boxes, extra=aextra))
    cnames = out.category_names()
    first_row = {}
    vrow = out.box_video()
    for i, t in enumerate(out.boxes.track.tolist()):
        first_row.setdefault(t, i)
    rows = []
    for t in sorted(first_row):
        i = first_row[t]
        v = int(vrow[i])
        rec = origin[t]
        vrec = parts[v][1]
        rows.append({"video": vrec["name"], "video_id": int(out.videos.id[v]), "track_id": int(t),
                     "category": cnames.get(int(out.boxes.category[i]), str(int(out.boxes.category[i]))),
                     "origin": rec["origin"],
                     "source_video": rec.get("source_video") or vrec["source_video"],
                     "source_video_id": rec.get("source_video_id") if rec.get("source_video_id") is not None
                     else vrec["source_video_id"],
                     "source_track_id": rec.get("source_track_id"), "source_gt_id": rec.get("source_gt_id"),
                     "copy": vrec["copy"], "seed": vrec["seed"], "recipe": vrec["recipe"],
                     "transforms": vrec["transforms"], "track_ops": rec.get("ops", [])})
    return LayoutsResult(trackset=out, provenance=rows, empty_copies=empty)


def write_layouts(result: LayoutsResult, output: str | Path, flavor: str | None = None) -> tuple[Path, Path]:
    """Write the provenance table, then the COCO-VID file (each atomically); return both paths."""
    from ..tracks.cocovid import write_cocovid

    prov = write_provenance(result.provenance, provenance_path(output))
    path = write_cocovid(result.trackset, output, flavor or "mmdet",
                         info={"description": "tracklet layouts written by tdgen layouts", "version": __version__})
    return Path(path), prov
