"""Steps shared by the two model builders (:mod:`.official`, :mod:`.gligen`).

* the target UNet is built on the meta device: its keys, shapes and config, no memory;
* fresh tensors are made one module at a time, initialised as :class:`TrackDiffusionUNet`
  initialises them (which parameters a new model zero-initialises is read off a tiny model built
  with the same switches, so this follows the model's own code);
* the UNet file is streamed tensor by tensor; VAE, text encoder, tokenizer and scheduler are copied
  file by file (``.bin`` weights are converted to safetensors on the way, also streamed).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from ..model.loading import key_group
from ..model.unet import TrackDiffusionUNet, tiny_config
from ..modelinfo import ModelError
from .report import GroupCount, ImportReport, empty_groups
from .safetensors_stream import (
    TensorInfo,
    WeightSource,
    file_sha256,
    find_weights_file,
    open_weights,
    safetensors_order,
    write_safetensors,
)

Progress = Callable[[int, int, str], None]

_TEMPORAL = re.compile(
    r"^(transformer_in|(?:down_blocks|up_blocks)\.\d+\.temp_(?:convs|attentions)\.\d+"
    r"|mid_block\.temp_(?:convs|attentions)\.\d+)\."
)
_REPEATED = re.compile(
    r"\b(down_blocks|up_blocks|resnets|attentions|temp_convs|temp_attentions|transformer_blocks|"
    r"downsamplers|upsamplers)\.\d+"
)
UNET_WEIGHTS = ("diffusion_pytorch_model",)
TDGEN_INIT_PARAMS = tuple(TrackDiffusionUNet._documented_defaults)


def temporal_unit(key: str) -> str | None:
    """The temporal module (``transformer_in``, ``*.temp_convs.N``, ``*.temp_attentions.N``) a key
    belongs to, frame embeddings excluded; ``None`` for every other key."""
    if ".time_embedder." in key:
        return None
    m = _TEMPORAL.match(key)
    return m.group(1) if m else None


def is_conv_projection(key: str, have: Sequence[int], want: Sequence[int]) -> bool:
    """A spatial ``proj_in``/``proj_out`` stored as a 1x1 convolution (C, C, 1, 1) where the model
    has a Linear (C, C)."""
    return (key.endswith((".proj_in.weight", ".proj_out.weight")) and len(have) == 4
            and tuple(have[2:]) == (1, 1) and tuple(have[:2]) == tuple(want))


def shape_str(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


# --------------------------------------------------------------------------- files and dirs


def read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path}: missing ({what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: must hold a JSON object")
    return data


def check_output(out: Path, overwrite: bool, sources: Sequence[Path]) -> None:
    """The output must not exist (unless ``overwrite``) and must not be or contain a source (which
    replacing it would delete)."""
    if out.exists() and not overwrite:
        raise ModelError(f"{out}: already exists (pass --overwrite to replace it)")
    target = out.resolve()
    for src in sources:
        s = src.resolve()
        if s == target or target in s.parents:
            raise ModelError(f"{out}: holds the source {src}; write the model to another directory")


def check_resolution(resolution: Sequence[int], frames: int) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in resolution)
    except (TypeError, ValueError):
        raise ModelError(f"resolution {resolution!r}: expected (width, height)") from None
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise ModelError(f"resolution {w}x{h}: width and height must be positive multiples of 8")
    if not 1 <= int(frames) <= 64:
        raise ModelError(f"frames {frames}: must be between 1 and 64")
    return w, h


def describe_files(source: WeightSource, root: Path | None = None) -> list[dict[str, Any]]:
    """Path, size and SHA-256 of every file of a checkpoint (read in chunks; no tensors loaded)."""
    out = []
    for f in source.files:
        out.append({"path": str(f), "size": f.stat().st_size, "sha256": file_sha256(f)})
    return out


# --------------------------------------------------------------------------- the target model


def meta_unet(cfg: Mapping[str, Any], where: str) -> TrackDiffusionUNet:
    """``TrackDiffusionUNet(**cfg)`` on the meta device (keys, shapes, config; no memory)."""
    try:
        with torch.device("meta"):
            return TrackDiffusionUNet(**cfg)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: cannot build a TrackDiffusion UNet from this config: {exc}") from None


def target_infos(model: TrackDiffusionUNet) -> dict[str, TensorInfo]:
    return {k: TensorInfo(v.dtype, tuple(v.shape)) for k, v in model.state_dict().items()}


def json_config(model: TrackDiffusionUNet) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.items() if not k.startswith("_")}


def _role(key: str) -> str:
    return _REPEATED.sub(lambda m: m.group(1) + ".#", key)


def zero_initialised_roles(cfg: Mapping[str, Any]) -> set[str]:
    """Roles (keys with block/layer indices replaced by ``#``) that a new TrackDiffusionUNet with the
    switches of ``cfg`` initialises to zero, read off a tiny model built with those switches."""
    switches = {k: cfg[k] for k in ("frame_embedding", "use_fuser", "use_instance_embedding", "use_enhancer",
                                    "enhancer_placement") if k in cfg}
    smallest = dict(block_out_channels=(8, 16), attention_head_dim=8, cross_attention_dim=8, transformer_in_heads=1,
                    position_net_hidden_dim=8, motion_embed_dim=8, motion_attention_heads=1,
                    motion_attention_head_dim=8, box_fourier_freqs=1, max_slots=2, max_frames=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TrackDiffusionUNet(**tiny_config(**smallest, **switches))  # ~0.1 M parameters
    zero: set[str] = set()
    nonzero: set[str] = set()
    for key, value in model.state_dict().items():
        (nonzero if bool(value.any()) else zero).add(_role(key))
    both = zero & nonzero
    if both:  # pragma: no cover - guards a model change this code cannot follow
        raise RuntimeError(f"cannot tell how {sorted(both)[0]} is initialised")
    return zero


class FreshTensors:
    """Tensors of a meta-device model, materialised on demand one module at a time and initialised
    as the model's constructor does (``reset_parameters`` of each layer, then the parameters the
    model zero-initialises set to zero). Deterministic in the seed and the order of requests."""

    def __init__(self, model: TrackDiffusionUNet, keys: Sequence[str], cfg: Mapping[str, Any]) -> None:
        self._model = model
        self._wanted = set(keys)
        self._cfg = dict(cfg)
        self._zero: set[str] | None = None  # read off a reference model when first needed
        self._cache: dict[str, torch.Tensor] = {}

    def tensor(self, key: str) -> torch.Tensor:
        if key not in self._cache:
            self._materialise(key)
        return self._cache.pop(key)

    def _materialise(self, key: str) -> None:
        if self._zero is None:
            self._zero = zero_initialised_roles(self._cfg)
        path, _, _ = key.rpartition(".")
        module = self._model.get_submodule(path) if path else self._model
        own = dict(module.named_parameters(recurse=False))
        own.update({n: b for n, b in module.named_buffers(recurse=False)
                    if n not in module._non_persistent_buffers_set})
        reset = getattr(module, "reset_parameters", None)
        values: dict[str, torch.Tensor] = {}
        if callable(reset):
            fresh = copy.deepcopy(module)
            fresh.to_empty(device="cpu", recurse=False)
            with torch.no_grad():
                fresh.reset_parameters()
            values = {n: t.detach() for n, t in fresh.named_parameters(recurse=False)}
            values.update({n: b for n, b in fresh.named_buffers(recurse=False) if n in own})
        for name, meta in own.items():
            full = f"{path}.{name}" if path else name
            if full not in self._wanted:
                continue
            value = values.get(name)
            if _role(full) in self._zero:
                value = torch.zeros(meta.shape, dtype=meta.dtype)
            elif value is None:  # pragma: no cover - a model change this code cannot follow
                raise RuntimeError(f"cannot initialise {full}: no reset_parameters and not zero-initialised")
            self._cache[full] = value
            self._wanted.discard(full)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed the global torch RNG for the block (layers' ``reset_parameters`` use it), then restore it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


# --------------------------------------------------------------------------- the plan and the UNet file


@dataclass
class Take:
    """A target tensor taken from a source checkpoint."""

    source: str
    key: str
    reshape: bool = False


def dominant_float_dtype(infos: Sequence[TensorInfo]) -> torch.dtype:
    counts: dict[torch.dtype, int] = {}
    for info in infos:
        if info.dtype.is_floating_point:
            counts[info.dtype] = counts.get(info.dtype, 0) + info.numel
    return max(counts, key=counts.get) if counts else torch.float32


def fill_report(report: ImportReport, target: Mapping[str, TensorInfo], takes: Mapping[str, Take]) -> list[str]:
    """Group counts, ``found_from`` and ``fresh`` of ``report``; returns the fresh keys in order."""
    groups = empty_groups()
    fresh: list[str] = []
    for key, info in target.items():
        g = groups.setdefault(key_group(key), GroupCount())
        g.tensors += 1
        g.params += info.numel
        if key in takes:
            g.found += 1
            g.params_found += info.numel
            src = takes[key].source
            report.found_from[src] = report.found_from.get(src, 0) + 1
        else:
            g.fresh += 1
            report.fresh.setdefault(key_group(key), []).append(key)
            fresh.append(key)
    report.groups = {k: v for k, v in groups.items() if v.tensors}
    return fresh


def write_unet(unet_dir: Path, model: TrackDiffusionUNet, target: Mapping[str, TensorInfo],
               takes: Mapping[str, Take], sources: Mapping[str, WeightSource], cfg: Mapping[str, Any],
               dtype: torch.dtype, seed: int, report: ImportReport, progress: Progress | None) -> str:
    """Write ``unet_dir`` (config.json + diffusion_pytorch_model.safetensors), streaming each tensor
    from its source or making it fresh; returns the weights file's SHA-256."""
    unet_dir.mkdir(parents=True, exist_ok=True)
    model.save_config(str(unet_dir))
    fresh_keys = [k for k in target if k not in takes]
    fresh = FreshTensors(model, fresh_keys, cfg)
    out_dtype = {k: (dtype if info.dtype.is_floating_point else info.dtype) for k, info in target.items()}
    for key, take in takes.items():
        have = sources[take.source].info(take.key).dtype
        if have != out_dtype[key]:
            report.cast.append({"key": key, "from": str(have).replace("torch.", ""),
                                "to": str(out_dtype[key]).replace("torch.", "")})
    specs = safetensors_order((k, out_dtype[k], info.shape) for k, info in target.items())
    total = len(specs)
    done = [0]

    def produce(key: str) -> torch.Tensor:
        take = takes.get(key)
        shape = target[key].shape
        if take is not None:
            t = sources[take.source].read(take.key)
            if tuple(t.shape) != shape:
                t = t.reshape(shape)  # only 1x1-conv projections get here (checked by the planners)
        else:
            t = fresh.tensor(key)
        return t.to(out_dtype[key]) if t.dtype != out_dtype[key] else t

    def tick(key: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total, key)

    with seeded(seed):
        return write_safetensors(unet_dir / "diffusion_pytorch_model.safetensors", specs, produce,
                                 metadata={"format": "pt"}, on_tensor=tick)


# --------------------------------------------------------------------------- the other components

_COMPONENT_STEMS = {"vae": ("diffusion_pytorch_model",), "text_encoder": ("model", "pytorch_model")}
_CANONICAL = {"vae": "diffusion_pytorch_model.safetensors", "text_encoder": "model.safetensors"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".msgpack", ".h5", ".ckpt", ".onnx", ".onnx_data", ".pb", ".pt",
                    ".pth", ".index.json")


@dataclass
class ComponentPlan:
    name: str
    folder: Path
    weights: Path | None = None


def check_components(root: Path, *, what: str, cross_attention_dim: int, latent_channels: int,
                     notes: list[str]) -> list[ComponentPlan]:
    """Check ``root``'s vae/, text_encoder/, tokenizer/ and scheduler/ (before anything is written)
    and pick the weights file of each; :class:`ModelError` naming the first problem."""
    if not root.exists():
        raise ModelError(f"{root}: no such directory ({what})")
    if not root.is_dir():
        raise ModelError(f"{root}: not a directory ({what})")
    plans = []
    for name in ("vae", "text_encoder", "tokenizer", "scheduler"):
        folder = root / name
        if not folder.is_dir():
            raise ModelError(f"{root}: {name}/ is missing ({what})")
        plans.append(ComponentPlan(name, folder))
    vae_cfg = read_json(root / "vae" / "config.json", "the VAE's config")
    if vae_cfg.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise ModelError(f"{root / 'vae'}: a {vae_cfg.get('_class_name')}, expected AutoencoderKL")
    if int(vae_cfg.get("latent_channels", 4)) != int(latent_channels):
        raise ModelError(f"{root / 'vae'}: {vae_cfg.get('latent_channels')} latent channels, but the UNet takes "
                         f"{latent_channels}")
    text_cfg = read_json(root / "text_encoder" / "config.json", "the text encoder's config")
    hidden = text_cfg.get("hidden_size", text_cfg.get("text_config", {}).get("hidden_size"))
    if hidden != cross_attention_dim:
        raise ModelError(
            f"{root / 'text_encoder'}: hidden size {hidden}, but the UNet's cross-attention takes {cross_attention_dim}"
            + (" (a Stable Diffusion 2.x or ModelScope text encoder is 1024 wide; pass a Stable Diffusion 1.x "
               "directory, whose CLIP ViT-L/14 encoder is 768 wide)" if hidden == 1024 else "")
        )
    tok = root / "tokenizer"
    if not ((tok / "tokenizer.json").is_file() or ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file())):
        raise ModelError(f"{tok}: no tokenizer files (tokenizer.json, or vocab.json and merges.txt)")
    read_json(root / "scheduler" / "scheduler_config.json", "the scheduler's config")
    for plan in plans:
        if plan.name in _COMPONENT_STEMS:
            plan.weights, note = find_weights_file(plan.folder, _COMPONENT_STEMS[plan.name])
            if note:
                notes.append(note)
            if not plan.weights.name.endswith(".safetensors"):
                notes.append(f"{plan.name}/{plan.weights.name} converted to safetensors")
    return plans


def copy_components(plans: Sequence[ComponentPlan], dest: Path) -> list[dict[str, Any]]:
    """Copy each component folder into ``dest`` (regular files only; of the weights only the chosen
    file, written under its standard name; a ``.bin`` or sharded one converted to safetensors tensor
    by tensor). Returns path, size and SHA-256 of each source weights file."""
    described = []
    for plan in plans:
        target = dest / plan.name
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(plan.folder.iterdir()):
            if not f.is_file() or (plan.weights is not None and f.name.endswith(_WEIGHT_SUFFIXES)):
                continue
            shutil.copyfile(f, target / f.name)
        if plan.weights is None:
            continue
        canonical = target / _CANONICAL[plan.name]
        if plan.weights.name.endswith(".safetensors"):
            with open_weights(plan.weights) as src:  # checks the header before copying
                files = describe_files(src)
            shutil.copyfile(plan.weights, canonical)
        else:
            with open_weights(plan.weights) as src:
                files = describe_files(src)
                specs = safetensors_order((k, src.info(k).dtype, src.info(k).shape) for k in src.keys())
                write_safetensors(canonical, specs, src.read, metadata={"format": "pt"})
        described.extend({"component": plan.name, **f} for f in files)
    return described


def record_sources(report: ImportReport, name: str, path: Path, files: list[dict[str, Any]], **extra: Any) -> None:
    report.sources[name] = {"path": str(path), **extra, "files": files}

