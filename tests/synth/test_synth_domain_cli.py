"""`tdgen synth` says when the model does not fit the data, and `--out-size source` keeps sizes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tdgen.modeldir import bundled_model_dir

from helpers import tdgen

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def plan_only(ann: Path, out: Path, *extra: str):
    return tdgen("synth", "--ann", ann, "--out", out, "--plan-only", *extra)


def warnings(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("warning: ")]


@pytest.mark.skipif(not bundled_model_dir().joinpath("tdgen.json").exists(),
                    reason="the bundled model is not in this tree")
def test_bundled_model_on_pedestrians_warns_about_domain_and_aspect(tmp_path):
    res = plan_only(EXAMPLES / "mot_mini_cocovid.json", tmp_path / "s")
    assert res.exit_code == 0, res.output
    ws = warnings(res)
    assert len(ws) == 2, ws
    assert "bundled shapes model" in ws[0] and "pedestrian" in ws[0] and "--model" in ws[0]
    assert "640x480 (4:3)" in ws[1] and "--out-size" in ws[1]
    assert not (tmp_path / "s").exists()
    # writing at the source size answers the aspect warning; the domain one stays
    res = plan_only(EXAMPLES / "mot_mini_cocovid.json", tmp_path / "s", "--out-size", "source")
    assert [("pedestrian" in w) for w in warnings(res)] == [True]


@pytest.mark.skipif(not bundled_model_dir().joinpath("tdgen.json").exists(),
                    reason="the bundled model is not in this tree")
def test_shapes_quickstart_gets_no_warning(tmp_path):
    res = plan_only(EXAMPLES / "shapes_mini" / "annotations.json", tmp_path / "s",
                    "--captions", str(EXAMPLES / "shapes_mini" / "captions.json"))
    assert res.exit_code == 0, res.output
    assert warnings(res) == []


def test_full_hd_sources_on_a_square_model_warn(tmp_path, shared_tiny_model):
    doc = {"videos": [{"id": 1, "name": "v", "width": 1920, "height": 1080}],
           "images": [{"id": i + 1, "video_id": 1, "frame_id": i, "file_name": f"v/{i:06d}.jpg",
                       "width": 1920, "height": 1080} for i in range(8)],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "instance_id": 1,
                            "bbox": [100, 100, 80, 200], "area": 16000, "iscrowd": 0} for i in range(8)],
           "categories": [{"id": 1, "name": "pedestrian"}]}
    ann = tmp_path / "hd.json"
    ann.write_text(json.dumps(doc))
    model = tmp_path / "m"
    shutil.copytree(shared_tiny_model, model)
    info = json.loads((model / "tdgen.json").read_text())
    info.update(resolution=[128, 128], domain={"categories": ["pedestrian"]})
    (model / "tdgen.json").write_text(json.dumps(info))
    ws = warnings(plan_only(ann, tmp_path / "s", "--model", str(model)))
    assert len(ws) == 1 and "1920x1080 (16:9)" in ws[0] and "128x128" in ws[0], ws


def test_out_size_source_writes_each_video_at_its_own_size(tmp_path, fake_model):
    fake_model.defaults.update(slots=20, resolution=(64, 48))
    out = tmp_path / "s"
    res = tdgen("synth", "--ann", EXAMPLES / "mot_mini_cocovid.json", "--out", out, "--model", "fake",
                "--device", "cpu", "--max-clips", "2", "--out-size", "source", "-q")
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "annotations.json").read_text())
    assert doc["images"]
    for im in doc["images"]:
        with Image.open(out / im["file_name"]) as f:
            assert f.size == (im["width"], im["height"]) == (640, 480)
