"""Quality control of generated clips: detectors, per-clip and per-box scores, and the policy
that keeps, regenerates, marks or rejects (``tdgen gate``, ``tdgen synth --gate``)."""

from .detector import Detector, FrameDetections

__all__ = ["Detector", "FrameDetections"]
