"""`init_from_gligen`: 2-D GLIGEN UNet (conv projections) + ModelScope UNet3D -> starting model dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import weight_sources as ws
from tdgen.model import key_group
from tdgen.modeldir import ModelError, load_pipeline, read_tdgen_json
from tdgen.weights import init_from_gligen
from tdgen.weights._build import temporal_unit

UNET_FILE = Path("unet") / "diffusion_pytorch_model.safetensors"


def _src(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def test_spatial_from_gligen_temporal_from_modelscope_bit_exact(gligen_model, gligen_dir, modelscope_dir):
    out, report = gligen_model
    got = load_file(str(out / UNET_FILE))
    gligen, ms = _src(gligen_dir), _src(modelscope_dir)
    converted = set()
    for key, value in gligen.items():  # every GLIGEN tensor, at the same key
        if value.shape != got[key].shape:
            assert value.shape[2:] == (1, 1) and key.endswith((".proj_in.weight", ".proj_out.weight"))
            value = value.reshape(got[key].shape)
            converted.add(key)
        assert torch.equal(got[key], value), key
    assert converted == set(report.converted) and len(converted) == 8
    temporal = [k for k in ms if temporal_unit(k) is not None]
    assert temporal and all(torch.equal(got[k], ms[k]) for k in temporal)
    assert report.found_from == {"gligen": len(gligen), "modelscope": len(temporal)}
    # what starts fresh: everything that is in neither source
    fresh = {k for ks in report.fresh.values() for k in ks}
    assert fresh == set(got) - set(gligen) - set(temporal)
    assert {key_group(k) for k in fresh} == {"instance_embedding", "motion_extractor", "frame_embeddings", "injectors",
                                             "null_track_feat"}
    for g in ("base", "fusers", "position_net"):
        assert report.groups[g].fresh == 0 and report.groups[g].found == report.groups[g].tensors
    gates = [k for k in fresh if k.endswith(("alpha_attn", "alpha_dense"))]
    assert len(gates) == 2 * 2 and all(float(got[k]) == 0.0 for k in gates)
    assert not got["position_net.instance_embedding.weight"].any()
    assert not any(got[k].any() for k in fresh if ".time_embedder." in k)


def test_modelscope_tensors_not_used_are_reported_with_reasons(gligen_model, modelscope_dir):
    _, report = gligen_model
    ms = _src(modelscope_dir)
    skipped = {s.key: s for s in report.skipped}
    assert set(skipped) == {k for k in ms if temporal_unit(k) is None}
    wide = {k for k, s in skipped.items() if "48-wide text cross-attention" in s.reason}
    assert wide == {k for k in ms if k.endswith(("attn2.to_k.weight", "attn2.to_v.weight")) and ".attentions." in k}
    assert len(wide) == 8 and all(skipped[k].shape[1] == ws.MS_TEXT_WIDTH for k in wide)
    assert all("comes from GLIGEN" in s.reason for s in report.skipped)
    text = "\n".join(report.lines())
    assert "not used from modelscope: 8 tensors: 48-wide text cross-attention" in text
    assert "nothing stays fresh because of it" in text


def test_the_directory_loads_and_records_its_sources(gligen_model, gligen_dir, modelscope_dir):
    out, report = gligen_model
    info = read_tdgen_json(out)
    assert info["resolution"] == [64, 64]  # the GLIGEN UNet's sample_size (8) x 8
    assert info["frames"] == 4 and info["slots"] == 20
    assert info["weights"]["kind"] == "init-gligen-modelscope"
    assert info["weights"]["gligen"]["path"] == str(gligen_dir)
    assert info["weights"]["modelscope"]["path"] == str(modelscope_dir / "unet")
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (gligen_dir / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    pipe = load_pipeline(out)
    assert pipe.unet.config.transformer_in_heads == 8  # ModelScope's 8 x attention_head_dim
    assert pipe.unet.config.spatial_attention_heads == 8
    assert pipe.unet.config.cross_attention_dim == ws.TEXT_WIDTH


def test_a_fp16_bin_modelscope_variant_is_read_and_cast_exactly(tmp_path, gligen_dir, gligen_model):
    ms = tmp_path / "ms"
    ws.modelscope_unet().half().save_pretrained(ms / "unet", safe_serialization=False, variant="fp16")
    report = init_from_gligen(gligen_dir, ms / "unet", tmp_path / "out", frames=4)
    assert any("variant diffusion_pytorch_model.fp16.bin" in n for n in report.notes)
    assert report.cast and all(c == {"key": c["key"], "from": "float16", "to": "float32"} for c in report.cast)
    got = load_file(str(tmp_path / "out" / UNET_FILE))
    src = torch.load(ms / "unet" / "diffusion_pytorch_model.fp16.bin", weights_only=True)
    for c in report.cast:
        assert got[c["key"]].dtype == torch.float32 and torch.equal(got[c["key"]], src[c["key"]].float())


def test_temporal_modules_of_another_width_start_fresh_and_are_reported(tmp_path, gligen_dir):
    ms = tmp_path / "ms"
    ws.modelscope_unet(block_out_channels=(32, 48)).save_pretrained(ms / "unet")
    report = init_from_gligen(gligen_dir, ms, tmp_path / "out", frames=4)
    fresh_base = report.fresh.get("base", [])
    assert fresh_base and all(temporal_unit(k) for k in fresh_base)
    units = {temporal_unit(k) for k in fresh_base}
    assert "mid_block.temp_convs.0" in units and "down_blocks.0.temp_convs.0" not in units
    reasons = [s.reason for s in report.skipped if s.reason.startswith("temporal module")]
    assert reasons and all("widths differ" in r for r in reasons)
    got = load_file(str(tmp_path / "out" / UNET_FILE))
    assert not got["mid_block.temp_convs.0.conv4.3.weight"].any()  # a fresh temporal conv is the identity


def _gligen_variant(tmp_path: Path, gligen_dir: Path, edit) -> Path:
    d = tmp_path / "gligen"
    shutil.copytree(gligen_dir, d)
    edit(d)
    return d


def test_wrong_inputs_are_refused_naming_the_path_or_key(tmp_path, gligen_dir, modelscope_dir, sd_base):
    out = tmp_path / "out"
    with pytest.raises(ModelError, match=rf"{gligen_dir / 'unet'}: a UNet folder; pass the GLIGEN pipeline directory"):
        init_from_gligen(gligen_dir / "unet", modelscope_dir, out)
    with pytest.raises(ModelError, match=rf"{tmp_path / 'nope'}: no such directory"):
        init_from_gligen(tmp_path / "nope", modelscope_dir, out)
    with pytest.raises(ModelError, match=r"a 2-D UNet; --modelscope takes the ModelScope text-to-video UNet3D"):
        init_from_gligen(gligen_dir, gligen_dir, out)
    # a TrackDiffusion UNet directory given as --gligen
    with pytest.raises(ModelError, match=r"config.json: a TrackDiffusionUNet; --gligen takes"):
        init_from_gligen(sd_base, modelscope_dir, out)

    def plain_sd(d: Path) -> None:  # a Stable Diffusion UNet without GLIGEN layers
        from diffusers import UNet2DConditionModel

        shutil.rmtree(d / "unet")
        UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
                             cross_attention_dim=32, attention_head_dim=8,
                             down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                             up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")).save_pretrained(d / "unet")

    with pytest.raises(ModelError, match=r"not a GLIGEN UNet \(attention_type 'default', no fuser layers\)"):
        init_from_gligen(_gligen_variant(tmp_path / "a", gligen_dir, plain_sd), modelscope_dir, out)

    key = "down_blocks.0.attentions.0.transformer_blocks.0.fuser.attn.to_k.weight"

    def drop_key(d: Path) -> None:
        from safetensors.torch import save_file

        f = d / "unet" / "diffusion_pytorch_model.safetensors"
        state = load_file(str(f))
        del state[key]
        save_file(state, str(f))

    with pytest.raises(ModelError, match=rf"diffusion_pytorch_model.safetensors: missing key {key} \[32, 32\]"):
        init_from_gligen(_gligen_variant(tmp_path / "b", gligen_dir, drop_key), modelscope_dir, out)

    def bad_shape(d: Path) -> None:
        from safetensors.torch import save_file

        f = d / "unet" / "diffusion_pytorch_model.safetensors"
        state = load_file(str(f))
        state[key] = torch.zeros(32, 16)
        save_file(state, str(f))

    with pytest.raises(ModelError, match=rf"{key}: shape mismatch: GLIGEN \[32, 16\], model expects \[32, 32\]"):
        init_from_gligen(_gligen_variant(tmp_path / "c", gligen_dir, bad_shape), modelscope_dir, out)

    def truncate(d: Path) -> None:
        f = d / "unet" / "diffusion_pytorch_model.safetensors"
        f.write_bytes(f.read_bytes()[:1000])

    bad = _gligen_variant(tmp_path / "d", gligen_dir, truncate)
    with pytest.raises(ModelError, match=rf"{bad / 'unet' / 'diffusion_pytorch_model.safetensors'}: truncated"):
        init_from_gligen(bad, modelscope_dir, out)

    def text_image(d: Path) -> None:
        cfg = json.loads((d / "unet" / "config.json").read_text())
        cfg["attention_type"] = "gated-text-image"
        (d / "unet" / "config.json").write_text(json.dumps(cfg))

    with pytest.raises(ModelError, match=r"a text-image GLIGEN"):
        init_from_gligen(_gligen_variant(tmp_path / "e", gligen_dir, text_image), modelscope_dir, out)
    assert not out.exists()
