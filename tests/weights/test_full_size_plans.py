"""What the importers would do with full-size checkpoints, on the meta device (no weights): the
published config.json maps to the documented model, and the GLIGEN + ModelScope plan at SD-1.4 and
ModelScope-1.7b sizes takes every temporal layer from ModelScope and leaves only the TrackDiffusion
additions fresh."""

from __future__ import annotations

from pathlib import Path

import torch

import weight_sources as ws
from tdgen.model import TrackDiffusionUNet, full_config, key_group
from tdgen.weights import gligen as G
from tdgen.weights import official as O
from tdgen.weights._build import meta_unet, target_infos, temporal_unit
from tdgen.weights.report import ImportReport
from tdgen.weights.safetensors_stream import TensorInfo, WeightSource


class MetaSource(WeightSource):
    """A checkpoint that is only a list of keys, dtypes and shapes."""

    def __init__(self, module: torch.nn.Module, drop=()) -> None:
        self.path = Path("meta.safetensors")
        self._infos = {k: TensorInfo(v.dtype, tuple(v.shape)) for k, v in module.state_dict().items()
                       if key_group(k) not in drop}

    def keys(self):
        return list(self._infos)

    def info(self, key):
        return self._infos[key]


def _meta(build):
    with torch.device("meta"):
        return build()


def test_published_config_maps_to_the_documented_model():
    full = full_config()
    src = MetaSource(_meta(lambda: TrackDiffusionUNet(**full)))
    cfg, notes = O.official_config_to_tdgen(ws.published_config(full), src.shapes(), frames=16, resolution=(384, 256))
    model = meta_unet(cfg, "config.json")
    for name, value in full.items():
        if name != "sample_size" and value is not None:
            assert model.config[name] == (tuple(value) if isinstance(value, list) else value), name
    assert model.config.sample_size == [32, 48]
    assert sum(v.numel for v in target_infos(model).values()) == 1_763_598_710
    report = ImportReport(kind="official", output="-")
    assert len(O._plan(src, src.path, target_infos(model), report)) == len(target_infos(model))


def test_pretrain_like_checkpoint_plan_at_full_size():
    lacks = {"injectors", "null_track_feat", "motion_extractor", "frame_embeddings", "instance_embedding"}
    full = full_config()
    src = MetaSource(_meta(lambda: TrackDiffusionUNet(**full)), drop=lacks)
    assert sum(i.numel for i in src._infos.values()) == 1_613_946_340  # 6.456 GB in fp32
    cfg, notes = O.official_config_to_tdgen(ws.published_config(full), src.shapes(), frames=16)
    assert cfg["max_frames"] == 16 and cfg["max_slots"] == 20 and cfg["motion_embed_dim"] == 128
    assert any("published values assumed" in n for n in notes)
    target = target_infos(meta_unet(cfg, "config.json"))
    takes = O._plan(src, src.path, target, ImportReport(kind="official", output="-"))
    fresh = [k for k in target if k not in takes]
    assert {key_group(k) for k in fresh} == lacks
    assert round(sum(target[k].numel for k in fresh if key_group(k) == "injectors") / 1e6, 1) == 149.4  # million parameters


def test_gligen_sd14_plus_modelscope_plan_at_full_size():
    from diffusers import UNet2DConditionModel, UNet3DConditionModel

    gligen = _meta(lambda: UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                                attention_type="gated", use_linear_projection=False))
    ms = _meta(lambda: UNet3DConditionModel(sample_size=32, cross_attention_dim=1024, attention_head_dim=64))
    gsrc, msrc = MetaSource(gligen), MetaSource(ms)
    cfg, _ = G.gligen_config(dict(gligen.config), gsrc.shapes(), dict(ms.config), msrc.shapes(), frames=16,
                             resolution=(512, 512), gwhere=Path("g"), mwhere=Path("m"))
    model = meta_unet(cfg, "g")
    for name, value in full_config().items():
        if name != "sample_size" and value is not None:
            assert model.config[name] == value, name
    target = target_infos(model)
    report = ImportReport(kind="gligen", output="-")
    takes = G._plan(gsrc, gsrc.path, msrc, msrc.path, target, 768, report)
    assert len(report.converted) == 32  # 16 spatial transformers x proj_in/proj_out
    temporal = [k for k in target if temporal_unit(k)]
    assert temporal and all(takes[k].source == "modelscope" for k in temporal)
    wide = [s for s in report.skipped if "1024-wide" in s.reason]
    assert len(wide) == 32 and all(s.shape[1] == 1024 for s in wide)
    fresh = {key_group(k) for k in target if k not in takes}
    assert fresh == {"instance_embedding", "motion_extractor", "frame_embeddings", "injectors", "null_track_feat"}
    assert not [s for s in report.skipped if s.reason.startswith("temporal module")]
