"""Behaviour of the tiny configuration on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from tdgen.model import TrackDiffusionUNet, base_config, tiny_config


def _gates(model):
    return {n: p for n, p in model.named_parameters() if n.endswith(("alpha_attn", "alpha_dense"))}


def test_tiny_size_and_modules(tiny_model):
    n = sum(p.numel() for p in tiny_model.parameters())
    assert 1_000_000 < n < 5_000_000
    names = [k for k, _ in tiny_model.named_parameters()]
    assert any(".injector." in k for k in names)
    assert any(".fuser." in k for k in names)
    assert any(k.startswith("up_blocks.1.null_track_feat") for k in names)
    assert "position_net.instance_embedding.weight" in names
    assert any(k.startswith("position_net.tracklet_attn") for k in names)
    assert "transformer_in.time_embedder.weight" in names


def test_forward_backward(tiny_cfg, make_inputs):
    torch.manual_seed(0)
    model = TrackDiffusionUNet(**tiny_cfg).train()
    inputs = make_inputs(tiny_cfg, batch=2, frames=3)
    out = model(**inputs)
    assert out.sample.shape == inputs["sample"].shape
    out.sample.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)
    # Gates are 0 at start but still learn: their gradients are non-zero.
    assert any(p.grad.abs() > 0 for n, p in _gates(model).items() if ".injector." in n)


@pytest.mark.parametrize("frames", [1, 5, 16])
def test_frame_counts(tiny_model, tiny_cfg, make_inputs, frames):
    assert tiny_cfg["max_frames"] == 16
    inputs = make_inputs(tiny_cfg, frames=frames)
    with torch.no_grad():
        out = tiny_model(**inputs).sample
    assert out.shape == inputs["sample"].shape
    assert torch.isfinite(out).all()


def test_too_many_frames_raises(tiny_model, tiny_cfg, make_inputs):
    inputs = make_inputs(tiny_cfg, frames=17)
    with pytest.raises(ValueError, match="max_frames"):
        tiny_model(**inputs)


def test_no_box_inputs(tiny_model, tiny_cfg, make_inputs):
    inputs = make_inputs(tiny_cfg, frames=3)
    for k in ("boxes", "box_masks", "box_embeddings"):
        inputs.pop(k)
    with torch.no_grad():
        plain = tiny_model(**inputs).sample
        # Identical to giving every slot as absent.
        n = tiny_cfg["max_slots"]
        zeros = torch.zeros(1, 3, n)
        absent = tiny_model(**inputs, boxes=torch.rand(1, 3, n, 4), box_masks=zeros,
                            box_embeddings=torch.randn(1, 3, n, tiny_cfg["cross_attention_dim"])).sample
    assert torch.isfinite(plain).all()
    assert torch.equal(plain, absent)


def test_odd_latent_size_and_scalar_timestep(tiny_model, tiny_cfg, make_inputs):
    inputs = make_inputs(tiny_cfg, frames=2, height=9, width=13)
    inputs["timestep"] = 10
    with torch.no_grad():
        out = tiny_model(**inputs, return_dict=False)[0]
    assert out.shape == (1, 4, 2, 9, 13)


def test_fewer_slots_and_batch_broadcast(tiny_model, tiny_cfg, make_inputs):
    inputs = make_inputs(tiny_cfg, batch=2, frames=2, slots=5)
    for k in ("boxes", "box_masks", "box_embeddings"):
        inputs[k] = inputs[k][:1]
    with torch.no_grad():
        out = tiny_model(**inputs).sample
    assert out.shape[0] == 2
    inputs["boxes"] = torch.rand(1, 2, tiny_cfg["max_slots"] + 1, 4)
    inputs.pop("box_masks")
    inputs.pop("box_embeddings")
    with pytest.raises(ValueError, match="slots"):
        tiny_model(**inputs)


def test_zero_gates_equal_network_without_fusers_and_enhancer(tiny_cfg, make_inputs, perturb):
    torch.manual_seed(0)
    full = perturb(TrackDiffusionUNet(**tiny_cfg).eval())  # gates stay 0
    assert all(float(p.detach()) == 0.0 for p in _gates(full).values())
    for frame_kind in ("learnable", "off"):
        base = TrackDiffusionUNet(**base_config(tiny_cfg, use_fuser=False, frame_embedding=frame_kind)).eval()
        assert not any(".fuser." in k or ".injector." in k for k in base.state_dict())
        report = base.load_weights(full.state_dict(), strict=False)
        assert not report.missing
        assert {"fusers", "injectors", "position_net"} <= set(report.unexpected)
        inputs = make_inputs(tiny_cfg, frames=4)
        with torch.no_grad():
            if frame_kind == "off":
                for name, p in full.named_parameters():
                    if name.endswith("time_embedder.weight"):
                        p.zero_()
            a = full(**inputs).sample
            plain = {k: v for k, v in inputs.items() if not k.startswith("box")}
            b = base(**plain).sample
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_absent_slots_do_not_matter(tiny_cfg, make_inputs, perturb):
    torch.manual_seed(0)
    model = perturb(TrackDiffusionUNet(**tiny_cfg).eval(), gate=0.7)
    inputs = make_inputs(tiny_cfg, frames=4)
    masks = inputs["box_masks"]
    with torch.no_grad():
        ref = model(**inputs).sample
        changed = dict(inputs)
        boxes = inputs["boxes"].clone()
        emb = inputs["box_embeddings"].clone()
        boxes[~masks] = torch.rand(int((~masks).sum()), 4) * 3 - 1
        emb[~masks] = torch.randn(int((~masks).sum()), emb.shape[-1]) * 10
        changed.update(boxes=boxes, box_embeddings=emb)
        assert torch.equal(model(**changed).sample, ref)
        # Non-finite garbage too.
        boxes[~masks] = float("nan")
        emb[~masks] = float("inf")
        assert torch.equal(model(**changed).sample, ref)
        # Sanity: the modules are active, so moving a present box does change the output.
        moved = dict(inputs)
        b2 = inputs["boxes"].clone()
        b2[:, :, 0] = torch.tensor([0.5, 0.5, 0.9, 0.9])
        moved["boxes"] = b2
        assert not torch.allclose(model(**moved).sample, ref)


def test_enhancer_changes_output_only_when_gated(tiny_cfg, make_inputs, perturb):
    torch.manual_seed(0)
    model = perturb(TrackDiffusionUNet(**tiny_cfg).eval())
    inputs = make_inputs(tiny_cfg, frames=3)
    with torch.no_grad():
        ref = model(**inputs).sample
        for name, p in _gates(model).items():
            if ".injector." in name:
                p.fill_(0.5)
        assert not torch.allclose(model(**inputs).sample, ref)


def test_gradient_checkpointing_keeps_enhancer(tiny_cfg, make_inputs, perturb):
    torch.manual_seed(0)
    model = perturb(TrackDiffusionUNet(**tiny_cfg).eval(), gate=0.3)
    inputs = make_inputs(tiny_cfg, frames=3)

    def grads():
        model.zero_grad(set_to_none=True)
        out = model(**inputs).sample
        out.square().mean().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    out_ref, g_ref = grads()
    calls = []

    def counting_checkpoint(fn, *args):
        calls.append(fn)
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)

    model.enable_gradient_checkpointing(gradient_checkpointing_func=counting_checkpoint)
    assert all(b.gradient_checkpointing for b in model.up_blocks)
    out_ck, g_ck = grads()
    # One segment per layer: down (1 each), mid (2), up (2 each) for the tiny layout.
    assert len(calls) == 2 * 1 + 2 + 2 * 2
    torch.testing.assert_close(out_ck, out_ref)
    inj = [n for n in g_ref if ".injector." in n]
    assert inj and set(inj) <= set(g_ck)
    assert all(g_ck[n].abs().sum() > 0 for n in inj)
    for n in g_ref:
        torch.testing.assert_close(g_ck[n], g_ref[n], atol=1e-6, rtol=1e-4)
    model.disable_gradient_checkpointing()


def test_gradient_checkpointing_train_mode_fresh_gates(tiny_cfg, make_inputs):
    torch.manual_seed(0)
    model = TrackDiffusionUNet(**tiny_cfg).train()
    model.enable_gradient_checkpointing()
    model(**make_inputs(tiny_cfg, frames=2)).sample.mean().backward()
    gates = _gates(model)
    assert all(gates[n].grad is not None for n in gates if ".injector." in n)
    assert any(gates[n].grad.abs() > 0 for n in gates if ".injector." in n and n.endswith("alpha_attn"))


def test_frozen_model_runs(tiny_model, tiny_cfg, make_inputs):
    # No forward-time assert on requires_grad (the published code had one).
    tiny_model.requires_grad_(False)
    with torch.no_grad():
        tiny_model(**make_inputs(tiny_cfg, frames=2))


def test_save_and_load_round_trip(tmp_path, tiny_cfg, make_inputs, perturb):
    torch.manual_seed(0)
    model = perturb(TrackDiffusionUNet(**tiny_cfg).eval(), gate=0.4)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["_class_name"] == "TrackDiffusionUNet"
    assert cfg["enhancer_placement"] == "decoder" and cfg["frame_embedding"] == "learnable"
    loaded = TrackDiffusionUNet.from_pretrained(tmp_path).eval()
    inputs = make_inputs(tiny_cfg, frames=3)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).sample, model(**inputs).sample)
    # Also through the load report API.
    fresh = TrackDiffusionUNet(**tiny_cfg).eval()
    report = fresh.load_weights(tmp_path)
    assert report.complete
    with torch.no_grad():
        assert torch.equal(fresh(**inputs).sample, model(**inputs).sample)


@pytest.mark.parametrize("placement", ["encoder", "both"])
def test_encoder_placement(placement, tiny_cfg, make_inputs, perturb):
    torch.manual_seed(0)
    model = perturb(TrackDiffusionUNet(**tiny_config(enhancer_placement=placement)).eval(), gate=0.5)
    keys = model.state_dict().keys()
    assert "down_blocks.0.null_track_feat.weight" in keys
    assert any(k.startswith("down_blocks.0.attentions.0.transformer_blocks.0.injector.") for k in keys)
    assert ("up_blocks.1.null_track_feat.weight" in keys) == (placement == "both")
    inputs = make_inputs(tiny_cfg, frames=3)
    out = model(**inputs).sample
    out.square().mean().backward()
    inj = [p for n, p in model.named_parameters() if n.startswith("down_blocks.0.") and ".injector." in n]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in inj)


@pytest.mark.parametrize("kind", ["fourier", "off"])
def test_frame_embedding_kinds(kind, tiny_cfg, make_inputs):
    model = TrackDiffusionUNet(**tiny_config(frame_embedding=kind)).eval()
    assert not any("time_embedder" in k for k in model.state_dict())
    inputs = make_inputs(tiny_cfg, frames=3)
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).sample).all()
    if kind == "off":
        # No learnable table, no frame limit.
        with torch.no_grad():
            model(**make_inputs(tiny_cfg, frames=18, height=4, width=4))


def test_identity_embedding_switch(tiny_cfg):
    model = TrackDiffusionUNet(**tiny_config(use_instance_embedding=False))
    assert "position_net.instance_embedding.weight" not in model.state_dict()
    assert model.position_net.instance_embedding is None


@pytest.mark.parametrize(
    "override,match",
    [
        (dict(frame_embedding="sinusoid"), "frame_embedding"),
        (dict(enhancer_placement="mid"), "enhancer_placement"),
        (dict(use_fuser=False), "use_instance_embedding"),
        (dict(norm_num_groups=7), "norm_num_groups"),
        (dict(attention_head_dim=48), "attention_head_dim"),
        (dict(down_block_types=("DownBlock3D", "DownBlock3D"), enhancer_placement="encoder"), "enhancer_placement"),
    ],
)
def test_config_validation(override, match):
    with pytest.raises(ValueError, match=match):
        TrackDiffusionUNet(**tiny_config(**override))


@pytest.mark.slow
def test_whole_model_traces_without_graph_breaks(tiny_cfg, make_inputs):
    """No data-dependent shapes or host syncs anywhere in the forward (one dynamo graph): with
    dynamo's defaults (no scalar outputs, no dynamic output shapes captured) an ``.item()`` or a
    ``nonzero`` would break the graph. tests/model/test_compile.py shows such a break is seen."""
    assert not torch._dynamo.config.capture_scalar_outputs
    assert not torch._dynamo.config.capture_dynamic_output_shape_ops
    model = TrackDiffusionUNet(**tiny_cfg).eval()
    inputs = make_inputs(tiny_cfg, frames=2, height=4, width=4)
    torch._dynamo.reset()
    with torch.no_grad():
        explained = torch._dynamo.explain(model)(**inputs)
    torch._dynamo.reset()
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_enhancer_without_fusers(tiny_cfg, make_inputs, perturb):
    model = perturb(TrackDiffusionUNet(**tiny_config(use_fuser=False, use_instance_embedding=False)).eval(), gate=0.5)
    keys = model.state_dict().keys()
    assert not any(".fuser." in k or k.startswith("position_net.linears") for k in keys)
    assert "position_net.null_position_feature" in keys and "position_net.tracklet_norm.weight" in keys
    with torch.no_grad():
        out = model(**make_inputs(tiny_cfg, frames=3)).sample
    assert torch.isfinite(out).all()


def test_fuser_position_embedding_option(tiny_cfg, make_inputs, perturb):
    """Off (published): no extra keys. On: position_proj in every fuser, trained, and the fuser's
    attention then depends on where a token is, not only on what it holds."""
    from tdgen.model.attention import cell_position_code
    from tdgen.model.embeddings import fourier_box_embedding

    plain = TrackDiffusionUNet(**tiny_cfg)
    assert not any("position_proj" in k for k in plain.state_dict())
    cfg = dict(tiny_cfg, fuser_position_embedding=True)
    torch.manual_seed(0)
    model = perturb(TrackDiffusionUNet(**cfg), gate=1.0).train()
    keys = [k for k in model.state_dict() if "position_proj" in k]
    assert keys and all(".fuser.position_proj." in k for k in keys)
    assert set(model.state_dict()) - set(keys) == set(plain.state_dict())
    inputs = make_inputs(cfg, height=8, width=6)
    out = model(**inputs).sample
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in model.named_parameters() if "position_proj" in n)
    code = cell_position_code((2, 3), 8)
    assert code.shape == (6, 64)
    assert torch.allclose(code[4], fourier_box_embedding(torch.tensor([1 / 3, 1 / 2, 2 / 3, 1.0]), 8))
    # a fuser with positions tells two tokens with equal features apart; without, it cannot
    from tdgen.model.attention import GatedSelfAttention

    torch.manual_seed(1)
    fuser = GatedSelfAttention(16, 8, 2, 8, position_freqs=8)
    with torch.no_grad():
        fuser.alpha_attn.fill_(1.0)
    x = torch.ones(1, 4, 16)
    y = fuser(x, torch.randn(1, 3, 8), grid=(2, 2))
    assert not torch.allclose(y[0, 0], y[0, 3])
    with pytest.raises(ValueError, match="token grid"):
        fuser(x, torch.randn(1, 3, 8))


def test_cell_box_overlap():
    from tdgen.model.attention import cell_box_overlap

    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5],      # top-left quarter of a 2x4 grid: cells 0, 1
                           [0.6, 0.55, 0.62, 0.6],    # tiny box: only cell (1, 2)
                           [0.0, 0.0, 1.0, 1.0]]])    # masked off
    masks = torch.tensor([[True, True, False]])
    cover = cell_box_overlap((2, 4), boxes, masks)
    assert cover.shape == (1, 8, 3)
    assert cover[0, :, 0].nonzero().flatten().tolist() == [0, 1]   # x2=0.5 touches cell 2's edge: no
    assert cover[0, :, 1].nonzero().flatten().tolist() == [6]
    assert not cover[0, :, 2].any()


def test_fuser_box_mask_option(tiny_cfg, make_inputs, perturb):
    """No new parameters; a token outside every box ignores the instance tokens, one inside does not,
    and the UNet's output then changes only near the box when the box's category changes."""
    from tdgen.model.attention import GatedSelfAttention

    plain = TrackDiffusionUNet(**tiny_cfg)
    cfg = dict(tiny_cfg, fuser_box_mask=True)
    torch.manual_seed(0)
    model = perturb(TrackDiffusionUNet(**cfg), gate=1.0).eval()
    assert set(model.state_dict()) == set(plain.state_dict())

    torch.manual_seed(1)
    fuser = GatedSelfAttention(16, 8, 2, 8, box_mask=True)
    with torch.no_grad():
        fuser.alpha_attn.fill_(1.0)
    x = torch.randn(1, 4, 16)
    boxes = torch.tensor([[[0.0, 0.0, 0.4, 0.4]]])  # cell 0 of a 2x2 grid
    on = torch.tensor([[True]])
    a = fuser(x, torch.randn(1, 1, 8), (2, 2), boxes, on)
    b = fuser(x, torch.randn(1, 1, 8), (2, 2), boxes, on)
    assert not torch.allclose(a[0, 0], b[0, 0])          # inside: sees the instance token
    torch.testing.assert_close(a[0, 1:], b[0, 1:])        # outside: does not
    with pytest.raises(ValueError, match="boxes"):
        fuser(x, torch.randn(1, 1, 8), (2, 2))

    inputs = make_inputs(cfg, frames=2, height=8, width=8)
    n = cfg["max_slots"]
    boxes = torch.zeros(1, 2, n, 4)
    boxes[..., 0, :] = torch.tensor([0.0, 0.0, 0.25, 0.25])
    masks = torch.zeros(1, 2, n)
    masks[..., 0] = 1
    emb = torch.randn(1, 2, n, cfg["cross_attention_dim"])
    inputs.update(boxes=boxes, box_masks=masks, box_embeddings=emb)
    with torch.no_grad():
        first = model(**inputs).sample
        emb2 = emb.clone()
        emb2[..., 0, :] = torch.randn(cfg["cross_attention_dim"])
        second = model(**dict(inputs, box_embeddings=emb2)).sample
    change = (first - second).abs().mean(dim=(0, 1, 2))  # (H, W)
    assert change[:2, :2].mean() > 3 * change[4:, 4:].mean()
