"""Tests of tdgen.tracks.clips: windowing a TrackSet into clips with track slots."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdgen.tracks.clips import (
    DEFAULT_FRAMES,
    DEFAULT_SLOTS,
    Clip,
    ClipSpec,
    clip_seed,
    collate,
    plan_clips,
    safe_name,
    select_clips,
    stable_shard,
    training_targets,
)
from tdgen.errors import AnnotationError, UsageError


def box(video, frame, track, x=10, y=10, w=20, h=20, cat=1):
    return (video, frame, track, cat, x, y, w, h)


def full_track(video, track, frames, **kw):
    return [box(video, f, track, **kw) for f in frames]


# ------------------------------------------------------------------------------ spec
def test_defaults_follow_the_paper():
    spec = ClipSpec()
    assert (spec.frames, spec.max_slots, spec.step) == (DEFAULT_FRAMES, DEFAULT_SLOTS, 1) == (16, 20, 1)
    assert spec.window_stride == 16 and spec.span == 16
    assert ClipSpec(frames=4, step=3).window_stride == 12
    assert ClipSpec(frames=4, step=3).span == 10


@pytest.mark.parametrize(
    "kw",
    [dict(frames=0), dict(step=0), dict(max_slots=0), dict(stride=0), dict(min_tracks=-1),
     dict(overflow="biggest"), dict(partial="pad"), dict(min_visibility=float("nan"))],
)
def test_bad_spec_is_a_usage_error(kw):
    with pytest.raises(UsageError):
        ClipSpec(**kw)


# ------------------------------------------------------------------------------ slots and boxes
def test_slot_order_is_first_appearance_then_track_id(trackset_from_rows):
    rows = [box("v", 2, 5), box("v", 0, 9), box("v", 0, 3), box("v", 1, 1), box("v", 3, 9)]
    ts = trackset_from_rows(rows, num_frames={"v": 4})
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=6))
    assert clip.track_ids.tolist() == [3, 9, 1, 5]
    assert clip.num_tracks == 4 and clip.num_slots == 6
    assert clip.mask.tolist() == [
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 1, 0, 0, 0, 0],
    ]
    assert clip.boxes.dtype == np.float32 and clip.mask.dtype == np.float32
    assert clip.boxes.shape == (4, 6, 4) and clip.boxes_xywh.shape == (4, 6, 4)


def test_track_absent_in_middle_frames_has_zero_mask_and_boxes(trackset_from_rows):
    rows = full_track("v", 1, [0, 3]) + full_track("v", 2, range(4), x=50)
    ts = trackset_from_rows(rows)
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=3))
    assert clip.track_ids.tolist() == [1, 2]
    assert clip.mask[:, 0].tolist() == [1, 0, 0, 1]
    assert np.all(clip.boxes[1:3, 0] == 0) and np.all(clip.boxes_xywh[1:3, 0] == 0)
    assert clip.box_rows[1:3, 0].tolist() == [-1, -1]
    assert np.all(clip.boxes[:, 2] == 0) and np.all(clip.mask[:, 2] == 0)  # unused slot


def test_boxes_are_normalised_clipped_xyxy(trackset_from_rows):
    rows = [
        box("v", 0, 1, x=20, y=10, w=40, h=30),  # inside
        box("v", 0, 2, x=-10, y=80, w=40, h=40),  # partly outside: clipped, present
        box("v", 0, 3, x=250, y=10, w=10, h=10),  # entirely outside: absent
        box("v", 0, 4, x=5, y=5, w=0, h=10),  # no area: absent
        box("v", 1, 3, x=190, y=90, w=20, h=20),  # track 3 partly inside in frame 1
    ]
    ts = trackset_from_rows(rows, sizes={"v": (200, 100)})
    (clip,) = plan_clips(ts, ClipSpec(frames=2, max_slots=4))
    assert clip.track_ids.tolist() == [1, 2, 3]  # track 4 never has an area: no slot
    assert (clip.width, clip.height) == (200, 100)
    np.testing.assert_allclose(clip.boxes[0, 0], [0.1, 0.1, 0.3, 0.4], atol=1e-7)
    np.testing.assert_allclose(clip.boxes[0, 1], [0.0, 0.8, 0.15, 1.0], atol=1e-7)
    assert clip.mask[0].tolist() == [1, 1, 0, 0]
    assert np.all(clip.boxes[0, 2] == 0)
    assert clip.mask[1].tolist() == [0, 0, 1, 0]
    np.testing.assert_allclose(clip.boxes[1, 2], [0.95, 0.9, 1.0, 1.0], atol=1e-7)
    # boxes_xywh: the source box as given, in pixels
    np.testing.assert_array_equal(clip.boxes_xywh[0, 1], [-10, 80, 40, 40])
    np.testing.assert_array_equal(clip.boxes_xywh[1, 2], [190, 90, 20, 20])
    assert np.all((clip.boxes >= 0) & (clip.boxes <= 1))


def test_each_frame_is_normalised_by_its_own_size(trackset_from_rows):
    ts = trackset_from_rows(full_track("v", 1, [0, 1], x=50, y=50, w=50, h=50), sizes={"v": (100, 100)})
    ts.frames.width[1] = 200
    ts.frames.height[1] = 400
    (clip,) = plan_clips(ts, ClipSpec(frames=2))
    np.testing.assert_allclose(clip.boxes[0, 0], [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(clip.boxes[1, 0], [0.25, 0.125, 0.5, 0.25])
    assert (clip.width, clip.height) == (100, 100)  # the first frame's


def test_unknown_frame_size_is_an_annotation_error(trackset_from_rows):
    ts = trackset_from_rows(full_track("v", 1, [0, 1]))
    ts.frames.width[:] = 0
    ts.videos.width[:] = 0
    with pytest.raises(AnnotationError, match="frame size unknown"):
        plan_clips(ts, ClipSpec(frames=2))
    ts.videos.width[:] = 100  # the video's size fills in
    assert plan_clips(ts, ClipSpec(frames=2))[0].width == 100


def test_categories_and_names(trackset_from_rows):
    rows = [box("v", 0, 1, cat=7), box("v", 0, 2, cat=8), box("v", 0, 3, cat=9)]
    cats = [{"id": 7, "name": "giant_panda"}, {"id": 8, "name": "person"}]
    ts = trackset_from_rows(rows, categories=cats)
    (clip,) = plan_clips(ts, ClipSpec(frames=1))
    assert clip.categories.tolist() == [7, 8, 9]
    assert clip.category_names == ["giant panda", "person", "9"]


def test_crowd_and_visibility(trackset_from_rows):
    rows = [box("v", 0, 1), box("v", 0, 2), box("v", 0, 3)]
    ts = trackset_from_rows(rows, iscrowd=[0, 1, 0], visibility=[0.9, 0.9, 0.1])
    assert plan_clips(ts, ClipSpec(frames=1))[0].track_ids.tolist() == [1, 3]
    assert plan_clips(ts, ClipSpec(frames=1, include_crowd=True))[0].track_ids.tolist() == [1, 2, 3]
    assert plan_clips(ts, ClipSpec(frames=1, min_visibility=0.5))[0].track_ids.tolist() == [1]
    ts_novis = trackset_from_rows(rows)
    with pytest.raises(UsageError, match="visibilit"):
        plan_clips(ts_novis, ClipSpec(frames=1, min_visibility=0.5))


def test_duplicate_frame_track_keeps_first_box(trackset_from_rows):
    rows = [box("v", 0, 1, x=10), box("v", 0, 1, x=30)]
    ts = trackset_from_rows(rows)
    (clip,) = plan_clips(ts, ClipSpec(frames=1))
    assert clip.num_tracks == 1
    assert clip.boxes_xywh[0, 0, 0] == 10


def test_frame_numbers_from_source(trackset_from_rows):
    ts = trackset_from_rows(full_track("v", 1, range(4)), frame_numbers={"v": [5, 10, 15, 20]})
    clip = plan_clips(ts, ClipSpec(frames=2, step=2))[0]
    assert clip.frame_indices.tolist() == [0, 2]
    assert clip.frame_numbers.tolist() == [5, 15]
    assert clip.frame_rows.tolist() == [0, 2]


# ------------------------------------------------------------------------------ windows
def _starts(clips):
    return [(c.video_name, c.start, c.num_frames) for c in clips]


def test_window_starts_stride_and_step(trackset_from_rows):
    ts = trackset_from_rows(full_track("v", 1, range(40)))
    assert [c.start for c in plan_clips(ts, ClipSpec(frames=8))] == [0, 8, 16, 24, 32]
    assert [c.start for c in plan_clips(ts, ClipSpec(frames=8, stride=4))] == list(range(0, 33, 4))
    clips = plan_clips(ts, ClipSpec(frames=8, step=2))  # span 15, stride 16
    assert [c.start for c in clips] == [0, 16]
    assert clips[1].frame_indices.tolist() == list(range(16, 31, 2))
    assert clips[0].clip_id == "v_000000" and clips[1].clip_id == "v_000016"
    clips = plan_clips(ts, ClipSpec(frames=8, step=2, stride=5))
    assert [c.start for c in clips] == [0, 5, 10, 15, 20, 25]  # 25 + 14 = 39 is the last frame


def test_partial_tail(trackset_from_rows):
    ts = trackset_from_rows(full_track("v", 1, range(20)) + full_track("short", 2, range(5)))
    assert _starts(plan_clips(ts, ClipSpec(frames=8))) == [("v", 0, 8), ("v", 8, 8)]
    kept = plan_clips(ts, ClipSpec(frames=8, partial="keep"))
    assert _starts(kept) == [("v", 0, 8), ("v", 8, 8), ("v", 16, 4), ("short", 0, 5)]
    assert [c.partial for c in kept] == [False, False, True, True]
    assert kept[2].boxes.shape == (4, DEFAULT_SLOTS, 4) and kept[2].mask.shape == (4, DEFAULT_SLOTS)
    # a strided tail: frames 16 and 18
    tail = plan_clips(ts, ClipSpec(frames=4, step=2, partial="keep"))
    assert _starts(tail)[-2] == ("v", 16, 2) and tail[-2].frame_indices.tolist() == [16, 18]


def test_partial_tail_only_when_it_adds_frames(trackset_from_rows):
    ts = trackset_from_rows(full_track("v", 1, range(20)))
    clips = plan_clips(ts, ClipSpec(frames=8, stride=2, partial="keep"))  # last full window ends at 19
    assert all(c.num_frames == 8 for c in clips) and clips[-1].start == 12
    ts = trackset_from_rows(full_track("v", 1, range(21)))
    clips = plan_clips(ts, ClipSpec(frames=8, stride=2, partial="keep"))
    assert _starts(clips)[-1] == ("v", 14, 7)


def test_min_tracks_skips_windows(trackset_from_rows):
    rows = full_track("v", 1, range(4)) + full_track("v", 2, range(2, 4))  # window 2 has 2 tracks
    ts = trackset_from_rows(rows, num_frames={"v": 6})
    assert [c.start for c in plan_clips(ts, ClipSpec(frames=2))] == [0, 2]  # frames 4-5 empty
    assert [c.start for c in plan_clips(ts, ClipSpec(frames=2, min_tracks=2))] == [2]
    empty = plan_clips(ts, ClipSpec(frames=2, min_tracks=0))
    assert [c.start for c in empty] == [0, 2, 4]
    assert empty[2].num_tracks == 0 and not empty[2].mask.any()


def test_videos_selection_and_order(trackset_from_rows):
    rows = full_track("b", 1, range(2)) + full_track("a", 2, range(2)) + full_track("c", 3, range(2))
    ts = trackset_from_rows(rows)
    assert [c.video_name for c in plan_clips(ts, ClipSpec(frames=2))] == ["b", "a", "c"]
    assert [c.video_name for c in plan_clips(ts, ClipSpec(frames=2), videos=["c", "b"])] == ["b", "c"]
    assert [c.video_name for c in plan_clips(ts, ClipSpec(frames=2), videos="a")] == ["a"]
    with pytest.raises(UsageError, match=r"'nope'.*b, a, c"):
        plan_clips(ts, ClipSpec(frames=2), videos=["a", "nope"])


def test_clip_ids_are_filesystem_safe_and_unique(trackset_from_rows):
    rows = full_track("train/a b:c", 1, [0]) + full_track("x/y", 2, [0]) + full_track("x_y", 3, [0])
    rows += full_track("..", 4, [0])
    ts = trackset_from_rows(rows)
    ids = [c.clip_id for c in plan_clips(ts, ClipSpec(frames=1))]
    assert ids[0] == "train_a_b_c_000000"
    assert len(set(ids)) == 4
    assert all("/" not in i and "\\" not in i and not i.startswith(".") for i in ids)
    assert ids[1].startswith("x_y-") and ids[2].startswith("x_y-")
    assert safe_name("é/ü") == "_" and safe_name("") == "video"
    assert len(safe_name("a" * 1000)) < 200


# ------------------------------------------------------------------------------ overflow
def _overflow_set(trackset_from_rows):
    # 4 frames; N = 2. area: 10x10=100, 20x20=400, 30x30=900 px in a 100x100 frame
    rows = (
        full_track("v", 10, [1, 2, 3], w=10, h=10)  # 3 frames, small; first appears in frame 1
        + full_track("v", 11, [0, 1], w=30, h=30)  # 2 frames, large
        + full_track("v", 12, [0, 1, 2], w=20, h=20)  # 3 frames, medium
        + full_track("v", 13, [3], w=40, h=40)  # 1 frame, largest
        + full_track("v", 14, [1, 2, 3], w=10, h=10)  # 3 frames, small, ties with 10
    )
    return trackset_from_rows(rows)


def test_overflow_longest(trackset_from_rows):
    ts = _overflow_set(trackset_from_rows)
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=2, overflow="longest"))
    # 3-frame tracks: 10, 12, 14; 12 is larger; 10 beats 14 (same area) by lower id.
    # slot order: 12 appears in frame 0, 10 in frame 1
    assert clip.track_ids.tolist() == [12, 10]
    assert clip.window_tracks == 5 and clip.dropped_tracks == 3
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=3, overflow="longest"))
    assert clip.track_ids.tolist() == [12, 10, 14]


def test_overflow_largest(trackset_from_rows):
    ts = _overflow_set(trackset_from_rows)
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=2, overflow="largest"))
    assert clip.track_ids.tolist() == [11, 13]
    assert clip.boxes.shape == (4, 2, 4)


def test_overflow_split_every_track_in_exactly_one_part(trackset_from_rows):
    ts = _overflow_set(trackset_from_rows)
    parts = plan_clips(ts, ClipSpec(frames=4, max_slots=2, overflow="split"))
    assert [c.clip_id for c in parts] == ["v_000000_p0", "v_000000_p1", "v_000000_p2"]
    assert [c.num_parts for c in parts] == [3, 3, 3] and [c.part for c in parts] == [0, 1, 2]
    assert all(c.num_tracks <= 2 and c.num_slots == 2 for c in parts)
    # slot order over the window: 11, 12 (frame 0), 10, 14 (frame 1), 13 (frame 3)
    assert [c.track_ids.tolist() for c in parts] == [[11, 12], [10, 14], [13]]
    all_ids = np.concatenate([c.track_ids for c in parts])
    assert sorted(all_ids.tolist()) == [10, 11, 12, 13, 14] and len(set(all_ids.tolist())) == 5
    assert all(c.dropped_tracks == 0 for c in parts)
    # a window that fits gets no part suffix
    (single,) = plan_clips(ts, ClipSpec(frames=4, max_slots=5, overflow="split"))
    assert single.clip_id == "v_000000" and single.num_parts == 1


def test_split_parts_are_balanced(trackset_from_rows):
    rows = [box("v", 0, t) for t in range(7)]
    parts = plan_clips(trackset_from_rows(rows), ClipSpec(frames=1, max_slots=3, overflow="split"))
    assert [c.num_tracks for c in parts] == [3, 2, 2]


# ------------------------------------------------------------------------------ seeds, shards, subsets
def test_clip_seed_is_stable_and_order_independent():
    ids = [f"MOT17-02_{i:06d}" for i in range(0, 160, 16)]
    seeds = [clip_seed(1234, i) for i in ids]
    assert seeds == [clip_seed(1234, i) for i in ids]
    assert seeds[::-1] == [clip_seed(1234, i) for i in reversed(ids)]
    assert len(set(seeds)) == len(ids)
    assert all(0 <= s < 2**63 for s in seeds)
    assert clip_seed(1235, ids[0]) != seeds[0]
    assert clip_seed(0, "a") == 4041259049617867556  # pinned: must not change between releases


def test_stable_shard_is_stable_and_spreads():
    ids = [f"vid{v}_{s:06d}" for v in range(40) for s in range(0, 1600, 16)]
    shards = np.array([stable_shard(i, 4) for i in ids])
    assert shards.tolist() == [stable_shard(i, 4) for i in ids]
    counts = np.bincount(shards, minlength=4)
    assert counts.sum() == 4000 and np.all(np.abs(counts - 1000) < 100)
    assert stable_shard("vid0_000000", 1) == 0
    assert stable_shard("a", 1000) == 752  # pinned: must not change between releases
    with pytest.raises(UsageError):
        stable_shard("a", 0)


def _dummy_clips(n):
    z = np.zeros(0, np.int64)
    return [
        Clip(clip_id=f"c{i}", video=0, video_name="v", start=i, step=1, frame_rows=z, frame_indices=z,
             frame_numbers=z, width=1, height=1, track_ids=z, categories=z, category_names=[],
             boxes=np.zeros((0, 1, 4), np.float32), mask=np.zeros((0, 1), np.float32),
             boxes_xywh=np.zeros((0, 1, 4)), box_rows=np.zeros((0, 1), np.int64))
        for i in range(n)
    ]


def test_select_clips_is_seeded_and_keeps_order():
    clips = _dummy_clips(50)
    a = select_clips(clips, 10, seed=7)
    assert [c.clip_id for c in a] == [c.clip_id for c in select_clips(clips, 10, seed=7)]
    assert len(a) == 10 and len({c.clip_id for c in a}) == 10
    starts = [c.start for c in a]
    assert starts == sorted(starts)
    assert [c.start for c in select_clips(clips, 10, seed=8)] != starts
    assert select_clips(clips, None, seed=7) == clips and select_clips(clips, 99, seed=7) == clips
    assert select_clips(clips, 0, seed=7) == []
    with pytest.raises(UsageError):
        select_clips(clips, -1, seed=7)


# ------------------------------------------------------------------------------ collate
def test_collate_shapes(trackset_from_rows):
    rows = full_track("v", 1, range(8), cat=1) + full_track("v", 2, range(4, 8), cat=2)
    ts = trackset_from_rows(rows, categories=[{"id": 1, "name": "giant_panda"}, {"id": 2, "name": "cat"}])
    clips = plan_clips(ts, ClipSpec(frames=4, max_slots=3))
    batch = collate(clips)
    assert batch["boxes"].shape == (2, 4, 3, 4) and batch["boxes"].dtype == np.float32
    assert batch["mask"].shape == (2, 4, 3) and batch["mask"].dtype == np.float32
    assert batch["category_names"].shape == (2, 3) and batch["category_names"].dtype == object
    assert batch["category_names"].tolist() == [["giant panda", "", ""], ["giant panda", "cat", ""]]
    assert batch["track_ids"].tolist() == [[1, -1, -1], [1, 2, -1]]
    assert batch["frame_numbers"].shape == (2, 4) and batch["clip_ids"].tolist() == ["v_000000", "v_000004"]
    wide = collate(clips, num_slots=5)
    assert wide["boxes"].shape == (2, 4, 5, 4) and not wide["mask"][:, :, 3:].any()
    np.testing.assert_array_equal(wide["boxes"][:, :, :3], batch["boxes"])
    with pytest.raises(ValueError):
        collate(clips, num_slots=1)
    short = plan_clips(ts, ClipSpec(frames=3, partial="keep"))
    with pytest.raises(ValueError, match="frame counts"):
        collate(short)


# ------------------------------------------------------------------------------ speed
def test_planning_is_vectorised(trackset_from_rows):
    rng = np.random.default_rng(0)
    n, T = 2000, 30
    rows = []
    for t in range(T):
        a = int(rng.integers(0, n // 2))
        b = int(rng.integers(a + 1, n))
        xs = rng.uniform(-20, 1900, size=b - a)
        rows += [("v", f, t, 1, float(x), 50.0, 40.0, 80.0) for f, x in zip(range(a, b), xs)]
    ts = trackset_from_rows(rows, sizes={"v": (1920, 1080)}, num_frames={"v": n})
    t0 = time.perf_counter()
    clips = plan_clips(ts, ClipSpec(frames=16, stride=4, max_slots=20, overflow="split"))
    elapsed = time.perf_counter() - t0
    assert len(clips) >= 497
    assert elapsed < 1.0, f"planning took {elapsed:.2f} s"


# ------------------------------------------------------------------------------ property
W, H = 100, 80


@st.composite
def random_tracksets(draw):
    rows, crowd = [], []
    num_frames = {}
    next_track = 0
    for v in range(draw(st.integers(1, 2))):
        name = f"vid{v}"
        n = draw(st.integers(1, 24))
        num_frames[name] = n
        for _ in range(draw(st.integers(0, 7))):
            tid = next_track
            next_track += 1
            cat = draw(st.integers(1, 3))
            frames = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
            for f in sorted(frames):
                x, y = draw(st.integers(-60, 120)), draw(st.integers(-60, 100))
                w, h = draw(st.integers(0, 60)), draw(st.integers(0, 60))
                rows.append((name, f, tid, cat, x, y, w, h))
                crowd.append(int(draw(st.integers(0, 9)) == 0))
    return rows, crowd, num_frames


def _expected_box(x, y, w, h):
    b = np.clip([x / W, y / H, (x + w) / W, (y + h) / H], 0.0, 1.0)
    return b if (b[2] > b[0] and b[3] > b[1]) else None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=random_tracksets(),
    frames=st.integers(1, 6),
    step=st.integers(1, 3),
    stride=st.one_of(st.none(), st.integers(1, 7)),
    slots=st.integers(1, 4),
    overflow=st.sampled_from(["split", "longest", "largest"]),
    partial=st.sampled_from(["drop", "keep"]),
    min_tracks=st.integers(0, 2),
    include_crowd=st.booleans(),
)
def test_property_nothing_lost_nothing_invented(
    trackset_from_rows, data, frames, step, stride, slots, overflow, partial, min_tracks, include_crowd
):
    rows, crowd, num_frames = data
    ts = trackset_from_rows(rows, num_frames=num_frames, default_size=(W, H), iscrowd=crowd)
    spec = ClipSpec(frames=frames, step=step, stride=stride, max_slots=slots, overflow=overflow,
                    partial=partial, min_tracks=min_tracks, include_crowd=include_crowd)
    clips = plan_clips(ts, spec)

    # expected present (video, frame, track) -> normalised box, first box wins
    expected: dict[tuple[str, int, int], np.ndarray] = {}
    for (name, f, tid, _cat, x, y, w, h), c in zip(rows, crowd):
        b = _expected_box(x, y, w, h)
        if b is not None and (include_crowd or not c):
            expected.setdefault((name, f, tid), b)

    windows: dict[tuple[str, int], list[Clip]] = {}
    for c in clips:
        windows.setdefault((c.video_name, c.start), []).append(c)
        assert c.num_tracks <= slots and c.boxes.shape == (c.num_frames, slots, 4)
        assert c.num_frames == frames or (partial == "keep" and c.partial)
        assert np.array_equal(c.frame_indices, c.start + step * np.arange(c.num_frames))
        # nothing invented: every mask-1 entry is an expected box, everything else is zero
        seen = np.zeros_like(c.mask, dtype=bool)
        for k, tid in enumerate(c.track_ids.tolist()):
            for j, f in enumerate(c.frame_indices.tolist()):
                b = expected.get((c.video_name, f, tid))
                assert (b is not None) == bool(c.mask[j, k])
                if b is not None:
                    np.testing.assert_allclose(c.boxes[j, k], b, atol=1e-6)
                    seen[j, k] = True
            first = int(np.flatnonzero(c.mask[:, k])[0])
            assert first >= 0
        assert not c.boxes[~seen].any() and not c.mask[~seen].any()
        # slot order: first appearance, then track id
        firsts = [int(np.flatnonzero(c.mask[:, k])[0]) for k in range(c.num_tracks)]
        assert list(zip(firsts, c.track_ids.tolist())) == sorted(zip(firsts, c.track_ids.tolist()))

    # windows are the ones the spec asks for, and nothing is lost in them
    for name, n in num_frames.items():
        span = (frames - 1) * step + 1
        wins = [(s, frames) for s in range(0, n - span + 1, spec.window_stride)]
        tail = next((s for s in range(0, n, spec.window_stride) if s + span > n), None)
        if partial == "keep" and tail is not None:
            count = (n - 1 - tail) // step + 1
            covered = wins[-1][0] + span - 1 if wins else -1
            if tail + (count - 1) * step > covered:
                wins.append((tail, count))
        in_window = {}
        for s, nf in wins:
            idx = set(range(s, s + (nf - 1) * step + 1, step))
            in_window[s] = {(f, t) for (v, f, t) in expected if v == name and f in idx}
        want = [s for s, _ in wins if len({t for _, t in in_window[s]}) >= min_tracks]
        assert sorted(s for (v, s) in windows if v == name) == want
        for s in want:
            parts = windows[(name, s)]
            assert {c.num_frames for c in parts} == {dict(wins)[s]}
            got = [(int(f), int(t)) for c in parts for t, col in zip(c.track_ids, c.mask.T)
                   for f in c.frame_indices[col > 0]]
            assert len(got) == len(set(got))
            tracks_in_window = {t for _, t in in_window[s]}
            if overflow == "split":
                assert set(got) == in_window[s]  # nothing lost
                ids = [int(t) for c in parts for t in c.track_ids]
                assert sorted(ids) == sorted(tracks_in_window)  # each track in exactly one part
                assert [c.part for c in parts] == list(range(len(parts)))
            else:
                assert len(parts) == 1 and set(got) <= in_window[s]
                assert parts[0].num_tracks == min(slots, len(tracks_in_window))


# ------------------------------------------------------------------------------ training targets first
def test_training_targets_decision():
    ignore = np.array([False, True, False, False, False])
    conf = np.array([1.0, 1.0, 0.0, np.nan, -1.0])
    assert training_targets(ignore).tolist() == [True, False, True, True, True]
    assert training_targets(ignore, conf).tolist() == [True, False, False, True, False]
    wanted = np.array([False, True, True, True, True])
    assert training_targets(ignore, conf, wanted).tolist() == [False, False, False, True, False]


def _with_conf(ts, conf_of_track):
    ts.boxes.conf = np.array([conf_of_track.get(int(t), 1.0) for t in ts.boxes.track], dtype=np.float64)
    return ts


@pytest.mark.parametrize("overflow", ["longest", "largest"])
def test_overflow_keeps_training_targets_before_longer_or_larger_conf0_tracks(trackset_from_rows, overflow):
    ts = _with_conf(_overflow_set(trackset_from_rows), {12: 0.0, 11: 0.0})
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=2, overflow=overflow))
    # without conf, longest keeps [12, 10] and largest [11, 13]: 12 and 11 are now conf 0
    expected = {"longest": [10, 14], "largest": [10, 13]}[overflow]
    assert clip.track_ids.tolist() == expected
    assert clip.targets.tolist() == [True, True]
    assert clip.dropped_track_ids.tolist() == sorted({10, 11, 12, 13, 14} - set(expected))
    assert clip.dropped_tracks == 3 and clip.dropped_targets == 1
    # with room for every target, the non-targets fill the rest by the usual rule
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=4, overflow="longest"))
    assert sorted(clip.track_ids.tolist()) == [10, 12, 13, 14]
    assert clip.dropped_track_ids.tolist() == [11] and clip.dropped_targets == 0


def test_ignore_flag_in_extras_and_crowd_rank_after_targets(trackset_from_rows):
    rows = (full_track("v", 1, range(4), w=30, h=30) + full_track("v", 2, range(4), w=30, h=30)
            + full_track("v", 3, [0, 1], w=5, h=5))
    iscrowd = [0] * 4 + [1] * 4 + [0] * 2
    ts = trackset_from_rows(rows, iscrowd=iscrowd)
    extra = np.empty(ts.num_boxes, dtype=object)
    extra[:] = [{"ignore": 1} if t == 1 else None for t in ts.boxes.track.tolist()]
    ts.boxes.extra = extra
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=1, include_crowd=True))
    assert clip.track_ids.tolist() == [3]  # the only target, though shortest and smallest
    assert clip.dropped_track_ids.tolist() == [1, 2] and clip.dropped_targets == 0
    extra[:] = [{"ignore": 0} for _ in range(ts.num_boxes)]  # "ignore": 0 is not an ignore region
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=1, include_crowd=True))
    assert clip.track_ids.tolist() == [1]


def test_wanted_mask_feeds_the_target_decision(trackset_from_rows):
    ts = _overflow_set(trackset_from_rows)
    wanted = np.isin(ts.boxes.track, [11, 13])  # as a class filter would give per box
    (clip,) = plan_clips(ts, ClipSpec(frames=4, max_slots=2, overflow="longest"), wanted=wanted)
    assert sorted(clip.track_ids.tolist()) == [11, 13]
    assert clip.dropped_track_ids.tolist() == [10, 12, 14] and clip.dropped_targets == 0
    with pytest.raises(UsageError, match="one flag per box"):
        plan_clips(ts, ClipSpec(frames=4), wanted=np.ones(3, bool))


def test_dropped_ids_are_exactly_the_window_tracks_without_a_slot(trackset_from_rows):
    rng = np.random.default_rng(3)
    rows = [box("v", f, t, x=int(rng.integers(0, 60)), w=int(rng.integers(5, 30)))
            for t in range(12) for f in range(8) if rng.random() < 0.6]
    ts = _with_conf(trackset_from_rows(rows, num_frames={"v": 8}), {t: 0.0 for t in range(0, 12, 3)})
    clips = plan_clips(ts, ClipSpec(frames=4, max_slots=5))
    assert clips and any(c.dropped_tracks for c in clips)
    for c in clips:
        a, b = c.frame_rows[0], c.frame_rows[-1]
        in_window = set(ts.boxes.track[(ts.boxes.frame >= a) & (ts.boxes.frame <= b)].tolist())
        kept, dropped = set(c.track_ids.tolist()), set(c.dropped_track_ids.tolist())
        assert kept | dropped == in_window and not kept & dropped
        assert len(dropped) == c.dropped_tracks == c.window_tracks - c.num_tracks
        # a dropped target only ever loses its slot to another target
        if c.dropped_targets:
            assert c.targets.all()
