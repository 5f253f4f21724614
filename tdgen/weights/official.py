"""Import a published TrackDiffusion UNet (``pengxiang/TrackDiffusion_Pretrain/unet``,
``pengxiang/trackdiffusion_ytvis/modelscope_ft/unet``) into a tdgen model directory.

The published ``config.json`` is a diffusers 0.21 ``UNet3DConditionModel`` config; what it does
not record (the environment flags of the published code, the hard-coded widths of the instance
branch) is read off the tensor shapes and said in the report. Every key is checked against the
TrackDiffusionUNet built from that config (on the meta device, no memory): the base video UNet
must be complete, every other module group (fusers, instance tokens, identity embedding, motion
extractor, frame embeddings, injectors, null instance features) is imported whole or starts fresh
as a new model starts (gates at zero), and any unknown key or shape mismatch is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..atomic import atomic_directory, atomic_write_text
from ..model.loading import key_group
from ..modelinfo import DEFAULT_PROMPT_TEMPLATE, ModelError, ModelInfo, write_model_index
from ._build import (
    TDGEN_INIT_PARAMS,
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
    write_unet,
)
from .report import GROUP_LABELS, ImportReport
from .safetensors_stream import WeightSource, find_weights_file, open_weights

__all__ = ["import_official", "official_config_to_tdgen", "locate_unet_dir"]

# Fields of the published config.json that mean the same in TrackDiffusionUNet's config.
_SAME_FIELDS = ("in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
                "layers_per_block", "downsample_padding", "mid_block_scale_factor", "act_fn", "norm_num_groups",
                "norm_eps", "cross_attention_dim", "attention_head_dim")
# Fields read but not copied: bookkeeping, or values the published code does not use.
_KNOWN_FIELDS = {"_class_name", "_diffusers_version", "_name_or_path", "_use_default_values", "num_attention_heads",
                 "attention_type", "sample_size", "time_cond_proj_dim"}
# Values of the published code that its config.json does not record (hard-coded there, or set by
# environment flags), as the released weights' tensor shapes confirm.
_PUBLISHED = {"spatial_attention_heads": 8, "transformer_in_heads": 8, "position_net_hidden_dim": 512,
              "box_fourier_freqs": 8, "max_slots": 20, "max_frames": 16, "motion_embed_dim": 128,
              "motion_attention_heads": 4, "motion_attention_head_dim": 32, "norm_num_groups": 32,
              "attention_head_dim": 64}
_MAINTAINERS_RESOLUTION = (384, 256)


def locate_unet_dir(path: Path, what: str = "a published TrackDiffusion UNet directory") -> tuple[Path, str | None]:
    """The folder holding the UNet's ``config.json``: ``path`` itself, or ``path/unet`` when ``path``
    is a pipeline directory (then with a note saying so)."""
    if not path.exists():
        raise ModelError(f"{path}: no such directory (pass {what}, e.g. trackdiffusion_ytvis/modelscope_ft/unet)")
    if path.is_file():
        raise ModelError(f"{path}: a file; pass the directory that holds config.json and the weights ({what})")
    if (path / "config.json").is_file():
        return path, None
    if (path / "unet" / "config.json").is_file():
        return path / "unet", f"{path} is a pipeline directory; its unet/ was used"
    raise ModelError(f"{path}: no config.json: not a diffusers UNet directory ({what}: config.json + "
                     "diffusion_pytorch_model.safetensors or .bin)")


def _first(shapes: Mapping[str, tuple[int, ...]], pattern: str) -> tuple[str, tuple[int, ...]] | None:
    rx = re.compile(pattern)
    for key, shape in shapes.items():
        if rx.search(key):
            return key, shape
    return None


def _check_video_layout(cfg: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], where: Path) -> None:
    cls = cfg.get("_class_name")
    types = [str(t) for t in [*(cfg.get("down_block_types") or ()), *(cfg.get("up_block_types") or ())]]
    if cls == "UNetSpatioTemporalConditionModel":
        raise ModelError(f"{where}: a Stable Video Diffusion UNet (the published SVD branch, image-to-video); "
                         "import-official takes the text-to-video TrackDiffusion UNet3D")
    if cls == "UNet2DConditionModel" or any("2D" in t for t in types):
        raise ModelError(
            f"{where}: a 2-D image UNet ({cls or 'UNet2D block types'}), not a TrackDiffusion video UNet; to build "
            "the starting model from a 2-D GLIGEN UNet use `tdgen model init --gligen GLIGEN_DIR --modelscope MS_DIR`"
        )
    if cls not in (None, "UNet3DConditionModel", "TrackDiffusionUNet"):
        raise ModelError(f"{where}: a {cls}; import-official takes a TrackDiffusion UNet3DConditionModel")
    if not any(".temp_convs." in k for k in shapes):
        raise ModelError(f"{where}: no temporal layers (temp_convs): not a TrackDiffusion video UNet")


def official_config_to_tdgen(published: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], *,
                             frames: int = 16, resolution: Sequence[int] | None = None,
                             where: Path | str = "config.json") -> tuple[dict[str, Any], list[str]]:
    """TrackDiffusionUNet config for a published ``config.json`` and its tensor shapes, with notes
    on every value that was inferred or assumed. A tdgen config (``_class_name`` TrackDiffusionUNet)
    is taken as it is."""
    notes: list[str] = []
    where = Path(where)
    if published.get("_class_name") == "TrackDiffusionUNet":
        cfg = {k: v for k, v in published.items() if k in TDGEN_INIT_PARAMS}
        notes.append("config.json is a tdgen TrackDiffusionUNet config; used as it is")
        if resolution is not None:
            cfg["sample_size"] = [int(resolution[1]) // 8, int(resolution[0]) // 8]
        return cfg, notes

    cfg: dict[str, Any] = {}
    for name in _SAME_FIELDS:
        if published.get(name) is not None:
            value = published[name]
            cfg[name] = tuple(value) if isinstance(value, list) else value
    ignored = sorted(k for k in published if k not in _SAME_FIELDS and k not in _KNOWN_FIELDS)
    if ignored:
        notes.append(f"config.json fields not used: {', '.join(ignored)}")
    if published.get("attention_type", "gated") != "gated":
        notes.append(f"config.json has attention_type {published.get('attention_type')!r} (the published model "
                     "uses 'gated'): the checkpoint's fusers, if any, are checked by key")
    inferred: list[str] = []
    assumed: list[str] = []
    fresh_sizes: list[str] = []

    hit = _first(shapes, r"\.attentions\.\d+\.transformer_blocks\.0\.attn2\.to_k\.weight$")
    if hit is not None:
        key, shape = hit
        if "cross_attention_dim" in cfg and int(cfg["cross_attention_dim"]) != shape[1]:
            raise ModelError(f"{where}: cross_attention_dim is {cfg['cross_attention_dim']}, but {key} is "
                             f"{shape_str(shape)} (text width {shape[1]})")
        if "cross_attention_dim" not in cfg:
            cfg["cross_attention_dim"] = shape[1]
            inferred.append(f"cross_attention_dim={shape[1]} ({key})")
    if "block_out_channels" not in cfg:
        widths = []
        while f"down_blocks.{len(widths)}.resnets.0.conv2.weight" in shapes:
            widths.append(shapes[f"down_blocks.{len(widths)}.resnets.0.conv2.weight"][0])
        if widths:
            cfg["block_out_channels"] = tuple(widths)
            inferred.append(f"block_out_channels={tuple(widths)} (down_blocks.*.resnets.0.conv2.weight)")
    if "layers_per_block" not in cfg:
        layers = {int(m.group(1)) for k in shapes if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", k))}
        if layers:
            cfg["layers_per_block"] = max(layers) + 1
            inferred.append(f"layers_per_block={max(layers) + 1} (down_blocks.0.resnets.*)")
    for name in ("norm_num_groups", "attention_head_dim"):
        if name not in cfg:
            cfg[name] = _PUBLISHED[name]
            assumed.append(f"{name}={_PUBLISHED[name]}")

    head_dim = int(cfg["attention_head_dim"])
    if "transformer_in.proj_in.weight" in shapes:
        inner = shapes["transformer_in.proj_in.weight"][0]
        if inner % head_dim:
            raise ModelError(f"{where}: transformer_in.proj_in.weight has width {inner}, not a multiple of "
                             f"attention_head_dim={head_dim}")
        cfg["transformer_in_heads"] = inner // head_dim
        inferred.append(f"transformer_in_heads={inner // head_dim} (transformer_in.proj_in.weight width {inner} / "
                        f"attention_head_dim {head_dim})")
    if "position_net.linears.0.weight" in shapes:
        cfg["position_net_hidden_dim"] = shapes["position_net.linears.0.weight"][0]
        inferred.append(f"position_net_hidden_dim={cfg['position_net_hidden_dim']} (position_net.linears.0.weight)")
    if "position_net.null_position_feature" in shapes:
        width = shapes["position_net.null_position_feature"][0]
        if width % 8:
            raise ModelError(f"{where}: position_net.null_position_feature has width {width}, not 8 x frequencies")
        cfg["box_fourier_freqs"] = width // 8
        inferred.append(f"box_fourier_freqs={width // 8} (position_net.null_position_feature width {width})")
    if "position_net.instance_embedding.weight" in shapes:
        cfg["max_slots"] = shapes["position_net.instance_embedding.weight"][0]
        inferred.append(f"max_slots={cfg['max_slots']} (position_net.instance_embedding.weight)")
    rows = {shape[0] for k, shape in shapes.items() if k.endswith(".time_embedder.weight")}
    if len(rows) > 1:
        raise ModelError(f"{where}: the frame embeddings (*.time_embedder.weight) have different lengths "
                         f"{sorted(rows)}")
    if rows:
        cfg["max_frames"] = rows.pop()
        inferred.append(f"max_frames={cfg['max_frames']} (*.time_embedder.weight)")
        if frames > cfg["max_frames"]:
            raise ModelError(f"{where}: the checkpoint's learnable frame embeddings have {cfg['max_frames']} rows; "
                             f"cannot make a {frames}-frame model (pass --frames {cfg['max_frames']} or fewer)")
    else:
        cfg["max_frames"] = max(_PUBLISHED["max_frames"], int(frames))
        fresh_sizes.append(f"max_frames={cfg['max_frames']}")
    if "position_net.tracklet_linears.0.weight" in shapes:
        cfg["motion_embed_dim"] = shapes["position_net.tracklet_linears.0.weight"][0]
        inferred.append(f"motion_embed_dim={cfg['motion_embed_dim']} (position_net.tracklet_linears.0.weight)")
    if "position_net.tracklet_attn.to_q.weight" in shapes:
        inner = shapes["position_net.tracklet_attn.to_q.weight"][0]
        head = _PUBLISHED["motion_attention_head_dim"]
        head = head if inner % head == 0 else inner
        cfg["motion_attention_heads"], cfg["motion_attention_head_dim"] = inner // head, head
        inferred.append(f"motion_attention_heads={inner // head}, motion_attention_head_dim={head} "
                        f"(position_net.tracklet_attn.to_q.weight width {inner}; the published split is 4 x 32)")
    absent = [n for n in ("position_net_hidden_dim", "box_fourier_freqs", "max_slots", "motion_embed_dim",
                          "motion_attention_heads", "motion_attention_head_dim") if n not in cfg]
    for name in absent:
        cfg[name] = _PUBLISHED[name]
    fresh_sizes.extend(f"{n}={_PUBLISHED[n]}" for n in absent)
    if fresh_sizes:
        notes.append("modules the checkpoint lacks get the published sizes: " + ", ".join(fresh_sizes))
    cfg["spatial_attention_heads"] = _PUBLISHED["spatial_attention_heads"]
    assumed.append("spatial_attention_heads=8 (hard-coded in the published code)")
    cfg.update(frame_embedding="learnable", use_fuser=True, use_instance_embedding=True, use_enhancer=True)
    down = any(k.startswith("down_blocks.") and ".injector." in k for k in shapes)
    up = any(k.startswith("up_blocks.") and ".injector." in k for k in shapes)
    cfg["enhancer_placement"] = "both" if down and up else "encoder" if down else "decoder"
    if resolution is not None:
        cfg["sample_size"] = [int(resolution[1]) // 8, int(resolution[0]) // 8]
    if inferred:
        notes.append("from tensor shapes: " + "; ".join(inferred))
    if assumed:
        notes.append("not in config.json, published values assumed: " + ", ".join(assumed))
    return cfg, notes


def _plan(source: WeightSource, wpath: Path, target: Mapping[str, Any], report: ImportReport) -> dict[str, Take]:
    """Which target tensors come from the checkpoint; refuses unknown keys, shape mismatches, an
    incomplete base UNet and partial module groups."""
    takes: dict[str, Take] = {}
    for key in source.keys():
        have = source.info(key).shape
        if key_group(key) == "unsupported":
            raise ModelError(f"{wpath}: {key}: a module of a published variant tdgen does not build "
                             "(open_box_attn or track_query); only the documented dec_fuse model can be imported")
        if key not in target:
            raise ModelError(f"{wpath}: unexpected key {key} {shape_str(have)}: not a key of the TrackDiffusion UNet "
                             "its config.json describes")
        want = target[key].shape
        if tuple(have) != tuple(want):
            if is_conv_projection(key, have, want):
                report.converted.append(key)
                takes[key] = Take("unet", key, reshape=True)
                continue
            raise ModelError(f"{wpath}: {key}: shape mismatch: checkpoint {shape_str(have)}, model expects "
                             f"{shape_str(want)} (from config.json and the other tensors)")
        takes[key] = Take("unet", key)
    by_group: dict[str, list[str]] = {}
    for key in target:
        by_group.setdefault(key_group(key), []).append(key)
    for group, keys in by_group.items():
        missing = [k for k in keys if k not in takes]
        if not missing:
            continue
        if group == "base":
            raise ModelError(f"{wpath}: missing key {missing[0]} ({len(missing)} of the {len(keys)} base video-UNet "
                             "tensors are missing; the base UNet must be complete)")
        if len(missing) < len(keys):
            raise ModelError(f"{wpath}: missing key {missing[0]}: the checkpoint has {len(keys) - len(missing)} of the "
                             f"{len(keys)} tensors of the {GROUP_LABELS.get(group, group)}; a module group is imported "
                             "whole or not at all")
    return takes


def _model_id(unet_dir: Path) -> str:
    name = unet_dir.resolve().name
    if name == "unet":
        name = unet_dir.resolve().parent.name or name
    return f"trackdiffusion-{name}"


def import_official(
    unet_dir: str | Path,
    base_dir: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    resolution: Sequence[int] = _MAINTAINERS_RESOLUTION,
    frames: int = 16,
    seed: int = 0,
    progress: Progress | None = None,
) -> ImportReport:
    """Write a tdgen model directory from a published TrackDiffusion UNet directory (diffusers
    layout: config.json + diffusion_pytorch_model.safetensors, .bin or a sharded index) and a Stable
    Diffusion 1.x directory (vae/, text_encoder/, tokenizer/, scheduler/).

    Tensors are streamed one at a time (peak memory about one tensor plus the fresh module being
    made). Fresh tensors (module groups the checkpoint lacks) start as a new TrackDiffusionUNet's,
    from ``seed``. ``resolution`` (W, H) defaults to 384x256, what the maintainers give for the
    released weights. Raises :class:`ModelError` naming the path or key on any problem; nothing is
    written then. ``progress(done, total, key)`` is called after each UNet tensor.
    """
    unet_arg, base_dir, out = Path(unet_dir), Path(base_dir), Path(out)
    w, h = check_resolution(resolution, frames)
    check_output(out, overwrite, [unet_arg, base_dir])
    udir, where_note = locate_unet_dir(unet_arg)
    config_path = udir / "config.json"
    published = read_json(config_path, "the UNet's config")
    wpath, choice_note = find_weights_file(udir, UNET_WEIGHTS)
    report = ImportReport(kind="official", output=str(out), resolution=[w, h], frames=int(frames), seed=int(seed))
    report.notes.extend(n for n in (where_note, choice_note) if n)

    with open_weights(wpath) as source:
        if getattr(source, "note", None):
            report.notes.append(source.note)
        shapes = source.shapes()
        _check_video_layout(published, shapes, config_path)
        if not any(".fuser." in k for k in shapes) and not any(k.startswith("position_net.") for k in shapes):
            raise ModelError(f"{wpath}: no GLIGEN fusers and no position_net: a plain text-to-video UNet3D (such as "
                             "ModelScope's), not a TrackDiffusion UNet; to start from one, pass it as --modelscope to "
                             "`tdgen model init --gligen GLIGEN_DIR --modelscope MS_DIR`")
        cfg, cfg_notes = official_config_to_tdgen(published, shapes, frames=frames, resolution=(w, h),
                                                  where=config_path)
        report.notes.extend(cfg_notes)
        model = meta_unet(cfg, str(config_path))
        target = target_infos(model)
        takes = _plan(source, wpath, target, report)
        if frames > model.config.max_frames and model.config.frame_embedding == "learnable":
            raise ModelError(f"frames {frames}: this model has {model.config.max_frames} frame-embedding rows")
        fill_report(report, target, takes)
        report.unet_config = json_config(model)
        report.slots = int(model.config.max_slots)
        plans = check_components(base_dir, what="a Stable Diffusion 1.x directory with vae/, text_encoder/, tokenizer/ "
                                 "and scheduler/", cross_attention_dim=int(model.config.cross_attention_dim),
                                 latent_channels=int(model.config.in_channels), notes=report.notes)
        dtype = dominant_float_dtype([source.info(k) for k in source.keys()])
        if (w, h) != _MAINTAINERS_RESOLUTION:
            report.notes.append(f"resolution {w}x{h}; the maintainers give 384x256 for the released weights "
                                "(TrackDiffusion issue #7)")
        record_sources(report, "unet", udir, describe_files(source))

        with atomic_directory(out, overwrite=overwrite) as tmp:
            report.unet_sha256 = write_unet(tmp / "unet", model, target, takes, {"unet": source}, cfg, dtype,
                                            seed, report, progress)
            record_sources(report, "base", base_dir, copy_components(plans, tmp))
            write_model_index(tmp)
            atomic_write_text(tmp / "import_report.json", json.dumps(report.as_dict(), indent=2) + "\n")
            ModelInfo(
                model_id=_model_id(udir),
                resolution=(w, h),
                frames=int(frames),
                slots=report.slots,
                prompt_template=DEFAULT_PROMPT_TEMPLATE,
                weights={
                    "kind": "official-import",
                    "unet": report.sources["unet"],
                    "base": report.sources["base"],
                    "unet_sha256": report.unet_sha256,
                    "resolution_source": "384x256 per the TrackDiffusion maintainers (issue #7)"
                    if (w, h) == _MAINTAINERS_RESOLUTION else "given with --resolution",
                    "report": report.summary_dict(),
                },
                created_by="tdgen model import-official",
            ).write(tmp)
    return report
