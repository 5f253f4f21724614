"""The shapes domain: procedurally rendered videos of moving shapes with exact tracklets.

Imports no torch. Rendering needs OpenCV (``opencv-python-headless``).
"""

from .render import (
    CATEGORIES,
    SHAPES,
    ShapeVideo,
    check_render_args,
    color_name,
    render_shapes,
    render_video,
    shape_mask,
    video_name,
)

__all__ = [
    "CATEGORIES", "SHAPES", "ShapeVideo", "check_render_args", "color_name", "render_shapes", "render_video",
    "shape_mask", "video_name",
]
