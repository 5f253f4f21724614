"""The training loop end to end on a tiny model: logging, export, exact resume, stages, caching."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tdgen.conditioning import clip_batch
from tdgen.modeldir import load_pipeline
from tdgen.tracks.clips import ClipSpec, plan_clips
from tdgen.errors import UsageError
from tdgen.tracks.io import read_tracks
from tdgen.train.loop import TrainConfig, is_trainable, latest_checkpoint, train

from helpers import tree_modes


def _config(rects, model_dir, out: Path, **kw) -> TrainConfig:
    args = dict(ann=rects["ann"], captions=rects["captions"], model=str(model_dir), out=out, steps=3,
                batch_size=1, frames=4, ema_decay=0.9)
    args.update(kw)
    return TrainConfig(**args)


def _unet_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "unet" / "diffusion_pytorch_model.safetensors"))


def test_a_few_steps_log_and_export_a_model_that_samples(rects, tiny_model_dir, tmp_path):
    events = []
    result = train(_config(rects, tiny_model_dir, tmp_path / "run", batch_size=2, command="tdgen train test"),
                   progress=events.append)
    assert result.steps == 3 and result.start_step == 0 and len(result.losses) == 3
    assert all(math.isfinite(loss) and loss > 0 for _, loss in result.losses)
    lines = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    for x, (_, loss) in zip(lines, result.losses):
        assert set(x) >= {"step", "loss", "lr", "seconds", "samples_per_s", "elapsed", "epoch"}
        assert x["loss"] == loss and x["seconds"] > 0 and x["samples_per_s"] > 0
    assert lines[0]["lr"] == pytest.approx(1e-4)  # steps // 20 = 0 warm-up steps
    kinds = [e["event"] for e in events]
    assert kinds.count("step") == 3 and kinds[-1] == "export"

    model_dir = result.model_dir
    assert model_dir == tmp_path / "run" / "model"
    info = json.loads((model_dir / "tdgen.json").read_text())
    tr = info["training"]
    assert tr["steps"] == 3 and tr["stage"] == "all" and tr["command"] == "tdgen train test"
    assert tr["final_loss"] == pytest.approx(np.mean([x for _, x in result.losses]))
    assert tr["data"]["clips"] == 2 and tr["data"]["videos"] == 2 and tr["data"]["frames"] == 4
    assert tr["seconds"] >= 0 and tr["started_from"]["model"] == str(tiny_model_dir)
    assert info["resolution"] == [32, 32] and info["frames"] == 4 and info["slots"] == 4
    assert info["weights"] == {"kind": "trained", "ema": True}

    pipe = load_pipeline(model_dir)

    clips = plan_clips(read_tracks(rects["ann"]), ClipSpec(frames=4, max_slots=4))[:1]
    frames = pipe(**clip_batch(clips).as_kwargs(), prompts=["two rectangles"], seeds=[0], num_inference_steps=2)
    assert frames.shape == (1, 4, 32, 32, 3) and frames.dtype == np.uint8
    # training moved the weights away from the start
    before, after = _unet_weights(tiny_model_dir), _unet_weights(model_dir)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_resume_repeats_the_uninterrupted_loss_curve(rects, tiny_model_dir, tmp_path, umask_022):
    kw = dict(steps=6, ema_decay=0.9, box_dropout=0.3, text_dropout=0.3)
    full = train(_config(rects, tiny_model_dir, tmp_path / "full", checkpoint_every=3, **kw))
    assert [c.name for c in full.checkpoints] == ["step-000003", "step-000006"]
    ckpt = full.checkpoints[0]
    assert {"ema.safetensors", "trainer_state.json", "optimizer.bin"} <= {p.name for p in ckpt.iterdir()}
    # safetensors writes 0600: checkpoints and the exported model are made readable like any file
    for tree in (ckpt, full.model_dir):
        assert tree_modes(tree) == {"dirs": {"0o755"}, "files": {"0o644"}}, tree
    assert any(p.name.startswith("random_states") for p in ckpt.iterdir())

    first = train(_config(rects, tiny_model_dir, tmp_path / "split", stop_after=3, **kw))
    assert first.steps == 3 and first.model_dir is None
    assert latest_checkpoint(tmp_path / "split").name == "step-000003"
    second = train(_config(rects, tiny_model_dir, tmp_path / "split", resume=True, **kw))
    assert second.resumed_from == tmp_path / "split" / "checkpoints" / "step-000003"
    assert second.start_step == 3 and second.steps == 6
    assert first.losses + second.losses == full.losses  # bit for bit
    log = [json.loads(x) for x in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert [(x["step"], x["loss"]) for x in log] == full.losses
    a, b = _unet_weights(full.model_dir), _unet_weights(second.model_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((second.model_dir / "tdgen.json").read_text())["training"]
    assert info["steps"] == 6 and info["samples"] == 6

    # a changed setting refuses to resume, naming it
    with pytest.raises(UsageError, match="lr"):
        train(_config(rects, tiny_model_dir, tmp_path / "split", resume=True, lr=3e-4, **kw))


@pytest.mark.parametrize("stage", ["1", "2"])
def test_a_stage_changes_only_its_parameters(rects, tiny_model_dir, tmp_path, stage):
    result = train(_config(rects, tiny_model_dir, tmp_path / f"s{stage}", stage=stage, steps=2, grad_accum=2,
                           gradient_checkpointing=True, hflip=True, log_every=2, ema_decay=0.0))
    assert len(result.losses) == 2
    lines = (tmp_path / f"s{stage}" / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["steps_averaged"] == 2
    before, after = _unet_weights(tiny_model_dir), _unet_weights(result.model_dir)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "nothing trained"
    assert all(is_trainable(k, stage) for k in changed)
    if stage == "1":
        assert any(".fuser." in k for k in changed) and any(k.startswith("position_net.linears") for k in changed)
    else:
        assert any(".temp_attentions." in k for k in changed) and any(".injector." in k for k in changed)


def test_cached_latents_train_exactly_like_encoding_on_the_fly(rects, tiny_model_dir, tmp_path):
    plain = train(_config(rects, tiny_model_dir, tmp_path / "plain", steps=2, hflip=True))
    cached = train(_config(rects, tiny_model_dir, tmp_path / "cached", steps=2, hflip=True, cache_latents=True))
    assert cached.losses == plain.losses
    files = list((tmp_path / "cached" / "latent_cache").rglob("*.npy"))
    assert len(files) == 4  # 2 clips x (plain, mirrored)


def test_init_tiny_with_the_space_to_depth_autoencoder(rects, tmp_path):
    from tdgen.model.autoencoder import SpaceToDepthAutoencoder

    cfg = TrainConfig(ann=rects["ann"], out=tmp_path / "s2d", init="tiny", autoencoder="space-to-depth",
                      resolution=(32, 32), frames=4, slots=4, steps=2, ema_decay=0.0)
    result = train(cfg)
    assert all(math.isfinite(x) for _, x in result.losses)
    assert (tmp_path / "s2d" / "base-model" / "tdgen.json").is_file()
    md = result.model_dir
    assert json.loads((md / "vae" / "config.json").read_text())["_class_name"] == "SpaceToDepthAutoencoder"
    assert json.loads((md / "model_index.json").read_text())["vae"] == ["tdgen", "SpaceToDepthAutoencoder"]
    unet_cfg = json.loads((md / "unet" / "config.json").read_text())
    assert unet_cfg["in_channels"] == 192 and unet_cfg["out_channels"] == 192
    # 192 latent channels through a narrower first level: the model predicts the clean latents
    assert unet_cfg["block_out_channels"][0] < 192
    assert json.loads((md / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "sample"
    assert json.loads((md / "tdgen.json").read_text())["training"]["started_from"]["init"] == "tiny"
    pipe = load_pipeline(md)
    assert isinstance(pipe.vae, SpaceToDepthAutoencoder) and pipe.vae_scale_factor == 8

    clips = plan_clips(read_tracks(rects["ann"]), ClipSpec(frames=4, max_slots=4))[:1]
    assert pipe(**clip_batch(clips).as_kwargs(), prompts=["x"], seeds=[0], num_inference_steps=2).shape == \
        (1, 4, 32, 32, 3)


def test_usage_errors(rects, tiny_model_dir, tmp_path):
    with pytest.raises(UsageError, match="--model DIR"):
        TrainConfig(ann=rects["ann"], out=tmp_path / "x").check()
    with pytest.raises(UsageError, match="needs --init"):
        _config(rects, tiny_model_dir, tmp_path / "x", autoencoder="space-to-depth").check()
    with pytest.raises(UsageError, match="--stage"):
        _config(rects, tiny_model_dir, tmp_path / "x", stage="3").check()
    with pytest.raises(UsageError, match="--ema-decay"):
        _config(rects, tiny_model_dir, tmp_path / "x", ema_decay=1.0).check()
    with pytest.raises(UsageError, match="fp16 needs a GPU"):
        train(_config(rects, tiny_model_dir, tmp_path / "x", mixed_precision="fp16", cpu=True))
    with pytest.raises(UsageError, match="--frames 40"):
        train(_config(rects, tiny_model_dir, tmp_path / "y", frames=40))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "train_log.jsonl").write_text("")
    with pytest.raises(UsageError, match="--resume"):
        train(_config(rects, tiny_model_dir, busy))


def test_train_command_json(rects, tiny_model_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from tdgen.cli import handle_errors
    from tdgen.cli.train import train_command

    app = typer.Typer()
    app.command("train")(handle_errors(train_command))
    app.command("noop")(lambda: None)  # keep "train" a subcommand
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["train", "--ann", str(rects["ann"]), "--model", str(tiny_model_dir), "--out", str(out),
                              "--steps", "1", "--frames", "4", "--json", "--ema-decay", "0"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 1 and summary["model_dir"] == str(out / "model")
    res = runner.invoke(app, ["train", "--ann", str(rects["ann"]), "--model", str(tiny_model_dir), "--out", str(out),
                              "--stage", "video"])
    assert res.exit_code == 2 and "error: --stage must be one of 1, 2, all" in res.output


def test_bf16_then_fp32_in_one_process(rects, tiny_model_dir, tmp_path):
    """accelerate's process-wide state must not pin the first run's precision."""
    a = train(_config(rects, tiny_model_dir, tmp_path / "bf16", steps=1, mixed_precision="bf16", ema_decay=0.0))
    b = train(_config(rects, tiny_model_dir, tmp_path / "fp32", steps=1, ema_decay=0.0))
    assert math.isfinite(a.losses[0][1]) and math.isfinite(b.losses[0][1])
    assert a.losses[0][1] == pytest.approx(b.losses[0][1], rel=0.05)


def test_prediction_type_choice():
    from tdgen.train.loop import choose_prediction_type as choose

    assert choose("auto", "epsilon", 4, 64, fresh=False) == "epsilon"  # latents narrower than the UNet
    assert choose("auto", "epsilon", 192, 64, fresh=True) == "sample"  # space-to-depth from scratch
    assert choose("auto", "sample", 192, 64, fresh=False) == "sample"
    assert choose("v_prediction", "epsilon", 192, 64, fresh=False) == "v_prediction"  # asked for
    with pytest.raises(UsageError, match="--prediction-type sample"):
        choose("auto", "v_prediction", 192, 64, fresh=False)
    with pytest.raises(UsageError, match="--prediction-type"):
        TrainConfig(ann="a.json", out="o", init="tiny", prediction_type="x0").check()


def test_gates_open_for_fresh_unets_and_stay_when_fine_tuning(rects, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    def gates(md):
        sd = load_file(str(md / "unet" / "diffusion_pytorch_model.safetensors"))
        return [float(v) for k, v in sd.items() if k.endswith(("alpha_attn", "alpha_dense"))]

    fresh = train(TrainConfig(ann=rects["ann"], out=tmp_path / "fresh", init="tiny", resolution=(32, 32),
                              frames=4, slots=4, steps=1, ema_decay=0.0, lr=1e-6))
    assert gates(fresh.model_dir) and all(abs(g - 1.0) < 1e-3 for g in gates(fresh.model_dir))
    before = gates(tiny_model_dir)
    tuned = train(_config(rects, tiny_model_dir, tmp_path / "tuned", steps=1, lr=1e-6, ema_decay=0.0))
    assert gates(tuned.model_dir) == pytest.approx(before, abs=1e-3)
    opened = train(_config(rects, tiny_model_dir, tmp_path / "opened", steps=1, lr=1e-6, ema_decay=0.0,
                           gate_init=0.5))
    assert gates(opened.model_dir) == pytest.approx([0.5] * len(before), abs=1e-3)


def test_tsv_captions_train_exactly_like_the_equivalent_json(rects, tiny_model_dir, tmp_path, monkeypatch):
    """train() reads captions through tdgen.prompts: a TSV file builds the same prompts as its JSON."""
    from tdgen.pipeline import TrackDiffusionPipeline

    seen: list[str] = []
    encode = TrackDiffusionPipeline.encode_prompts

    def spy(self, prompts):
        seen.extend(prompts)
        return encode(self, prompts)

    monkeypatch.setattr(TrackDiffusionPipeline, "encode_prompts", spy)
    tsv = tmp_path / "captions.tsv"
    tsv.write_text("# video\tcaption\n\n rects_00 \t two rectangles drifting \n", encoding="utf-8")
    runs = {}
    for name, captions in (("json", rects["captions"]), ("tsv", tsv)):
        seen.clear()
        result = train(_config(rects, tiny_model_dir, tmp_path / name, captions=captions, steps=1, batch_size=2,
                               prompt_template="clip of {categories} in {video}", text_dropout=0.0, ema_decay=0.0))
        runs[name] = (list(seen), result.losses)
    # one step of both clips: rects_00 has a caption, rects_01 gets the template
    assert sorted(runs["json"][0]) == ["clip of red box, blue box in rects_01", "two rectangles drifting"]
    assert runs["tsv"] == runs["json"]  # the same prompts, in the same order, and the same loss
    data = json.loads((tmp_path / "tsv" / "model" / "tdgen.json").read_text())["training"]["data"]
    assert data["captions"] == str(tsv.resolve())
