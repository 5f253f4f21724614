"""The shapes backend: the classical detector behind the gate's interface, boxes as xyxy."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from tdgen.errors import UsageError  # noqa: E402
from tdgen.evaluate.detect import detect_clip  # noqa: E402
from tdgen.evaluate.metrics import box_iou  # noqa: E402
from tdgen.gate import ShapesDetector, make_detector  # noqa: E402
from tdgen.shapes import render_video  # noqa: E402


def _rectangles() -> np.ndarray:
    """Five frames 80 wide, 48 high: a red 20x10 rectangle moving right, a blue 8x12 one still."""
    frames = np.full((5, 48, 80, 3), (120, 130, 125), np.uint8)
    for t in range(5):
        frames[t, 5:15, 10 + 4 * t:30 + 4 * t] = (220, 30, 30)  # columns 10+4t .. 29+4t, rows 5..14
        frames[t, 30:42, 60:68] = (30, 40, 210)
    return frames


def test_rectangles_come_out_as_xyxy_with_exclusive_right_edge():
    frames = _rectangles()
    dets = make_detector("shapes", None).detect_clip(frames, "clip")
    assert len(dets) == 5
    for t, d in enumerate(dets):
        order = np.argsort(d.boxes[:, 0])
        np.testing.assert_array_equal(d.boxes[order], [[10 + 4 * t, 5, 30 + 4 * t, 15], [60, 30, 68, 42]])
        np.testing.assert_array_equal(d.classes, [-1, -1])
        assert d.boxes.dtype == np.float64 and np.all((d.scores > 0) & (d.scores <= 1))


def test_same_boxes_and_scores_as_the_classical_detector():
    v = render_video(3, seed=5, frames=8, size=(96, 64))
    ours = ShapesDetector().detect_clip(v.frames, v.name)
    theirs, _ = detect_clip(v.frames)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.boxes[:, :2], b.boxes[:, :2])
        np.testing.assert_array_equal(a.boxes[:, 2:] - a.boxes[:, :2], b.boxes[:, 2:])
        np.testing.assert_array_equal(a.scores, b.scores)


def test_rendered_shapes_are_found():
    v = render_video(1, seed=2, frames=8, size=(96, 64))
    dets = ShapesDetector().detect_clip(v.frames, v.name)
    found = total = 0
    for t, d in enumerate(dets):
        sel = (v.frame_index == t) & (v.visibility >= 0.5)
        gt = v.bbox[sel].astype(np.float64)
        if not len(gt) or not len(d):
            total += len(gt)
            continue
        xywh = d.boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]
        found += int((box_iou(gt, xywh).max(1) >= 0.7).sum())
        total += len(gt)
    assert total > 0 and found / total >= 0.9


def test_options_reach_the_detector_and_unknown_ones_are_refused():
    frames = _rectangles()
    # a threshold above every colour difference leaves nothing in the foreground
    assert all(len(d) == 0 for d in ShapesDetector(threshold=250).detect_clip(frames, "c"))
    with pytest.raises(UsageError, match="unknown option.*colour"):
        make_detector("shapes", None, colour=3)
