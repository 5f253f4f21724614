"""Planned clips -> the conditioning arrays the pipeline and the training loop take.

The one place where a :class:`~tdgen.tracks.clips.Clip` (annotation side) becomes arrays (model
side): ``boxes`` ``(F, N, 4)`` float32 normalised ``x0, y0, x1, y1``, zero where a slot is absent;
``mask`` ``(F, N)`` float32, 1 where slot ``n`` is present in frame ``f``; ``category_names`` (N,)
with ``""`` for unused slots. :func:`clip_arrays` does one clip (optionally mirrored, as training's
horizontal flip), :func:`clip_batch` stacks clips for
:class:`~tdgen.pipeline.TrackDiffusionPipeline`::

    frames = pipe(**clip_batch(clips).as_kwargs(), prompts=prompts, seeds=seeds)

numpy only: no torch, so the annotation side can use it without the model installed. This is
the one place annotations meet the model (docs/architecture.md, "Data flow").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # the adapter reads a Clip's fields; it needs no code of tdgen.tracks
    from .tracks.clips import Clip

__all__ = ["ClipBatch", "clip_arrays", "clip_batch", "flip_boxes"]


@dataclass(frozen=True)
class ClipBatch:
    """B clips' conditioning, stacked: ``boxes`` (B, F, N, 4) float32, ``masks`` (B, F, N)
    float32, ``category_names`` (B, N) object (``""`` for unused slots)."""

    boxes: np.ndarray
    masks: np.ndarray
    category_names: np.ndarray

    def as_kwargs(self) -> dict[str, Any]:
        """``boxes``, ``masks`` and ``category_names`` as keyword arguments of the pipeline."""
        return {"boxes": self.boxes, "masks": self.masks, "category_names": self.category_names}

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def flip_boxes(boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised xyxy boxes of the horizontally mirrored frame (absent slots stay all-zero)."""
    out = boxes.copy()
    out[..., 0] = 1.0 - boxes[..., 2]
    out[..., 2] = 1.0 - boxes[..., 0]
    out[mask <= 0] = 0.0
    return out


def clip_arrays(clip: "Clip", *, num_slots: int | None = None,
                flip: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One clip's ``boxes`` (F, N, 4), ``mask`` (F, N) (fresh float32 arrays) and its N category
    names, slot order; ``N`` is ``num_slots`` (default: the clip's own ``num_slots``), padding
    with absent slots. ``flip`` mirrors the boxes horizontally (``x -> 1 - x``).

    Raises:
        ValueError: the clip uses more than ``num_slots`` slots.
    """
    n_slots = clip.num_slots if num_slots is None else int(num_slots)
    if clip.num_tracks > n_slots:
        raise ValueError(f"clip {clip.clip_id} uses {clip.num_tracks} slots, more than the batch's {n_slots}")
    if n_slots == clip.num_slots:
        boxes = clip.boxes.astype(np.float32, copy=True)
        mask = clip.mask.astype(np.float32, copy=True)
    else:
        n = min(clip.num_slots, n_slots)
        boxes = np.zeros((clip.num_frames, n_slots, 4), dtype=np.float32)
        mask = np.zeros((clip.num_frames, n_slots), dtype=np.float32)
        boxes[:, :n] = clip.boxes[:, :n]
        mask[:, :n] = clip.mask[:, :n]
    if flip:
        boxes = flip_boxes(boxes, mask)
    names = [""] * n_slots
    names[: clip.num_tracks] = [str(c) for c in clip.category_names]
    return boxes, mask, names


def clip_batch(clips: Sequence["Clip"], *, num_slots: int | None = None,
               flips: Sequence[bool] | None = None) -> ClipBatch:
    """Stack clips with the same number of frames into a :class:`ClipBatch`.

    ``num_slots``: N of the batch (default: the largest ``num_slots`` of the clips; clips with
    fewer are padded with absent slots). ``flips``: one flag per clip (default: none mirrored).

    Raises:
        ValueError: no clips, clips with different frame counts, a clip with more tracks than
            ``num_slots``, or ``flips`` of another length.
    """
    clips = list(clips)
    if not clips:
        raise ValueError("no clips to stack")
    frames = {c.num_frames for c in clips}
    if len(frames) > 1:
        raise ValueError(f"clips have different frame counts: {sorted(frames)}")
    if flips is not None and len(flips) != len(clips):
        raise ValueError(f"{len(flips)} flip flags for {len(clips)} clips")
    n_slots = int(num_slots) if num_slots is not None else max(c.num_slots for c in clips)
    parts = [clip_arrays(c, num_slots=n_slots, flip=bool(flips[i]) if flips is not None else False)
             for i, c in enumerate(clips)]
    names = np.empty((len(clips), n_slots), dtype=object)
    for i, (_, _, row) in enumerate(parts):
        names[i, :] = row
    return ClipBatch(boxes=np.stack([p[0] for p in parts]), masks=np.stack([p[1] for p in parts]),
                     category_names=names)
