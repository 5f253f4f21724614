"""``tdgen eval --tracks``: a tracker's MOT result files scored against COCO-VID annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trackeval")

from tdgen.errors import AnnotationError  # noqa: E402
from tdgen.evaluate.metrics import hota, mot_metrics  # noqa: E402
from tdgen.evaluate.tracker_eval import evaluate_tracks, find_result_files, read_result_file  # noqa: E402

from helpers import tdgen  # noqa: E402

VIDEOS = ("clip_000000", "clip_000001", "clip_000002")
FRAMES = 12
SCORES = ("hota", "mota", "idf1", "track_ap")


def make_annotations(path: Path, *, crowd: bool = True) -> dict[str, list[tuple]]:
    """A small COCO-VID file: 3 videos of 12 frames, 3 to 5 moving tracks each (some starting
    late or ending early), non-integer boxes; in the last video one crowd box track. Returns
    video -> boxes as (frame 1-based, track, x, y, w, h, iscrowd)."""
    rng = np.random.default_rng(7)
    doc = {"categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}], "videos": [], "images": [],
           "annotations": []}
    boxes: dict[str, list[tuple]] = {}
    image_id = box_id = 0
    track_id = 100
    for v, name in enumerate(VIDEOS):
        doc["videos"].append({"id": v + 1, "name": name, "width": 320, "height": 240})
        tracks = []
        for k in range(3 + v):
            track_id += 1
            start = int(rng.integers(0, 4))
            stop = int(rng.integers(FRAMES - 3, FRAMES + 1))
            x, y = 10 + 60 * k + rng.uniform(0, 5), rng.uniform(10, 150)
            tracks.append((track_id, start, stop, x, y, rng.uniform(15, 30), rng.uniform(15, 40), 1 + k % 2, 0))
        if crowd and v == 2:
            track_id += 1
            tracks.append((track_id, 0, FRAMES, 250.5, 200.25, 40.0, 30.0, 1, 1))
        rows = []
        for f in range(FRAMES):
            image_id += 1
            doc["images"].append({"id": image_id, "video_id": v + 1, "frame_id": f, "width": 320, "height": 240,
                                  "file_name": f"images/{name}/{f + 1:06d}.jpg"})
            for tid, start, stop, x, y, w, h, cat, is_crowd in tracks:
                if start <= f < stop:
                    box_id += 1
                    bb = [x + 1.5 * f, y + 0.75 * f, w, h]
                    doc["annotations"].append({"id": box_id, "image_id": image_id, "video_id": v + 1,
                                               "instance_id": tid, "category_id": cat, "bbox": bb,
                                               "area": w * h, "iscrowd": is_crowd})
                    rows.append((f + 1, tid, *bb, is_crowd))
        boxes[name] = rows
    path.write_text(json.dumps(doc), encoding="utf-8")
    return boxes


def write_results(out: Path, boxes: dict[str, list[tuple]], keep=None, score=None) -> Path:
    """MOT result files as trackers write them (score 1 unless ``score(track)`` says otherwise);
    ``keep((video, frame, track)) -> bool`` filters boxes."""
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in boxes.items():
        lines = [f"{f},{t},{x!r},{y!r},{w!r},{h!r},{score(t) if score else 1},-1,-1,-1" for f, t, x, y, w, h, _ in rows
                 if keep is None or keep((name, f, t))]
        (out / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture()
def data(tmp_path) -> tuple[Path, dict]:
    synth = tmp_path / "synth"
    synth.mkdir()
    return synth, make_annotations(synth / "annotations.json")


def scores_of(result: dict) -> dict[str, float]:
    return {k: result[k] for k in SCORES}


def test_annotations_as_results_score_one_and_dropping_boxes_lowers_every_score(tmp_path, data):
    synth, boxes = data
    perfect = write_results(tmp_path / "perfect", boxes)
    r = tdgen("eval", synth, "--tracks", perfect, "--json", check=True)
    res = json.loads(r.last_json_line())["tracks"]
    assert scores_of(res) == dict.fromkeys(SCORES, 1.0)
    assert res["track_ap50"] == 1.0 and res["id_switches"] == 0 and res["deta"] == res["assa"] == 1.0
    assert res["ignored"] == FRAMES and res["det_on_ignored"] == FRAMES  # the crowd boxes, removed
    for row in res["per_video"]:
        assert scores_of(row) == dict.fromkeys(SCORES, 1.0), row["video"]

    rng = np.random.default_rng(0)
    every = [(name, f, t) for name, rows in boxes.items() for f, t, *_ in rows]
    dropped = {every[i] for i in rng.choice(len(every), size=len(every) // 10, replace=False)}
    partial = write_results(tmp_path / "partial", boxes, keep=lambda key: key not in dropped)
    r = tdgen("eval", synth, "--tracks", partial, "--json", check=True)
    res = json.loads(r.last_json_line())["tracks"]
    assert all(res[k] < 1.0 for k in SCORES), scores_of(res)
    assert res["recall"] < 1.0 and res["precision"] == 1.0


def test_id_swap_counts_two_switches_and_halves_idf1(tmp_path):
    doc = {"categories": [{"id": 1, "name": "a"}], "videos": [{"id": 1, "name": "v"}], "images": [],
           "annotations": []}
    lines = []
    for f in range(10):
        doc["images"].append({"id": f + 1, "video_id": 1, "frame_id": f, "file_name": f"{f}.jpg", "width": 100,
                              "height": 100})
        for k, (tid, x) in enumerate(((1, 0.0), (2, 50.0))):
            doc["annotations"].append({"id": 2 * f + k + 1, "image_id": f + 1, "video_id": 1, "instance_id": tid,
                                       "category_id": 1, "bbox": [x, 10.0, 20.0, 20.0], "area": 400.0,
                                       "iscrowd": 0})
            out_id = tid if f < 5 else 3 - tid  # the two ids swap from frame 6 on
            lines.append(f"{f + 1},{out_id},{x},10,20,20,0.9,-1,-1,-1")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(doc), encoding="utf-8")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "v.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = evaluate_tracks(ann, tmp_path / "res")
    assert res["id_switches"] == 2
    assert res["recall"] == res["precision"] == 1.0
    assert res["mota"] == pytest.approx(1 - 2 / 20)
    assert res["idf1"] == pytest.approx(0.5)  # each output id follows each object for 5 of 10 frames
    assert res["track_ap"] == 0.0  # no output track covers half of an object's time


def test_agrees_with_the_own_metrics_on_noisy_results(tmp_path, data):
    synth, boxes = data
    rng = np.random.default_rng(5)
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    seqs = []
    for name, rows in boxes.items():
        lines, gt_seq, tr_seq = [], [], []
        for f in range(1, FRAMES + 1):
            g = [r for r in rows if r[0] == f and not r[6]]
            gt_seq.append((np.array([r[1] for r in g], np.int64), np.array([r[2:6] for r in g]).reshape(-1, 4)))
            ids, bb = [], []
            for r in g:
                if rng.random() < 0.15:
                    continue
                tid = r[1] + (1000 if f > 8 and r[1] % 3 == 0 else 0)  # some tracks change id
                box = np.array(r[2:6]) + rng.normal(0, 2.5, 4) * [1, 1, 0.5, 0.5]
                ids.append(tid)
                bb.append(box)
                lines.append(",".join(map(repr, [f, tid, *map(float, box), 0.8, -1, -1, -1])))
            tr_seq.append((np.array(ids, np.int64), np.array(bb).reshape(-1, 4)))
        seqs.append((gt_seq, tr_seq))
        (noisy / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # no crowd boxes written: compare with the plain HOTA / CLEAR / Identity of tdgen.evaluate.metrics
    make_annotations(synth / "annotations.json", crowd=False)
    res = evaluate_tracks(synth / "annotations.json", noisy)
    own_hota = hota([f for s in seqs for f in s[0]], [f for s in seqs for f in s[1]])
    for row, (g, t) in zip(res["per_video"], seqs):
        assert row["hota"] == pytest.approx(hota(g, t)["hota"], abs=1e-4)
    own = mot_metrics(seqs, 0.5)["overall"]
    assert res["mota"] == pytest.approx(own["mota"], abs=1e-4)
    assert res["idf1"] == pytest.approx(own["idf1"], abs=1e-4)
    assert res["id_switches"] == own["id_switches"] > 0
    assert 0 < res["hota"] < 1 and own_hota["hota"] > 0


def test_tracker_box_on_a_crowd_region_is_not_a_false_positive(tmp_path, data):
    synth, boxes = data
    perfect = write_results(tmp_path / "r", boxes, keep=lambda key: True)
    base = evaluate_tracks(synth / "annotations.json", perfect)
    # move the crowd track's boxes (written as a result track) to an empty spot: false positives now
    crowd_rows = [r for r in boxes["clip_000002"] if r[6]]
    moved = {k: [r if not r[6] else (r[0], r[1], 5.0, 215.0, 10.0, 10.0, 1) for r in v] for k, v in boxes.items()}
    # ranked above the true tracks (score 1 against 0.9) so that it costs TrackAP too
    crowd_track = crowd_rows[0][1]
    elsewhere = evaluate_tracks(synth / "annotations.json", write_results(
        tmp_path / "m", moved, score=lambda t: 1.0 if t == crowd_track else 0.9))
    assert base["precision"] == 1.0 and base["det_on_ignored"] == len(crowd_rows)
    assert elsewhere["det_on_ignored"] == 0 and elsewhere["precision"] < 1.0 and elsewhere["mota"] < 1.0
    assert elsewhere["track_ap"] < 1.0 == base["track_ap"]


def test_missing_video_warns_and_scores_empty(tmp_path, data):
    synth, boxes = data
    res_dir = write_results(tmp_path / "r", {k: v for k, v in boxes.items() if k != "clip_000001"})
    r = tdgen("eval", synth, "--tracks", res_dir)
    assert r.returncode == 0, r.stderr
    assert "warning: no result file for video clip_000001" in r.stderr
    assert "overall" in r.stdout and "clip_000001*" in r.stdout and "fractions 0..1" in r.stdout
    assert "* no result file" in r.stdout
    res = evaluate_tracks(synth / "annotations.json", res_dir)
    row = {x["video"]: x for x in res["per_video"]}["clip_000001"]
    assert row["result"] == "missing" and row["det"] == 0 and row["hota"] == 0.0 and row["track_ap"] == 0.0
    assert res["missing_results"] == 1 and len(res["warnings"]) == 1 and res["recall"] < 1.0


def test_bad_result_files_are_one_line_errors_and_nothing_is_written(tmp_path, data):
    synth, boxes = data
    report = tmp_path / "report.json"
    res_dir = write_results(tmp_path / "r", boxes)
    (res_dir / "clip_999999.txt").write_text("1,1,0,0,5,5,1,-1,-1,-1\n", encoding="utf-8")
    r = tdgen("eval", synth, "--tracks", res_dir, "--out", report)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(f"error: {res_dir / 'clip_999999.txt'}: no video 'clip_999999'")
    assert not report.exists()

    (res_dir / "clip_999999.txt").unlink()
    (res_dir / "clip_000000.txt").write_text("1,1,0,0,5,5,1,-1,-1,-1\n2,1,0,0,5,5,1,-1,-1,-1\n3,1,0,zero,5,5,1\n",
                                             encoding="utf-8")
    r = tdgen("eval", synth, "--tracks", res_dir, "--out", report)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"error: {res_dir / 'clip_000000.txt'}: line 3: ")
    assert not report.exists()

    (res_dir / "clip_000000.txt").write_text(f"{FRAMES + 1},1,0,0,5,5,1,-1,-1,-1\n", encoding="utf-8")
    with pytest.raises(AnnotationError, match=f"line 1: frame {FRAMES + 1} out of range 1..{FRAMES}"):
        evaluate_tracks(synth / "annotations.json", res_dir)
    with pytest.raises(AnnotationError, match="no result files"):
        find_result_files(synth)


def test_json_out_and_usage_errors(tmp_path, data):
    synth, boxes = data
    res_dir = write_results(tmp_path / "r", boxes)
    report = tmp_path / "report.json"
    r = tdgen("eval", synth / "annotations.json", "--tracks", res_dir, "--json", "--out", report, check=True)
    assert json.loads(report.read_text()) == json.loads(r.last_json_line())
    assert len(json.loads(r.last_json_line())["tracks"]["per_video"]) == len(VIDEOS)
    r = tdgen("eval", synth, "--tracks", res_dir, "--oracle", synth)
    assert r.returncode == 2 and "--oracle" in r.stderr
    r = tdgen("eval", synth, "--tracks", tmp_path / "nope")
    assert r.returncode == 2 and "no such directory" in r.stderr


def test_read_result_file_columns(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("1,7,1.5,2,3,4,0.25,-1,-1,-1\n3,8,0,0,1,1,0.5,-1,-1,-1\n", encoding="utf-8")
    v = read_result_file(p, 3)
    assert v.frame.tolist() == [0, 2] and v.track.tolist() == [7, 8]
    assert v.bbox[0].tolist() == [1.5, 2, 3, 4] and v.score.tolist() == [0.25, 0.5]
    p.write_text("1,7,1.5,2,3,4\n", encoding="utf-8")  # six columns: score 1
    assert read_result_file(p, 1).score.tolist() == [1.0]


def test_min_visibility_and_mot_conf_zero_make_ignore_regions(tmp_path, data):
    synth, boxes = data
    ann = synth / "annotations.json"
    doc = json.loads(ann.read_text())
    hidden = doc["annotations"][0]["instance_id"]
    flagged = next(a["instance_id"] for a in doc["annotations"] if a["video_id"] == 2)
    for a in doc["annotations"]:
        a["visibility"] = 0.1 if a["instance_id"] == hidden else 1.0
        a["mot_conf"] = 0 if a["instance_id"] == flagged else 1
    ann.write_text(json.dumps(doc), encoding="utf-8")
    res_dir = write_results(tmp_path / "r", boxes, keep=lambda key: key[2] not in (hidden, flagged))
    everything = evaluate_tracks(ann, res_dir)
    assert everything["recall"] < 1.0  # the hidden track counts and is missed
    lenient = evaluate_tracks(ann, res_dir, min_visibility=0.4)
    assert lenient["recall"] == lenient["hota"] == lenient["track_ap"] == 1.0
    n_flagged = sum(a["instance_id"] == flagged for a in doc["annotations"])
    assert everything["ignored"] == FRAMES + n_flagged  # the crowd track and the conf-0 track
    assert lenient["ignored"] > everything["ignored"]
