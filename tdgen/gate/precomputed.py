"""The ``detections`` backend: detections a user computed beforehand, MOT ``det.txt`` per clip.

``DIR/<clip_id>.txt`` or ``DIR/<clip_id>/det/det.txt`` (a MOT sequence folder), not both. Each
line is ``frame, id, x, y, w, h, score[, ...]``: ``frame`` 1-based within the clip, ``id``
ignored (``-1`` in det.txt), ``x, y, w, h`` in pixels of the generated frames (``x2 = x + w``),
further columns ignored (det.txt's world coordinates); there are no classes (``-1``). Blank
lines are skipped. A malformed line is an :class:`~tdgen.errors.AnnotationError` naming the
file and the line (exit 2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import AnnotationError, UsageError
from .detector import FrameDetections

__all__ = ["PrecomputedDetections", "detection_files", "read_det_txt"]


def _candidates(directory: Path, clip_id: str) -> tuple[Path, Path]:
    return directory / f"{clip_id}.txt", directory / clip_id / "det" / "det.txt"


def detection_files(directory: str | Path) -> dict[str, Path]:
    """clip id -> its detections file, for every ``*.txt`` and ``*/det/det.txt`` in ``directory``.

    A clip with both files is an :class:`AnnotationError` (which one was meant is unclear).
    """
    directory = Path(directory)
    found: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.suffix == ".txt" and p.is_file():
            found[p.stem] = p
    for p in sorted(directory.iterdir()):
        det = p / "det" / "det.txt"
        if p.is_dir() and det.is_file():
            if p.name in found:
                raise AnnotationError(directory, None, f"clip {p.name!r} has two detection files ({found[p.name].name} "
                                                       f"and {p.name}/det/det.txt); keep one")
            found[p.name] = det
    return found


def _number(text: str, path: Path, lineno: int, column: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise AnnotationError(path, f"line {lineno}", f"{column}: {text.strip()[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise AnnotationError(path, f"line {lineno}", f"{column}: {text.strip()!r} is not a finite number")
    return v


_COLUMNS = ("frame", "id", "x", "y", "w", "h", "score")


def read_det_txt(path: str | Path, frames: int) -> list[FrameDetections]:
    """The detections of a clip of ``frames`` frames from one det.txt file, one entry per frame."""
    from ..tracks.files import read_regular_file

    path = Path(path)
    data = read_regular_file(path, "a detections file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError(path, None, f"not UTF-8 text (byte {e.start})") from None
    rows: list[list[float]] = [[] for _ in range(frames)]
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) < len(_COLUMNS):
            raise AnnotationError(path, f"line {lineno}", f"{len(fields)} columns; a detection line is "
                                                          "frame,id,x,y,w,h,score[,...]")
        v = [_number(f, path, lineno, c) for f, c in zip(fields, _COLUMNS)]
        frame, _, x, y, w, h, score = v
        if frame != int(frame) or not 1 <= frame <= frames:
            raise AnnotationError(path, f"line {lineno}", f"frame {fields[0].strip()} is not a frame of the clip "
                                                          f"(1..{frames})")
        if w <= 0 or h <= 0:
            raise AnnotationError(path, f"line {lineno}", f"box width {w:g} and height {h:g} must be positive")
        rows[int(frame) - 1].append([x, y, x + w, y + h, score])
    out = []
    for r in rows:
        a = np.asarray(r, np.float64).reshape(-1, 5)
        out.append(FrameDetections(a[:, :4].copy(), a[:, 4].copy(), np.full(len(a), -1, np.int64)))
    return out


class PrecomputedDetections:
    """Reads each clip's detections from ``directory`` (see the module docstring)."""

    name = "detections"

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise UsageError(f"--detections {self.directory}: not a directory")

    def path_for(self, clip_id: str) -> Path:
        """The detections file of ``clip_id``; an :class:`AnnotationError` naming the paths tried
        when there is none (or two)."""
        if not clip_id or clip_id in (".", "..") or "/" in clip_id or "\\" in clip_id:
            raise UsageError(f"detections: {clip_id!r} is not a clip id")
        flat, seq = _candidates(self.directory, clip_id)
        have = [p for p in (flat, seq) if p.is_file()]
        if len(have) == 2:
            raise AnnotationError(self.directory, None, f"clip {clip_id!r} has two detection files ({flat.name} and "
                                                        f"{clip_id}/det/det.txt); keep one")
        if not have:
            raise AnnotationError(self.directory, None, f"no detections for clip {clip_id!r} (tried {flat} and {seq})")
        return have[0]

    def check_clips(self, clip_ids: Iterable[str]) -> None:
        """Refuse detections for clips that are not among ``clip_ids`` (the clips of the output)."""
        ids = set(clip_ids)
        extra = sorted(set(detection_files(self.directory)) - ids)
        if extra:
            shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise AnnotationError(self.directory, None, f"detections for {len(extra)} clip(s) that the output does "
                                                        f"not have: {shown}")

    def detect_clip(self, frames: np.ndarray, clip_id: str) -> list[FrameDetections]:
        frames = np.asarray(frames)
        if frames.ndim != 4:
            raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
        return read_det_txt(self.path_for(clip_id), frames.shape[0])
