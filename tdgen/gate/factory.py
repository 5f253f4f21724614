"""Pick a detector backend from the command line's ``--detector`` / ``--detections`` values."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .detector import Detector

__all__ = ["detector_choice", "make_detector"]


def _check_options(kind: str, cls: type, options: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    params = inspect.signature(cls.__init__).parameters.values()
    known = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in skip]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(f"{kind} detector: unknown option(s) {', '.join(unknown)} "
                         f"(known: {', '.join(known) or 'none'})")


def detector_choice(detector: str | None, detections: Path | None,
                    default: str | None = None) -> tuple[str | None, Path | None]:
    """``(detector, detections)`` with exactly one given (``default`` as the detector when neither
    is); a one-line :class:`UsageError` otherwise. Checked before a backend loads."""
    if detector is None and detections is None and default is not None:
        detector = default
    if (detector is None) == (detections is None):
        raise UsageError("give one of --detector (shapes or a model.onnx) and --detections DIR"
                         + (", not both" if detector is not None else ""))
    return detector, None if detections is None else Path(detections)


def make_detector(detector: str | None, detections: Path | None, **options: Any) -> Detector:
    """The backend for ``--detector NAME_OR_FILE`` or ``--detections DIR`` (exactly one of them).

    ``detector`` is ``shapes`` or the path of an ``.onnx`` file; ``detections`` a directory of
    det.txt files. ``options`` go to the backend's constructor. A bad combination, an unknown
    name or option, or a path that does not exist is a one-line :class:`UsageError`.
    """
    detector, detections = detector_choice(detector, detections)
    if detections is not None:
        from .precomputed import PrecomputedDetections

        if options:
            _check_options("detections", PrecomputedDetections, options)
        return PrecomputedDetections(Path(detections))
    assert detector is not None
    if detector == "shapes":
        from .shapes import ShapesDetector

        return ShapesDetector(**options)
    path = Path(detector)
    if path.suffix.lower() == ".onnx":
        if not path.exists():
            raise UsageError(f"--detector {detector}: no such file")
        if not path.is_file():
            raise UsageError(f"--detector {detector}: not a file")
        from .onnx_yolox import OnnxYoloxDetector

        _check_options("onnx", OnnxYoloxDetector, options)
        return OnnxYoloxDetector(path, **options)
    if path.exists():
        raise UsageError(f"--detector {detector}: not an .onnx file (the onnx backend reads ONNX models)")
    raise UsageError(f"--detector {detector!r}: unknown detector (use shapes, or the path of a model .onnx file)")
