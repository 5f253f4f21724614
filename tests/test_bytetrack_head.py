"""ByteTrack trains a 1-class YOLOX head on what convert, synth and merge write.

ByteTrack's ``MOTDataset`` reads a COCO file with pycocotools, takes ``class_ids =
sorted(coco.getCatIds())`` and gives each box the class index ``class_ids.index(category_id)``;
its pedestrian head has ``num_classes = 1``, so every index must be 0 (anything else is the
``Class values must be smaller than num_classes`` crash). These tests apply that rule, through
pycocotools itself, to a converted MOT17-style file, a synth output and their merge.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tdgen.modeldir
import tdgen.synth.generator
from tdgen.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parent / "synth"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "tracks"))
from fakegen import FakeGenerator  # noqa: E402
from test_classes import mot17  # noqa: E402,F401  (all 12 MOT classes, conf-0 rows, 3 detector copies)

pycocotools = pytest.importorskip("pycocotools.coco")
runner = CliRunner()


def bytetrack_class_indices(path: Path) -> set[int]:
    """The class index ByteTrack's MOTDataset gives every box of ``path``."""
    coco = pycocotools.COCO(str(path))
    class_ids = sorted(coco.getCatIds())
    return {class_ids.index(a["category_id"]) for a in coco.loadAnns(coco.getAnnIds())}


def _run(*args) -> str:
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.stderr
    return r.stdout


@pytest.fixture()
def fake_model(monkeypatch):
    monkeypatch.setattr(tdgen.synth.generator, "PipelineGenerator", lambda model, **kw: FakeGenerator())
    monkeypatch.setattr(tdgen.modeldir, "model_defaults", lambda model: {
        "frames": 4, "slots": 20, "prompt_template": "a video of {categories}", "resolution": (64, 48)})


def test_converted_synth_and_merged_files_fit_a_one_class_head(mot17, tmp_path, fake_model):
    base = tmp_path / "train_half.json"
    _run("convert", mot17, "--split", "half-train", "--flavor", "bytetrack", "-o", base)
    assert bytetrack_class_indices(base) == {0}
    synth = tmp_path / "synth"
    _run("synth", "--ann", mot17, "--out", synth, "--model", "fake", "--device", "cpu", "--flavor", "bytetrack",
         "-q")
    assert bytetrack_class_indices(synth / "annotations.json") == {0}
    merged = tmp_path / "merged.json"
    _run("merge", base, synth / "annotations.json", "--prefix", "synth", "-o", merged)
    doc = json.loads(merged.read_text())
    assert [c["name"] for c in doc["categories"]] == ["pedestrian"]
    assert bytetrack_class_indices(merged) == {0}
    # the merged file holds the synthetic boxes too, not only the base's
    assert len(doc["annotations"]) > len(json.loads(base.read_text())["annotations"])


def test_an_extra_set_with_other_classes_is_refused_then_dropped_or_mapped(mot17, tmp_path, fake_model):
    base = tmp_path / "train_half.json"
    _run("convert", mot17, "--split", "half-train", "--flavor", "bytetrack", "-o", base)
    extra = tmp_path / "extra"
    # an mmdet-flavour synth that also generates cars (conf-0 rows included)
    _run("synth", "--ann", mot17, "--out", extra, "--model", "fake", "--device", "cpu", "--classes",
         "pedestrian,car", "--min-conf", "0", "-q")
    ann = extra / "annotations.json"
    assert {c["name"] for c in json.loads(ann.read_text())["categories"]} >= {"pedestrian", "car"}
    refused = runner.invoke(app, ["merge", str(base), str(ann), "-o", str(tmp_path / "no.json")])
    assert refused.exit_code == 2 and "car" in refused.stderr and not (tmp_path / "no.json").exists()

    dropped = tmp_path / "dropped.json"
    _run("merge", base, ann, "--prefix", "synth", "--drop-categories", "car", "-o", dropped)
    assert bytetrack_class_indices(dropped) == {0}
    names = {c["name"] for c in json.loads(dropped.read_text())["categories"]}
    assert names == {"pedestrian"}

    mapped = tmp_path / "mapped.json"
    _run("merge", base, ann, "--prefix", "synth", "--map", "car=pedestrian", "-o", mapped)
    assert bytetrack_class_indices(mapped) == {0}
    # mapping keeps the boxes that dropping leaves out
    n = {p: len(json.loads(p.read_text())["annotations"]) for p in (dropped, mapped)}
    assert n[mapped] > n[dropped]


@pytest.mark.parametrize("args,message", [
    (["--map", "car"], "--map 'car': must look like OLD=NEW"),
    (["--map", "car=pedestrian", "--map", "car=person"], "--map: 'car' is mapped twice"),
    (["--drop-categories", ""], "--drop-categories"),
])
def test_bad_merge_category_flags_are_one_line(tmp_path, args, message):
    base = tmp_path / "b.json"
    base.write_text(json.dumps({"videos": [], "images": [], "annotations": [], "categories": []}))
    r = runner.invoke(app, ["merge", str(base), str(base), "-o", str(tmp_path / "m.json"), *args])
    assert r.exit_code == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "m.json").exists()
