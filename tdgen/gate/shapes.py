"""The ``shapes`` detector backend: the shapes domain's classical detector behind the gate's interface.

Each clip's background is estimated from the clip itself (the per-pixel median over its frames,
as ``tdgen eval`` does for generated clips), then :func:`tdgen.evaluate.detect.detect_shapes`
runs on every frame. Its ``x, y, w, h`` boxes (COCO pixel convention) become ``x1, y1, x2, y2``
with ``x2 = x + w``; scores are its contrast-and-fill scores; there are no classes (``-1``).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..errors import UsageError
from .detector import FrameDetections

__all__ = ["ShapesDetector", "shapes_options"]


def shapes_options() -> tuple[str, ...]:
    """The tuning options :func:`tdgen.evaluate.detect.detect_shapes` takes (``threshold``, ...)."""
    from ..evaluate.detect import detect_shapes

    params = inspect.signature(detect_shapes).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


class ShapesDetector:
    """Background difference + colour segmentation (:mod:`tdgen.evaluate.detect`), per clip.

    ``options`` go to :func:`~tdgen.evaluate.detect.detect_shapes` (``threshold``,
    ``min_area``, ...); an unknown one is a :class:`UsageError`.
    """

    name = "shapes"

    def __init__(self, **options: Any):
        known = shapes_options()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UsageError(f"shapes detector: unknown option(s) {', '.join(unknown)} (known: {', '.join(known)})")
        self.options = dict(options)

    def detect_clip(self, frames: np.ndarray, clip_id: str) -> list[FrameDetections]:
        from ..evaluate.detect import detect_clip

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        dets, _ = detect_clip(frames, **self.options)
        out = []
        for d in dets:
            xyxy = np.array(d.boxes, np.float64).reshape(-1, 4)
            xyxy[:, 2:] += xyxy[:, :2]
            out.append(FrameDetections(xyxy, np.asarray(d.scores, np.float64).reshape(-1),
                                       np.full(len(xyxy), -1, np.int64)))
        return out
