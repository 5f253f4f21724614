"""Progress that tells the truth: per clip and per denoising step, plain lines in logs, right rates."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tdgen.modeldir
import tdgen.synth.generator
from tdgen.cli import app
from tdgen.cli._output import Progress, duration_text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


class SteppingGenerator:
    """A stand-in model that reports its denoising steps the way the real generator does."""

    model_id = "fake-steps"
    model_hash = "1" * 16
    dtype = "float32"
    resolution = (32, 32)

    def __init__(self, steps: int, on_step=None) -> None:
        self.steps = steps
        self.on_step = on_step
        self.batches: list[int] = []

    def __call__(self, clips, prompts, seeds):
        self.batches.append(len(clips))
        for i in range(self.steps):
            if self.on_step is not None:
                self.on_step(i, self.steps, len(clips))
        w, h = self.resolution
        return np.stack([np.random.default_rng(s).integers(0, 255, (c.num_frames, h, w, 3), dtype=np.uint8)
                         for c, s in zip(clips, seeds)])


@pytest.fixture()
def stepping(monkeypatch):
    built: list[SteppingGenerator] = []

    def make(model, *, steps, on_step=None, **kw):
        built.append(SteppingGenerator(steps, on_step))
        return built[-1]

    monkeypatch.setattr(tdgen.synth.generator, "PipelineGenerator", make)
    monkeypatch.setattr(tdgen.modeldir, "model_defaults", lambda model: {
        "frames": 4, "slots": 8, "prompt_template": "a video of {categories}", "resolution": (32, 32)})
    return built


def _synth(tmp_path: Path, *extra: str):
    return runner.invoke(app, ["synth", "--ann", str(EXAMPLES / "shapes_mini" / "annotations.json"),
                               "--out", str(tmp_path / "out"), "--model", "fake", "--device", "cpu",
                               "--steps", "3", "--max-clips", "3", "--batch-size", "2", *extra])


def test_a_log_gets_one_line_per_finished_clip_and_the_true_rates(stepping, tmp_path):
    r = _synth(tmp_path)
    assert r.exit_code == 0, r.stderr
    assert stepping[0].batches == [2, 1]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("synth: ")]
    # CliRunner's stderr is not a terminal: plain lines, one per finished clip, counting up
    clip_lines = [ln for ln in lines if "frames/s" in ln]
    assert [re.match(r"synth: (\d)/3 clips", ln).group(1) for ln in clip_lines] == ["1", "2", "3"]
    assert all(re.search(r"\d+\.\d\d frames/s, ETA \S+", ln) for ln in clip_lines)
    # and the first denoising step shows at once (later ones at most every 30 s)
    assert re.fullmatch(r"synth: 0/3 clips, batch of 2: step 1/3, [\d.]+ s/step, ETA \S+", lines[0]), lines
    final = r.stdout.strip().splitlines()[-1]
    m = re.search(r"3 clips generated, 0 already done, 0 failed in [\d.]+ s \(([\d.]+) frames/s, ([\d.]+) clips/min\)",
                  final)
    assert m, final
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0


def test_json_summary_counts_this_runs_frames(stepping, tmp_path):
    r = _synth(tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["done"] == 3 and summary["frames"] == 12
    assert summary["frames_per_s"] == pytest.approx(summary["frames"] / summary["generate_seconds"], rel=0.01)
    assert summary["clips_per_min"] == pytest.approx(60 * 3 / summary["generate_seconds"], rel=0.01)
    assert not any(ln.startswith("synth: ") for ln in r.stderr.splitlines())  # --json: no progress
    # a resumed run generated nothing: no rate, not "0.0 frames/s"
    again = _synth(tmp_path, "--json")
    s2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert s2["done"] == 0 and s2["skipped"] == 3 and s2["frames"] == 0 and s2["frames_per_s"] is None
    plain = _synth(tmp_path)
    assert "frames/s" not in plain.stdout


def test_quiet_prints_no_progress(stepping, tmp_path):
    r = _synth(tmp_path, "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.strip() == "" and r.stdout.strip() == ""


def test_steps_within_a_batch_show_in_a_log_every_n_seconds():
    stream = io.StringIO()
    p = Progress("synth", stream=stream, terminal=False, every=0.0)
    with p:
        task = p.add("synth", total=4, unit="clips")
        from tdgen.cli.synth import _SynthProgress

        sp = _SynthProgress(p, batch_size=2)
        sp.task, sp.total = task, 4
        sp.step(0, 5, 2)
        sp.step(1, 5, 2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"synth: 0/4 clips, batch of 2: step 2/5, [\d.]+ s/step, ETA \S+", lines[1]), lines[1]


def test_plain_lines_are_rate_limited_unless_asked():
    stream = io.StringIO()
    p = Progress("job", stream=stream, terminal=False, every=3600.0)
    t = p.add("job", total=10, unit="items")
    p.update(t, completed=1)  # the first update writes (nothing was written yet)
    for i in range(2, 6):
        p.update(t, completed=i)  # within the hour: nothing
    p.update(t, completed=6, line=True)
    assert stream.getvalue().splitlines() == ["job: 1/10 items", "job: 6/10 items"]
    off = Progress("job", enabled=False, stream=stream)
    off.update(off.add("job", total=1), completed=1, line=True)
    off.write("x")
    assert stream.getvalue().count("\n") == 2


@pytest.mark.parametrize("seconds,text", [(None, "?"), (-1, "?"), (0.4, "0s"), (59.6, "1m00s"), (75, "1m15s"),
                                          (3725, "1h02m"), (float("inf"), "?")])
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text


def test_the_real_generator_reports_every_denoising_step(shared_tiny_model, tmp_path):
    from tdgen.synth.generator import PipelineGenerator
    from tdgen.synth.options import SynthOptions
    from tdgen.synth.plan import plan_synth

    seen: list[tuple[int, int, int]] = []
    gen = PipelineGenerator(shared_tiny_model, steps=3, on_step=lambda *a: seen.append(a))
    plan = plan_synth(SynthOptions(ann=EXAMPLES / "shapes_mini" / "annotations.json", out=tmp_path, frames=4,
                                   slots=8, max_clips=2))
    gen(plan.clips, [plan.prompts[c.clip_id] for c in plan.clips], [plan.seeds[c.clip_id] for c in plan.clips])
    assert seen == [(0, 3, 2), (1, 3, 2), (2, 3, 2)]
