"""The TrackDiffusion training loop (research/official.md §4), built on accelerate.

One optimizer step:

1. Take ``batch_size`` clips per process and micro-step (``grad_accum`` micro-steps): frames ->
   latents with the frozen autoencoder (or from the latent cache), times its ``scaling_factor``.
2. Per clip, two independent condition-dropout draws: with ``text_dropout`` (0.1) the prompt
   becomes ``""``; with ``box_dropout`` (0.1) **every** box mask of the clip becomes 0 (null
   grounding tokens, null ROI features, null motion inputs; the identity embedding remains). This
   is what classifier-free guidance's unconditional branch is at sampling time.
3. DDPM forward process with the model's training noise schedule (its ``scheduler`` config:
   ``num_train_timesteps``, betas, ``prediction_type``): ``t`` uniform in ``[0, T)``, Gaussian
   noise, ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``.
4. The UNet predicts ``eps`` (or ``v``); the loss is the foreground-reweighted MSE of
   :func:`foreground_weights`: latent cells inside any box of the clip (in that frame) weigh
   ``fg_weight`` (2.0), the others 1, and the weights are divided by their mean over the whole
   micro-batch tensor. Weights come from the data's boxes, before box dropout, as published.
5. AdamW (weight decay 1e-2) on the parameters of the chosen stage (:data:`STAGES`), linear
   warm-up then cosine (or constant) learning rate, gradient clipping, then an EMA of the trained
   parameters (the exported model uses the EMA weights).

Deliberate differences from the published trainer: latents are the autoencoder's deterministic
output (AutoencoderKL's posterior mean, not a sample), so cached and on-the-fly latents train
identically; stage 2 also trains ``null_track_feat``, which the published ``temp`` mode leaves
frozen at its random initialisation (official.md §8); the foreground weights and dropout draws are
vectorised/seeded per sample instead of a Python loop and one shared generator; gradient clipping
(1.0) and the EMA are on by default (the published run had neither).

Determinism and ``resume``: every random choice is a function of ``(seed, global sample
position)`` or ``(seed, step)``: which clip and flip a position gets (:class:`~tdgen.train.data.ClipOrder`),
the dropout draws, ``t`` and the noise (one ``torch.Generator`` per sample), and the global torch
RNG is re-seeded from ``(seed, step, micro-step, process)`` before each forward (dropout inside
the UNet). A checkpoint stores the model, optimizer, EMA, RNG states and step; resuming from it
repeats the uninterrupted run's loss curve exactly (same machine, thread count, library versions).

Layout of ``OUT``::

    OUT/train_log.jsonl                   one JSON line per logged step
    OUT/checkpoints/step-000500/          accelerate state + ema.safetensors + trainer_state.json
    OUT/model/                            the exported model directory (EMA weights)
    OUT/base-model/                       (--init without --model) the tiny text encoder/VAE start
    OUT/latent_cache/<key>/               (cache_latents) pre-encoded latents
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..prompts import load_captions, parse_template
from ..errors import TdgenError, UsageError
from ..launch import current_launch
from ..schedulers import training_scheduler
from .data import (
    ClipDataset,
    ClipOrder,
    DataSummary,
    LatentCache,
    collate_items,
    derive_seed,
    encode_pixels,
    latent_cache_key,
    precompute_latents,
)

__all__ = [
    "AUTOENCODERS",
    "LR_SCHEDULES",
    "MIXED_PRECISION",
    "STAGES",
    "STAGE_GROUPS",
    "EMA",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "apply_condition_dropout",
    "draw_condition_dropout",
    "foreground_weights",
    "is_trainable",
    "latest_checkpoint",
    "lr_at",
    "noise_scheduler_from",
    "set_trainable",
    "trainable_parameter_names",
    "train",
]

STAGES = ("1", "2", "all")
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULES = ("cosine", "constant")
AUTOENCODERS = ("model", "tiny-kl", "space-to-depth")

STAGE_GROUPS: dict[str, str] = {
    "1": "image-level layout: every GLIGEN fuser (*.fuser.*) and position_net except the motion "
         "extractor (position_net.linears.*, null_positive_feature, null_position_feature, "
         "instance_embedding); frames are trained as independent one-frame clips",
    "2": "video: transformer_in.*, every temporal conv and temporal transformer (*.temp_convs.*, "
         "*.temp_attentions.*, frame embeddings included), the motion extractor "
         "(position_net.tracklet_*), the identity embedding (position_net.instance_embedding.*), "
         "the instance enhancer (*.injector.*) and its null features (*.null_track_feat.*)",
    "all": "every UNet parameter (from scratch, or a full fine-tune)",
}
"""What each ``--stage`` trains (the text encoder and the autoencoder are always frozen)."""

_CHECKPOINT_PREFIX = "step-"
_STATE_FILE = "trainer_state.json"
_EMA_FILE = "ema.safetensors"

# Fields that shape the loss curve: a checkpoint only resumes a run whose values are equal.
_RESUME_FIELDS = (
    "ann", "images", "captions", "model", "init", "autoencoder", "batch_size", "frames", "slots",
    "resolution", "stride", "step", "min_tracks", "prompt_template", "hflip", "lr", "lr_schedule",
    "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "stage",
    "mixed_precision", "grad_accum", "ema_decay", "fg_weight", "text_dropout", "box_dropout", "seed",
    "cache_latents", "prediction_type", "gate_init",
)
PREDICTION_TYPES = ("auto", "epsilon", "v_prediction", "sample")


# =========================================================================== configuration


class TrainingError(TdgenError):
    """Training cannot go on (the loss became NaN or infinite): exit 1 with one line."""


@dataclass
class TrainConfig:
    """Everything a training run needs (the ``tdgen train`` flags; see ``train_command``).

    Starting point: ``model`` (a model directory or preset) to fine-tune, or ``init`` (``"tiny"``,
    ``"full"`` or a JSON file of UNet config fields, missing ones taken from ``tiny_config``) to
    train a fresh UNet; with ``init`` the text encoder, tokenizer, scheduler and (by default)
    autoencoder come from ``model`` when given, else tiny random ones are created in
    ``OUT/base-model``. ``autoencoder="space-to-depth"`` (only with ``init``) uses the lossless
    pixel-unshuffle autoencoder (192 latent channels at factor 8) instead.
    """

    ann: Path
    out: Path
    images: Path | None = None
    captions: Path | None = None
    model: str | None = None
    init: str | None = None
    autoencoder: str = "model"
    steps: int = 1000
    batch_size: int = 1
    frames: int | None = None
    slots: int | None = None
    resolution: tuple[int, int] | None = None  # (W, H)
    stride: int | None = None
    step: int = 1
    min_tracks: int = 1
    prompt_template: str | None = None
    hflip: bool = False
    lr: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_steps: int | None = None
    weight_decay: float = 1e-2
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    stage: str = "all"
    mixed_precision: str = "no"
    grad_accum: int = 1
    gradient_checkpointing: bool = False
    ema_decay: float = 0.9999
    fg_weight: float = 2.0
    text_dropout: float = 0.1
    box_dropout: float = 0.1
    prediction_type: str = "auto"
    gate_init: float | None = None
    checkpoint_every: int = 0
    keep_checkpoints: int | None = None
    export_every: int = 0
    resume: bool = False
    stop_after: int | None = None
    seed: int = 0
    log_every: int = 1
    cache_latents: bool = False
    num_workers: int = 0
    cpu: bool = False
    command: str | None = None

    def __post_init__(self) -> None:
        self.ann = Path(self.ann)
        self.out = Path(self.out)
        self.images = Path(self.images) if self.images is not None else None
        self.captions = Path(self.captions) if self.captions is not None else None
        if self.resolution is not None:
            self.resolution = (int(self.resolution[0]), int(self.resolution[1]))
        self.stage = str(self.stage)

    def check(self) -> None:
        """Raise :class:`UsageError` for the first bad value (one line, naming the flag)."""
        def positive(name: str, value, flag: str | None = None) -> None:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise UsageError(f"{flag or '--' + name.replace('_', '-')} must be a positive integer, got {value!r}")

        for name in ("steps", "batch_size", "frames", "slots", "step", "grad_accum", "log_every", "stride",
                     "stop_after", "keep_checkpoints"):
            positive(name, getattr(self, name))
        for name in ("checkpoint_every", "export_every", "num_workers", "min_tracks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be a non-negative integer, got {v!r}")
        if self.warmup_steps is not None and (not isinstance(self.warmup_steps, (int, np.integer))
                                              or self.warmup_steps < 0):
            raise UsageError(f"--warmup-steps must be a non-negative integer, got {self.warmup_steps!r}")
        if self.stage not in STAGES:
            raise UsageError(f"--stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise UsageError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, "
                             f"got {self.mixed_precision!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise UsageError(f"--prediction-type must be one of {', '.join(PREDICTION_TYPES)}, "
                             f"got {self.prediction_type!r}")
        if self.gate_init is not None and not math.isfinite(self.gate_init):
            raise UsageError(f"--gate-init must be a number, got {self.gate_init!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.autoencoder not in AUTOENCODERS:
            raise UsageError(f"--autoencoder must be one of {', '.join(AUTOENCODERS)}, got {self.autoencoder!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be a positive number, got {self.lr!r}")
        if not (0.0 <= self.ema_decay < 1.0):
            raise UsageError(f"--ema-decay must be in [0, 1) (0 turns EMA off), got {self.ema_decay!r}")
        for name in ("text_dropout", "box_dropout"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise UsageError(f"--{name.replace('_', '-')} must be a probability in [0, 1], got {v!r}")
        if not (math.isfinite(self.fg_weight) and self.fg_weight > 0):
            raise UsageError(f"--fg-weight must be a positive number, got {self.fg_weight!r}")
        if not self.max_grad_norm >= 0:
            raise UsageError(f"--max-grad-norm must be >= 0 (0 turns clipping off), got {self.max_grad_norm!r}")
        if self.weight_decay < 0:
            raise UsageError(f"--weight-decay must be >= 0, got {self.weight_decay!r}")
        if self.model is None and self.init is None:
            raise UsageError("pass --model DIR to fine-tune a model, or --init tiny (or a UNet config JSON) to "
                             "train one from scratch")
        if self.autoencoder != "model" and self.init is None:
            raise UsageError(f"--autoencoder {self.autoencoder} needs --init (a fine-tuned UNet keeps its "
                             "model's autoencoder)")
        if self.resolution is not None:
            w, h = self.resolution
            if w <= 0 or h <= 0 or w % 8 or h % 8:
                raise UsageError(f"--resolution {w}x{h}: width and height must be positive multiples of 8")
        if not self.ann.exists():
            raise UsageError(f"--ann {self.ann}: no such file")
        # Checked here, before train() creates its output folder: a bad template or captions file
        # must leave nothing behind.
        if self.prompt_template is not None:
            parse_template(self.prompt_template, source="--prompt template")
        if self.captions is not None:
            load_captions(self.captions)

    def resume_fields(self) -> dict[str, Any]:
        d = asdict(self)
        out = {}
        for k in _RESUME_FIELDS:
            v = d[k]
            out[k] = str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
        return out


@dataclass
class TrainResult:
    """What :func:`train` did."""

    out: Path
    model_dir: Path | None
    steps: int  # optimizer steps completed in total (including resumed ones)
    start_step: int  # the step this invocation started from (0, or the resumed checkpoint's)
    final_loss: float | None  # mean loss of the last (up to 100) steps
    losses: list[tuple[int, float]]  # (step, loss) of every step this invocation ran
    seconds: float  # training time over all invocations
    samples: int  # clips seen over all invocations
    checkpoints: list[Path] = field(default_factory=list)
    resumed_from: Path | None = None
    trainable_parameters: int = 0
    log_file: Path | None = None
    main_process: bool = True  # False on the other processes of a multi-process launch

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("out", "model_dir", "resumed_from", "log_file"):
            d[k] = str(d[k]) if d[k] is not None else None
        d["checkpoints"] = [str(p) for p in self.checkpoints]
        d["losses"] = [[s, l] for s, l in self.losses]
        d.pop("main_process", None)
        return d


# =========================================================================== pieces (tested alone)


def is_trainable(name: str, stage: str) -> bool:
    """Whether UNet parameter ``name`` trains in ``stage`` (see :data:`STAGE_GROUPS`)."""
    if stage == "all":
        return True
    if stage == "1":
        if ".fuser." in name:
            return True
        return name.startswith("position_net.") and not name.startswith("position_net.tracklet_")
    if stage == "2":
        return (
            name.startswith("transformer_in.")
            or ".temp_convs." in name
            or ".temp_attentions." in name
            or name.startswith("position_net.tracklet_")
            or name.startswith("position_net.instance_embedding.")
            or ".injector." in name
            or ".null_track_feat." in name
        )
    raise UsageError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")


def trainable_parameter_names(model: torch.nn.Module, stage: str) -> list[str]:
    """Names of ``model``'s parameters that ``stage`` trains, in module order."""
    return [n for n, _ in model.named_parameters() if is_trainable(n, stage)]


def set_trainable(model: torch.nn.Module, stage: str) -> list[str]:
    """Freeze everything but ``stage``'s parameters; return the trainable names."""
    names = set(trainable_parameter_names(model, stage))
    if not names:
        raise UsageError(f"--stage {stage}: this model has none of the parameters that stage trains "
                         f"({STAGE_GROUPS[stage]})")
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    return [n for n, _ in model.named_parameters() if n in names]


def foreground_weights(boxes: torch.Tensor, masks: torch.Tensor, size: tuple[int, int],
                       fg_weight: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """Per-cell loss weights ``(B, 1, F, h, w)`` of the published foreground reweighting.

    For every present slot ``(b, f, k)`` with normalised box ``(x1, y1, x2, y2)``, latent rows
    ``int(y1 * h) .. int(y2 * h) - 1`` and columns ``int(x1 * w) .. int(x2 * w) - 1`` of frame
    ``f`` get weight ``fg_weight`` (overlaps do not add up); every other cell gets 1. With
    ``normalize`` the weights are divided by their mean over the whole tensor, as published
    (``W / W.mean()`` over the batch), so the loss keeps its scale. Vectorised: no Python loop
    over boxes.
    """
    h, w = int(size[0]), int(size[1])
    boxes = boxes.float()
    present = masks > 0.5 if masks.dtype != torch.bool else masks
    rows = torch.arange(h, device=boxes.device, dtype=torch.float32)
    cols = torch.arange(w, device=boxes.device, dtype=torch.float32)
    y0 = torch.floor(boxes[..., 1] * h)[..., None]
    y1 = torch.floor(boxes[..., 3] * h)[..., None]
    x0 = torch.floor(boxes[..., 0] * w)[..., None]
    x1 = torch.floor(boxes[..., 2] * w)[..., None]
    in_y = (rows >= y0) & (rows < y1) & present[..., None]  # (B, F, N, h)
    in_x = (cols >= x0) & (cols < x1)  # (B, F, N, w)
    inside = torch.einsum("bfnh,bfnw->bfhw", in_y.float(), in_x.float()) > 0
    weights = torch.where(inside, torch.tensor(float(fg_weight), device=boxes.device), torch.tensor(1.0,
                          device=boxes.device))
    if normalize:
        weights = weights / weights.mean()
    return weights[:, None]


def draw_condition_dropout(batch: int, text_p: float, box_p: float,
                           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent Bernoulli draws per clip: ``(drop_text, drop_boxes)``, bool ``(batch,)``.

    The uniforms are drawn as ``torch.rand(batch, 2)`` from ``generator`` (column 0: text,
    column 1: boxes), so a seeded generator gives reproducible decisions.
    """
    u = torch.rand(batch, 2, generator=generator)
    return u[:, 0] < text_p, u[:, 1] < box_p


def apply_condition_dropout(prompts: Sequence[str], masks: torch.Tensor, drop_text: torch.Tensor,
                            drop_boxes: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """Prompts with dropped ones replaced by ``""`` and masks ``(B, F, N)`` with every mask of a
    dropped clip set to 0 (boxes and category embeddings are left as they are, as published)."""
    prompts = ["" if bool(d) else str(p) for p, d in zip(prompts, drop_text.tolist())]
    keep = (~drop_boxes.to(masks.device)).to(masks.dtype).view(-1, *([1] * (masks.dim() - 1)))
    return prompts, masks * keep


def noise_scheduler_from(config: Mapping[str, Any] | None):
    """A :class:`diffusers.DDPMScheduler` with the noise schedule of a scheduler config, the same
    one sampling uses (:func:`tdgen.schedulers.noise_schedule`)."""
    return training_scheduler(config)


def set_gates(unet: torch.nn.Module, value: float) -> int:
    """Set every gate of the layout modules (``alpha_attn``/``alpha_dense`` of the GLIGEN fusers
    and the instance enhancer) to ``value``; returns how many.

    The published gates start at 0 so that a pretrained UNet is unchanged at first. A fresh UNet
    has nothing to preserve, and closed gates there are a trap: a gate's gradient is the
    usefulness of its random module's output and the module's gradient is scaled by
    ``tanh(gate)``, so neither moves (measured: after 2,500 steps from scratch every
    ``alpha_attn`` was below 0.003 and the samples ignored their boxes). Fresh UNets (``--init``)
    therefore start with the gates open (1.0).
    """
    n = 0
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.endswith((".alpha_attn", ".alpha_dense")):
                param.fill_(float(value))
                n += 1
    return n


def choose_prediction_type(requested: str, current: str, latent_channels: int, width0: int,
                           fresh: bool) -> str:
    """What the UNet learns to predict: ``requested``, or for ``"auto"`` the model's own type,
    except that a fresh UNet whose first level is narrower than its latents predicts ``sample``.

    White noise in C latent channels cannot pass a first level narrower than C. Epsilon targets
    are that noise at every t (measured with 192 -> 64 channels: loss stuck at ~0.78, samples pure
    noise); v targets are that noise at small t (loss stuck at ~0.40, samples keep a fine grain of
    noise). The clean latents are low-rank, so such a UNet predicts them (``sample``).
    """
    narrow = latent_channels > width0
    if requested != "auto":
        return requested
    if not narrow:
        return current
    if fresh:
        return "sample"
    if current != "sample":
        raise UsageError(f"the model predicts {current} but its latents have {latent_channels} channels and its "
                         f"first UNet level only {width0}: it cannot learn to predict the noise; pass "
                         f"--prediction-type sample to retrain it to predict the clean latents")
    return current


def lr_at(step: int, base_lr: float, warmup: int, total: int, schedule: str = "cosine") -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up from ``base_lr / warmup``
    to ``base_lr`` over ``warmup`` steps, then constant or a half cosine down to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "constant":
        return base_lr
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of named parameters, kept in float32.

    ``decay`` warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so short runs
    are not dominated by the initial weights.
    """

    def __init__(self, named_params: Iterable[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {n: p.detach().float().clone() for n, p in named_params}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> None:
        d = self.current_decay()
        for n, p in named_params:
            s = self.shadow[n]
            s.mul_(d).add_(p.detach().to(s.dtype), alpha=1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.contiguous() for n, t in self.shadow.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], updates: int) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise UsageError(f"checkpoint EMA lacks {len(missing)} trained parameters (e.g. {sorted(missing)[0]}); "
                             "was it made with another --stage?")
        for n in self.shadow:
            self.shadow[n] = state[n].to(self.shadow[n].device, torch.float32).clone()
        self.updates = int(updates)

    @contextlib.contextmanager
    def applied_to(self, model: torch.nn.Module):
        """Temporarily copy the EMA values into ``model``'s parameters (restored afterwards)."""
        params = dict(model.named_parameters())
        saved = {n: params[n].detach().clone() for n in self.shadow}
        try:
            with torch.no_grad():
                for n, s in self.shadow.items():
                    params[n].copy_(s.to(params[n].device, params[n].dtype))
            yield model
        finally:
            with torch.no_grad():
                for n, t in saved.items():
                    params[n].copy_(t)


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The complete checkpoint of the highest step under ``OUT/checkpoints`` (None if none)."""
    root = Path(out) / "checkpoints"
    best: tuple[int, Path] | None = None
    if not root.is_dir():
        return None
    for p in root.iterdir():
        if not p.name.startswith(_CHECKPOINT_PREFIX) or not (p / _STATE_FILE).is_file():
            continue
        try:
            s = int(p.name[len(_CHECKPOINT_PREFIX):])
        except ValueError:
            continue
        if best is None or s > best[0]:
            best = (s, p)
    return best[1] if best else None


# =========================================================================== model set-up


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path}: not a readable JSON file ({exc})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{what} {path}: must hold a JSON object of config fields")
    return obj


def _init_unet_config(init: str, *, latent_channels: int, text_width: int, frames: int, slots: int,
                      latent_hw: tuple[int, int]) -> dict[str, Any]:
    from ..model.unet import TrackDiffusionUNet, full_config, tiny_config

    if init == "tiny":
        cfg = tiny_config()
    elif init == "full":
        cfg = full_config()
    else:
        fields = _read_json(Path(init), "--init")
        known = set(TrackDiffusionUNet._documented_defaults)
        unknown = sorted(k for k in fields if not k.startswith("_") and k not in known)
        if unknown:
            raise UsageError(f"--init {init}: unknown UNet config field(s): {', '.join(unknown)}")
        cfg = tiny_config(**{k: v for k, v in fields.items() if not k.startswith("_")})
    cfg.update(in_channels=latent_channels, out_channels=latent_channels, cross_attention_dim=text_width,
               max_frames=max(int(cfg.get("max_frames", 16)), frames), max_slots=max(int(cfg.get("max_slots", 20)),
                                                                                  slots),
               sample_size=[latent_hw[0], latent_hw[1]])
    for k in ("down_block_types", "up_block_types", "block_out_channels"):
        if isinstance(cfg.get(k), list):
            cfg[k] = tuple(cfg[k])
    return cfg


@dataclass
class _Setup:
    pipe: Any  # TrackDiffusionPipeline with the UNet to train
    base_dir: Path  # model directory the frozen components came from
    base_info: dict[str, Any]
    resolution: tuple[int, int]
    frames: int
    slots: int
    prompt_template: str
    started_from: dict[str, Any]


def _build(config: TrainConfig, main: bool) -> _Setup:
    """Load or create the pipeline whose UNet will be trained."""
    from ..modeldir import DEFAULT_PROMPT_TEMPLATE, init_tiny_model, load_pipeline, read_tdgen_json, resolve_model_dir
    from ..model.autoencoder import SpaceToDepthAutoencoder, downscale_factor
    from ..model.unet import TrackDiffusionUNet

    if config.model is not None:
        base_dir = resolve_model_dir(config.model)
        info = read_tdgen_json(base_dir)
    else:
        base_dir = config.out / "base-model"
        info = {}
    res = config.resolution or (tuple(info["resolution"]) if info.get("resolution") else (128, 128))
    frames = config.frames or int(info.get("frames", 8))
    slots = config.slots or int(info.get("slots", 20))
    template = config.prompt_template or str(info.get("prompt_template", DEFAULT_PROMPT_TEMPLATE))

    if config.model is None:
        if main and not (base_dir / "tdgen.json").is_file():
            init_tiny_model(base_dir, seed=derive_seed(config.seed, "base-model") % (2 ** 31), resolution=res,
                            frames=frames, slots=slots, overwrite=True, model_id="tiny-base")
        _wait_for_file(base_dir / "tdgen.json")
        info = read_tdgen_json(base_dir)
    pipe = load_pipeline(base_dir)

    if config.autoencoder == "space-to-depth":
        pipe.register_modules(vae=SpaceToDepthAutoencoder(factor=8))
    elif config.autoencoder == "tiny-kl":
        from diffusers import AutoencoderKL

        from ..modeldir import tiny_component_configs

        state = torch.random.get_rng_state()
        torch.manual_seed(derive_seed(config.seed, "tiny-kl") % (2 ** 31))
        try:
            vae = AutoencoderKL(**tiny_component_configs()["vae"])
        finally:
            torch.random.set_rng_state(state)
        pipe.register_modules(vae=vae.eval().requires_grad_(False))
    factor = downscale_factor(pipe.vae)
    w, h = res
    if w % factor or h % factor:
        raise UsageError(f"resolution {w}x{h} is not a multiple of the autoencoder's factor {factor}")

    if config.init is not None:
        latent_channels = int(pipe.vae.latent_channels if isinstance(pipe.vae, SpaceToDepthAutoencoder)
                              else pipe.vae.config.latent_channels)
        ucfg = _init_unet_config(config.init, latent_channels=latent_channels,
                                 text_width=int(pipe.text_encoder.config.hidden_size), frames=frames, slots=slots,
                                 latent_hw=(h // factor, w // factor))
        state = torch.random.get_rng_state()
        torch.manual_seed(derive_seed(config.seed, "unet-init") % (2 ** 31))
        try:
            unet = TrackDiffusionUNet(**ucfg)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--init {config.init}: {exc}") from None
        finally:
            torch.random.set_rng_state(state)
        pipe.register_modules(unet=unet)
        started = {"init": config.init, "components_from": str(base_dir) if config.model else "tiny-random",
                   "autoencoder": type(pipe.vae).__name__}
    else:
        started = {"model": str(base_dir), "model_id": info.get("model_id")}
    ucfg = pipe.unet.config
    if ucfg.get("frame_embedding") == "learnable" and frames > int(ucfg.max_frames):
        raise UsageError(f"--frames {frames}: this model takes at most {ucfg.max_frames} frames")
    if slots > int(ucfg.max_slots):
        raise UsageError(f"--slots {slots}: this model takes at most {ucfg.max_slots} slots")
    return _Setup(pipe=pipe, base_dir=base_dir, base_info=info, resolution=(int(w), int(h)), frames=int(frames),
                  slots=int(slots), prompt_template=template, started_from=started)


def _wait_for_file(path: Path, timeout: float = 600.0) -> None:
    t0 = time.monotonic()
    while not path.is_file():
        if time.monotonic() - t0 > timeout:
            raise UsageError(f"{path} did not appear (the main process failed to create it)")
        time.sleep(0.2)


# =========================================================================== the loop


class _MicroBatches(torch.utils.data.Dataset):
    """Micro-batch ``g`` (global index ``step * grad_accum + micro``) of this process."""

    def __init__(self, ds: ClipDataset, order: ClipOrder, per_device: int, world: int, rank: int) -> None:
        self.ds, self.order = ds, order
        self.per_device, self.world, self.rank = per_device, world, rank

    def positions(self, g: int) -> list[int]:
        base = (g * self.world + self.rank) * self.per_device
        return list(range(base, base + self.per_device))

    def __len__(self) -> int:  # pragma: no cover - indexed through a sampler
        return 2 ** 62

    def __getitem__(self, g: int) -> dict[str, Any]:
        pos = self.positions(int(g))
        batch = collate_items([self.ds[self.order(p)] for p in pos])
        batch["positions"] = pos
        return batch


def _worker_init(_: int) -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    torch.set_num_threads(1)


def _reset_single_process_accelerate_state() -> None:
    """Let several :func:`train` calls in one (non-distributed) process use different settings:
    accelerate keeps its state in process-wide singletons that refuse a second ``mixed_precision``."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed or current_launch().launched:
        return
    try:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    except (ImportError, AttributeError):  # pragma: no cover - other accelerate versions
        pass


def _jsonl_truncate(path: Path, max_step: int) -> None:
    """Keep only the log lines of steps <= ``max_step`` (a resumed run rewrites the rest)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= max_step:
                keep.append(line)
        except (ValueError, AttributeError):
            continue
    from ..atomic import atomic_write_text

    atomic_write_text(path, "".join(line + "\n" for line in keep))


def train(config: TrainConfig, progress: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train (or fine-tune) a TrackDiffusion UNet; see the module docstring.

    ``progress`` (main process only) receives dicts: ``{"event": "setup", "message": ...}``,
    ``{"event": "latents", "done": i, "total": n}``, ``{"event": "start", "step": s0, "total": T}``,
    ``{"event": "step", "step": s, "total": T, "loss": ..., "lr": ..., "samples_per_s": ...}``,
    ``{"event": "checkpoint" | "export", "path": ...}``.

    Raises:
        UsageError: bad configuration, or ``OUT`` already holds a run and ``resume`` is off.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    config.check()
    out = config.out
    log_file = out / "train_log.jsonl"
    resume_from = latest_checkpoint(out) if config.resume else None
    if not config.resume and (log_file.exists() or latest_checkpoint(out) is not None):
        raise UsageError(f"{out} already holds a training run; pass --resume to continue it, or choose another --out")

    if config.mixed_precision == "fp16" and (config.cpu or not torch.cuda.is_available()):
        raise UsageError("--mixed-precision fp16 needs a GPU; on the CPU use no (bf16 runs but is much slower)")
    _reset_single_process_accelerate_state()
    # accelerate only sets up multi-process CPU training (gloo) when told cpu=True.
    launched = current_launch().launched
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
                              cpu=config.cpu or (launched and not torch.cuda.is_available()))
    main = accelerator.is_main_process
    report = progress if (progress is not None and main) else (lambda info: None)
    world, rank = accelerator.num_processes, accelerator.process_index
    device = accelerator.device
    if main:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    set_seed(derive_seed(config.seed, "setup") % (2 ** 31))

    report({"event": "setup", "message": "loading the model"})
    setup = _build(config, main)
    pipe = setup.pipe
    unet, vae, text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
    frozen_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.mixed_precision, torch.float32) \
        if device.type == "cuda" else torch.float32
    from ..model.autoencoder import SpaceToDepthAutoencoder

    # The space-to-depth autoencoder is a reshape: keep it exact in float32.
    vae_dtype = torch.float32 if isinstance(vae, SpaceToDepthAutoencoder) else frozen_dtype
    vae.requires_grad_(False).eval().to(device, vae_dtype)
    text_encoder.requires_grad_(False).eval().to(device, frozen_dtype)
    pipe.clear_text_cache()
    unet.to(device, torch.float32)
    trainable = set_trainable(unet, config.stage)
    unet.train()
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    gate = config.gate_init if config.gate_init is not None else (1.0 if config.init is not None else None)
    if gate is not None:
        n_gates = set_gates(unet, gate)
        report({"event": "setup", "message": f"{n_gates} layout gates set to {gate:g} (tanh = {math.tanh(gate):.2f})"})
    width0 = int(unet.config.block_out_channels[0])
    current = pipe.scheduler.config.prediction_type
    wanted = choose_prediction_type(config.prediction_type, current, int(unet.config.in_channels), width0,
                                    fresh=config.init is not None)
    if wanted != current:
        from ..pipeline import default_scheduler

        pipe.scheduler = default_scheduler({**pipe.scheduler.config, "prediction_type": wanted})
        report({"event": "setup", "message": f"training with prediction type {wanted} (the model had {current})"})
    sched = noise_scheduler_from(pipe.scheduler.config)
    num_t = int(sched.config.num_train_timesteps)
    prediction = sched.config.prediction_type
    scale = float(vae.config.scaling_factor)
    shift = vae.config.get("shift_factor", None)
    shift = float(shift) if shift is not None else None

    # ---- data
    report({"event": "setup", "message": "planning clips"})
    ds = ClipDataset(config.ann, images=config.images, captions=config.captions, frames=setup.frames,
                     slots=setup.slots, resolution=setup.resolution, stride=config.stride, step=config.step,
                     min_tracks=config.min_tracks, prompt_template=setup.prompt_template)
    if config.cache_latents:
        key = latent_cache_key(vae, ann=config.ann, images_root=ds.images_root, resolution=setup.resolution,
                               spec=ds.spec)
        cache = LatentCache(out / "latent_cache" / key)
        encoded = precompute_latents(
            ds, vae, cache, flips=config.hflip, shard=(rank, world),
            progress=lambda d, t: report({"event": "latents", "done": d, "total": t}))
        accelerator.wait_for_everyone()
        if encoded and main:
            report({"event": "setup", "message": f"encoded {encoded} clip latents into {cache.root}"})
        ds.latent_cache = cache
    summary = DataSummary.of(ds, config.captions)
    order = ClipOrder(len(ds), config.seed, config.hflip)

    # ---- optimisation
    params = [p for n, p in unet.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                                  eps=config.adam_epsilon, weight_decay=config.weight_decay)
    warmup = config.warmup_steps if config.warmup_steps is not None else min(1000, config.steps // 20)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    raw_unet = accelerator.unwrap_model(unet)
    named_trainable = [(n, p) for n, p in raw_unet.named_parameters() if p.requires_grad]
    ema = EMA(named_trainable, config.ema_decay) if config.ema_decay > 0 else None

    # ---- resume
    start_step, seconds_before, samples_before = 0, 0.0, 0
    recent: deque[float] = deque(maxlen=100)
    checkpoints: list[Path] = []
    if resume_from is not None:
        state = json.loads((resume_from / _STATE_FILE).read_text(encoding="utf-8"))
        saved = state.get("config", {})
        now = config.resume_fields()
        for k in _RESUME_FIELDS:
            if k in saved and saved[k] != now[k]:
                raise UsageError(f"--resume: {resume_from} was made with {k}={saved[k]!r}, this run has "
                                 f"{k}={now[k]!r}; use the same settings (or another --out)")
        if int(state.get("world_size", world)) != world:
            raise UsageError(f"--resume: {resume_from} was made with {state.get('world_size')} processes, "
                             f"this run has {world}; the data order depends on it")
        accelerator.load_state(str(resume_from))
        if ema is not None:
            from safetensors.torch import load_file

            ema_file = resume_from / _EMA_FILE
            if not ema_file.is_file():
                raise UsageError(f"--resume: {resume_from} has no {_EMA_FILE} but this run uses EMA")
            ema.load_state_dict(load_file(str(ema_file)), int(state.get("ema_updates", 0)))
        start_step = int(state["step"])
        seconds_before = float(state.get("seconds", 0.0))
        samples_before = int(state.get("samples", 0))
        recent.extend(float(x) for x in state.get("recent_losses", []))
        if main:
            _jsonl_truncate(log_file, start_step)
    elif main and log_file.exists():
        log_file.unlink()
    accelerator.wait_for_everyone()

    total = int(config.steps)
    end_step = total if config.stop_after is None else min(total, start_step + int(config.stop_after))
    per_device = int(config.batch_size)
    accum = int(config.grad_accum)
    global_batch = per_device * world * accum
    micro = _MicroBatches(ds, order, per_device, world, rank)
    loader = torch.utils.data.DataLoader(
        micro, batch_size=None, sampler=range(start_step * accum, end_step * accum), num_workers=config.num_workers,
        worker_init_fn=_worker_init if config.num_workers else None, pin_memory=device.type == "cuda",
        persistent_workers=False)
    stage1_frames_apart = config.stage == "1"

    def run_micro(batch: dict[str, Any], step: int, m: int) -> torch.Tensor:
        positions = batch["positions"]
        B = len(positions)
        if "latents" in batch:
            z = batch["latents"].to(device, torch.float32)
        else:
            z = encode_pixels(vae, batch["pixels"].to(device))
        latents = ((z - shift) if shift is not None else z) * scale
        _, C, F, h, w = latents.shape
        noise = torch.empty_like(latents, device="cpu")
        timesteps = torch.empty(B, dtype=torch.long)
        drop_t = torch.empty(B, dtype=torch.bool)
        drop_b = torch.empty(B, dtype=torch.bool)
        for i, p in enumerate(positions):
            g = torch.Generator().manual_seed(derive_seed(config.seed, "sample", p))
            dt, db = draw_condition_dropout(1, config.text_dropout, config.box_dropout, g)
            drop_t[i], drop_b[i] = dt[0], db[0]
            timesteps[i] = torch.randint(0, num_t, (1,), generator=g)[0]
            noise[i] = torch.randn(latents.shape[1:], generator=g)
        noise = noise.to(device)
        timesteps = timesteps.to(device)
        boxes = batch["boxes"].to(device)
        masks = batch["mask"].to(device)
        weights = foreground_weights(boxes, masks, (h, w), config.fg_weight)
        prompts, masks = apply_condition_dropout(batch["prompt"], masks, drop_t, drop_b)
        names = [n for row in batch["category_names"] for n in row]
        N = boxes.shape[2]
        text = pipe.encode_prompts(prompts).to(device)
        cat = pipe.encode_categories(names).to(device).view(B, 1, N, -1).expand(B, F, N, -1)
        noisy = sched.add_noise(latents, noise, timesteps)
        if prediction == "epsilon":
            target = noise
        elif prediction == "v_prediction":
            target = sched.get_velocity(latents, noise, timesteps)
        else:  # "sample": the clean latents
            target = latents
        torch.manual_seed(derive_seed(config.seed, "forward", step, m, rank) % (2 ** 63))
        if stage1_frames_apart:
            x = noisy.permute(0, 2, 1, 3, 4).reshape(B * F, C, 1, h, w)
            pred = unet(x, timesteps.repeat_interleave(F), text.repeat_interleave(F, 0),
                        boxes=boxes.reshape(B * F, 1, N, 4), box_masks=masks.reshape(B * F, 1, N),
                        box_embeddings=cat.reshape(B * F, 1, N, -1), return_dict=False)[0]
            pred = pred.reshape(B, F, C, h, w).permute(0, 2, 1, 3, 4)
        else:
            pred = unet(noisy, timesteps, text, boxes=boxes, box_masks=masks, box_embeddings=cat,
                        return_dict=False)[0]
        return (weights * (pred.float() - target.float()) ** 2).mean()

    def save_checkpoint(step: int, seconds: float, samples: int) -> Path:
        root = out / "checkpoints"
        final = root / f"{_CHECKPOINT_PREFIX}{step:06d}"
        tmp = root / f".{final.name}.tmp"
        if main:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            tmp.mkdir()
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if main:
            if ema is not None:
                from safetensors.torch import save_file

                save_file(ema.state_dict(), str(tmp / _EMA_FILE))
            state = {"step": step, "seconds": seconds, "samples": samples, "world_size": world,
                     "ema_updates": ema.updates if ema is not None else 0, "recent_losses": list(recent),
                     "lr": lr_at(step - 1, config.lr, warmup, total, config.lr_schedule) if step else config.lr,
                     "config": config.resume_fields()}
            (tmp / _STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, final)
            if config.keep_checkpoints:
                done = sorted(p for p in root.iterdir() if p.name.startswith(_CHECKPOINT_PREFIX)
                              and (p / _STATE_FILE).is_file())
                for old in done[:-config.keep_checkpoints]:
                    shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final

    def export(step: int, seconds: float, samples: int, final_loss: float | None) -> Path:
        target = out / "model"
        if main:
            from ..pipeline import TrackDiffusionPipeline

            with (ema.applied_to(raw_unet) if ema is not None else contextlib.nullcontext()):
                export_pipe = TrackDiffusionPipeline(unet=raw_unet, vae=vae.to(torch.float32),
                                                     text_encoder=text_encoder.to(torch.float32),
                                                     tokenizer=pipe.tokenizer, scheduler=pipe.scheduler)
                export_pipe.tdgen_config = _export_info(config, setup, summary, step, seconds, samples, final_loss,
                                                        len(trainable), ema is not None)
                export_pipe.save_pretrained(target, overwrite=True)
            vae.to(vae_dtype)
            text_encoder.to(frozen_dtype)
        accelerator.wait_for_everyone()
        return target

    # ---- train
    report({"event": "start", "step": start_step, "total": total, "clips": len(ds),
            "trainable": sum(p.numel() for _, p in named_trainable)})
    losses: list[tuple[int, float]] = []
    window: list[float] = []
    seconds = seconds_before
    samples = samples_before
    step = start_step
    t_step = time.perf_counter()
    micro_losses: list[torch.Tensor] = []
    log_fh = open(log_file, "a", encoding="utf-8") if main else None
    model_dir: Path | None = None
    try:
        for g, batch in enumerate(loader, start=start_step * accum):
            step, m = divmod(g, accum)
            lr = lr_at(step, config.lr, warmup, total, config.lr_schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with accelerator.accumulate(unet):
                loss = run_micro(batch, step, m)
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            micro_losses.append(loss.detach())
            if m != accum - 1:
                continue
            if ema is not None:
                ema.update(named_trainable)
            step_loss = torch.stack(micro_losses).mean()
            micro_losses = []
            if world > 1:
                step_loss = accelerator.gather(step_loss[None]).mean()
            value = float(step_loss)
            if not math.isfinite(value):
                raise TrainingError(f"training diverged: loss {value} at step {step + 1} (resume from the last "
                                    "checkpoint with a lower --lr, or use --mixed-precision no)")
            now = time.perf_counter()
            dt = now - t_step
            t_step = now
            seconds += dt
            samples += global_batch
            step += 1
            losses.append((step, value))
            recent.append(value)
            window.append(value)
            if main:
                if step % config.log_every == 0 or step == end_step:
                    rec = {"step": step, "loss": float(np.mean(window)), "lr": lr, "seconds": round(dt, 4),
                           "elapsed": round(seconds, 3), "samples_per_s": round(global_batch / dt, 4) if dt else None,
                           "epoch": round(samples / len(ds), 4)}
                    if len(window) > 1:
                        rec["steps_averaged"] = len(window)
                    if grad_norm is not None:
                        rec["grad_norm"] = float(grad_norm)
                    log_fh.write(json.dumps(rec) + "\n")
                    log_fh.flush()
                    window = []
            report({"event": "step", "step": step, "total": total, "loss": value, "lr": lr,
                    "samples_per_s": global_batch / dt if dt else None})
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                checkpoints.append(save_checkpoint(step, seconds, samples))
                report({"event": "checkpoint", "path": str(checkpoints[-1])})
            if config.export_every and step % config.export_every == 0 and step < total:
                model_dir = export(step, seconds, samples, float(np.mean(recent)) if recent else None)
                report({"event": "export", "path": str(model_dir)})
            t_step = time.perf_counter()
    finally:
        if log_fh is not None:
            log_fh.close()

    final_loss = float(np.mean(recent)) if recent else None
    if step < total:
        # Stopped early on purpose (stop_after): leave a checkpoint to resume from.
        if not checkpoints or checkpoints[-1].name != f"{_CHECKPOINT_PREFIX}{step:06d}":
            if step > start_step:
                checkpoints.append(save_checkpoint(step, seconds, samples))
                report({"event": "checkpoint", "path": str(checkpoints[-1])})
    else:
        model_dir = export(step, seconds, samples, final_loss)
        report({"event": "export", "path": str(model_dir)})
    accelerator.end_training()
    return TrainResult(out=out, model_dir=model_dir, steps=step, start_step=start_step, final_loss=final_loss,
                       losses=losses, seconds=seconds, samples=samples, checkpoints=checkpoints,
                       resumed_from=resume_from, trainable_parameters=sum(p.numel() for _, p in named_trainable),
                       log_file=log_file, main_process=main)


def _export_info(config: TrainConfig, setup: _Setup, summary: DataSummary, step: int, seconds: float, samples: int,
                 final_loss: float | None, n_trainable_tensors: int, used_ema: bool) -> dict[str, Any]:
    from .. import __version__

    info = dict(setup.base_info)
    history = list(info.pop("training_history", []))
    if "training" in info:
        history.append(info.pop("training"))
    info.update({
        "model_id": f"{Path(config.out).name}-step{step}",
        "resolution": list(setup.resolution),
        "frames": setup.frames,
        "slots": setup.slots,
        "prompt_template": setup.prompt_template,
        "weights": {"kind": "trained", "ema": used_ema},
        "created_by": "tdgen train",
    })
    info["training"] = {
        "command": config.command,
        "steps": step,
        "target_steps": config.steps,
        "stage": config.stage,
        "trainable": STAGE_GROUPS[config.stage],
        "trainable_tensors": n_trainable_tensors,
        "started_from": setup.started_from,
        "data": asdict(summary),
        "seconds": round(seconds, 1),
        "samples": samples,
        "final_loss": final_loss,
        "batch_size": config.batch_size,
        "grad_accum": config.grad_accum,
        "lr": config.lr,
        "lr_schedule": config.lr_schedule,
        "ema_decay": config.ema_decay if used_ema else None,
        "fg_weight": config.fg_weight,
        "text_dropout": config.text_dropout,
        "box_dropout": config.box_dropout,
        "mixed_precision": config.mixed_precision,
        "hflip": config.hflip,
        "seed": config.seed,
        "tdgen_version": __version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if history:
        info["training_history"] = history
    return info
