"""COCO-VID annotations checked against their file's images, categories and videos, and the
tracks made of their instance ids: the rules the reader and the streaming merge share.

The reader checks each column whole; the streaming merge (:mod:`tdgen.tracks.streammerge`) one
block of records at a time, possibly before the rest of the file is parsed. Both must accept
the same files and refuse the others with the same error, so both go through
:class:`AnnotationChecks`: it keeps the first record failing each check, and
:meth:`AnnotationChecks.finish` raises them in the reader's order (image ids, categories,
video ids, boxes), whatever order the blocks came in. Duplicate ids are checked before all of
them (:func:`duplicate_id`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AnnotationError

__all__ = ["AnnotationChecks", "BoxEdges", "CategoryIndex", "ImageIndex", "duplicate_id", "increasing",
           "make_tracks", "shared_between_videos"]

BAD_BOX_HINT = "pass --drop-invalid-boxes to skip such boxes"


def increasing(a: np.ndarray) -> bool:
    return bool(a.size < 2 or (a[1:] > a[:-1]).all())


def duplicate_id(file: str, what: str, ids: np.ndarray) -> AnnotationError | None:
    """The error for the first id of ``ids`` (a ``what`` array) that repeats an earlier one."""
    if increasing(ids):  # the usual case, checked in O(n)
        return None
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    d = np.flatnonzero(s[1:] == s[:-1])
    if d.size == 0:
        return None
    a, b = order[d[0]], order[d[0] + 1]
    return AnnotationError(file, f"{what}[{b}]", f"duplicate id {int(ids[b])} (also {what}[{a}])")


class ImageIndex:
    """The frame row of an image id: ``rows[i]`` is the row of ``image_ids[i]`` (``None``: row i)."""

    def __init__(self, image_ids: np.ndarray, rows: np.ndarray | None = None):
        n = self.n = image_ids.size
        self.rows = rows
        # ids 1..n in order (the usual case): positions by subtraction
        self.contiguous = bool(n and increasing(image_ids) and int(image_ids[-1]) - int(image_ids[0]) == n - 1)
        if self.contiguous:
            self.first = int(image_ids[0])
        elif n:
            self.order = np.argsort(image_ids)
            self.sorted = image_ids[self.order]

    def __call__(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(frame rows, found)`` of the image ids ``img``; the row of an id not found is 0."""
        if not self.n:
            return np.zeros(img.size, np.int64), np.zeros(img.size, bool)
        if self.contiguous:
            p = img - self.first
            ok = (p >= 0) & (p < self.n)
            p = np.where(ok, p, 0)
        else:
            q = np.clip(np.searchsorted(self.sorted, img), 0, self.n - 1)
            ok = self.sorted[q] == img
            p = self.order[q]
        return (p if self.rows is None else self.rows[p]), ok


class CategoryIndex:
    """Which category ids a file lists (a lookup table when the ids are small)."""

    def __init__(self, category_ids: np.ndarray):
        self.ids = category_ids
        self.table = None
        if category_ids.size and category_ids.min() >= 0 and category_ids.max() < (1 << 20):
            self.table = np.zeros(int(category_ids.max()) + 2, bool)
            self.table[category_ids] = True

    def known(self, cat: np.ndarray) -> np.ndarray:
        t = self.table
        if t is None:
            return np.isin(cat, self.ids)
        return t[np.clip(cat, 0, t.size - 1)] & (cat >= 0) & (cat < t.size - 1)


@dataclass
class BoxEdges:
    """What the frame-size test needs of a block's boxes (the boxes themselves can go)."""

    bad: np.ndarray  # not finite, or non-positive width or height
    neg: np.ndarray  # left or top edge below 0
    right: np.ndarray
    bottom: np.ndarray


def _first(bad: np.ndarray) -> int | None:
    return int(np.argmax(bad)) if bad.any() else None


class AnnotationChecks:
    """The first record failing each check, over blocks of annotation records in file order.

    ``base`` of each block is the position of its first record in the ``annotations`` array.
    :meth:`boxes` needs nothing but the block; :meth:`records` needs the images, categories and
    frames (:meth:`set_skeleton`).
    """

    ORDER = ("image", "category", "video", "box")

    def __init__(self, file: str):
        self.file = file
        self.first: dict[str, tuple] = {}
        self.bad_boxes = 0
        self.outside = 0

    def set_skeleton(self, images: ImageIndex, categories: CategoryIndex, frame_video_id: np.ndarray,
                     frame_width: np.ndarray, frame_height: np.ndarray) -> None:
        """``frame_*``: per frame row, its video's id and its size."""
        self.images, self.categories = images, categories
        self.frame_video_id = frame_video_id
        self.frame_w = frame_width.astype(np.float64, copy=False)
        self.frame_h = frame_height.astype(np.float64, copy=False)

    def _keep(self, what: str, base: int, bad: np.ndarray, value) -> None:
        if what not in self.first:
            j = _first(bad)
            if j is not None:
                self.first[what] = (base + j, *value(j))

    def boxes(self, base: int, ids: np.ndarray, bbox: np.ndarray) -> BoxEdges:
        """Check the sizes of a block's boxes ((k, 4) ``x, y, w, h``)."""
        x, y, w, h = bbox[:, 0], bbox[:, 1], bbox[:, 2], bbox[:, 3]
        bad = ~np.isfinite(bbox).all(axis=1) | (w <= 0) | (h <= 0)
        if bad.any():
            self.bad_boxes += int(np.count_nonzero(bad))
            self._keep("box", base, bad, lambda j: (int(ids[j]), bbox[j].tolist()))
        return BoxEdges(bad, (x < 0) | (y < 0), x + w, y + h)

    def records(self, base: int, ids: np.ndarray, img: np.ndarray, cat: np.ndarray, vid: np.ndarray | None,
                vid_ok: np.ndarray | None, edges: BoxEdges) -> np.ndarray:
        """Check a block's image ids, category ids and video ids (``vid`` where ``vid_ok``; ``None``:
        no record has one), count its boxes past their frame, and return its frame rows."""
        frame, found = self.images(img)
        self._keep("image", base, ~found, lambda j: (int(ids[j]), int(img[j])))
        self._keep("category", base, ~self.categories.known(cat), lambda j: (int(ids[j]), int(cat[j])))
        if vid is not None:
            want = self.frame_video_id[frame] if self.frame_video_id.size else np.zeros(frame.size, np.int64)
            self._keep("video", base, vid_ok & found & (vid != want), lambda j: (int(ids[j]), int(vid[j]), int(want[j])))
        if self.frame_w.size:
            past = edges.neg | (edges.right > self.frame_w[frame]) | (edges.bottom > self.frame_h[frame])
            self.outside += int(np.count_nonzero(past & ~edges.bad & found))
        return frame

    def finish(self, invalid_boxes: str = "error") -> list[str]:
        """Raise the first failure in the reader's order; else the warning lines: boxes dropped
        (with ``invalid_boxes="drop"``) and boxes past their frame."""
        file = self.file
        for what in self.ORDER:
            if what not in self.first or (what == "box" and invalid_boxes == "drop"):
                continue
            j, i, *v = self.first[what]
            where = f"annotations[{j}] (id {i})"
            if what == "image":
                raise AnnotationError(file, where, f"image_id {v[0]} is not in 'images'")
            if what == "category":
                raise AnnotationError(file, where, f"category_id {v[0]} is not in 'categories'")
            if what == "video":
                raise AnnotationError(file, where, f"video_id {v[0]} differs from its image's video {v[1]}")
            raise AnnotationError(file, where, f"bbox {v[0]} has non-positive or NaN size", hint=BAD_BOX_HINT)
        notes = []
        if self.bad_boxes:
            notes.append(f"dropped {self.bad_boxes} boxes with non-positive or NaN size")
        if self.outside:
            notes.append(f"{self.outside} boxes extend past their frame (kept as they are; "
                         "clipped when cut into clips)")
        return notes


def shared_between_videos(track: np.ndarray, video: np.ndarray) -> bool:
    """Whether some track id has boxes in more than one video."""
    if track.size == 0:
        return False
    # the usual case in O(n): each run of one video's boxes holds ids no other run's range reaches
    cut = np.flatnonzero(video[1:] != video[:-1]) + 1
    starts = np.concatenate([[0], cut])
    lo_v, hi_v = np.minimum.reduceat(track, starts), np.maximum.reduceat(track, starts)
    order = np.argsort(lo_v, kind="stable")
    if np.all(hi_v[order][:-1] < lo_v[order][1:]):
        return False
    lo_t, hi_t = int(track.min()), int(track.max())
    if hi_t - lo_t < 8 * track.size + 1024:  # ids in a compact range: per-id min and max video
        k = track - lo_t
        lo = np.full(hi_t - lo_t + 1, np.iinfo(np.int64).max)
        hi = np.full(hi_t - lo_t + 1, -1)
        np.minimum.at(lo, k, video)
        np.maximum.at(hi, k, video)
        used = hi >= 0
        return bool((lo[used] != hi[used]).any())
    o = np.argsort(track, kind="stable")
    ts_, vs_ = track[o], video[o]
    return bool(((ts_[1:] == ts_[:-1]) & (vs_[1:] != vs_[:-1])).any())


def make_tracks(track: np.ndarray, no_inst: np.ndarray, video: np.ndarray, warnings: list[str], style: dict, *,
                say_no_instance: bool = True) -> np.ndarray:
    """The track of every box, as the reader makes them, from its instance id.

    ``track``: the int64 instance ids, 0 where ``no_inst`` (no id, or a negative one; it is
    changed in place there). ``video``: each box's video row. Ids shared by two videos are
    renumbered per (video, id); a box without an id gets a track of its own. What was done goes
    into ``warnings`` (one line each) and ``style``.
    """
    if track.size == 0:
        return track
    any_no_inst = bool(no_inst.any())
    shared = shared_between_videos(track[~no_inst], video[~no_inst]) if any_no_inst else \
        shared_between_videos(track, video)
    if shared:
        key = video.astype(np.int64) * (int(track.max()) + 2) + track
        track = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64) + 1
        del key
        warnings.append("instance ids repeat across videos: tracks renumbered per (video, id)")
        style["renumbered_tracks"] = True
    if any_no_inst:
        n = int(no_inst.sum())
        nxt = int(track.max()) + 1
        track[no_inst] = np.arange(nxt, nxt + n)
        if say_no_instance:
            warnings.append(f"{n} boxes have no instance/track id: each got its own track")
        style["no_instance"] = n
    if ((track[~no_inst] if any_no_inst else track) == 0).any():
        warnings.append("instance ids start at 0: written back from 1 (mmdet treats 0 as missing)")
    return track
