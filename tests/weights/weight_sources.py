"""Tiny source checkpoints in the layouts the real ones come in, with random values.

* a published TrackDiffusion UNet directory (diffusers 0.21 ``UNet3DConditionModel`` config.json
  with ``attention_type: gated``; the published checkpoint's key names, which our
  TrackDiffusionUNet shares), as safetensors, ``.bin`` or a sharded safetensors checkpoint;
* a diffusers GLIGEN pipeline directory: a 2-D ``UNet2DConditionModel(attention_type="gated")`` with
  1x1-conv projections, plus the VAE, text encoder, tokenizer and scheduler of a tiny SD base;
* a diffusers ModelScope ``UNet3DConditionModel`` with a wider text cross-attention.

Every tensor gets random values (gates and zero-initialised parameters included), so a transferred
tensor can be told from a fresh one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from tdgen.model import TrackDiffusionUNet, tiny_config
from tdgen.modeldir import init_tiny_model

TEXT_WIDTH = 32  # the tiny SD base's CLIP width
MS_TEXT_WIDTH = 48  # "OpenCLIP" of the tiny ModelScope UNet
COMPONENTS = ("vae", "text_encoder", "tokenizer", "scheduler")


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return module


def published_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config.json the published code writes for a model of TrackDiffusionUNet config ``cfg``."""
    n = len(cfg["block_out_channels"])
    return {
        "_class_name": "UNet3DConditionModel",
        "_diffusers_version": "0.21.0.dev0",
        "_name_or_path": "/Tracklet2Video/outputs_video_gligen",
        "act_fn": "silu",
        "attention_head_dim": cfg["attention_head_dim"],
        "attention_type": "gated",
        "block_out_channels": list(cfg["block_out_channels"]),
        "cross_attention_dim": cfg["cross_attention_dim"],
        "down_block_types": ["CrossAttnDownBlock3D"] * (n - 1) + ["DownBlock3D"],
        "downsample_padding": 1,
        "in_channels": 4,
        "layers_per_block": cfg["layers_per_block"],
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": cfg["norm_num_groups"],
        "num_attention_heads": None,
        "out_channels": 4,
        "sample_size": 32,
        "up_block_types": ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * (n - 1),
    }


def published_state(cfg: dict[str, Any], seed: int = 1) -> dict[str, torch.Tensor]:
    model = TrackDiffusionUNet(**cfg)
    return {k: v.clone() for k, v in randomize_(model, seed).state_dict().items()}


def write_published_unet(folder: Path, state: dict[str, torch.Tensor], config: dict[str, Any],
                         fmt: str = "safetensors") -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if fmt == "safetensors":
        save_file(state, str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    elif fmt == "bin":
        torch.save(state, folder / "diffusion_pytorch_model.bin")
    elif fmt == "sharded":
        keys = list(state)
        half = len(keys) // 2
        shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": keys[:half],
                  "diffusion_pytorch_model-00002-of-00002.safetensors": keys[half:]}
        weight_map = {}
        for name, ks in shards.items():
            save_file({k: state[k] for k in ks}, str(folder / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in ks})
        (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    else:
        raise ValueError(fmt)
    return folder


def tiny_published_config(**overrides: Any) -> dict[str, Any]:
    return tiny_config(cross_attention_dim=TEXT_WIDTH, **overrides)


def write_sd_base(folder: Path, resolution=(64, 64), frames: int = 4) -> Path:
    """A tiny 'Stable Diffusion 1.x' directory (tiny VAE, CLIP text encoder, tokenizer, scheduler)."""
    return init_tiny_model(folder, seed=3, resolution=resolution, frames=frames)


def gligen_unet(seed: int = 5, sample_size: int = 8):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=sample_size, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_type="gated", use_linear_projection=False,
    )
    return randomize_(unet, seed)


def write_gligen(folder: Path, base: Path, seed: int = 5, sample_size: int = 8, **save: Any) -> Path:
    """A diffusers GLIGEN pipeline directory: 2-D gated UNet with conv projections + base components."""
    gligen_unet(seed, sample_size).save_pretrained(folder / "unet", **save)
    for comp in COMPONENTS:
        shutil.copytree(base / comp, folder / comp)
    return folder


def modelscope_unet(seed: int = 7, block_out_channels=(32, 64)):
    from diffusers import UNet3DConditionModel

    unet = UNet3DConditionModel(
        block_out_channels=block_out_channels, layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=MS_TEXT_WIDTH, attention_head_dim=16,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    )
    return randomize_(unet, seed)


def write_modelscope(folder: Path, seed: int = 7, **save: Any) -> Path:
    """A diffusers ModelScope text-to-video pipeline directory (only its unet/ matters here)."""
    modelscope_unet(seed).save_pretrained(folder / "unet", **save)
    return folder
