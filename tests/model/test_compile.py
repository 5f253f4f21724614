"""torch.compile of the UNet: one graph, no breaks; `tdgen synth --compile` and what it changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tdgen
from tdgen.model import TrackDiffusionUNet, tiny_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_dynamo_counts_an_item_as_a_graph_break(make_inputs, monkeypatch):
    """What the whole-model check in test_unet_tiny.py relies on: a .item() in a module's forward
    is a graph break (shown on the time embedding alone, which traces in a moment)."""
    cfg = tiny_config()
    emb = TrackDiffusionUNet(**cfg).eval().time_embedding
    x = torch.randn(2, cfg["block_out_channels"][0])
    torch._dynamo.reset()
    with torch.no_grad():
        assert torch._dynamo.explain(emb)(x).graph_break_count == 0
        real = emb.forward
        monkeypatch.setattr(emb, "forward", lambda x: real(x) * (1.0 + 0.0 * x.abs().max().item()))
        torch._dynamo.reset()
        explained = torch._dynamo.explain(emb)(x)
    torch._dynamo.reset()
    assert explained.graph_break_count >= 1 and "item" in str(explained.break_reasons).lower()


# ------------------------------------------------------------------ tdgen synth --compile

def _clips(tmp_path: Path, count: int = 1):
    from tdgen.synth.options import SynthOptions
    from tdgen.synth.plan import plan_synth

    plan = plan_synth(SynthOptions(ann=EXAMPLES / "shapes_mini" / "annotations.json", out=tmp_path / "plan",
                                   frames=4, slots=8, max_clips=count))
    return plan.clips, [plan.prompts[c.clip_id] for c in plan.clips], [plan.seeds[c.clip_id] for c in plan.clips]


@pytest.mark.slow
def test_compiled_generator_frames_match_eager(shared_tiny_model, tmp_path):
    """The generator's --compile path (warm-up compile, one graph, static shapes) gives the eager
    frames. Dynamo's eager backend stands in for inductor, whose C++ build of the tiny UNet takes
    minutes on this CPU (inductor's own rounding differs from eager by ~1e-6 on the UNet output)."""
    from tdgen.synth.generator import PipelineGenerator

    clips, prompts, seeds = _clips(tmp_path, 2)
    eager = PipelineGenerator(shared_tiny_model, steps=3, frames=4, slots=8)(clips, prompts, seeds)
    torch._dynamo.reset()
    # frames and slots as the CLI passes them: the warm-up compiles the shapes the clips have
    gen = PipelineGenerator(shared_tiny_model, steps=3, frames=4, slots=8, compile=True, compile_backend="eager")
    assert gen.compiled and gen.pipe.unet._compiled_call_impl is not None
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    compiled = gen(clips, prompts, seeds)
    assert counters["stats"]["unique_graphs"] == graphs  # the warm-up compiled these shapes: no recompile
    torch._dynamo.reset()
    assert compiled.shape == eager.shape == (2, 4, 48, 64, 3)
    np.testing.assert_array_equal(compiled, eager)  # the same kernels, captured as one graph


def test_compile_flag_reaches_the_generator(tmp_path, fake_model):
    ann = EXAMPLES / "shapes_mini" / "annotations.json"
    for flag, out in ((["--compile"], tmp_path / "a"), ([], tmp_path / "b")):
        r = tdgen("synth", "--ann", ann, "--out", out, "--model", "fake", "--device", "cpu", "--steps", "2",
                  "--frames", "4", "--max-clips", "1", "-q", *flag)
        assert r.exit_code == 0, r.stderr
    assert fake_model[0][1]["compile"] is True
    assert "compile" not in fake_model[1][1]  # off unless asked for
    # not a setting the clips depend on (like --unet-batch): a run resumes with or without it
    assert json.loads((tmp_path / "a" / "synth.json").read_text()).keys() == \
        json.loads((tmp_path / "b" / "synth.json").read_text()).keys()


def test_a_failing_compile_is_one_line_and_writes_nothing(shared_tiny_model, tmp_path, monkeypatch):
    def broken_compile(fn, **kwargs):
        def call(*a, **kw):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\n  long compiler output\n")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    out = tmp_path / "out"
    r = tdgen("synth", "--ann", EXAMPLES / "shapes_mini" / "annotations.json", "--out", out, "--model",
              shared_tiny_model, "--device", "cpu", "--steps", "2", "--frames", "4", "--max-clips", "1", "-q",
              "--compile")
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == ("error: --compile: torch.compile of the UNet failed (RuntimeError: InductorError: "
                         "CppCompileError: C++ compile error); run without --compile")
    assert "Traceback" not in r.output and "long compiler output" not in r.output
    assert not out.exists()
