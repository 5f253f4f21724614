"""Real weights: import the published TrackDiffusion UNet, or build the starting model from a 2-D
GLIGEN UNet and a ModelScope UNet3D; stream tensors so memory stays near one tensor.

* :func:`import_official` - ``tdgen model import-official UNET_DIR --base SD_DIR -o MODEL_DIR``
* :func:`init_from_gligen` - ``tdgen model init --gligen GLIGEN_DIR --modelscope MS_DIR -o MODEL_DIR``
* :class:`ImportReport` - what either did, per module group
* :mod:`.safetensors_stream` - lazy readers and the streaming safetensors writer
"""

from .gligen import gligen_config, init_from_gligen
from .official import import_official, official_config_to_tdgen
from .report import GROUP_LABELS, GroupCount, ImportReport, SkippedTensor
from .safetensors_stream import SafetensorsWriter, TensorInfo, open_weights, write_safetensors

__all__ = [
    "GROUP_LABELS",
    "GroupCount",
    "ImportReport",
    "SafetensorsWriter",
    "SkippedTensor",
    "TensorInfo",
    "gligen_config",
    "import_official",
    "init_from_gligen",
    "official_config_to_tdgen",
    "open_weights",
    "write_safetensors",
]
