"""evaluate_dir on a rendered set (oracle) and on a synth-style directory; the eval command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from tdgen.evaluate.evaluate import DEFAULT_MIN_VISIBILITY, evaluate_dir, resolve_target  # noqa: E402
from tdgen.shapes import render_shapes, render_video  # noqa: E402
from tdgen.shapes.render import TRACK_STRIDE  # noqa: E402
from tdgen.tracks.cocovid import write_cocovid  # noqa: E402
from tdgen.errors import AnnotationError  # noqa: E402
from tdgen.tracks.io import read_tracks  # noqa: E402

from helpers import tdgen  # noqa: E402

METRICS = ("gt", "ignored", "det", "tp", "fp", "fn", "recall", "precision", "mean_iou", "identity_consistency",
           "hota", "deta", "assa", "mota", "idf1")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "shapes"
    render_shapes(out, videos=6, frames=16, seed=21)  # seed 21 is also used by the recolouring test
    return out


@pytest.fixture(scope="module")
def oracle(rendered) -> dict:
    return evaluate_dir(None, rendered / "annotations.json", rendered / "backgrounds")


def make_synth_style(src: Path, dst: Path, recolour: dict | None = None) -> dict[str, np.ndarray]:
    """Copy ``src`` the way ``tdgen synth`` lays out its output: clips named clip_NNNNNN,
    ``images/<clip>/NNNNNN.png``, annotations.json beside images/. Returns clip -> background.

    ``recolour`` maps a clip to (old RGB, new RGB, first frame): from that frame on, that
    instance is drawn in the new colour (a generator that loses an object's identity).
    """
    ts = read_tracks(src / "annotations.json")
    backgrounds = {}
    names = []
    for v, name in enumerate(ts.videos.name):
        clip = f"clip_{v:06d}"
        names.append(clip)
        backgrounds[clip] = cv2.imread(str(src / "backgrounds" / f"{name}.png"))[..., ::-1].copy()
    ts.videos.name = np.array(names, dtype=object)
    new_files = []
    for f in range(ts.num_frames):
        clip = names[ts.frames.video[f]]
        rel = f"images/{clip}/{ts.frames.index[f] + 1:06d}.png"
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / ts.frames.file_name[f], dst / rel)
        if recolour and clip in recolour:
            old, new, start = recolour[clip]
            if ts.frames.index[f] >= start:
                img = cv2.imread(str(dst / rel))[..., ::-1].copy()
                img[np.all(img == np.array(old, np.uint8), axis=2)] = new
                cv2.imwrite(str(dst / rel), np.ascontiguousarray(img[..., ::-1]))
        new_files.append(rel)
    ts.frames.file_name = np.array(new_files, dtype=object)
    write_cocovid(ts, dst / "annotations.json", "mmdet")
    return backgrounds


def test_oracle_numbers_on_rendered_clips(oracle):
    assert oracle["videos"] == 6 and oracle["frames"] == 96 and len(oracle["per_video"]) == 6
    assert oracle["background"] == "given"
    assert oracle["recall"] >= 0.95
    assert oracle["precision"] >= 0.9
    assert oracle["mean_iou"] >= 0.95
    assert oracle["identity_consistency"] >= 0.98
    assert oracle["hota"] >= 0.85 and oracle["mota"] >= 0.85 and oracle["idf1"] >= 0.85
    assert oracle["settings"]["min_visibility"] == DEFAULT_MIN_VISIBILITY
    rows = oracle["per_video"]
    assert sum(r["gt"] for r in rows) == oracle["gt"] and sum(r["tp"] for r in rows) == oracle["tp"]
    assert {r["video"] for r in rows} == {f"shapes_{k:04d}" for k in range(6)}
    json.dumps(oracle)  # plain JSON


def test_synth_style_directory_gives_the_oracle_numbers(tmp_path, rendered, oracle):
    synth = tmp_path / "synth"
    backgrounds = make_synth_style(rendered, synth)
    res = evaluate_dir(synth, synth / "annotations.json", backgrounds)
    for k in METRICS:
        assert res[k] == oracle[k], k
    assert [r["video"] for r in res["per_video"]] == [f"clip_{v:06d}" for v in range(6)]
    # without backgrounds (as for generated clips), each is estimated from its clip
    est = evaluate_dir(None, synth / "annotations.json")
    assert est["background"] == "estimated"
    assert est["recall"] >= 0.95 and est["precision"] >= 0.9
    assert abs(est["hota"] - oracle["hota"]) < 0.05


def test_identity_consistency_drops_when_an_object_changes_colour(tmp_path, rendered, oracle):
    ts = read_tracks(rendered / "annotations.json")
    # the longest track of video 0 changes colour halfway through
    v0 = ts.box_video() == 0
    tracks, counts = np.unique(ts.boxes.track[v0], return_counts=True)
    track = tracks[np.argmax(counts)]
    rows = np.flatnonzero(ts.boxes.track == track)
    first = ts.frames.index[ts.boxes.frame[rows[0]]]
    # the renderer says which colour that instance has (track id = video * stride + instance + 1)
    old = np.array(render_video(0, seed=21, frames=16).colors[int(track % TRACK_STRIDE) - 1], np.uint8)
    new = (255 - old).astype(np.uint8)
    synth = tmp_path / "recoloured"
    mid = int(first + counts.max() // 2)
    backgrounds = make_synth_style(rendered, synth, recolour={"clip_000000": (old, new, mid)})
    res = evaluate_dir(None, synth / "annotations.json", backgrounds)
    assert res["per_video"][0]["identity_consistency"] < oracle["per_video"][0]["identity_consistency"]
    assert res["identity_consistency"] < oracle["identity_consistency"]
    assert res["recall"] >= 0.95  # the boxes are still there: only identity suffers


def test_resolve_target_and_missing_frames(tmp_path, rendered):
    root, ann, bgs = resolve_target(rendered)
    assert (root, ann, bgs) == (rendered, rendered / "annotations.json", rendered / "backgrounds")
    assert resolve_target(rendered / "annotations.json")[1] == rendered / "annotations.json"
    with pytest.raises(AnnotationError, match="no annotations.json"):
        resolve_target(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copyfile(rendered / "annotations.json", broken / "annotations.json")
    with pytest.raises(AnnotationError, match="missing"):
        evaluate_dir(None, broken / "annotations.json")


def test_eval_command_side_by_side_json_and_report(tmp_path, rendered, oracle):
    synth = tmp_path / "synth"
    make_synth_style(rendered, synth)
    report = tmp_path / "report.json"
    r = tdgen("eval", synth, "--oracle", rendered, "--json", "--out", report)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(data) == {"target", "oracle"}
    assert data["oracle"]["recall"] == oracle["recall"]
    assert data["target"]["background"] == "estimated"
    assert json.loads(report.read_text()) == data
    r = tdgen("eval", rendered / "annotations.json")
    assert r.exit_code == 0, r.output
    assert "recall" in r.stdout and "HOTA" in r.stdout and "IDF1" in r.stdout
    r = tdgen("eval", tmp_path / "nope")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("error: ")
