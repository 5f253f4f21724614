"""``tdgen layouts`` end to end: real-shaped inputs, a file synth reads, one-line errors, nothing half written."""

from __future__ import annotations

import csv
import json

import pytest

from helpers import tdgen
from tdgen.tracks.io import read_tracks

from layouts_data import MOT_MINI, ROOT, SHAPES

MOT_DIR = ROOT / "tests" / "data" / "mot" / "MOT17-mini" / "train"


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("src, recipe", [(MOT_MINI, "hard-cases"), (SHAPES, "hard-cases"), (MOT_MINI, "mirror"),
                                         (SHAPES, "reverse"), (MOT_MINI, "camera"), (MOT_DIR, "hard-cases")])
def test_layouts_writes_a_cocovid_set_and_its_provenance(tmp_path, src, recipe):
    out = tmp_path / "lay.json"
    r = tdgen("layouts", src, "-o", out, "--recipe", recipe, "--copies", "2", "--seed", "7", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.last_json_line())
    source = read_tracks(src)
    back = read_tracks(out)
    assert back.num_videos == summary["videos"] == 2 * source.num_videos
    assert sorted(back.videos.name.tolist()) == sorted(f"{n}_L0{k}" for n in source.videos.name for k in (1, 2))
    assert back.categories == source.categories
    rows = _csv(tmp_path / "lay.provenance.csv")
    assert len(rows) == back.num_tracks == summary["tracks"]
    assert {r["source_video"] for r in rows} == set(source.videos.name.tolist())
    assert all(r["recipe"] == recipe and r["seed"] == "7" for r in rows)
    from pycocotools.coco import COCO

    coco = COCO(str(out))
    assert len(coco.getAnnIds()) == back.num_boxes


def test_same_seed_same_bytes_other_seed_other_layouts(tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.json"
        assert tdgen("layouts", MOT_MINI, "-o", out, "--seed", seed).exit_code == 0
        runs[name] = (out.read_bytes(), (tmp_path / f"{name}.provenance.csv").read_bytes())
    assert runs["a"] == runs["b"]
    assert runs["a"][0] != runs["c"][0]


def test_synth_plans_clips_on_a_layouts_output(tmp_path):
    out = tmp_path / "lay.json"
    assert tdgen("layouts", MOT_MINI, "-o", out).exit_code == 0
    r = tdgen("synth", "--ann", out, "--out", tmp_path / "s", "--plan-only", "--json", "--frames", "8")
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.last_json_line())
    assert plan["clips"] > 0 and plan["videos"] == 2


def test_synth_generates_from_a_layouts_output(tmp_path, fake_model):
    fake_model.defaults.update(slots=20, resolution=(64, 48))
    out = tmp_path / "lay.json"
    assert tdgen("layouts", SHAPES, "-o", out).exit_code == 0
    s = tmp_path / "s"
    r = tdgen("synth", "--ann", out, "--out", s, "--model", "fake", "--device", "cpu", "--max-clips", "2", "-q")
    assert r.exit_code == 0, r.stderr
    doc = json.loads((s / "annotations.json").read_text())
    assert doc["annotations"] and {v["name"].split("_L")[0] for v in doc["videos"]} <= {
        n for n in read_tracks(SHAPES).videos.name}


@pytest.mark.slow
def test_synth_with_the_tiny_model_on_a_layouts_output(tmp_path, shared_tiny_model):
    out = tmp_path / "lay.json"
    assert tdgen("layouts", SHAPES, "-o", out).exit_code == 0
    s = tmp_path / "s"
    r = tdgen("synth", "--ann", out, "--out", s, "--model", shared_tiny_model, "--device", "cpu", "--max-clips", "1",
              "--steps", "2", "-q")
    assert r.exit_code == 0, r.stderr
    assert json.loads((s / "annotations.json").read_text())["annotations"]


def _bad(tmp_path, *args):
    out = tmp_path / "lay.json"
    r = tdgen("layouts", MOT_MINI, "-o", out, *args)
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".lay", "lay"))) == [], "something written"
    return lines[0]


@pytest.mark.parametrize("text, expect", [
    ('[[step]]\ntransform = "spin"\n', "step 1: unknown transform 'spin'"),
    ('[[step]]\ntransform = "thin"\nfraction = -1\n', "step 1 (thin): fraction: -1 is outside [0, 1]"),
    ('[[step]]\ntransform = "thin"\nfraction = 1.0\n', "leaves no box"),  # a recipe that empties the set
])
def test_bad_recipe_is_one_line_exit_2_nothing_written(tmp_path, text, expect):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    line = _bad(tmp_path, "--recipe", recipe)
    assert str(recipe) in line and expect in line


@pytest.mark.parametrize("args, expect", [
    (("--copies", "0"), "--copies 0"),
    (("--seed", "-1"), "--seed -1"),
    (("--recipe", "nope"), "no bundled recipe"),
])
def test_bad_flags_are_one_line_exit_2_nothing_written(tmp_path, args, expect):
    assert expect in _bad(tmp_path, *args)


def test_a_source_without_frame_sizes_is_refused(tmp_path):
    doc = {"videos": [{"id": 1, "name": "v"}],
           "images": [{"id": i + 1, "video_id": 1, "frame_id": i, "file_name": f"v/{i:06d}.jpg"} for i in range(3)],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "instance_id": 1,
                            "bbox": [10, 10, 20, 40], "area": 800, "iscrowd": 0} for i in range(3)],
           "categories": [{"id": 1, "name": "pedestrian"}]}
    src = tmp_path / "nosize.json"
    src.write_text(json.dumps(doc))
    r = tdgen("layouts", src, "-o", tmp_path / "lay.json")
    # the reader refuses it already (clipping needs the frame size)
    assert r.exit_code == 2 and "missing 'width'" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "lay.json").exists() and not (tmp_path / "lay.provenance.csv").exists()


def test_output_must_be_json_and_existing_outputs_need_overwrite(tmp_path):
    r = tdgen("layouts", MOT_MINI, "-o", tmp_path / "x.txt")
    assert r.exit_code == 2 and "must be a .json file" in r.stderr and not (tmp_path / "x.txt").exists()
    out = tmp_path / "lay.json"
    assert tdgen("layouts", MOT_MINI, "-o", out).exit_code == 0
    before = out.read_bytes()
    r = tdgen("layouts", MOT_MINI, "-o", out, "--seed", "9")
    assert r.exit_code == 2 and "already exists" in r.stderr and out.read_bytes() == before
    (tmp_path / "lay2.provenance.csv").write_text("x")  # the table beside it counts too
    r = tdgen("layouts", MOT_MINI, "-o", tmp_path / "lay2.json")
    assert r.exit_code == 2 and "lay2.provenance.csv" in r.stderr and not (tmp_path / "lay2.json").exists()
    assert tdgen("layouts", MOT_MINI, "-o", out, "--seed", "9", "--overwrite").exit_code == 0
    assert out.read_bytes() != before


def test_help_teaches_the_transforms_and_the_bundled_recipes():
    r = tdgen("layouts", "--help")
    assert r.exit_code == 0
    for word in ("mirror", "reverse", "speed", "zoom", "pan", "shake", "hide", "cross", "crowd", "thin", "sample",
                 "factor=2", "hard-cases", "mirror:", "provenance"):
        assert word in r.stdout, word


@pytest.mark.slow
def test_hard_cases_roughly_doubles_crossings_and_reappearances_on_sports_ground_truth(tmp_path):
    from layouts_data import SPORTS
    from tdgen.tracks.layout_stats import layout_stats

    out = tmp_path / "hard.json"
    assert tdgen("layouts", SPORTS, "-o", out, "--recipe", "hard-cases", "--copies", "1").exit_code == 0
    a, b = layout_stats(read_tracks(SPORTS)), layout_stats(read_tracks(out))
    assert 1.6 <= b["crossings_per_frame"] / a["crossings_per_frame"] <= 2.5
    assert 1.5 <= b["reappearances_per_video"] / a["reappearances_per_video"] <= 2.7
    for cat, s in a["box_size"].items():
        for key in ("median", "iqr"):
            assert abs(b["box_size"][cat][key] / s[key] - 1) <= 0.10, (cat, key)


def test_cross_provenance_names_the_target_by_its_output_id(tmp_path):
    out = tmp_path / "lay.json"
    recipe = tmp_path / "x.toml"
    recipe.write_text('[[step]]\ntransform = "cross"\ncount = 3\nratio = 0\n')
    assert tdgen("layouts", MOT_MINI, "-o", out, "--recipe", recipe).exit_code == 0
    rows = _csv(tmp_path / "lay.provenance.csv")
    back = read_tracks(out)
    by_track = {int(r["track_id"]): r for r in rows}
    crossed = [json.loads(r["track_ops"])[0]["cross"] for r in rows if r["origin"] == "cross"]
    assert crossed
    box = {(int(t), int(f)): b for t, f, b in zip(back.boxes.track, back.box_frame_index(), back.boxes.bbox)}
    for r in (r for r in rows if r["origin"] == "cross"):
        op = json.loads(r["track_ops"])[0]["cross"]
        target = by_track[op["target_track"]]
        assert target["video"] == r["video"] and target["origin"] == "source"
        assert (op["target_track"], op["frame"]) in box  # the target is where the crossing says
