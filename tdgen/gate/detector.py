"""What the gate needs from a detector: frames in, boxes with scores (and classes) out.

A backend is any object with a ``name`` and ``detect_clip(frames, clip_id)``; tdgen ships three
(:func:`tdgen.gate.make_detector` picks one from a ``--detector``/``--detections`` value):

- ``shapes``: the classical detector of the shapes domain (background difference + colour
  segmentation, :mod:`tdgen.evaluate.detect`);
- ``onnx``: a user's ONNX detector run with onnxruntime, with YOLOX's pre- and post-processing
  as ByteTrack publishes it (letterbox resize, grid decoding, NMS);
- ``detections``: detections a user computed beforehand, MOT ``det.txt`` files per clip.

Boxes are ``x1, y1, x2, y2`` in pixels of the frames given (float64), scores in [0, 1], classes
integer ids (``-1`` when the detector has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

__all__ = ["FrameDetections", "Detector"]


@dataclass(frozen=True)
class FrameDetections:
    """The detections of one frame, one array per field (K rows)."""

    boxes: np.ndarray  # (K, 4) float64 xyxy pixels
    scores: np.ndarray  # (K,) float64
    classes: np.ndarray  # (K,) int64, -1 = unknown

    def __post_init__(self) -> None:
        k = self.boxes.shape[0]
        if self.boxes.shape != (k, 4) or self.scores.shape != (k,) or self.classes.shape != (k,):
            raise ValueError(f"detections: boxes {self.boxes.shape}, scores {self.scores.shape} and classes "
                             f"{self.classes.shape} do not describe the same K boxes")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> "FrameDetections":
        return FrameDetections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))

    @staticmethod
    def from_arrays(boxes: Sequence, scores: Sequence, classes: Sequence | None = None) -> "FrameDetections":
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        s = np.asarray(scores, np.float64).reshape(-1)
        c = np.full(len(b), -1, np.int64) if classes is None else np.asarray(classes, np.int64).reshape(-1)
        return FrameDetections(b, s, c)

    def keep(self, mask: np.ndarray) -> "FrameDetections":
        return FrameDetections(self.boxes[mask], self.scores[mask], self.classes[mask])


class Detector(Protocol):
    """A detector backend."""

    name: str

    def detect_clip(self, frames: np.ndarray, clip_id: str) -> list[FrameDetections]:
        """One :class:`FrameDetections` per frame of ``frames`` (T, H, W, 3) RGB uint8.

        ``clip_id`` names the clip (backends reading precomputed detections look it up by it).
        Raises a :class:`tdgen.errors.TdgenError` subclass on bad input (one line, exit 2).
        """
