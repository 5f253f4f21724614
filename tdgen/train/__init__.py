"""Training TrackDiffusion on tracking data: datasets of clips and the training loop.

* :mod:`tdgen.train.data`: :class:`ClipDataset` (clips + frames or cached latents), :class:`ClipOrder`
  (the seeded sample order); frames are read by :mod:`~tdgen.train.frames`, latents encoded and
  cached by :mod:`~tdgen.train.latents`.
* :mod:`tdgen.train.loop`: :class:`TrainConfig`, :func:`train` and every public name of the loop;
  the run itself is :class:`~tdgen.train.trainer.Trainer`, built from :mod:`~tdgen.train.config`,
  :mod:`~tdgen.train.stages`, :mod:`~tdgen.train.objective`, :mod:`~tdgen.train.ema`,
  :mod:`~tdgen.train.checkpoints`, :mod:`~tdgen.train.batches`, :mod:`~tdgen.train.starting_point`
  and :mod:`~tdgen.train.export`.

The ``tdgen train`` command is in :mod:`tdgen.cli.train`.

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
