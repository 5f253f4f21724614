"""Training TrackDiffusion on tracking data: datasets of clips, the training loop, ``tdgen train``.

* :mod:`tdgen.train.data`: :class:`ClipDataset` (clips + frames or cached latents), :class:`ClipOrder`
  (the seeded sample order), latent caching.
* :mod:`tdgen.train.loop`: :class:`TrainConfig`, :func:`train`, the pieces of the objective
  (foreground weights, condition dropout, stage parameter groups, EMA).
* :mod:`tdgen.cli.train`: the ``tdgen train`` command.

Importing this package does not import torch-heavy modules until they are used.
"""

from __future__ import annotations

__all__ = ["TrainConfig", "TrainResult", "train", "ClipDataset", "STAGES", "STAGE_GROUPS"]


def __getattr__(name: str):
    if name in ("TrainConfig", "TrainResult", "train", "STAGES", "STAGE_GROUPS"):
        from . import loop

        return getattr(loop, name)
    if name == "ClipDataset":
        from .data import ClipDataset

        return ClipDataset
    raise AttributeError(name)
