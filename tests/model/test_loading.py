"""Load report: grouping, refusal of partial loads, shape mismatches, files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from tdgen.model import (
    PartialLoadError,
    ShapeMismatchError,
    TrackDiffusionUNet,
    WeightLoadError,
    base_config,
    key_group,
    load_state_dict_with_report,
    tiny_config,
)


@pytest.fixture
def pair():
    torch.manual_seed(0)
    src = TrackDiffusionUNet(**tiny_config())
    dst = TrackDiffusionUNet(**tiny_config())
    return src, dst


def test_key_groups():
    assert key_group("conv_in.weight") == "base"
    assert key_group("down_blocks.0.attentions.0.transformer_blocks.0.fuser.alpha_attn") == "fusers"
    assert key_group("up_blocks.1.attentions.2.transformer_blocks.0.injector.linears.0.weight") == "injectors"
    assert key_group("up_blocks.2.null_track_feat.weight") == "null_track_feat"
    assert key_group("mid_block.temp_attentions.0.time_embedder.weight") == "frame_embeddings"
    assert key_group("transformer_in.time_embedder.weight") == "frame_embeddings"
    assert key_group("position_net.linears.0.weight") == "position_net"
    assert key_group("position_net.null_positive_feature") == "position_net"
    assert key_group("position_net.instance_embedding.weight") == "instance_embedding"
    assert key_group("position_net.tracklet_attn.to_q.weight") == "motion_extractor"
    assert key_group("up_blocks.1.tracklet_attentions.0.norm.weight") == "unsupported"
    assert key_group("up_blocks.1.attentions.0.transformer_blocks.0.injector.attn3.to_q.weight") == "unsupported"


def test_complete_load(pair):
    src, dst = pair
    report = load_state_dict_with_report(dst, src.state_dict())
    assert report.complete and not report.missing and not report.unexpected
    assert len(report.loaded) == len(src.state_dict())
    for k, v in dst.state_dict().items():
        assert torch.equal(v, src.state_dict()[k])


def test_partial_load_refused_then_accepted(pair):
    src, dst = pair
    sd = {k: v for k, v in src.state_dict().items() if ".injector." not in k and "time_embedder" not in k}
    sd["up_blocks.1.tracklet_attentions.0.norm.weight"] = torch.zeros(3)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(PartialLoadError) as info:
        load_state_dict_with_report(dst, sd)
    err = info.value
    assert isinstance(err, WeightLoadError)
    assert set(err.report.missing) == {"injectors", "frame_embeddings"}
    assert set(err.report.unexpected) == {"unsupported"}
    assert "injectors" in str(err) and "strict=False" in str(err)
    # Nothing was written.
    assert all(torch.equal(v, before[k]) for k, v in dst.state_dict().items())

    report = dst.load_weights(sd, strict=False)
    assert not report.complete
    assert all(".injector." in k for k in report.missing["injectors"])
    assert report.unexpected_keys == ["up_blocks.1.tracklet_attentions.0.norm.weight"]
    k = "conv_in.weight"
    assert torch.equal(dst.state_dict()[k], src.state_dict()[k])
    text = report.summary()
    assert "missing [injectors]" in text and "missing [frame_embeddings]" in text


def test_base_checkpoint_into_full_model_groups():
    torch.manual_seed(0)
    base = TrackDiffusionUNet(**base_config(tiny_config()))
    full = TrackDiffusionUNet(**tiny_config())
    report = full.load_weights(base.state_dict(), strict=False)
    assert set(report.missing) == {"instance_embedding", "motion_extractor", "frame_embeddings", "injectors",
                                   "null_track_feat"}
    assert not report.unexpected


def test_shape_mismatch_names_key_and_shapes(pair):
    src, dst = pair
    sd = dict(src.state_dict())
    key = "up_blocks.1.null_track_feat.weight"
    sd[key] = torch.zeros(1, 7)
    for strict in (True, False):
        with pytest.raises(ShapeMismatchError) as info:
            load_state_dict_with_report(dst, sd, strict=strict)
        msg = str(info.value)
        assert key in msg and "[1, 32]" in msg and "[1, 7]" in msg
        assert info.value.key == key and info.value.expected == (1, 32) and info.value.got == (1, 7)


def test_conv_projections_are_converted(pair):
    src, dst = pair
    sd = dict(src.state_dict())
    key = "down_blocks.0.attentions.0.proj_in.weight"
    sd[key] = sd[key][:, :, None, None].clone()
    report = load_state_dict_with_report(dst, sd)
    assert report.converted == [key]
    assert torch.equal(dst.state_dict()[key], src.state_dict()[key])


def test_load_from_files_and_meta_model(tmp_path, pair):
    src, _ = pair
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(tmp_path / "w.safetensors"))
    (tmp_path / "pipe" / "unet").mkdir(parents=True)
    save_file(sd, str(tmp_path / "pipe" / "unet" / "diffusion_pytorch_model.safetensors"))
    for source in (tmp_path / "w.safetensors", tmp_path / "pipe"):
        with torch.device("meta"):
            model = TrackDiffusionUNet(**tiny_config())
        report = model.load_weights(source)
        assert report.complete
        assert not any(p.is_meta for p in model.parameters())
        assert torch.equal(model.state_dict()["conv_out.weight"], src.state_dict()["conv_out.weight"])
    with pytest.raises(FileNotFoundError):
        src.load_weights(tmp_path / "nowhere")
