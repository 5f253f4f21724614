"""ROI pooling against a straightforward float64 re-statement of torchvision's roi_align."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tdgen.model import instance_features, roi_pool


def _bilinear(feat: np.ndarray, y: float, x: float) -> np.ndarray:
    """torchvision's bilinear_interpolate for one point, all channels."""
    _, height, width = feat.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feat.shape[0])
    y = max(y, 0.0)
    x = max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * feat[:, y_low, x_low]
        + hy * lx * feat[:, y_low, x_high]
        + ly * hx * feat[:, y_high, x_low]
        + ly * lx * feat[:, y_high, x_high]
    )


def reference_roi_align(feat, box, out_h, out_w, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """One box on one (C, H, W) float64 map, loops over bins and samples."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (float(v) * spatial_scale - offset for v in box)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
    count = max(grid_h * grid_w, 1)
    out = np.zeros((feat.shape[0], out_h, out_w))
    for ph in range(out_h):
        for pw in range(out_w):
            acc = np.zeros(feat.shape[0])
            for iy in range(grid_h):
                y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    acc += _bilinear(feat, y, x)
            out[:, ph, pw] = acc / count
    return out


def _random_case(seed: int, n_img=3, n_box=6, channels=4, height=7, width=11):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n_img, channels, height, width, generator=g, dtype=torch.float64)
    # Corners spread beyond the map on every side; some boxes are thinner than a pixel.
    lo = torch.tensor([-4.0, -4.0])
    span = torch.tensor([width + 8.0, height + 8.0])
    p = lo + torch.rand(n_img, n_box, 2, generator=g, dtype=torch.float64) * span
    size = torch.rand(n_img, n_box, 2, generator=g, dtype=torch.float64) * torch.tensor([width, height]) * 0.9
    size[:, 0] *= 0.05  # first box of each image: sub-pixel
    boxes = torch.cat([p, p + size], dim=-1)
    return feats, boxes


def _reference_batch(feats, boxes, out, **kw):
    oh, ow = (out, out) if isinstance(out, int) else out
    res = np.zeros((boxes.shape[0], boxes.shape[1], feats.shape[1], oh, ow))
    for i in range(boxes.shape[0]):
        for k in range(boxes.shape[1]):
            res[i, k] = reference_roi_align(feats[i].numpy(), boxes[i, k].tolist(), oh, ow, **kw)
    return torch.from_numpy(res)


@pytest.mark.parametrize("output_size", [1, 2, (2, 3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_adaptive(output_size, seed):
    feats, boxes = _random_case(seed)
    expected = _reference_batch(feats, boxes, output_size)
    got64 = roi_pool(feats, boxes, output_size)
    assert got64.dtype == torch.float64
    torch.testing.assert_close(got64, expected, atol=1e-10, rtol=0)
    got32 = roi_pool(feats.float(), boxes.float(), output_size)
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sampling_ratio,aligned,scale", [(2, False, 1.0), (3, True, 0.5), (-1, True, 1.0), (-1, False, 0.25)])
def test_matches_reference_other_modes(sampling_ratio, aligned, scale):
    feats, boxes = _random_case(7)
    boxes = boxes / scale
    for out in (1, 2):
        expected = _reference_batch(feats, boxes, out, spatial_scale=scale, sampling_ratio=sampling_ratio,
                                    aligned=aligned)
        got = roi_pool(feats, boxes, out, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=aligned)
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def test_large_boxes_and_single_pixel_maps():
    # Boxes much larger than the map (many samples per bin) and 1-pixel-high maps.
    g = torch.Generator().manual_seed(3)
    for height, width in ((1, 5), (5, 1), (1, 1), (16, 16)):
        feats = torch.randn(2, 3, height, width, generator=g, dtype=torch.float64)
        boxes = torch.tensor(
            [[[-10.0, -10.0, 30.0, 25.0], [0.0, 0.0, width, height], [0.2, 0.3, 0.4, 0.5]],
             [[-0.9, -0.9, 0.1, 0.1], [width - 0.5, height - 0.5, width + 0.9, height + 0.9],
              [-30.0, -30.0, -20.0, -20.0]]],
            dtype=torch.float64,
        )
        for out in (1, 2):
            expected = _reference_batch(feats, boxes, out)
            torch.testing.assert_close(roi_pool(feats, boxes, out), expected, atol=1e-10, rtol=0)


def test_matches_torchvision_when_available():
    tv_ops = pytest.importorskip("torchvision.ops")
    feats, boxes = _random_case(11)
    rois = torch.cat(
        [torch.arange(boxes.shape[0], dtype=boxes.dtype).repeat_interleave(boxes.shape[1])[:, None],
         boxes.reshape(-1, 4)], dim=1)
    for out in (1, 2):
        tv = tv_ops.roi_align(feats, rois, out, spatial_scale=1.0, sampling_ratio=-1, aligned=False)
        ours = roi_pool(feats, boxes, out).reshape(tv.shape)
        torch.testing.assert_close(ours, tv, atol=1e-10, rtol=0)


def test_roi_pool_gradients_flow_to_features():
    feats, boxes = _random_case(5)
    feats.requires_grad_(True)
    roi_pool(feats, boxes, 2).sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_instance_features_null_and_invariance():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 6, 5, 7, generator=g)
    boxes = torch.rand(4, 3, 4, generator=g)
    boxes[..., 2:] = boxes[..., :2] + 0.3
    masks = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.bool)
    null = torch.randn(6, generator=g)
    out = instance_features(hidden, boxes, masks, null)
    assert out.shape == (4, 3, 6)
    torch.testing.assert_close(out[~masks], null.expand(int((~masks).sum()), 6))
    # Present slots: ROI Align of the box scaled to the map (x by width, y by height).
    scaled = boxes * torch.tensor([7.0, 5.0, 7.0, 5.0])
    ref = roi_pool(hidden, scaled, 1)[..., 0, 0]
    torch.testing.assert_close(out[masks], ref[masks])
    # Garbage in absent slots (even NaN) changes nothing.
    junk = boxes.clone()
    junk[~masks] = torch.tensor([float("nan"), 1e9, -5.0, float("inf")])
    assert torch.equal(instance_features(hidden, junk, masks, null), out)


def test_no_data_dependent_ops_under_compile():
    """The pooling and the enhancer trace as one graph: no nonzero(), boolean indexing or .item()."""
    compiled = torch.compile(roi_pool, fullgraph=True, backend="eager")
    feats, boxes = _random_case(2)
    torch.testing.assert_close(compiled(feats, boxes, 1), roi_pool(feats, boxes, 1))

    hidden = torch.randn(4, 6, 5, 7)
    boxes = torch.rand(4, 3, 4)
    masks = torch.rand(4, 3) > 0.5
    null = torch.randn(6)
    compiled_if = torch.compile(instance_features, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled_if(hidden, boxes, masks, null), instance_features(hidden, boxes, masks, null))
