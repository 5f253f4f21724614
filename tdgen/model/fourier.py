"""Fixed sin/cos codes: the GLIGEN Fourier box code and the frame-position code.

No parameters and no imports from the rest of the model, so attention layers and embeddings can
both use them. Codes are always computed in float32; callers cast.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fourier_box_embedding", "fourier_frame_embedding"]


def _fourier(values: torch.Tensor, num_freqs: int, temperature: float) -> torch.Tensor:
    """``(..., D) -> (..., num_freqs, 2, D)`` with ``[freq][sin, cos][d]`` order, float32."""
    freqs = temperature ** (
        torch.arange(num_freqs, dtype=torch.float32, device=values.device) / num_freqs
    )
    angles = values.float()[..., None, :] * freqs[:, None]  # (..., nf, D)
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-2)


def fourier_box_embedding(
    boxes: torch.Tensor, num_freqs: int = 8, temperature: float = 100.0
) -> torch.Tensor:
    """GLIGEN Fourier box code: ``(..., 4) -> (..., num_freqs * 2 * 4)``.

    Frequencies ``temperature ** (k / num_freqs)`` (no 2*pi); element ``freq*8 + s*4 + c`` holds
    ``sin`` (s=0) or ``cos`` (s=1) of coordinate ``c`` in ``(x1, y1, x2, y2)``.
    """
    code = _fourier(boxes, num_freqs, temperature)
    return code.flatten(-3)


def fourier_frame_embedding(
    num_frames: int, dim: int, device: torch.device | None = None, temperature: float = 100.0
) -> torch.Tensor:
    """Frame-position code ``(num_frames, dim)`` of ``f / num_frames`` (the "fourier" kind).

    ``dim // 2`` frequencies laid out as ``[freq][sin, cos]``; an odd ``dim`` gets a zero column.
    """
    pos = torch.arange(num_frames, dtype=torch.float32, device=device)[:, None] / num_frames
    code = _fourier(pos, dim // 2, temperature).flatten(-3)
    if code.shape[-1] < dim:
        code = nn.functional.pad(code, (0, dim - code.shape[-1]))
    return code
