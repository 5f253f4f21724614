"""Model directories for ``--model``: presets, lookup, the cache, fingerprints and tiny models.

``--model`` takes a model directory (the layout of :mod:`tdgen.modelinfo`, which reads and writes
its ``tdgen.json`` as a :class:`~tdgen.modelinfo.ModelInfo`) or a preset name from ``presets/``
(``tiny``: a small randomly initialised model, built on first use into the cache and reused;
``default``: the bundled model). Nothing is ever downloaded.

The record and directory checks are re-exported from :mod:`tdgen.modelinfo` under their old names
here; loading weights goes through :meth:`tdgen.pipeline.TrackDiffusionPipeline.from_pretrained`,
imported only when a model is loaded or built (it needs torch).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from . import modelinfo
from .atomic import atomic_directory, atomic_write_text, give_plain_modes
from .modelinfo import (
    COMPONENTS,
    DEFAULT_PROMPT_TEMPLATE,
    TDGEN_JSON,
    ModelDomain,
    ModelError,
    ModelInfo,
    ModelWarning,
    domain_record,
    read_tdgen_json,
    write_model_index,
    write_tdgen_json,
)

__all__ = [
    "COMPONENTS",
    "DEFAULT_PROMPT_TEMPLATE",
    "ModelDomain",
    "ModelError",
    "ModelInfo",
    "ModelWarning",
    "Preset",
    "available_presets",
    "bundled_model_dir",
    "check_model_dir",
    "default_model",
    "describe_model",
    "domain_record",
    "init_tiny_model",
    "load_pipeline",
    "model_defaults",
    "model_domain",
    "model_fingerprint",
    "presets_dir",
    "read_preset",
    "read_tdgen_json",
    "resolve_model_dir",
    "write_model_index",
    "write_tdgen_json",
]


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A named model recipe from ``presets/<name>.toml``.

    ``kind = "random"`` builds a randomly initialised model of ``config`` (``tiny``) at
    ``resolution``/``frames`` with ``seed`` into the cache on first use; ``kind = "bundled"``
    points at a model directory shipped inside the package (``path``, relative to it).
    """

    name: str
    kind: str
    description: str
    values: Mapping[str, Any]
    file: Path


def presets_dir() -> Path:
    """The packaged presets folder (``tdgen/presets``; the repository's ``presets/`` is its source)."""
    return Path(__file__).resolve().parent / "presets"


def available_presets() -> list[str]:
    """Names of the presets that ship with this install."""
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def read_preset(name: str) -> Preset:
    """Read ``presets/<name>.toml``; :class:`ModelError` when there is none or it is malformed."""
    file = presets_dir() / f"{name}.toml"
    if not file.is_file():
        raise ModelError(f"no model directory or preset named {name!r} (presets: "
                         f"{', '.join(available_presets()) or 'none'}; or pass a model directory)")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{file}: not valid TOML: {exc}") from None
    kind = data.get("kind")
    if kind not in ("random", "bundled"):
        raise ModelError(f"{file}: 'kind' must be \"random\" or \"bundled\", got {kind!r}")
    return Preset(name=name, kind=kind, description=str(data.get("description", "")), values=data, file=file)


def bundled_model_dir() -> Path:
    """Where the package's bundled default model lives (it may be absent in a development tree)."""
    return Path(__file__).resolve().parent / "assets" / "default-model"


def default_model() -> str:
    """What ``--model`` means when it is not given: the ``default`` preset when its model ships
    with this install; otherwise :class:`ModelError` saying what to pass instead."""
    if (presets_dir() / "default.toml").is_file():
        preset = read_preset("default")
        target = _bundled_path(preset)
        if (target / "model_index.json").is_file():
            return "default"
    raise ModelError("no --model given and this install has no bundled default model; pass --model DIR "
                     "(a model directory) or --model tiny (random weights, to try the pipeline)")


def _bundled_path(preset: Preset) -> Path:
    rel = str(preset.values.get("path", "assets/default-model"))
    return (Path(__file__).resolve().parent / rel).resolve()


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tdgen" / "models"


def _preset_model_dir(preset: Preset) -> Path:
    if preset.kind == "bundled":
        path = _bundled_path(preset)
        if not path.is_dir():
            raise ModelError(f"preset {preset.name!r}: its model directory {path} is not in this install")
        return path
    v = preset.values
    recipe = {"preset": preset.name, "config": v.get("config", "tiny"), "seed": int(v.get("seed", 0)),
              "resolution": list(v.get("resolution", [128, 128])), "frames": int(v.get("frames", 8)),
              "slots": int(v.get("slots", 20)), "format": _RANDOM_MODEL_FORMAT}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    path = _cache_root() / f"{preset.name}-{digest}"
    if not (path / TDGEN_JSON).is_file():
        try:
            init_tiny_model(path, seed=recipe["seed"], resolution=tuple(recipe["resolution"]),
                            frames=recipe["frames"], slots=recipe["slots"], overwrite=True,
                            model_id=f"{preset.name}-random")
        except OSError as exc:
            raise ModelError(f"preset {preset.name!r}: cannot build its model in {path}: {exc.strerror or exc}") from None
    return path


# --------------------------------------------------------------------------- directories


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """A model directory for ``--model``: an existing directory (checked), else a preset name."""
    path = Path(model).expanduser()
    if path.exists() or os.sep in str(model) or str(model).startswith("."):
        check_model_dir(path)
        return path
    preset = read_preset(str(model))
    path = _preset_model_dir(preset)
    check_model_dir(path)
    return path


def check_model_dir(path: str | os.PathLike) -> None:
    """Raise :class:`ModelError` naming the first missing piece of a model directory
    (:func:`tdgen.modelinfo.check_model_dir`; a missing directory's message names the presets)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model directory (pass a directory made by `tdgen model init` or "
                         f"`tdgen model import-official`, or a preset: {', '.join(available_presets())})")
    modelinfo.check_model_dir(path)


def model_domain(model_dir: str | os.PathLike) -> ModelDomain:
    """The :class:`ModelDomain` of a model directory (its ``tdgen.json`` is read and checked; no
    weights are loaded). :class:`ModelError` when ``tdgen.json`` is missing or malformed."""
    return ModelInfo.read(model_dir).as_domain()


def describe_model(model: str | os.PathLike, model_dir: str | os.PathLike, domain: ModelDomain) -> str:
    """How warnings name a model: ``the bundled shapes model (tdgen-shapes-v1)`` for the bundled
    one, else ``model <what --model said> (<model_id>)``."""
    ident = f" ({domain.model_id})" if domain.model_id else ""
    try:
        bundled = Path(model_dir).resolve() == bundled_model_dir().resolve()
    except OSError:
        bundled = False
    if bundled:
        return f"the bundled {domain.name + ' ' if domain.name else ''}model{ident}"
    return f"model {model}{ident}"


def model_defaults(model: str | os.PathLike) -> dict[str, Any]:
    """``frames``, ``slots``, ``prompt_template``, ``resolution`` a model was made for (its
    :class:`ModelInfo` with the defaults applied; ``resolution`` (W, H) or None), its ``domain``
    (:class:`ModelDomain`) and ``label`` (how messages name it); no weights loaded."""
    model_dir = resolve_model_dir(model)
    info = ModelInfo.read(model_dir)
    domain = info.as_domain()
    return {
        "frames": info.effective_frames,
        "slots": info.effective_slots,
        "prompt_template": info.effective_prompt_template,
        "resolution": info.resolution,
        "domain": domain,
        "label": describe_model(model, model_dir, domain),
    }


def model_fingerprint(path: str | os.PathLike, *, full_hash_below: int = 64 << 20) -> str:
    """A short hex id of a model directory's content: SHA-256 over every file's relative path, size
    and bytes. Files of ``full_hash_below`` bytes or more are sampled (first and last 4 MiB plus the
    size) so fingerprinting a multi-GB model stays fast; the manifest records it with each clip."""
    root = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = file.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size < full_hash_below:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            else:
                h.update(f.read(4 << 20))
                f.seek(size - (4 << 20))
                h.update(f.read(4 << 20))
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- loading


def load_pipeline(path: str | os.PathLike, *, device: str = "cpu", dtype: Any = None):
    """Load a checked model directory as a :class:`~tdgen.pipeline.TrackDiffusionPipeline`
    (:meth:`~tdgen.pipeline.TrackDiffusionPipeline.from_pretrained`: components from their
    subfolders, the UNet in eval mode, DPM-Solver++ on the saved noise schedule; ``dtype`` a
    ``torch.dtype``, default float32). Errors name the directory and component."""
    from .pipeline import TrackDiffusionPipeline  # torch and diffusers: only once a model is loaded

    check_model_dir(path)
    return TrackDiffusionPipeline.from_pretrained(path, device=device, torch_dtype=dtype)


# --------------------------------------------------------------------------- tiny random model

_RANDOM_MODEL_FORMAT = 1


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table (256 characters)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    order = printable[:]
    for b in range(256):
        if b not in printable:
            order.append(b)
            codes.append(256 + extra)
            extra += 1
    table = dict(zip(order, codes))
    return [chr(table[b]) for b in range(256)]


def write_byte_tokenizer(path: str | os.PathLike, max_length: int = 77) -> Path:
    """Write a CLIP tokenizer with a byte-level vocabulary and no merges (514 tokens): every text
    tokenizes to its bytes, so it needs no downloaded vocabulary. For tiny and trained-here models."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    atomic_write_text(path / "vocab.json", json.dumps(vocab, ensure_ascii=False) + "\n")
    atomic_write_text(path / "merges.txt", "#version: 0.2\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
        "clean_up_tokenization_spaces": True,
    }
    atomic_write_text(path / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(path / "special_tokens_map.json", json.dumps(
        {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, indent=2) + "\n")
    return path


def tiny_component_configs(*, text_width: int = 32, text_layers: int = 2, max_length: int = 77) -> dict[str, dict]:
    """Configs of the tiny VAE (8x, 4 latent channels) and CLIP text encoder used by ``tiny``."""
    vae = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [16, 16, 32, 32],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "latent_channels": 4,
        "sample_size": 128,
        "scaling_factor": 0.18215,
    }
    text = {
        "vocab_size": 514,
        "hidden_size": text_width,
        "intermediate_size": text_width * 2,
        "num_hidden_layers": text_layers,
        "num_attention_heads": 4,
        "max_position_embeddings": max_length,
        "bos_token_id": 512,
        "eos_token_id": 513,
        "pad_token_id": 513,
        "projection_dim": text_width,
    }
    return {"vae": vae, "text_encoder": text}


def init_tiny_model(
    output: str | os.PathLike,
    *,
    seed: int = 0,
    resolution: tuple[int, int] | None = (128, 128),
    frames: int = 8,
    slots: int = 20,
    overwrite: bool = False,
    model_id: str = "tiny-random",
    unet_overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Write a randomly initialised tiny model directory (a few million parameters, every module of
    the full model; injector and fuser gates at zero as at the start of training).

    The output is deterministic in ``seed`` and written atomically: a crash leaves no directory.
    """
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from .model.unet import TrackDiffusionUNet, tiny_config
    from .pipeline import default_scheduler, quiet_libraries

    resolution = tuple(resolution or (128, 128))
    w, h = (int(x) for x in resolution)
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise ModelError(f"resolution {w}x{h}: width and height must be positive multiples of 8")
    if not 1 <= frames <= 64:
        raise ModelError(f"frames {frames}: must be between 1 and 64")
    output = Path(output)
    if output.exists() and not overwrite:
        raise ModelError(f"{output} exists; pass --overwrite to replace it")
    comps = tiny_component_configs()
    cfg = tiny_config(max_frames=max(frames, 16), max_slots=max(slots, 1), sample_size=[h // 8, w // 8],
                      cross_attention_dim=comps["text_encoder"]["hidden_size"])
    cfg.update(unet_overrides or {})
    quiet_libraries()
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        unet = TrackDiffusionUNet(**cfg)
        vae = AutoencoderKL(**comps["vae"])
        text_encoder = CLIPTextModel(CLIPTextConfig(**comps["text_encoder"]))
    finally:
        torch.random.set_rng_state(state)
    with atomic_directory(output, overwrite=overwrite) as tmp:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        vae.save_pretrained(tmp / "vae", safe_serialization=True)
        text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
        write_byte_tokenizer(tmp / "tokenizer", max_length=comps["text_encoder"]["max_position_embeddings"])
        default_scheduler().save_config(tmp / "scheduler")
        write_model_index(tmp)
        ModelInfo(model_id=model_id, resolution=(w, h), frames=int(frames), slots=int(slots),
                  prompt_template=DEFAULT_PROMPT_TEMPLATE,
                  weights={"kind": "random", "seed": int(seed), "unet_config": "tiny"},
                  created_by="tdgen model init --preset tiny").write(tmp)
        give_plain_modes(tmp)  # safetensors writes its files 0600
    return output
