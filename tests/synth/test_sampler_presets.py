"""``synth --preset``: the named sampler settings reach the generator; explicit flags win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import tdgen
from tdgen.errors import UsageError
from tdgen.synth.sampler_presets import SAMPLER_PRESETS, resolve_sampler

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mot_mini_cocovid.json"


def test_the_default_is_the_published_sampler():
    assert resolve_sampler(None, None, None) == (50, 5.0)
    assert resolve_sampler("default", None, None) == (50, 5.0)
    assert SAMPLER_PRESETS["default"].steps == 50


def test_fast_halves_the_steps_and_explicit_values_override_it():
    assert resolve_sampler("fast", None, None) == (25, 5.0)
    assert resolve_sampler("fast", 10, None) == (10, 5.0)
    assert resolve_sampler("fast", None, 2.0) == (25, 2.0)
    assert resolve_sampler(None, 7, 1.0) == (7, 1.0)


def test_an_unknown_preset_is_a_usage_error():
    with pytest.raises(UsageError, match="--preset slow: unknown .*default, fast"):
        resolve_sampler("slow", None, None)


@pytest.mark.parametrize("flags, steps", [([], 50), (["--preset", "fast"], 25), (["--preset", "fast", "--steps", "3"], 3)])
def test_the_preset_reaches_the_generator_and_synth_json(tmp_path, fake_model, flags, steps):
    out = tmp_path / "out"
    tdgen("synth", "--ann", EXAMPLE, "--out", out, "--model", "fake", "--max-clips", "1", "-q", *flags, check=True)
    (model, kw), = fake_model
    assert kw["steps"] == steps and kw["guidance"] == 5.0
    assert json.loads((out / "synth.json").read_text())["steps"] == steps


def test_a_bad_preset_exits_2_before_anything_is_created(tmp_path):
    out = tmp_path / "out"
    r = tdgen("synth", "--ann", EXAMPLE, "--out", out, "--model", "tiny", "--preset", "turbo")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "--preset turbo" in r.stderr
    assert not out.exists()
