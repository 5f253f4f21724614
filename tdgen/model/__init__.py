"""TrackDiffusion UNet (torch modules only).

``TrackDiffusionUNet()`` builds the documented full-size model; :func:`tiny_config` gives a small
configuration built by the same code. See :mod:`tdgen.model.unet` for inputs and config fields.
"""

from .embeddings import InstanceTokenNet
from .fourier import fourier_box_embedding, fourier_frame_embedding
from .enhancer import InstanceInjector, instance_features, roi_pool
from .loading import (
    GROUPS,
    LoadReport,
    PartialLoadError,
    ShapeMismatchError,
    WeightLoadError,
    key_group,
    load_state_dict_with_report,
    load_weights,
    read_state_dict,
)
from .unet import (
    ENHANCER_PLACEMENTS,
    TrackDiffusionUNet,
    TrackDiffusionUNetOutput,
    base_config,
    full_config,
    tiny_config,
)

__all__ = [
    "ENHANCER_PLACEMENTS",
    "GROUPS",
    "InstanceInjector",
    "InstanceTokenNet",
    "LoadReport",
    "PartialLoadError",
    "ShapeMismatchError",
    "TrackDiffusionUNet",
    "TrackDiffusionUNetOutput",
    "WeightLoadError",
    "base_config",
    "fourier_box_embedding",
    "fourier_frame_embedding",
    "full_config",
    "instance_features",
    "key_group",
    "load_state_dict_with_report",
    "load_weights",
    "read_state_dict",
    "roi_pool",
    "tiny_config",
]
