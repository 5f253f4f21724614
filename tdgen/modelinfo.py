"""The files of a model directory that are not weights: ``tdgen.json`` and ``model_index.json``.

A model is a local directory in diffusers layout::

    MODEL/
      model_index.json
      unet/          config.json + diffusion_pytorch_model.safetensors   (TrackDiffusionUNet)
      vae/           config.json + diffusion_pytorch_model.safetensors   (AutoencoderKL)
      text_encoder/  config.json + model.safetensors                     (CLIPTextModel)
      tokenizer/     vocab.json + merges.txt (or tokenizer.json) + tokenizer_config.json
      scheduler/     scheduler_config.json   (its noise schedule; sampling uses DPM-Solver++)
      tdgen.json     the ModelInfo record below

:class:`ModelInfo` is the one typed view of ``tdgen.json``: what the model was made for
(``resolution`` [W, H], ``frames``, ``slots``, ``prompt_template``, ``model_id``, optionally its
``domain``: ``{"name": "shapes", "categories": ["circle", ...]}``) and how it was made
(``weights``, ``created_by``, ``training``, ``training_history``, ``description``). Every other
module reads and writes the file through it, and the defaults for a file that leaves a key out
live here only (:data:`DEFAULT_FRAMES`, :data:`DEFAULT_SLOTS`, :data:`DEFAULT_PROMPT_TEMPLATE`).

This module needs neither torch nor the rest of tdgen, so the pipeline (above it) and
:mod:`tdgen.modeldir` (presets, lookup, the cache) can both import it.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__
from .atomic import atomic_write_text
from .errors import TdgenError

__all__ = [
    "COMPONENTS",
    "DEFAULT_FRAMES",
    "DEFAULT_PROMPT_TEMPLATE",
    "DEFAULT_SLOTS",
    "DomainRecord",
    "ModelDomain",
    "ModelError",
    "ModelInfo",
    "ModelWarning",
    "TDGEN_JSON",
    "check_model_dir",
    "domain_record",
    "read_tdgen_json",
    "write_model_index",
    "write_tdgen_json",
]

TDGEN_JSON = "tdgen.json"
DEFAULT_PROMPT_TEMPLATE = "a video of {categories}"
# A tdgen.json without "frames" is taken as a 16-frame model: the published TrackDiffusion weights
# and every default clip length in tdgen are 16 frames. Every writer in tdgen records "frames",
# so this only decides what a hand-written file means.
DEFAULT_FRAMES = 16
DEFAULT_SLOTS = 20  # track slots per clip of the published model

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
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


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class ModelDomain:
    """What a model was trained for, from its ``tdgen.json`` (see :meth:`ModelInfo.as_domain`).

    ``categories`` is None when the model does not record them (older models, imported weights):
    unknown, not empty. ``resolution`` is (W, H), None when not recorded; ``name`` is a short
    label of the domain ("shapes") when recorded.
    """

    categories: tuple[str, ...] | None
    resolution: tuple[int, int] | None
    frames: int
    model_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class DomainRecord:
    """``tdgen.json``'s ``domain``: the category names a model was trained on and a short name.

    ``categories`` as recorded (None: not recorded; an empty tuple is kept as written but means
    unknown too, see :attr:`ModelInfo.categories`); ``extra`` holds keys tdgen does not know.
    """

    categories: tuple[str, ...] | None = None
    name: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cats = self.categories
        if cats is not None:
            if isinstance(cats, str) or not all(isinstance(c, str) and c.strip() for c in cats):
                raise ModelError(f"DomainRecord: 'categories' must be category names, got {cats!r}")
            object.__setattr__(self, "categories", tuple(cats))
        if self.name is not None and not (isinstance(self.name, str) and self.name.strip()):
            raise ModelError(f"DomainRecord: 'name' must be a non-empty string, got {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        out = copy.deepcopy(dict(self.extra))
        if self.categories is not None:
            out["categories"] = list(self.categories)
        if self.name is not None:
            out["name"] = self.name
        return out


# provenance keys: kept typed when they have the type every tdgen writer gives them, else
# carried verbatim in ``extra`` (nothing is refused that was not refused before)
_STR_KEYS = ("model_id", "created_by", "description")
_DICT_KEYS = ("weights", "training")


@dataclass(frozen=True)
class ModelInfo:
    """``tdgen.json`` as a typed, immutable record.

    Fields hold what the file records, None where it records nothing; the ``effective_*``
    properties apply the defaults. ``extra`` carries every key tdgen does not know (and a
    provenance value of an unexpected type) so that read -> write gives back the same JSON.
    Construction checks the values (:class:`ModelError`); change one with
    :func:`dataclasses.replace`.
    """

    model_id: str | None = None
    resolution: tuple[int, int] | None = None  # (W, H) in pixels
    frames: int | None = None
    slots: int | None = None
    prompt_template: str | None = None
    domain: DomainRecord | None = None
    weights: Mapping[str, Any] | None = None  # how the weights were made (kind, sources, seed, ...)
    created_by: str | None = None  # the command that wrote the directory
    training: Mapping[str, Any] | None = None  # the training run that produced the weights
    training_history: tuple[Mapping[str, Any], ...] | None = None  # earlier runs, oldest first
    description: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resolution is not None:
            _check_resolution(self.resolution, "ModelInfo")
            object.__setattr__(self, "resolution", (int(self.resolution[0]), int(self.resolution[1])))
        for key in ("frames", "slots"):
            value = getattr(self, key)
            if value is not None:
                _check_positive(key, value, "ModelInfo")
        if self.prompt_template is not None and not isinstance(self.prompt_template, str):
            raise ModelError("ModelInfo: 'prompt_template' must be a string")
        if self.training_history is not None:
            object.__setattr__(self, "training_history", tuple(self.training_history))

    # ------------------------------------------------------------------ defaults applied

    @property
    def effective_frames(self) -> int:
        """``frames``, else :data:`DEFAULT_FRAMES`."""
        return int(self.frames) if self.frames is not None else DEFAULT_FRAMES

    @property
    def effective_slots(self) -> int:
        """``slots``, else :data:`DEFAULT_SLOTS`."""
        return int(self.slots) if self.slots is not None else DEFAULT_SLOTS

    @property
    def effective_prompt_template(self) -> str:
        """``prompt_template``, else :data:`DEFAULT_PROMPT_TEMPLATE`."""
        return self.prompt_template if self.prompt_template is not None else DEFAULT_PROMPT_TEMPLATE

    @property
    def categories(self) -> tuple[str, ...] | None:
        """The recorded domain categories; None when unknown (not recorded, or an empty list)."""
        cats = self.domain.categories if self.domain is not None else None
        return tuple(cats) if cats else None

    def as_domain(self) -> ModelDomain:
        """The :class:`ModelDomain` view that synth's fit warnings compare annotations with."""
        name = self.domain.name if self.domain is not None else None
        return ModelDomain(categories=self.categories, resolution=self.resolution, frames=self.effective_frames,
                           model_id=self.model_id or None, name=name or None)

    # ------------------------------------------------------------------ dict / file

    @classmethod
    def from_dict(cls, data: Any, *, source: str | os.PathLike = TDGEN_JSON) -> "ModelInfo":
        """Check and convert a parsed ``tdgen.json``; :class:`ModelError` ``"<source>: <what>"``."""
        if not isinstance(data, Mapping):
            raise ModelError(f"{source}: must hold a JSON object")
        rest = copy.deepcopy(dict(data))
        res = rest.get("resolution")
        if res is not None:
            _check_resolution(res, source)
            rest.pop("resolution")
        for key in ("frames", "slots"):
            if key in rest:
                _check_positive(key, rest[key], source)
        if "prompt_template" in rest and not isinstance(rest["prompt_template"], str):
            raise ModelError(f"{source}: 'prompt_template' must be a string")
        domain = _read_domain(rest.get("domain"), source)
        if domain is not None:
            rest.pop("domain")
        typed: dict[str, Any] = {
            "resolution": tuple(res) if res is not None else None,
            "frames": rest.pop("frames", None),
            "slots": rest.pop("slots", None),
            "prompt_template": rest.pop("prompt_template", None),
            "domain": domain,
        }
        for key in _STR_KEYS:
            if isinstance(rest.get(key), str):
                typed[key] = rest.pop(key)
        for key in _DICT_KEYS:
            if isinstance(rest.get(key), dict):
                typed[key] = rest.pop(key)
        history = rest.get("training_history")
        if isinstance(history, list) and all(isinstance(h, dict) for h in history):
            typed["training_history"] = tuple(rest.pop("training_history"))
        return cls(**typed, extra=rest)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``tdgen.json`` (a fresh copy; recorded keys only)."""
        out = copy.deepcopy(dict(self.extra))
        if self.resolution is not None:
            out["resolution"] = [int(self.resolution[0]), int(self.resolution[1])]
        for key in ("frames", "slots"):
            value = getattr(self, key)
            if value is not None:
                out[key] = int(value)
        for key in ("prompt_template", *_STR_KEYS):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.domain is not None:
            out["domain"] = self.domain.to_dict()
        for key in _DICT_KEYS:
            if getattr(self, key) is not None:
                out[key] = copy.deepcopy(dict(getattr(self, key)))
        if self.training_history is not None:
            out["training_history"] = [copy.deepcopy(dict(h)) for h in self.training_history]
        return out

    @classmethod
    def read(cls, model_dir: str | os.PathLike) -> "ModelInfo":
        """The checked ``tdgen.json`` of ``model_dir``; :class:`ModelError` when missing or malformed."""
        file = Path(model_dir) / TDGEN_JSON
        if not file.is_file():
            raise ModelError(f"{model_dir}: tdgen.json is missing (it records resolution, frames, slots and prompt "
                             f"template; `tdgen model import-official` writes one)")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{file}: not valid JSON: {exc}") from None
        except OSError as exc:
            raise ModelError(f"{file}: cannot read: {exc.strerror or exc}") from None
        return cls.from_dict(data, source=file)

    def write(self, model_dir: str | os.PathLike) -> Path:
        """Write ``model_dir/tdgen.json`` atomically (sorted keys, 2-space indent)."""
        return write_tdgen_json(model_dir, self)


def _check_resolution(res: Any, source: str | os.PathLike) -> None:
    if not (isinstance(res, (list, tuple)) and len(res) == 2
            and all(isinstance(x, int) and x > 0 and x % 8 == 0 for x in res)):
        raise ModelError(f"{source}: 'resolution' must be [width, height], positive multiples of 8, "
                         f"got {list(res) if isinstance(res, tuple) else res!r}")


def _check_positive(key: str, value: Any, source: str | os.PathLike) -> None:
    if not (isinstance(value, int) and value > 0):
        raise ModelError(f"{source}: {key!r} must be a positive integer, got {value!r}")


def _read_domain(domain: Any, source: str | os.PathLike) -> DomainRecord | None:
    """A checked ``domain`` record; None when there is none (older models have none)."""
    if domain is None:
        return None
    if not isinstance(domain, dict):
        raise ModelError(f"{source}: 'domain' must be an object like {{\"categories\": [\"circle\", ...]}}, "
                         f"got {domain!r}")
    rest = dict(domain)
    cats = rest.pop("categories", None)
    if cats is not None and not (isinstance(cats, list) and all(isinstance(c, str) and c.strip() for c in cats)):
        raise ModelError(f"{source}: 'domain.categories' must be a list of category names, got {cats!r}")
    name = rest.pop("name", None)
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise ModelError(f"{source}: 'domain.name' must be a non-empty string, got {name!r}")
    if "categories" in domain and cats is None:
        rest["categories"] = None  # an explicit null: carried as written
    if "name" in domain and name is None:
        rest["name"] = None
    return DomainRecord(categories=tuple(cats) if cats is not None else None, name=name, extra=rest)


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


def read_tdgen_json(path: str | os.PathLike) -> dict[str, Any]:
    """The model's ``tdgen.json`` as a checked dict (:meth:`ModelInfo.read` then ``to_dict``)."""
    return ModelInfo.read(path).to_dict()


def write_tdgen_json(path: str | os.PathLike, info: ModelInfo | Mapping[str, Any]) -> Path:
    """Write ``path/tdgen.json`` atomically (sorted keys, 2-space indent): a :class:`ModelInfo`,
    or a mapping written as given (unchecked; :func:`read_tdgen_json` checks it)."""
    data = info.to_dict() if isinstance(info, ModelInfo) else dict(info)
    file = Path(path) / TDGEN_JSON
    atomic_write_text(file, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return file


# --------------------------------------------------------------------------- the directory


def check_model_dir(path: str | os.PathLike) -> None:
    """Raise :class:`ModelError` naming the first missing or malformed piece of a model directory
    (components, their configs, weights and tokenizer files, ``model_index.json``, ``tdgen.json``)."""
    path = Path(path)
    if not path.exists():
        # tdgen.modeldir.check_model_dir says this naming the presets too; they are its business
        raise ModelError(f"{path}: no such model directory (pass a directory made by `tdgen model init` or "
                         f"`tdgen model import-official`)")
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
    ModelInfo.read(path)


def write_model_index(path: str | os.PathLike) -> Path:
    """Write a diffusers ``model_index.json`` naming :class:`~tdgen.pipeline.TrackDiffusionPipeline`
    and its components (so ``TrackDiffusionPipeline.from_pretrained`` also works)."""
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
    # the installed distribution's version (what diffusers.__version__ says) without importing
    # diffusers, and so torch, just to write a JSON file
    import importlib.metadata

    try:
        return importlib.metadata.version("diffusers")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - the model extra is installed
        return "unknown"
