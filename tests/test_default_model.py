"""The bundled default model: present, documented, and used when --model is not given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tdgen import modeldir

from helpers import tdgen

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = modeldir.bundled_model_dir()
pytestmark = pytest.mark.skipif(not (BUNDLED / "model_index.json").is_file(),
                                reason="this tree has no bundled model in tdgen/assets/default-model")


def test_the_package_ships_the_default_model():
    assert (BUNDLED / "model_index.json").is_file(), "tdgen/assets/default-model is missing"
    assert modeldir.default_model() == "default"
    assert modeldir.resolve_model_dir("default") == BUNDLED.resolve()
    size = sum(f.stat().st_size for f in BUNDLED.rglob("*") if f.is_file())
    assert size < 40 * 2**20, f"the bundled model is {size / 2**20:.1f} MiB"


def test_the_default_model_records_how_it_was_trained():
    info = json.loads((BUNDLED / "tdgen.json").read_text())
    t = info["training"]
    assert t["command"].startswith("tdgen train") and t["steps"] > 0 and t["seconds"] > 0
    assert np.isfinite(t["final_loss"]) and t["data"]["videos"] > 0
    assert "tdgen shapes" in t["data"]["made_by"]
    assert info["resolution"] == [128, 128] and info["frames"] == 8


def test_synth_without_model_uses_the_default(tmp_path):
    out = tmp_path / "synth"
    ann = ROOT / "examples" / "shapes_mini" / "annotations.json"
    res = tdgen("synth", "--ann", ann, "--out", out, "--max-clips", "1", "--steps", "2", "-q", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["done"] == 1
    settings = json.loads((out / "synth.json").read_text())
    assert settings["model_id"] == json.loads((BUNDLED / "tdgen.json").read_text())["model_id"]
