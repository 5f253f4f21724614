"""`tdgen synth --gate --retries K`: clips the judge refuses are generated again with recorded
seeds, the best attempt is written, and the gate's decisions are applied after finalize."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tdgen.gate.policy import attempt_seed
from tdgen.synth import SynthOptions, run_synth
from tdgen.synth.fragments import read_fragment
from tdgen.synth.runner import Retry

from helpers import tdgen

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "synth"))
from fakegen import FakeGenerator  # noqa: E402
from make_mot import write_mot_split  # noqa: E402


def _lucky(frames: np.ndarray) -> bool:
    """The stand-in judge: a property of the frames (so of the seed they were made with)."""
    return int(frames[0, 0, 0, 0]) % 3 == 0


def test_refused_clips_are_regenerated_with_recorded_seeds_and_the_best_attempt_is_written(tmp_path):
    mot = write_mot_split(tmp_path / "MOT" / "train")
    gen = FakeGenerator()
    retry = Retry(retries=3, score=lambda fragment, frames: _lucky(frames), accept=bool,
                  best=lambda scores: next((i for i, s in enumerate(scores) if s), 0), seed=attempt_seed)
    opts = SynthOptions(ann=mot, out=tmp_path / "out", frames=4, stride=4, slots=6, batch_size=2, steps=2)
    result = run_synth(opts, lambda: gen, retry=retry)
    assert result.done == result.planned > 0
    frags = [read_fragment(p) for p in sorted((tmp_path / "out" / "clips").glob("*.json"))]
    retried = 0
    for frag in frags:
        m = frag.manifest
        seeds = [attempt_seed(m["seed"], k) for k in range(m["gate_attempts"])]
        assert seeds[0] == m["seed"] and m["gate_seed"] == seeds[m["gate_attempt"]]
        # the frames on disk are the chosen attempt's: the stand-in's frames are a function of the seed
        rng = np.random.default_rng(m["gate_seed"])
        expected = rng.integers(0, 255, (m["frames"], 48, 64, 3), dtype=np.uint8)
        assert _lucky(expected) or m["gate_attempts"] == 4  # lucky, or every attempt was spent
        retried += m["gate_attempts"] > 1
    assert retried > 0, "the fixture should need some retries"
    # only refused clips were generated again: one call per clip per attempt
    calls = sum(len(c) for c in gen.calls)
    assert calls == sum(f.manifest["gate_attempts"] for f in frags)


def test_synth_gate_end_to_end_rejects_what_the_detector_cannot_see(tmp_path, fake_model):
    mot = write_mot_split(tmp_path / "MOT" / "train")
    out = tmp_path / "out"
    args = ("synth", "--ann", mot, "--out", out, "--model", "fake", "--device", "cpu", "--max-clips", "3", "-q",
            "--gate", "--retries", "1", "--detector", "shapes")
    r = tdgen(*args)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "gate_report.json").read_text())
    # noise frames show no shapes: every clip is rejected after its retry, and moved aside
    assert report["totals"]["clips"] == 3 and report["totals"]["rejected"] == 3
    assert json.loads((out / "annotations.json").read_text())["annotations"] == []
    rejected = sorted(p.stem for p in (out / "rejected").glob("*.json") if not p.name.startswith("."))
    assert len(rejected) == 3 and all((out / "rejected" / c).is_dir() for c in rejected)
    assert not any((out / "images" / c).exists() for c in rejected) and not any((out / "clips").glob("*.json"))
    table = pq.read_table(out / "manifest.parquet").to_pylist()
    assert {row["gate_decision"] for row in table} == {"rejected"}
    assert {row["gate_attempts"] for row in table} == {2}
    before = (out / "manifest.parquet").read_bytes(), (out / "gate_report.json").read_bytes()
    again = tdgen(*args)
    assert again.returncode == 0, again.stderr
    assert len(fake_model) == 2  # a generator is built, but nothing is generated again:
    assert ((out / "manifest.parquet").read_bytes(), (out / "gate_report.json").read_bytes()) == before


@pytest.mark.parametrize("args,message", [
    (["--retries", "2"], "--retries needs --gate"),
    (["--detector", "shapes"], "--detector/--detections need --gate"),
    (["--gate", "--retries", "-1"], "--retries -1: must be in 0..20"),
    (["--gate", "--min-recall", "2"], "--min-recall"),
    (["--gate", "--detector", "nope.onnx"], "nope.onnx"),
])
def test_bad_gate_flags_are_one_line_and_create_nothing(tmp_path, args, message):
    mot = write_mot_split(tmp_path / "MOT" / "train")
    r = tdgen("synth", "--ann", mot, "--out", tmp_path / "o", "--model", "tiny", *args)
    assert r.returncode == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "o").exists()
