"""Build the starting TrackDiffusion model from a 2-D GLIGEN UNet and a ModelScope UNet3D.

The published repository never shipped this step (it releases no such initial model and no script
that builds one): its training starts from
a 3-D "video-GLIGEN" UNet that is GLIGEN-1.4 (SD-1.4, text-box) in space and ModelScope
text-to-video in time. Here:

* spatial layers, GLIGEN fusers and the instance-token MLP (``position_net``) come from the GLIGEN
  UNet, key for key (the 2-D and 3-D diffusers UNets name them the same); its 1x1-conv
  ``proj_in``/``proj_out`` become Linear;
* temporal layers (``temp_convs``, ``temp_attentions``, ``transformer_in``) come from the ModelScope
  UNet3D wherever a whole module has the same shapes;
* ModelScope's spatial layers are not used. Its spatial text cross-attention (``attn2.to_k``/
  ``to_v``) is 1024 wide (OpenCLIP-H) and could not feed the 768-wide CLIP ViT-L text encoder
  anyway; GLIGEN's cross-attention takes its place, so nothing stays fresh because of it;
* everything else (identity embedding, motion extractor, frame embeddings, injectors, null
  instance features, and any temporal module ModelScope cannot supply) starts as a new
  TrackDiffusionUNet starts: gates at zero, frame and identity embeddings at zero;
* VAE, text encoder, tokenizer and scheduler are copied from the GLIGEN directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..atomic import atomic_directory, atomic_write_text
from ..model.loading import key_group
from ..modelinfo import DEFAULT_PROMPT_TEMPLATE, ModelError, ModelInfo, write_model_index
from ._build import (
    UNET_WEIGHTS,
    Progress,
    Take,
    check_components,
    check_output,
    check_resolution,
    copy_components,
    describe_files,
    dominant_float_dtype,
    fill_report,
    is_conv_projection,
    json_config,
    meta_unet,
    read_json,
    record_sources,
    shape_str,
    target_infos,
    temporal_unit,
    write_unet,
)
from .official import locate_unet_dir
from .report import ImportReport, SkippedTensor
from .safetensors_stream import WeightSource, find_weights_file, open_weights

__all__ = ["init_from_gligen", "gligen_config"]

_BLOCKS_2D_TO_3D = {
    "CrossAttnDownBlock2D": "CrossAttnDownBlock3D",
    "DownBlock2D": "DownBlock3D",
    "UpBlock2D": "UpBlock3D",
    "CrossAttnUpBlock2D": "CrossAttnUpBlock3D",
}
# GLIGEN config values the video UNet's fixed structure needs (anything else has no counterpart).
_REQUIRED_2D = {
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "only_cross_attention": False,
    "class_embed_type": None,
    "addition_embed_type": None,
    "encoder_hid_dim": None,
    "time_cond_proj_dim": None,
    "dual_cross_attention": False,
    "resnet_time_scale_shift": "default",
    "time_embedding_type": "positional",
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "act_fn": "silu",
}
_DEFAULTS = {"max_slots": 20, "max_frames": 16, "motion_embed_dim": 128, "motion_attention_heads": 4,
             "motion_attention_head_dim": 32}

SPATIAL_REASON = "not a temporal layer: everything but the temporal layers comes from GLIGEN"


def _wide_reason(width: int, text_width: int) -> str:
    return (f"{width}-wide text cross-attention (spatial attn2.to_k/to_v): cannot feed the {text_width}-wide text "
            "encoder; the model's cross-attention comes from GLIGEN, so nothing stays fresh because of it")


def _locate_gligen(path: Path) -> Path:
    if not path.exists():
        raise ModelError(f"{path}: no such directory (pass a diffusers GLIGEN directory, e.g. "
                         "gligen/diffusers-generation-text-box, with unet/, vae/, text_encoder/, tokenizer/, "
                         "scheduler/)")
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory (pass the GLIGEN pipeline directory)")
    if (path / "unet" / "config.json").is_file():
        return path / "unet"
    if (path / "config.json").is_file():
        raise ModelError(f"{path}: a UNet folder; pass the GLIGEN pipeline directory that holds unet/, vae/, "
                         "text_encoder/, tokenizer/ and scheduler/ (the VAE and text encoder come from it too)")
    raise ModelError(f"{path}: no unet/config.json: not a diffusers GLIGEN directory")


def gligen_config(gcfg: Mapping[str, Any], gshapes: Mapping[str, tuple[int, ...]], mcfg: Mapping[str, Any],
                  mshapes: Mapping[str, tuple[int, ...]], *, frames: int, resolution: Sequence[int],
                  gwhere: Path, mwhere: Path) -> tuple[dict[str, Any], list[str]]:
    """TrackDiffusionUNet config: widths and spatial settings from the GLIGEN UNet, temporal head
    width from ModelScope, instance-branch sizes from GLIGEN's ``position_net`` and the published
    defaults; with notes."""
    notes: list[str] = []
    cls = gcfg.get("_class_name")
    if cls == "UNet3DConditionModel":
        raise ModelError(f"{gwhere}: a 3-D UNet; --gligen takes the 2-D GLIGEN UNet directory (e.g. "
                         "gligen/diffusers-generation-text-box) and --modelscope the ModelScope UNet3D")
    if cls not in (None, "UNet2DConditionModel"):
        raise ModelError(f"{gwhere}: a {cls}; --gligen takes a diffusers UNet2DConditionModel with GLIGEN layers")
    attention = gcfg.get("attention_type", "default")
    if attention == "gated-text-image":
        raise ModelError(f"{gwhere}: a text-image GLIGEN (attention_type 'gated-text-image'); TrackDiffusion starts "
                         "from the text-box GLIGEN (attention_type 'gated', e.g. gligen/diffusers-generation-text-box)")
    if attention != "gated" or not any(".fuser." in k for k in gshapes):
        raise ModelError(f"{gwhere}: not a GLIGEN UNet (attention_type {attention!r}, no fuser layers); pass a "
                         "text-box GLIGEN UNet such as gligen/diffusers-generation-text-box")
    for field, want in _REQUIRED_2D.items():
        have = gcfg.get(field, want)
        if have != want:
            raise ModelError(f"{gwhere}: {field} is {have!r}; the TrackDiffusion video UNet needs {want!r}")
    tlpb = gcfg.get("transformer_layers_per_block", 1)
    if any(int(t) != 1 for t in (tlpb if isinstance(tlpb, (list, tuple)) else [tlpb])):
        raise ModelError(f"{gwhere}: transformer_layers_per_block {tlpb!r}; the video UNet has one transformer layer")

    def types(name: str) -> tuple[str, ...]:
        out = []
        for t in gcfg.get(name) or ():
            if t not in _BLOCKS_2D_TO_3D:
                raise ModelError(f"{gwhere}: {name} has {t!r}, which has no 3-D counterpart")
            out.append(_BLOCKS_2D_TO_3D[t])
        return tuple(out)

    heads = gcfg.get("num_attention_heads") or gcfg.get("attention_head_dim", 8)
    heads_list = list(heads) if isinstance(heads, (list, tuple)) else [heads]
    if len(set(heads_list)) != 1:
        raise ModelError(f"{gwhere}: attention heads differ per block ({heads_list}); the video UNet uses one count")
    key_x = _first_key(gshapes, "attn2.to_k.weight")
    raw_x = gcfg.get("cross_attention_dim")
    if isinstance(raw_x, (list, tuple)):
        if len(set(raw_x)) != 1:
            raise ModelError(f"{gwhere}: cross_attention_dim differs per block ({list(raw_x)})")
        raw_x = raw_x[0]
    if raw_x is None and key_x is None:
        raise ModelError(f"{gwhere}: no cross_attention_dim and no cross-attention layers")
    x_dim = int(raw_x if raw_x is not None else gshapes[key_x][1])
    if key_x and gshapes[key_x][1] != x_dim:
        raise ModelError(f"{gwhere}: cross_attention_dim is {x_dim}, but {key_x} is {shape_str(gshapes[key_x])}")

    mcls = mcfg.get("_class_name")
    if mcls == "UNet2DConditionModel" or any("2D" in str(t) for t in mcfg.get("down_block_types") or ()):
        raise ModelError(f"{mwhere}: a 2-D UNet; --modelscope takes the ModelScope text-to-video UNet3D (e.g. "
                         "damo-vilab/text-to-video-ms-1.7b)")
    if mcls not in (None, "UNet3DConditionModel") or not any(".temp_convs." in k for k in mshapes):
        raise ModelError(f"{mwhere}: not a ModelScope UNet3DConditionModel (no temp_convs layers)")
    head_dim = int(mcfg.get("attention_head_dim") or 64)
    inner = mshapes.get("transformer_in.proj_in.weight", (8 * head_dim,))[0]
    if inner % head_dim:
        raise ModelError(f"{mwhere}: transformer_in.proj_in.weight width {inner} is not a multiple of "
                         f"attention_head_dim={head_dim}")
    widths = tuple(int(c) for c in gcfg.get("block_out_channels") or ())
    bad = [c for c in widths if c % head_dim]
    if bad:
        raise ModelError(f"{mwhere}: attention_head_dim={head_dim} does not divide the GLIGEN block width {bad[0]}")
    if tuple(int(c) for c in mcfg.get("block_out_channels") or widths) != widths:
        notes.append(f"ModelScope block widths {list(mcfg.get('block_out_channels'))} differ from GLIGEN's "
                     f"{list(widths)}: temporal layers transfer only where widths match")

    cfg: dict[str, Any] = {
        "in_channels": int(gcfg.get("in_channels", 4)),
        "out_channels": int(gcfg.get("out_channels", 4)),
        "down_block_types": types("down_block_types"),
        "up_block_types": types("up_block_types"),
        "block_out_channels": widths,
        "layers_per_block": int(gcfg.get("layers_per_block", 2)),
        "downsample_padding": int(gcfg.get("downsample_padding", 1)),
        "mid_block_scale_factor": float(gcfg.get("mid_block_scale_factor", 1.0)),
        "norm_num_groups": int(gcfg.get("norm_num_groups", 32)),
        "norm_eps": float(gcfg.get("norm_eps", 1e-5)),
        "cross_attention_dim": x_dim,
        "attention_head_dim": head_dim,
        "spatial_attention_heads": int(heads_list[0]),
        "transformer_in_heads": inner // head_dim,
        "frame_embedding": "learnable",
        "use_fuser": True,
        "use_instance_embedding": True,
        "use_enhancer": True,
        "enhancer_placement": "decoder",
        "sample_size": [int(resolution[1]) // 8, int(resolution[0]) // 8],
        **_DEFAULTS,
    }
    cfg["max_frames"] = max(_DEFAULTS["max_frames"], int(frames))
    found = []
    if "position_net.linears.0.weight" in gshapes:
        cfg["position_net_hidden_dim"] = gshapes["position_net.linears.0.weight"][0]
        found.append(f"position_net_hidden_dim={cfg['position_net_hidden_dim']}")
    if "position_net.null_position_feature" in gshapes:
        cfg["box_fourier_freqs"] = gshapes["position_net.null_position_feature"][0] // 8
        found.append(f"box_fourier_freqs={cfg['box_fourier_freqs']}")
    notes.append(
        f"spatial settings from GLIGEN ({cfg['spatial_attention_heads']} spatial heads, cross_attention_dim {x_dim}"
        + (", " + ", ".join(found) if found else "") + f"); temporal heads of {head_dim} and transformer_in "
        f"{cfg['transformer_in_heads']} x {head_dim} from ModelScope; instance branch at the published sizes "
        f"({cfg['max_slots']} slots, {cfg['max_frames']} frame-embedding rows, motion code {cfg['motion_embed_dim']})"
    )
    return cfg, notes


def _first_key(shapes: Mapping[str, tuple[int, ...]], suffix: str) -> str | None:
    return next((k for k in shapes if k.endswith(suffix) and ".attentions." in k), None)


def _plan(gsrc: WeightSource, gpath: Path, msrc: WeightSource, mpath: Path, target: Mapping[str, Any],
          x_dim: int, report: ImportReport) -> dict[str, Take]:
    takes: dict[str, Take] = {}
    # GLIGEN: every key must land somewhere, with its shape (1x1-conv projections become Linear).
    for key in gsrc.keys():
        have = gsrc.info(key).shape
        if key not in target or temporal_unit(key) is not None:
            raise ModelError(f"{gpath}: unexpected key {key} {shape_str(have)}: not a spatial, fuser or position_net "
                             "key of the TrackDiffusion UNet")
        want = target[key].shape
        if tuple(have) != tuple(want):
            if not is_conv_projection(key, have, want):
                raise ModelError(f"{gpath}: {key}: shape mismatch: GLIGEN {shape_str(have)}, model expects "
                                 f"{shape_str(want)}")
            report.converted.append(key)
        takes[key] = Take("gligen", key, reshape=tuple(have) != tuple(want))
    for key in target:
        if key not in takes and temporal_unit(key) is None and key_group(key) in ("base", "fusers", "position_net"):
            raise ModelError(f"{gpath}: missing key {key} {shape_str(target[key].shape)} (the GLIGEN UNet must supply "
                             "every spatial, fuser and position_net tensor)")

    # ModelScope: whole temporal modules whose shapes all match.
    units: dict[str, list[str]] = {}
    for key in target:
        unit = temporal_unit(key)
        if unit is not None:
            units.setdefault(unit, []).append(key)
    munits: dict[str, list[str]] = {}
    for key in msrc.keys():
        unit = temporal_unit(key)
        if unit is None:
            have = msrc.info(key).shape
            wide = key.endswith(("attn2.to_k.weight", "attn2.to_v.weight")) and len(have) == 2 and have[1] != x_dim
            report.skipped.append(SkippedTensor("modelscope", key, list(have),
                                                _wide_reason(have[1], x_dim) if wide else SPATIAL_REASON))
        else:
            munits.setdefault(unit, []).append(key)
    fresh_units: list[str] = []
    for unit, keys in units.items():
        mkeys = munits.pop(unit, [])
        reason = None
        missing = [k for k in keys if k not in mkeys]
        extra = [k for k in mkeys if k not in keys]
        mismatch = [k for k in keys if k in mkeys and tuple(msrc.info(k).shape) != tuple(target[k].shape)]
        if not mkeys:
            reason = "not in the ModelScope checkpoint"
        elif mismatch:
            k = mismatch[0]
            reason = (f"widths differ ({k}: ModelScope {shape_str(msrc.info(k).shape)}, model "
                      f"{shape_str(target[k].shape)})")
        elif missing or extra:
            reason = f"module layout differs ({(missing or extra)[0]})"
        if reason is None:
            takes.update({k: Take("modelscope", k) for k in keys})
        else:
            fresh_units.append(unit)
            report.skipped.extend(SkippedTensor("modelscope", k, list(msrc.info(k).shape),
                                                f"temporal module {unit}: {reason}; it starts fresh") for k in mkeys)
            if not mkeys:
                report.notes.append(f"temporal module {unit} starts fresh: {reason}")
    for unit, mkeys in munits.items():  # ModelScope temporal modules the model does not have
        report.skipped.extend(SkippedTensor("modelscope", k, list(msrc.info(k).shape),
                                            "temporal module the model does not have") for k in mkeys)
    if not any(t.source == "modelscope" for t in takes.values()):
        raise ModelError(f"{mpath}: none of its temporal layers fits the GLIGEN UNet's widths "
                         f"({len(fresh_units)} temporal modules, first: {fresh_units[0] if fresh_units else '-'})")
    if fresh_units:
        report.notes.append(f"{len(fresh_units)} temporal modules start fresh (first: {fresh_units[0]}); "
                            "their temporal convs are the identity until trained")
    return takes


def init_from_gligen(
    gligen_dir: str | Path,
    modelscope_dir: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    resolution: Sequence[int] | None = None,
    frames: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
) -> ImportReport:
    """Write the starting TrackDiffusion model directory built from a diffusers GLIGEN directory
    (SD-1.4 text-box: unet/ plus vae/, text_encoder/, tokenizer/, scheduler/) and a diffusers
    ModelScope text-to-video UNet3D (its pipeline directory or its unet/ folder).

    ``resolution`` (W, H) defaults to the GLIGEN UNet's ``sample_size`` x 8 (512x512 for SD-1.4).
    Fresh tensors start as a new TrackDiffusionUNet's, from ``seed``. Streams one tensor at a time;
    raises :class:`ModelError` naming the path or key on any problem, writing nothing then.
    """
    gligen_dir, ms_arg, out = Path(gligen_dir), Path(modelscope_dir), Path(out)
    check_output(out, overwrite, [gligen_dir, ms_arg])
    gunet = _locate_gligen(gligen_dir)
    mdir, ms_note = locate_unet_dir(ms_arg, "a diffusers ModelScope text-to-video directory or its unet/ folder")
    gcfg = read_json(gunet / "config.json", "the GLIGEN UNet's config")
    mcfg = read_json(mdir / "config.json", "the ModelScope UNet's config")
    if resolution is None:
        size = gcfg.get("sample_size") or 64
        size = size if isinstance(size, (list, tuple)) else (size, size)
        resolution = (int(size[-1]) * 8, int(size[0]) * 8)
    w, h = check_resolution(resolution, frames)
    gpath, gnote = find_weights_file(gunet, UNET_WEIGHTS)
    mpath, mnote = find_weights_file(mdir, UNET_WEIGHTS)
    report = ImportReport(kind="gligen", output=str(out), resolution=[w, h], frames=int(frames), seed=int(seed))
    report.notes.extend(n for n in (ms_note, gnote, mnote) if n)

    with open_weights(gpath) as gsrc, open_weights(mpath) as msrc:
        for src in (gsrc, msrc):
            if getattr(src, "note", None):
                report.notes.append(src.note)
        cfg, notes = gligen_config(gcfg, gsrc.shapes(), mcfg, msrc.shapes(), frames=frames, resolution=(w, h),
                                   gwhere=gunet / "config.json", mwhere=mdir / "config.json")
        report.notes.extend(notes)
        model = meta_unet(cfg, str(gunet / "config.json"))
        target = target_infos(model)
        takes = _plan(gsrc, gpath, msrc, mpath, target, int(cfg["cross_attention_dim"]), report)
        fill_report(report, target, takes)
        report.unet_config = json_config(model)
        report.slots = int(model.config.max_slots)
        plans = check_components(gligen_dir, what="the GLIGEN directory (its VAE, text encoder, tokenizer and "
                                 "scheduler are used)", cross_attention_dim=int(cfg["cross_attention_dim"]),
                                 latent_channels=int(cfg["in_channels"]), notes=report.notes)
        dtype = dominant_float_dtype([gsrc.info(k) for k in gsrc.keys()])
        record_sources(report, "gligen", gligen_dir, describe_files(gsrc))
        record_sources(report, "modelscope", mdir, describe_files(msrc))

        with atomic_directory(out, overwrite=overwrite) as tmp:
            report.unet_sha256 = write_unet(tmp / "unet", model, target, takes, {"gligen": gsrc, "modelscope": msrc},
                                            cfg, dtype, seed, report, progress)
            report.sources["gligen"]["components"] = copy_components(plans, tmp)
            write_model_index(tmp)
            atomic_write_text(tmp / "import_report.json", json.dumps(report.as_dict(), indent=2) + "\n")
            ModelInfo(
                model_id="trackdiffusion-init-gligen-modelscope",
                resolution=(w, h),
                frames=int(frames),
                slots=report.slots,
                prompt_template=DEFAULT_PROMPT_TEMPLATE,
                weights={
                    "kind": "init-gligen-modelscope",
                    "gligen": report.sources["gligen"],
                    "modelscope": report.sources["modelscope"],
                    "unet_sha256": report.unet_sha256,
                    "seed": int(seed),
                    "report": report.summary_dict(),
                },
                created_by="tdgen model init --gligen --modelscope",
            ).write(tmp)
    return report
