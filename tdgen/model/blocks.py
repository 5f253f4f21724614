"""3-D UNet blocks in the ModelScope topology with GLIGEN spatial transformers.

Every layer of a cross-attention block runs ``resnet -> temporal conv -> [ROI features]
-> spatial transformer (self-attn, fuser, [injector], text cross-attn, FF) -> temporal transformer``;
plain blocks run ``resnet -> temporal conv``. Hidden states are ``(B*F, C, h, w)`` throughout.
The layers themselves (resnets, temporal convs, samplers, spatial transformers) live in
:mod:`tdgen.model.layers`; this module wires them into down, mid and up blocks.

A single-frame clip (``num_frames == 1``) skips every temporal conv and temporal transformer,
except the mid block's first temporal conv, which runs at every clip length. This is what the
published TrackDiffusion UNet computes, so single-frame (stage-1) training of its weights trains
the network they came from. Checkpointing never changes the rule (the published code's
checkpointed path also skips that one conv). The enhancer's attentions across a slot's frames
(injector ``attn1``, the motion extractor) run at every clip length, as published.

Grounding inputs travel as a :class:`Grounding` tuple of tensors (or ``None``):
``objs (B*F, N, X)`` fuser tokens, ``track (B, F, N, M)`` motion codes, ``boxes (B*F, N, 4)``
normalised xyxy and ``masks (B*F, N)`` bool.

With ``gradient_checkpointing`` on, each layer (including its ROI pooling and injector) is one
checkpointed segment, so the enhancer stays active and receives gradients.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import torch
import torch.utils.checkpoint
from torch import nn

from .attention import TemporalTransformer
from .enhancer import instance_features
# The layers live in .layers; they stay importable from here for existing importers.
from .layers import (
    BlockSpec,
    Downsample2D,
    ResnetBlock2D,
    SpatialTransformer,
    SpatialTransformerBlock,
    TemporalConvLayer,
    Upsample2D,
)

__all__ = [
    "Grounding",
    "ResnetBlock2D",
    "TemporalConvLayer",
    "Downsample2D",
    "Upsample2D",
    "SpatialTransformer",
    "SpatialTransformerBlock",
    "CrossAttnDownBlock3D",
    "DownBlock3D",
    "UNetMidBlock3DCrossAttn",
    "UpBlock3D",
    "CrossAttnUpBlock3D",
    "BlockSpec",
]


class Grounding(NamedTuple):
    objs: torch.Tensor | None = None
    track: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    masks: torch.Tensor | None = None


def _temporal(channels: int, spec: BlockSpec) -> TemporalTransformer:
    return TemporalTransformer(
        channels,
        heads=channels // spec.temporal_head_dim,
        dim_head=spec.temporal_head_dim,
        norm_groups=spec.norm_groups,
        frame_embedding=spec.frame_embedding,
        max_frames=spec.max_frames,
    )


def _default_checkpoint(fn: Callable, *args):
    return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)


class _Block(nn.Module):
    """Shared plumbing: checkpointing and the per-layer forward."""

    has_cross_attention = False

    def __init__(self) -> None:
        super().__init__()
        self.gradient_checkpointing = False

    def _run(self, fn: Callable, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            ckpt = getattr(self, "_gradient_checkpointing_func", None) or _default_checkpoint
            return ckpt(fn, *args)
        return fn(*args)

    def _layer(
        self,
        index: int,
        num_frames: int,
        hidden: torch.Tensor,
        temb: torch.Tensor,
        context: torch.Tensor | None = None,
        objs: torch.Tensor | None = None,
        track: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.resnets[index](hidden, temb)
        if num_frames > 1:
            hidden = self.temp_convs[index](hidden, num_frames)
        if not self.has_cross_attention:
            return hidden
        inst_feat = None
        null = getattr(self, "null_track_feat", None)
        if null is not None and track is not None and boxes is not None and masks is not None:
            inst_feat = instance_features(hidden, boxes, masks, null.weight[0])
        hidden = self.attentions[index](hidden, context, objs, inst_feat, track, num_frames, boxes, masks)
        if num_frames > 1:
            hidden = self.temp_attentions[index](hidden, num_frames)
        return hidden

    def _call_layer(self, index, num_frames, hidden, temb, context=None, grounding=None):
        g = grounding if grounding is not None else Grounding()
        fn = functools.partial(self._layer, index, num_frames)
        if self.has_cross_attention:
            return self._run(fn, hidden, temb, context, g.objs, g.track, g.boxes, g.masks)
        return self._run(fn, hidden, temb)


class CrossAttnDownBlock3D(_Block):
    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        spec: BlockSpec,
        add_downsample: bool,
        downsample_padding: int = 1,
        with_enhancer: bool = False,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, spec.temb_channels,
                          spec.norm_groups, spec.norm_eps)
            for i in range(num_layers)
        )
        self.temp_convs = nn.ModuleList(
            TemporalConvLayer(out_channels, spec.norm_groups, spec.temporal_conv_dropout) for _ in range(num_layers)
        )
        self.attentions = nn.ModuleList(
            SpatialTransformer(out_channels, spec, with_enhancer) for _ in range(num_layers)
        )
        self.temp_attentions = nn.ModuleList(_temporal(out_channels, spec) for _ in range(num_layers))
        self.downsamplers = (
            nn.ModuleList([Downsample2D(out_channels, downsample_padding)]) if add_downsample else None
        )
        if with_enhancer:
            self.null_track_feat = nn.Embedding(1, out_channels)

    def forward(self, hidden, temb, context, num_frames, grounding=None):
        outputs = []
        for i in range(len(self.resnets)):
            hidden = self._call_layer(i, num_frames, hidden, temb, context, grounding)
            outputs.append(hidden)
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden)
            outputs.append(hidden)
        return hidden, outputs


class DownBlock3D(_Block):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        spec: BlockSpec,
        add_downsample: bool,
        downsample_padding: int = 1,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, spec.temb_channels,
                          spec.norm_groups, spec.norm_eps)
            for i in range(num_layers)
        )
        self.temp_convs = nn.ModuleList(
            TemporalConvLayer(out_channels, spec.norm_groups, spec.temporal_conv_dropout) for _ in range(num_layers)
        )
        self.downsamplers = (
            nn.ModuleList([Downsample2D(out_channels, downsample_padding)]) if add_downsample else None
        )

    def forward(self, hidden, temb, context, num_frames, grounding=None):
        outputs = []
        for i in range(len(self.resnets)):
            hidden = self._call_layer(i, num_frames, hidden, temb)
            outputs.append(hidden)
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden)
            outputs.append(hidden)
        return hidden, outputs


class UNetMidBlock3DCrossAttn(_Block):
    """``resnet, temp_conv`` then ``[attn, temp_attn, resnet, temp_conv]`` per layer.

    For one frame only the first ``temp_conv`` of these temporal modules runs.
    """

    has_cross_attention = True

    def __init__(self, channels: int, spec: BlockSpec, output_scale_factor: float = 1.0, num_layers: int = 1) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(channels, channels, spec.temb_channels, spec.norm_groups, spec.norm_eps, output_scale_factor)
            for _ in range(num_layers + 1)
        )
        self.temp_convs = nn.ModuleList(
            TemporalConvLayer(channels, spec.norm_groups, spec.temporal_conv_dropout) for _ in range(num_layers + 1)
        )
        self.attentions = nn.ModuleList(SpatialTransformer(channels, spec, False) for _ in range(num_layers))
        self.temp_attentions = nn.ModuleList(_temporal(channels, spec) for _ in range(num_layers))

    def _first(self, num_frames, hidden, temb):
        # The first temporal conv runs even for a single frame (only its centre tap then sees data).
        return self.temp_convs[0](self.resnets[0](hidden, temb), num_frames)

    def _mid_layer(self, index, num_frames, hidden, temb, context, objs, track, boxes=None, masks=None):
        hidden = self.attentions[index](hidden, context, objs, None, track, num_frames, boxes, masks)
        if num_frames > 1:
            hidden = self.temp_attentions[index](hidden, num_frames)
        hidden = self.resnets[index + 1](hidden, temb)
        if num_frames > 1:
            hidden = self.temp_convs[index + 1](hidden, num_frames)
        return hidden

    def forward(self, hidden, temb, context, num_frames, grounding=None):
        g = grounding if grounding is not None else Grounding()
        hidden = self._run(functools.partial(self._first, num_frames), hidden, temb)
        for i in range(len(self.attentions)):
            fn = functools.partial(self._mid_layer, i, num_frames)
            hidden = self._run(fn, hidden, temb, context, g.objs, g.track, g.boxes, g.masks)
        return hidden


class _UpMixin:
    def _up_forward(self, hidden, skips, temb, context, num_frames, grounding, upsample_size):
        for i in range(len(self.resnets)):
            hidden = torch.cat([hidden, skips.pop()], dim=1)
            hidden = self._call_layer(i, num_frames, hidden, temb, context, grounding)
        if self.upsamplers is not None:
            hidden = self.upsamplers[0](hidden, upsample_size)
        return hidden


class UpBlock3D(_UpMixin, _Block):
    def __init__(
        self,
        in_channels: int,
        prev_output_channel: int,
        out_channels: int,
        num_layers: int,
        spec: BlockSpec,
        add_upsample: bool,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                (prev_output_channel if i == 0 else out_channels)
                + (in_channels if i == num_layers - 1 else out_channels),
                out_channels,
                spec.temb_channels,
                spec.norm_groups,
                spec.norm_eps,
            )
            for i in range(num_layers)
        )
        self.temp_convs = nn.ModuleList(
            TemporalConvLayer(out_channels, spec.norm_groups, spec.temporal_conv_dropout) for _ in range(num_layers)
        )
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, hidden, skips, temb, context, num_frames, grounding=None, upsample_size=None):
        return self._up_forward(hidden, skips, temb, None, num_frames, None, upsample_size)


class CrossAttnUpBlock3D(_UpMixin, _Block):
    has_cross_attention = True

    def __init__(
        self,
        in_channels: int,
        prev_output_channel: int,
        out_channels: int,
        num_layers: int,
        spec: BlockSpec,
        add_upsample: bool,
        with_enhancer: bool = False,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(
                (prev_output_channel if i == 0 else out_channels)
                + (in_channels if i == num_layers - 1 else out_channels),
                out_channels,
                spec.temb_channels,
                spec.norm_groups,
                spec.norm_eps,
            )
            for i in range(num_layers)
        )
        self.temp_convs = nn.ModuleList(
            TemporalConvLayer(out_channels, spec.norm_groups, spec.temporal_conv_dropout) for _ in range(num_layers)
        )
        self.attentions = nn.ModuleList(
            SpatialTransformer(out_channels, spec, with_enhancer) for _ in range(num_layers)
        )
        self.temp_attentions = nn.ModuleList(_temporal(out_channels, spec) for _ in range(num_layers))
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None
        if with_enhancer:
            self.null_track_feat = nn.Embedding(1, out_channels)

    def forward(self, hidden, skips, temb, context, num_frames, grounding=None, upsample_size=None):
        return self._up_forward(hidden, skips, temb, context, num_frames, grounding, upsample_size)
