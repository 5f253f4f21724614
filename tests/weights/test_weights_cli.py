"""`tdgen model import-official` and `tdgen model init --gligen --modelscope` (in process), and
`tdgen synth` on the model directories they write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import weight_sources as ws
from helpers import tdgen


def _synth_runs(mot: Path, model: Path, out: Path) -> None:
    r = tdgen("synth", "--ann", mot, "--out", out, "--model", model, "--steps", "1", "--max-clips", "1", "-q")
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["videos"]) == 1 and doc["annotations"]
    assert all((out / im["file_name"]).is_file() and (im["width"], im["height"]) == (64, 64) for im in doc["images"])


def test_import_official_command_then_synth(tmp_path, pub_unet, sd_base, mot, official_model):
    out = tmp_path / "model"
    r = tdgen("model", "import-official", pub_unet, "--base", sd_base, "-o", out, "--resolution", "64x64",
              "--frames", "4", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["kind"] == "official" and report["found"] == report["tensors"] == 616
    assert report["groups"]["injectors"] == {"tensors": 56, "found": 56, "fresh": 0, "params": 50436,
                                             "params_found": 50436}
    assert report["unet_sha256"] == official_model[1].unet_sha256
    _synth_runs(mot, out, tmp_path / "synth")


def test_synth_runs_on_the_model_built_from_gligen_and_modelscope(tmp_path, gligen_model, mot):
    _synth_runs(mot, gligen_model[0], tmp_path / "synth")


def test_init_gligen_command_prints_the_report(tmp_path, gligen_dir, modelscope_dir, gligen_model):
    out = tmp_path / "model"
    r = tdgen("model", "init", "--gligen", gligen_dir, "--modelscope", modelscope_dir, "-o", out, "--frames", "4")
    assert r.exit_code == 0, r.output
    for text in ("built the starting TrackDiffusion model from GLIGEN + ModelScope", "injectors", "gates",
                 "converted 8 1x1-conv projections", "48-wide text cross-attention"):
        assert text in r.stdout
    info = json.loads((out / "tdgen.json").read_text())
    assert info["weights"]["unet_sha256"] == gligen_model[1].unet_sha256
    r = tdgen("model", "init", "--gligen", gligen_dir, "--modelscope", modelscope_dir, "-o", out, "--frames", "4",
              "--json", "--overwrite", "--resolution", "96x64")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["resolution"] == [96, 64]


def test_tiny_init_keeps_its_defaults(tmp_path):
    r = tdgen("model", "init", "-o", tmp_path / "tiny")
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "tiny" / "tdgen.json").read_text())
    assert info["resolution"] == [128, 128] and info["frames"] == 8


@pytest.mark.parametrize("case", ["missing-key", "shape", "wrong-dir", "truncated", "2d-unet", "half-flags",
                                  "bad-resolution", "exists"])
def test_bad_sources_exit_2_with_one_line_naming_the_key_or_path(case, tmp_path, pub_state, pub_cfg, sd_base,
                                                                  gligen_dir):
    state = dict(pub_state)
    expect = None
    if case == "missing-key":
        del state["mid_block.temp_attentions.0.proj_out.weight"]
        expect = "missing key mid_block.temp_attentions.0.proj_out.weight"
    elif case == "shape":
        state["conv_out.weight"] = state["conv_out.weight"][:3]
        expect = "conv_out.weight: shape mismatch: checkpoint [3, 32, 3, 3], model expects [4, 32, 3, 3]"
    src = ws.write_published_unet(tmp_path / "unet", state, ws.published_config(pub_cfg))
    weights = src / "diffusion_pytorch_model.safetensors"
    args = ["model", "import-official", str(src), "--base", str(sd_base), "-o", str(tmp_path / "out")]
    if case == "wrong-dir":
        args[2] = str(tmp_path / "no-such-unet")
        expect = f"{tmp_path / 'no-such-unet'}: no such directory"
    elif case == "truncated":
        weights.write_bytes(weights.read_bytes()[:-10])
        expect = f"{weights}: truncated"
    elif case == "2d-unet":
        args[2] = str(gligen_dir / "unet")
        expect = f"{gligen_dir / 'unet' / 'config.json'}: a 2-D image UNet"
    elif case == "half-flags":
        args = ["model", "init", "--modelscope", str(src), "-o", str(tmp_path / "out")]
        expect = "--gligen and --modelscope go together"
    elif case == "bad-resolution":
        args += ["--resolution", "100x64"]
        expect = "--resolution 100x64: width and height must be multiples of 8"
    elif case == "exists":
        (tmp_path / "out").mkdir()
        expect = f"{tmp_path / 'out'}: already exists"
    r = tdgen(*args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], r.stderr
    if case != "exists":
        assert not (tmp_path / "out").exists()
