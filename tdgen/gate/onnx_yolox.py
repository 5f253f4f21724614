"""The ``onnx`` detector backend: a user's YOLOX-layout ONNX model run with onnxruntime.

The model takes one image ``(1, 3, H, W)`` (fixed ``H, W``; a symbolic batch is run with 1) and
gives ``(1, N, 5 + C)`` rows, raw grid outputs or already decoded; the pre- and post-processing
are those of ByteTrack (:mod:`tdgen.gate.yolox`). onnxruntime is imported only when a model is
opened (``pip install tdgen[gate]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FormatError, UsageError
from .detector import FrameDetections
from .yolox import BYTETRACK, STRIDES, YOLOX, Preprocess, decode_grid, grid_cells, looks_decoded, postprocess, \
    prepare_input

__all__ = ["OnnxYoloxDetector", "PREPROCESS_PRESETS"]

#: ``preprocess=`` names: ``bytetrack`` (the default) and ``yolox`` (see :mod:`tdgen.gate.yolox`).
PREPROCESS_PRESETS: dict[str, Preprocess] = {"bytetrack": BYTETRACK, "yolox": YOLOX}

_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("the onnx detector needs onnxruntime (pip install 'tdgen[gate]')") from None
    return onnxruntime


def _pick_providers(ort, providers: Sequence[Any] | None, device: str) -> list[Any]:
    """``providers`` as given (each must be available), else CUDA first when ``device`` asks for
    it and onnxruntime has it, with the CPU behind it; the CPU alone otherwise."""
    available = ort.get_available_providers()
    if providers is not None:
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        missing = [n for n in names if n not in available]
        if missing or not names:
            raise UsageError(f"onnx detector: provider(s) {', '.join(missing) or '(none)'} not available "
                             f"(this onnxruntime has: {', '.join(available)})")
        return list(providers)
    kind, _, index = device.partition(":")
    if kind == "cuda" and "CUDAExecutionProvider" in available:
        opts = {"device_id": int(index)} if index.isdigit() else {}
        return [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _dim(d: Any) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


class OnnxYoloxDetector:
    """Runs ``path`` with onnxruntime on every frame; see :mod:`tdgen.gate.yolox` for the method.

    Options: ``providers`` (onnxruntime provider names, used as given) or ``device``
    (``"cuda"``/``"cuda:K"`` asks for the CUDA provider when onnxruntime has it, else the CPU);
    ``decoded``: whether the output is already decoded, None to tell from the first output
    (:func:`tdgen.gate.yolox.looks_decoded`; the answer is then kept in ``decoded``); ``score_threshold``; ``nms_threshold`` (IoU);
    ``class_agnostic`` NMS; ``preprocess`` (``"bytetrack"``, ``"yolox"`` or a
    :class:`~tdgen.gate.yolox.Preprocess`); ``strides`` of the grid; ``threads`` (onnxruntime's
    intra-op threads, its default when None).

    A missing file is a :class:`UsageError`; a file onnxruntime cannot load, or a model whose
    input is not ``(1, 3, H, W)`` with fixed ``H, W`` or whose output is not ``(1, N, >= 6)``,
    a :class:`FormatError` naming the file (one line, exit 2).
    """

    name = "onnx"

    def __init__(self, path: str | Path, *, providers: Sequence[Any] | None = None, device: str = "cpu",
                 decoded: bool | None = None, score_threshold: float = 0.1, nms_threshold: float = 0.7,
                 class_agnostic: bool = True, preprocess: str | Preprocess = "bytetrack",
                 strides: Sequence[int] = STRIDES, threads: int | None = None):
        self.path = Path(path)
        if isinstance(preprocess, str):
            if preprocess not in PREPROCESS_PRESETS:
                raise UsageError(f"onnx detector: unknown preprocess {preprocess!r} "
                                 f"(available: {', '.join(PREPROCESS_PRESETS)})")
            preprocess = PREPROCESS_PRESETS[preprocess]
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= nms_threshold <= 1.0:
            raise UsageError(f"onnx detector: score_threshold {score_threshold} and nms_threshold {nms_threshold} "
                             "must lie in [0, 1]")
        if not strides or any(int(s) <= 0 for s in strides):
            raise UsageError(f"onnx detector: strides {tuple(strides)} must be positive integers")
        self.preprocess = preprocess
        self.decoded = decoded
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.class_agnostic = bool(class_agnostic)
        self.strides = tuple(int(s) for s in strides)
        if not self.path.is_file():
            raise UsageError(f"--detector {self.path}: no such file")
        ort = _ort()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: library code keeps the terminal quiet
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        chosen = _pick_providers(ort, providers, device)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=chosen)
        except Exception as e:  # onnxruntime raises several unrelated types for a bad file
            raise FormatError(self.path, None, f"not an ONNX model ({_one_line(e)})") from None
        self.providers: list[str] = list(self.session.get_providers())
        self.input_hw, self._input_name, self._input_dtype = self._check_input()
        self._check_output()

    def _check_input(self) -> tuple[tuple[int, int], str, type]:
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise FormatError(self.path, None, f"the model has {len(inputs)} inputs; a YOLOX detector has one "
                                               "image input (1, 3, H, W)")
        i = inputs[0]
        shape = list(i.shape)
        ok = (len(shape) == 4 and (shape[0] == 1 or _dim(shape[0]) is None) and shape[1] == 3
              and _dim(shape[2]) is not None and _dim(shape[3]) is not None)
        if not ok:
            raise FormatError(self.path, None, f"input {i.name!r} is {tuple(shape)}, not (1, 3, H, W) with a fixed "
                                               "height and width")
        if i.type not in _INPUT_TYPES:
            raise FormatError(self.path, None, f"input {i.name!r} is {i.type}, not a float tensor")
        return (int(shape[2]), int(shape[3])), i.name, _INPUT_TYPES[i.type]

    def _check_output(self) -> None:
        o = self.session.get_outputs()[0]
        shape = list(o.shape or ())
        if not shape:  # onnxruntime knows nothing about it (not even its rank): checked once it runs
            return
        bad = (len(shape) != 3 or (isinstance(shape[0], int) and shape[0] != 1)
               or (isinstance(shape[2], int) and shape[2] < 6))
        if bad:
            self._bad_output(tuple(shape))

    def _bad_output(self, shape: tuple) -> None:
        raise FormatError(self.path, None, f"output {tuple(shape)} is not (1, N, 5 + classes) with at least one "
                                           "class (a YOLOX detector's layout)")

    def _rows(self, x: np.ndarray) -> np.ndarray:
        """The model's ``(N, 5 + C)`` output rows for one input."""
        try:
            out = self.session.run(None, {self._input_name: x.astype(self._input_dtype, copy=False)})[0]
        except Exception as e:
            raise FormatError(self.path, None, f"running the model failed ({_one_line(e)})") from None
        out = np.asarray(out)
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[2] < 6:
            self._bad_output(out.shape)
        return out[0].astype(np.float64)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """The rows in input pixels: decoded from the grid unless they already are.

        With ``decoded=None`` the layout is told from the first output seen and kept for the
        model's later frames, so that one model is never read two ways.
        """
        if self.decoded is None:
            self.decoded = looks_decoded(rows, self.input_hw, self.strides)
        if self.decoded:
            return rows
        cells = grid_cells(self.input_hw, self.strides)
        if rows.shape[0] != cells:
            h, w = self.input_hw
            raise FormatError(self.path, None, f"{rows.shape[0]} output rows are not the {cells} grid cells of a "
                                               f"{h}x{w} input with strides {self.strides} (decoded=False)")
        return decode_grid(rows, self.input_hw, self.strides)

    def detect_frame(self, frame: np.ndarray) -> FrameDetections:
        """The detections of one RGB uint8 frame ``(H, W, 3)``."""
        x, r = prepare_input(frame, self.input_hw, self.preprocess)
        return postprocess(self.decode(self._rows(x)), r, frame.shape[:2], score_threshold=self.score_threshold,
                           nms_threshold=self.nms_threshold, class_agnostic=self.class_agnostic)

    def detect_clip(self, frames: np.ndarray, clip_id: str) -> list[FrameDetections]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        return [self.detect_frame(f) for f in frames]
