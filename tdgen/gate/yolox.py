"""YOLOX pre- and post-processing as ByteTrack publishes it, in plain numpy (no model runtime).

Pre-processing (:func:`letterbox`, :func:`prepare_input`): the frame is resized, keeping its
aspect, by ``r = min(H_in / h, W_in / w)`` to ``(int(w r), int(h r))`` (bilinear) and put at
the top-left of an ``H_in x W_in`` canvas filled with 114; then channels, scale and
normalisation follow a :class:`Preprocess`. ByteTrack's MOT detectors (``bytetrack_*.onnx``)
take RGB in [0, 1] normalised with the ImageNet mean and std (:data:`BYTETRACK`); the later
upstream YOLOX releases take BGR in [0, 255] unnormalised (:data:`YOLOX`).

Post-processing: the model's output ``(1, N, 5 + C)`` rows are ``cx, cy, w, h, objectness,
C class probabilities`` (objectness and classes already through a sigmoid). A model exported
for deployment gives the raw grid outputs (ByteTrack's ``tools/export_onnx.py`` does), which
:func:`decode_grid` turns into input pixels: for the cells of each stride (8, 16, 32; row by
row), ``xy = (out_xy + cell) * stride``, ``wh = exp(out_wh) * stride``. A row's score is
objectness times its best class probability; rows under the score threshold go, then
:func:`postprocess` maps the boxes back to the frame (divide by ``r``, clip), then :func:`nms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from ..imageops import opencv
from .detector import FrameDetections
from .score import iou_matrix

__all__ = ["BYTETRACK", "YOLOX", "Preprocess", "decode_grid", "grid_cells", "letterbox", "looks_decoded", "nms",
           "postprocess", "prepare_input"]

STRIDES: tuple[int, ...] = (8, 16, 32)
PAD_VALUE = 114.0


@dataclass(frozen=True)
class Preprocess:
    """How a letterboxed frame (RGB, 0..255) becomes the model's input.

    ``channels``: the order the model expects; ``scale``: multiplies the pixel values first;
    ``mean`` / ``std``: then ``(x - mean) / std`` per channel (in the model's channel order),
    or nothing when None.
    """

    channels: Literal["rgb", "bgr"] = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] | None = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] | None = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.channels not in ("rgb", "bgr"):
            raise ValueError(f"channels must be 'rgb' or 'bgr', got {self.channels!r}")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if v is not None and len(v) != 3:
                raise ValueError(f"{name} must have 3 values, got {v!r}")
        if self.std is not None and any(s == 0 for s in self.std):
            raise ValueError("std must not contain 0")


#: ByteTrack's MOT setting (its ``preproc`` with the demo's ``rgb_means`` and ``std``).
BYTETRACK = Preprocess()
#: Upstream YOLOX from release 0.2 on: BGR, 0..255, no normalisation.
YOLOX = Preprocess(channels="bgr", scale=1.0, mean=None, std=None)


def _cv2():
    return opencv("the ONNX detector")


def letterbox(frame: np.ndarray, input_hw: tuple[int, int], pad_value: float = PAD_VALUE
              ) -> tuple[np.ndarray, float]:
    """``(canvas, r)``: ``frame`` (h, w, 3) resized by ``r`` into the top-left of an
    ``input_hw`` float32 canvas filled with ``pad_value``."""
    h_in, w_in = input_hw
    h, w = frame.shape[:2]
    r = min(h_in / h, w_in / w)
    # int() truncates like ByteTrack does; at least one pixel for extreme aspects
    nw, nh = max(1, min(w_in, int(w * r))), max(1, min(h_in, int(h * r)))
    canvas = np.full((h_in, w_in, 3), pad_value, np.float32)
    if (nw, nh) == (w, h):
        canvas[:h, :w] = frame
    else:
        canvas[:nh, :nw] = _cv2().resize(frame, (nw, nh), interpolation=_cv2().INTER_LINEAR)
    return canvas, r


def prepare_input(frame: np.ndarray, input_hw: tuple[int, int], pre: Preprocess = BYTETRACK
                  ) -> tuple[np.ndarray, float]:
    """``(x, r)``: the model input ``(1, 3, H_in, W_in)`` float32 of one RGB uint8 frame."""
    canvas, r = letterbox(frame, input_hw)
    if pre.channels == "bgr":
        canvas = canvas[:, :, ::-1]
    x = canvas * np.float32(pre.scale)
    if pre.mean is not None:
        x = x - np.asarray(pre.mean, np.float32)
    if pre.std is not None:
        x = x / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32), r


def _grids(input_hw: tuple[int, int], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per output row: the cell ``(x, y)`` and its stride, strides in order, cells row by row."""
    cells, per_row = [], []
    for s in strides:
        gh, gw = input_hw[0] // s, input_hw[1] // s
        ys, xs = np.mgrid[0:gh, 0:gw]
        cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
        per_row.append(np.full(gh * gw, float(s)))
    return np.concatenate(cells).astype(np.float64), np.concatenate(per_row)


def grid_cells(input_hw: tuple[int, int], strides: Sequence[int] = STRIDES) -> int:
    """How many rows a raw (undecoded) output has for this input size and strides."""
    return sum((input_hw[0] // s) * (input_hw[1] // s) for s in strides)


def decode_grid(out: np.ndarray, input_hw: tuple[int, int], strides: Sequence[int] = STRIDES) -> np.ndarray:
    """Raw grid rows ``(N, 5 + C)`` -> decoded rows (``cx, cy, w, h`` in input pixels), a copy."""
    cell, stride = _grids(input_hw, strides)
    if out.shape[0] != cell.shape[0]:
        raise ValueError(f"{out.shape[0]} output rows, but an input of {input_hw[0]}x{input_hw[1]} with strides "
                         f"{tuple(strides)} has {cell.shape[0]} grid cells")
    dec = np.array(out, np.float64)
    dec[:, 0:2] = (dec[:, 0:2] + cell) * stride[:, None]
    with np.errstate(over="ignore"):  # a huge log-size is a huge box, not an error
        dec[:, 2:4] = np.exp(dec[:, 2:4]) * stride[:, None]
    return dec


def looks_decoded(out: np.ndarray, input_hw: tuple[int, int], strides: Sequence[int] = STRIDES) -> bool:
    """Whether output rows ``(N, 5 + C)`` are already decoded (input pixels) or raw grid outputs.

    1. ``N`` differs from the grid's cell count: decoded (raw rows cannot be decoded anyway);
    2. a negative width or height: raw (decoded sizes are ``exp(.) * stride > 0``);
    3. otherwise decoded when some centre lies beyond a quarter of the input's smaller side:
       decoded centres of a whole grid reach the far side of the input, while raw ones are
       offsets in cells, a few units at most.
    """
    if out.shape[0] != grid_cells(input_hw, strides):
        return True
    if out.shape[0] == 0 or np.any(out[:, 2:4] < 0):
        return False
    xy = np.abs(out[:, 0:2])
    xy = xy[np.isfinite(xy)]
    return bool(xy.size and xy.max() > min(input_hw) / 4)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.7,
        classes: np.ndarray | None = None) -> np.ndarray:
    """Greedy non-maximum suppression: the indices kept, best score first.

    A box is dropped when its IoU with a kept, better box exceeds ``iou_threshold``; with
    ``classes``, only boxes of the same class suppress each other. Ties keep the earlier box.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        over = iou_matrix(boxes[i][None], boxes[rest])[0] > iou_threshold
        if classes is not None:
            over &= classes[rest] == classes[i]
        order = rest[~over]
    return np.asarray(keep, np.int64)


def postprocess(decoded: np.ndarray, r: float, frame_hw: tuple[int, int], *, score_threshold: float = 0.1,
                nms_threshold: float = 0.7, class_agnostic: bool = True) -> FrameDetections:
    """Decoded rows ``(N, 5 + C)`` of one image -> the frame's detections.

    Score = objectness x best class probability (rows at or above ``score_threshold`` stay);
    boxes ``cx, cy, w, h`` become xyxy, map back to the frame by dividing by ``r`` and clipping
    to it (boxes left with no area go), then NMS (class-agnostic unless told).
    """
    decoded = np.asarray(decoded, np.float64)
    if decoded.ndim != 2 or decoded.shape[1] < 6:
        raise ValueError(f"decoded rows must be (N, 5 + classes), got {decoded.shape}")
    cls_prob = decoded[:, 5:]
    classes = cls_prob.argmax(1)
    scores = decoded[:, 4] * cls_prob[np.arange(len(decoded)), classes]
    ok = np.isfinite(scores) & (scores >= score_threshold) & np.all(np.isfinite(decoded[:, :4]), axis=1)
    rows, scores, classes = decoded[ok], scores[ok], classes[ok]
    half = rows[:, 2:4] / 2
    boxes = np.concatenate([rows[:, 0:2] - half, rows[:, 0:2] + half], 1) / r
    h, w = frame_hw
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
    real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, classes = boxes[real], scores[real], classes[real]
    # NMS on the boxes as reported (clipped): two boxes that differ only outside the frame are
    # one object here (ByteTrack suppresses before mapping back; scaling leaves IoU unchanged)
    keep = nms(boxes, scores, nms_threshold, None if class_agnostic else classes)
    return FrameDetections(boxes[keep], scores[keep], classes[keep].astype(np.int64))
