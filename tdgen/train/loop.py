"""The TrackDiffusion training loop, built on accelerate: :func:`train` and the names around it.

This module is the front door; the run itself lives in :mod:`tdgen.train.trainer`, its parts in
:mod:`~tdgen.train.config` (settings and their checks), :mod:`~tdgen.train.stages` (what each
``--stage`` trains), :mod:`~tdgen.train.objective` (noise, targets, loss, condition dropout,
learning rate), :mod:`~tdgen.train.ema`, :mod:`~tdgen.train.checkpoints`,
:mod:`~tdgen.train.starting_point` (the model a run starts from) and :mod:`~tdgen.train.export`
(the model it writes).

One optimizer step:

1. Take ``batch_size`` clips per process and micro-step (``grad_accum`` micro-steps): frames ->
   latents with the frozen autoencoder (or from the latent cache), times its ``scaling_factor``.
2. Per clip, two independent condition-dropout draws: with ``text_dropout`` (0.1) the prompt
   becomes ``""``; with ``box_dropout`` (0.1) **every** box mask of the clip becomes 0. This is
   what classifier-free guidance's unconditional branch is at sampling time.
3. DDPM forward process with the model's training noise schedule (its ``scheduler`` config:
   ``num_train_timesteps``, betas, ``prediction_type``): ``t`` uniform in ``[0, T)``, Gaussian
   noise, ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``.
4. The UNet predicts ``eps`` (or ``v``, or the clean latents); the loss is the
   foreground-reweighted MSE of :func:`foreground_weights`: latent cells inside any box of the
   clip (in that frame) weigh ``fg_weight`` (2.0), the others 1, and the weights are divided by
   their mean over the whole micro-batch tensor (every process's part of it together, so ``n``
   processes of ``b`` clips train like one of ``n * b``). Weights come from the data's boxes,
   before box dropout, as in the published trainer.
5. AdamW (weight decay 1e-2) on the parameters of the chosen stage (:data:`STAGES`), linear
   warm-up then cosine (or constant) learning rate, gradient clipping, then an EMA of the trained
   parameters (the exported model uses the EMA weights).

Deliberate differences from the published trainer: latents are the autoencoder's deterministic
output (AutoencoderKL's posterior mean, not a sample), so cached and on-the-fly latents train
identically; stage 2 also trains ``null_track_feat``, which the published video stage leaves
frozen at its random initialisation; the foreground weights and dropout draws are vectorised or
seeded per sample instead of a Python loop and one shared generator; gradient clipping (1.0) and
the EMA are on by default (the published run had neither).

Determinism and ``resume``: every random choice is a function of ``(seed, global sample
position)`` or ``(seed, step)``: which clip and flip a position gets (:class:`~tdgen.train.data.ClipOrder`),
the dropout draws, ``t`` and the noise (one ``torch.Generator`` per sample), and the global torch
RNG is re-seeded from ``(seed, step, micro-step, process)`` before each forward (dropout inside
the UNet draws one mask per batch tensor from it, so only a model without dropout trains on ``n``
processes of ``b`` clips exactly as on one of ``n * b``, up to float rounding). A checkpoint
stores the model, optimizer, EMA, RNG states and step; resuming from it repeats the
uninterrupted run's loss curve exactly (same machine, thread count, library versions and, for
the data order, the same number of processes).

Layout of ``OUT``::

    OUT/train_log.jsonl                   one JSON line per logged step
    OUT/checkpoints/step-000500/          accelerate state + ema.safetensors + trainer_state.json
    OUT/model/                            the exported model directory (EMA weights)
    OUT/base-model/                       (--init without --model) the tiny text encoder/VAE start
    OUT/latent_cache/<key>/               (cache_latents) pre-encoded latents
"""

from __future__ import annotations

from .checkpoints import latest_checkpoint
from .config import (
    AUTOENCODERS,
    LR_SCHEDULES,
    MIXED_PRECISION,
    PREDICTION_TYPES,
    TrainConfig,
    TrainingError,
    TrainResult,
)
from .ema import EMA
from .objective import (
    apply_condition_dropout,
    choose_prediction_type,
    draw_condition_dropout,
    foreground_weights,
    lr_at,
    noise_scheduler_from,
    set_gates,
)
from .stages import STAGE_GROUPS, STAGES, is_trainable, set_trainable, trainable_parameter_names
from .trainer import Trainer, train

__all__ = [
    "AUTOENCODERS",
    "LR_SCHEDULES",
    "MIXED_PRECISION",
    "PREDICTION_TYPES",
    "STAGES",
    "STAGE_GROUPS",
    "EMA",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "apply_condition_dropout",
    "choose_prediction_type",
    "draw_condition_dropout",
    "foreground_weights",
    "is_trainable",
    "latest_checkpoint",
    "lr_at",
    "noise_scheduler_from",
    "set_gates",
    "set_trainable",
    "trainable_parameter_names",
    "train",
]
