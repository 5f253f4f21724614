"""`tdgen synth` on MOT17-style ground truth gives slots and prompt words only to training targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tdgen.synth import SynthOptions, plan_synth

from helpers import tdgen

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracks"))
import test_classes  # noqa: E402

mot17 = test_classes.mot17  # the fixture: all 12 MOT classes, conf-0 rows, 3 detector copies

quiet_plan = pytest.mark.filterwarnings("ignore::tdgen.synth.runner.SynthWarning")


def plan(root: Path, tmp_path: Path, **kw):
    return plan_synth(SynthOptions(ann=root, out=tmp_path / "o", frames=4, slots=20, **kw))


@quiet_plan
def test_default_targets_are_conf1_people_and_vehicles_never_ignore_classes(mot17, tmp_path):
    p = plan(mot17, tmp_path)
    names = {str(c["name"]) for c in p.ts.categories}
    # conf-0 rows (every non-pedestrian class in MOT17, and one pedestrian) take no slot
    assert set(p.ts.boxes.conf.tolist()) == {1.0}
    used = {n for c in p.clips for n in c.category_names}
    assert used == {"pedestrian"}
    assert not names & {"distractor", "reflection", "static_person", "person_on_vehicle", "crowd"}
    # one detector copy per sequence
    assert sorted({c.video_name for c in p.clips}) == ["MOT17-02-FRCNN", "MOT17-09-FRCNN"]
    for c in p.clips:
        assert "distractor" not in p.prompts[c.clip_id] and "occluder" not in p.prompts[c.clip_id]
        assert c.num_tracks <= 4  # the 4 conf-1 pedestrians of the fixture, nothing else


@quiet_plan
def test_bytetrack_flavor_and_explicit_classes(mot17, tmp_path):
    p = plan(mot17, tmp_path, flavor="bytetrack")
    assert {n for c in p.clips for n in c.category_names} == {"pedestrian"}
    # asking for more widens it: conf-0 rows come back with --min-conf 0
    p = plan(mot17, tmp_path, classes=("pedestrian", "car"), min_conf=0.0)
    assert {n for c in p.clips for n in c.category_names} == {"pedestrian", "car"}


def test_cli_reports_what_it_generates_and_writes_only_targets(mot17, tmp_path, fake_model):
    fake_model.defaults.update(slots=20, resolution=(64, 48))
    out = tmp_path / "s"
    res = tdgen("synth", "--ann", mot17, "--out", out, "--model", "fake", "--device", "cpu", "--max-clips", "2", "-q")
    assert res.exit_code == 0, res.output
    assert any(ln.startswith("warning: ") and "generating" in ln and "dropped" in ln
               for ln in res.stderr.splitlines()), res.stderr
    doc = json.loads((out / "annotations.json").read_text())
    assert {c["name"] for c in doc["categories"] if any(a["category_id"] == c["id"] for a in doc["annotations"])} \
        == {"pedestrian"}


@pytest.mark.parametrize("args, message", [
    (["--classes", "pedestrain"], "unknown class 'pedestrain'"),
    (["--min-conf", "nan"], "--min-conf"),
])
def test_bad_target_flags_are_one_line(mot17, tmp_path, args, message):
    out = tmp_path / "s"
    res = tdgen("synth", "--ann", mot17, "--out", out, "--model", "tiny", *args)
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not out.exists()
