"""Named sampler settings for ``tdgen synth --preset``: the default and the measured faster one.

The default is the published sampler (DPM-Solver++ 50 steps, CFG 5.0) and stays so. ``fast`` was
added because it was measured to keep recall@0.5 within 0.02 of the default: bundled shapes
model, the 60 held-out clips of ``examples/eval_default_model.sh``, ``tdgen eval`` (README, "Fewer
steps"): 50 steps 0.741, 25 steps 0.727 (identity consistency 0.821 vs 0.819), 15 steps 0.725
(identity 0.800: kept out of the presets, it loses identity). Explicit ``--steps``/``--cfg``
override a preset's values.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["SamplerPreset", "SAMPLER_PRESETS", "resolve_sampler"]


@dataclass(frozen=True)
class SamplerPreset:
    """Steps and guidance scale of one named sampler setting."""

    name: str
    steps: int
    guidance: float
    summary: str


SAMPLER_PRESETS: dict[str, SamplerPreset] = {
    p.name: p for p in (
        SamplerPreset("default", 50, 5.0, "DPM-Solver++ 50 steps, CFG 5.0 (the published sampler)"),
        SamplerPreset("fast", 25, 5.0, "25 steps, CFG 5.0: half the time; recall@0.5 0.727 vs 0.741 on the "
                                       "shapes held-out clips"),
    )
}


def resolve_sampler(preset: str | None, steps: int | None, guidance: float | None) -> tuple[int, float]:
    """``(steps, guidance)``: the explicit values where given, else the preset's (default: ``default``)."""
    name = preset or "default"
    if name not in SAMPLER_PRESETS:
        raise UsageError(f"--preset {name}: unknown (choose from {', '.join(SAMPLER_PRESETS)})")
    p = SAMPLER_PRESETS[name]
    return (p.steps if steps is None else steps), (p.guidance if guidance is None else guidance)
