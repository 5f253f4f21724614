"""Attention building blocks with the published (diffusers) parameter names.

* :class:`Attention`: ``to_q``/``to_k``/``to_v`` (no bias) and ``to_out.0`` (bias), PyTorch SDPA.
* :class:`FeedForward`: GEGLU feed-forward, ``net.0.proj`` (``dim -> 8*dim``) and ``net.2``.
* :class:`GatedSelfAttention`: the GLIGEN ``fuser`` (gated self-attention over visual + instance
  tokens, keeping the visual outputs).
* :class:`TemporalTransformer`: the temporal transformer (``transformer_in`` and every
  ``temp_attentions.j``), with its optional frame-position embedding ``time_embedder``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fourier import fourier_box_embedding, fourier_frame_embedding

__all__ = [
    "Attention",
    "FeedForward",
    "GEGLU",
    "GatedSelfAttention",
    "TemporalTransformer",
    "cell_box_overlap",
    "TemporalTransformerBlock",
    "FRAME_EMBEDDING_KINDS",
]

FRAME_EMBEDDING_KINDS = ("learnable", "fourier", "off")


class Attention(nn.Module):
    """Multi-head attention; ``context`` defaults to the queries (self-attention)."""

    def __init__(
        self,
        query_dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(dropout)])

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``mask``: optional boolean ``(B, 1 or heads, q_len, kv_len)``, True where a query may attend."""
        ctx = x if context is None else context
        bsz, q_len, _ = x.shape
        kv_len = ctx.shape[1]
        q = self.to_q(x).view(bsz, q_len, self.heads, self.dim_head).transpose(1, 2)
        k = self.to_k(ctx).view(bsz, kv_len, self.heads, self.dim_head).transpose(1, 2)
        v = self.to_v(ctx).view(bsz, kv_len, self.heads, self.dim_head).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(bsz, q_len, self.heads * self.dim_head)
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    """``proj`` to twice the width, then ``value * gelu(gate)``."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with inner width ``mult * dim`` (``net.0.proj``, ``net.2``)."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(dropout), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


def cell_box_overlap(grid: tuple[int, int], boxes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(BF, h*w, N)`` bool: True where cell ``(i, j)`` of an ``h x w`` grid (row-major) overlaps
    box ``n`` (normalised xyxy ``(BF, N, 4)``) and the slot is on (``masks`` ``(BF, N)``).

    Overlap is strict (touching edges do not count), so every box of positive size covers at least
    one cell, however small it is on the grid.
    """
    h, w = int(grid[0]), int(grid[1])
    xs = torch.arange(w, dtype=boxes.dtype, device=boxes.device)
    ys = torch.arange(h, dtype=boxes.dtype, device=boxes.device)
    x1, y1, x2, y2 = (boxes[..., k].unsqueeze(1) for k in range(4))  # (BF, 1, N)
    in_x = (x1 * w < (xs + 1)[None, :, None]) & (x2 * w > xs[None, :, None])  # (BF, w, N)
    in_y = (y1 * h < (ys + 1)[None, :, None]) & (y2 * h > ys[None, :, None])  # (BF, h, N)
    cover = in_y[:, :, None, :] & in_x[:, None, :, :]  # (BF, h, w, N)
    return cover.reshape(boxes.shape[0], h * w, -1) & masks[:, None, :].bool()


def cell_position_code(grid: tuple[int, int], num_freqs: int, device: torch.device | None = None) -> torch.Tensor:
    """``(h*w, 8*num_freqs)``: the Fourier box code of every cell of an ``h x w`` grid, row-major,
    in normalised ``(x1, y1, x2, y2)`` like the boxes of the grounding tokens."""
    h, w = int(grid[0]), int(grid[1])
    ys = torch.arange(h, dtype=torch.float32, device=device)
    xs = torch.arange(w, dtype=torch.float32, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    cells = torch.stack([xx / w, yy / h, (xx + 1) / w, (yy + 1) / h], dim=-1).reshape(h * w, 4)
    return fourier_box_embedding(cells, num_freqs)


class GatedSelfAttention(nn.Module):
    """GLIGEN gated self-attention (the ``fuser``).

    ``x = x + tanh(alpha_attn) * Attn(LN1([x; linear(objs)]))[:, :n_visual]`` then
    ``x = x + tanh(alpha_dense) * FF(LN2(x))``. Both gates start at 0 (identity).

    With ``position_freqs`` (not in the published model), every visual token entering the
    attention also gets ``position_proj(Fourier(its cell's box))``, the same code as the boxes of
    the grounding tokens: a UNet trained from scratch has no other sense of where a token is.

    With ``box_mask`` (not in the published model's documented configuration; the published
    ``box2temp`` experiment masks its tracklet attention the same way), a visual token may attend
    to an instance token only where its cell overlaps that instance's box; visual tokens still
    attend to each other. No parameters are added, so the switch can be turned on for a trained
    model. It needs the boxes and masks (:func:`cell_box_overlap`).
    """

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int,
                 position_freqs: int = 0, box_mask: bool = False) -> None:
        super().__init__()
        self.position_freqs = int(position_freqs)
        self.box_mask = bool(box_mask)
        if self.position_freqs:
            self.position_proj = nn.Linear(8 * self.position_freqs, query_dim)
        self.linear = nn.Linear(context_dim, query_dim)
        self.attn = Attention(query_dim, heads, dim_head)
        self.ff = FeedForward(query_dim)
        self.norm1 = nn.LayerNorm(query_dim)
        self.norm2 = nn.LayerNorm(query_dim)
        self.alpha_attn = nn.Parameter(torch.zeros(()))
        self.alpha_dense = nn.Parameter(torch.zeros(()))

    def forward(
        self,
        x: torch.Tensor,
        objs: torch.Tensor,
        grid: tuple[int, int] | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        n_visual = x.shape[1]
        visual = x
        if (self.position_freqs or self.box_mask) and (grid is None or grid[0] * grid[1] != n_visual):
            raise ValueError(f"the fuser's position code and box mask need the token grid (h, w) of its "
                             f"{n_visual} tokens")
        if self.position_freqs:
            visual = x + self.position_proj(cell_position_code(grid, self.position_freqs, x.device).to(x.dtype))
        attn_mask = None
        if self.box_mask:
            if boxes is None or masks is None:
                raise ValueError("a fuser with box_mask needs the boxes and box masks")
            allowed = cell_box_overlap(grid, boxes.float(), masks)  # (BF, n_visual, N)
            n_tokens = n_visual + objs.shape[1]
            attn_mask = torch.ones(x.shape[0], 1, n_tokens, n_tokens, dtype=torch.bool, device=x.device)
            attn_mask[:, 0, :n_visual, n_visual:] = allowed
        tokens = torch.cat([visual, self.linear(objs)], dim=1)
        x = x + self.alpha_attn.tanh() * self.attn(self.norm1(tokens), mask=attn_mask)[:, :n_visual]
        x = x + self.alpha_dense.tanh() * self.ff(self.norm2(x))
        return x


class TemporalTransformerBlock(nn.Module):
    """Two self-attentions over the frames and a GEGLU feed-forward, pre-LayerNorm."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim_head)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x))
        x = x + self.ff(self.norm3(x))
        return x


class TemporalTransformer(nn.Module):
    """Attention across frames at every pixel (diffusers ``TransformerTemporalModel`` layout).

    ``GroupNorm`` over ``(B, C, F, H, W)`` -> tokens ``(B*H*W, F, C)`` -> ``+ frame embedding``
    -> ``proj_in`` -> block -> ``proj_out`` -> residual.

    Frame embedding kinds: ``"learnable"`` (``time_embedder = Embedding(max_frames, C)``, sliced to
    the clip's F frames; zero-initialised here so a fresh one leaves pretrained temporal layers
    unchanged), ``"fourier"`` (fixed sin/cos code of ``f / F``, no parameters) or ``"off"``.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        norm_groups: int,
        frame_embedding: str = "off",
        max_frames: int = 16,
    ) -> None:
        super().__init__()
        if frame_embedding not in FRAME_EMBEDDING_KINDS:
            raise ValueError(f"frame_embedding must be one of {FRAME_EMBEDDING_KINDS}, got {frame_embedding!r}")
        inner = heads * dim_head
        self.channels = channels
        self.frame_embedding = frame_embedding
        self.max_frames = max_frames
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(inner, heads, dim_head)])
        self.proj_out = nn.Linear(inner, channels)
        if frame_embedding == "learnable":
            self.time_embedder = nn.Embedding(max_frames, channels)
            nn.init.zeros_(self.time_embedder.weight)

    def _frame_code(self, num_frames: int, ref: torch.Tensor) -> torch.Tensor | None:
        if self.frame_embedding == "learnable":
            if num_frames > self.max_frames:
                raise ValueError(
                    f"{num_frames} frames given; the learnable frame embedding has {self.max_frames}"
                )
            return self.time_embedder.weight[:num_frames]
        if self.frame_embedding == "fourier":
            return fourier_frame_embedding(num_frames, self.channels, ref.device).to(ref.dtype)
        return None

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, ch, height, width = x.shape
        bsz = bf // num_frames
        h = x.reshape(bsz, num_frames, ch, height, width).permute(0, 2, 1, 3, 4)
        h = self.norm(h)
        h = h.permute(0, 3, 4, 2, 1).reshape(bsz * height * width, num_frames, ch)
        code = self._frame_code(num_frames, h)
        if code is not None:
            h = h + code
        h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h)
        h = self.proj_out(h)
        h = h.reshape(bsz, height, width, num_frames, ch).permute(0, 3, 4, 1, 2)
        return h.reshape(bf, ch, height, width) + x
