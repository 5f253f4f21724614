"""Training stages: which UNet parameters a run trains (``--stage``).

The published recipe trains in two stages: first the image-level layout modules on single frames,
then the video modules on clips. ``all`` trains every UNet parameter. The text encoder and the
autoencoder are always frozen.
"""

from __future__ import annotations

import torch

from ..errors import UsageError

__all__ = ["STAGES", "STAGE_GROUPS", "is_trainable", "set_trainable", "trainable_parameter_names"]

STAGES = ("1", "2", "all")

STAGE_GROUPS: dict[str, str] = {
    "1": "image-level layout: every GLIGEN fuser (*.fuser.*) and position_net except the motion "
         "extractor (position_net.linears.*, null_positive_feature, null_position_feature, "
         "instance_embedding); frames are trained as independent one-frame clips",
    "2": "video: transformer_in.*, every temporal conv and temporal transformer (*.temp_convs.*, "
         "*.temp_attentions.*, frame embeddings included), the motion extractor "
         "(position_net.tracklet_*), the identity embedding (position_net.instance_embedding.*), "
         "the instance enhancer (*.injector.*) and its null features (*.null_track_feat.*)",
    "all": "every UNet parameter (from scratch, or a full fine-tune)",
}
"""What each ``--stage`` trains (the text encoder and the autoencoder are always frozen)."""


def is_trainable(name: str, stage: str) -> bool:
    """Whether UNet parameter ``name`` trains in ``stage`` (see :data:`STAGE_GROUPS`)."""
    if stage == "all":
        return True
    if stage == "1":
        if ".fuser." in name:
            return True
        return name.startswith("position_net.") and not name.startswith("position_net.tracklet_")
    if stage == "2":
        return (
            name.startswith("transformer_in.")
            or ".temp_convs." in name
            or ".temp_attentions." in name
            or name.startswith("position_net.tracklet_")
            or name.startswith("position_net.instance_embedding.")
            or ".injector." in name
            or ".null_track_feat." in name
        )
    raise UsageError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")


def trainable_parameter_names(model: torch.nn.Module, stage: str) -> list[str]:
    """Names of ``model``'s parameters that ``stage`` trains, in module order."""
    return [n for n, _ in model.named_parameters() if is_trainable(n, stage)]


def set_trainable(model: torch.nn.Module, stage: str) -> list[str]:
    """Freeze everything but ``stage``'s parameters; return the trainable names."""
    names = set(trainable_parameter_names(model, stage))
    if not names:
        raise UsageError(f"--stage {stage}: this model has none of the parameters that stage trains "
                         f"({STAGE_GROUPS[stage]})")
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    return [n for n, _ in model.named_parameters() if n in names]
