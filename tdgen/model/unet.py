"""TrackDiffusionUNet: the ModelScope-topology 3-D UNet with GLIGEN grounding and the temporal
instance enhancer, parameter names identical to the published TrackDiffusion checkpoints.

Defaults build the documented full-size configuration (``injector_on=dec_fuse``,
``open_time_embedding=learnable_frame``, ``ADD_INS_EMBED=true``, ``cross_attention_dim=768``):
1,763,598,710 parameters. Every switch the published code read from environment variables is a
config field here; nothing reads the environment.

Inputs per call (``forward``):

* ``sample`` ``(B, C_in, F, H, W)`` latents, ``timestep`` scalar or ``(B,)``,
  ``encoder_hidden_states`` ``(B, L, X)`` text tokens;
* ``boxes`` ``(B, F, N, 4)`` xyxy normalised to [0, 1], ``box_masks`` ``(B, F, N)`` (1/True =
  present), ``box_embeddings`` ``(B, F, N, X)`` pooled category text embeddings; all optional.
  Slot ``k`` is one identity over the clip. Inside the model per-slot tensors are frame-major:
  flattened ``(B, F*N, .)`` index ``f*N + k`` and ``(B*F, N, .)`` row ``b*F + f``, as in the
  published code, so published tensors map by a reshape.

Missing box inputs: with no box kwargs at all every slot is absent (``max_slots`` slots, all
masks 0), which is exactly the published unconditional branch; ``box_masks=None`` with boxes
given marks a slot present where its box has positive width and height; ``box_embeddings=None``
uses zero category embeddings for present slots.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from .attention import FRAME_EMBEDDING_KINDS, TemporalTransformer
from .blocks import (
    BlockSpec,
    CrossAttnDownBlock3D,
    CrossAttnUpBlock3D,
    DownBlock3D,
    Grounding,
    UNetMidBlock3DCrossAttn,
    UpBlock3D,
)
from .embeddings import InstanceTokenNet, TimestepEmbedding, timestep_embedding
from .loading import load_weights as _load_weights

__all__ = [
    "TrackDiffusionUNet",
    "TrackDiffusionUNetOutput",
    "ENHANCER_PLACEMENTS",
    "tiny_config",
    "full_config",
    "base_config",
]

ENHANCER_PLACEMENTS = ("decoder", "encoder", "both")
_DOWN_TYPES = ("CrossAttnDownBlock3D", "DownBlock3D")
_UP_TYPES = ("UpBlock3D", "CrossAttnUpBlock3D")

# Switches that remove every TrackDiffusion addition (video-GLIGEN base network).
_BASE_SWITCHES: dict[str, Any] = {
    "use_enhancer": False,
    "frame_embedding": "off",
    "use_instance_embedding": False,
}


def full_config(**overrides: Any) -> dict[str, Any]:
    """The documented full-size configuration (the class defaults), with overrides."""
    cfg = dict(TrackDiffusionUNet._documented_defaults)
    cfg.update(overrides)
    return cfg


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A few-million-parameter configuration with every module of the full one (tests, CPU demo)."""
    cfg = full_config(
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=16,
        transformer_in_heads=4,
        position_net_hidden_dim=64,
        motion_embed_dim=32,
        motion_attention_heads=2,
        motion_attention_head_dim=16,
    )
    cfg.update(overrides)
    return cfg


def base_config(config: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """``config`` (default: full size) without the TrackDiffusion additions: no enhancer (injectors,
    ``null_track_feat``, motion extractor), no frame embeddings, no identity embedding."""
    cfg = dict(config) if config is not None else full_config()
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    cfg.update(_BASE_SWITCHES)
    cfg.update(overrides)
    return cfg


@dataclass
class TrackDiffusionUNetOutput(BaseOutput):
    """``sample``: ``(B, C_out, F, H, W)``."""

    sample: torch.Tensor


class TrackDiffusionUNet(ModelMixin, ConfigMixin):
    r"""Tracklet-conditioned video UNet (TrackDiffusion, text-to-video variant).

    Config fields:
        sample_size: informational default latent size (pipelines should pass sizes).
        in_channels, out_channels: latent channels (4).
        down_block_types, up_block_types: ``None`` derives the ModelScope layout (cross-attention
            in all but the last down block and all but the first up block).
        block_out_channels: widths per resolution, default ``(320, 640, 1280, 1280)``.
        layers_per_block: resnets per down block (up blocks get one more).
        downsample_padding, mid_block_scale_factor: as diffusers UNet3D.
        act_fn: only ``"silu"``.
        norm_num_groups, norm_eps: GroupNorm groups and eps of resnets/temporal convs.
        cross_attention_dim: ``X``, text token width, category-embedding and instance-token width.
        attention_head_dim: head width of the temporal transformers (heads = C / attention_head_dim;
            the name and value 64 follow the published config.json).
        spatial_attention_heads: heads of spatial attention, fusers and injectors (head dim C/8).
        transformer_in_heads: heads of ``transformer_in`` (inner width heads * attention_head_dim).
        temporal_conv_dropout: dropout inside the temporal convs (0.1 as published).
        frame_embedding: ``"learnable"`` (``time_embedder`` ``Embedding(max_frames, C)`` in every
            temporal transformer), ``"fourier"`` or ``"off"``.
        max_frames: largest clip length (rows of the learnable frame embedding), default 16.
        max_slots: largest number of instance slots N (rows of the identity embedding), default 20.
        use_fuser: GLIGEN gated self-attention (``fuser``) in every spatial block, and the
            grounding-token MLP in ``position_net``.
        use_instance_embedding: per-slot identity embedding (needs ``use_fuser``).
        use_enhancer: temporal instance enhancer: ``injector`` in the spatial blocks of the chosen
            blocks, ``null_track_feat`` per block, and the motion extractor in ``position_net``.
        enhancer_placement: ``"decoder"`` (published: cross-attention up blocks), ``"encoder"``
            (cross-attention down blocks) or ``"both"``.
        box_fourier_freqs: frequencies of the Fourier box code (code width ``8 * freqs``).
        position_net_hidden_dim: hidden width of the grounding-token MLP (512).
        motion_embed_dim: width of the motion code (128).
        motion_attention_heads, motion_attention_head_dim: motion extractor attention (4 x 32).
        fuser_position_embedding: not in the published model (default off). Each fuser adds a
            learned projection of its visual tokens' Fourier cell code (``position_proj``) before
            attending with the grounding tokens, so a small UNet trained from scratch can tell
            where a token lies relative to a box.
        fuser_box_mask: not in the published model's documented configuration (default off; the
            published ``box2temp`` experiment masks its tracklet attention alike). Each fuser's
            visual tokens attend to an instance token only where their cell overlaps its box. No
            parameters: it can be switched on for a trained model.

    Initialisation of a fresh model: gates of fusers and injectors are 0, temporal convs end in a
    zero conv, and the identity embedding and learnable frame embeddings are zero (the published
    code draws frame embeddings from N(0, 1), which perturbs pretrained temporal layers; zero keeps
    a fresh model equal to its base network). ``null_track_feat`` keeps ``nn.Embedding``'s N(0, 1).
    """

    _supports_gradient_checkpointing = True
    _documented_defaults: dict[str, Any] = {}

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] | None = None,
        up_block_types: tuple[str, ...] | None = None,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1.0,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        attention_head_dim: int = 64,
        spatial_attention_heads: int = 8,
        transformer_in_heads: int = 8,
        temporal_conv_dropout: float = 0.1,
        frame_embedding: str = "learnable",
        max_frames: int = 16,
        max_slots: int = 20,
        use_fuser: bool = True,
        use_instance_embedding: bool = True,
        use_enhancer: bool = True,
        enhancer_placement: str = "decoder",
        box_fourier_freqs: int = 8,
        position_net_hidden_dim: int = 512,
        motion_embed_dim: int = 128,
        motion_attention_heads: int = 4,
        motion_attention_head_dim: int = 32,
        fuser_position_embedding: bool = False,
        fuser_box_mask: bool = False,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in block_out_channels)
        n_res = len(channels)
        down_types = tuple(down_block_types) if down_block_types is not None else (
            ("CrossAttnDownBlock3D",) * (n_res - 1) + ("DownBlock3D",)
        )
        up_types = tuple(up_block_types) if up_block_types is not None else (
            ("UpBlock3D",) + ("CrossAttnUpBlock3D",) * (n_res - 1)
        )
        self._validate(
            channels, down_types, up_types, act_fn, norm_num_groups, attention_head_dim,
            spatial_attention_heads, frame_embedding, max_frames, max_slots, use_fuser,
            use_instance_embedding, use_enhancer, enhancer_placement,
        )
        self.gradient_checkpointing = False
        enh_down = use_enhancer and enhancer_placement in ("encoder", "both")
        enh_up = use_enhancer and enhancer_placement in ("decoder", "both")

        temb_dim = channels[0] * 4
        spec = BlockSpec(
            temb_channels=temb_dim,
            norm_groups=norm_num_groups,
            norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim,
            spatial_heads=spatial_attention_heads,
            temporal_head_dim=attention_head_dim,
            frame_embedding=frame_embedding,
            max_frames=max_frames,
            temporal_conv_dropout=temporal_conv_dropout,
            use_fuser=use_fuser,
            motion_dim=motion_embed_dim,
            fuser_position_freqs=box_fourier_freqs if fuser_position_embedding else 0,
            fuser_box_mask=bool(fuser_box_mask),
        )

        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], temb_dim)
        self.transformer_in = TemporalTransformer(
            channels[0],
            heads=transformer_in_heads,
            dim_head=attention_head_dim,
            norm_groups=norm_num_groups,
            frame_embedding=frame_embedding,
            max_frames=max_frames,
        )

        if use_fuser or use_enhancer:
            self.position_net = InstanceTokenNet(
                cross_attention_dim,
                max_slots=max_slots,
                fourier_freqs=box_fourier_freqs,
                hidden_dim=position_net_hidden_dim,
                build_tokens=use_fuser,
                use_instance_embedding=use_instance_embedding,
                build_motion=use_enhancer,
                motion_embed_dim=motion_embed_dim,
                motion_heads=motion_attention_heads,
                motion_head_dim=motion_attention_head_dim,
            )
        else:
            self.position_net = None

        self.down_blocks = nn.ModuleList()
        out_ch = channels[0]
        for i, kind in enumerate(down_types):
            in_ch, out_ch = out_ch, channels[i]
            last = i == n_res - 1
            if kind == "CrossAttnDownBlock3D":
                block = CrossAttnDownBlock3D(in_ch, out_ch, layers_per_block, spec, not last,
                                             downsample_padding, with_enhancer=enh_down)
            else:
                block = DownBlock3D(in_ch, out_ch, layers_per_block, spec, not last, downsample_padding)
            self.down_blocks.append(block)

        self.mid_block = UNetMidBlock3DCrossAttn(channels[-1], spec, mid_block_scale_factor)

        self.up_blocks = nn.ModuleList()
        rev = channels[::-1]
        out_ch = rev[0]
        for i, kind in enumerate(up_types):
            prev_ch, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, n_res - 1)]
            last = i == n_res - 1
            if kind == "CrossAttnUpBlock3D":
                block = CrossAttnUpBlock3D(in_ch, prev_ch, out_ch, layers_per_block + 1, spec, not last,
                                           with_enhancer=enh_up)
            else:
                block = UpBlock3D(in_ch, prev_ch, out_ch, layers_per_block + 1, spec, not last)
            self.up_blocks.append(block)

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, channels[0], eps=norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels[0], out_channels, 3, padding=1)

    # ------------------------------------------------------------------ construction helpers

    @staticmethod
    def _validate(channels, down_types, up_types, act_fn, groups, head_dim, spatial_heads,
                  frame_embedding, max_frames, max_slots, use_fuser, use_instance_embedding,
                  use_enhancer, placement) -> None:
        if not channels:
            raise ValueError("block_out_channels must not be empty")
        if len(down_types) != len(channels) or len(up_types) != len(channels):
            raise ValueError(
                f"down_block_types ({len(down_types)}) and up_block_types ({len(up_types)}) must have "
                f"one entry per block_out_channels ({len(channels)})"
            )
        for kind in down_types:
            if kind not in _DOWN_TYPES:
                raise ValueError(f"unknown down block type {kind!r}; expected one of {_DOWN_TYPES}")
        for kind in up_types:
            if kind not in _UP_TYPES:
                raise ValueError(f"unknown up block type {kind!r}; expected one of {_UP_TYPES}")
        if act_fn != "silu":
            raise ValueError(f"act_fn must be 'silu', got {act_fn!r}")
        for c in channels:
            if c % groups:
                raise ValueError(f"block width {c} is not divisible by norm_num_groups={groups}")
            if c % spatial_heads:
                raise ValueError(f"block width {c} is not divisible by spatial_attention_heads={spatial_heads}")
            if c % head_dim or c < head_dim:
                raise ValueError(f"block width {c} is not a positive multiple of attention_head_dim={head_dim}")
        if frame_embedding not in FRAME_EMBEDDING_KINDS:
            raise ValueError(f"frame_embedding must be one of {FRAME_EMBEDDING_KINDS}, got {frame_embedding!r}")
        if max_frames < 1 or max_slots < 1:
            raise ValueError("max_frames and max_slots must be at least 1")
        if use_instance_embedding and not use_fuser:
            raise ValueError("use_instance_embedding=True needs use_fuser=True (the identity embedding is "
                             "added to the fuser's grounding tokens)")
        if placement not in ENHANCER_PLACEMENTS:
            raise ValueError(f"enhancer_placement must be one of {ENHANCER_PLACEMENTS}, got {placement!r}")
        if use_enhancer:
            wanted = []
            if placement in ("encoder", "both"):
                wanted.append(any(k == "CrossAttnDownBlock3D" for k in down_types))
            if placement in ("decoder", "both"):
                wanted.append(any(k == "CrossAttnUpBlock3D" for k in up_types))
            if not all(wanted):
                raise ValueError(f"enhancer_placement={placement!r} needs cross-attention blocks there")

    @classmethod
    def tiny(cls, **overrides: Any) -> "TrackDiffusionUNet":
        """Build :func:`tiny_config` (with overrides)."""
        return cls(**tiny_config(**overrides))

    # ------------------------------------------------------------------ loading

    def load_weights(self, source: Any, *, strict: bool = True):
        """Load a state dict, a weights file or a model directory; return a
        :class:`~tdgen.model.loading.LoadReport`. See :func:`~tdgen.model.loading.load_weights`."""
        return _load_weights(self, source, strict=strict)

    # ------------------------------------------------------------------ forward

    def _grounding(
        self,
        bsz: int,
        frames: int,
        boxes: torch.Tensor | None,
        box_masks: torch.Tensor | None,
        box_embeddings: torch.Tensor | None,
        device: torch.device,
    ) -> Grounding:
        if self.position_net is None:
            return Grounding()
        given = [t for t in (boxes, box_masks, box_embeddings) if t is not None]
        slots = given[0].shape[2] if given and given[0].dim() >= 3 else self.config.max_slots

        def check(name: str, t: torch.Tensor, tail: tuple[int, ...]) -> torch.Tensor:
            if t.dim() != 3 + len(tail) or t.shape[1:3] != (frames, slots) or tuple(t.shape[3:]) != tail \
                    or t.shape[0] not in (1, bsz):
                raise ValueError(
                    f"{name} must have shape ({bsz}, {frames}, {slots}{''.join(', ' + str(s) for s in tail)}) "
                    f"(batch, frames, slots{', ...' if tail else ''}), got {tuple(t.shape)}"
                )
            return t.expand(bsz, *t.shape[1:]).to(device)

        if boxes is not None:
            boxes = check("boxes", boxes, (4,)).float()
        if box_embeddings is not None:
            box_embeddings = check("box_embeddings", box_embeddings, (self.config.cross_attention_dim,))
        if box_masks is not None:
            masks = check("box_masks", box_masks, ())
            masks = masks if masks.dtype == torch.bool else masks.float() > 0.5
        elif boxes is not None:
            masks = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
        else:
            masks = torch.zeros(bsz, frames, slots, dtype=torch.bool, device=device)
        if boxes is None:
            boxes = torch.zeros(bsz, frames, slots, 4, device=device)
        if slots > self.config.max_slots:
            raise ValueError(f"{slots} instance slots given; this model takes at most {self.config.max_slots}")

        objs, track = self.position_net(boxes, masks, box_embeddings)
        return Grounding(
            objs=objs,
            track=track,
            boxes=boxes.reshape(bsz * frames, slots, 4),
            masks=masks.reshape(bsz * frames, slots),
        )

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        boxes: torch.Tensor | None = None,
        box_masks: torch.Tensor | None = None,
        box_embeddings: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> TrackDiffusionUNetOutput | tuple[torch.Tensor]:
        """Predict the noise (or v) for ``sample`` ``(B, C_in, F, H, W)``.

        ``boxes`` ``(B, F, N, 4)`` normalised xyxy, ``box_masks`` ``(B, F, N)``, ``box_embeddings``
        ``(B, F, N, X)``; a leading batch size of 1 broadcasts over B. ``N <= max_slots``.
        Returns ``(B, C_out, F, H, W)``.
        """
        if sample.dim() != 5:
            raise ValueError(f"sample must be (B, C, F, H, W), got shape {tuple(sample.shape)}")
        bsz, _, frames, height, width = sample.shape
        cfg = self.config
        if frames < 1:
            raise ValueError("sample has no frames")
        if frames > cfg.max_frames and cfg.frame_embedding == "learnable":
            raise ValueError(
                f"{frames} frames given; this model takes at most max_frames={cfg.max_frames} "
                "(rows of its learnable frame embedding)"
            )
        if encoder_hidden_states.dim() != 3 or encoder_hidden_states.shape[0] not in (1, bsz):
            raise ValueError(
                f"encoder_hidden_states must be ({bsz}, tokens, {cfg.cross_attention_dim}), "
                f"got {tuple(encoder_hidden_states.shape)}"
            )
        device = sample.device

        t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep, device=device)
        t = t.to(device).reshape(-1)
        if t.numel() not in (1, bsz):
            raise ValueError(f"timestep must be a scalar or have {bsz} entries, got {t.numel()}")
        t = t.expand(bsz)
        emb = self.time_embedding(timestep_embedding(t, cfg.block_out_channels[0]).to(self.dtype))
        emb = emb.repeat_interleave(frames, dim=0)
        context = encoder_hidden_states.expand(bsz, -1, -1).to(self.dtype).repeat_interleave(frames, dim=0)

        grounding = self._grounding(bsz, frames, boxes, box_masks, box_embeddings, device)

        h = sample.permute(0, 2, 1, 3, 4).reshape(bsz * frames, -1, height, width).to(self.dtype)
        h = self.conv_in(h)
        # As published, a single frame skips transformer_in (and, in the blocks, every temporal
        # module but the mid block's first temporal conv).
        if frames > 1:
            h = self.transformer_in(h, frames)

        skips = [h]
        for block in self.down_blocks:
            h, outs = block(h, emb, context, frames, grounding)
            skips.extend(outs)

        h = self.mid_block(h, emb, context, frames, grounding)

        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            block_skips = skips[-n:]
            del skips[-n:]
            size = tuple(skips[-1].shape[-2:]) if skips else None
            h = block(h, block_skips, emb, context, frames, grounding, upsample_size=size)

        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        out = h.reshape(bsz, frames, -1, height, width).permute(0, 2, 1, 3, 4)
        if not return_dict:
            return (out,)
        return TrackDiffusionUNetOutput(sample=out)


def _documented_defaults() -> dict[str, Any]:
    params = inspect.signature(TrackDiffusionUNet.__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


TrackDiffusionUNet._documented_defaults = _documented_defaults()
