"""Tests of tdgen.tracks.layout_stats: hand-counted crossings, gaps and overlaps on small sets,
a naive pair-by-pair reference on random sets, and invariances (mirror, time reversal, unrelated
tracks)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import tdgen.tracks.layout_stats as layout_module
from tdgen.tracks.layout_stats import layout_stats
from tdgen.tracks.trackset import TrackSet


def box(video, frame, track, x, y, w=10, h=20, cat=1):
    return (video, frame, track, cat, x, y, w, h)


def crossing_rows():
    """Track 1 moves right, track 2 left, on overlapping rows: their centres (5|47, 25|27, 45|7)
    swap order between frames 1 and 2; they overlap at frame 1 (x 20..30 vs 22..32, y 0..20 vs
    5..25: 8 x 15 = 120 px of 200). Track 3 makes the same move as track 2 far below (y 80..100):
    its order with track 1 flips too, but their rows never overlap, so that is no crossing."""
    return [
        box("v", 0, 1, 0, 0), box("v", 1, 1, 20, 0), box("v", 2, 1, 40, 0),
        box("v", 0, 2, 42, 5), box("v", 1, 2, 22, 5), box("v", 2, 2, 2, 5),
        box("v", 0, 3, 42, 80), box("v", 1, 3, 22, 80), box("v", 2, 3, 2, 80),
    ]


def test_a_known_crossing_and_overlap(trackset_from_rows):
    s = layout_stats(trackset_from_rows(crossing_rows(), sizes={"v": (200, 120)}))
    assert (s["videos"], s["frames"], s["tracks"], s["boxes"], s["seen_boxes"]) == (1, 3, 3, 9, 9)
    assert s["crossings"] == 1
    assert s["crossings_per_frame"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["occlusion_pairs"] == 1
    assert s["occlusion_pairs_per_frame"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["gaps"] == 0 and s["reappearances_per_video"] == 0
    assert s["gap_length"] == {"median": None, "p90": None}
    # every step moves a box 20 px sideways; a box is sqrt(10 * 20) px
    assert s["speed"] == {"median": 20.0, "p90": 20.0}
    assert s["relative_speed"]["median"] == pytest.approx(20 / math.sqrt(200), abs=1e-4)
    assert s["scale_change"] == {"median": 0.0, "p90": 0.0}
    assert s["track_length"] == {"median": 3.0, "p90": 3.0}


def test_centres_that_only_meet_do_not_cross(trackset_from_rows):
    # track 2 comes to the same centre as track 1 and goes back: no strict flip
    rows = [box("v", 0, 1, 0, 0), box("v", 1, 1, 0, 0), box("v", 2, 1, 0, 0),
            box("v", 0, 2, 30, 0), box("v", 1, 2, 0, 0), box("v", 2, 2, 30, 0)]
    assert layout_stats(trackset_from_rows(rows))["crossings"] == 0


def test_a_pair_that_crosses_back_counts_twice(trackset_from_rows):
    rows = [box("v", f, 1, 0, 0) for f in range(3)] + [
        box("v", 0, 2, -30, 0), box("v", 1, 2, 30, 0), box("v", 2, 2, -30, 0)]
    assert layout_stats(trackset_from_rows(rows))["crossings"] == 2


def test_gaps_from_missing_boxes_and_low_visibility(trackset_from_rows):
    # track 1: boxes at frames 0, 1, 4, 5 (vis 0.1), 6, 7 (vis 0.1): seen 0, 1, 4, 6 -> gaps of 2 and 1
    # frames; frame 7 lies after its last seen frame, so no gap. Visibility exactly 0.25 is seen,
    # NaN (no value) is seen.
    frames = [0, 1, 4, 5, 6, 7]
    vis = [1.0, 0.25, np.nan, 0.1, 0.9, 0.1]
    rows = [box("v", f, 1, 10 + f, 0) for f in frames] + [box("v", f, 2, 100, 50) for f in range(8)]
    vis += [1.0] * 8
    s = layout_stats(trackset_from_rows(rows, visibility=vis, sizes={"v": (200, 100)}))
    assert s["gaps"] == 2 and s["tracks_with_gaps"] == 1
    assert s["reappearances_per_video"] == 2.0
    assert s["gap_length"] == {"median": 1.5, "p90": pytest.approx(1.9)}
    assert s["seen_boxes"] == 4 + 8 and s["boxes"] == 14
    assert s["track_length"]["median"] == 7.5  # track 1 lives 0..6 (7 frames), track 2 0..7 (8)
    # steps: track 1 only 0 -> 1 (1 px), track 2 seven steps of 0 px
    assert s["speed"]["p90"] == pytest.approx(0.3)  # eight steps: seven 0s and one 1


def test_a_track_never_seen_has_no_life_and_no_gap(trackset_from_rows):
    rows = [box("v", f, 1, 0, 0) for f in range(4)] + [box("v", 0, 2, 50, 0), box("v", 3, 2, 50, 0)]
    s = layout_stats(trackset_from_rows(rows, visibility=[1, 1, 1, 1, 0.1, 0.2]))
    assert s["tracks"] == 2 and s["gaps"] == 0
    assert s["track_length"] == {"median": 4.0, "p90": 4.0}


@pytest.mark.parametrize("bx,count", [
    (9.0, 1),   # 1 x 10 px of a 100 px box: exactly 0.1 of the smaller box
    (9.5, 0),   # 0.5 x 10 px: 0.05
    (10.0, 0),  # touching edges: no intersection
])
def test_occlusion_threshold_is_intersection_over_the_smaller_box(trackset_from_rows, bx, count):
    rows = [box("v", 0, 1, 0, 0, w=10, h=10), box("v", 0, 2, bx, 0, w=10, h=10)]
    assert layout_stats(trackset_from_rows(rows))["occlusion_pairs"] == count


def test_a_small_box_inside_a_big_one_is_an_occlusion_and_hidden_boxes_are_not(trackset_from_rows):
    # IoU 0.01 but the small box is covered whole; track 3 overlaps both but is not seen (vis 0.2)
    rows = [box("v", 0, 1, 0, 0, w=100, h=100), box("v", 0, 2, 10, 10, w=10, h=10),
            box("v", 0, 3, 5, 5, w=50, h=50)]
    s = layout_stats(trackset_from_rows(rows, visibility=[1.0, 0.5, 0.2]))
    assert s["occlusion_pairs"] == 1


def test_box_size_per_category_skips_crowd_boxes(trackset_from_rows):
    sides = [2, 4, 6, 8]
    rows = [box("v", 0, t + 1, 20 * t, 0, w=s, h=s) for t, s in enumerate(sides)]
    rows += [box("v", 0, 9, 0, 50, w=3, h=12, cat=2), box("v", 0, 10, 0, 0, w=90, h=90, cat=2)]
    ts = trackset_from_rows(rows, iscrowd=[0, 0, 0, 0, 0, 1],
                                 categories=[{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "car"}])
    s = layout_stats(ts)
    assert s["box_size"] == {
        "pedestrian": {"median": 5.0, "q1": 3.5, "q3": 6.5, "iqr": 3.0, "count": 4},
        "car": {"median": 6.0, "q1": 6.0, "q3": 6.0, "iqr": 0.0, "count": 1},
    }
    assert s["boxes"] == 5 and s["tracks"] == 5


def test_scale_change_is_the_absolute_log_ratio(trackset_from_rows):
    rows = [box("v", 0, 1, 0, 0, w=10, h=10), box("v", 1, 1, 0, 0, w=20, h=20), box("v", 2, 1, 0, 0, w=10, h=10)]
    s = layout_stats(trackset_from_rows(rows))
    assert s["scale_change"]["median"] == pytest.approx(math.log(2), abs=1e-4)
    assert s["relative_speed"]["median"] == pytest.approx(math.hypot(5, 5) / math.sqrt(200), abs=1e-4)


def test_empty_set():
    s = layout_stats(TrackSet.empty())
    assert (s["boxes"], s["crossings"], s["occlusion_pairs"], s["gaps"]) == (0, 0, 0, 0)
    assert s["speed"] == {"median": None, "p90": None} and s["box_size"] == {}


# ------------------------------------------------------------------ random sets: reference, invariances
W, H = 320, 240


def random_rows(seed: int, videos: int = 2, tracks: int = 12, frames: int = 30) -> tuple[list, list]:
    """Random walks of boxes that pass each other, with random visibility and missing frames."""
    rng = np.random.default_rng(seed)
    rows, vis = [], []
    tid = 0
    for v in range(videos):
        for _ in range(tracks):
            tid += 1
            start, stop = int(rng.integers(0, frames // 3)), int(rng.integers(2 * frames // 3, frames))
            # a narrow band of rows, so that tracks passing each other overlap vertically
            x, y = rng.uniform(0, W - 40), rng.uniform(60, 120)
            vx, vy = rng.normal(0, 8), rng.normal(0, 2)
            w, h = rng.uniform(10, 40), rng.uniform(20, 60)
            for f in range(start, stop + 1):
                x, y, w, h = x + vx + rng.normal(0, 1), y + vy, w * rng.uniform(0.95, 1.05), h
                if rng.uniform() < 0.9:
                    rows.append((f"v{v}", f, tid, int(rng.integers(1, 3)), x, y, w, h))
                    vis.append(float(rng.choice([0.1, 0.25, 0.6, 1.0])))
    return rows, vis


def as_set(make, rows, vis):
    return make(rows, visibility=vis, num_frames={"v0": 30, "v1": 30}, sizes={"v0": (W, H), "v1": (W, H)})


def naive_counts(rows, vis) -> tuple[int, int, int]:
    """Occlusion pairs, crossings and gaps by looking at every pair and every frame."""
    seen = {}
    for r, v in zip(rows, vis):
        if v >= 0.25:
            seen[(r[0], r[1], r[2])] = r[4:8]
    occ = cross = 0
    by_frame: dict = {}
    for (video, f, t), b in seen.items():
        by_frame.setdefault((video, f), {})[t] = b
    for (video, f), boxes in by_frame.items():
        for (_, a), (_, b) in itertools.combinations(boxes.items(), 2):
            iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
            ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
            if iw > 0 and ih > 0 and iw * ih >= 0.1 * min(a[2] * a[3], b[2] * b[3]):
                occ += 1
        nxt = by_frame.get((video, f + 1), {})
        both = [t for t in boxes if t in nxt]
        for p, q in itertools.combinations(both, 2):
            c0 = (boxes[p][0] + boxes[p][2] / 2) - (boxes[q][0] + boxes[q][2] / 2)
            c1 = (nxt[p][0] + nxt[p][2] / 2) - (nxt[q][0] + nxt[q][2] / 2)

            def rows_meet(a, b):
                return min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1])
            if c0 * c1 < 0 and (rows_meet(boxes[p], boxes[q]) or rows_meet(nxt[p], nxt[q])):
                cross += 1
    gaps = 0
    for t in {k[2] for k in seen}:
        fs = sorted(k[1] for k in seen if k[2] == t)
        gaps += sum(1 for a, b in zip(fs, fs[1:]) if b - a > 1)
    return occ, cross, gaps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_pair_by_pair_count(trackset_from_rows, seed, monkeypatch):
    rows, vis = random_rows(seed)
    occ, cross, gaps = naive_counts(rows, vis)
    assert occ > 0 and cross > 0 and gaps > 0  # the random sets exercise every count
    s = layout_stats(as_set(trackset_from_rows, rows, vis))
    assert (s["occlusion_pairs"], s["crossings"], s["gaps"]) == (occ, cross, gaps)
    # the same with candidate pairs materialised a few at a time
    monkeypatch.setattr(layout_module, "_PAIR_BUDGET", 3)
    assert layout_stats(as_set(trackset_from_rows, rows, vis)) == s


PAIR_KEYS = ("occlusion_pairs", "crossings", "gaps", "tracks_with_gaps")


@pytest.mark.parametrize("seed", [4, 5])
def test_mirror_and_time_reversal_change_no_count(trackset_from_rows, seed):
    rows, vis = random_rows(seed)
    s = layout_stats(as_set(trackset_from_rows, rows, vis))
    assert s["crossings"] > 0 and s["occlusion_pairs"] > 0
    mirrored = [(v, f, t, c, W - x - w, y, w, h) for v, f, t, c, x, y, w, h in rows]
    reversed_ = [(v, 29 - f, t, c, x, y, w, h) for v, f, t, c, x, y, w, h in rows]
    for other in (mirrored, reversed_):
        o = layout_stats(as_set(trackset_from_rows, other, vis))
        assert {k: o[k] for k in PAIR_KEYS} == {k: s[k] for k in PAIR_KEYS}
        for k in ("speed", "relative_speed", "scale_change", "gap_length", "track_length"):
            assert o[k] == pytest.approx(s[k], abs=1e-3)


def test_an_unrelated_track_changes_no_pair_count(trackset_from_rows):
    rows, vis = random_rows(1)
    s = layout_stats(as_set(trackset_from_rows, rows, vis))
    # far below every box of video v0; in a video of its own, a track on the boxes of v0 (one per
    # frame): boxes of two videos never make a pair, however they overlap
    far = [("v0", f, 999, 1, 10 + 5 * f, 5000, 30, 50) for f in range(30)]
    first_in_frame = {}
    for r in rows:
        if r[0] == "v0":
            first_in_frame.setdefault(r[1], r)
    twin = [("v2", f, 1000, r[3], *r[4:8]) for f, r in sorted(first_in_frame.items())]
    assert s["crossings"] > 0 and s["occlusion_pairs"] > 0
    o = layout_stats(as_set(trackset_from_rows, rows + far + twin, vis + [1.0] * (len(far) + len(twin))))
    assert o["tracks"] == s["tracks"] + 2 and o["videos"] == 3
    for k in ("occlusion_pairs", "crossings"):
        assert o[k] == s[k]
