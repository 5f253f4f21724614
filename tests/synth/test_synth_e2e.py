"""`tdgen synth` end to end with the tiny random model, on real files.

MOT-style fixture -> synth -> annotations.json (pycocotools) + frames -> merge with a real-style base.
The commands run in process (Typer's CliRunner); the run killed with SIGKILL is a real subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tdgen.tracks.clips import ClipSpec, plan_clips
from tdgen.tracks.mot import read_mot

from helpers import tdgen, tdgen_command
from make_mot import write_mot_split

# Every test that runs the model is end to end (a full synth run or more): the slow tier.
slow = pytest.mark.slow

REAL = Path(__file__).parents[1] / "data" / "realdata"
STEPS = "2"


@pytest.fixture(scope="module")
def model(shared_tiny_model):
    """The tiny preset at 64x48 pixels, 4 frames (built once per test run)."""
    return shared_tiny_model


@pytest.fixture(scope="module")
def mot(tmp_path_factory):
    return write_mot_split(tmp_path_factory.mktemp("mot") / "train")


def _synth(mot, model, out, *extra, check=True):
    return tdgen("synth", "--ann", mot, "--out", out, "--model", model, "--steps", STEPS, "--slots", "6",
                 "--json", *extra, check=check)


def _summary(r) -> dict:
    return json.loads(r.last_json_line())


def _frames(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "images").rglob("*.png"))}


@pytest.fixture(scope="module")
def reference(mot, model, tmp_path_factory):
    """One uninterrupted run (batch size 3) that other tests compare against."""
    out = tmp_path_factory.mktemp("ref") / "synth"
    r = _synth(mot, model, out, "--batch-size", "3")
    return out, _summary(r)


@slow
def test_outputs_follow_the_tracklets_and_load_in_pycocotools(mot, reference):
    from pycocotools.coco import COCO

    out, summary = reference
    assert summary["done"] == summary["planned"] > 0 and not summary["failed"]
    coco = COCO(str(out / "annotations.json"))
    doc = json.loads((out / "annotations.json").read_text())
    # every image exists with the recorded size
    for im in doc["images"]:
        with Image.open(out / im["file_name"]) as img:
            assert img.size == (im["width"], im["height"]) == (64, 48)
    # every track of every planned clip, with its boxes rescaled to the written frames, and its category
    clips = plan_clips(read_mot(mot), ClipSpec(frames=4, max_slots=6))
    assert len(doc["videos"]) == len(clips)
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    by_video = {v["name"]: v["id"] for v in doc["videos"]}
    images = {(im["video_id"], im["frame_id"]): im["id"] for im in doc["images"]}
    import pyarrow.parquet as pq

    manifest = {r["clip_id"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    for clip in clips:
        vid = by_video[clip.clip_id]
        assert manifest[clip.clip_id]["source_track_ids"] == [int(t) for t in clip.track_ids]
        # instance ids of a clip's video follow its slots in order
        used = [s for s in range(clip.num_tracks) if clip.mask[:, s].any()]
        instances = sorted({a["instance_id"] for a in doc["annotations"] if a["video_id"] == vid})
        assert len(instances) == len(used) == clip.num_tracks
        for s, inst in zip(used, instances):
            for f in range(clip.num_frames):
                anns = coco.loadAnns(coco.getAnnIds(imgIds=[images[(vid, f)]]))
                mine = [a for a in anns if a["instance_id"] == inst]
                if clip.mask[f, s] == 0:
                    assert not mine
                    continue
                assert len(mine) == 1
                x1, y1, x2, y2 = clip.boxes[f, s] * np.array([64, 48, 64, 48])
                assert mine[0]["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01)
                assert cats[mine[0]["category_id"]] == clip.category_names[s]


@slow
def test_same_seed_same_bytes_and_batch_size_does_not_matter(mot, model, reference, tmp_path):
    ref, _ = reference
    out = tmp_path / "b1"
    _synth(mot, model, out, "--batch-size", "1")
    assert _frames(out) == _frames(ref)
    assert json.loads((out / "annotations.json").read_text()) == json.loads((ref / "annotations.json").read_text())
    other = tmp_path / "seed"
    _synth(mot, model, other, "--batch-size", "3", "--seed", "1", "--max-clips", "1")
    name = next(iter(_frames(other)))
    assert _frames(other)[name] != _frames(ref)[name]


@slow
def test_rerun_resumes_and_other_settings_are_refused(mot, model, reference, tmp_path):
    ref, summary = reference
    again = _synth(mot, model, ref, "--batch-size", "2")
    s = _summary(again)
    assert s["done"] == 0 and s["skipped"] == summary["planned"]
    r = _synth(mot, model, ref, "--cfg", "3", check=False)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "--overwrite" in r.stderr


@slow
def test_sigkill_then_rerun_equals_uninterrupted(mot, model, reference, tmp_path):
    ref, summary = reference
    out = tmp_path / "killed"
    args = ["synth", "--ann", mot, "--out", out, "--model", model, "--steps", STEPS, "--slots", "6",
            "--batch-size", "1", "-q"]
    proc = subprocess.Popen(tdgen_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if (out / "clips").is_dir() and any((out / "clips").glob("*.json")):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "synth finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = len(list((out / "clips").glob("*.json")))
    assert 0 < done < summary["planned"]
    assert not (out / "annotations.json").exists()
    # the resumed run (another process than the killed one) equals the uninterrupted reference run
    s = _summary(tdgen(*args, "--json", check=True))
    assert s["skipped"] == done and s["done"] == summary["planned"] - done
    assert (out / "annotations.json").read_bytes() == (ref / "annotations.json").read_bytes()
    assert _frames(out) == _frames(ref)
    leftovers = [p.name for p in (out / "images").iterdir() if p.name.startswith(".")]
    assert not leftovers


@slow
def test_shards_union_equals_unsharded(mot, model, reference, tmp_path):
    ref, _ = reference
    out = tmp_path / "sharded"
    s0 = _summary(_synth(mot, model, out, "--shard", "0/2"))
    s1 = _summary(_synth(mot, model, out, "--shard", "1/2"))
    assert s0["done"] > 0 and s1["done"] > 0
    tdgen("synth", "--out", out, "--finalize", "--json", check=True)
    assert json.loads((out / "annotations.json").read_text()) == json.loads((ref / "annotations.json").read_text())
    assert _frames(out) == _frames(ref)


@slow
def test_out_size_resizes_frames_and_boxes(mot, model, reference, tmp_path):
    ref, _ = reference
    out = tmp_path / "big"
    _synth(mot, model, out, "--out-size", "128x96", "--max-clips", "2", "--image-format", "jpg")
    doc = json.loads((out / "annotations.json").read_text())
    base = json.loads((ref / "annotations.json").read_text())
    assert all((im["width"], im["height"]) == (128, 96) for im in doc["images"])
    for im in doc["images"][:3]:
        assert im["file_name"].endswith(".jpg")
        with Image.open(out / im["file_name"]) as img:
            assert img.size == (128, 96)
    vid = {v["id"]: v["name"] for v in doc["videos"]}
    ref_vid = {v["name"]: v["id"] for v in base["videos"]}
    def rank(d, a):  # a track's position within its clip (instance ids are renumbered per file)
        ids = sorted({b["instance_id"] for b in d["annotations"] if b["video_id"] == a["video_id"]})
        return ids.index(a["instance_id"])

    checked = 0
    for a in doc["annotations"]:
        match = [b for b in base["annotations"] if b["video_id"] == ref_vid[vid[a["video_id"]]]
                 and rank(base, b) == rank(doc, a) and _frame(base, b) == _frame(doc, a)]
        assert len(match) == 1
        assert a["bbox"] == pytest.approx([2 * v for v in match[0]["bbox"]], abs=0.02)
        checked += 1
    assert checked > 5


def _frame(doc, ann):
    return next(im["frame_id"] for im in doc["images"] if im["id"] == ann["image_id"])


@slow
def test_merge_into_a_real_style_base(reference, tmp_path):
    ref, _ = reference
    base = REAL / "mmtracking" / "demo_mot_data_ann.json"  # OpenMMLab's MOT test fixture
    out = tmp_path / "merged.json"
    r = tdgen("merge", base, ref / "annotations.json", "-o", out, "--prefix", "synth/")
    assert r.returncode == 2 and "'car' is not in the base set" in r.stderr and not out.exists()
    r = tdgen("merge", base, ref / "annotations.json", "-o", out, "--prefix", "synth/", "--add-categories",
              "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    ids = [a["id"] for a in doc["annotations"]]
    assert len(ids) == len(set(ids))
    synth_imgs = [im for im in doc["images"] if im["file_name"].startswith("synth/images/SYN-")]
    assert len(synth_imgs) == len(json.loads((ref / "annotations.json").read_text())["images"])


# No model runs here (each command stops at its model check): the fast tier.
def test_missing_or_incomplete_model_is_a_one_line_error(mot, tmp_path):
    r = _synth(mot, tmp_path / "nope", tmp_path / "o1", check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "nope" in r.stderr and "no such model directory" in r.stderr
    broken = tmp_path / "broken"
    (broken / "unet").mkdir(parents=True)
    r = _synth(mot, broken, tmp_path / "o2", check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "unet" in r.stderr
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    r = _synth(mot, "no-such-preset", tmp_path / "o3", check=False)
    assert r.returncode == 2 and "preset" in r.stderr
