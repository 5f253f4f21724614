"""The model a training run exports: ``OUT/model/``, a complete model directory with the EMA weights.

Its ``tdgen.json`` is the starting model's, updated with what the run trained on and a
``training`` record (command, steps, stage, data, losses, settings); the starting model's own
``training`` record, if any, moves to ``training_history``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch

from .. import __version__
from ..pipeline import TrackDiffusionPipeline
from .config import TrainConfig
from .data import DataSummary
from .ema import EMA
from .stages import STAGE_GROUPS
from .starting_point import StartingPoint

__all__ = ["export_info", "save_model"]


def export_info(config: TrainConfig, start: StartingPoint, summary: DataSummary, *, step: int, seconds: float,
                samples: int, final_loss: float | None, trainable_tensors: int, used_ema: bool) -> dict[str, Any]:
    """The ``tdgen.json`` of the model exported after ``step``: the starting model's record with
    the clip geometry and prompt template trained on, and a ``training`` entry saying how (an
    earlier ``training`` entry moves to ``training_history``)."""
    info = dict(start.base_info)
    history = list(info.pop("training_history", []))
    if "training" in info:
        history.append(info.pop("training"))
    info.update({
        "model_id": f"{Path(config.out).name}-step{step}",
        "resolution": list(start.resolution),
        "frames": start.frames,
        "slots": start.slots,
        "prompt_template": start.prompt_template,
        "weights": {"kind": "trained", "ema": used_ema},
        "created_by": "tdgen train",
    })
    info["training"] = {
        "command": config.command,
        "steps": step,
        "target_steps": config.steps,
        "stage": config.stage,
        "trainable": STAGE_GROUPS[config.stage],
        "trainable_tensors": trainable_tensors,
        "started_from": start.started_from,
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


def save_model(target: Path, *, unet: torch.nn.Module, vae: torch.nn.Module, text_encoder: torch.nn.Module,
               tokenizer: Any, scheduler: Any, ema: EMA | None, info: Mapping[str, Any]) -> Path:
    """Write a model directory at ``target`` (replacing one there) with ``unet``'s EMA values when
    ``ema`` is given (the UNet's own parameters are restored afterwards)."""
    with (ema.applied_to(unet) if ema is not None else contextlib.nullcontext()):
        pipe = TrackDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                      scheduler=scheduler)
        pipe.tdgen_config = dict(info)
        pipe.save_pretrained(target, overwrite=True)
    return target
