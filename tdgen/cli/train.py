"""``tdgen train``: train or fine-tune a TrackDiffusion UNet."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from ..launch import current_launch
from ..sizes import parse_wh
from ._app import app, handle_errors
from ._options import Captions, Frames, Prompt, Slots
from ._output import Progress, emit_json

__all__ = ["train_command", "parse_resolution"]


def parse_resolution(text: Optional[str]) -> Optional[tuple[int, int]]:
    """``"128x96"`` -> ``(128, 96)`` (width, height); ``None`` stays ``None``."""
    return parse_wh(text, "--resolution", multiple_of=8)


def train_command(
    ann: Path = typer.Option(..., "--ann", "-a", help="Training tracklets: COCO-VID JSON (MOT directories and "
                             "YouTube-VIS JSON work too)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory: train_log.jsonl, checkpoints/, model/."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the frames' file names are relative to "
                                          "(default: the annotation file's folder). Videos whose name is a video "
                                          "file (.mp4, .avi, ...) are decoded with decord."),
    captions: Captions = None,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model directory (or preset) to fine-tune; "
                                        "with --init, where the text encoder and autoencoder come from."),
    init: Optional[str] = typer.Option(None, "--init", help="Train a fresh UNet: tiny, full, or a JSON file of "
                                       "UNet config fields (missing ones from the tiny config)."),
    autoencoder: str = typer.Option("model", "--autoencoder", help="With --init: model (the --model's, or a "
                                    "tiny random AutoencoderKL), tiny-kl, or space-to-depth (lossless pixel "
                                    "unshuffle by 8, 192 latent channels, nothing to train)."),
    steps: int = typer.Option(1000, "--steps", help="Optimizer steps in total (a resumed run counts its "
                              "earlier steps)."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="Clips per process per micro-step."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-steps per optimizer step."),
    frames: Frames = None,
    slots: Slots = None,
    resolution: Optional[str] = typer.Option(None, "--resolution", help="Training frame size WxH (default: the "
                                             "model's, 128x128 with --init alone)."),
    stride: Optional[int] = typer.Option(None, "--stride", help="Source frames between clip starts (default: "
                                         "frames, no overlap)."),
    prompt: Prompt = None,
    hflip: bool = typer.Option(False, "--hflip", help="Mirror half of the samples (boxes follow)."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (AdamW). The published fine-tune used 1e-5."),
    lr_schedule: str = typer.Option("cosine", "--lr-schedule", help="cosine or constant, after the warm-up."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Linear warm-up steps (default: "
                                               "steps/20, at most 1000)."),
    stage: str = typer.Option("all", "--stage", help="1: layout (fusers + position net, frames apart); 2: video "
                              "(temporal layers, motion extractor, enhancer); all: everything."),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no, fp16 (GPU) or bf16."),
    grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing", help="Recompute activations in the "
                                            "backward pass: less memory, about 30% more time."),
    ema_decay: float = typer.Option(0.9999, "--ema-decay", help="EMA decay of the trained weights (warmed up as "
                                    "min(d, (1+n)/(10+n))); 0 = no EMA. The exported model uses the EMA."),
    max_grad_norm: float = typer.Option(1.0, "--max-grad-norm", help="Gradient clipping norm (0 = off)."),
    gate_init: Optional[float] = typer.Option(None, "--gate-init", help="Set every layout gate (GLIGEN fusers, "
                                              "instance enhancer) to this value before training. Default: 1.0 for "
                                              "a fresh UNet (--init; closed gates never open there), the model's own "
                                              "when fine-tuning."),
    prediction_type: str = typer.Option("auto", "--prediction-type", help="What the UNet predicts: epsilon, "
                                        "v_prediction or sample (the clean latents). auto: the model's own; a "
                                        "fresh UNet narrower than its latents (space-to-depth) predicts sample."),
    fg_weight: float = typer.Option(2.0, "--fg-weight", help="Loss weight of latent cells inside boxes "
                                    "(1 = plain MSE)."),
    text_dropout: float = typer.Option(0.1, "--text-dropout", help="Probability of training a clip with the "
                                       "empty prompt."),
    box_dropout: float = typer.Option(0.1, "--box-dropout", help="Probability of training a clip with every "
                                      "box mask 0 (independent of --text-dropout)."),
    cache_latents: bool = typer.Option(False, "--cache-latents", help="Encode every clip once into "
                                       "OUT/latent_cache/ and train from there (the autoencoder is frozen)."),
    num_workers: int = typer.Option(0, "--num-workers", help="Data-loading worker processes."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="Save OUT/checkpoints/step-NNNNNN/ every "
                                         "this many steps (0 = only when stopped by --stop-after)."),
    keep_checkpoints: Optional[int] = typer.Option(None, "--keep-checkpoints", help="Keep only the newest N "
                                                   "checkpoints."),
    export_every: int = typer.Option(0, "--export-every", help="Also export OUT/model/ every this many steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out (same "
                                "settings; starts fresh if there is none)."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", help="Run at most this many steps now, save "
                                             "a checkpoint and exit (continue later with --resume)."),
    seed: int = typer.Option(0, "--seed", help="Seeds data order, flips, dropout, timesteps, noise and a fresh "
                             "UNet."),
    log_every: int = typer.Option(1, "--log-every", help="Write a train_log.jsonl line every this many steps "
                                  "(the mean loss since the previous line)."),
    cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU even when a GPU is visible."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary at the end (no progress "
                                 "bar)."),
) -> None:
    """Train TrackDiffusion on a tracking set: fine-tune a model directory, or train a small one from scratch.

    The objective is the published one: the UNet predicts the noise added to the clip's latents,
    the squared error inside boxes weighs --fg-weight (2) times the rest, and 10% of the clips
    are trained without their prompt and, independently, 10% without any box, which is what
    classifier-free guidance needs at sampling time.

    Stages (--stage) choose what trains; the text encoder and the autoencoder never do:

      1    image-level layout: GLIGEN fusers and the grounding-token network; frames are
           trained as independent images
      2    video: temporal convs and transformers, frame embeddings, the motion extractor,
           the identity embedding and the temporal instance enhancer
      all  every UNet weight (from scratch, or a full fine-tune)

    Examples:

      tdgen shapes -o data/shapes --videos 200
      tdgen train --ann data/shapes/annotations.json --captions data/shapes/captions.json \\
          --init tiny --autoencoder space-to-depth --frames 8 --out runs/shapes --steps 20000 \\
          --batch-size 2 --checkpoint-every 500
      tdgen train ... --out runs/shapes --resume          # continue after an interruption
      accelerate launch -m tdgen.cli train ...            # several GPUs (batch is per GPU)
      torchrun --nproc-per-node 2 -m tdgen.cli train ...  # 2 CPU processes (gloo) without a GPU
      tdgen train --ann mine.json --model runs/shapes/model --stage 2 --lr 1e-5 --out runs/ft

    OUT/train_log.jsonl has one JSON line per logged step (step, loss, lr, seconds,
    samples_per_s); checkpoints hold model, optimizer, EMA and RNG states, and --resume from
    one repeats the uninterrupted run's losses exactly. At the end OUT/model/ is a complete
    model directory (EMA weights) for `tdgen synth --model OUT/model`, and its tdgen.json
    records how it was trained.
    """
    from ..train.loop import TrainConfig, train

    config = TrainConfig(
        ann=ann, out=out, images=images, captions=captions, model=model, init=init, autoencoder=autoencoder,
        steps=steps, batch_size=batch_size, grad_accum=grad_accum, frames=frames, slots=slots,
        resolution=parse_resolution(resolution), stride=stride, prompt_template=prompt, hflip=hflip, lr=lr,
        lr_schedule=lr_schedule, warmup_steps=warmup_steps, stage=stage, mixed_precision=mixed_precision,
        gradient_checkpointing=grad_checkpointing, ema_decay=ema_decay, max_grad_norm=max_grad_norm, prediction_type=prediction_type, gate_init=gate_init,
        fg_weight=fg_weight, text_dropout=text_dropout, box_dropout=box_dropout, cache_latents=cache_latents,
        num_workers=num_workers, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
        export_every=export_every, resume=resume, stop_after=stop_after, seed=seed, log_every=log_every, cpu=cpu,
        command="tdgen train " + shlex.join(sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "train"
                                            else sys.argv[1:]),
    )
    config.check()

    progress = Progress("train", enabled=not as_json and current_launch().is_main)
    tasks: dict[str, int] = {}

    def on_event(e: dict) -> None:
        kind = e.get("event")
        if kind == "setup":
            progress.write(e["message"])
        elif kind == "latents":
            if "latents" not in tasks:
                tasks["latents"] = progress.add("latents", total=e["total"], unit="clips")
            progress.update(tasks["latents"], completed=e["done"])
        elif kind == "start":
            progress.write(f"{e['clips']} clips, {e['trainable']:,} trainable parameters, "
                           f"steps {e['step']}..{e['total']}")
            tasks["train"] = progress.add("train", total=e["total"], completed=e["step"], unit="steps")
        elif kind == "step":
            sps = e.get("samples_per_s")
            info = f"loss {e['loss']:.4f}, lr {e['lr']:.2e}" + (f", {sps:.2f} clips/s" if sps else "")
            progress.update(tasks["train"], completed=e["step"], info=info)
        elif kind in ("checkpoint", "export"):
            progress.write(f"{kind}: {e['path']}")

    with progress:
        result = train(config, progress=on_event)
    if not result.main_process:
        return
    if as_json:
        summary = result.to_json()
        summary.pop("losses", None)
        emit_json(summary)
        return
    where = f", model in {result.model_dir}" if result.model_dir else f", checkpoint {result.checkpoints[-1]}" \
        if result.checkpoints else ""
    loss = f"{result.final_loss:.4f}" if result.final_loss is not None else "n/a"
    print(f"trained {result.steps - result.start_step} steps (now at {result.steps}/{config.steps}), "
          f"final loss {loss}, {result.seconds:.0f}s{where}")


app.command("train")(handle_errors(train_command))
