"""What a training run is asked to do (:class:`TrainConfig`, the ``tdgen train`` flags, with its
checks) and what it reports back (:class:`TrainResult`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TdgenError, UsageError
from ..prompts import load_captions, parse_template
from .stages import STAGES

__all__ = [
    "AUTOENCODERS",
    "LR_SCHEDULES",
    "MIXED_PRECISION",
    "PREDICTION_TYPES",
    "RESUME_FIELDS",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
]

MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULES = ("cosine", "constant")
AUTOENCODERS = ("model", "tiny-kl", "space-to-depth")
PREDICTION_TYPES = ("auto", "epsilon", "v_prediction", "sample")

# Fields that shape the loss curve: a checkpoint only resumes a run whose values are equal.
RESUME_FIELDS = (
    "ann", "images", "captions", "model", "init", "autoencoder", "batch_size", "frames", "slots",
    "resolution", "stride", "step", "min_tracks", "prompt_template", "hflip", "lr", "lr_schedule",
    "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "stage",
    "mixed_precision", "grad_accum", "ema_decay", "fg_weight", "text_dropout", "box_dropout", "seed",
    "cache_latents", "prediction_type", "gate_init",
)


class TrainingError(TdgenError):
    """Training cannot go on (the loss became NaN or infinite): exit 1 with one line."""


@dataclass
class TrainConfig:
    """Everything a training run needs (the ``tdgen train`` flags, :mod:`tdgen.cli.train`).

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
        def positive(name: str, value: Any) -> None:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")

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
        """The :data:`RESUME_FIELDS` as JSON values (paths as strings, tuples as lists)."""
        d = asdict(self)
        out = {}
        for k in RESUME_FIELDS:
            v = d[k]
            out[k] = str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
        return out


@dataclass
class TrainResult:
    """What :func:`tdgen.train.loop.train` did."""

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
        """The result as JSON values (paths as strings; ``main_process`` left out)."""
        d = asdict(self)
        for k in ("out", "model_dir", "resumed_from", "log_file"):
            d[k] = str(d[k]) if d[k] is not None else None
        d["checkpoints"] = [str(p) for p in self.checkpoints]
        d["losses"] = [[s, l] for s, l in self.losses]
        d.pop("main_process", None)
        return d
