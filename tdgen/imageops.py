"""Frame operations shared by synth, train and preview: OpenCV on demand, one resize rule.

OpenCV is an optional dependency (the ``model`` extra): it is imported only when a frame is
touched, with a one-line error naming the package when it is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import TdgenError

__all__ = ["opencv", "resize_frame", "resize_frames"]


def opencv(purpose: str = "reading and writing frames") -> Any:
    """The ``cv2`` module, or a :class:`TdgenError` (a runtime failure: exit 1) saying how to install it."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - depends on the install
        raise TdgenError(f"{purpose} needs OpenCV: pip install opencv-python-headless (or tdgen[model])") from None
    return cv2


def resize_frame(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One (H, W, C) frame at ``size`` (W, H); the same array when it already is.

    Shrinking on either side averages pixels (``INTER_AREA``: no aliasing of fine texture);
    enlarging on both uses bicubic interpolation, sharper than bilinear.
    """
    w, h = size
    if img.shape[1] == w and img.shape[0] == h:
        return img
    cv2 = opencv()
    shrink = img.shape[1] > w or img.shape[0] > h
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (T, H, W, C) stack of frames at ``size`` (W, H), by :func:`resize_frame`."""
    w, h = size
    if frames.shape[2] == w and frames.shape[1] == h:
        return frames
    return np.stack([resize_frame(f, size) for f in frames])
