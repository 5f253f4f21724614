"""What an import or a build from base checkpoints did: per module group, which tensors came from
a source checkpoint and which start fresh; which source tensors were not used and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..model.loading import GROUPS

__all__ = ["GROUP_LABELS", "GroupCount", "ImportReport", "SkippedTensor"]

GROUP_LABELS = {
    "base": "base UNet",
    "fusers": "GLIGEN fusers",
    "position_net": "instance tokens (position_net)",
    "instance_embedding": "identity embedding",
    "motion_extractor": "motion extractor",
    "frame_embeddings": "frame embeddings",
    "injectors": "injectors",
    "null_track_feat": "null instance features",
}

# How a freshly initialised tensor of each group starts (tdgen's TrackDiffusionUNet initialisation).
FRESH_START = {
    "base": "default layer initialisation; temporal convs end in a zero conv (identity)",
    "fusers": "gates (alpha_attn, alpha_dense) at zero: switched off until trained",
    "position_net": "default initialisation, null features at zero",
    "instance_embedding": "zero",
    "motion_extractor": "default initialisation (feeds only the injectors, whose gates are zero)",
    "frame_embeddings": "zero (adds nothing until trained)",
    "injectors": "gates (alpha_attn, alpha_dense) at zero: switched off until trained",
    "null_track_feat": "N(0, 1), as nn.Embedding (feeds only the injectors)",
}


@dataclass
class GroupCount:
    """Tensors (and parameters) of one module group in the written model."""

    tensors: int = 0
    found: int = 0
    fresh: int = 0
    params: int = 0
    params_found: int = 0


@dataclass
class SkippedTensor:
    """A source tensor that was not used, and why."""

    source: str
    key: str
    shape: list[int]
    reason: str


@dataclass
class ImportReport:
    """Result of :func:`~tdgen.weights.import_official` or :func:`~tdgen.weights.init_from_gligen`.

    ``groups``: per module group (see :data:`GROUP_LABELS`), how many tensors the written UNet has,
    how many were found in a source and how many start fresh. ``found_from``: tensors taken from
    each source. ``fresh``: keys that start fresh, per group. ``skipped``: source tensors not used,
    with the reason. ``converted``: 1x1-conv projections reshaped to Linear; ``cast``: tensors whose
    dtype changed. ``notes``: config values inferred from tensor shapes, files chosen, and anything
    else worth knowing.
    """

    kind: str
    output: str
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, GroupCount] = field(default_factory=dict)
    found_from: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[SkippedTensor] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    cast: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unet_config: dict[str, Any] = field(default_factory=dict)
    resolution: list[int] = field(default_factory=list)
    frames: int = 0
    slots: int = 0
    seed: int = 0
    unet_sha256: str | None = None

    # ------------------------------------------------------------------ derived

    @property
    def tensors(self) -> int:
        return sum(g.tensors for g in self.groups.values())

    @property
    def found(self) -> int:
        return sum(g.found for g in self.groups.values())

    @property
    def params(self) -> int:
        return sum(g.params for g in self.groups.values())

    def skipped_by_reason(self) -> dict[tuple[str, str], list[SkippedTensor]]:
        out: dict[tuple[str, str], list[SkippedTensor]] = {}
        for s in self.skipped:
            out.setdefault((s.source, s.reason), []).append(s)
        return out

    # ------------------------------------------------------------------ output

    def headline(self) -> str:
        what = {"official": "imported the published TrackDiffusion UNet",
                "gligen": "built the starting TrackDiffusion model from GLIGEN + ModelScope"}.get(self.kind, self.kind)
        return (f"{what} into {self.output}\n"
                f"  UNet: {self.tensors:,} tensors, {self.params:,} parameters; {self.found:,} tensors from the "
                "sources (" + ", ".join(f"{n}: {c:,}" for n, c in self.found_from.items()) + ")")

    def group_state(self, group: str) -> str:
        """'' when every tensor of ``group`` was found, else how its fresh tensors start."""
        c = self.groups[group]
        if not c.fresh:
            return ""
        return "partly fresh" if c.found else "fresh: " + FRESH_START.get(group, "new")

    def detail_lines(self, max_keys: int = 3) -> list[str]:
        """Everything after the group table: partly fresh groups, conversions, skipped tensors, notes."""
        out = []
        for g, keys in self.fresh.items():
            c = self.groups.get(g)
            if c is not None and c.found and keys:
                shown = ", ".join(keys[:max_keys]) + (", ..." if len(keys) > max_keys else "")
                out.append(f"  fresh in {GROUP_LABELS.get(g, g)}: {shown}")
        if self.converted:
            out.append(f"  converted {len(self.converted)} 1x1-conv projections (C, C, 1, 1) to Linear (C, C)")
        if self.cast:
            kinds = sorted({f"{c['from']} -> {c['to']}" for c in self.cast})
            out.append(f"  cast {len(self.cast)} tensors ({', '.join(kinds)})")
        for (source, reason), items in self.skipped_by_reason().items():
            shown = ", ".join(f"{s.key} {s.shape}" for s in items[:max_keys])
            shown += ", ..." if len(items) > max_keys else ""
            out.append(f"  not used from {source}: {len(items)} tensors: {reason} ({shown})")
        for note in self.notes:
            out.append(f"  note: {note}")
        if len(self.resolution) == 2:
            out.append(f"  model: {self.resolution[0]}x{self.resolution[1]}, {self.frames} frames, {self.slots} slots")
        return out

    def lines(self, max_keys: int = 3) -> list[str]:
        """A human summary: headline, a table of module groups, then the details."""
        out = self.headline().split("\n")
        width = max([len(GROUP_LABELS.get(g, g)) for g in self.groups] + [12])
        out.append(f"  {'module group':<{width}}  {'tensors':>7}  {'found':>7}  {'fresh':>7}")
        for g, c in self.groups.items():
            state = self.group_state(g)
            out.append(f"  {GROUP_LABELS.get(g, g):<{width}}  {c.tensors:>7,}  {c.found:>7,}  {c.fresh:>7,}"
                       + (f"  {state}" if state else ""))
        return out + self.detail_lines(max_keys)

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (``--json``)."""
        d = asdict(self)
        d["groups"] = {g: asdict(c) for g, c in self.groups.items()}
        d["tensors"] = self.tensors
        d["found"] = self.found
        d["params"] = self.params
        return d

    def summary_dict(self, max_keys: int = 20) -> dict[str, Any]:
        """A compact form for ``tdgen.json``: counts, notes and the first keys of each list."""
        skipped = [
            {"source": s, "reason": r, "count": len(items), "keys": [i.key for i in items[:max_keys]]}
            for (s, r), items in self.skipped_by_reason().items()
        ]
        return {
            "kind": self.kind,
            "groups": {g: asdict(c) for g, c in self.groups.items()},
            "found_from": dict(self.found_from),
            "fresh": {g: keys[:max_keys] + (["..."] if len(keys) > max_keys else []) for g, keys in self.fresh.items()},
            "skipped": skipped,
            "converted": len(self.converted),
            "cast": len(self.cast),
            "notes": list(self.notes),
            "seed": self.seed,
        }


def empty_groups() -> dict[str, GroupCount]:
    return {g: GroupCount() for g in GROUPS if g != "unsupported"}
