"""A lossless, weight-free autoencoder: space-to-depth (pixel unshuffle) and back.

``SpaceToDepthAutoencoder(factor=8)`` turns an image ``(B, 3, H, W)`` into a latent
``(B, 3 * 8 * 8 = 192, H / 8, W / 8)`` by moving every 8x8 pixel block into the channel axis, and
the decoder puts the values back. Nothing is learned and nothing is lost: ``decode(encode(x))``
is ``x`` bit for bit. It gives the UNet the same 8x smaller grid as a Stable-Diffusion VAE
without training a VAE first, at the price of wide latents (192 channels instead of 4) and a
UNet that must learn the pixel statistics itself. That is a good trade on small procedurally
rendered domains (the shapes domain: 128x128 frames on a 16x16 grid) and a poor one on natural
video.

It speaks the subset of :class:`diffusers.AutoencoderKL`'s interface that tdgen uses:

* ``encode(x).latent_dist.sample()`` / ``.mode()`` / ``.mean`` (deterministic: all the same);
* ``decode(z, return_dict=False)[0]`` (or ``.sample``);
* ``config.scaling_factor`` (default 1.0) and ``config.get("shift_factor")`` (``None``);
* ``downscale_factor`` (pixels per latent cell, the ``factor`` config field) and
  ``latent_channels`` (``in_channels * factor ** 2``).

Images are in ``[-1, 1]`` as for AutoencoderKL; the latent holds the same values, so with the
default ``scaling_factor = 1`` the diffusion model sees latents of standard deviation ~0.5.
``save_pretrained`` writes ``config.json`` and an empty safetensors file (there are no weights).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

__all__ = ["SpaceToDepthAutoencoder", "load_autoencoder", "autoencoder_class_name", "downscale_factor",
           "DeterministicLatent", "SpaceToDepthEncoderOutput", "SpaceToDepthDecoderOutput"]


class DeterministicLatent:
    """A point-mass "distribution" with AutoencoderKL's ``DiagonalGaussianDistribution`` methods."""

    def __init__(self, latent: torch.Tensor) -> None:
        self.mean = latent
        self.std = torch.zeros_like(latent)
        self.var = self.std
        self.logvar = torch.full_like(latent, float("-inf"))
        self.deterministic = True

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The latent itself (``generator`` is accepted and ignored)."""
        return self.mean

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other=None) -> torch.Tensor:
        return torch.zeros(self.mean.shape[0], device=self.mean.device, dtype=self.mean.dtype)


@dataclass
class SpaceToDepthEncoderOutput(BaseOutput):
    latent_dist: DeterministicLatent


@dataclass
class SpaceToDepthDecoderOutput(BaseOutput):
    sample: torch.Tensor


class SpaceToDepthAutoencoder(ModelMixin, ConfigMixin):
    """Pixel unshuffle by ``factor`` (encode) and pixel shuffle (decode); see the module docstring.

    Config fields: ``factor`` (8), ``in_channels`` (3), ``scaling_factor`` (1.0; the latent is
    multiplied by it before diffusion and divided by it before decoding, as for AutoencoderKL).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, factor: int = 8, in_channels: int = 3, scaling_factor: float = 1.0) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if not float(scaling_factor) > 0:
            raise ValueError(f"scaling_factor must be positive, got {scaling_factor!r}")
        # No weights; a non-persistent empty buffer gives the module a dtype and a device, so
        # ``.dtype``, ``.device`` and ``.to()`` behave as for any other component.
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @property
    def downscale_factor(self) -> int:
        """Pixels per latent cell along each axis (AutoencoderKL: ``2 ** (len(block_out_channels) - 1)``)."""
        return int(self.config.factor)

    @property
    def latent_channels(self) -> int:
        return int(self.config.in_channels) * int(self.config.factor) ** 2

    def _check(self, x: torch.Tensor, channels: int, what: str) -> None:
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f"{what} must be (B, {channels}, H, W), got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """``(B, C, H, W)`` -> latent ``(B, C * f * f, H / f, W / f)`` wrapped as ``latent_dist``."""
        f = int(self.config.factor)
        self._check(x, int(self.config.in_channels), "encode input")
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(f"image size {x.shape[-1]}x{x.shape[-2]} is not a multiple of the factor {f}")
        z = F.pixel_unshuffle(x, f) if f > 1 else x
        dist = DeterministicLatent(z)
        if not return_dict:
            return (dist,)
        return SpaceToDepthEncoderOutput(latent_dist=dist)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        """Latent ``(B, C * f * f, h, w)`` -> image ``(B, C, h * f, w * f)``."""
        f = int(self.config.factor)
        self._check(z, self.latent_channels, "decode input")
        x = F.pixel_shuffle(z, f) if f > 1 else z
        if not return_dict:
            return (x,)
        return SpaceToDepthDecoderOutput(sample=x)

    # ------------------------------------------------------------------ save / load

    def save_pretrained(self, save_directory, is_main_process: bool = True, safe_serialization: bool = True,
                        **kwargs) -> None:  # type: ignore[override]
        """Write ``config.json`` and an empty ``diffusion_pytorch_model.safetensors`` (no weights;
        the file is there so directory checks that look for a weights file are satisfied)."""
        from safetensors.torch import save_file

        if not is_main_process:
            return
        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        self.save_config(path)
        save_file({}, str(path / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, torch_dtype: torch.dtype | None = None,
                        subfolder: str | None = None, **kwargs):  # type: ignore[override]
        """Build from a local folder's ``config.json`` (nothing else is read; nothing is downloaded)."""
        path = Path(pretrained_model_name_or_path)
        if subfolder:
            path = path / subfolder
        file = path / cls.config_name
        if not file.is_file():
            raise OSError(f"{path}: no {cls.config_name}")
        try:
            config = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{file}: not valid JSON: {exc}") from None
        if config.get("_class_name", cls.__name__) != cls.__name__:
            raise ValueError(f"{file}: describes a {config.get('_class_name')}, not a {cls.__name__}")
        model = cls.from_config({k: v for k, v in config.items() if not k.startswith("_")})
        if torch_dtype is not None:
            torch.nn.Module.to(model, torch_dtype)  # (ModelMixin.to warns about fp32 modules; there are none)
        return model.eval()

    def forward(self, sample: torch.Tensor, return_dict: bool = True):
        """Encode then decode (the identity)."""
        z = self.encode(sample).latent_dist.mode()
        return self.decode(z, return_dict=return_dict)


def autoencoder_class_name(path) -> str:
    """``_class_name`` of the autoencoder saved in folder ``path`` (``"AutoencoderKL"`` when unset)."""
    file = Path(path) / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OSError(f"{path}: no config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: not valid JSON: {exc}") from None
    return str(config.get("_class_name") or "AutoencoderKL")


def load_autoencoder(path, *, torch_dtype: torch.dtype | None = None):
    """Load the autoencoder in folder ``path`` by the class its ``config.json`` names:
    :class:`SpaceToDepthAutoencoder` or :class:`diffusers.AutoencoderKL` (the default).

    ``AutoencoderKL.from_pretrained`` on a space-to-depth folder would not fail: it would build a
    randomly initialised VAE (there are no weights to load), so always dispatch on the class name.
    """
    name = autoencoder_class_name(path)
    if name == SpaceToDepthAutoencoder.__name__:
        return SpaceToDepthAutoencoder.from_pretrained(path, torch_dtype=torch_dtype)
    if name != "AutoencoderKL":
        raise ValueError(f"{path}: unsupported autoencoder class {name!r} (expected AutoencoderKL or "
                         f"{SpaceToDepthAutoencoder.__name__})")
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(path, torch_dtype=torch_dtype)


def downscale_factor(vae) -> int:
    """Pixels per latent cell of ``vae``: its ``downscale_factor`` when it has one (space-to-depth),
    else AutoencoderKL's ``2 ** (len(config.block_out_channels) - 1)``."""
    factor = getattr(vae, "downscale_factor", None)
    if factor:
        return int(factor)
    return 2 ** (len(vae.config.block_out_channels) - 1)
