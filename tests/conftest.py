"""Fixtures shared by the whole test suite: one tiny model per run, and the stand-in generator.

The ``tdgen`` command runner lives in ``tests/helpers.py`` (``from helpers import tdgen``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
# helpers.py here, and the stand-in generator (fakegen.py) beside the synth tests
for _path in (TESTS, TESTS / "synth"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from helpers import tdgen  # noqa: E402

# What the stand-in model's directory would say (``tdgen.modeldir.model_defaults``).
FAKE_MODEL_DEFAULTS: dict[str, Any] = {"frames": 4, "slots": 6, "prompt_template": "a video of {categories}",
                                       "resolution": None}


@pytest.fixture(scope="session")
def shared_tiny_model(tmp_path_factory) -> Path:
    """The ``tiny`` preset (random weights) at 64x48 pixels and 4 frames, built once per test run
    by ``tdgen model init``. Shared by every test that asks for it: treat it as read-only (copy it
    to change it)."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("shared-model") / "tiny"
    r = tdgen("model", "init", "--preset", "tiny", "-o", out, "--resolution", "64x48", "--frames", "4")
    assert r.returncode == 0, r.stderr
    assert out.is_dir() and "wrote" in r.stdout
    return out


class FakeModel(list):
    """Every generator built while the stand-in model is in place, as ``(model, kwargs)``;
    ``defaults`` is what its model directory says (change it before running a command)."""

    def __init__(self) -> None:
        super().__init__()
        self.defaults: dict[str, Any] = dict(FAKE_MODEL_DEFAULTS)


@pytest.fixture()
def fake_model(monkeypatch) -> FakeModel:
    """Make any ``--model`` (by convention ``--model fake``) mean the stand-in generator of
    ``tests/synth/fakegen.py``: frames that depend only on each clip's seed, no torch model."""
    import tdgen.modeldir
    import tdgen.synth.generator
    from fakegen import FakeGenerator

    built = FakeModel()

    def make(model, **kw):
        built.append((model, kw))
        return FakeGenerator()

    monkeypatch.setattr(tdgen.synth.generator, "PipelineGenerator", make)
    monkeypatch.setattr(tdgen.modeldir, "model_defaults", lambda model: dict(built.defaults))
    return built


@pytest.fixture()
def umask_022():
    """Run the test under umask 022 (a team's usual setting), whatever the machine's is."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)
