"""Pieces of the training objective: foreground weights, condition dropout, stage groups, LR, EMA."""

from __future__ import annotations

import math

import pytest
import torch

from tdgen.model import TrackDiffusionUNet, key_group, tiny_config
from tdgen.errors import UsageError
from tdgen.train.loop import (
    EMA,
    STAGE_GROUPS,
    apply_condition_dropout,
    draw_condition_dropout,
    foreground_weights,
    lr_at,
    noise_scheduler_from,
    set_trainable,
    trainable_parameter_names,
)


# ----------------------------------------------------------------------------- foreground weights


def test_foreground_weights_follow_the_published_loop():
    boxes = torch.zeros(2, 2, 3, 4)
    masks = torch.zeros(2, 2, 3)
    boxes[0, 0, 0] = torch.tensor([0.25, 0.5, 0.75, 1.0])
    masks[0, 0, 0] = 1
    boxes[0, 1, 1] = torch.tensor([0.0, 0.0, 0.3, 0.3])  # int(0.3 * 8) = 2 rows/cols
    masks[0, 1, 1] = 1
    boxes[1, 0, 2] = torch.tensor([0.5, 0.5, 0.9, 0.9])  # absent: must not count
    w = foreground_weights(boxes, masks, (8, 8), fg_weight=2.0, normalize=False)
    assert w.shape == (2, 1, 2, 8, 8)
    # the published loop, written out
    want = torch.ones(2, 1, 2, 8, 8)
    for b in range(2):
        for f in range(2):
            for k in range(3):
                if masks[b, f, k] > 0:
                    x1, y1, x2, y2 = boxes[b, f, k].tolist()
                    want[b, :, f, int(y1 * 8):int(y2 * 8), int(x1 * 8):int(x2 * 8)] = 2.0
    assert torch.equal(w, want)
    assert w[0, 0, 0, 4:8, 2:6].eq(2).all() and w[0, 0, 0, :4].eq(1).all()
    assert w[0, 0, 1, :2, :2].eq(2).all() and w[0, 0, 1, 2:].eq(1).all()
    assert w[1].eq(1).all()


def test_foreground_weights_normalised_and_higher_inside():
    boxes = torch.tensor([[[[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]]])
    masks = torch.ones(1, 1, 2)
    w = foreground_weights(boxes, masks, (4, 6), fg_weight=3.0)
    assert math.isclose(float(w.mean()), 1.0, rel_tol=1e-6)
    inside, outside = w[0, 0, 0, 0, 0], w[0, 0, 0, 3, 5]
    assert math.isclose(float(inside / outside), 3.0, rel_tol=1e-6)  # overlaps do not add up
    assert torch.equal(w[0, 0, 0, 1, 1], inside)
    plain = foreground_weights(boxes, torch.zeros(1, 1, 2), (4, 6))
    assert plain.eq(1).all()


# ----------------------------------------------------------------------------- condition dropout


def test_dropout_draws_are_seeded_and_independent():
    a = draw_condition_dropout(4000, 0.1, 0.1, torch.Generator().manual_seed(7))
    b = draw_condition_dropout(4000, 0.1, 0.1, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    text, boxes = a
    assert 0.08 < text.float().mean() < 0.12 and 0.08 < boxes.float().mean() < 0.12
    both = (text & boxes).float().mean()
    assert 0.004 < both < 0.02  # about 0.1 * 0.1: independent draws
    never = draw_condition_dropout(50, 0.0, 0.0, torch.Generator().manual_seed(0))
    always = draw_condition_dropout(50, 1.0, 1.0, torch.Generator().manual_seed(0))
    assert not never[0].any() and not never[1].any() and always[0].all() and always[1].all()


def test_box_dropout_zeroes_every_mask_of_the_clip_and_text_dropout_uses_the_empty_prompt():
    g = torch.Generator().manual_seed(0)
    drop_text, drop_boxes = draw_condition_dropout(64, 0.3, 0.3, g)
    assert drop_text.any() and drop_boxes.any() and not drop_boxes.all()
    masks = (torch.rand(64, 4, 5, generator=g) > 0.3).float()
    masks[:, :, 0] = 1
    prompts = [f"clip {i}" for i in range(64)]
    new_prompts, new_masks = apply_condition_dropout(prompts, masks, drop_text, drop_boxes)
    for i in range(64):
        assert new_prompts[i] == ("" if drop_text[i] else prompts[i])
        if drop_boxes[i]:
            assert new_masks[i].eq(0).all()
        else:
            assert torch.equal(new_masks[i], masks[i])
    assert masks[:, :, 0].eq(1).all()  # the input is not modified


# ----------------------------------------------------------------------------- stages


@pytest.fixture(scope="module")
def tiny_unet():
    return TrackDiffusionUNet(**tiny_config())


def test_stage_1_trains_exactly_the_layout_groups(tiny_unet):
    names = trainable_parameter_names(tiny_unet, "1")
    everything = [n for n, _ in tiny_unet.named_parameters()]
    want = [n for n in everything if ".fuser." in n
            or (n.startswith("position_net.") and not n.startswith("position_net.tracklet_"))]
    assert names == want
    assert {key_group(n) for n in names} == {"fusers", "position_net", "instance_embedding"}
    fusers = {n.split(".fuser.")[0] for n in names if ".fuser." in n}
    spatial = {n.split(".attn1.")[0] for n in everything if ".attentions." in n and ".attn1." in n
               and ".fuser." not in n and ".injector." not in n}
    assert fusers == spatial and len(fusers) == 4  # every spatial transformer block of the tiny UNet
    assert "position_net.linears.0.weight" in names and "position_net.null_positive_feature" in names
    assert "position_net.instance_embedding.weight" in names
    assert not any("tracklet" in n or "injector" in n or "temp_" in n for n in names)


def test_stage_2_trains_exactly_the_video_groups(tiny_unet):
    names = trainable_parameter_names(tiny_unet, "2")
    everything = [n for n, _ in tiny_unet.named_parameters()]
    video = ("transformer_in.", ".temp_convs.", ".temp_attentions.", "position_net.tracklet_",
             "position_net.instance_embedding.", ".injector.", ".null_track_feat.")
    want = [n for n in everything if any(n.startswith(p) or p in n for p in video)]
    assert names == want
    groups = {key_group(n) for n in names}
    assert groups == {"base", "frame_embeddings", "motion_extractor", "instance_embedding", "injectors",
                      "null_track_feat"}
    base = [n for n in names if key_group(n) == "base"]
    assert all(n.startswith("transformer_in.") or ".temp_convs." in n or ".temp_attentions." in n for n in base)
    assert any(".time_embedder." in n for n in names)
    assert not any(".fuser." in n or n.startswith("position_net.linears") or n.startswith("conv_") for n in names)
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in names if "null_track_feat" in n} == {"up_blocks.1"}


def test_stage_all_and_freezing(tiny_unet):
    model = TrackDiffusionUNet(**tiny_config())
    assert trainable_parameter_names(model, "all") == [n for n, _ in model.named_parameters()]
    got = set_trainable(model, "1")
    assert got == [n for n, p in model.named_parameters() if p.requires_grad]
    assert not model.conv_in.weight.requires_grad
    with pytest.raises(UsageError):
        trainable_parameter_names(model, "3")
    assert set(STAGE_GROUPS) == {"1", "2", "all"}


def test_stage_without_parameters_is_a_usage_error():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UsageError, match="--stage 1"):
        set_trainable(model, "1")


# ----------------------------------------------------------------------------- schedules and EMA


def test_lr_warmup_then_cosine_or_constant():
    assert lr_at(0, 1.0, 4, 20) == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 20) == pytest.approx(1.0)
    assert lr_at(4, 1.0, 4, 20) == pytest.approx(1.0)
    assert lr_at(12, 1.0, 4, 20) == pytest.approx(0.5)
    assert lr_at(20, 1.0, 4, 20) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(15, 1.0, 4, 20, "constant") == 1.0
    assert lr_at(0, 2.0, 0, 10) == pytest.approx(2.0)


def test_ema_update_and_applied_to_restores():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model.named_parameters(), decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model.named_parameters())  # warm-up decay min(0.5, 1/10) = 0.1
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 0.9))
    ema.update(model.named_parameters())  # min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 0.9 * d + (1 - d)))
    with ema.applied_to(model):
        assert torch.allclose(model.weight, ema.shadow["weight"])
    assert model.weight.eq(1.0).all()
    other = EMA(model.named_parameters(), decay=0.5)
    other.load_state_dict(ema.state_dict(), ema.updates)
    assert torch.equal(other.shadow["weight"], ema.shadow["weight"]) and other.updates == 2


def test_noise_scheduler_takes_the_model_schedule():
    s = noise_scheduler_from({"num_train_timesteps": 500, "beta_schedule": "linear", "beta_start": 0.001,
                              "beta_end": 0.02, "prediction_type": "v_prediction", "solver_order": 2})
    assert s.config.num_train_timesteps == 500 and s.config.prediction_type == "v_prediction"
    d = noise_scheduler_from(None)
    assert d.config.beta_schedule == "scaled_linear" and d.config.num_train_timesteps == 1000
    assert noise_scheduler_from({"prediction_type": "sample"}).config.prediction_type == "sample"
    with pytest.raises(UsageError, match="flow_prediction"):
        noise_scheduler_from({"prediction_type": "flow_prediction"})


# ----------------------------------------------------------------------------- per-sample draws


def test_sample_draws_depend_on_the_position_alone():
    from tdgen.train.objective import draw_sample_noise

    noise, t, drop_t, drop_b = draw_sample_noise(5, [10, 11, 12, 13], (2, 3, 4, 4), 1000, 0.5, 0.5)
    assert noise.shape == (4, 2, 3, 4, 4) and noise.dtype == torch.float32
    assert t.dtype == torch.long and bool(((t >= 0) & (t < 1000)).all())
    # the same position gives the same draws in another batch (another batch size, process or step)
    again = draw_sample_noise(5, [12, 3], (2, 3, 4, 4), 1000, 0.5, 0.5)
    assert torch.equal(again[0][0], noise[2]) and int(again[1][0]) == int(t[2])
    assert bool(again[2][0]) == bool(drop_t[2]) and bool(again[3][0]) == bool(drop_b[2])
    assert not torch.equal(again[0][1], noise[0])
    assert not torch.equal(draw_sample_noise(6, [10], (2, 3, 4, 4), 1000, 0.5, 0.5)[0][0], noise[0])  # seeded
    never = draw_sample_noise(5, list(range(20)), (1,), 10, 0.0, 0.0)
    assert not never[2].any() and not never[3].any()


def test_targets_follow_the_prediction_type():
    from tdgen.train.objective import prediction_target, weighted_mse

    sched = noise_scheduler_from(None)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 1, 2, 2, generator=g), torch.randn(2, 4, 1, 2, 2, generator=g)
    t = torch.tensor([10, 900])
    assert prediction_target(sched, "epsilon", x0, eps, t) is eps
    assert prediction_target(sched, "sample", x0, eps, t) is x0
    a = sched.alphas_cumprod[t].view(2, 1, 1, 1, 1)
    v = prediction_target(sched, "v_prediction", x0, eps, t)
    assert torch.allclose(v, a.sqrt() * eps - (1 - a).sqrt() * x0, atol=1e-6)
    w = torch.ones(2, 1, 1, 2, 2)
    w[0] = 3.0
    assert weighted_mse(x0, x0, w) == 0
    assert torch.isclose(weighted_mse(x0 + 1, x0, w), torch.tensor(2.0))  # mean of 3s and 1s


def test_stage_1_predicts_each_frame_as_a_one_frame_clip():
    from tdgen.train.objective import predict

    calls, inputs = [], []

    def unet(x, t, text, *, boxes, box_masks, box_embeddings, return_dict):
        calls.append((x.shape, t.tolist(), text.shape, boxes.shape, box_masks.shape, box_embeddings.shape))
        inputs.append((x, boxes))
        return (x * 2 + t.view(-1, 1, 1, 1, 1),)

    B, C, F, h, w, N = 2, 3, 4, 2, 2, 5
    noisy = torch.randn(B, C, F, h, w)
    t = torch.tensor([7, 9])
    text = torch.randn(B, 6, 8)
    boxes, masks, cats = torch.rand(B, F, N, 4), torch.ones(B, F, N), torch.randn(B, F, N, 8)
    whole = predict(unet, noisy, t, text, boxes, masks, cats)
    apart = predict(unet, noisy, t, text, boxes, masks, cats, frames_apart=True)
    assert calls[0][0] == (B, C, F, h, w)
    assert calls[1] == ((B * F, C, 1, h, w), [7] * F + [9] * F, (B * F, 6, 8), (B * F, 1, N, 4), (B * F, 1, N),
                        (B * F, 1, N, 8))
    x, b = inputs[1]
    for i in range(B):
        for f in range(F):  # one-frame clip i * F + f is frame f of clip i, with its boxes
            assert torch.equal(x[i * F + f, :, 0], noisy[i, :, f]) and torch.equal(b[i * F + f, 0], boxes[i, f])
    # this fake UNet acts per element, so both layouts give the same result, each frame in place
    assert apart.shape == noisy.shape and torch.equal(apart, whole)
