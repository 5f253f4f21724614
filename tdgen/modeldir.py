"""Model directories (DESIGN §6): find, check, load, fingerprint and create them.

A model is a local directory in diffusers layout::

    MODEL/
      model_index.json
      unet/          config.json + diffusion_pytorch_model.safetensors   (TrackDiffusionUNet)
      vae/           config.json + diffusion_pytorch_model.safetensors   (AutoencoderKL)
      text_encoder/  config.json + model.safetensors                     (CLIPTextModel)
      tokenizer/     vocab.json + merges.txt (or tokenizer.json) + tokenizer_config.json
      scheduler/     scheduler_config.json   (its noise schedule; sampling uses DPM-Solver++)
      tdgen.json     what tdgen needs: resolution [W, H], frames, slots, prompt_template,
                     model_id, how the weights were made, and optionally its domain:
                     ``"domain": {"name": "shapes", "categories": ["circle", ...]}`` (what it
                     was trained on; missing in older models, which means unknown)

``--model`` takes such a directory or a preset name from ``presets/`` (``tiny``: a small randomly
initialised model, built on first use into the cache and reused). Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .atomic import atomic_directory, atomic_write_text
from .errors import TdgenError

__all__ = [
    "COMPONENTS",
    "DEFAULT_PROMPT_TEMPLATE",
    "ModelDomain",
    "ModelError",
    "Preset",
    "available_presets",
    "bundled_model_dir",
    "check_model_dir",
    "default_model",
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

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DEFAULT_PROMPT_TEMPLATE = "a video of {categories}"
TDGEN_JSON = "tdgen.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_CONFIG_FILES = {
    "unet": ("config.json",),
    "vae": ("config.json",),
    "text_encoder": ("config.json",),
    "scheduler": ("scheduler_config.json",),
}


class ModelError(TdgenError):
    """A model directory or preset that cannot be used (exit 2): names the path and what is wrong."""

    exit_code = 2


class ModelWarning(UserWarning):
    """A model directory that loads, but not quite as written (e.g. weights its config leaves unused)."""


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
    """Raise :class:`ModelError` naming the first missing piece of a model directory."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model directory (pass a directory made by `tdgen model init` or "
                         f"`tdgen model import-official`, or a preset: {', '.join(available_presets())})")
    if not path.is_dir():
        raise ModelError(f"{path}: not a directory (a model is a directory with unet/, vae/, text_encoder/, "
                         f"tokenizer/, scheduler/ and tdgen.json)")
    for comp in COMPONENTS:
        sub = path / comp
        if not sub.is_dir():
            raise ModelError(f"{path}: incomplete model directory: {comp}/ is missing")
        for name in _CONFIG_FILES.get(comp, ()):
            if not (sub / name).is_file():
                raise ModelError(f"{sub}: {name} is missing")
        if comp in ("unet", "vae", "text_encoder") and not any(
            f.name.endswith(_WEIGHT_SUFFIXES) for f in sub.iterdir()
        ):
            raise ModelError(f"{sub}: no weights (*.safetensors or *.bin)")
        if comp == "tokenizer" and not (
            (sub / "tokenizer.json").is_file() or ((sub / "vocab.json").is_file() and (sub / "merges.txt").is_file())
        ):
            raise ModelError(f"{sub}: no tokenizer files (tokenizer.json, or vocab.json and merges.txt)")
    index = path / "model_index.json"
    if not index.is_file():
        # diffusers' own loaders need it, and its absence means an incomplete copy or export
        raise ModelError(f"{path}: incomplete model directory: model_index.json is missing")
    try:
        index_doc = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{index}: not valid JSON: {exc}") from None
    except OSError as exc:
        raise ModelError(f"{index}: cannot read: {exc.strerror or exc}") from None
    if not isinstance(index_doc, dict):
        raise ModelError(f"{index}: must hold a JSON object")
    read_tdgen_json(path)


def read_tdgen_json(path: str | os.PathLike) -> dict[str, Any]:
    """The model's ``tdgen.json`` (checked); :class:`ModelError` when missing or malformed."""
    file = Path(path) / TDGEN_JSON
    if not file.is_file():
        raise ModelError(f"{path}: tdgen.json is missing (it records resolution, frames, slots and prompt "
                         f"template; `tdgen model import-official` writes one)")
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{file}: not valid JSON: {exc}") from None
    if not isinstance(info, dict):
        raise ModelError(f"{file}: must hold a JSON object")
    res = info.get("resolution")
    if res is not None and not (
        isinstance(res, list) and len(res) == 2 and all(isinstance(x, int) and x > 0 and x % 8 == 0 for x in res)
    ):
        raise ModelError(f"{file}: 'resolution' must be [width, height], positive multiples of 8, got {res!r}")
    for key in ("frames", "slots"):
        if key in info and not (isinstance(info[key], int) and info[key] > 0):
            raise ModelError(f"{file}: {key!r} must be a positive integer, got {info[key]!r}")
    if "prompt_template" in info and not isinstance(info["prompt_template"], str):
        raise ModelError(f"{file}: 'prompt_template' must be a string")
    _check_domain(info.get("domain"), file)
    return info


def _check_domain(domain: Any, file: Path) -> None:
    """Refuse a malformed ``domain`` record (a missing one is fine: older models have none)."""
    if domain is None:
        return
    if not isinstance(domain, dict):
        raise ModelError(f"{file}: 'domain' must be an object like {{\"categories\": [\"circle\", ...]}}, "
                         f"got {domain!r}")
    cats = domain.get("categories")
    if cats is not None and not (isinstance(cats, list) and all(isinstance(c, str) and c.strip() for c in cats)):
        raise ModelError(f"{file}: 'domain.categories' must be a list of category names, got {cats!r}")
    name = domain.get("name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise ModelError(f"{file}: 'domain.name' must be a non-empty string, got {name!r}")


@dataclass(frozen=True)
class ModelDomain:
    """What a model was trained for, from its ``tdgen.json``.

    ``categories`` is None when the model does not record them (older models, imported weights):
    unknown, not empty. ``resolution`` is (W, H), None when not recorded; ``name`` is a short
    label of the domain ("shapes") when recorded.
    """

    categories: tuple[str, ...] | None
    resolution: tuple[int, int] | None
    frames: int
    model_id: str | None = None
    name: str | None = None


def model_domain(model_dir: str | os.PathLike) -> ModelDomain:
    """The :class:`ModelDomain` of a model directory (its ``tdgen.json`` is read and checked; no
    weights are loaded). :class:`ModelError` when ``tdgen.json`` is missing or malformed."""
    info = read_tdgen_json(model_dir)
    domain = info.get("domain") or {}
    cats = domain.get("categories")
    res = info.get("resolution")
    return ModelDomain(
        # an empty list records nothing useful either: treat it as unknown rather than "no category"
        categories=tuple(cats) if cats else None,
        resolution=(int(res[0]), int(res[1])) if res else None,
        frames=int(info.get("frames", 16)),
        model_id=str(info["model_id"]) if info.get("model_id") else None,
        name=str(domain["name"]) if domain.get("name") else None,
    )


def domain_record(categories: Iterable[str], name: str | None = None) -> dict[str, Any]:
    """The ``domain`` value for ``tdgen.json``: the category names a model was trained on (each
    once, in the order given) and, optionally, a short domain name."""
    seen: dict[str, None] = {}
    for c in categories:
        text = str(c).strip()
        if text:
            seen.setdefault(text, None)
    record: dict[str, Any] = {"categories": list(seen)}
    if name:
        record["name"] = str(name)
    return record


def write_tdgen_json(path: str | os.PathLike, info: Mapping[str, Any]) -> Path:
    """Write ``tdgen.json`` atomically (sorted keys, 2-space indent)."""
    file = Path(path) / TDGEN_JSON
    atomic_write_text(file, json.dumps(dict(info), indent=2, sort_keys=True) + "\n")
    return file


def write_model_index(path: str | os.PathLike) -> Path:
    """Write a diffusers ``model_index.json`` naming :class:`~tdgen.pipeline.TrackDiffusionPipeline`
    and its components (so ``TrackDiffusionPipeline.from_pretrained`` also works)."""
    from . import __version__

    index = {
        "_class_name": "TrackDiffusionPipeline",
        "_diffusers_version": _diffusers_version(),
        "_tdgen_version": __version__,
        "unet": ["tdgen", "TrackDiffusionUNet"],
        "vae": _vae_entry(Path(path) / "vae"),
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
    }
    file = Path(path) / "model_index.json"
    atomic_write_text(file, json.dumps(index, indent=2) + "\n")
    return file


def _vae_entry(vae_dir: Path) -> list[str]:
    try:
        name = json.loads((vae_dir / "config.json").read_text(encoding="utf-8")).get("_class_name")
    except (OSError, json.JSONDecodeError):
        name = None
    if name == "SpaceToDepthAutoencoder":
        return ["tdgen", "SpaceToDepthAutoencoder"]
    return ["diffusers", "AutoencoderKL"]


def _diffusers_version() -> str:
    try:
        import diffusers

        return diffusers.__version__
    except ImportError:  # pragma: no cover - the model extra is installed wherever this runs
        return "unknown"


def model_defaults(model: str | os.PathLike) -> dict[str, Any]:
    """``frames``, ``slots``, ``prompt_template``, ``resolution`` a model was made for, its
    ``domain`` (:class:`ModelDomain`) and ``label`` (how messages name it); no weights loaded."""
    from .synth.domain import describe_model

    model_dir = resolve_model_dir(model)
    info = read_tdgen_json(model_dir)
    domain = model_domain(model_dir)
    return {
        "frames": int(info.get("frames", 16)),
        "slots": int(info.get("slots", 20)),
        "prompt_template": str(info.get("prompt_template", DEFAULT_PROMPT_TEMPLATE)),
        "resolution": tuple(info["resolution"]) if info.get("resolution") else None,
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
    """Load a checked model directory as a :class:`~tdgen.pipeline.TrackDiffusionPipeline`.

    Components are loaded from their subfolders explicitly (no dynamic class lookup), the UNet in
    eval mode; the saved scheduler supplies the training noise schedule and sampling uses
    DPM-Solver++. ``dtype`` (a ``torch.dtype``, default float32) applies to UNet, VAE and text
    encoder. Errors name the directory and component.
    """
    import torch
    from transformers import CLIPTextModel, CLIPTokenizer

    from .model.autoencoder import load_autoencoder
    from .model.unet import TrackDiffusionUNet
    from .pipeline import TrackDiffusionPipeline, default_scheduler

    _quiet_libraries()
    root = Path(path)
    check_model_dir(root)
    info = read_tdgen_json(root)
    dtype = dtype or torch.float32

    def load(comp: str, fn):
        try:
            return fn(str(root / comp))
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{root / comp}: cannot load {comp}: {first}") from None

    unet, unet_info = load("unet", lambda p: TrackDiffusionUNet.from_pretrained(p, torch_dtype=dtype,
                                                                               output_loading_info=True))
    unused = sorted(unet_info["unexpected_keys"])
    if unused:
        warnings.warn(f"{root / 'unet'}: {len(unused)} weight tensors are not used by its config.json and were "
                      f"dropped (first: {unused[0]}); switched-off modules such as use_enhancer do this",
                      ModelWarning, stacklevel=2)
    vae = load("vae", lambda p: load_autoencoder(p, torch_dtype=dtype))
    text_encoder = load("text_encoder", lambda p: CLIPTextModel.from_pretrained(p, dtype=dtype)
                        if _transformers_major() >= 5 else CLIPTextModel.from_pretrained(p, torch_dtype=dtype))
    tokenizer = load("tokenizer", CLIPTokenizer.from_pretrained)
    sched_file = root / "scheduler" / "scheduler_config.json"
    try:
        sched_cfg = json.loads(sched_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{sched_file}: cannot read: {exc}") from None
    scheduler = default_scheduler(sched_cfg)
    for m in (unet, vae, text_encoder):
        m.eval()
        m.requires_grad_(False)
    pipe = TrackDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                  scheduler=scheduler)
    pipe.tdgen_config = info
    pipe.tdgen_unused_weights = unused  # UNet tensors in the files that this config has no place for
    try:
        pipe.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot move the model to {device!r}: {str(exc).splitlines()[0]}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _quiet_libraries() -> None:
    """Silence the libraries' own progress bars and info logs (tdgen shows its own progress)."""
    try:
        import diffusers.utils.logging as dlog

        dlog.disable_progress_bar()
        dlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    try:
        import transformers.utils.logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


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
    from .pipeline import default_scheduler

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
    _quiet_libraries()
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
        write_tdgen_json(tmp, {
            "model_id": model_id,
            "resolution": [w, h],
            "frames": int(frames),
            "slots": int(slots),
            "prompt_template": DEFAULT_PROMPT_TEMPLATE,
            "weights": {"kind": "random", "seed": int(seed), "unet_config": "tiny"},
            "created_by": "tdgen model init --preset tiny",
        })
    return output
