"""The box table the layout transforms work on, and the rules every transform's result obeys.

A :class:`Layout` is one TrackSet's boxes flattened to columns (video row, frame index, box,
track, category, visibility, conf, crowd flag) with the frame count and frame size of each
video, plus the provenance of every track. Transforms read and return Layouts;
:func:`normalize` runs after each one and :func:`with_depth_visibility` once at the end.

Rules (docs/layouts.md, "Guarantees"):

- a box is clipped to its frame; a box with less than ``min_inside`` of its area inside the
  frame is dropped (the object has left the picture; a track that comes back keeps its id, as in
  MOT ground truth);
- no box is narrower or lower than 1 px after clipping;
- one box per (track, frame); track ids unique in the set (a track never spans two videos);
- **depth order**: of two overlapping boxes in a frame, the one whose bottom edge is lower in
  the picture (larger ``y + h``) is nearer the camera; ties go to the larger box, then the
  smaller track id. Where a generated track (``cross``, ``crowd``, ``sample``) is one of the
  pair, the farther box loses what the nearer one covers: its visibility is the fraction of its
  area no such nearer box covers, capped by the visibility it carried in (the source's own
  annotation, 1 for generated tracks). Between two source tracks the source's annotation
  stands: the transforms that move all boxes alike (mirror, zoom, pan, shake, reverse, speed)
  keep their mutual occlusion, and an annotator's visibility is better evidence than boxes.
"""

from __future__ import annotations

import copy as _copy
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..tracks.trackset import Boxes, Frames, TrackSet, Videos

__all__ = ["Layout", "frame_size", "from_trackset", "normalize", "with_depth_visibility", "to_trackset", "MIN_INSIDE"]

MIN_INSIDE = 0.5  # default: a box with less than half its area in the frame has left it


@dataclass
class Layout:
    """Boxes as columns (one row per box) with per-video frame counts and sizes.

    ``vis`` is the visibility a box carries in (NaN: unknown, read as 1); ``conf`` is NaN where
    the source had none. ``origin`` maps each track id to its provenance record (a dict:
    ``origin``, ``source_video``, ``source_video_id``, ``source_track_id``, ``ops``).
    """

    video: np.ndarray  # int64 row in the videos below
    t: np.ndarray  # int64 frame index in the video
    bbox: np.ndarray  # float64 (M, 4) x, y, w, h
    track: np.ndarray  # int64
    category: np.ndarray  # int64
    vis: np.ndarray  # float64
    conf: np.ndarray  # float64
    iscrowd: np.ndarray  # int8
    nframes: np.ndarray  # int64 (V,)
    width: np.ndarray  # float64 (V,)
    height: np.ndarray  # float64 (V,)
    origin: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.t.size)

    def take(self, rows: np.ndarray) -> "Layout":
        """The boxes ``rows`` (index or mask), with the tracks still present in ``origin``."""
        out = replace(self, video=self.video[rows], t=self.t[rows], bbox=self.bbox[rows], track=self.track[rows],
                      category=self.category[rows], vis=self.vis[rows], conf=self.conf[rows],
                      iscrowd=self.iscrowd[rows])
        kept = set(np.unique(out.track).tolist())
        out.origin = {k: v for k, v in self.origin.items() if k in kept}
        return out

    def append(self, video: np.ndarray, t: np.ndarray, bbox: np.ndarray, track: np.ndarray, category: np.ndarray,
               vis: np.ndarray | None = None, conf: np.ndarray | None = None,
               origin: dict[int, dict[str, Any]] | None = None) -> "Layout":
        """These boxes (new tracks) added; missing visibility is 1, missing conf 1 where the set has confs."""
        n = t.size
        has_conf = bool(np.isfinite(self.conf).any()) or not len(self)
        vis = np.ones(n) if vis is None else vis
        conf = (np.ones(n) if has_conf else np.full(n, np.nan)) if conf is None else conf
        out = replace(self, video=np.concatenate([self.video, video.astype(np.int64)]),
                      t=np.concatenate([self.t, t.astype(np.int64)]),
                      bbox=np.concatenate([self.bbox, bbox.reshape(-1, 4).astype(np.float64)]),
                      track=np.concatenate([self.track, track.astype(np.int64)]),
                      category=np.concatenate([self.category, category.astype(np.int64)]),
                      vis=np.concatenate([self.vis, vis.astype(np.float64)]),
                      conf=np.concatenate([self.conf, conf.astype(np.float64)]),
                      iscrowd=np.concatenate([self.iscrowd, np.zeros(n, np.int8)]))
        out.origin = {**self.origin, **(origin or {})}
        return out

    def targets(self) -> np.ndarray:
        """Per box: an ordinary tracking target, neither a crowd / ignore region nor a box its
        source marked as not to be considered (MOT's conf 0: static people, distractors).
        These are what the transforms copy, hide, cross and learn statistics from."""
        return (self.iscrowd == 0) & ~(self.conf == 0)

    def next_track_id(self) -> int:
        return int(self.track.max()) + 1 if self.track.size else 1

    def copy_origin(self) -> dict[int, dict[str, Any]]:
        """A deep copy of ``origin``, for a transform that records something on its tracks."""
        return _copy.deepcopy(self.origin)


def frame_size(ts: TrackSet) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of each video: the video's own, else the largest of its frames' (0 = unknown)."""
    w = ts.videos.width.astype(np.float64).copy()
    h = ts.videos.height.astype(np.float64).copy()
    if ts.num_frames:
        fw = np.zeros(ts.num_videos)
        fh = np.zeros(ts.num_videos)
        np.maximum.at(fw, ts.frames.video, ts.frames.width.astype(np.float64))
        np.maximum.at(fh, ts.frames.video, ts.frames.height.astype(np.float64))
        w = np.where(w > 0, w, fw)
        h = np.where(h > 0, h, fh)
    return w, h


def from_trackset(ts: TrackSet) -> Layout:
    """The boxes of ``ts`` as a Layout; every track's provenance says it is a copy of itself."""
    b = ts.boxes
    m = ts.num_boxes
    vrow = ts.box_video()
    w, h = frame_size(ts)
    gt = b.source_track
    origin: dict[int, dict[str, Any]] = {}
    if m:
        tracks, first = np.unique(b.track, return_index=True)
        for tid, i in zip(tracks.tolist(), first.tolist()):
            v = int(vrow[i])
            rec: dict[str, Any] = {"origin": "source", "source_video": str(ts.videos.name[v]),
                                   "source_video_id": int(ts.videos.id[v]), "source_track_id": int(tid), "ops": []}
            if gt is not None and np.isfinite(gt[i]):
                rec["source_gt_id"] = int(gt[i])
            origin[int(tid)] = rec
    return Layout(video=vrow.astype(np.int64), t=ts.box_frame_index().astype(np.int64),
                  bbox=b.bbox.astype(np.float64).copy(), track=b.track.astype(np.int64).copy(),
                  category=b.category.astype(np.int64).copy(),
                  vis=b.visibility.astype(np.float64).copy() if b.visibility is not None else np.full(m, np.nan),
                  conf=b.conf.astype(np.float64).copy() if b.conf is not None else np.full(m, np.nan),
                  iscrowd=b.iscrowd.astype(np.int8).copy(), nframes=ts.frames_per_video().astype(np.int64),
                  width=w, height=h, origin=origin)


def normalize(lay: Layout, min_inside: float = MIN_INSIDE) -> Layout:
    """Clip boxes to their frame, drop the ones mostly outside it, outside the video's frames or
    under 1 px, keep one box per (track, frame), and sort by (video, frame, track)."""
    x, y, w, h = lay.bbox.T
    W, H = lay.width[lay.video], lay.height[lay.video]
    x0, y0 = np.maximum(x, 0.0), np.maximum(y, 0.0)
    x1, y1 = np.minimum(x + w, W), np.minimum(y + h, H)
    cw, ch = x1 - x0, y1 - y0
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = np.where((w > 0) & (h > 0), np.clip(cw, 0, None) * np.clip(ch, 0, None) / (w * h), 0.0)
    ok = (np.isfinite(lay.bbox).all(axis=1) & (inside >= min_inside) & (cw >= 1.0) & (ch >= 1.0)
          & (lay.t >= 0) & (lay.t < lay.nframes[lay.video]))
    out = replace(lay, bbox=np.stack([x0, y0, cw, ch], axis=1))
    rows = np.flatnonzero(ok)
    rows = rows[np.lexsort((out.track[rows], out.t[rows], out.video[rows]))]
    if rows.size > 1:  # a transform that made two boxes of one track in one frame keeps the first
        same = (out.video[rows][1:] == out.video[rows][:-1]) & (out.t[rows][1:] == out.t[rows][:-1]) \
            & (out.track[rows][1:] == out.track[rows][:-1])
        rows = rows[np.concatenate([[True], ~same])]
    return out.take(rows)


def _covered_fraction(box: np.ndarray, occ: np.ndarray) -> float:
    """Fraction of ``box`` (x0, y0, x1, y1) covered by the union of the ``occ`` rectangles (K, 4), exactly.

    Coordinate compression: the occluders' edges cut the box into cells, each wholly in or out.
    """
    bx0, by0, bx1, by1 = box
    o = occ.copy()
    o[:, 0::2] = np.clip(o[:, 0::2], bx0, bx1)
    o[:, 1::2] = np.clip(o[:, 1::2], by0, by1)
    xs = np.unique(np.concatenate([[bx0, bx1], o[:, 0], o[:, 2]]))
    ys = np.unique(np.concatenate([[by0, by1], o[:, 1], o[:, 3]]))
    cx = (xs[1:] + xs[:-1]) / 2
    cy = (ys[1:] + ys[:-1]) / 2
    inx = (cx[None, :] > o[:, 0:1]) & (cx[None, :] < o[:, 2:3])  # (K, nx)
    iny = (cy[None, :] > o[:, 1:2]) & (cy[None, :] < o[:, 3:4])  # (K, ny)
    cover = (iny[:, :, None] & inx[:, None, :]).any(axis=0)  # (ny, nx)
    area = np.outer(np.diff(ys), np.diff(xs))
    total = (bx1 - bx0) * (by1 - by0)
    return float((area * cover).sum() / total) if total > 0 else 0.0


def generated_boxes(lay: Layout) -> np.ndarray:
    """Per box: its track was made by a transform (its provenance origin is not ``source``)."""
    made = np.array(sorted(t for t, r in lay.origin.items() if r.get("origin") != "source"), dtype=np.int64)
    return np.isin(lay.track, made)


def depth_visibility(lay: Layout) -> np.ndarray:
    """Per box, the fraction of it that no nearer box of the same frame covers, counting only
    pairs with a generated track in them (crowd boxes: 1).

    Nearer: larger bottom edge ``y + h``, then larger area, then smaller track id.
    """
    m = len(lay)
    vis = np.ones(m)
    if m < 2:
        return vis
    ordinary = np.flatnonzero(lay.iscrowd == 0)
    x, y, w, h = (lay.bbox[ordinary, k] for k in range(4))
    # sort by frame, then nearest first: each box's occluders come before it in its frame
    order = np.lexsort((lay.track[ordinary], -(w * h), -(y + h), lay.t[ordinary], lay.video[ordinary]))
    rows = ordinary[order]
    made = generated_boxes(lay)[rows]
    x0, y0 = lay.bbox[rows, 0], lay.bbox[rows, 1]
    x1, y1 = x0 + lay.bbox[rows, 2], y0 + lay.bbox[rows, 3]
    key = lay.video[rows] * (int(lay.t.max()) + 1) + lay.t[rows]
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1], [True]]))
    for s, e in zip(starts[:-1].tolist(), starts[1:].tolist()):
        if e - s < 2:
            continue
        fx0, fy0, fx1, fy1 = x0[s:e], y0[s:e], x1[s:e], y1[s:e]
        ov = ((np.minimum(fx1[:, None], fx1[None, :]) > np.maximum(fx0[:, None], fx0[None, :]))
              & (np.minimum(fy1[:, None], fy1[None, :]) > np.maximum(fy0[:, None], fy0[None, :])))
        ov = np.tril(ov, k=-1)  # row i is occluded only by nearer rows j < i
        fm = made[s:e]
        ov &= fm[:, None] | fm[None, :]
        for i in np.flatnonzero(ov.any(axis=1)).tolist():
            j = np.flatnonzero(ov[i])
            occ = np.stack([fx0[j], fy0[j], fx1[j], fy1[j]], axis=1)
            vis[rows[s + i]] = 1.0 - _covered_fraction(np.array([fx0[i], fy0[i], fx1[i], fy1[i]]), occ)
    return vis


def with_depth_visibility(lay: Layout) -> Layout:
    """Visibility from depth order, capped by the carried-in visibility (rounded to 4 decimals)."""
    carried = np.where(np.isnan(lay.vis), 1.0, lay.vis)
    vis = np.round(np.clip(np.minimum(carried, depth_visibility(lay)), 0.0, 1.0), 4)
    return replace(lay, vis=vis)


def to_trackset(lay: Layout, videos: Videos, template: TrackSet, *, frame_ext: str = ".jpg",
                numbers: bool = True) -> TrackSet:
    """The Layout as a TrackSet over ``videos`` (one row per Layout video), with fresh frames
    (``<video>/<frame:06d><ext>``, 1-based) and ids 1..n for videos, frames and boxes."""
    nf = lay.nframes
    vrow = np.repeat(np.arange(nf.size), nf)
    off = np.concatenate([[0], np.cumsum(nf)])
    index = np.arange(int(off[-1])) - np.repeat(off[:-1], nf)
    names = videos.name
    file_name = np.empty(index.size, dtype=object)
    file_name[:] = [f"{names[v]}/{i + 1:06d}{frame_ext}" for v, i in zip(vrow.tolist(), index.tolist())]
    frames = Frames(video=vrow.astype(np.int64), index=index.astype(np.int64), file_name=file_name,
                    id=np.arange(1, index.size + 1, dtype=np.int64),
                    width=lay.width[vrow].astype(np.int64), height=lay.height[vrow].astype(np.int64),
                    number=(index + 1).astype(np.float64) if numbers else None)
    order = np.lexsort((lay.track, lay.t, lay.video))
    lay = lay.take(order)
    m = len(lay)
    has_conf = bool(np.isfinite(lay.conf).any())
    boxes = Boxes(frame=(off[lay.video] + lay.t).astype(np.int64), bbox=lay.bbox.copy(), track=lay.track.copy(),
                  category=lay.category.copy(), id=np.arange(1, m + 1, dtype=np.int64), iscrowd=lay.iscrowd.copy(),
                  visibility=lay.vis.copy(), conf=np.where(np.isnan(lay.conf), 1.0, lay.conf) if has_conf else None)
    videos = replace(videos, id=np.arange(1, len(videos) + 1, dtype=np.int64),
                     width=lay.width.astype(np.int64), height=lay.height.astype(np.int64))
    ts = TrackSet(videos=videos, frames=frames, boxes=boxes, categories=[dict(c) for c in template.categories],
                  meta={}, source="", source_format="layouts", style={})
    ts.check()
    return ts
