"""The gate's scoring (one-to-one matching per frame, recall, mean IoU, per-track fractions), its
policy (clip / box levels, drop / ignore), the choice among retries and the retry seeds."""

from __future__ import annotations

import numpy as np
import pytest

from tdgen.errors import UsageError
from tdgen.gate.detector import FrameDetections
from tdgen.gate.policy import GatePolicy, attempt_seed, best_attempt, decide
from tdgen.gate.score import iou_matrix, match_frame, score_clip
from tdgen.seeds import clip_seed

# two frames; track 1 and track 2 on both, a crowd region (track 9) on frame 0
FRAME = np.array([0, 0, 0, 1, 1])
BOXES = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 40, 60, 60], [1, 0, 11, 10], [21, 0, 31, 10]], float)
TRACK = np.array([1, 2, 9, 1, 2])
CROWD = np.array([0, 0, 1, 0, 0])


def dets(*frames) -> list[FrameDetections]:
    return [FrameDetections.from_arrays(np.array(b, float).reshape(-1, 4), np.ones(len(b))) for b in frames]


def score(detections, iou=0.5):
    return score_clip(FRAME, BOXES, TRACK, CROWD, detections, iou=iou, clip_id="c")


def test_iou_matrix_by_hand():
    m = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 0, 0]])
    np.testing.assert_allclose(m, [[1.0, 50 / 150, 0.0, 0.0]])


def test_perfect_detections_give_recall_one():
    s = score(dets(BOXES[[0, 1]], BOXES[[3, 4]]))
    assert s.boxes == 4 and s.found == 4 and s.recall == 1.0 and s.mean_iou == pytest.approx(1.0)
    assert s.track_found() == {1: 1.0, 2: 1.0}
    d = s.as_dict(boxes=True)
    assert d["recall"] == 1.0 and d["tracks"] == {"1": 1.0, "2": 1.0}
    assert d["box_iou"] == [1.0, 1.0, None, 1.0, 1.0]  # the crowd region is not scored


def test_a_missing_box_lowers_recall_and_its_track():
    s = score(dets(BOXES[[0, 1]], BOXES[[3]]))  # track 2 not found on frame 1
    assert s.found == 3 and s.recall == 0.75
    assert s.track_found() == {1: 1.0, 2: 0.5}
    assert s.box_iou[4] == 0.0


@pytest.mark.parametrize("shift, found", [(2, True), (4, False)])
def test_a_shifted_box_counts_only_above_the_threshold(shift, found):
    # a 10x10 box shifted by s px: IoU = (10 - s) / (10 + s): 8/12 = 0.667 and 6/14 = 0.429
    moved = BOXES[0] + [shift, 0, shift, 0]
    s = score(dets(np.stack([moved, BOXES[1]]), BOXES[[3, 4]]))
    expect = (10 - shift) / (10 + shift)
    assert s.box_iou[0] == pytest.approx(expect)
    assert s.found == (4 if found else 3)
    # the mean IoU is over the boxes found only
    assert s.mean_iou == pytest.approx((3 + expect) / 4 if found else 1.0)
    # a lower threshold finds it either way, with the same matched IoU
    low = score(dets(np.stack([moved, BOXES[1]]), BOXES[[3, 4]]), iou=0.4)
    assert low.found == 4 and low.box_iou[0] == pytest.approx(expect)


def test_crowd_regions_are_never_scored_and_take_no_detection():
    # a detection exactly on the crowd region changes nothing; none on it is no miss either
    with_region = score(dets(BOXES[[0, 1, 2]], BOXES[[3, 4]]))
    without = score(dets(BOXES[[0, 1]], BOXES[[3, 4]]))
    for s in (with_region, without):
        assert s.boxes == 4 and s.recall == 1.0 and np.isnan(s.box_iou[2]) and 9 not in s.tracks
    # a clip of crowd regions only claims nothing
    only = score_clip([0], [[0, 0, 5, 5]], [3], [1], dets([]))
    assert only.boxes == 0 and only.recall == 1.0 and only.mean_iou is None


def test_two_detections_on_one_box_match_it_once():
    # both detections sit on box 0; box 1 has none: one-to-one matching finds one box, not two
    near = BOXES[0] + [1, 0, 1, 0]
    s = score(dets(np.stack([near, BOXES[0]]), BOXES[[3, 4]]))
    assert s.box_iou[0] == pytest.approx(1.0)  # the better of the two
    assert s.box_iou[1] == 0.0 and s.found == 3


def test_matching_is_optimal_not_greedy():
    # det 0 overlaps box A best (IoU 8/12) and box B less (6/14); det 1 only A (6/14). Greedy
    # would give det 0 to A and leave B unmatched; the optimal matching finds both
    a, b = [0, 0, 10, 10], [6, 0, 16, 10]
    d0, d1 = [2, 0, 12, 10], [-4, 0, 6, 10]
    assert iou_matrix([a], [d0])[0, 0] == pytest.approx(8 / 12)
    iou, det = match_frame(np.array([a, b], float), np.array([d0, d1], float))
    assert det.tolist() == [1, 0]
    np.testing.assert_allclose(iou, [6 / 14, 6 / 14])


def test_scoring_is_deterministic_and_checks_its_input():
    d = dets(BOXES[[1, 0]] + 0.5, BOXES[[4]])
    a, b = score(d), score(d)
    assert a.as_dict(boxes=True) == b.as_dict(boxes=True)
    with pytest.raises(ValueError, match="frame"):
        score_clip([0, 3], BOXES[:2], [1, 2], None, dets([], []))
    with pytest.raises(UsageError, match="--iou"):
        score(d, iou=0.0)


# ------------------------------------------------------------------------------------ policy
def weak_clip():
    # frame 0: box 0 found (IoU 1), box 1 shifted to IoU 0.25 (6 px); frame 1: box 3 found, box 4 missed
    return score(dets(np.stack([BOXES[0], BOXES[1] + [6, 0, 6, 0]]), BOXES[[3]]))


def test_clip_level_rejects_below_min_recall_and_leaves_boxes():
    s = weak_clip()
    assert s.recall == 0.5
    assert decide(s, GatePolicy("clip", min_recall=0.5)).kept  # not below: kept
    r = decide(s, GatePolicy("clip", min_recall=0.6))
    assert not r.kept and r.decision == "rejected" and "recall 0.500" in r.reason
    k = decide(s, GatePolicy("clip", min_recall=0.5))
    assert k.dropped.size == 0 and k.ignored.size == 0


@pytest.mark.parametrize("action", ["drop", "ignore"])
def test_box_level_marks_weak_boxes_and_never_rejects(action):
    s = weak_clip()
    d = decide(s, GatePolicy("box", min_recall=1.0, min_box_iou=0.3, box_action=action))
    assert d.kept
    weak = d.dropped if action == "drop" else d.ignored
    other = d.ignored if action == "drop" else d.dropped
    assert weak.tolist() == [1, 4] and other.size == 0  # the crowd region (row 2) is never touched
    listed = d.as_dict(s)[{"drop": "dropped", "ignore": "ignored"}[action]]
    assert [(b["frame"], b["track"]) for b in listed] == [(1, 2), (2, 2)]
    assert listed[0]["iou"] == pytest.approx(0.25)
    # a lower bar keeps the shifted box
    assert decide(s, GatePolicy("box", min_box_iou=0.2, box_action=action)).as_dict()[
        {"drop": "dropped", "ignore": "ignored"}[action]] == [4]


def test_both_levels():
    s = weak_clip()
    assert not decide(s, GatePolicy("both", min_recall=0.75)).kept
    d = decide(s, GatePolicy("both", min_recall=0.5, box_action="drop"))
    assert d.kept and d.dropped.tolist() == [1, 4]


@pytest.mark.parametrize("kw, message", [
    ({"level": "frame"}, "--gate-level"), ({"box_action": "delete"}, "--box-action"),
    ({"min_recall": 1.5}, "--min-recall"), ({"min_recall": float("nan")}, "--min-recall"),
    ({"min_box_iou": -0.1}, "--min-box-iou"),
])
def test_bad_policies_are_usage_errors(kw, message):
    with pytest.raises(UsageError, match=message):
        GatePolicy(**kw)


def test_best_attempt_is_the_highest_recall_and_the_first_of_equals():
    perfect = score(dets(BOXES[[0, 1]], BOXES[[3, 4]]))
    half = weak_clip()
    three = score(dets(BOXES[[0, 1]], BOXES[[3]]))
    assert best_attempt([half, perfect, three]) == 1
    assert best_attempt([half, three, perfect, perfect]) == 2
    assert best_attempt([half, half]) == 0
    assert best_attempt([three]) == 0
    with pytest.raises(ValueError):
        best_attempt([])


def test_attempt_seeds():
    seed = clip_seed(0, "MOT17-02_000000")
    assert attempt_seed(seed, 0) == seed
    seeds = [attempt_seed(seed, k) for k in range(6)]
    assert len(set(seeds)) == 6 and all(0 <= s < 2 ** 63 for s in seeds)
    assert seeds == [attempt_seed(seed, k) for k in range(6)]  # the same every time
    assert attempt_seed(seed + 1, 1) != seeds[1]  # depends on the clip's seed
    assert attempt_seed(seed, 1) != clip_seed(0, "MOT17-02_000000:1")  # its own key, not a clip seed
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            attempt_seed(seed, bad)
