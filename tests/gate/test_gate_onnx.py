"""The onnx backend end to end on tiny constant graphs (CPU provider), and its one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from onnx_graphs import constant_model, first_pixels_model  # noqa: E402

from tdgen.errors import FormatError, UsageError  # noqa: E402
from tdgen.gate import OnnxYoloxDetector, make_detector  # noqa: E402
from tdgen.gate.yolox import Preprocess  # noqa: E402

N = 96 + 24 + 6  # the grid cells of a 64x96 input with strides 8/16/32
FRAMES = np.full((2, 40, 120, 3), 90, np.uint8)  # 120 wide, 40 high: r = min(64/40, 96/120) = 0.8


def _detector(path, **kw) -> OnnxYoloxDetector:
    return OnnxYoloxDetector(path, threads=1, **kw)


def _decoded_rows() -> np.ndarray:
    out = np.zeros((1, N, 6), np.float32)
    out[0, 10] = [48, 16, 40, 20, 0.9, 0.8]  # score 0.72
    out[0, 11] = [49, 16, 40, 20, 0.5, 1.0]  # score 0.5, IoU 0.95 with row 10: suppressed
    out[0, 12] = [90, 30, 20, 10, 1.0, 0.3]  # score 0.3, leaves the frame on the right and bottom
    out[0, 13] = [10, 10, 6, 6, 0.09, 1.0]  # score 0.09: under the default threshold 0.1
    return out


def test_decoded_output_end_to_end(tmp_path):
    det = _detector(constant_model(tmp_path / "dec.onnx", _decoded_rows()))
    assert det.input_hw == (64, 96) and det.providers == ["CPUExecutionProvider"]
    assert det.decoded is None
    dets = det.detect_clip(FRAMES, "clip")
    assert det.decoded is True  # told from the output (centres far past a few cells), then kept
    assert len(dets) == 2
    for d in dets:
        # input xyxy (28, 6, 68, 26) / 0.8 and (80, 25, 100, 35) / 0.8 clipped to the 120 x 40 frame
        np.testing.assert_allclose(d.boxes, [[35, 7.5, 85, 32.5], [100, 31.25, 120, 40]], rtol=1e-6)
        np.testing.assert_allclose(d.scores, [0.72, 0.3], rtol=1e-6)
        np.testing.assert_array_equal(d.classes, [0, 0])


def test_raw_grid_output_end_to_end(tmp_path):
    out = np.zeros((1, N, 6), np.float32)
    out[0, 5 * 12 + 2] = [0, 0, math.log(3), 0, 1.0, 0.5]  # stride 8, cell x=2, y=5
    out[0, 3 * 12 + 2] = [0, 0, math.log(3), 0, 1.0, 0.5]  # stride 8, cell x=2, y=3
    out[0, 96 + 1 * 6 + 3] = [0.5, 0.25, math.log(2), 0, 0.8, 1.0]  # stride 16, cell x=3, y=1
    det = _detector(constant_model(tmp_path / "raw.onnx", out))
    d = det.detect_clip(FRAMES[:1], "clip")[0]
    assert det.decoded is False
    # stride 16: centre ((3.5) 16, (1.25) 16) = (56, 20), 32 x 16 -> (40, 12, 72, 28) / 0.8
    # stride 8 (2, 3): centre (16, 24), 24 x 8 -> (4, 20, 28, 28) / 0.8; (2, 5): (4, 36, 28, 44) / 0.8
    # lies below the 40-pixel frame (the padding): no area once clipped
    np.testing.assert_allclose(d.boxes, [[50, 15, 90, 35], [5, 25, 35, 35]], rtol=1e-6)
    np.testing.assert_allclose(d.scores, [0.8, 0.5], rtol=1e-6)


def test_decoded_flag_overrides_the_guess(tmp_path):
    path = constant_model(tmp_path / "dec.onnx", _decoded_rows())
    forced_raw = _detector(path, decoded=False).detect_clip(FRAMES[:1], "c")[0]
    # read as log-sizes, 40 and 20 make boxes far larger than the frame: all clip to the frame
    # and the best (0.72) suppresses the others
    np.testing.assert_allclose(forced_raw.boxes, [[0, 0, 120, 40]])
    np.testing.assert_allclose(forced_raw.scores, [0.72], rtol=1e-6)
    decoded_ok = _detector(path, decoded=True, score_threshold=0.05).detect_clip(FRAMES[:1], "c")[0]
    assert len(decoded_ok) == 3  # the 0.09 row now passes


def test_raw_flag_with_rows_that_are_not_the_grid_is_one_line(tmp_path):
    path = constant_model(tmp_path / "short.onnx", np.zeros((1, 10, 6)))
    det = _detector(path, decoded=False)
    with pytest.raises(FormatError) as e:
        det.detect_clip(FRAMES[:1], "c")
    assert "grid cells" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("content", [b"this is not a protobuf\n\x00\x01 at all", b""])
def test_malformed_file_is_one_line(tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(FormatError) as e:
        make_detector(str(bad), None, threads=1)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: not an ONNX model (") and "\n" not in msg
    assert e.value.exit_code == 2


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        make_detector(str(tmp_path / "nope.onnx"), None)
    with pytest.raises(UsageError, match="no such file"):
        OnnxYoloxDetector(tmp_path / "nope.onnx")


@pytest.mark.parametrize("shape", [(1, 1, 64, 96), (1, 3, "height", 96), (3, 64, 96), (2, 3, 64, 96)])
def test_wrong_input_shape_is_one_line(tmp_path, shape):
    path = constant_model(tmp_path / "in.onnx", _decoded_rows(), input_shape=shape)
    with pytest.raises(FormatError) as e:
        _detector(path)
    msg = str(e.value)
    assert "not (1, 3, H, W)" in msg and msg.startswith(str(path)) and "\n" not in msg


def test_symbolic_batch_is_run_with_one(tmp_path):
    path = constant_model(tmp_path / "batch.onnx", _decoded_rows(), input_shape=("batch", 3, 64, 96))
    assert len(_detector(path).detect_clip(FRAMES[:1], "c")[0]) == 2


@pytest.mark.parametrize("output", [np.zeros((1, N, 5)), np.zeros((N, 6)), np.zeros((2, N, 6))])
def test_wrong_output_shape_is_one_line(tmp_path, output):
    path = constant_model(tmp_path / "out.onnx", output)
    with pytest.raises(FormatError) as e:
        _detector(path)
    assert "not (1, N, 5 + classes)" in str(e.value) and "\n" not in str(e.value)


def test_wrong_output_shape_found_at_run_time(tmp_path):
    path = constant_model(tmp_path / "hidden.onnx", np.zeros((1, N, 5)), hide_shape=True)
    det = _detector(path)  # its output's shape is unknown until it runs
    with pytest.raises(FormatError) as e:
        det.detect_clip(FRAMES[:1], "c")
    assert "output (1, 126, 5) is not (1, N, 5 + classes)" in str(e.value) and "\n" not in str(e.value)


def test_hidden_shape_graph_runs_when_its_output_is_right(tmp_path):
    det = _detector(constant_model(tmp_path / "hidden.onnx", _decoded_rows(), hide_shape=True))
    assert len(det.detect_clip(FRAMES[:1], "c")[0]) == 2


def test_options_are_checked(tmp_path):
    path = constant_model(tmp_path / "dec.onnx", _decoded_rows())
    with pytest.raises(UsageError, match="unknown option"):
        make_detector(str(path), None, threshold=0.3)
    with pytest.raises(UsageError, match="preprocess"):
        _detector(path, preprocess="nope")
    with pytest.raises(UsageError, match="not available"):
        _detector(path, providers=["NoSuchExecutionProvider"])
    # CUDA asked for where onnxruntime has none: the CPU
    import onnxruntime

    det = _detector(path, device="cuda")
    expect = "CUDAExecutionProvider" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else \
        "CPUExecutionProvider"
    assert det.providers[0] == expect


def test_the_model_sees_the_frame_in_its_channel_order_and_scale(tmp_path):
    # the model echoes its first two input pixels as (cx, cy, w, h, obj, cls); in BGR order with
    # the last (red) channel divided by 255, they read as a box and a score
    frames = np.zeros((1, 64, 96, 3), np.uint8)
    frames[0, 0, 0] = (255, 20, 40)  # R, G, B
    frames[0, 0, 1] = (204, 10, 30)
    pre = Preprocess(channels="bgr", scale=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 255.0))
    det = _detector(first_pixels_model(tmp_path / "echo.onnx"), preprocess=pre)
    d = det.detect_clip(frames, "c")[0]
    # cx = B0 = 40, cy = B1 = 30, w = G0 = 20, h = G1 = 10, obj = 255/255, cls = 204/255
    np.testing.assert_allclose(d.boxes, [[30, 25, 50, 35]], rtol=1e-6)
    np.testing.assert_allclose(d.scores, [0.8], rtol=1e-6)
    assert det.decoded is True  # one row is not the grid: decoded
