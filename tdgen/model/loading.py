"""Loading weights by key with a report.

:func:`load_state_dict_with_report` compares a state dict with a model, groups missing and
unexpected keys by module group, refuses partial loads unless ``strict=False`` and always refuses
shape mismatches (naming the key and both shapes). Nothing is written into the model before all
checks pass.

Groups: ``base`` (the video UNet), ``fusers`` (GLIGEN gated self-attention), ``position_net``
(grounding-token MLP and null features), ``instance_embedding``, ``motion_extractor``
(``position_net.tracklet_*``), ``frame_embeddings`` (``*.time_embedder``), ``injectors``,
``null_track_feat``, and ``unsupported`` (modules of published variants this model never builds:
``tracklet_attentions``, ``injector.{linear,attn3,ff_extra,norm4,norm5}``).

Spatial ``proj_in``/``proj_out`` weights stored as 1x1 convolutions ``(C, C, 1, 1)`` (SD/GLIGEN 2-D
checkpoints) are squeezed to the Linear layout and listed in ``LoadReport.converted``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

__all__ = [
    "GROUPS",
    "LoadReport",
    "WeightLoadError",
    "PartialLoadError",
    "ShapeMismatchError",
    "key_group",
    "read_state_dict",
    "load_state_dict_with_report",
    "load_weights",
]

GROUPS = (
    "base",
    "fusers",
    "position_net",
    "instance_embedding",
    "motion_extractor",
    "frame_embeddings",
    "injectors",
    "null_track_feat",
    "unsupported",
)

_UNSUPPORTED_INJECTOR_PARTS = (".injector.linear.", ".injector.attn3.", ".injector.ff_extra.",
                               ".injector.norm4.", ".injector.norm5.")


def key_group(key: str) -> str:
    """The module group of a state-dict key (see the module docstring)."""
    if ".tracklet_attentions." in key or any(p in key for p in _UNSUPPORTED_INJECTOR_PARTS):
        return "unsupported"
    if ".injector." in key:
        return "injectors"
    if ".fuser." in key:
        return "fusers"
    if "null_track_feat" in key:
        return "null_track_feat"
    if ".time_embedder." in key:
        return "frame_embeddings"
    if key.startswith("position_net."):
        if key.startswith("position_net.instance_embedding."):
            return "instance_embedding"
        if key.startswith("position_net.tracklet_"):
            return "motion_extractor"
        return "position_net"
    return "base"


def _grouped(keys: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in sorted(keys):
        out.setdefault(key_group(key), []).append(key)
    return {g: out[g] for g in GROUPS if g in out}


@dataclass
class LoadReport:
    """What a load did. ``missing``/``unexpected`` map group name -> sorted keys."""

    loaded: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    unexpected: dict[str, list[str]] = field(default_factory=dict)
    converted: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every model key was loaded and nothing was left over."""
        return not self.missing and not self.unexpected

    @property
    def unexpected_keys(self) -> list[str]:
        return [k for keys in self.unexpected.values() for k in keys]

    def summary(self, max_keys: int = 3) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.converted:
            lines.append(f"converted {len(self.converted)} 1x1-conv projections to Linear")
        for title, groups in (("missing", self.missing), ("unexpected", self.unexpected)):
            for group, keys in groups.items():
                shown = ", ".join(keys[:max_keys]) + (", ..." if len(keys) > max_keys else "")
                lines.append(f"{title} [{group}]: {len(keys)} ({shown})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


class WeightLoadError(RuntimeError):
    """Base class of weight-loading errors."""


class PartialLoadError(WeightLoadError):
    """Keys missing from the checkpoint or left over; pass ``strict=False`` to accept."""

    def __init__(self, report: LoadReport) -> None:
        self.report = report
        super().__init__(
            "refusing a partial load (pass strict=False to accept it):\n" + report.summary()
        )


class ShapeMismatchError(WeightLoadError, ValueError):
    """A checkpoint tensor has another shape than the model's parameter of the same key."""

    def __init__(self, key: str, expected: tuple[int, ...], got: tuple[int, ...], others: int = 0) -> None:
        self.key = key
        self.expected = expected
        self.got = got
        more = f" (and {others} more mismatching keys)" if others else ""
        super().__init__(
            f"shape mismatch for {key}: model expects {list(expected)}, checkpoint has {list(got)}{more}"
        )


def _is_conv_projection(key: str) -> bool:
    return key.endswith(".proj_in.weight") or key.endswith(".proj_out.weight")


def load_state_dict_with_report(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True
) -> LoadReport:
    """Load ``state_dict`` into ``model`` by key and return a :class:`LoadReport`.

    Raises:
        ShapeMismatchError: a shared key has different shapes (always, even with ``strict=False``).
        PartialLoadError: with ``strict=True`` (default), when keys are missing or unexpected.
            The model is left unchanged in both cases.
    """
    own = model.state_dict()
    report = LoadReport()
    usable: dict[str, torch.Tensor] = {}
    mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for key, value in state_dict.items():
        if key not in own:
            continue
        want = tuple(own[key].shape)
        have = tuple(value.shape)
        if want != have and _is_conv_projection(key) and len(have) == 4 and have[2:] == (1, 1) \
                and have[:2] == want:
            value = value.reshape(want)
            report.converted.append(key)
            have = want
        if want != have:
            mismatches.append((key, want, have))
            continue
        usable[key] = value
    if mismatches:
        key, want, have = mismatches[0]
        raise ShapeMismatchError(key, want, have, others=len(mismatches) - 1)

    report.missing = _grouped([k for k in own if k not in state_dict])
    report.unexpected = _grouped([k for k in state_dict if k not in own])
    report.loaded = sorted(usable)
    if strict and not report.complete:
        raise PartialLoadError(report)

    on_meta = any(t.is_meta for t in own.values())
    if on_meta:
        usable = {k: v.to(dtype=own[k].dtype) for k, v in usable.items()}
    result = model.load_state_dict(usable, strict=False, assign=on_meta)
    # The pre-checks above already account for everything; this guards against surprises.
    leftover = set(result.unexpected_keys)
    if leftover:  # pragma: no cover - defensive
        raise WeightLoadError(f"unexpected keys after validation: {sorted(leftover)[:5]}")
    return report


_WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)
_INDEX_FILES = ("diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json")


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix == ".json":
        index = json.loads(path.read_text())
        out: dict[str, torch.Tensor] = {}
        for shard in sorted(set(index["weight_map"].values())):
            out.update(_read_file(path.parent / shard))
        return out
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    return dict(obj)


def read_state_dict(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read weights from a file (``.safetensors``, ``.bin``/``.pt``, sharded ``*.index.json``) or a
    local model directory (its weights file, or that of its ``unet/`` subfolder)."""
    path = Path(source)
    if path.is_file():
        return _read_file(path)
    if path.is_dir():
        for name in _WEIGHT_FILES + _INDEX_FILES:
            if (path / name).is_file():
                return _read_file(path / name)
        if (path / "unet").is_dir():
            return read_state_dict(path / "unet")
        raise FileNotFoundError(
            f"{path}: no weights found; expected one of {', '.join(_WEIGHT_FILES + _INDEX_FILES)} "
            "here or in a unet/ subfolder"
        )
    raise FileNotFoundError(f"{path}: no such file or directory (pass a local weights file or model directory)")


def load_weights(
    model: nn.Module, source: Mapping[str, torch.Tensor] | str | os.PathLike, *, strict: bool = True
) -> LoadReport:
    """:func:`load_state_dict_with_report` from a state dict, a weights file or a directory."""
    state_dict = source if isinstance(source, Mapping) else read_state_dict(source)
    return load_state_dict_with_report(model, state_dict, strict=strict)
