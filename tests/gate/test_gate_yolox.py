"""YOLOX pre/post-processing against hand-made arrays: letterbox, grid decoding, NMS, mapping back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tdgen.gate.yolox import (BYTETRACK, YOLOX, Preprocess, decode_grid, grid_cells, letterbox, looks_decoded, nms,
                              postprocess, prepare_input)


def test_letterbox_keeps_aspect_and_pads_bottom_right_with_114():
    frame = np.full((40, 120, 3), 200, np.uint8)  # wide frame into a 64x96 input: r = 0.8
    canvas, r = letterbox(frame, (64, 96))
    assert r == pytest.approx(0.8)
    assert canvas.shape == (64, 96, 3) and canvas.dtype == np.float32
    assert np.all(canvas[:32, :96] == 200)  # 120*0.8 x 40*0.8 = 96 x 32 at the top-left
    assert np.all(canvas[32:] == 114)


def test_letterbox_tall_frame_pads_the_right():
    frame = np.zeros((128, 32, 3), np.uint8)  # r = min(64/128, 96/32) = 0.5 -> 16 x 64
    canvas, r = letterbox(frame, (64, 96))
    assert r == 0.5
    assert np.all(canvas[:, :16] == 0) and np.all(canvas[:, 16:] == 114)


def test_prepare_input_bytetrack_normalises_rgb():
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[..., 0] = 255  # pure red
    x, r = prepare_input(frame, (64, 96), BYTETRACK)
    assert x.shape == (1, 3, 64, 96) and x.dtype == np.float32 and r == 1.0
    # channel 0 is red: (1 - 0.485) / 0.229; green and blue are (0 - mean) / std
    assert x[0, 0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)
    assert x[0, 1, 0, 0] == pytest.approx(-0.456 / 0.224, rel=1e-5)
    assert x[0, 2, 0, 0] == pytest.approx(-0.406 / 0.225, rel=1e-5)


def test_prepare_input_yolox_is_bgr_0_255_and_pads_114():
    frame = np.zeros((32, 96, 3), np.uint8)
    frame[..., 0] = 250
    x, r = prepare_input(frame, (64, 96), YOLOX)
    assert r == 1.0
    assert x[0, 2, 0, 0] == 250 and x[0, 0, 0, 0] == 0  # red lands in the last channel
    assert np.all(x[0, :, 32:] == 114)


def test_preprocess_rejects_bad_settings():
    with pytest.raises(ValueError):
        Preprocess(channels="hsv")
    with pytest.raises(ValueError):
        Preprocess(std=(1.0, 0.0, 1.0))


def test_grid_cells_and_decoding_by_hand():
    hw = (64, 96)  # strides 8/16/32: 8x12 + 4x6 + 2x3 cells
    assert grid_cells(hw) == 96 + 24 + 6
    raw = np.zeros((126, 6))
    raw[62] = [0.5, 0.25, math.log(3), 0.0, 1, 1]  # stride 8, row 5, column 2
    raw[96 + 6 + 3] = [0.0, 0.0, math.log(2), 0.0, 1, 1]  # stride 16, row 1, column 3
    raw[120 + 5] = [1.0, -0.5, 0.0, math.log(0.5), 1, 1]  # stride 32, row 1, column 2
    dec = decode_grid(raw, hw)
    np.testing.assert_allclose(dec[62, :4], [(2 + 0.5) * 8, (5 + 0.25) * 8, 24, 8])
    np.testing.assert_allclose(dec[105, :4], [48, 16, 32, 16])
    np.testing.assert_allclose(dec[125, :4], [96, 16, 32, 16])
    np.testing.assert_allclose(dec[0, :4], [0, 0, 8, 8])  # zeros: the cell's corner, one stride wide
    np.testing.assert_array_equal(dec[:, 4:], raw[:, 4:])
    assert raw[62, 0] == 0.5  # a copy: the input is untouched
    with pytest.raises(ValueError, match="grid cells"):
        decode_grid(raw[:-1], hw)


def test_looks_decoded_rules():
    hw = (64, 96)
    raw = np.zeros((126, 6))
    raw[:, 0:2] = 0.5
    assert not looks_decoded(raw, hw)
    neg = raw.copy()
    neg[3, 2] = -0.2  # a negative log-size: raw
    neg[4, 0] = 50.0
    assert not looks_decoded(neg, hw)
    dec = raw.copy()
    dec[7, 0:4] = [60, 30, 10, 10]  # a centre far past a few cells: decoded
    assert looks_decoded(dec, hw)
    assert looks_decoded(np.zeros((10, 6)), hw)  # not the grid's row count


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = np.array([0.6, 0.9, 0.5, 0.4])
    # box 1 (best) vs 0: IoU 90/110 = 0.818 > 0.7 -> 0 goes; 3 equals 0 -> also IoU 0.818 -> goes
    np.testing.assert_array_equal(nms(boxes, scores, 0.7), [1, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.85), [1, 0, 2])  # 0 and 3 coincide: 3 goes
    # per class: boxes of different classes never suppress each other
    np.testing.assert_array_equal(nms(boxes, scores, 0.7, classes=np.array([0, 1, 0, 0])), [1, 0, 2])
    assert nms(np.zeros((0, 4)), np.zeros(0)).size == 0


def test_postprocess_scores_nms_and_letterbox_inverse():
    # frame 40 x 120 in a 64 x 96 input: r = 0.8
    rows = np.zeros((6, 7))
    rows[0] = [48, 16, 40, 20, 0.9, 0.8, 0.1]  # score 0.72, class 0
    rows[1] = [49, 16, 40, 20, 0.5, 0.2, 1.0]  # score 0.5, class 1; IoU 0.95 with row 0
    rows[2] = [10, 10, 4, 4, 0.05, 1.0, 0.0]  # under the score threshold
    rows[3] = [90, 30, 20, 10, 1.0, 0.3, 0.0]  # leaves the frame: clipped
    rows[4] = [40, 60, 10, 10, 1.0, 1.0, 0.0]  # in the padding only: no area once clipped
    # twice as wide as row 3 past the frame's edge (IoU 0.5 unclipped), the same box once
    # clipped: suppressed by row 3
    rows[5] = [100, 30, 40, 10, 1.0, 0.2, 0.0]
    d = postprocess(rows, 0.8, (40, 120), score_threshold=0.1, nms_threshold=0.7)
    np.testing.assert_allclose(d.boxes, [[35, 7.5, 85, 32.5], [100, 31.25, 120, 40]])
    np.testing.assert_allclose(d.scores, [0.72, 0.3])
    np.testing.assert_array_equal(d.classes, [0, 0])
    per_class = postprocess(rows, 0.8, (40, 120), class_agnostic=False)
    np.testing.assert_allclose(per_class.scores, [0.72, 0.5, 0.3])
    np.testing.assert_array_equal(per_class.classes, [0, 1, 0])
    assert len(postprocess(rows, 0.8, (40, 120), score_threshold=0.99)) == 0
