"""Micro-batches of a training run: which samples each process sees at each micro-step.

Micro-batch ``g = step * grad_accum + micro`` of process ``rank`` (of ``world``) holds the global
sample positions ``(g * world + rank) * per_device ...`` (``per_device`` of them);
:class:`~tdgen.train.data.ClipOrder` turns each position into a clip and a flip. The batches are
therefore a function of ``(seed, step)``, which is what makes ``--resume`` exact.
"""

from __future__ import annotations

from typing import Any

import torch

from .data import ClipDataset, ClipOrder, collate_items

__all__ = ["MicroBatches", "micro_batch_loader"]


class MicroBatches(torch.utils.data.Dataset):
    """Micro-batch ``g`` (global index ``step * grad_accum + micro``) of this process."""

    def __init__(self, ds: ClipDataset, order: ClipOrder, per_device: int, world: int, rank: int) -> None:
        self.ds, self.order = ds, order
        self.per_device, self.world, self.rank = per_device, world, rank

    def positions(self, g: int) -> list[int]:
        """The global sample positions of micro-batch ``g`` on this process."""
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
    # Data workers share the machine with the training process: one thread each.
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    torch.set_num_threads(1)


def micro_batch_loader(batches: MicroBatches, first: int, end: int, *, num_workers: int = 0,
                       pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A loader of micro-batches ``first .. end - 1``, in order (``num_workers`` background
    processes read them ahead)."""
    return torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(first, end), num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None, pin_memory=pin_memory, persistent_workers=False)
