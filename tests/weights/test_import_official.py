"""`import_official`: published TrackDiffusion UNet (safetensors, .bin, sharded) + SD base -> model dir."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import weight_sources as ws
from tdgen.model import TrackDiffusionUNet, key_group
from tdgen.modeldir import ModelError, check_model_dir, load_pipeline, read_tdgen_json
from tdgen.weights import import_official
from tdgen.weights.safetensors_stream import file_sha256

UNET_FILE = Path("unet") / "diffusion_pytorch_model.safetensors"


def _unet(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / UNET_FILE))


def test_every_tensor_arrives_bit_exact_at_its_key(official_model, pub_state):
    out, report = official_model
    got = _unet(out)
    assert set(got) == set(pub_state)
    for key, value in pub_state.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
    assert report.found == report.tensors == len(pub_state) and report.found_from == {"unet": len(pub_state)}
    assert not report.fresh and not report.skipped and not report.converted and not report.cast
    assert all(c.fresh == 0 and c.found == c.tensors for c in report.groups.values())
    assert set(report.groups) == {"base", "fusers", "position_net", "instance_embedding", "motion_extractor",
                                  "frame_embeddings", "injectors", "null_track_feat"}


def test_the_model_directory_records_what_it_is(official_model, pub_unet, sd_base):
    out, report = official_model
    check_model_dir(out)
    info = read_tdgen_json(out)
    assert info["resolution"] == [64, 64] and info["frames"] == 4 and info["slots"] == 20
    w = info["weights"]
    assert w["kind"] == "official-import" and w["unet_sha256"] == file_sha256(out / UNET_FILE)
    assert w["unet"]["path"] == str(pub_unet)
    assert w["unet"]["files"][0]["sha256"] == file_sha256(pub_unet / "diffusion_pytorch_model.safetensors")
    assert w["base"]["path"] == str(sd_base) and {f["component"] for f in w["base"]["files"]} == {"vae", "text_encoder"}
    assert w["report"]["groups"]["injectors"]["found"] == report.groups["injectors"].tensors
    assert info["model_id"] == "trackdiffusion-modelscope_ft"
    full = json.loads((out / "import_report.json").read_text())
    assert full["found"] == report.found
    # the UNet config carries what config.json did not say, inferred from shapes
    cfg = json.loads((out / "unet" / "config.json").read_text())
    assert cfg["_class_name"] == "TrackDiffusionUNet" and cfg["transformer_in_heads"] == 4
    assert cfg["position_net_hidden_dim"] == 64 and cfg["motion_embed_dim"] == 32 and cfg["max_slots"] == 20
    assert any("from tensor shapes" in n and "transformer_in_heads=4" in n for n in report.notes)
    # the other components are byte copies of the base
    for comp, name in (("vae", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors")):
        assert (out / comp / name).read_bytes() == (sd_base / comp / name).read_bytes()
    assert (out / "tokenizer" / "vocab.json").read_bytes() == (sd_base / "tokenizer" / "vocab.json").read_bytes()


def test_loads_as_a_pipeline_with_the_source_weights(official_model, pub_state):
    out, _ = official_model
    pipe = load_pipeline(out)
    state = pipe.unet.state_dict()
    for key, value in pub_state.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize("fmt", ["bin", "sharded"])
def test_bin_and_sharded_sources_give_the_same_unet_file(fmt, tmp_path, pub_state, pub_cfg, sd_base, official_model):
    src = ws.write_published_unet(tmp_path / fmt / "unet", pub_state, ws.published_config(pub_cfg), fmt=fmt)
    report = import_official(src.parent, sd_base, tmp_path / "out", resolution=(64, 64), frames=4)  # pipeline dir
    assert report.unet_sha256 == official_model[1].unet_sha256
    assert any("pipeline directory" in n for n in report.notes)
    assert len(report.sources["unet"]["files"]) == (3 if fmt == "sharded" else 1)


def _without(state: dict, groups: set[str]) -> dict:
    return {k: v for k, v in state.items() if key_group(k) not in groups}


PRETRAIN_LACKS = {"injectors", "null_track_feat", "motion_extractor", "frame_embeddings", "instance_embedding"}


def test_a_checkpoint_without_the_enhancer_gets_fresh_modules_with_gates_at_zero(tmp_path, pub_state, pub_cfg, sd_base):
    """Like TrackDiffusion_Pretrain: a video-GLIGEN UNet without the TrackDiffusion additions."""
    state = _without(pub_state, PRETRAIN_LACKS)
    src = ws.write_published_unet(tmp_path / "pretrain" / "unet", state, ws.published_config(pub_cfg))
    report = import_official(src, sd_base, tmp_path / "out", seed=3)
    for group in ("base", "fusers", "position_net"):
        assert report.groups[group].fresh == 0
    for group in PRETRAIN_LACKS:
        c = report.groups[group]
        assert c.found == 0 and c.fresh == c.tensors > 0 and len(report.fresh[group]) == c.tensors
        assert report.group_state(group).startswith("fresh")
    got = _unet(tmp_path / "out")
    for key, value in state.items():
        assert torch.equal(got[key], value), key
    # fresh tensors start as a new TrackDiffusionUNet's: the same ones are zero (gates, frame and identity
    # embeddings, temporal convs' last conv), norms start at one
    torch.manual_seed(0)
    new = TrackDiffusionUNet(**json.loads((tmp_path / "out" / "unet" / "config.json").read_text())).state_dict()
    fresh = [k for ks in report.fresh.values() for k in ks]
    for key in fresh:
        assert got[key].shape == new[key].shape
        assert bool(got[key].any()) == bool(new[key].any()), key
        if re.search(r"norm\d?\.weight$", key):
            assert torch.equal(got[key], new[key]), key
    gates = [k for k in fresh if k.endswith(("alpha_attn", "alpha_dense"))]
    assert gates and all(float(got[k]) == 0.0 for k in gates)
    assert not got["position_net.instance_embedding.weight"].any()
    assert not any(got[k].any() for k in fresh if ".time_embedder." in k)
    # defaults: the maintainers' resolution, 16 frames
    info = read_tdgen_json(tmp_path / "out")
    assert info["resolution"] == [384, 256] and info["frames"] == 16
    # fresh values follow the seed
    again = import_official(src, sd_base, tmp_path / "again", seed=3)
    other = import_official(src, sd_base, tmp_path / "other", seed=4)
    assert again.unet_sha256 == report.unet_sha256 != other.unet_sha256


def test_a_partial_module_group_is_refused(tmp_path, pub_state, pub_cfg, sd_base):
    key = "up_blocks.1.attentions.0.transformer_blocks.0.injector.attn2.to_k.weight"
    state = {k: v for k, v in pub_state.items() if k != key}
    src = ws.write_published_unet(tmp_path / "unet", state, ws.published_config(pub_cfg))
    with pytest.raises(ModelError, match=rf"missing key {re.escape(key)}: the checkpoint has 55 of the 56 tensors of "
                                         "the injectors"):
        import_official(src, sd_base, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing", "shape", "unexpected", "variant"])
def test_mismatched_sources_are_refused_naming_the_key(case, tmp_path, pub_state, pub_cfg, sd_base):
    state = dict(pub_state)
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight"
    if case == "missing":
        del state["conv_in.weight"]
        pattern = r"missing key conv_in\.weight \(1 of the 466 base video-UNet tensors"
    elif case == "shape":
        state[key] = torch.zeros(32, 16)
        pattern = re.escape(f"{key}: shape mismatch: checkpoint [32, 16], model expects [32, 32]")
    elif case == "unexpected":
        state["down_blocks.0.extra.weight"] = torch.zeros(2)
        pattern = re.escape("unexpected key down_blocks.0.extra.weight [2]")
    else:
        state["up_blocks.1.attentions.0.transformer_blocks.0.injector.attn3.to_q.weight"] = torch.zeros(32, 32)
        pattern = r"injector\.attn3\.to_q\.weight: a module of a published variant"
    src = ws.write_published_unet(tmp_path / "unet", state, ws.published_config(pub_cfg))
    with pytest.raises(ModelError, match=pattern) as err:
        import_official(src, sd_base, tmp_path / "out")
    assert str(src / "diffusion_pytorch_model.safetensors") in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [tmp_path / "unet"]


def test_wrong_directories_and_layouts_are_refused(tmp_path, pub_unet, sd_base, gligen_dir, modelscope_dir):
    out = tmp_path / "out"
    with pytest.raises(ModelError, match=rf"{tmp_path / 'nope'}: no such directory"):
        import_official(tmp_path / "nope", sd_base, out)
    with pytest.raises(ModelError, match=r"a 2-D image UNet \(UNet2DConditionModel\).*tdgen model init --gligen"):
        import_official(gligen_dir / "unet", sd_base, out)
    with pytest.raises(ModelError, match=r"no GLIGEN fusers and no position_net: a plain text-to-video UNet3D"):
        import_official(modelscope_dir, sd_base, out)
    with pytest.raises(ModelError, match=rf"{sd_base / 'unet'}: vae/ is missing"):
        import_official(pub_unet, sd_base / "unet", out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=rf"{tmp_path / 'empty'}: no config.json"):
        import_official(tmp_path / "empty", sd_base, out)
    with pytest.raises(ModelError, match=rf"{pub_unet.parent}: holds the source {pub_unet}"):
        import_official(pub_unet, sd_base, pub_unet.parent, overwrite=True)
    assert (pub_unet / "config.json").is_file()
    assert not out.exists()


def test_a_base_with_another_text_width_is_refused(tmp_path, pub_unet, sd_base):
    import shutil

    base = tmp_path / "sd2"
    shutil.copytree(sd_base, base)
    cfg = json.loads((base / "text_encoder" / "config.json").read_text())
    cfg["hidden_size"] = 1024
    (base / "text_encoder" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=rf"{base / 'text_encoder'}: hidden size 1024, but the UNet's cross-attention "
                                         r"takes 32 \(a Stable Diffusion 2.x"):
        import_official(pub_unet, base, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_truncated_checkpoint_is_refused_naming_the_file(tmp_path, pub_state, pub_cfg, sd_base):
    src = ws.write_published_unet(tmp_path / "unet", pub_state, ws.published_config(pub_cfg))
    weights = src / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4096])
    with pytest.raises(ModelError, match=rf"{weights}: truncated"):
        import_official(src, sd_base, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(tmp_path, pub_unet, sd_base):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ModelError, match="already exists"):
        import_official(pub_unet, sd_base, out)
