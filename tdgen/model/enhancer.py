"""Temporal instance enhancer: batched ROI pooling and the gated cross-attention ``injector``.

ROI pooling (:func:`roi_pool`) reproduces ``torchvision.ops.roi_align`` (bilinear sampling on a
regular grid per output bin, averaged; ``sampling_ratio=-1`` picks ``ceil(bin size)`` samples per
bin and axis; ``aligned=False`` forces ROI sizes to at least one pixel) without torchvision and
without any per-box copy of the feature map or any data-dependent shape:

bilinear interpolation is separable, so the average over a bin's ``gh x gw`` sample grid equals
``sum_{r, c} wy[r] * wx[c] * feature[:, r, c]`` with ``wy[r]`` the mean over the bin's ``gh``
sample rows of the clamped 1-D "hat" weight of row ``r`` (``wx`` likewise). The per-axis weights
are computed for all boxes at once; for the adaptive grid each row only needs the few samples that
can fall within one pixel of it (at most 4, because adaptive samples are more than half a pixel
apart), so the work is O(boxes x bins x (H + W)) plus one batched matmul against the feature map.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention, FeedForward

__all__ = ["roi_pool", "instance_features", "InstanceInjector"]

# Candidate samples examined per row/column in the adaptive mode: the at most 4 samples within one
# pixel of it, plus one on each side to absorb rounding in the index estimate.
_ADAPTIVE_CANDIDATES = 6


def _axis_weights(
    start: torch.Tensor,
    extent: torch.Tensor,
    pooled: int,
    length: int,
    sampling_ratio: int,
) -> torch.Tensor:
    """Per-bin averaged bilinear weights along one axis.

    Args:
        start: ``(R,)`` ROI start coordinate (already scaled and offset).
        extent: ``(R,)`` ROI size along the axis (already clamped when ``aligned=False``).
        pooled: number of output bins along the axis.
        length: feature-map size along the axis.
        sampling_ratio: samples per bin, or <= 0 for ``ceil(bin size)``.

    Returns:
        ``(R, pooled, length)``: weight of each feature row for each bin, already divided by the
        bin's sample count along this axis.
    """
    bin_size = extent / pooled  # (R,)
    if sampling_ratio > 0:
        grid = torch.full_like(bin_size, float(sampling_ratio))
    else:
        grid = torch.ceil(bin_size)
    # torchvision divides by max(gh * gw, 1); a non-positive grid only occurs for degenerate boxes
    # with aligned=True, whose samples are all empty, so dividing by max(grid, 1) is equivalent.
    safe_grid = grid.clamp(min=1.0)
    bins = torch.arange(pooled, dtype=start.dtype, device=start.device)
    bin_start = start[:, None] + bins[None, :] * bin_size[:, None]  # (R, P)
    rows = torch.arange(length, dtype=start.dtype, device=start.device)  # (L,)
    step = bin_size / safe_grid  # (R,) distance between samples

    if sampling_ratio > 0:
        # Every sample of the bin: (R, P, S) positions, dense against all rows.
        idx = torch.arange(sampling_ratio, dtype=start.dtype, device=start.device)
        samples = bin_start[..., None] + (idx + 0.5) * bin_size[:, None, None] / safe_grid[:, None, None]
        in_grid = torch.ones_like(samples, dtype=torch.bool)
        pos = samples[..., None]  # (R, P, S, 1)
        inside = in_grid[..., None]
        target = rows  # broadcast over the last dim
        reduce_dim = -2
    else:
        # For row r, the samples that can weigh on it lie in [lo_r, hi_r] (the hat's support after
        # clamping: row 0 also takes [-1, 0], the last row also takes [L-1, L]).
        lo = torch.where(rows == 0, torch.full_like(rows, -1.0), rows - 1.0)  # (L,)
        first = torch.ceil(
            (lo[None, None, :] - bin_start[..., None]) / step[:, None, None] - 0.5
        ) - 1.0  # (R, P, L)
        first = first.clamp(min=0.0)
        cand = torch.arange(_ADAPTIVE_CANDIDATES, dtype=start.dtype, device=start.device)
        idx = first[..., None] + cand  # (R, P, L, K)
        pos = bin_start[..., None, None] + (idx + 0.5) * bin_size[:, None, None, None] / safe_grid[
            :, None, None, None
        ]
        inside = idx < grid[:, None, None, None]
        target = rows[:, None]  # (L, 1) against (R, P, L, K)
        reduce_dim = -1

    valid = inside & (pos >= -1.0) & (pos <= float(length))
    clamped = pos.clamp(min=0.0, max=float(length - 1))
    hat = (1.0 - (clamped - target).abs()).clamp(min=0.0)
    hat = torch.where(valid, hat, 0.0)
    weights = hat.sum(dim=reduce_dim)  # (R, P, L)
    return weights / safe_grid[:, None, None]


def roi_pool(
    features: torch.Tensor,
    boxes: torch.Tensor,
    output_size: int | tuple[int, int] = 1,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """ROI Align over a fixed number of boxes per image, all at once.

    Semantics of ``torchvision.ops.roi_align(features, rois, output_size, spatial_scale,
    sampling_ratio, aligned)`` where image ``i`` owns boxes ``boxes[i]``.

    Args:
        features: ``(K, C, H, W)``.
        boxes: ``(K, N, 4)`` xyxy in input coordinates (multiplied by ``spatial_scale``).
        output_size: ``int`` or ``(out_h, out_w)``.
        spatial_scale: scale from box coordinates to feature pixels.
        sampling_ratio: samples per bin and axis; ``<= 0`` means adaptive ``ceil(bin size)``.
        aligned: shift by half a pixel and do not clamp ROI sizes to 1 (torchvision ``aligned``).

    Returns:
        ``(K, N, C, out_h, out_w)`` in the dtype of ``features``.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (K, C, H, W), got shape {tuple(features.shape)}")
    if boxes.dim() != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != features.shape[0]:
        raise ValueError(
            f"boxes must be (K, N, 4) with K = {features.shape[0]}, got shape {tuple(boxes.shape)}"
        )
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    n_img, channels, height, width = features.shape
    n_box = boxes.shape[1]
    wdtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    rois = boxes.reshape(n_img * n_box, 4).to(wdtype) * spatial_scale
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] - offset for i in range(4))
    roi_w = x2 - x1
    roi_h = y2 - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    wy = _axis_weights(y1, roi_h, out_h, height, sampling_ratio)  # (R, oh, H)
    wx = _axis_weights(x1, roi_w, out_w, width, sampling_ratio)  # (R, ow, W)
    # (R, oh, ow, H, W) -> (K, N*oh*ow, H*W)
    weights = wy[:, :, None, :, None] * wx[:, None, :, None, :]
    weights = weights.reshape(n_img, n_box * out_h * out_w, height * width).to(features.dtype)
    pooled = torch.bmm(weights, features.reshape(n_img, channels, height * width).transpose(1, 2))
    pooled = pooled.reshape(n_img, n_box, out_h, out_w, channels)
    return pooled.permute(0, 1, 4, 2, 3)


def instance_features(
    hidden: torch.Tensor,
    boxes: torch.Tensor,
    masks: torch.Tensor,
    null_feature: torch.Tensor,
) -> torch.Tensor:
    """Per-slot ROI features of the current feature map, null feature for absent slots.

    Args:
        hidden: ``(B*F, C, h, w)`` feature map.
        boxes: ``(B*F, N, 4)`` xyxy normalised to [0, 1].
        masks: ``(B*F, N)`` bool, True where present.
        null_feature: ``(C,)`` learned feature of absent slots (``null_track_feat.weight[0]``).

    Returns:
        ``(B*F, N, C)``: 1x1 ROI Align (torchvision defaults: spatial_scale 1 on boxes scaled by
        ``(w, h)``, adaptive sampling, aligned=False) where present, ``null_feature`` elsewhere.
    """
    height, width = hidden.shape[-2:]
    b = boxes.float()
    scaled = torch.stack([b[..., 0] * width, b[..., 1] * height, b[..., 2] * width, b[..., 3] * height], dim=-1)
    # Absent slots get the empty box at the origin (pooled as a one-pixel ROI, aligned=False) so
    # that their discarded pooling is finite and independent of what the caller left there.
    safe = torch.where(masks[..., None], scaled, 0.0)
    pooled = roi_pool(hidden, safe, output_size=1)[..., 0, 0]  # (B*F, N, C)
    return torch.where(masks[..., None], pooled, null_feature.to(pooled.dtype))


class InstanceInjector(nn.Module):
    """Temporal instance enhancer (published ``GatedCrossAttentionTrackFuse``, the ``injector``).

    For visual tokens ``x`` ``(B*F, L, C)`` of one spatial transformer block:

    1. ``o = linears(cat[roi_feature (C), motion_code (M)])``, a 3-layer SiLU MLP -> ``(B*F, N, C)``;
    2. ``o = o + attn1(norm1(o))`` across the F frames of each slot (temporal self-attention);
    3. ``x = x + tanh(alpha_attn) * attn2(norm2(x), o)`` (cross-attention to the frame's N
       instance tokens, which are not normalised);
    4. ``x = x + tanh(alpha_dense) * ff(norm3(x))``.

    Both gates start at 0, so a fresh injector is the identity.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, motion_dim: int = 128) -> None:
        super().__init__()
        self.linears = nn.Sequential(
            nn.Linear(dim + motion_dim, dim),
            nn.SiLU(),
            nn.Linear(dim, dim),
            nn.SiLU(),
            nn.Linear(dim, dim),
        )
        self.attn1 = Attention(dim, heads, dim_head)
        self.attn2 = Attention(dim, heads, dim_head, context_dim=dim)
        self.ff = FeedForward(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.alpha_attn = nn.Parameter(torch.zeros(()))
        self.alpha_dense = nn.Parameter(torch.zeros(()))

    def instance_tokens(self, feat: torch.Tensor, track: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``feat (B*F, N, C)`` and ``track (B, F, N, M)`` -> tokens ``(B*F, N, C)``."""
        bf, slots, dim = feat.shape
        bsz = bf // num_frames
        tokens = self.linears(torch.cat([feat, track.reshape(bf, slots, -1).to(feat.dtype)], dim=-1))
        tokens = tokens.reshape(bsz, num_frames, slots, dim).permute(0, 2, 1, 3).reshape(bsz * slots, num_frames, dim)
        tokens = tokens + self.attn1(self.norm1(tokens))
        return tokens.reshape(bsz, slots, num_frames, dim).permute(0, 2, 1, 3).reshape(bf, slots, dim)

    def forward(
        self, x: torch.Tensor, feat: torch.Tensor, track: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        tokens = self.instance_tokens(feat, track, num_frames)
        x = x + self.alpha_attn.tanh() * self.attn2(self.norm2(x), tokens)
        x = x + self.alpha_dense.tanh() * self.ff(self.norm3(x))
        return x
