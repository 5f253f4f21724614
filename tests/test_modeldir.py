"""Model directories: creating, checking, presets, fingerprints."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from tdgen import modeldir
from tdgen.modeldir import (
    ModelError,
    check_model_dir,
    init_tiny_model,
    model_defaults,
    model_fingerprint,
    read_tdgen_json,
    resolve_model_dir,
)

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return init_tiny_model(tmp_path_factory.mktemp("m") / "tiny", seed=3, resolution=(64, 32), frames=4)


def test_tiny_model_layout_and_defaults(tiny):
    check_model_dir(tiny)
    for name in ("model_index.json", "tdgen.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json",
                 "scheduler/scheduler_config.json"):
        assert (tiny / name).is_file(), name
    md = model_defaults(tiny)
    assert {k: md[k] for k in ("frames", "slots", "prompt_template", "resolution")} == {
        "frames": 4, "slots": 20, "prompt_template": "a video of {categories}", "resolution": (64, 32)}
    assert md["domain"].categories is None  # a random model records no domain: nothing to warn about
    index = json.loads((tiny / "model_index.json").read_text())
    assert index["_class_name"] == "TrackDiffusionPipeline" and index["unet"] == ["tdgen", "TrackDiffusionUNet"]


def test_init_is_deterministic_and_refuses_to_overwrite(tiny, tmp_path):
    again = init_tiny_model(tmp_path / "again", seed=3, resolution=(64, 32), frames=4)
    assert model_fingerprint(again) == model_fingerprint(tiny)
    other = init_tiny_model(tmp_path / "other", seed=4, resolution=(64, 32), frames=4)
    assert model_fingerprint(other) != model_fingerprint(tiny)
    with pytest.raises(ModelError, match="exists"):
        init_tiny_model(tmp_path / "again", seed=3)
    with pytest.raises(ModelError, match="multiples of 8"):
        init_tiny_model(tmp_path / "bad", resolution=(60, 32))
    assert not (tmp_path / "bad").exists()


def test_fingerprint_sees_a_changed_weight_file(tiny, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny)
    f = copy / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny)


@pytest.mark.parametrize("damage, message", [
    (lambda d: shutil.rmtree(d / "vae"), "vae/ is missing"),
    (lambda d: (d / "unet" / "diffusion_pytorch_model.safetensors").unlink(), "no weights"),
    (lambda d: (d / "unet" / "config.json").unlink(), "config.json is missing"),
    (lambda d: (d / "tokenizer" / "vocab.json").unlink(), "no tokenizer files"),
    (lambda d: (d / "tdgen.json").unlink(), "tdgen.json is missing"),
    (lambda d: (d / "tdgen.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "tdgen.json").write_text('{"resolution": [100, 64]}'), "resolution"),
    (lambda d: (d / "tdgen.json").write_text('{"frames": 0}'), "frames"),
])
def test_incomplete_directories_are_named(tiny, tmp_path, damage, message):
    d = tmp_path / "m"
    shutil.copytree(tiny, d)
    damage(d)
    with pytest.raises(ModelError, match=message) as e:
        check_model_dir(d)
    assert str(d) in str(e.value) and "\n" not in str(e.value)


def test_unknown_names_and_missing_paths(tmp_path):
    with pytest.raises(ModelError, match="no model directory or preset named 'nope'"):
        resolve_model_dir("nope")
    with pytest.raises(ModelError, match="no such model directory"):
        resolve_model_dir(tmp_path / "missing")
    with pytest.raises(ModelError, match="not a directory"):
        (tmp_path / "file").write_text("x")
        resolve_model_dir(tmp_path / "file")


def test_tiny_preset_is_built_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = resolve_model_dir("tiny")
    assert path.parent == tmp_path / "cache" / "tdgen" / "models"
    assert read_tdgen_json(path)["model_id"] == "tiny-random"
    stamp = (path / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    assert resolve_model_dir("tiny") == path
    assert (path / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp


def test_packaged_presets_mirror_the_repository_folder():
    repo = {p.name: p.read_bytes() for p in (ROOT / "presets").glob("*.toml")}
    packaged = {p.name: p.read_bytes() for p in modeldir.presets_dir().glob("*.toml")}
    assert repo and repo == packaged


def test_no_default_model_gives_a_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(modeldir, "presets_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match="--model tiny"):
        modeldir.default_model()


def test_weights_a_config_leaves_unused_are_reported(tiny, tmp_path):
    from tdgen.modeldir import ModelWarning, load_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelWarning)  # the unchanged directory loads silently
        load_pipeline(tiny)
    off = tmp_path / "no_enhancer"
    shutil.copytree(tiny, off)
    cfg_file = off / "unet" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["use_enhancer"] = False
    cfg_file.write_text(json.dumps(cfg))
    with pytest.warns(ModelWarning, match=r"no_enhancer/unet: \d+ weight tensors are not used") as caught:
        pipe = load_pipeline(off)
    assert len(caught) == 1 and not pipe.unet.config.use_enhancer
    unused = pipe.tdgen_unused_weights
    assert unused and all("injector" in k or "track" in k for k in unused)  # the enhancer's tensors


def test_cli_shows_tdgen_warnings_as_one_line(capsys):
    from tdgen.cli import handle_errors
    from tdgen.modeldir import ModelWarning

    @handle_errors
    def command() -> int:
        warnings.warn("m/unet: 3 weight tensors are not used", ModelWarning, stacklevel=2)
        return 7

    assert command() == 7
    assert capsys.readouterr().err == "warning: m/unet: 3 weight tensors are not used\n"
