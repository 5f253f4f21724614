"""The classical shapes detector: recall and precision on rendered frames, splitting, noise, backgrounds."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from tdgen.evaluate.detect import Detections, detect_clip, detect_shapes, estimate_background  # noqa: E402
from tdgen.evaluate.metrics import ignored_detections, match_boxes  # noqa: E402
from tdgen.shapes import render_video  # noqa: E402


@pytest.fixture(scope="module")
def clips() -> list:
    """Six rendered videos of 16 frames."""
    return [render_video(k, seed=11, frames=16) for k in range(6)]


def jpeg(frame: np.ndarray, quality: int = 90) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def score(clips, transform=None, background: str = "given", min_visibility: float = 0.4):
    tp = fp = fn = 0
    ious = []
    for v in clips:
        frames = v.frames if transform is None else np.stack([transform(f) for f in v.frames])
        if background == "given":
            dets = [detect_shapes(f, v.background) for f in frames]
        else:
            dets, _ = detect_clip(frames)
        for t, d in enumerate(dets):
            sel = v.frame_index == t
            gt, ign = v.bbox[sel], v.visibility[sel] < min_visibility
            rows, cols, iou = match_boxes(gt[~ign], d.boxes, 0.5)
            free = np.setdiff1d(np.arange(len(d)), cols)
            dropped = ignored_detections(gt[ign], d.boxes[free]).sum() if ign.any() and free.size else 0
            tp += rows.size
            fn += int((~ign).sum()) - rows.size
            fp += len(d) - rows.size - int(dropped)
            ious.extend(iou.tolist())
    return tp / (tp + fn), tp / max(1, tp + fp), float(np.mean(ious))


def test_oracle_recall_and_precision_on_rendered_frames(clips):
    recall, precision, mean_iou = score(clips)
    assert recall >= 0.95
    assert precision >= 0.9
    assert mean_iou >= 0.95
    # counting heavily hidden shapes too, almost all are still found
    assert score(clips, min_visibility=0.0)[0] >= 0.95


def test_estimated_background_and_jpeg_frames(clips):
    recall, precision, _ = score(clips, background="estimated")
    assert recall >= 0.95 and precision >= 0.9
    recall, precision, mean_iou = score(clips, transform=jpeg, background="estimated")
    assert recall >= 0.9 and precision >= 0.9 and mean_iou >= 0.85


def test_boxes_are_exact_on_an_unoccluded_shape(clips):
    v = clips[0]
    row = int(np.flatnonzero(v.visibility == 1.0)[0])
    d = detect_shapes(v.frames[v.frame_index[row]], v.background)
    assert any(np.array_equal(b, v.bbox[row]) for b in d.boxes)
    colour = np.array(v.colors[int(v.instance[row])], float)
    j = int(np.argmin(np.abs(d.boxes - v.bbox[row]).sum(1)))
    assert np.allclose(d.colors[j], colour)
    assert 0 < d.scores[j] <= 1 and d.areas[j] > 0


def test_touching_shapes_of_different_colours_give_two_boxes():
    frame = np.full((64, 64, 3), 120, np.uint8)
    frame[10:30, 10:30] = (230, 30, 30)  # red square
    frame[14:26, 30:50] = (30, 60, 230)  # blue bar touching its right side
    d = detect_shapes(frame)  # background: the border colour
    assert sorted(map(tuple, d.boxes.astype(int).tolist())) == [(10, 10, 20, 20), (30, 14, 20, 12)]
    # the same colour split in two by a shape in front stays one detection
    frame = np.full((64, 64, 3), 120, np.uint8)
    frame[10:40, 10:40] = (230, 30, 30)
    frame[22:28, 5:45] = (30, 60, 230)  # a blue bar across the red square
    d = detect_shapes(frame, np.full_like(frame, 120))
    boxes = sorted(map(tuple, d.boxes.astype(int).tolist()))
    assert boxes == [(5, 22, 40, 6), (10, 10, 30, 30)]


def test_noise_frames_give_no_useful_detections(clips):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (16, 128, 128, 3), dtype=np.uint8)
    dets, bg = detect_clip(noise)
    assert bg.shape == (128, 128, 3)
    hits = total = 0
    for t, d in enumerate(dets):
        gt = clips[0].bbox[clips[0].frame_index == t]
        hits += match_boxes(gt, d.boxes, 0.5)[0].size
        total += len(gt)
    assert hits / total <= 0.05
    assert len(detect_shapes(np.full((32, 32, 3), 90, np.uint8))) == 0


def test_estimate_background_recovers_the_clean_one(clips):
    for v in clips[:3]:
        est = estimate_background(v.frames)
        err = np.abs(est.astype(int) - v.background.astype(int)).max(2)
        assert np.mean(err > 40) < 0.002
    single = estimate_background(clips[0].frames[0])
    assert single.shape == clips[0].frames[0].shape and len(np.unique(single.reshape(-1, 3), axis=0)) == 1


def test_bad_input():
    with pytest.raises(ValueError):
        detect_shapes(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError):
        detect_shapes(np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8))
    assert len(Detections.empty()) == 0
