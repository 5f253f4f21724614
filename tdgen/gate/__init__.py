"""Quality control of generated clips: detectors, per-clip and per-box scores, and the policy
that keeps, regenerates, marks or rejects (``tdgen gate``, ``tdgen synth --gate``)."""

from .detector import Detector, FrameDetections
from .factory import make_detector
from .onnx_yolox import OnnxYoloxDetector
from .precomputed import PrecomputedDetections
from .shapes import ShapesDetector

__all__ = ["Detector", "FrameDetections", "OnnxYoloxDetector", "PrecomputedDetections", "ShapesDetector",
           "make_detector"]
