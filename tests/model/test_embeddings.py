"""Fourier box code, instance tokens and motion extractor."""

from __future__ import annotations

import math

import torch

from tdgen.model import InstanceTokenNet, fourier_box_embedding, fourier_frame_embedding
from tdgen.model.embeddings import timestep_embedding


def test_fourier_box_layout():
    box = torch.tensor([0.1, 0.2, 0.7, 0.9])
    code = fourier_box_embedding(box)
    assert code.shape == (64,)
    for k in range(8):
        freq = 100 ** (k / 8)
        for c in range(4):
            assert math.isclose(code[k * 8 + c].item(), math.sin(freq * box[c].item()), abs_tol=2e-5)
            assert math.isclose(code[k * 8 + 4 + c].item(), math.cos(freq * box[c].item()), abs_tol=2e-5)


def test_fourier_frame_code():
    code = fourier_frame_embedding(4, 7)
    assert code.shape == (4, 7)
    assert torch.all(code[:, -1] == 0)  # odd width: zero column
    assert math.isclose(code[2, 0].item(), math.sin(0.5), abs_tol=1e-6)
    assert math.isclose(code[2, 1].item(), math.cos(0.5), abs_tol=1e-6)


def test_timestep_code_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([3.0]), 8)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[0, :4], torch.cos(3.0 * freqs))
    torch.testing.assert_close(emb[0, 4:], torch.sin(3.0 * freqs))


def _net(**kw):
    torch.manual_seed(0)
    net = InstanceTokenNet(16, max_slots=5, hidden_dim=32, motion_embed_dim=24, motion_heads=2, motion_head_dim=8, **kw)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


def test_tokens_frame_major_and_identity_rows():
    net = _net()
    g = torch.Generator().manual_seed(1)
    boxes = torch.rand(2, 3, 5, 4, generator=g)
    masks = torch.rand(2, 3, 5, generator=g) > 0.3
    emb = torch.randn(2, 3, 5, 16, generator=g)
    objs, track = net(boxes, masks, emb)
    assert objs.shape == (6, 5, 16) and track.shape == (2, 3, 5, 24)
    b, f, k = 1, 2, 3
    m = masks[b, f, k]
    loc = fourier_box_embedding(boxes[b, f, k]) if m else net.null_position_feature
    pos = emb[b, f, k] if m else net.null_positive_feature
    token = net.linears(torch.cat([pos, loc])) + net.instance_embedding.weight[k]
    torch.testing.assert_close(objs[b * 3 + f, k], token)


def test_masked_slots_use_null_features():
    net = _net(use_instance_embedding=False)
    boxes = torch.rand(1, 2, 5, 4)
    emb = torch.randn(1, 2, 5, 16)
    masks = torch.zeros(1, 2, 5, dtype=torch.bool)
    objs, track = net(boxes, masks, emb)
    null_token = net.linears(torch.cat([net.null_positive_feature, net.null_position_feature]))
    torch.testing.assert_close(objs, null_token.expand_as(objs))
    # All slots absent in all frames: every motion code is the same.
    torch.testing.assert_close(track, track[:1, :1, :1].expand_as(track))


def test_motion_code_per_slot_over_time():
    net = _net()
    g = torch.Generator().manual_seed(2)
    boxes = torch.rand(1, 4, 5, 4, generator=g)
    masks = torch.ones(1, 4, 5, dtype=torch.bool)
    _, track = net(boxes, masks, None)
    # Changing slot 2 in frame 0 changes slot 2's code in every frame and no other slot's.
    moved = boxes.clone()
    moved[0, 0, 2] = torch.tensor([0.0, 0.0, 0.1, 0.1])
    _, track2 = net(moved, masks, None)
    diff = (track2 - track).abs().amax(dim=-1)[0]  # (F, N)
    assert torch.all(diff[:, 2] > 0)
    assert torch.all(diff[:, [0, 1, 3, 4]] == 0)
