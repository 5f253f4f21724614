"""Embeddings: diffusion timestep and the instance-token net (Fourier codes: :mod:`.fourier`).

The instance-token net is registered in the UNet as ``position_net`` (the published name) and
produces, once per UNet forward:

* ``objs``: the per-frame GLIGEN grounding tokens, ``(B*F, N, X)``:
  ``MLP([category embedding (X), Fourier(box) (64)])`` with learned null features replacing both
  inputs of absent slots, plus the learned per-slot identity embedding (row ``k`` for slot ``k``
  in every frame, added to every slot, present or not, as the published model does);
* ``track``: the motion code, ``(B, F, N, motion_embed_dim)``: pre-LayerNorm self-attention over
  the frames of each slot's Fourier box sequence (residual), then a two-layer SiLU MLP.

Per-slot tensors are frame-major: a ``(B, F, N, .)`` tensor flattened to ``(B, F*N, .)`` puts
slot ``k`` of frame ``f`` at index ``f*N + k``, and ``(B*F, N, .)`` puts it at row ``b*F + f``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import Attention
from .fourier import fourier_box_embedding, fourier_frame_embedding  # re-exported for existing importers

__all__ = [
    "TimestepEmbedding",
    "fourier_box_embedding",
    "fourier_frame_embedding",
    "InstanceTokenNet",
    "timestep_embedding",
]


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep code ``(T,) -> (T, dim)`` laid out as ``[cos, sin]``.

    This is the diffusers ``Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)``
    convention that the published UNet uses, computed in float32.
    """
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    exponent = exponent * (-math.log(max_period) / half)
    angles = timesteps.float()[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2 == 1:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """``linear_1 -> SiLU -> linear_2`` (names as diffusers' ``TimestepEmbedding``)."""

    def __init__(self, in_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, t_emb: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(t_emb)))


class InstanceTokenNet(nn.Module):
    """Instance tokens (GLIGEN ``PositionNet`` with TrackDiffusion additions).

    Args:
        embed_dim: ``X``, the width of the category embeddings and of the output tokens
            (the UNet's ``cross_attention_dim``).
        max_slots: number of rows of the identity embedding (the largest ``N`` accepted).
        fourier_freqs: frequencies of the box code; the code has ``fourier_freqs * 8`` values.
        hidden_dim: width of the token MLP (512 in the published model).
        build_tokens: build the GLIGEN token MLP and ``null_positive_feature`` (needed by fusers).
        use_instance_embedding: build the per-slot identity embedding (needs ``build_tokens``).
        build_motion: build the motion extractor (``tracklet_*``; needed by the enhancer).
        motion_embed_dim, motion_heads, motion_head_dim: motion extractor sizes (128, 4, 32).
    """

    def __init__(
        self,
        embed_dim: int,
        max_slots: int = 20,
        fourier_freqs: int = 8,
        hidden_dim: int = 512,
        build_tokens: bool = True,
        use_instance_embedding: bool = True,
        build_motion: bool = True,
        motion_embed_dim: int = 128,
        motion_heads: int = 4,
        motion_head_dim: int = 32,
    ) -> None:
        super().__init__()
        if use_instance_embedding and not build_tokens:
            raise ValueError("the instance (identity) embedding needs the grounding tokens")
        self.embed_dim = embed_dim
        self.max_slots = max_slots
        self.fourier_freqs = fourier_freqs
        self.position_dim = fourier_freqs * 2 * 4
        self.build_tokens = build_tokens
        self.build_motion = build_motion

        if build_tokens:
            self.linears = nn.Sequential(
                nn.Linear(embed_dim + self.position_dim, hidden_dim),
                nn.SiLU(),
                nn.Linear(hidden_dim, hidden_dim),
                nn.SiLU(),
                nn.Linear(hidden_dim, embed_dim),
            )
            self.null_positive_feature = nn.Parameter(torch.zeros(embed_dim))
        self.null_position_feature = nn.Parameter(torch.zeros(self.position_dim))
        if use_instance_embedding:
            self.instance_embedding = nn.Embedding(max_slots, embed_dim)
            nn.init.zeros_(self.instance_embedding.weight)
        else:
            self.instance_embedding = None
        if build_motion:
            self.tracklet_norm = nn.LayerNorm(self.position_dim)
            self.tracklet_attn = Attention(self.position_dim, motion_heads, motion_head_dim)
            self.tracklet_linears = nn.Sequential(
                nn.Linear(self.position_dim, motion_embed_dim),
                nn.SiLU(),
                nn.Linear(motion_embed_dim, motion_embed_dim),
            )

    def forward(
        self,
        boxes: torch.Tensor,
        masks: torch.Tensor,
        embeddings: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Build the tokens.

        Args:
            boxes: ``(B, F, N, 4)`` xyxy in [0, 1]; values of absent slots are ignored.
            masks: ``(B, F, N)`` bool, True where the slot is present.
            embeddings: ``(B, F, N, X)`` category embeddings, or None (zeros).

        Returns:
            ``(objs, track)``: ``objs`` ``(B*F, N, X)`` or None without ``build_tokens``;
            ``track`` ``(B, F, N, motion_embed_dim)`` or None without ``build_motion``.
        """
        bsz, frames, slots, _ = boxes.shape
        if slots > self.max_slots:
            raise ValueError(f"{slots} instance slots given; this model takes at most {self.max_slots}")
        dtype = self.null_position_feature.dtype
        present = masks[..., None]
        # Absent slots never reach the arithmetic: their inputs are replaced with constants first,
        # so whatever they hold (even NaN) cannot leak into the output or into gradients.
        safe_boxes = torch.where(present, boxes, 0.0)
        loc = fourier_box_embedding(safe_boxes, self.fourier_freqs).to(dtype)
        loc = torch.where(present, loc, self.null_position_feature)

        objs = None
        if self.build_tokens:
            if embeddings is None:
                pos = torch.zeros(bsz, frames, slots, self.embed_dim, dtype=dtype, device=boxes.device)
            else:
                pos = embeddings.to(dtype)
            pos = torch.where(present, pos, self.null_positive_feature)
            objs = self.linears(torch.cat([pos, loc], dim=-1))
            if self.instance_embedding is not None:
                objs = objs + self.instance_embedding.weight[:slots]
            objs = objs.reshape(bsz * frames, slots, self.embed_dim)

        track = None
        if self.build_motion:
            seq = loc.permute(0, 2, 1, 3).reshape(bsz * slots, frames, self.position_dim)
            seq = seq + self.tracklet_attn(self.tracklet_norm(seq))
            seq = self.tracklet_linears(seq)
            track = seq.reshape(bsz, slots, frames, -1).permute(0, 2, 1, 3)
        return objs, track
