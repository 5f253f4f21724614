"""Full-size fidelity on the meta device: parameter counts and the published key layout.

The expected keys are generated here from the description of the published checkpoint
(research/official.md §3.1, §3.2), independently of the model code.
"""

from __future__ import annotations

import pytest
import torch

from tdgen.model import TrackDiffusionUNet, base_config, full_config

X = 768  # cross_attention_dim
TEMB = 1280
FRAMES = 16
SLOTS = 20
MOTION = 128
POS = 64  # Fourier box code width


def _ln(keys, prefix, dim):
    keys[f"{prefix}.weight"] = (dim,)
    keys[f"{prefix}.bias"] = (dim,)


def _linear(keys, prefix, out_dim, in_dim, bias=True):
    keys[f"{prefix}.weight"] = (out_dim, in_dim)
    if bias:
        keys[f"{prefix}.bias"] = (out_dim,)


def _attn(keys, prefix, query_dim, inner, context_dim):
    _linear(keys, f"{prefix}.to_q", inner, query_dim, bias=False)
    _linear(keys, f"{prefix}.to_k", inner, context_dim, bias=False)
    _linear(keys, f"{prefix}.to_v", inner, context_dim, bias=False)
    _linear(keys, f"{prefix}.to_out.0", query_dim, inner)


def _ff(keys, prefix, dim):
    _linear(keys, f"{prefix}.net.0.proj", 8 * dim, dim)
    _linear(keys, f"{prefix}.net.2", dim, 4 * dim)


def _resnet(keys, prefix, cin, cout):
    _ln(keys, f"{prefix}.norm1", cin)
    keys[f"{prefix}.conv1.weight"] = (cout, cin, 3, 3)
    keys[f"{prefix}.conv1.bias"] = (cout,)
    _linear(keys, f"{prefix}.time_emb_proj", cout, TEMB)
    _ln(keys, f"{prefix}.norm2", cout)
    keys[f"{prefix}.conv2.weight"] = (cout, cout, 3, 3)
    keys[f"{prefix}.conv2.bias"] = (cout,)
    if cin != cout:
        keys[f"{prefix}.conv_shortcut.weight"] = (cout, cin, 1, 1)
        keys[f"{prefix}.conv_shortcut.bias"] = (cout,)


def _temp_conv(keys, prefix, c):
    _ln(keys, f"{prefix}.conv1.0", c)
    keys[f"{prefix}.conv1.2.weight"] = (c, c, 3, 1, 1)
    keys[f"{prefix}.conv1.2.bias"] = (c,)
    for k in (2, 3, 4):
        _ln(keys, f"{prefix}.conv{k}.0", c)
        keys[f"{prefix}.conv{k}.3.weight"] = (c, c, 3, 1, 1)
        keys[f"{prefix}.conv{k}.3.bias"] = (c,)


def _spatial(keys, prefix, c, injector, full):
    _ln(keys, f"{prefix}.norm", c)
    _linear(keys, f"{prefix}.proj_in", c, c)
    _linear(keys, f"{prefix}.proj_out", c, c)
    tb = f"{prefix}.transformer_blocks.0"
    for n in (1, 2, 3):
        _ln(keys, f"{tb}.norm{n}", c)
    _attn(keys, f"{tb}.attn1", c, c, c)
    _attn(keys, f"{tb}.attn2", c, c, X)
    _ff(keys, f"{tb}.ff", c)
    fu = f"{tb}.fuser"
    _linear(keys, f"{fu}.linear", c, X)
    _attn(keys, f"{fu}.attn", c, c, c)
    _ff(keys, f"{fu}.ff", c)
    _ln(keys, f"{fu}.norm1", c)
    _ln(keys, f"{fu}.norm2", c)
    keys[f"{fu}.alpha_attn"] = ()
    keys[f"{fu}.alpha_dense"] = ()
    if injector and full:
        inj = f"{tb}.injector"
        _attn(keys, f"{inj}.attn1", c, c, c)
        _attn(keys, f"{inj}.attn2", c, c, c)
        _ff(keys, f"{inj}.ff", c)
        for n in (1, 2, 3):
            _ln(keys, f"{inj}.norm{n}", c)
        keys[f"{inj}.alpha_attn"] = ()
        keys[f"{inj}.alpha_dense"] = ()
        _linear(keys, f"{inj}.linears.0", c, c + MOTION)
        _linear(keys, f"{inj}.linears.2", c, c)
        _linear(keys, f"{inj}.linears.4", c, c)


def _temporal(keys, prefix, c, inner, full):
    _ln(keys, f"{prefix}.norm", c)
    _linear(keys, f"{prefix}.proj_in", inner, c)
    _linear(keys, f"{prefix}.proj_out", c, inner)
    tb = f"{prefix}.transformer_blocks.0"
    for n in (1, 2, 3):
        _ln(keys, f"{tb}.norm{n}", inner)
    _attn(keys, f"{tb}.attn1", inner, inner, inner)
    _attn(keys, f"{tb}.attn2", inner, inner, inner)
    _ff(keys, f"{tb}.ff", inner)
    if full:
        keys[f"{prefix}.time_embedder.weight"] = (FRAMES, c)


def expected_state_dict_shapes(full: bool = True) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the published documented configuration (``full``) or its video-GLIGEN base."""
    widths = (320, 640, 1280, 1280)
    keys: dict[str, tuple[int, ...]] = {}
    keys["conv_in.weight"] = (320, 4, 3, 3)
    keys["conv_in.bias"] = (320,)
    _linear(keys, "time_embedding.linear_1", 1280, 320)
    _linear(keys, "time_embedding.linear_2", 1280, 1280)
    _temporal(keys, "transformer_in", 320, 512, full)

    # GLIGEN position net (+ TrackDiffusion identity embedding and motion extractor).
    _linear(keys, "position_net.linears.0", 512, X + POS)
    _linear(keys, "position_net.linears.2", 512, 512)
    _linear(keys, "position_net.linears.4", X, 512)
    keys["position_net.null_positive_feature"] = (X,)
    keys["position_net.null_position_feature"] = (POS,)
    if full:
        keys["position_net.instance_embedding.weight"] = (SLOTS, X)
        _attn(keys, "position_net.tracklet_attn", POS, 128, POS)
        _ln(keys, "position_net.tracklet_norm", POS)
        _linear(keys, "position_net.tracklet_linears.0", MOTION, POS)
        _linear(keys, "position_net.tracklet_linears.2", MOTION, MOTION)

    for i, c in enumerate(widths):
        prefix = f"down_blocks.{i}"
        cin = widths[i - 1] if i > 0 else widths[0]
        for j in range(2):
            _resnet(keys, f"{prefix}.resnets.{j}", cin if j == 0 else c, c)
            _temp_conv(keys, f"{prefix}.temp_convs.{j}", c)
            if i < 3:  # CrossAttnDownBlock3D
                _spatial(keys, f"{prefix}.attentions.{j}", c, injector=False, full=full)
                _temporal(keys, f"{prefix}.temp_attentions.{j}", c, c, full)
        if i < 3:
            keys[f"{prefix}.downsamplers.0.conv.weight"] = (c, c, 3, 3)
            keys[f"{prefix}.downsamplers.0.conv.bias"] = (c,)

    for j in range(2):
        _resnet(keys, f"mid_block.resnets.{j}", 1280, 1280)
        _temp_conv(keys, f"mid_block.temp_convs.{j}", 1280)
    _spatial(keys, "mid_block.attentions.0", 1280, injector=False, full=full)
    _temporal(keys, "mid_block.temp_attentions.0", 1280, 1280, full)

    rev = widths[::-1]
    for i, c in enumerate(rev):
        prefix = f"up_blocks.{i}"
        prev = rev[i - 1] if i > 0 else rev[0]
        skip_in = rev[min(i + 1, 3)]
        for j in range(3):
            cin = (prev if j == 0 else c) + (skip_in if j == 2 else c)
            _resnet(keys, f"{prefix}.resnets.{j}", cin, c)
            _temp_conv(keys, f"{prefix}.temp_convs.{j}", c)
            if i > 0:  # CrossAttnUpBlock3D with the instance enhancer
                _spatial(keys, f"{prefix}.attentions.{j}", c, injector=True, full=full)
                _temporal(keys, f"{prefix}.temp_attentions.{j}", c, c, full)
        if i < 3:
            keys[f"{prefix}.upsamplers.0.conv.weight"] = (c, c, 3, 3)
            keys[f"{prefix}.upsamplers.0.conv.bias"] = (c,)
        if i > 0 and full:
            keys[f"{prefix}.null_track_feat.weight"] = (1, c)

    _ln(keys, "conv_norm_out", 320)
    keys["conv_out.weight"] = (4, 320, 3, 3)
    keys["conv_out.bias"] = (4,)
    return keys


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


@pytest.fixture(scope="module")
def meta_full():
    with torch.device("meta"):
        return TrackDiffusionUNet()


@pytest.fixture(scope="module")
def meta_base():
    with torch.device("meta"):
        return TrackDiffusionUNet(**base_config())


def test_generator_matches_documented_counts():
    # The key generator itself reproduces the analytic counts of official.md §3.2.
    assert sum(_numel(s) for s in expected_state_dict_shapes(True).values()) == 1_763_598_710
    assert sum(_numel(s) for s in expected_state_dict_shapes(False).values()) == 1_613_946_340


def test_full_parameter_count(meta_full):
    assert sum(p.numel() for p in meta_full.parameters()) == 1_763_598_710
    assert all(p.is_meta for p in meta_full.parameters())


def test_base_parameter_count(meta_base):
    assert sum(p.numel() for p in meta_base.parameters()) == 1_613_946_340


@pytest.mark.parametrize("full", [True, False])
def test_state_dict_keys_and_shapes(full, meta_full, meta_base):
    model = meta_full if full else meta_base
    expected = expected_state_dict_shapes(full)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(got) - set(expected)) == []
    assert sorted(set(expected) - set(got)) == []
    wrong = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert wrong == {}


def test_documented_groups_counts(meta_full):
    """The per-part sizes of official.md §3.2 (TrackDiffusion additions)."""
    sd = meta_full.state_dict()

    def total(pred):
        return sum(v.numel() for k, v in sd.items() if pred(k))

    assert round(total(lambda k: ".injector." in k) / 1e6, 1) == 149.4
    assert total(lambda k: "time_embedder" in k) == 16 * (320 + 2 * (320 + 640 + 1280) + 1280 + 3 * (1280 + 640 + 320))
    assert total(lambda k: "instance_embedding" in k) == 20 * 768
    assert total(lambda k: "null_track_feat" in k) == 1280 + 640 + 320
    assert round(total(lambda k: "tracklet" in k) / 1e3) == 58
    assert round(total(lambda k: ".fuser." in k) / 1e6, 1) == 208.0


def test_defaults_are_the_documented_configuration():
    cfg = full_config()
    assert cfg["block_out_channels"] == (320, 640, 1280, 1280)
    assert cfg["cross_attention_dim"] == 768
    assert cfg["max_slots"] == 20 and cfg["max_frames"] == 16
    assert cfg["frame_embedding"] == "learnable"
    assert cfg["use_enhancer"] and cfg["enhancer_placement"] == "decoder"
    assert cfg["use_instance_embedding"] and cfg["use_fuser"]
