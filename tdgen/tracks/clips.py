"""Windowing a TrackSet into Clips: F frames of one video and up to N track slots.

A :class:`Clip` is what the model is conditioned on:

- ``F`` frames of one video, consecutive or taken every ``step`` source frames;
- ``N`` slots; slot ``k`` is one identity (track) for the whole clip, slots are ordered by
  the track's first appearance in the clip, then by track id;
- ``boxes`` (F, N, 4) float32: ``x1, y1, x2, y2`` divided by that frame's width/height and
  clipped to [0, 1]; ``mask`` (F, N) float32: 1 where the track is present in that frame and
  its clipped box has a positive area. Absent slots hold zero boxes.

:func:`plan_clips` cuts every video into windows (``ClipSpec.stride`` source frames apart),
gives slots to the tracks of each window and applies the overflow policy when a window has
more tracks than slots. A track the policy leaves out is never lost silently: each clip lists
the ids it could not hold (``Clip.dropped_track_ids``). When tracks compete for slots, training
targets (:func:`training_targets`) always win over ignore regions and zero-confidence tracks.
Building one clip is a handful of numpy operations on the window's
boxes; Python only loops over videos, windows and split parts.

Seeds and shards are derived from the clip id with a keyed hash (:func:`clip_seed`,
:func:`stable_shard`), never from Python's ``hash()`` or a position in a list, so a clip's
result does not depend on batch size, shard count or processing order.

This module imports numpy only (no torch): ``tdgen.tracks`` stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np

from ..errors import AnnotationError, UsageError
from ..conditioning import clip_batch
from ..seeds import clip_seed, keyed_digest
from tdgen.tracks.trackset import TrackSet

__all__ = [
    "DEFAULT_FRAMES",
    "DEFAULT_SLOTS",
    "OVERFLOW_POLICIES",
    "PARTIAL_POLICIES",
    "ClipSpec",
    "Clip",
    "plan_clips",
    "training_targets",
    "select_clips",
    "clip_seed",
    "stable_shard",
    "collate",
    "safe_name",
]

DEFAULT_FRAMES = 16
"""Frames per clip of the paper and the published weights."""
DEFAULT_SLOTS = 20
"""Instance slots of the paper and the published weights (``fixed_objs = 20``)."""

Overflow = Literal["longest", "largest", "split"]
Partial = Literal["drop", "keep"]
OVERFLOW_POLICIES: tuple[str, ...] = ("longest", "largest", "split")
PARTIAL_POLICIES: tuple[str, ...] = ("drop", "keep")

_MAX_NAME = 160  # longest sanitised video name kept verbatim in a clip id


# --------------------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class ClipSpec:
    """How to cut videos into clips.

    Attributes:
        frames: F, frames per clip.
        stride: source frames from one window start to the next; ``None`` means
            ``frames * step`` (non-overlapping windows). See :attr:`window_stride`.
        step: source frames between consecutive frames of a clip (1 = consecutive).
        max_slots: N, track slots per clip.
        overflow: what to do with a window that has more than N tracks. ``"longest"`` and
            ``"largest"`` keep N tracks ranked first by whether the track is a training target
            (:func:`training_targets`: targets before ignore regions and conf-0 tracks), then:
            ``"longest"`` by frames present in the clip (ties: larger mean normalised box
            area, then lower track id), ``"largest"`` by mean normalised box area (ties: more
            frames, then lower track id). The rest are listed in ``Clip.dropped_track_ids``.
            ``"split"`` emits several clips for the window, the tracks taken in slot order
            and cut into ``ceil(T / N)`` contiguous parts of near-equal size, so every track
            is in exactly one part (nothing dropped).
        min_tracks: windows with fewer tracks (that would get a slot) are skipped. For
            ``"split"`` the count is the window's, not a part's.
        partial: a video tail too short for a full window: ``"drop"`` it, or ``"keep"`` it as
            one shorter clip (F' < F frames). A video shorter than one window counts as a
            tail. A tail is only kept when it reaches frames no full window covers.
        include_crowd: give slots to ``iscrowd`` boxes too (default: they get none).
        min_visibility: boxes with a visibility below this are treated as absent (mask 0).
            Boxes whose visibility is unknown (NaN) are kept. Needs a visibility column.
    """

    frames: int = DEFAULT_FRAMES
    stride: int | None = None
    step: int = 1
    max_slots: int = DEFAULT_SLOTS
    overflow: Overflow = "longest"
    min_tracks: int = 1
    partial: Partial = "drop"
    include_crowd: bool = False
    min_visibility: float | None = None

    def __post_init__(self) -> None:
        for name in ("frames", "step", "max_slots"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise UsageError(f"clip {name} must be a positive integer, got {value!r}")
        if self.stride is not None and (
            not isinstance(self.stride, (int, np.integer)) or isinstance(self.stride, bool) or self.stride < 1
        ):
            raise UsageError(f"clip stride must be a positive integer, got {self.stride!r}")
        if not isinstance(self.min_tracks, (int, np.integer)) or self.min_tracks < 0:
            raise UsageError(f"min_tracks must be a non-negative integer, got {self.min_tracks!r}")
        if self.overflow not in OVERFLOW_POLICIES:
            raise UsageError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {self.overflow!r}")
        if self.partial not in PARTIAL_POLICIES:
            raise UsageError(f"partial must be one of {', '.join(PARTIAL_POLICIES)}, got {self.partial!r}")
        if self.min_visibility is not None and not np.isfinite(self.min_visibility):
            raise UsageError(f"min_visibility must be a number, got {self.min_visibility!r}")

    @property
    def window_stride(self) -> int:
        """Source frames between window starts (``stride``, or ``frames * step`` if unset)."""
        return int(self.stride) if self.stride is not None else int(self.frames) * int(self.step)

    @property
    def span(self) -> int:
        """Source frames from a full clip's first frame to its last, both included."""
        return (int(self.frames) - 1) * int(self.step) + 1


# --------------------------------------------------------------------------------------- clip
@dataclass
class Clip:
    """F frames of one video with up to N track slots (see the module docstring).

    ``F`` is ``len(frame_rows)`` (smaller than the spec's frames for a kept partial tail),
    ``N`` is ``boxes.shape[1]`` (the spec's ``max_slots``); the first ``num_tracks`` slots are
    used, the others are all-zero with mask 0.
    """

    clip_id: str  # "<video>_<start:06d>" [+ "_p<k>" for split parts]; filesystem-safe
    video: int  # row in ts.videos
    video_name: str
    start: int  # 0-based index of the first frame in its video
    step: int  # source frames between consecutive clip frames
    frame_rows: np.ndarray  # (F,) int64 rows in ts.frames
    frame_indices: np.ndarray  # (F,) int64 0-based indices in the video
    frame_numbers: np.ndarray  # (F,) int64 source frame numbers (index + 1 when unknown)
    width: int  # first frame's width in source pixels
    height: int  # first frame's height in source pixels
    track_ids: np.ndarray  # (N_used,) int64, slot order
    categories: np.ndarray  # (N_used,) int64 category ids, slot order
    category_names: list[str]  # (N_used,) category names with "_" -> " "
    boxes: np.ndarray  # (F, N, 4) float32 normalised clipped xyxy, zeros where absent
    mask: np.ndarray  # (F, N) float32, 1 = present
    boxes_xywh: np.ndarray  # (F, N, 4) float64 source-pixel x, y, w, h as given (not clipped)
    box_rows: np.ndarray  # (F, N) int64 rows in ts.boxes, -1 where absent
    part: int = 0  # split part index
    num_parts: int = 1  # parts of this window (> 1 only with overflow="split")
    partial: bool = False  # a kept video tail with fewer frames than the spec asks for
    window_tracks: int = 0  # tracks present in the window before the overflow policy
    # tracks of the window the overflow policy left out, ascending track id (empty for split parts)
    dropped_track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dropped_targets: int = 0  # how many of those were training targets
    targets: np.ndarray | None = None  # (N_used,) bool, slot order: the track is a training target
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """F."""
        return int(self.boxes.shape[0])

    @property
    def num_slots(self) -> int:
        """N, used or not."""
        return int(self.boxes.shape[1])

    @property
    def num_tracks(self) -> int:
        """Slots holding a track."""
        return int(self.track_ids.size)

    @property
    def dropped_tracks(self) -> int:
        """Tracks of the window left out of this clip's slots (0 for ``split``: see the parts)."""
        return 0 if self.num_parts > 1 else max(0, self.window_tracks - self.num_tracks)


# --------------------------------------------------------------------------------------- names
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """``name`` with every run of characters outside ``[A-Za-z0-9._-]`` replaced by ``_``.

    Path separators, spaces and non-ASCII characters go; a leading dot (``.``, ``..``,
    hidden files) becomes ``_``; an empty result becomes ``video``; a very long name is
    shortened and given a hash suffix so it stays unique.
    """
    text = _UNSAFE.sub("_", str(name))
    if text.startswith("."):
        text = "_" + text[1:]
    if not text:
        text = "video"
    if len(text) > _MAX_NAME:
        text = text[:_MAX_NAME] + "-" + keyed_digest(str(name), b"tdgen-name").hex()
    return text


def _video_id_names(names: Sequence[str]) -> list[str]:
    """Filesystem-safe, unique clip-id prefixes for all video names of a TrackSet.

    Computed over the whole set (not the selected videos), so a clip's id does not depend
    on which videos were asked for. Names that sanitise to the same text get a short hash
    of the original name; exact duplicate names also get their row.
    """
    safe = [safe_name(n) for n in names]
    seen: dict[str, int] = {}
    for s in safe:
        seen[s] = seen.get(s, 0) + 1
    dup_names: dict[str, int] = {}
    for n in names:
        dup_names[str(n)] = dup_names.get(str(n), 0) + 1
    out = []
    for row, (n, s) in enumerate(zip(names, safe)):
        if seen[s] > 1:
            s = f"{s}-{keyed_digest(str(n), b'tdgen-name', 4).hex()}"
            if dup_names[str(n)] > 1:
                s = f"{s}-v{row}"
        out.append(s)
    return out


# --------------------------------------------------------------------------------------- seeds
def stable_shard(clip_id: str, num_shards: int) -> int:
    """The shard (``0 <= k < num_shards``) a clip belongs to, from a stable hash of its id."""
    if not isinstance(num_shards, (int, np.integer)) or num_shards < 1:
        raise UsageError(f"number of shards must be a positive integer, got {num_shards!r}")
    return int.from_bytes(keyed_digest(str(clip_id), b"tdgen-shard"), "little") % int(num_shards)


def select_clips(clips: Sequence[Clip], max_clips: int | None, seed: int) -> list[Clip]:
    """A seeded random subset of at most ``max_clips`` clips, in their original order.

    ``max_clips=None`` or ``>= len(clips)`` keeps every clip.
    """
    clips = list(clips)
    if max_clips is None or max_clips >= len(clips):
        return clips
    if max_clips < 0:
        raise UsageError(f"max clips must be >= 0, got {max_clips}")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(clips), size=int(max_clips), replace=False))
    return [clips[i] for i in chosen]


# --------------------------------------------------------------------------------------- planning
@dataclass
class _VideoBoxes:
    """The boxes of one video that may get a slot, with their normalised clipped xyxy."""

    rows: np.ndarray  # (K,) int64 rows in ts.boxes, sorted by frame
    frame_index: np.ndarray  # (K,) int64
    track: np.ndarray  # (K,) int64
    category: np.ndarray  # (K,) int64
    xyxy: np.ndarray  # (K, 4) float32 normalised clipped
    area: np.ndarray  # (K,) float64 normalised clipped area
    ignore: np.ndarray  # (K,) bool: crowd or ``ignore`` box (an ignore region)
    conf: np.ndarray  # (K,) float64 MOT conf, NaN = unknown
    wanted: np.ndarray | None  # (K,) bool from plan_clips' ``wanted`` (None = all)
    starts: np.ndarray  # (n + 1,) offsets: boxes of frame index i are [starts[i], starts[i+1])
    width: np.ndarray  # (n,) float64 frame widths (the video's where a frame's is unknown)
    height: np.ndarray  # (n,) float64 frame heights


def _frame_sizes(ts: TrackSet, v: int, lo: int, hi: int, needed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of frames ``lo:hi`` (video ``v``), the video's size where unknown.

    Raises when a size stays unknown and ``needed`` (the video has boxes, or its empty
    clips are wanted).
    """
    fw = ts.frames.width[lo:hi].astype(np.float64)
    fh = ts.frames.height[lo:hi].astype(np.float64)
    fw = np.where(fw > 0, fw, float(ts.videos.width[v]))
    fh = np.where(fh > 0, fh, float(ts.videos.height[v]))
    bad = ~((fw > 0) & (fh > 0))
    if needed and bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise AnnotationError(
            ts.source or None,
            f"video {ts.videos.name[v]!r}, frame {ts.frames.file_name[lo + first]!r}",
            "frame size unknown (width/height 0), boxes cannot be normalised",
            hint="give the images' width and height in the annotation file",
        )
    return fw, fh


def _flag_true(value: object) -> bool:
    """Whether an annotation's ``ignore`` value marks an ignore region (true or a non-zero number)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return bool(value == value and value != 0)  # NaN: not set
    return False


_ignore_of = np.frompyfunc(lambda d: isinstance(d, dict) and _flag_true(d.get("ignore")), 1, 1)


def _box_ignore(ts: TrackSet, b0: int, b1: int) -> np.ndarray:
    """(b1 - b0,) bool: boxes that are ignore regions (``iscrowd``, or ``"ignore"`` in their extras)."""
    flags = ts.boxes.iscrowd[b0:b1] != 0
    if ts.boxes.extra is not None and b1 > b0:
        flags |= _ignore_of(ts.boxes.extra[b0:b1]).astype(bool)
    return flags


def _video_boxes(ts: TrackSet, spec: ClipSpec, v: int, voff: np.ndarray, foff: np.ndarray,
                 wanted: np.ndarray | None) -> _VideoBoxes:
    lo, hi = int(voff[v]), int(voff[v + 1])
    b0, b1 = int(foff[lo]), int(foff[hi])
    fw, fh = _frame_sizes(ts, v, lo, hi, needed=b1 > b0 or spec.min_tracks == 0)
    rows = np.arange(b0, b1, dtype=np.int64)
    bx = ts.boxes
    local = bx.frame[b0:b1] - lo
    bbox = bx.bbox[b0:b1].astype(np.float64)
    w, h = fw[local], fh[local]
    xyxy = np.stack([bbox[:, 0] / w, bbox[:, 1] / h, (bbox[:, 0] + bbox[:, 2]) / w, (bbox[:, 1] + bbox[:, 3]) / h], 1)
    xyxy = np.clip(xyxy, 0.0, 1.0).astype(np.float32)  # NaN stays NaN and fails the test below
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    if not spec.include_crowd:
        keep &= bx.iscrowd[b0:b1] == 0
    if spec.min_visibility is not None:
        vis = bx.visibility[b0:b1]
        keep &= ~(vis < spec.min_visibility)  # NaN (unknown) counts as visible
    xyxy = xyxy[keep]
    fidx = local[keep]
    area = (xyxy[:, 2].astype(np.float64) - xyxy[:, 0]) * (xyxy[:, 3].astype(np.float64) - xyxy[:, 1])
    conf = bx.conf[b0:b1][keep].astype(np.float64) if bx.conf is not None else np.full(int(keep.sum()), np.nan)
    return _VideoBoxes(
        rows=rows[keep],
        frame_index=fidx,
        track=bx.track[b0:b1][keep],
        category=bx.category[b0:b1][keep],
        xyxy=xyxy,
        area=area,
        ignore=_box_ignore(ts, b0, b1)[keep],
        conf=conf,
        wanted=None if wanted is None else wanted[b0:b1][keep],
        starts=np.searchsorted(fidx, np.arange(hi - lo + 1)).astype(np.int64),
        width=fw,
        height=fh,
    )


def _window_starts(n: int, spec: ClipSpec) -> list[tuple[int, int]]:
    """``(start, num_frames)`` of the windows of a video with ``n`` frames."""
    F, step, stride = int(spec.frames), int(spec.step), spec.window_stride
    out: list[tuple[int, int]] = []
    last_covered = -1
    for s in range(0, n, stride):
        count = (n - 1 - s) // step + 1
        if count >= F:
            out.append((s, F))
            last_covered = s + (F - 1) * step
            continue
        # The first start without a full window: the tail. Later starts are shorter still.
        if spec.partial == "keep" and s + (count - 1) * step > last_covered:
            out.append((s, count))
        break
    return out


def training_targets(ignore: np.ndarray, conf: np.ndarray | None = None,
                     wanted: np.ndarray | None = None) -> np.ndarray:
    """Which tracks are training targets, as a (T,) bool array; one entry per track.

    A target is not an ignore region (``ignore``: crowd / ``ignore`` boxes), does not have a
    confidence of 0 or below (``conf``: the MOT conf column, where 0 marks a box to ignore; NaN =
    unknown counts as a target), and is ``wanted`` (a per-track mask such as a class filter's;
    ``None`` = every track). Overflow ranking puts targets first.
    """
    target = ~np.asarray(ignore, dtype=bool)
    if conf is not None:
        c = np.asarray(conf, dtype=np.float64)
        target &= ~(c <= 0)  # NaN compares False: unknown confidence stays a target
    if wanted is not None:
        target &= np.asarray(wanted, dtype=bool)
    return target


def _rank_groups(
    uniq: np.ndarray, first: np.ndarray, count: np.ndarray, mean_area: np.ndarray, target: np.ndarray,
    spec: ClipSpec,
) -> list[np.ndarray]:
    """Tracks (indices into ``uniq``) of each clip of a window, each group in slot order."""
    N = int(spec.max_slots)
    slot_order = np.lexsort((uniq, first))  # first appearance, then track id
    T = uniq.size
    if T <= N:
        return [slot_order]
    if spec.overflow == "split":
        return [g for g in np.array_split(slot_order, -(-T // N))]
    # lexsort's last key is the primary one: targets (not_target == False) come first
    not_target = ~target
    if spec.overflow == "longest":
        ranked = np.lexsort((uniq, -mean_area, -count, not_target))
    else:  # "largest"
        ranked = np.lexsort((uniq, -count, -mean_area, not_target))
    keep = np.zeros(T, dtype=bool)
    keep[ranked[:N]] = True
    return [slot_order[keep[slot_order]]]


def _resolve_videos(ts: TrackSet, videos: Iterable[str] | str | None) -> np.ndarray:
    if videos is None:
        return np.arange(ts.num_videos, dtype=np.int64)
    wanted = [videos] if isinstance(videos, str) else [str(v) for v in videos]
    names = [str(n) for n in ts.videos.name]
    index: dict[str, list[int]] = {}
    for row, n in enumerate(names):
        index.setdefault(n, []).append(row)
    unknown = [w for w in wanted if w not in index]
    if unknown:
        sample = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        shown = ", ".join(repr(u) for u in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise UsageError(
            f"unknown video name(s) {shown}; {len(names)} videos in {ts.source or 'the input'}"
            + (f", e.g. {sample}" if names else "")
        )
    rows = sorted({r for w in wanted for r in index[w]})
    return np.asarray(rows, dtype=np.int64)


def plan_clips(ts: TrackSet, spec: ClipSpec | None = None, *, videos: Iterable[str] | str | None = None,
               wanted: np.ndarray | None = None) -> list[Clip]:
    """Cut ``ts`` into clips, ordered by video row, then window start, then split part.

    Args:
        ts: the annotations.
        spec: how to cut (default ``ClipSpec()``: 16 frames, 20 slots, non-overlapping).
        videos: names of the videos to use (default: all). Unknown names raise
            :class:`UsageError`.
        wanted: (M,) bool per box of ``ts``, e.g. the boxes of the categories a class filter
            keeps as targets; a track is wanted in a window when any of its boxes there is.
            ``None``: every track. Only the overflow ranking uses it (see
            :func:`training_targets`); unwanted tracks still get slots when there is room.

    Raises:
        UsageError: unknown video names; ``min_visibility`` without a visibility column;
            ``wanted`` of the wrong length.
        AnnotationError: a planned video has frames of unknown size.
    """
    spec = spec or ClipSpec()
    if wanted is not None:
        wanted = np.asarray(wanted, dtype=bool)
        if wanted.shape != (ts.num_boxes,):
            raise UsageError(f"wanted must hold one flag per box ({ts.num_boxes}), got shape {wanted.shape}")
    rows = _resolve_videos(ts, videos)
    if spec.min_visibility is not None and ts.boxes.visibility is None:
        raise UsageError(f"min_visibility needs box visibilities; {ts.source or 'the input'} has none")
    voff = ts.video_offsets()
    foff = ts.frame_offsets()
    id_names = _video_id_names([str(n) for n in ts.videos.name])
    cat_names = {k: v.replace("_", " ") for k, v in ts.category_names().items()}
    N = int(spec.max_slots)
    step = int(spec.step)
    numbers_all = ts.frames.number
    clips: list[Clip] = []
    for v in rows.tolist():
        lo, hi = int(voff[v]), int(voff[v + 1])
        n = hi - lo
        windows = _window_starts(n, spec)
        if not windows:
            continue
        vb = _video_boxes(ts, spec, v, voff, foff, wanted)
        idx = np.arange(n, dtype=np.int64)
        if numbers_all is None:
            numbers = idx + 1
        else:
            num = numbers_all[lo:hi]
            numbers = np.where(np.isfinite(num), np.round(np.nan_to_num(num)), idx + 1).astype(np.int64)
        video_name = str(ts.videos.name[v])
        for s, nf in windows:
            last = s + (nf - 1) * step
            a, b = int(vb.starts[s]), int(vb.starts[last + 1])
            rel = vb.frame_index[a:b] - s
            sel = np.flatnonzero(rel % step == 0) + a if step > 1 else np.arange(a, b)
            pos = (vb.frame_index[sel] - s) // step
            uniq, inv = np.unique(vb.track[sel], return_inverse=True)
            T = uniq.size
            if T < spec.min_tracks:
                continue
            # One box per (frame, track), the first in source order; the result is sorted
            # by track, then frame.
            _, firsts = np.unique(inv * nf + pos, return_index=True)
            sel, pos, inv = sel[firsts], pos[firsts], inv[firsts]
            track_start = np.searchsorted(inv, np.arange(T + 1))
            first = pos[track_start[:-1]]  # first appearance (clip frame) of each track
            track_cat = vb.category[sel[track_start[:-1]]]  # category of that first box
            count = np.diff(track_start)
            mean_area = np.add.reduceat(vb.area[sel], track_start[:-1]) / count if T else np.zeros(0)
            target = _window_targets(vb, sel, track_start)
            groups = _rank_groups(uniq, first, count, mean_area, target, spec)
            if len(groups) == 1 and groups[0].size < T:
                left = np.ones(T, dtype=bool)
                left[groups[0]] = False
                dropped_ids, dropped_targets = uniq[left].astype(np.int64), int(target[left].sum())
            else:
                dropped_ids, dropped_targets = np.zeros(0, np.int64), 0
            frame_idx = s + step * np.arange(nf, dtype=np.int64)
            base_id = f"{id_names[v]}_{s:06d}"
            for k, group in enumerate(groups):
                slot_of = np.full(T, -1, dtype=np.int64)
                slot_of[group] = np.arange(group.size)
                slot = slot_of[inv]
                m = slot >= 0
                p, sl, src = pos[m], slot[m], sel[m]
                boxes = np.zeros((nf, N, 4), dtype=np.float32)
                mask = np.zeros((nf, N), dtype=np.float32)
                xywh = np.zeros((nf, N, 4), dtype=np.float64)
                box_rows = np.full((nf, N), -1, dtype=np.int64)
                boxes[p, sl] = vb.xyxy[src]
                mask[p, sl] = 1.0
                box_rows[p, sl] = vb.rows[src]
                xywh[p, sl] = ts.boxes.bbox[vb.rows[src]]
                cats = track_cat[group]
                clips.append(
                    Clip(
                        clip_id=base_id if len(groups) == 1 else f"{base_id}_p{k}",
                        video=int(v),
                        video_name=video_name,
                        start=int(s),
                        step=step,
                        frame_rows=lo + frame_idx,
                        frame_indices=frame_idx.copy(),
                        frame_numbers=numbers[frame_idx],
                        width=int(vb.width[s]),
                        height=int(vb.height[s]),
                        track_ids=uniq[group].astype(np.int64),
                        categories=cats,
                        category_names=[cat_names.get(int(c), str(int(c))) for c in cats],
                        boxes=boxes,
                        mask=mask,
                        boxes_xywh=xywh,
                        box_rows=box_rows,
                        part=k,
                        num_parts=len(groups),
                        partial=nf < int(spec.frames),
                        window_tracks=int(T),
                        dropped_track_ids=dropped_ids,
                        dropped_targets=dropped_targets,
                        targets=target[group],
                    )
                )
    return clips


def _window_targets(vb: _VideoBoxes, sel: np.ndarray, track_start: np.ndarray) -> np.ndarray:
    """Per track of a window (``sel`` sorted by track, runs at ``track_start``): is it a target?

    Over the track's boxes in the window: an ignore region when all of them are, its conf the
    highest known one, wanted when any box is.
    """
    T = track_start.size - 1
    if T == 0:
        return np.zeros(0, dtype=bool)
    starts = track_start[:-1]
    ignore = np.logical_and.reduceat(vb.ignore[sel], starts)
    conf = np.fmax.reduceat(vb.conf[sel], starts)  # fmax skips NaN: all unknown stays NaN
    wanted = None if vb.wanted is None else np.logical_or.reduceat(vb.wanted[sel], starts)
    return training_targets(ignore, conf, wanted)


# --------------------------------------------------------------------------------------- batching
def collate(clips: Sequence[Clip], num_slots: int | None = None) -> dict[str, np.ndarray]:
    """Stack clips with the same number of frames into a batch of numpy arrays.

    Args:
        clips: B clips, all with the same F.
        num_slots: N of the batch (default: the largest ``num_slots`` of the clips). Clips
            with fewer slots are padded with absent slots.

    Returns:
        ``boxes`` (B, F, N, 4) float32, ``mask`` (B, F, N) float32, ``category_names``
        (B, N) object (``""`` for unused slots), ``track_ids`` and ``categories`` (B, N)
        int64 (-1 for unused slots), ``frame_numbers`` (B, F) int64, ``width``/``height``
        (B,) int64, ``clip_ids`` (B,) object.

    Raises:
        ValueError: no clips, clips with different F, or a clip using more than ``num_slots``.
    """
    clips = list(clips)
    if not clips:
        raise ValueError("collate needs at least one clip")
    cond = clip_batch(clips, num_slots=num_slots)  # boxes, masks and names: the one adapter's rule
    B, N = cond.category_names.shape
    track_ids = np.full((B, N), -1, dtype=np.int64)
    categories = np.full((B, N), -1, dtype=np.int64)
    for i, c in enumerate(clips):
        track_ids[i, :c.num_tracks] = c.track_ids
        categories[i, :c.num_tracks] = c.categories
    boxes, mask, names = cond.boxes, cond.masks, cond.category_names
    return {
        "boxes": boxes,
        "mask": mask,
        "category_names": names,
        "track_ids": track_ids,
        "categories": categories,
        "frame_numbers": np.stack([c.frame_numbers for c in clips]).astype(np.int64),
        "width": np.asarray([c.width for c in clips], dtype=np.int64),
        "height": np.asarray([c.height for c in clips], dtype=np.int64),
        "clip_ids": np.asarray([c.clip_id for c in clips], dtype=object),
    }
