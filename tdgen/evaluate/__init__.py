"""Evaluation of generated (or real) shapes-domain clips with a classical detector.

``detect``: background difference + colour segmentation detector; ``metrics``: IoU matching,
a simple IoU tracker, HOTA, CLEAR MOT and Identity metrics; ``evaluate``: a whole directory.
Imports no torch.
"""

from .detect import Detections, detect_clip, detect_shapes, estimate_background
from .metrics import box_iou, hota, iou_tracker, match_boxes, mot_metrics

__all__ = ["Detections", "box_iou", "detect_clip", "detect_shapes", "estimate_background", "hota", "iou_tracker",
           "match_boxes", "mot_metrics"]
