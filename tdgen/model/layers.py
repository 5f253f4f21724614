"""Per-frame and per-clip layers that the 3-D UNet blocks stack (diffusers parameter names).

:class:`ResnetBlock2D`, :class:`Downsample2D` and :class:`Upsample2D` work on ``(B*F, C, h, w)``
one frame at a time; :class:`TemporalConvLayer` mixes neighbouring frames of each clip;
:class:`SpatialTransformer` runs the GLIGEN transformer (self-attention, fuser, injector, text
cross-attention, feed-forward) over each frame's ``h*w`` tokens. :class:`BlockSpec` carries the
widths and switches that every block and layer of one UNet shares.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, FeedForward, GatedSelfAttention
from .enhancer import InstanceInjector

__all__ = [
    "BlockSpec",
    "ResnetBlock2D",
    "TemporalConvLayer",
    "Downsample2D",
    "Upsample2D",
    "SpatialTransformer",
    "SpatialTransformerBlock",
]


class BlockSpec(NamedTuple):
    """Widths and switches shared by all blocks of one UNet."""

    temb_channels: int
    norm_groups: int
    norm_eps: float
    cross_attention_dim: int
    spatial_heads: int
    temporal_head_dim: int
    frame_embedding: str
    max_frames: int
    temporal_conv_dropout: float
    use_fuser: bool
    motion_dim: int
    fuser_position_freqs: int = 0
    fuser_box_mask: bool = False


class ResnetBlock2D(nn.Module):
    """GroupNorm-SiLU-conv twice with the time embedding added in between (diffusers naming)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        groups: int,
        eps: float,
        output_scale_factor: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        out = x + h
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class TemporalConvLayer(nn.Module):
    """Four ``GN -> SiLU -> [Dropout] -> Conv3d(3,1,1)`` stages across frames, residual.

    Names ``conv1.0``/``conv1.2`` and ``convK.0``/``convK.3`` as published; the last conv is
    zero-initialised so a fresh layer is the identity.
    """

    def __init__(self, channels: int, groups: int, dropout: float = 0.1) -> None:
        super().__init__()

        def conv() -> nn.Conv3d:
            return nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))

        self.conv1 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), conv())
        self.conv2 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        self.conv3 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        self.conv4 = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        nn.init.zeros_(self.conv4[-1].weight)
        nn.init.zeros_(self.conv4[-1].bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, ch, height, width = x.shape
        h = x.reshape(bf // num_frames, num_frames, ch, height, width).permute(0, 2, 1, 3, 4)
        identity = h
        h = self.conv4(self.conv3(self.conv2(self.conv1(h))))
        h = identity + h
        return h.permute(0, 2, 1, 3, 4).reshape(bf, ch, height, width)


class Downsample2D(nn.Module):
    def __init__(self, channels: int, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest-neighbour upsampling to ``size`` (default x2), then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


class SpatialTransformerBlock(nn.Module):
    """``attn1`` (+res) -> ``fuser`` -> ``injector`` -> ``attn2`` to text (+res) -> ``ff`` (+res)."""

    def __init__(self, dim: int, spec: BlockSpec, with_injector: bool) -> None:
        super().__init__()
        heads = spec.spatial_heads
        dim_head = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim=spec.cross_attention_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.fuser = (
            GatedSelfAttention(dim, spec.cross_attention_dim, heads, dim_head, spec.fuser_position_freqs,
                               spec.fuser_box_mask)
            if spec.use_fuser else None
        )
        self.injector = InstanceInjector(dim, heads, dim_head, spec.motion_dim) if with_injector else None

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        objs: torch.Tensor | None,
        inst_feat: torch.Tensor | None,
        track: torch.Tensor | None,
        num_frames: int,
        grid: tuple[int, int] | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        if self.fuser is not None and objs is not None:
            x = self.fuser(x, objs, grid, boxes, masks)
        if self.injector is not None and inst_feat is not None and track is not None:
            x = self.injector(x, inst_feat, track, num_frames)
        x = x + self.attn2(self.norm2(x), context)
        x = x + self.ff(self.norm3(x))
        return x


class SpatialTransformer(nn.Module):
    """Per-frame transformer over the ``h*w`` tokens, Linear ``proj_in``/``proj_out``."""

    def __init__(self, channels: int, spec: BlockSpec, with_injector: bool) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(spec.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([SpatialTransformerBlock(channels, spec, with_injector)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        objs: torch.Tensor | None = None,
        inst_feat: torch.Tensor | None = None,
        track: torch.Tensor | None = None,
        num_frames: int = 1,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        bf, ch, height, width = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(bf, height * width, ch)
        h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context, objs, inst_feat, track, num_frames, (height, width), boxes, masks)
        h = self.proj_out(h)
        return h.reshape(bf, height, width, ch).permute(0, 3, 1, 2) + x
