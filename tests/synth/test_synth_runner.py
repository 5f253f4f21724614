"""The synth runner with a stand-in generator: outputs, resuming, sharding, refusing other settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tdgen.synth import SynthOptions, finalize, run_synth
from tdgen.errors import OutputError
from tdgen.tracks.mot import read_mot

from fakegen import FakeGenerator
from make_mot import write_mot_split

HERE = Path(__file__).parent


@pytest.fixture()
def mot_split(tmp_path):
    return write_mot_split(tmp_path / "MOT" / "train")


def _opts(ann, out, **kw):
    base = dict(frames=4, stride=4, slots=6, batch_size=2, steps=2)
    base.update(kw)
    return SynthOptions(ann=Path(ann), out=Path(out), **base)


def _ann(out):
    return json.loads((Path(out) / "annotations.json").read_text())


def test_outputs_match_the_input_tracks(mot_split, tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    out = tmp_path / "synth"
    res = run_synth(_opts(mot_split, out, out_size=(80, 60)), lambda: FakeGenerator((64, 48)))
    assert res.failed == [] and res.done == res.planned > 0
    doc = _ann(out)
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == sum(v["id"] > 0 for v in doc["videos"]) * 4
    import cv2

    for im in doc["images"]:
        img = cv2.imread(str(out / im["file_name"]))
        assert img is not None and img.shape[:2] == (im["height"], im["width"]) == (60, 80)
    # every input track of every planned clip is there, with its box rescaled to 80x60
    ts = read_mot(mot_split)
    from tdgen.synth import plan_synth

    plan = plan_synth(_opts(mot_split, out))
    anns_by_video = {}
    img_by_id = {im["id"]: im for im in doc["images"]}
    vid_by_id = {v["id"]: v["name"] for v in doc["videos"]}
    for a in doc["annotations"]:
        im = img_by_id[a["image_id"]]
        anns_by_video.setdefault(vid_by_id[im["video_id"]], []).append((im["frame_id"], a))
    names = ts.category_names()
    cat_names = {c["id"]: c["name"] for c in doc["categories"]}
    for clip in plan.clips:
        got = anns_by_video[clip.clip_id]
        want = int((clip.mask > 0).sum())
        assert len(got) == want
        for f, a in got:
            inst_slots = {x["instance_id"] for _, x in got}
            assert len(inst_slots) == clip.num_tracks
        # boxes: source pixels -> normalised -> 80x60
        for f, a in got:
            src_rows = clip.box_rows[f]
            cands = []
            for r in src_rows[src_rows >= 0]:
                bx, by, bw, bh = ts.boxes.bbox[r]  # clipped to the 640x480 frame, scaled to 80x60
                x1, y1 = min(max(bx, 0), 640), min(max(by, 0), 480)
                x2, y2 = min(max(bx + bw, 0), 640), min(max(by + bh, 0), 480)
                cands.append(np.array([x1 / 8, y1 / 8, (x2 - x1) / 8, (y2 - y1) / 8]))
            assert any(np.abs(np.array(a["bbox"]) - c).max() < 0.02 for c in cands), (a["bbox"], cands)
            assert cat_names[a["category_id"]] in names.values()
    manifest = __import__("pyarrow.parquet", fromlist=["x"]).read_table(out / "manifest.parquet").to_pylist()
    assert [m["clip_id"] for m in manifest] == [c.clip_id for c in plan.clips]
    assert all(m["seconds"] >= 0 and m["prompt"] and m["seed"] for m in manifest)


def test_rerun_skips_finished_clips_and_refuses_other_settings(mot_split, tmp_path):
    out = tmp_path / "synth"
    g1 = FakeGenerator()
    r1 = run_synth(_opts(mot_split, out), lambda: g1)
    before = (out / "annotations.json").read_bytes()
    g2 = FakeGenerator()
    r2 = run_synth(_opts(mot_split, out), lambda: g2)
    assert r2.done == 0 and r2.skipped == r1.done and g2.calls == []
    assert (out / "annotations.json").read_bytes() == before
    with pytest.raises(OutputError, match="steps 2 -> 3"):
        run_synth(_opts(mot_split, out, steps=3), FakeGenerator)
    r3 = run_synth(_opts(mot_split, out, steps=3, overwrite=True), FakeGenerator)
    assert r3.done == r1.done
    with pytest.raises(OutputError, match="drop_boxes"):  # an ablation run never mixes with a boxed one
        run_synth(_opts(mot_split, out, steps=3, drop_boxes=True), FakeGenerator)


def test_half_written_clip_is_redone(mot_split, tmp_path):
    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out), FakeGenerator)
    ref = _ann(out)
    frag = sorted((out / "clips").glob("*.json"))[1]
    clip_id = frag.stem
    frag.unlink()  # frames written, fragment not: the run was killed between the two
    (out / "images" / f".{sorted((out / 'clips').glob('*.json'))[0].stem}.tmp-999").mkdir()
    g = FakeGenerator()
    r = run_synth(_opts(mot_split, out), lambda: g)
    assert g.calls == [[clip_id]] and r.done == 1
    assert _ann(out) == ref
    assert not [p for p in (out / "images").iterdir() if p.name.startswith(".")]


def test_shards_union_equals_unsharded(mot_split, tmp_path):
    full = tmp_path / "full"
    run_synth(_opts(mot_split, full), FakeGenerator)
    sharded = tmp_path / "sharded"
    r0 = run_synth(_opts(mot_split, sharded, shard=(0, 2)), FakeGenerator)
    r1 = run_synth(_opts(mot_split, sharded, shard=(1, 2)), FakeGenerator)
    assert r0.done + r1.done == r0.planned and r0.done > 0 and r1.done > 0
    assert _ann(sharded) == _ann(full)
    # frames are identical too: a clip's frames do not depend on its shard or batch
    for p in (full / "images").rglob("*.png"):
        assert p.read_bytes() == (sharded / p.relative_to(full)).read_bytes()


def test_batch_size_does_not_change_frames(mot_split, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_synth(_opts(mot_split, a, batch_size=1), FakeGenerator)
    run_synth(_opts(mot_split, b, batch_size=3), FakeGenerator)
    files = sorted(p.relative_to(a) for p in (a / "images").rglob("*.png"))
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_a_failing_batch_is_reported_and_the_rest_written(mot_split, tmp_path):
    out = tmp_path / "synth"
    r = run_synth(_opts(mot_split, out, batch_size=1), lambda: FakeGenerator(fail_on="SYN-02"))
    assert r.failed and all("SYN-02" in c for c in r.failed)
    assert r.done == r.planned - len(r.failed)
    assert (out / "failures.jsonl").exists()
    # the next run picks the failed clips up again
    r2 = run_synth(_opts(mot_split, out, batch_size=1), FakeGenerator)
    assert r2.done == len(r.failed)


SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {here!r})
from fakegen import FakeGenerator
from tdgen.synth import SynthOptions, run_synth
opts = SynthOptions(ann=Path({ann!r}), out=Path({out!r}), frames=4, stride=4, slots=6, batch_size=1, steps=2)
run_synth(opts, lambda: FakeGenerator(delay={delay}))
"""


def test_sigkill_mid_run_then_resume_equals_uninterrupted(mot_split, tmp_path):
    ref = tmp_path / "ref"
    run_synth(_opts(mot_split, ref, batch_size=1), FakeGenerator)
    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(here=str(HERE), ann=str(mot_split), out=str(out), delay=0.3))
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if (out / "clips").exists() and len(list((out / "clips").glob("*.json"))) >= 2:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    n_done = len(list((out / "clips").glob("*.json")))
    planned = len(list((ref / "clips").glob("*.json")))
    assert 0 < n_done < planned, "the kill should land mid-run"
    g = FakeGenerator()
    r = run_synth(_opts(mot_split, out, batch_size=1), lambda: g)
    assert r.skipped == n_done and r.done == planned - n_done
    assert _ann(out) == _ann(ref)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(p.name for p in (ref / "images").iterdir())


def test_finalize_alone_rebuilds_from_fragments(mot_split, tmp_path):
    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out), FakeGenerator)
    ref = _ann(out)
    (out / "annotations.json").unlink()
    s = finalize(out, flavor="bytetrack")
    doc = _ann(out)
    assert s["clips"] == len(ref["videos"])
    assert len(doc["annotations"]) == len(ref["annotations"])
    assert min(im["frame_id"] for im in doc["images"]) == 1


def test_the_plan_with_its_dropped_tracks_is_reported_before_generating(mot_split, tmp_path):
    events = []

    def make():
        g = FakeGenerator()
        events.append(g)
        return g

    # 4 and 3 tracks per window, 2 slots: every window drops tracks
    res = run_synth(_opts(mot_split, tmp_path / "synth", slots=2), make, on_plan=lambda p: events.append(
        (p, list(events[0].calls))), on_start=lambda total, done: events.append("start"))
    plan, calls_then = events[1]
    assert calls_then == [] and events[2] == "start"  # reported before any clip is generated
    assert plan["dropped_tracks"] == sum(len(v) for v in plan["dropped"].values()) > 0
    assert res.plan == plan and plan["size"] == [64, 48]
    manifest = __import__("pyarrow.parquet", fromlist=["x"]).read_table(tmp_path / "synth" / "manifest.parquet")
    rows = {m["clip_id"]: m for m in manifest.to_pylist()}
    for cid, ids in plan["dropped"].items():
        assert rows[cid]["dropped_track_ids"] == ids and rows[cid]["dropped_tracks"] == len(ids)
        assert not set(ids) & set(rows[cid]["source_track_ids"])
    assert all(m["dropped_tracks"] == 0 for cid, m in rows.items() if cid not in plan["dropped"])
