"""The noise schedule, read once for sampling and for training.

A model directory's ``scheduler/scheduler_config.json`` records the noise schedule its UNet was
trained under. Sampling (DPM-Solver++) and training (DDPM noising) must both follow that same
schedule, so both build their scheduler from :func:`noise_schedule`: one list of keys, one set of
defaults (Stable Diffusion 1.x's: 1000 steps, scaled_linear 0.00085-0.012, epsilon).

``rescale_betas_zero_snr`` is part of the schedule: a UNet trained on zero-terminal-SNR betas
must be sampled on them too, and one trained without must not be. It is therefore taken from the
model's config for both (off when absent, as in Stable Diffusion and the published weights).
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import UsageError

__all__ = ["NOISE_SCHEDULE_DEFAULTS", "noise_schedule", "sampling_scheduler", "training_scheduler"]

NOISE_SCHEDULE_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
}
# the keys that define the schedule (and so travel from a model's config into either scheduler)
_SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                  "prediction_type", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def noise_schedule(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The schedule keys of a scheduler ``config`` (any diffusers scheduler's), defaults filled in."""
    kw = dict(NOISE_SCHEDULE_DEFAULTS)
    for key in _SCHEDULE_KEYS:
        if config is not None and config.get(key) is not None:
            kw[key] = config[key]
    return kw


def sampling_scheduler(config: Mapping[str, Any] | None = None):
    """DPM-Solver++ 2M (deterministic multistep) on the schedule of ``config``."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **noise_schedule(config))


def training_scheduler(config: Mapping[str, Any] | None = None):
    """A DDPM scheduler (noising and targets for training) on the schedule of ``config``."""
    from diffusers import DDPMScheduler

    kw = noise_schedule(config)
    if kw["prediction_type"] not in PREDICTION_TYPES:
        raise UsageError(f"the model's scheduler predicts {kw['prediction_type']!r}; training supports "
                         "epsilon, v_prediction and sample")
    return DDPMScheduler(**kw)
