"""TrackSet: every box of every video as columns (numpy arrays), never a list of dicts per box.

Layout
------
``videos``  V rows: name, id (source id), width, height, fps.
``frames``  F rows, grouped by video and sorted by ``index`` (0-based, contiguous per video):
            video (row in ``videos``), index, number (source frame number, usually 1-based),
            file_name, id (source image id), width, height.
``boxes``   M rows, grouped by frame (source order kept inside a frame):
            frame (row in ``frames``), bbox (M, 4) ``x, y, w, h`` in source pixels,
            track (track id, unique in the whole set), category (category id),
            visibility, conf, iscrowd, id (source annotation id), area, source_track
            (the id the source file gave the track, e.g. a gt.txt id).
``categories``  list of dicts with at least ``id`` and ``name``, in file order.

Optional columns are ``None`` when no record had them, and hold NaN where a single record
lacks them. ``extra`` columns are object arrays of dicts holding the keys a reader did not
understand (``None`` per record when it had none), so writing back loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["Videos", "Frames", "Boxes", "TrackSet", "offsets_from_sorted"]


def _take(arr: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if arr is None else arr[idx]


def _cat(parts: Sequence[np.ndarray | None], length: Sequence[int], fill: Any, dtype: Any) -> np.ndarray | None:
    """Concatenate optional columns; a part that lacks the column is filled with ``fill``."""
    if all(p is None for p in parts):
        return None
    out = []
    for p, n in zip(parts, length):
        if p is None:
            if dtype is object:
                a = np.empty(n, dtype=object)
                a[:] = fill
            else:
                a = np.full(n, fill, dtype=dtype)
            out.append(a)
        else:
            out.append(p)
    return np.concatenate(out) if out else None


@dataclass
class _Table:
    """A table of equal-length columns. Subclasses declare columns as dataclass fields."""

    def __len__(self) -> int:
        first = fields(self)[0]
        return len(getattr(self, first.name))

    def take(self, idx: np.ndarray):
        """Rows ``idx`` (an index or boolean array) as a new table of the same kind."""
        return type(self)(**{f.name: _take(getattr(self, f.name), idx) for f in fields(self)})

    def check_lengths(self) -> None:
        n = len(self)
        for f in fields(self):
            col = getattr(self, f.name)
            if col is not None and len(col) != n:
                raise ValueError(f"{type(self).__name__}.{f.name} has {len(col)} rows, expected {n}")

    @classmethod
    def concat(cls, tables: Sequence["_Table"]):
        lengths = [len(t) for t in tables]
        cols = {}
        for f in fields(cls):
            parts = [getattr(t, f.name) for t in tables]
            proto = next((p for p in parts if p is not None), None)
            if proto is None:
                cols[f.name] = None
                continue
            if proto.dtype == object:
                fill, dtype = None, object
            elif proto.dtype.kind == "f":
                fill, dtype = np.nan, proto.dtype
            else:
                fill, dtype = -1, proto.dtype
            if proto.ndim == 2:
                parts = [p if p is not None else np.full((n, proto.shape[1]), fill, dtype) for p, n in zip(parts, lengths)]
                cols[f.name] = np.concatenate(parts)
            else:
                cols[f.name] = _cat(parts, lengths, fill, dtype)
        return cls(**cols)

    def equals(self, other: "_Table", *, extras: bool = True) -> bool:
        """Exact equality of every column (NaN equals NaN)."""
        for f in fields(self):
            if not extras and f.name == "extra":
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if (a is None) != (b is None):
                return False
            if a is None:
                continue
            if a.shape != b.shape:
                return False
            if a.dtype.kind == "f" or b.dtype.kind == "f":
                if not np.array_equal(a, b, equal_nan=True):
                    return False
            elif a.dtype == object or b.dtype == object:
                if any(x != y for x, y in zip(a.tolist(), b.tolist())):
                    return False
            elif not np.array_equal(a, b):
                return False
        return True


@dataclass
class Videos(_Table):
    name: np.ndarray  # object (str)
    id: np.ndarray  # int64 source id
    width: np.ndarray  # int64, 0 = unknown
    height: np.ndarray  # int64, 0 = unknown
    fps: np.ndarray | None = None  # float64
    extra: np.ndarray | None = None  # object: dict | None


@dataclass
class Frames(_Table):
    video: np.ndarray  # int64 row in videos
    index: np.ndarray  # int64, 0-based contiguous per video
    file_name: np.ndarray  # object (str)
    id: np.ndarray  # int64 source image id
    width: np.ndarray  # int64
    height: np.ndarray  # int64
    number: np.ndarray | None = None  # float64: source frame number (e.g. MOT's 1-based number)
    extra: np.ndarray | None = None


@dataclass
class Boxes(_Table):
    frame: np.ndarray  # int64 row in frames
    bbox: np.ndarray  # float64 (M, 4) x, y, w, h
    track: np.ndarray  # int64 track id, unique in the set
    category: np.ndarray  # int64 category id
    id: np.ndarray  # int64 source annotation id (-1 = none)
    iscrowd: np.ndarray  # int8
    visibility: np.ndarray | None = None  # float64
    conf: np.ndarray | None = None  # float64 (MOT conf / flag column, mot_conf)
    area: np.ndarray | None = None  # float64 as given by the source (NaN = w*h)
    source_track: np.ndarray | None = None  # float64 id in the source (gt.txt id, mot_instance_id)
    extra: np.ndarray | None = None


def offsets_from_sorted(keys: np.ndarray, n: int) -> np.ndarray:
    """For ``keys`` sorted ascending in ``[0, n)``, the (n + 1,) offsets of each key's run."""
    return np.searchsorted(keys, np.arange(n + 1), side="left").astype(np.int64)


@dataclass
class TrackSet:
    """Videos, frames, boxes and categories of an annotation source, as columns.

    Invariants (``check()`` verifies them): frames grouped by video, ``index`` is 0..n-1 per
    video; boxes grouped by frame; track ids unique per (video) and never shared across videos.
    """

    videos: Videos
    frames: Frames
    boxes: Boxes
    categories: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # top-level pass-through (info, licenses, ...)
    source: str = ""  # where it was read from, for messages
    source_format: str = ""  # "cocovid-mmdet", "cocovid-bytetrack", "mot", "ytvis", ...
    warnings: list[str] = field(default_factory=list)
    # How the source spelled optional things (which keys it wrote), so that writing the same
    # flavour back reproduces the file. Writers fall back to their flavour's defaults.
    style: dict = field(default_factory=dict)

    # ----------------------------------------------------------------- sizes
    @property
    def num_videos(self) -> int:
        return len(self.videos)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def num_boxes(self) -> int:
        return len(self.boxes)

    @property
    def num_tracks(self) -> int:
        return int(np.unique(self.boxes.track).size)

    # ----------------------------------------------------------------- indexes
    def video_offsets(self) -> np.ndarray:
        """(V + 1,) offsets: frames of video v are rows ``off[v]:off[v+1]``."""
        return offsets_from_sorted(self.frames.video, self.num_videos)

    def frame_offsets(self) -> np.ndarray:
        """(F + 1,) offsets: boxes of frame f are rows ``off[f]:off[f+1]``."""
        return offsets_from_sorted(self.boxes.frame, self.num_frames)

    def frames_per_video(self) -> np.ndarray:
        return np.diff(self.video_offsets())

    def box_video(self) -> np.ndarray:
        """Video row of every box."""
        return self.frames.video[self.boxes.frame]

    def box_frame_index(self) -> np.ndarray:
        """0-based frame index (inside its video) of every box."""
        return self.frames.index[self.boxes.frame]

    def category_names(self) -> dict[int, str]:
        return {int(c["id"]): str(c["name"]) for c in self.categories}

    def has_mot_fields(self) -> bool:
        """True when the boxes carry MOT Challenge fields (visibility and conf)."""
        return self.boxes.visibility is not None and self.boxes.conf is not None

    # ----------------------------------------------------------------- checks
    def check(self) -> None:
        """Raise ``ValueError`` if an internal invariant does not hold (a bug, not bad input)."""
        self.videos.check_lengths()
        self.frames.check_lengths()
        self.boxes.check_lengths()
        fv = self.frames.video
        if len(fv) and (np.any(np.diff(fv) < 0) or fv.min() < 0 or fv.max() >= self.num_videos):
            raise ValueError("frames are not grouped by video")
        off = self.video_offsets()
        expected = np.arange(len(fv)) - np.repeat(off[:-1], np.diff(off))
        if not np.array_equal(self.frames.index, expected):
            raise ValueError("frame indices are not 0..n-1 per video")
        bf = self.boxes.frame
        if len(bf) and (np.any(np.diff(bf) < 0) or bf.min() < 0 or bf.max() >= self.num_frames):
            raise ValueError("boxes are not grouped by frame")
        if self.boxes.bbox.shape != (len(bf), 4):
            raise ValueError("bbox column must be (M, 4)")
        if len(bf):
            pairs = np.unique(np.stack([self.boxes.track, self.box_video()], 1), axis=0)
            if len(np.unique(pairs[:, 0])) != len(pairs):
                raise ValueError("a track id is shared by two videos")

    def equals(self, other: "TrackSet", *, extras: bool = True, meta: bool = True) -> bool:
        """Column-wise equality (used by round-trip tests)."""
        same = (
            self.videos.equals(other.videos, extras=extras)
            and self.frames.equals(other.frames, extras=extras)
            and self.boxes.equals(other.boxes, extras=extras)
            and self.categories == other.categories
        )
        if meta:
            same = same and self.meta == other.meta
        return same

    # ----------------------------------------------------------------- transforms
    def select_frames(self, keep: np.ndarray) -> "TrackSet":
        """Keep the frames where ``keep`` (bool, per frame row) is true, with their boxes.

        Videos left without frames are dropped; frame indices are renumbered 0..n-1.
        """
        keep = np.asarray(keep, dtype=bool)
        frame_rows = np.flatnonzero(keep)
        new_row = np.full(self.num_frames, -1, dtype=np.int64)
        new_row[frame_rows] = np.arange(frame_rows.size)
        frames = self.frames.take(frame_rows)
        box_keep = keep[self.boxes.frame]
        boxes = self.boxes.take(np.flatnonzero(box_keep))
        boxes.frame = new_row[boxes.frame]
        used_videos = np.unique(frames.video)
        vid_row = np.full(self.num_videos, -1, dtype=np.int64)
        vid_row[used_videos] = np.arange(used_videos.size)
        frames.video = vid_row[frames.video]
        voff = offsets_from_sorted(frames.video, used_videos.size)
        frames.index = np.arange(len(frames)) - np.repeat(voff[:-1], np.diff(voff))
        return replace(self, videos=self.videos.take(used_videos), frames=frames, boxes=boxes,
                       warnings=list(self.warnings))

    def select_videos(self, video_rows: Iterable[int]) -> "TrackSet":
        """Keep the given video rows (in the given order)."""
        rows = np.asarray(list(video_rows), dtype=np.int64)
        off = self.video_offsets()
        frame_rows = np.concatenate([np.arange(off[v], off[v + 1]) for v in rows]) if rows.size else np.zeros(0, np.int64)
        new_vid = np.full(self.num_videos, -1, dtype=np.int64)
        new_vid[rows] = np.arange(rows.size)
        frames = self.frames.take(frame_rows)
        frames.video = new_vid[frames.video]
        foff = self.frame_offsets()
        box_rows = (np.concatenate([np.arange(foff[f], foff[f + 1]) for f in frame_rows])
                    if frame_rows.size else np.zeros(0, np.int64))
        new_frame = np.full(self.num_frames, -1, dtype=np.int64)
        new_frame[frame_rows] = np.arange(frame_rows.size)
        boxes = self.boxes.take(box_rows)
        boxes.frame = new_frame[boxes.frame]
        return replace(self, videos=self.videos.take(rows), frames=frames, boxes=boxes,
                       warnings=list(self.warnings))

    @staticmethod
    def empty() -> "TrackSet":
        i64 = np.zeros(0, np.int64)
        obj = np.zeros(0, object)
        return TrackSet(
            videos=Videos(name=obj, id=i64, width=i64, height=i64),
            frames=Frames(video=i64, index=i64, file_name=obj, id=i64, width=i64, height=i64),
            boxes=Boxes(frame=i64, bbox=np.zeros((0, 4)), track=i64, category=i64, id=i64,
                        iscrowd=np.zeros(0, np.int8)),
        )
