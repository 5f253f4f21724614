"""Training checkpoints: where they live, how they are written and read back, and the log they resume.

A checkpoint is the folder ``OUT/checkpoints/step-NNNNNN/`` holding accelerate's state (model,
optimizer, RNG states), ``ema.safetensors`` (when the run keeps an EMA) and
``trainer_state.json`` (step, time, samples, recent losses and the settings that shape the loss
curve). It is written under a temporary name and renamed, so a folder with a
``trainer_state.json`` is complete; :func:`latest_checkpoint` only considers those.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from ..atomic import atomic_write_text, give_plain_modes
from ..errors import UsageError
from .config import RESUME_FIELDS
from .ema import EMA

__all__ = [
    "CHECKPOINT_PREFIX",
    "EMA_FILE",
    "STATE_FILE",
    "check_resumable",
    "checkpoint_name",
    "latest_checkpoint",
    "prune_checkpoints",
    "read_checkpoint_state",
    "restore_checkpoint",
    "save_checkpoint",
    "truncate_log",
]

CHECKPOINT_PREFIX = "step-"
STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.safetensors"


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint taken after optimizer step ``step``."""
    return f"{CHECKPOINT_PREFIX}{step:06d}"


def _complete(path: Path) -> bool:
    return path.name.startswith(CHECKPOINT_PREFIX) and (path / STATE_FILE).is_file()


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The complete checkpoint of the highest step under ``OUT/checkpoints`` (None if none)."""
    root = Path(out) / "checkpoints"
    best: tuple[int, Path] | None = None
    if not root.is_dir():
        return None
    for p in root.iterdir():
        if not _complete(p):
            continue
        try:
            s = int(p.name[len(CHECKPOINT_PREFIX):])
        except ValueError:
            continue
        if best is None or s > best[0]:
            best = (s, p)
    return best[1] if best else None


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints under ``root``."""
    done = sorted(p for p in root.iterdir() if _complete(p))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(accelerator: Any, root: Path, step: int, state: Mapping[str, Any], ema: EMA | None,
                    keep: int | None = None) -> Path:
    """Write the checkpoint of ``step`` under ``root`` on every process together; return its path.

    Every process saves its part of accelerate's state into a temporary folder; the main process
    then adds the EMA and ``state`` (as ``trainer_state.json``), renames the folder into place and,
    with ``keep``, deletes the older checkpoints beyond the ``keep`` newest.
    """
    main = accelerator.is_main_process
    final = root / checkpoint_name(step)
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

            save_file(ema.state_dict(), str(tmp / EMA_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(dict(state), indent=2) + "\n", encoding="utf-8")
        give_plain_modes(tmp)  # safetensors (the EMA, accelerate's model files) writes 0600
        os.replace(tmp, final)
        if keep:
            prune_checkpoints(root, keep)
    accelerator.wait_for_everyone()
    return final


def read_checkpoint_state(path: Path) -> dict[str, Any]:
    """The ``trainer_state.json`` of checkpoint ``path``."""
    return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))


def check_resumable(path: Path, state: Mapping[str, Any], fields: Mapping[str, Any], world: int) -> None:
    """Raise :class:`UsageError` unless a run with settings ``fields`` (its
    ``TrainConfig.resume_fields()``) on ``world`` processes can resume checkpoint ``path``."""
    saved = state.get("config", {})
    for k in RESUME_FIELDS:
        if k in saved and saved[k] != fields[k]:
            raise UsageError(f"--resume: {path} was made with {k}={saved[k]!r}, this run has "
                             f"{k}={fields[k]!r}; use the same settings (or another --out)")
    if int(state.get("world_size", world)) != world:
        raise UsageError(f"--resume: {path} was made with {state.get('world_size')} processes, "
                         f"this run has {world}; the data order depends on it")


def restore_checkpoint(accelerator: Any, path: Path, state: Mapping[str, Any], ema: EMA | None) -> None:
    """Load accelerate's state (model, optimizer, RNG states) and the EMA from checkpoint ``path``."""
    accelerator.load_state(str(path))
    if ema is not None:
        from safetensors.torch import load_file

        ema_file = path / EMA_FILE
        if not ema_file.is_file():
            raise UsageError(f"--resume: {path} has no {EMA_FILE} but this run uses EMA")
        ema.load_state_dict(load_file(str(ema_file)), int(state.get("ema_updates", 0)))


def truncate_log(path: Path, max_step: int) -> None:
    """Keep only the JSON lines of steps <= ``max_step`` (a resumed run rewrites the rest)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= max_step:
                keep.append(line)
        except (ValueError, AttributeError):
            continue
    atomic_write_text(path, "".join(line + "\n" for line in keep))
