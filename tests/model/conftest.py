"""Shared fixtures for the model tests (tiny configurations, CPU, fp32)."""

from __future__ import annotations

import pytest
import torch

from tdgen.model import TrackDiffusionUNet, tiny_config


def make_inputs(
    cfg: dict,
    batch: int = 1,
    frames: int = 4,
    height: int = 8,
    width: int = 8,
    slots: int | None = None,
    seed: int = 0,
):
    """Random latents, text tokens and a padded set of tracks (some slots absent)."""
    g = torch.Generator().manual_seed(seed)
    n = slots if slots is not None else cfg["max_slots"]
    x_dim = cfg["cross_attention_dim"]
    sample = torch.randn(batch, cfg["in_channels"], frames, height, width, generator=g)
    text = torch.randn(batch, 7, x_dim, generator=g)
    xy = torch.rand(batch, frames, n, 2, generator=g) * 0.6
    wh = 0.1 + torch.rand(batch, frames, n, 2, generator=g) * 0.3
    boxes = torch.cat([xy, xy + wh], dim=-1)
    masks = torch.rand(batch, frames, n, generator=g) > 0.4
    masks[:, :, 0] = True  # at least one present track
    masks[:, :, -1] = False  # and one absent slot
    emb = torch.randn(batch, frames, n, x_dim, generator=g)
    return dict(
        sample=sample,
        timestep=torch.full((batch,), 500),
        encoder_hidden_states=text,
        boxes=boxes,
        box_masks=masks,
        box_embeddings=emb,
    )


def perturb_(model: torch.nn.Module, seed: int = 0, gate: float | None = None) -> torch.nn.Module:
    """Give every parameter non-trivial values (zero-initialised ones included).

    Gates (``alpha_attn``/``alpha_dense``) are set to ``gate`` when given, else left at 0.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha_attn") or name.endswith("alpha_dense"):
                if gate is not None:
                    p.fill_(gate)
                continue
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture
def tiny_cfg() -> dict:
    return tiny_config()


@pytest.fixture
def tiny_model(tiny_cfg) -> TrackDiffusionUNet:
    torch.manual_seed(0)
    return TrackDiffusionUNet(**tiny_cfg).eval()


@pytest.fixture(name="make_inputs")
def make_inputs_fixture():
    return make_inputs


@pytest.fixture(name="perturb")
def perturb_fixture():
    return perturb_
