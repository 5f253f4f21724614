"""The command line on real files: in process through Typer's CliRunner, and as a real
``python -m tdgen.cli`` subprocess where the interpreter itself is the point (the entry point,
``--version``, and that a bad input never shows a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from helpers import tdgen

DATA = Path(__file__).parent / "data"
REAL = DATA / "realdata"


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
def test_help_and_version(subprocess):
    r = tdgen("--help", subprocess=subprocess)
    assert r.returncode == 0
    for cmd in ("inspect", "convert", "merge"):
        assert cmd in r.stdout
    v = tdgen("--version", subprocess=subprocess)
    assert v.returncode == 0 and v.stdout.startswith("tdgen ")


def test_inspect_json_on_sportsmot_split():
    r = tdgen("inspect", REAL / "sportsmot", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    lines = sum(len([ln for ln in p.read_text().splitlines() if ln.strip()])
                for p in (REAL / "sportsmot").glob("*/gt/gt.txt"))
    assert s["boxes"] == lines
    assert s["videos"] == 3
    assert s["frames"] == 825 + 403 + 550


def test_convert_mot_split_to_half_train_and_merge(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    half = tmp_path / "sports_half_train.json"
    r = tdgen("convert", REAL / "sportsmot", "--split", "half-train", "-o", half, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames"] == (825 // 2 + 1) + (403 // 2 + 1) + (550 // 2 + 1)
    doc = json.loads(half.read_text())
    assert doc["info"] and all(im["frame_id"] >= 0 for im in doc["images"])
    COCO(str(half))
    merged = tmp_path / "merged.json"
    r = tdgen("merge", half, REAL / "mmtracking" / "demo_mot_data_ann.json", "--prefix", "extra",
              "--add-categories", "-o", merged, "--json")
    assert r.returncode == 0, r.stderr
    coco = COCO(str(merged))
    assert len(coco.getAnnIds()) == summary["boxes"] + 3


def test_convert_refuses_to_overwrite(tmp_path):
    out = tmp_path / "o.json"
    out.write_text("keep me")
    r = tdgen("convert", REAL / "mmtracking" / "demo_vis_data_ann.json", "-o", out)
    assert r.returncode == 2
    assert "already exists" in r.stderr and out.read_text() == "keep me"
    r = tdgen("convert", REAL / "mmtracking" / "demo_vis_data_ann.json", "-o", out, "--overwrite")
    assert r.returncode == 0
    assert json.loads(out.read_text())["annotations"]


def _bad_cocovid(tmp_path: Path) -> Path:
    doc = json.loads((REAL / "mmtracking" / "demo_cocovid_data_ann_vid.json").read_text())
    doc["annotations"][3]["image_id"] = 4242
    p = tmp_path / "bad.json"
    p.write_bytes(orjson.dumps(doc))
    return p


def _bad_mot(tmp_path: Path) -> Path:
    seq = tmp_path / "SEQ-01"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-01\nimDir=img1\nframeRate=30\nseqLength=5\n"
                                     "imWidth=640\nimHeight=480\nimExt=.jpg\n")
    (seq / "gt" / "gt.txt").write_text("1,1,10,10,20,20,1,1,1\n2,1,11,10,20,20,1,1\n3,1,12,10,20,20,1,1,1,1,1\n")
    return seq


def _bad_seqinfo(tmp_path: Path) -> Path:
    seq = tmp_path / "SEQ-02"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-02\nseqLength=five\n")
    (seq / "gt" / "gt.txt").write_text("1,1,10,10,20,20,1,1,1\n")
    return seq


def _bad_json(tmp_path: Path) -> Path:
    p = tmp_path / "trunc.json"
    p.write_text('{"images": [{"id": 1, "file_name": "a.jpg"')
    return p


@pytest.mark.parametrize("make,where", [
    (_bad_cocovid, "annotations[3] (id 4): image_id 4242 is not in 'images'"),
    (_bad_mot, "gt.txt: line 2: 8 columns"),
    (_bad_seqinfo, "seqLength"),
    (_bad_json, "line 1, column"),
])
@pytest.mark.parametrize("command", ["inspect", "convert", "merge"])
def test_bad_input_one_line_exit_2_no_output(tmp_path, make, where, command):
    _bad_input_is_one_line(tmp_path, make, where, command, subprocess=False)


# In a real interpreter too, one case per command: nothing but the one line reaches the terminal.
@pytest.mark.parametrize("command", ["inspect", "convert", "merge"])
def test_bad_input_in_a_real_process_is_one_line_without_traceback(tmp_path, command):
    _bad_input_is_one_line(tmp_path, _bad_cocovid, "image_id 4242 is not in 'images'", command, subprocess=True)


def _bad_input_is_one_line(tmp_path, make, where, command, *, subprocess):
    src = make(tmp_path)
    out = tmp_path / "out" / "result.json"
    if command == "inspect":
        args = ["inspect", src]
    elif command == "convert":
        args = ["convert", src, "-o", out]
    else:
        args = ["merge", REAL / "mmtracking" / "demo_vis_data_ann.json", src, "-o", out]
    r = tdgen(*args, subprocess=subprocess)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    assert str(src) in lines[0] and where in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("subprocess", [False, True], ids=["in-process", "subprocess"])
def test_missing_file_is_a_clear_error(tmp_path, subprocess):
    r = tdgen("inspect", tmp_path / "nope.json", subprocess=subprocess)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'nope.json'}: no such file or directory"
