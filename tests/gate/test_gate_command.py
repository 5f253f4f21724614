"""`tdgen gate SYNTH_DIR` end to end on a small synth output made with the stand-in model, with a
stand-in detector that sees the boxes of some clips and not others."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import tdgen.cli.gate as gate_cli
from tdgen.gate.detector import FrameDetections

from helpers import tdgen
from make_mot import write_mot_split

pycocotools = pytest.importorskip("pycocotools.coco")
pq = pytest.importorskip("pyarrow.parquet")

BLIND = "SYN-02"  # the stand-in detector sees nothing in the clips of this source video


class Oracle:
    """Detections read off the annotations synth wrote: every box of the clips whose name does not
    start with ``blind``; ``shift`` moves the boxes of the lowest track of each clip by 60 % of
    their width (IoU 0.25), ``fail_on`` raises on one clip."""

    name = "oracle"

    def __init__(self, annotations: dict, blind: str = BLIND, shift: bool = False, fail_on: str | None = None):
        self.blind, self.fail_on, self.calls, self.checked = blind, fail_on, [], None
        images = {im["id"]: im for im in annotations["images"]}
        first = {}
        for a in annotations["annotations"]:
            clip = Path(images[a["image_id"]]["file_name"]).parent.name
            first[clip] = min(first.get(clip, a["instance_id"]), a["instance_id"])
        self.boxes: dict[tuple[str, int], list] = defaultdict(list)
        for a in annotations["annotations"]:
            im = images[a["image_id"]]
            clip = Path(im["file_name"]).parent.name
            x, y, w, h = a["bbox"]
            if shift and a["instance_id"] == first[clip]:
                x += 0.6 * w
            self.boxes[clip, int(Path(im["file_name"]).stem) - 1].append([x, y, x + w, y + h])

    def check_clips(self, clip_ids):
        self.checked = sorted(clip_ids)

    def detect_clip(self, frames, clip_id):
        from tdgen.errors import UsageError

        self.calls.append(clip_id)
        if self.fail_on == clip_id:
            raise UsageError(f"detections/{clip_id}.txt: line 3: not a number")
        out = []
        for t in range(len(frames)):
            b = [] if clip_id.startswith(self.blind) else self.boxes.get((clip_id, t), [])
            out.append(FrameDetections.from_arrays(np.array(b, float).reshape(-1, 4), np.ones(len(b))))
        return out


@pytest.fixture()
def synth_dir(tmp_path, fake_model) -> Path:
    mot = write_mot_split(tmp_path / "MOT" / "train")
    out = tmp_path / "s"
    r = tdgen("synth", "--ann", mot, "--out", out, "--model", "fake", "--device", "cpu", "--steps", "2", "-q")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture()
def oracle(synth_dir, monkeypatch):
    """Patch the command's detector factory; returns a function that sets the detector up."""
    original = json.loads((synth_dir / "annotations.json").read_text())
    made = {}

    def use(**kw) -> Oracle:
        made["det"] = Oracle(original, **kw)
        return made["det"]

    use.made = made
    use()

    def factory(detector, detections):
        assert detector == "fake" and detections is None
        return made["det"]

    monkeypatch.setattr(gate_cli, "make_detector", factory)
    return use


def gate(out, *extra):
    return tdgen("gate", out, "--detector", "fake", *extra)


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` (but the lock files) and its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def clip_names(out: Path, blind: bool) -> list[str]:
    return sorted(p.stem for p in (out / "clips").glob("*.json") if p.stem.startswith(BLIND) == blind)


def one_error(r, *, after_progress: bool = False) -> str:
    """The one ``error:`` line of a run that failed with exit 2 (the last line, after progress
    lines when the failure came while clips were being scored)."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    if after_progress:
        lines = [ln for ln in lines if not ln.startswith("gate: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_gate_keeps_what_the_detector_finds_and_moves_the_rest_aside(synth_dir, oracle):
    out = synth_dir
    blind, seen = clip_names(out, True), clip_names(out, False)
    assert blind and seen
    before = pq.read_table(out / "manifest.parquet").to_pylist()

    r = gate(out)
    assert r.returncode == 0, r.stderr
    assert "kept" in r.stdout and "rejected" in r.stdout and f"{len(blind)} rejected clip(s)" in r.stdout
    det = oracle.made["det"]
    assert det.checked == sorted(blind + seen) and sorted(det.calls) == det.checked

    report = json.loads((out / "gate_report.json").read_text())
    tot = report["totals"]
    assert (tot["clips"], tot["kept"], tot["rejected"]) == (len(blind) + len(seen), len(seen), len(blind))
    assert tot["recall_kept"]["min"] == 1.0 and tot["recall"]["min"] == 0.0
    by_clip = {c["clip_id"]: c for c in report["clips"]}
    assert all(by_clip[c]["decision"] == "rejected" and by_clip[c]["recall"] == 0.0 for c in blind)
    assert all(by_clip[c]["decision"] == "kept" and by_clip[c]["recall"] == 1.0 for c in seen)
    assert by_clip[blind[0]]["frames_dir"] == f"rejected/{blind[0]}"

    # annotations.json: the kept clips only, all their boxes, and pycocotools reads it
    coco = pycocotools.COCO(str(out / "annotations.json"))
    doc = coco.dataset
    assert sorted(v["name"] for v in doc["videos"]) == seen
    assert len(doc["annotations"]) == sum(by_clip[c]["boxes"] for c in seen)
    for im in doc["images"]:
        assert (out / im["file_name"]).is_file()

    # rejected clips' frames and fragments are aside, nothing of them is left in images/ or clips/
    for c in blind:
        assert sorted(p.name for p in (out / "rejected" / c).iterdir()) == [f"{k:06d}.png" for k in range(1, 5)]
        assert (out / "rejected" / f"{c}.json").is_file()
        assert not (out / "images" / c).exists() and not (out / "clips" / c).exists()
    assert sorted(p.name for p in (out / "images").iterdir()) == seen

    # the manifest: synth's columns as they were, plus the gate's, for every clip
    after = pq.read_table(out / "manifest.parquet").to_pylist()
    assert [{k: v for k, v in row.items() if not k.startswith("gate_")} for row in after] == before
    assert {row["clip_id"]: (row["gate_decision"], row["gate_recall"]) for row in after} == \
        {c: ("rejected" if c in blind else "kept", 0.0 if c in blind else 1.0) for c in blind + seen}

    # a second run changes nothing, and detects the rejected clips where they now are
    files = snapshot(out)
    r2 = gate(out, "--json")
    assert r2.returncode == 0, r2.stderr
    summary = json.loads(r2.last_json_line())
    assert (summary["kept"], summary["rejected"], summary["moved_aside"]) == (len(seen), len(blind), 0)
    assert snapshot(out) == files

    # synth's own finalize still works on the gated directory: it sees the kept clips only
    from tdgen.synth import finalize

    assert finalize(out)["clips"] == len(seen)


def test_other_settings_redecide_and_move_clips_back(synth_dir, oracle):
    out = synth_dir
    ungated = (out / "annotations.json").read_bytes()
    assert gate(out).returncode == 0
    r = gate(out, "--min-recall", "0", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.last_json_line())
    assert summary["rejected"] == 0 and summary["moved_back"] == len(clip_names(out, True)) > 0
    assert not (out / "rejected").exists()
    # everything kept, no box touched: the same annotations.json synth wrote
    assert (out / "annotations.json").read_bytes() == ungated
    # and synth's own finalize still finds every clip with its frames
    from tdgen.synth import finalize

    assert finalize(out)["clips"] == summary["clips"]
    assert (out / "annotations.json").read_bytes() == ungated


def test_rejected_clips_of_an_earlier_run_are_forgotten(synth_dir, oracle):
    out = synth_dir
    assert gate(out).returncode == 0 and (out / "rejected").is_dir()
    # synth --overwrite with other settings starts over (and knows nothing of rejected/)
    mot = out.parent / "MOT" / "train"
    r = tdgen("synth", "--ann", mot, "--out", out, "--model", "fake", "--device", "cpu", "--steps", "3", "-q",
              "--max-clips", "2", "--overwrite")
    assert r.returncode == 0, r.stderr
    fresh = clip_names(out, False) + clip_names(out, True)
    assert len(fresh) == 2
    r = gate(out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "gate_report.json").read_text())
    assert sorted(c["clip_id"] for c in report["clips"]) == sorted(fresh)
    rejected = [c["clip_id"] for c in report["clips"] if c["decision"] == "rejected"]
    aside = {p.name for p in (out / "rejected").iterdir() if not p.name.startswith(".")} \
        if (out / "rejected").exists() else set()
    assert aside == {n for c in rejected for n in (c, f"{c}.json")}
    assert report["totals"]["clips"] == 2


@pytest.mark.parametrize("action", ["drop", "ignore"])
def test_box_level_drops_or_marks_the_boxes_the_detector_misses(synth_dir, oracle, action):
    out = synth_dir
    oracle(blind="nothing", shift=True)
    total = len(json.loads((out / "annotations.json").read_text())["annotations"])
    r = gate(out, "--gate-level", "box", "--box-action", action, "--min-box-iou", "0.3", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.last_json_line())
    report = json.loads((out / "gate_report.json").read_text())
    key = "dropped" if action == "drop" else "ignored"
    weak = sum(len(c[key]) for c in report["clips"])
    assert weak > 0 and summary[f"boxes_{key}"] == weak and summary["rejected"] == 0
    assert all(b["iou"] < 0.3 for c in report["clips"] for b in c[key])
    doc = pycocotools.COCO(str(out / "annotations.json")).dataset
    crowd = [a for a in doc["annotations"] if a["iscrowd"]]
    if action == "drop":
        assert len(doc["annotations"]) == total - weak and not crowd
    else:
        assert len(doc["annotations"]) == total and len(crowd) == weak
        assert all(a["mot_conf"] == 0 for a in crowd)
    # every weak box is one of the shifted track's: the others all stay as they were
    assert summary["found"] == summary["boxes"] - weak


def test_a_gate_killed_between_two_moves_is_finished_by_the_next(synth_dir, oracle):
    out = synth_dir
    assert gate(out).returncode == 0
    done = snapshot(out)
    # as if killed after moving a clip's fragment aside but before its frames
    clip = sorted(p.stem for p in (out / "rejected").glob("*.json") if not p.name.startswith("."))[0]
    (out / "rejected" / clip).rename(out / "images" / clip)
    assert gate(out).returncode == 0
    assert snapshot(out) == done


def test_the_mot_copy_follows_the_gate(synth_dir, oracle):
    out = synth_dir
    mot = out.parent / "MOT" / "train"
    r = tdgen("synth", "--ann", mot, "--out", out, "--model", "fake", "--device", "cpu", "--steps", "2", "-q", "--mot")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "mot").iterdir()) == clip_names(out, False) + clip_names(out, True)
    oracle(shift=True)
    r = gate(out, "--gate-level", "both", "--box-action", "ignore", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "gate_report.json").read_text())
    kept = sorted(c["clip_id"] for c in report["clips"] if c["decision"] == "kept")
    assert sorted(p.name for p in (out / "mot").iterdir()) == kept
    for c in report["clips"]:
        if c["decision"] != "kept":
            continue
        rows = [ln.split(",") for ln in (out / "mot" / c["clip_id"] / "gt" / "gt.txt").read_text().splitlines()]
        marked = sorted((int(r[0]), int(float(r[6]))) for r in rows if float(r[6]) == 0)
        assert marked == sorted((b["frame"], 0) for b in c["ignored"]) and c["ignored"]


def test_a_failing_detector_leaves_the_directory_as_it_was(synth_dir, oracle):
    out = synth_dir
    files = snapshot(out)
    det = oracle(fail_on=clip_names(out, False)[-1])
    line = one_error(gate(out), after_progress=True)
    assert "not a number" in line and det.calls
    assert snapshot(out) == files


@pytest.mark.parametrize("args, message", [
    ([], "give one of --detector"),
    (["--detector", "fake", "--detections", "d"], "not both"),
    (["--detector", "fake", "--min-recall", "1.5"], "--min-recall"),
    (["--detector", "fake", "--min-box-iou", "nan"], "--min-box-iou"),
    (["--detector", "fake", "--iou", "0"], "--iou"),
    (["--detector", "fake", "--gate-level", "frame"], "--gate-level"),
    (["--detector", "fake", "--box-action", "delete"], "--box-action"),
])
def test_bad_flags_are_one_line_and_write_nothing(synth_dir, oracle, args, message):
    files = snapshot(synth_dir)
    assert message in one_error(tdgen("gate", synth_dir, *args))
    assert snapshot(synth_dir) == files


def test_not_a_synth_dir(tmp_path, oracle):
    (tmp_path / "plain").mkdir()
    assert "not a tdgen synth output" in one_error(gate(tmp_path / "plain"))
    assert "no such directory" in one_error(gate(tmp_path / "missing"))
    assert list((tmp_path / "plain").iterdir()) == []
