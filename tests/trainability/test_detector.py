"""The benchmark's CenterNet detector: output shapes, exact decoding of targets, learning real frames."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tdgen.evaluate.metrics import box_iou, match_boxes  # noqa: E402
from tdgen.trainability.data import load_frameset  # noqa: E402
from tdgen.trainability.detector import (  # noqa: E402
    STRIDE,
    CenterNet,
    TrainConfig,
    decode,
    detect_frames,
    encode_targets,
    train_detector,
)


def test_outputs_are_on_the_stride_4_grid():
    with torch.no_grad():
        heat, size, off = CenterNet(8)(torch.zeros(2, 3, 128, 96))
    assert heat.shape == (2, 1, 32, 24) and size.shape == (2, 2, 32, 24) and off.shape == (2, 2, 32, 24)
    # the prior: every cell starts as background with probability about 0.9
    assert float(torch.sigmoid(heat).mean()) == pytest.approx(0.1, abs=0.03)


def test_decoding_a_target_heatmap_gives_back_the_boxes():
    boxes = [np.array([[10.0, 12.0, 20.0, 30.0], [70.5, 40.25, 33.0, 17.5], [3.0, 100.0, 9.0, 9.0]]),
             np.zeros((0, 4)),
             np.array([[50.0, 50.0, 60.0, 61.0]])]
    t = encode_targets(boxes, None, (128, 128))
    dets = decode(t.heatmap, t.size, t.offset, logits=False, min_score=0.999)
    for want, (got, scores) in zip(boxes, dets):
        assert len(got) == len(want) and np.all(scores == 1.0)
        order = np.lexsort((got[:, 1], got[:, 0]))
        np.testing.assert_allclose(got[order], want[np.lexsort((want[:, 1], want[:, 0]))], atol=1e-4)


def test_decoding_keeps_only_local_maxima_and_clips_to_the_frame():
    heat = torch.zeros(1, 1, 8, 8)
    heat[0, 0, 2, 2] = 0.9
    heat[0, 0, 2, 3] = 0.6   # beside a stronger peak: suppressed by the 3x3 max-pool
    heat[0, 0, 6, 6] = 0.4
    size = torch.full((1, 2, 8, 8), 4.0)
    off = torch.full((1, 2, 8, 8), 0.5)
    (boxes, scores), = decode(heat, size, off, logits=False, min_score=0.3, frame_size=(28, 32))
    np.testing.assert_allclose(scores, [0.9, 0.4], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], [2.5 * STRIDE - 8, 2.5 * STRIDE - 8, 16, 16])
    # centre (26, 26) with size 16 runs past x = 28 and y = 32: clipped to the 28x32 frame
    np.testing.assert_allclose(boxes[1], [18, 18, 10, 14])


def test_ignore_regions_take_no_loss_except_at_real_centres():
    t = encode_targets([np.array([[40.0, 40.0, 8.0, 8.0]])], [np.array([[32.0, 32.0, 32.0, 32.0]])], (64, 64))
    assert t.weight[0, 0, 8:16, 8:16].sum() == 1  # only the real object's centre cell inside the region
    assert t.weight[0, 0, 11, 11] == 1 and t.weight.sum() == 16 * 16 - 64 + 1


@pytest.mark.slow  # 60 training steps: a few seconds of CPU, more on a busy machine
def test_it_learns_to_find_rendered_shapes(tmp_path):
    from tdgen.shapes.render import render_shapes

    torch.set_num_threads(1)
    render_shapes(tmp_path / "s", videos=1, frames=4, size=(128, 128), seed=5)
    fs = load_frameset(tmp_path / "s" / "annotations.json", min_visibility=0.4)
    assert len(fs) == 4 and fs.num_boxes >= 4
    frames = torch.from_numpy(fs.images).permute(0, 3, 1, 2).contiguous()
    targets = encode_targets(fs.boxes, fs.ignore, (128, 128))
    model, rec = train_detector(frames, targets, TrainConfig(steps=60, batch_size=4, width=8, lr=4e-3, seed=0))
    assert rec["steps"] == 60 and rec["final_loss"] < 1.5
    found = total = 0
    for gt, (boxes, scores) in zip(fs.boxes, detect_frames(model, frames)):
        rows, _, _ = match_boxes(gt, boxes[scores >= 0.3], 0.5)
        found += len(rows)
        total += len(gt)
    assert found / total > 0.9
    # the same seed gives the same weights
    again, _ = train_detector(frames, targets, TrainConfig(steps=3, batch_size=4, width=8, seed=1))
    twice, _ = train_detector(frames, targets, TrainConfig(steps=3, batch_size=4, width=8, seed=1))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), twice.state_dict().values()))
    assert box_iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0, 0)


def test_training_refuses_frames_off_the_grid():
    t = encode_targets([np.zeros((0, 4))], None, (40, 40))
    with pytest.raises(ValueError, match="multiples of 16"):
        train_detector(torch.zeros(1, 3, 40, 40, dtype=torch.uint8), t, TrainConfig(steps=1, batch_size=1))
