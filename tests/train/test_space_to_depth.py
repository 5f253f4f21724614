"""SpaceToDepthAutoencoder: exact round trip, AutoencoderKL-style interface, save/load."""

from __future__ import annotations

import json

import pytest
import torch

from tdgen.model.autoencoder import (
    SpaceToDepthAutoencoder,
    autoencoder_class_name,
    downscale_factor,
    load_autoencoder,
)


@pytest.mark.parametrize("factor", [8, 2, 1])
def test_round_trip_is_exact(factor):
    ae = SpaceToDepthAutoencoder(factor=factor)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16 * factor, 24 * factor, generator=g) * 2 - 1
    out = ae.encode(x)
    z = out.latent_dist.sample()
    assert z.shape == (3, 3 * factor * factor, 16, 24)
    assert torch.equal(out.latent_dist.mode(), z) and torch.equal(out.latent_dist.mean, z)
    assert torch.equal(ae.decode(z, return_dict=False)[0], x)
    assert torch.equal(ae.decode(z).sample, x)
    assert torch.equal(ae(x).sample, x)


def test_uint8_frames_survive_scaling_and_round_trip():
    ae = SpaceToDepthAutoencoder()
    u8 = torch.randint(0, 256, (2, 3, 64, 32), dtype=torch.uint8)
    x = u8.float() / 127.5 - 1.0
    z = ae.encode(x).latent_dist.mode() * ae.config.scaling_factor
    back = ae.decode(z / ae.config.scaling_factor, return_dict=False)[0]
    assert torch.equal(((back + 1) * 127.5).round().to(torch.uint8), u8)


def test_latent_layout_is_pixel_unshuffle():
    ae = SpaceToDepthAutoencoder(factor=2, in_channels=1)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z = ae.encode(x).latent_dist.mode()
    # channel c = 2 * dy + dx holds pixel (2 * i + dy, 2 * j + dx) of cell (i, j)
    assert z[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    assert z[0, :, 1, 1].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_interface_fields():
    ae = SpaceToDepthAutoencoder()
    assert ae.downscale_factor == 8 and downscale_factor(ae) == 8
    assert ae.latent_channels == 192
    assert ae.config.scaling_factor == 1.0
    assert ae.config.get("shift_factor", None) is None
    assert ae.dtype == torch.float32 and ae.device.type == "cpu"
    assert list(ae.parameters()) == [] and ae.state_dict() == {}
    assert ae.encode(torch.zeros(1, 3, 8, 8)).latent_dist.kl().shape == (1,)


def test_bad_inputs():
    ae = SpaceToDepthAutoencoder()
    with pytest.raises(ValueError, match="multiple of the factor"):
        ae.encode(torch.zeros(1, 3, 12, 16))
    with pytest.raises(ValueError, match="encode input"):
        ae.encode(torch.zeros(1, 4, 16, 16))
    with pytest.raises(ValueError, match="decode input"):
        ae.decode(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError):
        SpaceToDepthAutoencoder(factor=0)


def test_save_and_load(tmp_path):
    ae = SpaceToDepthAutoencoder(factor=4, scaling_factor=2.0)
    ae.save_pretrained(tmp_path / "vae")
    files = sorted(p.name for p in (tmp_path / "vae").iterdir())
    assert files == ["config.json", "diffusion_pytorch_model.safetensors"]  # a weights file, for directory checks
    assert autoencoder_class_name(tmp_path / "vae") == "SpaceToDepthAutoencoder"
    back = load_autoencoder(tmp_path / "vae", torch_dtype=torch.float16)
    assert isinstance(back, SpaceToDepthAutoencoder)
    assert back.config.factor == 4 and back.config.scaling_factor == 2.0 and back.dtype == torch.float16


def test_load_autoencoder_dispatches_to_autoencoderkl(tmp_path):
    from diffusers import AutoencoderKL

    from tdgen.modeldir import tiny_component_configs

    AutoencoderKL(**tiny_component_configs()["vae"]).save_pretrained(tmp_path / "vae")
    vae = load_autoencoder(tmp_path / "vae")
    assert type(vae) is AutoencoderKL
    assert downscale_factor(vae) == 8
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    cfg["_class_name"] = "SomethingElse"
    (tmp_path / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unsupported autoencoder class"):
        load_autoencoder(tmp_path / "vae")
