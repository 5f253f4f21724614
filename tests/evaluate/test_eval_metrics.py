"""Matching, the IoU tracker, identity consistency, HOTA, MOTA and IDF1 on hand-computed cases."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from tdgen.evaluate.metrics import (
    ALPHAS,
    box_iou,
    clear_counts,
    hota,
    hota_counts,
    hota_summary,
    identity_consistency,
    identity_counts,
    ignored_detections,
    iou_tracker,
    linear_assignment,
    match_boxes,
    mot_metrics,
)

A = np.array([[10.0, 10.0, 20.0, 20.0]])
B = np.array([[60.0, 60.0, 10.0, 10.0]])


def seq(*frames):
    """A sequence from per-frame lists of (id, box) pairs."""
    out = []
    for fr in frames:
        ids = np.array([i for i, _ in fr], np.int64)
        boxes = np.array([b for _, b in fr], np.float64).reshape(-1, 4)
        out.append((ids, boxes))
    return out


def backends():
    out = ["own"]
    try:
        importlib.import_module("motmetrics")
        out.append("motmetrics")
    except ImportError:
        pass
    return out


def test_box_iou_and_matching():
    iou = box_iou(np.array([[0, 0, 10, 10], [0, 0, 10, 10]]), np.array([[5, 0, 10, 10], [0, 0, 6, 10], [50, 50, 1, 1]]))
    assert iou == pytest.approx(np.array([[50 / 150, 0.6, 0], [50 / 150, 0.6, 0]]))
    assert box_iou(np.zeros((0, 4)), A).shape == (0, 1)
    # Two matches beat one better one: greedy would pair gt 0 with det 0 (IoU 0.905) and leave
    # gt 1 with det 1 (IoU 0.33) unmatched.
    gt = np.array([[0, 0, 10, 10], [2, 0, 10, 10]], float)
    det = np.array([[0.5, 0, 10, 10], [-3, 0, 10, 10]], float)
    rows, cols, ious = match_boxes(gt, det, 0.5)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    assert ious.tolist() == pytest.approx([7 / 13, 8.5 / 11.5])
    rows, cols, _ = match_boxes(gt, det + 100, 0.5)
    assert rows.size == 0
    r, c = linear_assignment(np.array([[1.0, 0.9], [0.9, 0.0]]))
    assert sorted(zip(r.tolist(), c.tolist())) == [(0, 1), (1, 0)]


def test_ignored_detections():
    ignored = np.array([[0, 0, 40, 40]], float)
    det = np.array([[2, 2, 36, 36], [5, 5, 10, 10], [30, 30, 30, 30]], float)
    assert ignored_detections(ignored, det).tolist() == [True, True, False]


def test_iou_tracker_links_overlapping_boxes_and_starts_new_ids():
    frames = [np.array([[0, 0, 10, 10], [50, 50, 10, 10]], float),
              np.array([[2, 0, 10, 10], [52, 50, 10, 10]], float),
              np.array([[52, 52, 10, 10], [90, 90, 5, 5]], float),
              np.zeros((0, 4)),
              np.array([[52, 52, 10, 10]], float)]
    ids = iou_tracker(frames, iou_threshold=0.3)
    assert [i.tolist() for i in ids] == [[1, 2], [1, 2], [2, 3], [], [4]]
    assert iou_tracker(frames, max_age=2)[4].tolist() == [2]


def test_identity_consistency():
    tracks = np.array([1, 1, 1, 1, 2, 2, 3])
    colours = np.array([[200, 0, 0]] * 3 + [[0, 0, 200]] + [[0, 200, 0]] * 2 + [[9, 9, 9]], float)
    mean, per = identity_consistency(tracks, colours, tol=30)
    assert per == {1: 0.75, 2: 1.0}  # track 3 has a single matched frame: not scored
    assert mean == pytest.approx(0.875)
    assert identity_consistency(np.zeros(0, int), np.zeros((0, 3)))[0] is None


def test_hota_perfect_tracking_is_one():
    gt = seq([(1, A[0]), (2, B[0])], [(1, A[0] + 1), (2, B[0])], [(1, A[0] + 2)])
    tr = seq([(7, A[0]), (9, B[0])], [(7, A[0] + 1), (9, B[0])], [(7, A[0] + 2)])
    h = hota(gt, tr)
    assert h["hota"] == pytest.approx(1.0) and h["deta"] == pytest.approx(1.0) and h["assa"] == pytest.approx(1.0)
    assert h["loca"] == pytest.approx(1.0)


def test_hota_single_id_switch():
    # One GT track over 4 frames; the tracker calls it 1 for two frames, then 2.
    # DetA = 1; each (gt, tracker) pair has TPA 2, FNA 2, FPA 0: AssIoU = 2 / (4 + 2 - 2) = 0.5.
    gt = seq(*[[(1, A[0])]] * 4)
    tr = seq([(1, A[0])], [(1, A[0])], [(2, A[0])], [(2, A[0])])
    h = hota(gt, tr)
    assert h["deta"] == pytest.approx(1.0)
    assert h["assa"] == pytest.approx(0.5)
    assert h["hota"] == pytest.approx(math.sqrt(0.5))


def test_hota_swapped_identities():
    # Two GT tracks; the tracker swaps their ids halfway: AssIoU = 2 / (4 + 4 - 2) = 1/3.
    gt = seq(*[[(1, A[0]), (2, B[0])]] * 4)
    tr = seq([(1, A[0]), (2, B[0])], [(1, A[0]), (2, B[0])], [(2, A[0]), (1, B[0])], [(2, A[0]), (1, B[0])])
    h = hota(gt, tr)
    assert h["deta"] == pytest.approx(1.0) and h["assa"] == pytest.approx(1 / 3)
    assert h["hota"] == pytest.approx(math.sqrt(1 / 3))


def test_hota_misses_false_positives_and_localisation():
    gt = seq(*[[(1, A[0])]] * 4)
    # Detected in 2 of 4 frames: DetA = 2 / 4, AssIoU = 2 / (4 + 2 - 2), HOTA = sqrt(0.25) = 0.5.
    half = seq([(1, A[0])], [(1, A[0])], [], [])
    assert hota(gt, half)["hota"] == pytest.approx(0.5)
    # A perfect track plus a spurious one: DetA = 2 / (2 + 2), AssA = 1.
    fp = seq([(1, A[0]), (5, B[0])], [(1, A[0]), (5, B[0])])
    h = hota(gt[:2], fp)
    assert h["deta"] == pytest.approx(0.5) and h["assa"] == pytest.approx(1.0)
    assert h["hota"] == pytest.approx(math.sqrt(0.5))
    # IoU 0.62 everywhere: a TP for the 12 alphas 0.05 .. 0.60, nothing above.
    shifted = np.array([10.0, 10.0, 20.0 * 0.62, 20.0])
    loose = seq(*[[(3, shifted)]] * 4)
    h = hota(gt, loose)
    assert box_iou(A, shifted[None])[0, 0] == pytest.approx(0.62)
    assert int(np.sum(ALPHAS <= 0.62)) == 12
    assert h["hota"] == pytest.approx(12 / 19)
    assert h["hota_alpha"][:12] == pytest.approx([1.0] * 12) and h["hota_alpha"][12:] == pytest.approx([0.0] * 7)
    assert h["loca"] == pytest.approx((12 * 0.62 + 7 * 1.0) / 19)  # LocA is 1 where nothing matched
    # Nothing at all from the tracker
    assert hota(gt, seq([], [], [], []))["hota"] == 0.0


def test_hota_combines_sequences_by_counts():
    gt = seq(*[[(1, A[0])]] * 4)
    perfect = seq(*[[(1, A[0])]] * 4)
    half = seq([(1, A[0])], [(1, A[0])], [], [])
    # TP 4 + 2, FN 0 + 2: DetA = 6 / 8; AssA = (4 * 1 + 2 * 0.5) / 6
    h = hota_summary([hota_counts(gt, perfect), hota_counts(gt, half)])
    assert h["deta"] == pytest.approx(0.75) and h["assa"] == pytest.approx(5 / 6)
    assert h["hota"] == pytest.approx(math.sqrt(0.75 * 5 / 6))


def test_hota_rejects_bad_input():
    with pytest.raises(ValueError, match="twice"):
        hota(seq([(1, A[0]), (1, B[0])]), seq([]))
    with pytest.raises(ValueError, match="frames"):
        hota(seq([(1, A[0])]), seq([], []))


@pytest.mark.parametrize("backend", backends())
def test_mota_and_idf1_on_hand_cases(backend):
    gt = seq(*[[(1, A[0])]] * 4)
    switch = seq([(1, A[0])], [(1, A[0])], [(2, A[0])], [(2, A[0])])
    m = mot_metrics([(gt, switch)], backend=backend)
    assert m["backend"] == backend
    # MOTA = 1 - (FN + FP + IDSW) / GT = 1 - 1 / 4; IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN) = 4 / 8
    assert m["overall"]["mota"] == pytest.approx(0.75)
    assert m["overall"]["idf1"] == pytest.approx(0.5)
    assert m["overall"]["id_switches"] == 1

    two = seq(*[[(1, A[0]), (2, B[0])]] * 4)
    swapped = seq([(1, A[0]), (2, B[0])], [(1, A[0]), (2, B[0])], [(2, A[0]), (1, B[0])], [(2, A[0]), (1, B[0])])
    m = mot_metrics([(two, swapped)], backend=backend)
    assert m["overall"]["mota"] == pytest.approx(0.75) and m["overall"]["idf1"] == pytest.approx(0.5)

    # misses and a false positive: GT 4, TP 2, FN 2, FP 1 -> MOTA = 1 - 3 / 4; IDF1 = 4 / (4 + 1 + 2)
    partial = seq([(1, A[0])], [(1, A[0]), (9, B[0])], [], [])
    m = mot_metrics([(gt, partial), (gt, gt)], backend=backend)
    assert m["per_sequence"][0]["mota"] == pytest.approx(0.25)
    assert m["per_sequence"][0]["idf1"] == pytest.approx(4 / 7)
    assert m["per_sequence"][1]["mota"] == pytest.approx(1.0)
    # overall: GT 8, FN 2, FP 1 -> 1 - 3 / 8; IDTP 6, IDFP 1, IDFN 2 -> 12 / 15
    assert m["overall"]["mota"] == pytest.approx(5 / 8)
    assert m["overall"]["idf1"] == pytest.approx(12 / 15)


def test_own_clear_and_identity_counts():
    gt = seq(*[[(1, A[0])]] * 4)
    switch_back = seq([(1, A[0])], [(2, A[0])], [(1, A[0])], [(1, A[0])])
    c = clear_counts(gt, switch_back)
    assert (c["tp"], c["fn"], c["fp"], c["idsw"]) == (4, 0, 0, 2)
    i = identity_counts(gt, switch_back)
    assert (i["idtp"], i["idfn"], i["idfp"]) == (3, 1, 1)
