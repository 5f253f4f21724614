"""The settings of a ``tdgen synth`` run, and the checks they pass before anything happens.

:func:`validate_options` refuses a bad value with one line naming its flag, before anything is
read, loaded or written; :func:`options_with_model` fills what the flags leave open from the
model's record (clip length, slots, prompt template).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from ..errors import UsageError
from ..launch import current_launch

__all__ = ["SynthOptions", "SynthWarning", "validate_options", "options_with_model", "parse_shard",
           "shard_from_env", "run_shard", "MAX_STEPS"]

MAX_STEPS = 1000  # the schedulers' training timesteps: more sampler steps than that cannot be taken


@dataclass
class SynthOptions:
    ann: Path
    out: Path
    frames: int | None = 16  # None: the model's (see options_with_model)
    stride: int | None = None
    step: int = 1
    slots: int | None = 20  # None: the model's
    overflow: str = "longest"
    min_tracks: int = 1
    videos: tuple[str, ...] = ()
    max_clips: int | None = None
    seed: int = 0
    batch_size: int = 4
    steps: int = 50
    guidance: float = 5.0
    guidance_kind: str = "cfg"
    prompt_template: str | None = "a video of {categories}"  # None: the model's
    captions: Path | None = None
    out_size: tuple[int, int] | Literal["source"] | None = None  # (W, H), or each source video's own size
    image_format: str = "png"
    quality: int = 95
    flavor: str = "mmdet"
    mot: bool = False
    preview: bool = False
    overwrite: bool = False
    shard: tuple[int, int] | None = None  # (k, n)
    drop_boxes: bool = False  # ablation: generate with every box dropped
    classes: tuple[str, ...] | None = None  # categories to generate (default: the training targets)
    min_conf: float | None = None  # boxes below this conf are not generated (default: 1 for MOT data)
    # boxes that are not generated (ignore rows, crowds, non-target classes): left out ("drop") or
    # written as iscrowd=1 ignore regions ("crowd"); they never take a slot either way
    ignore_as: str = "drop"
    # the gate's settings (detector, policy, retries) when synth gates its clips, recorded in the
    # settings record so that a resumed run gates the same way; None: no gate
    gate: dict[str, Any] | None = None


class SynthWarning(UserWarning):
    """Something the user should know about a synth plan (shown as one ``warning:`` line)."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard {text}: need 0 <= K < N")
    return k, n


def _int_in(flag: str, value: Any, lo: int, hi: int | None = None, hi_text: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{flag} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        want = f"in {lo}..{hi_text or hi}" if hi is not None else f"at least {lo}"
        raise UsageError(f"{flag} {value}: must be {want}")


def validate_options(opts: SynthOptions) -> None:
    """Refuse bad settings with a one-line :class:`UsageError` naming the flag.

    Called before anything is read, loaded or written, so a refused command leaves no trace and
    the corrected one just works.
    """
    if opts.frames is not None:  # None: the model's, checked when it is known
        _int_in("--frames", opts.frames, 1)
    if opts.stride is not None:
        _int_in("--stride", opts.stride, 1)
    _int_in("--step", opts.step, 1)
    if opts.slots is not None:
        _int_in("--slots", opts.slots, 1)
    if opts.overflow not in ("longest", "largest", "split"):
        raise UsageError(f"--overflow must be longest, largest or split, got {opts.overflow!r}")
    _int_in("--min-tracks", opts.min_tracks, 0)
    if opts.max_clips is not None:
        _int_in("--max-clips", opts.max_clips, 1)
    _int_in("--seed", opts.seed, 0, (1 << 63) - 1, "2**63-1")
    _int_in("--batch-size", opts.batch_size, 1)
    if opts.min_conf is not None and (isinstance(opts.min_conf, bool) or not math.isfinite(opts.min_conf)):
        raise UsageError(f"--min-conf must be a finite number, got {opts.min_conf!r}")
    _int_in("--steps", opts.steps, 1, MAX_STEPS)
    g = opts.guidance
    if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) or not math.isfinite(g) or g < 0:
        raise UsageError(f"--cfg {g}: must be a finite number >= 0 (1 = no guidance)")
    if opts.guidance_kind not in ("cfg", "rescaled"):
        raise UsageError(f"--guidance-kind must be cfg or rescaled, got {opts.guidance_kind!r}")
    if opts.image_format not in ("png", "jpg", "jpeg"):
        raise UsageError(f"--image-format must be png or jpg, got {opts.image_format!r}")
    # the value only matters for jpg, but an impossible one is a mistake whatever the format
    _int_in("--quality", opts.quality, 1, 100)
    if opts.flavor not in ("mmdet", "bytetrack"):
        raise UsageError(f"--flavor must be mmdet or bytetrack, got {opts.flavor!r}")
    if opts.out_size is not None and opts.out_size != "source":
        if len(opts.out_size) != 2:
            raise UsageError(f"--out-size must be (width, height), got {opts.out_size!r}")
        for v in opts.out_size:
            _int_in("--out-size", v, 8, 16384)
    if opts.shard is not None:
        _check_shard(opts.shard, "--shard")
    if opts.ignore_as not in ("drop", "crowd"):
        raise UsageError(f"--ignore-as must be drop or crowd, got {opts.ignore_as!r}")
    if any(not isinstance(v, str) or not v for v in opts.videos):
        raise UsageError("--videos: names must be non-empty")


def _check_shard(shard: tuple[int, int], source: str) -> None:
    try:
        k, n = shard
        ok = all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in (k, n)) and 0 <= k < n
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"{source} {shard!r}: need 0 <= K < N")


def shard_from_env() -> tuple[int, int] | None:
    """(rank, world size) when launched by ``torchrun`` or ``accelerate launch`` with > 1 process."""
    return current_launch().shard


def run_shard(opts: SynthOptions) -> tuple[int, int] | None:
    """The shard this process generates: ``--shard``, else the launcher's rank, else None (all)."""
    shard = opts.shard or shard_from_env()
    if shard is not None:
        _check_shard(shard, "--shard" if opts.shard else "RANK/WORLD_SIZE")
    return shard


def options_with_model(opts: SynthOptions, model: Mapping[str, Any]) -> SynthOptions:
    """``opts`` with the fields left None (frames, slots, prompt template) taken from ``model``
    (:func:`tdgen.modeldir.model_defaults`' keys ``frames``, ``slots``, ``prompt_template``)."""
    return replace(opts, frames=opts.frames if opts.frames is not None else int(model["frames"]),
                   slots=opts.slots if opts.slots is not None else int(model["slots"]),
                   prompt_template=opts.prompt_template if opts.prompt_template is not None
                   else str(model["prompt_template"]))
