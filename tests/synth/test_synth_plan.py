"""`tdgen synth` never drops a track silently, and `--plan-only` shows the plan without a model.

The source has more tracks per window than slots, and its longest, largest tracks have conf 0
(MOT's "ignore this box"), so the default overflow rule must give the slots to the others.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import tdgen.modeldir as modeldir
import tdgen.synth.generator as generator
from tdgen.synth import SynthOptions, plan_synth
from tdgen.tracks.io import read_tracks

from helpers import tdgen
from make_mot import write_mot_split


def write_crowded_split(root: Path) -> Path:
    """One 8-frame sequence, 7 tracks: 1-3 long, large and conf 0; 4-7 short, small and conf 1."""
    seq = root / "CROWD-01"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=CROWD-01\nimDir=img1\nframeRate=30\nseqLength=8\n"
                                     "imWidth=640\nimHeight=480\nimExt=.jpg\n")
    rows = []
    for t in (1, 2, 3):
        rows += [(f, t, 50 * t, 40, 120, 200, 0, 1, 1) for f in range(1, 9)]
    for t in (4, 5, 6, 7):
        frames = (1, 2, 5, 6) if t % 2 else (2, 3, 4, 6, 7)
        rows += [(f, t, 60 * t, 300, 20, 40, 1, 1, 1) for f in frames]
    rows.sort()
    (seq / "gt" / "gt.txt").write_text("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return root


@pytest.fixture()
def crowded(tmp_path):
    return write_crowded_split(tmp_path / "MOT" / "train")


@pytest.fixture()
def fake_model(fake_model):
    """The stand-in model (tests/conftest.py) with 3 slots at 64x48: fewer than the crowd's tracks."""
    fake_model.defaults.update(slots=3, resolution=(64, 48))
    return fake_model


# The crowded split's conf-0 tracks are what the overflow ranking is about, so these runs ask for
# them (--min-conf 0); by default synth does not generate conf-0 rows at all (test_synth_targets.py).
def synth(ann, out, *extra):
    return tdgen("synth", "--ann", ann, "--out", out, "--model", "fake", "--device", "cpu", "--steps", "2",
                 "--min-conf", "0", *extra)


def expected(ann, out, **kw):
    """Per clip: (kept, dropped) source track ids as plan_synth plans them, and conf per track."""
    plan = plan_synth(SynthOptions(ann=Path(ann), out=Path(out), frames=4, slots=3, min_conf=0.0, **kw))
    ts = read_tracks(ann)
    conf = {int(t): float(c) for t, c in zip(ts.boxes.track, ts.boxes.conf)}
    return {c.clip_id: (c.track_ids.tolist(), c.dropped_track_ids.tolist()) for c in plan.clips}, conf


# --------------------------------------------------------------------------- the plan
def test_default_overflow_keeps_training_targets_and_names_every_dropped_track(crowded, tmp_path):
    clips, conf = expected(crowded, tmp_path / "x")
    assert len(clips) == 2
    for kept, dropped in clips.values():
        assert len(kept) == 3 and len(dropped) == 4
        assert all(conf[t] > 0 for t in kept)  # the conf-0 tracks are longer and larger, yet lose
        assert sum(conf[t] == 0 for t in dropped) == 3
    # the rule without targets first would have kept them: check the fixture really tests that
    assert all(sorted(conf[t] == 0 for t in k + d) == [False] * 4 + [True] * 3 for k, d in clips.values())


def test_plan_only_prints_the_plan_without_a_model_and_creates_nothing(crowded, tmp_path, fake_model):
    out = tmp_path / "synth"
    clips, _ = expected(crowded, out)
    for flag in ("--plan-only", "--dry-run"):
        r = synth(crowded, out, flag)
        assert r.exit_code == 0, r.stderr
        assert not out.exists() and fake_model == []
        text = r.stdout
        assert "clips: 2 of 4 frames from 1 video(s), 3 slots, --overflow longest" in text
        assert "tracks per clip: min 3, median 3, max 3" in text
        assert "8 track(s) dropped (2 training target(s)) in 2 clip(s)" in text
        first_id, (_, first_dropped) = next(iter(clips.items()))
        assert f"{first_id}: {' '.join(map(str, first_dropped))}" in text
        assert "frames to write: 8 at 64x48 png, about" in text


def test_plan_only_json_is_one_object_with_every_dropped_track(crowded, tmp_path, fake_model):
    out = tmp_path / "synth"
    clips, _ = expected(crowded, out)
    r = synth(crowded, out, "--plan-only", "--json", "--out-size", "80x60", "--image-format", "jpg")
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)  # exactly one JSON document
    assert plan["clips"] == 2 and plan["tracks_per_clip"] == {"min": 3, "median": 3.0, "max": 3}
    assert plan["dropped_tracks"] == 8 and plan["dropped_targets"] == 2 and plan["clips_with_drops"] == 2
    assert plan["dropped"] == {cid: d for cid, (_, d) in clips.items()}
    assert plan["frames_to_write"] == 8 and plan["size"] == [80, 60] and plan["image_format"] == "jpg"
    assert plan["estimated_bytes"] > 0
    assert not out.exists() and fake_model == []


def test_plan_only_needs_no_model_when_the_flags_say_it_all(crowded, tmp_path, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("plan-only asked for a model")

    monkeypatch.setattr(modeldir, "model_defaults", no_model)
    monkeypatch.setattr(modeldir, "default_model", no_model)
    monkeypatch.setattr(generator, "PipelineGenerator", no_model)
    out = tmp_path / "synth"
    r = tdgen("synth", "--ann", crowded, "--out", out, "--plan-only", "--frames", "4", "--min-conf", "0",
              "--slots", "3", "--out-size", "64x48", "--shard", "0/2", "--json")
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["shard"] == [0, 2] and plan["frames_to_write"] == 4 * plan["assigned_clips"]
    assert not out.exists()


def test_plan_only_refuses_bad_flags_like_a_run(crowded, tmp_path, fake_model):
    out = tmp_path / "synth"
    r = synth(crowded, out, "--plan-only", "--frames", "0")
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "--frames" in r.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- a run reports drops
def test_run_reports_dropped_tracks_on_stderr_in_json_and_in_the_manifest(crowded, tmp_path, fake_model):
    out = tmp_path / "synth"
    clips, conf = expected(crowded, out)
    r = synth(crowded, out, "--json")
    assert r.exit_code == 0, r.stderr
    line = r.stderr.strip().splitlines()[0]
    assert line.startswith("plan: 2 clip(s) of 4 frames") and "8 track(s) dropped" in line
    summary = json.loads(r.stdout)
    assert summary["plan"]["dropped_tracks"] == 8
    assert summary["plan"]["dropped"] == {cid: d for cid, (_, d) in clips.items()}
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert {m["clip_id"]: (m["source_track_ids"], m["dropped_track_ids"]) for m in rows} == clips
    assert [m["dropped_tracks"] for m in rows] == [4, 4]
    assert all(conf[t] > 0 for m in rows for t in m["source_track_ids"])


def test_quiet_still_warns_about_drops_but_says_nothing_otherwise(crowded, tmp_path, fake_model):
    r = synth(crowded, tmp_path / "a", "-q")
    assert r.exit_code == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: plan: ") and "dropped" in lines[0]
    roomy = write_mot_split(tmp_path / "MOT2" / "train")  # 4 and 3 tracks: they fit 6 slots
    r = synth(roomy, tmp_path / "b", "-q", "--slots", "6")
    assert r.exit_code == 0 and r.stderr == ""
    r = synth(roomy, tmp_path / "c", "--slots", "6")
    assert "no track dropped" in r.stderr


def test_help_states_the_overflow_order():
    r = tdgen("synth", "--help", env={"COLUMNS": "200"})
    text = re.sub(r"[\s│]+", " ", r.stdout)
    assert "keep training targets first (not crowd/ignore, conf > 0), then the tracks present in most frames" in text
    assert "--plan-only" in text and "--dry-run" in text
