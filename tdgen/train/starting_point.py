"""The model a training run starts from: a model directory to fine-tune, or a fresh UNet.

With ``TrainConfig.model`` the pipeline is loaded from that directory (or preset) and its UNet is
fine-tuned. With ``TrainConfig.init`` a new UNet is built (``tiny``, ``full`` or a JSON file of UNet
config fields) on the text encoder, tokenizer, scheduler and autoencoder of ``model`` when given,
else of a tiny random model created once in ``OUT/base-model``. The autoencoder can be replaced
(``tiny-kl``, ``space-to-depth``) for a fresh UNet only. Clip geometry (resolution, frames, slots)
and the prompt template come from the config, else from the model's ``tdgen.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from ..errors import UsageError
from ..model.autoencoder import SpaceToDepthAutoencoder, downscale_factor
from ..model.unet import TrackDiffusionUNet, full_config, tiny_config
from ..modeldir import init_tiny_model, load_pipeline, resolve_model_dir, tiny_component_configs
from ..modelinfo import ModelInfo
from .config import TrainConfig
from .data import derive_seed

__all__ = ["StartingPoint", "build_starting_point", "init_unet_config"]

T = TypeVar("T")


@dataclass
class StartingPoint:
    """The pipeline whose UNet a run trains, and where it came from."""

    pipe: Any  # TrackDiffusionPipeline with the UNet to train
    base_dir: Path  # model directory the frozen components came from
    base_info: dict[str, Any]  # that directory's tdgen.json
    resolution: tuple[int, int]  # (W, H)
    frames: int
    slots: int
    prompt_template: str
    started_from: dict[str, Any]  # recorded in the exported model's tdgen.json


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path}: not a readable JSON file ({exc})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{what} {path}: must hold a JSON object of config fields")
    return obj


def init_unet_config(init: str, *, latent_channels: int, text_width: int, frames: int, slots: int,
                     latent_hw: tuple[int, int]) -> dict[str, Any]:
    """The UNet config of ``--init`` (``tiny``, ``full`` or a JSON file of fields over the tiny
    config), fitted to the latents, the text encoder and the clip geometry."""
    if init == "tiny":
        cfg = tiny_config()
    elif init == "full":
        cfg = full_config()
    else:
        fields = _read_json(Path(init), "--init")
        known = set(TrackDiffusionUNet._documented_defaults)
        unknown = sorted(k for k in fields if not k.startswith("_") and k not in known)
        if unknown:
            raise UsageError(f"--init {init}: unknown UNet config field(s): {', '.join(unknown)}")
        cfg = tiny_config(**{k: v for k, v in fields.items() if not k.startswith("_")})
    cfg.update(in_channels=latent_channels, out_channels=latent_channels, cross_attention_dim=text_width,
               max_frames=max(int(cfg.get("max_frames", 16)), frames),
               max_slots=max(int(cfg.get("max_slots", 20)), slots),
               sample_size=[latent_hw[0], latent_hw[1]])
    for k in ("down_block_types", "up_block_types", "block_out_channels"):
        if isinstance(cfg.get(k), list):
            cfg[k] = tuple(cfg[k])
    return cfg


def _seeded(seed: int, make: Callable[[], T]) -> T:
    """``make()`` under a torch RNG seeded with ``seed``, leaving the global RNG as it was."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return make()
    finally:
        torch.random.set_rng_state(state)


def _wait_for_file(path: Path, timeout: float = 600.0) -> None:
    t0 = time.monotonic()
    while not path.is_file():
        if time.monotonic() - t0 > timeout:
            raise UsageError(f"{path} did not appear (the main process failed to create it)")
        time.sleep(0.2)


def _replace_autoencoder(pipe: Any, config: TrainConfig) -> None:
    if config.autoencoder == "space-to-depth":
        pipe.register_modules(vae=SpaceToDepthAutoencoder(factor=8))
    elif config.autoencoder == "tiny-kl":
        from diffusers import AutoencoderKL

        vae = _seeded(derive_seed(config.seed, "tiny-kl") % (2 ** 31),
                      lambda: AutoencoderKL(**tiny_component_configs()["vae"]))
        pipe.register_modules(vae=vae.eval().requires_grad_(False))


def _fresh_unet(pipe: Any, config: TrainConfig, frames: int, slots: int, latent_hw: tuple[int, int]) -> None:
    assert config.init is not None
    latent_channels = int(pipe.vae.latent_channels if isinstance(pipe.vae, SpaceToDepthAutoencoder)
                          else pipe.vae.config.latent_channels)
    ucfg = init_unet_config(config.init, latent_channels=latent_channels,
                            text_width=int(pipe.text_encoder.config.hidden_size), frames=frames, slots=slots,
                            latent_hw=latent_hw)
    try:
        unet = _seeded(derive_seed(config.seed, "unet-init") % (2 ** 31), lambda: TrackDiffusionUNet(**ucfg))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--init {config.init}: {exc}") from None
    pipe.register_modules(unet=unet)


def build_starting_point(config: TrainConfig, main: bool) -> StartingPoint:
    """Load or create the pipeline whose UNet will be trained (``main``: this process creates
    ``OUT/base-model`` when needed; the others wait for it)."""
    if config.model is not None:
        base_dir = resolve_model_dir(config.model)
        record = ModelInfo.read(base_dir)
    else:
        base_dir = config.out / "base-model"
        record = ModelInfo()
    # the model's record with its defaults (one place: tdgen.modelinfo); a fresh tiny base model
    # (no --model) is made at 8 frames, small enough to train on a CPU
    res = config.resolution or record.resolution or (128, 128)
    frames = config.frames or (record.effective_frames if config.model is not None else 8)
    slots = config.slots or record.effective_slots
    template = config.prompt_template or record.effective_prompt_template

    if config.model is None:
        if main and not (base_dir / "tdgen.json").is_file():
            init_tiny_model(base_dir, seed=derive_seed(config.seed, "base-model") % (2 ** 31), resolution=res,
                            frames=frames, slots=slots, overwrite=True, model_id="tiny-base")
        _wait_for_file(base_dir / "tdgen.json")
        record = ModelInfo.read(base_dir)
    info = record.to_dict()
    pipe = load_pipeline(base_dir)

    _replace_autoencoder(pipe, config)
    factor = downscale_factor(pipe.vae)
    w, h = res
    if w % factor or h % factor:
        raise UsageError(f"resolution {w}x{h} is not a multiple of the autoencoder's factor {factor}")

    if config.init is not None:
        _fresh_unet(pipe, config, frames, slots, (h // factor, w // factor))
        started = {"init": config.init, "components_from": str(base_dir) if config.model else "tiny-random",
                   "autoencoder": type(pipe.vae).__name__}
    else:
        started = {"model": str(base_dir), "model_id": info.get("model_id")}
    ucfg = pipe.unet.config
    if ucfg.get("frame_embedding") == "learnable" and frames > int(ucfg.max_frames):
        raise UsageError(f"--frames {frames}: this model takes at most {ucfg.max_frames} frames")
    if slots > int(ucfg.max_slots):
        raise UsageError(f"--slots {slots}: this model takes at most {ucfg.max_slots} slots")
    return StartingPoint(pipe=pipe, base_dir=base_dir, base_info=info, resolution=(int(w), int(h)),
                         frames=int(frames), slots=int(slots), prompt_template=template, started_from=started)
