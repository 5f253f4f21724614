"""Sampling and training follow one noise schedule, read from the model's scheduler config."""

from __future__ import annotations

import numpy as np
import pytest

from tdgen.errors import UsageError
from tdgen.pipeline import default_scheduler
from tdgen.schedulers import noise_schedule
from tdgen.train.loop import noise_scheduler_from

CONFIGS = [
    None,
    {},
    {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "num_train_timesteps": 500},
    {"rescale_betas_zero_snr": True, "prediction_type": "v_prediction", "timestep_spacing": "trailing"},
    {"rescale_betas_zero_snr": False, "steps_offset": 1},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_train_and_synth_use_the_same_schedule(config):
    sample, train = default_scheduler(config), noise_scheduler_from(config)
    for key, value in noise_schedule(config).items():
        assert sample.config[key] == value, key
        assert train.config[key] == value, key
    # the same noise levels, so a UNet is sampled on the schedule it was trained on (on a zero-SNR
    # schedule diffusers' DPM-Solver lifts the last level from 0 to 2^-24 to keep its log finite)
    a, b = sample.alphas_cumprod.numpy(), train.alphas_cumprod.numpy()
    np.testing.assert_allclose(a[:-1], b[:-1], rtol=1e-6)
    assert abs(float(a[-1]) - float(b[-1])) <= 2.0 ** -24


def test_zero_terminal_snr_reaches_both():
    plain = noise_scheduler_from(None).alphas_cumprod[-1].item()
    zero = {"rescale_betas_zero_snr": True}
    assert default_scheduler(zero).config.rescale_betas_zero_snr
    assert noise_scheduler_from(zero).alphas_cumprod[-1].item() < plain / 100


def test_an_unknown_prediction_type_is_refused_for_training():
    with pytest.raises(UsageError, match="predicts 'flow'"):
        noise_scheduler_from({"prediction_type": "flow"})
