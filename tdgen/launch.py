"""Where this process runs: its rank under a launcher, its device and its default dtype.

``torchrun`` and ``accelerate launch`` describe a process through ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``. This module is the only place in tdgen that reads them, so every command agrees on
what a launch is (synth shards by rank, train lets accelerate set up the process group, the CLI
shows progress only on rank 0) and a test can describe a launch by passing an ``environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

__all__ = ["Launch", "current_launch", "pick_device", "default_dtype"]


@dataclass(frozen=True)
class Launch:
    """This process's place in a launch: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def launched(self) -> bool:
        """True under a launcher with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 prints progress and summaries; the other ranks stay quiet."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int] | None:
        """``(rank, world_size)`` when launched with more than one process, else None."""
        return (self.rank, self.world_size) if self.launched else None


def _int(environ: Mapping[str, str], key: str, default: int) -> int | None:
    text = (environ.get(key) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        return None


def current_launch(environ: Mapping[str, str] | None = None) -> Launch:
    """The launch described by ``environ`` (default: this process's environment).

    A value that is not an integer counts as "not launched" (rank 0 of 1): a stray ``RANK=abc``
    left in a shell must not turn a plain run into a shard of an imaginary launch. Values that
    are integers but inconsistent (``RANK >= WORLD_SIZE``) are kept, for the caller to refuse.
    """
    env = os.environ if environ is None else environ
    world, rank = _int(env, "WORLD_SIZE", 1), _int(env, "RANK", 0)
    if world is None or rank is None:
        return Launch()
    local = _int(env, "LOCAL_RANK", 0)
    return Launch(rank=rank, world_size=world, local_rank=local if local is not None and local >= 0 else 0)


def pick_device(device: str | None = None, launch: Launch | None = None) -> str:
    """``device`` when given; else this process's GPU (``cuda:<local rank>``) when CUDA is there, else ``cpu``."""
    if device is not None:
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{(launch or current_launch()).local_rank}"
    return "cpu"


def default_dtype(device: str, dtype: str | None = None) -> str:
    """``dtype`` when given; else fp16 on a GPU and fp32 elsewhere (CPU half precision is slow)."""
    if dtype is not None:
        return dtype
    return "fp16" if device.startswith("cuda") else "fp32"
