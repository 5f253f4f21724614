"""``tdgen inspect`` with the layout statistics, and ``tdgen inspect A --compare B``: on a
hand-built COCO-VID file with one known crossing, one overlap and one gap, and on real MOT data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import tdgen
from tdgen.tracks.cocovid import write_cocovid

REAL = Path(__file__).parents[1] / "data" / "realdata"

# the summary keys inspect printed before the layout statistics; they must stay as they were
SUMMARY_KEYS = {"source", "format", "videos", "frames", "tracks", "boxes", "crowd_boxes", "categories",
                "frames_per_video", "track_length", "boxes_per_frame", "empty_frames", "box_width", "box_height",
                "problems"}


def box(frame, track, x, y, w=10, h=20):
    return ("v", frame, track, 1, x, y, w, h)


@pytest.fixture
def hard_file(tmp_path, trackset_from_rows) -> Path:
    """Track 1 goes right, track 2 left across it (one crossing, between frames 1 and 2; their
    boxes overlap at frame 1); track 3 is missing at frame 1 (one gap of one frame)."""
    rows = [box(0, 1, 0, 0), box(1, 1, 20, 0), box(2, 1, 40, 0),
            box(0, 2, 42, 5), box(1, 2, 22, 5), box(2, 2, 2, 5),
            box(0, 3, 100, 60), box(2, 3, 100, 60)]
    ts = trackset_from_rows(rows, sizes={"v": (200, 120)}, categories=[{"id": 1, "name": "pedestrian"}])
    return write_cocovid(ts, tmp_path / "hard.json")


@pytest.fixture
def calm_file(tmp_path, trackset_from_rows) -> Path:
    """The same three tracks standing still: no crossing, no overlap, no gap, box sizes twice as big."""
    rows = [("v", f, t, 1, x, 0, 20, 40) for f in range(3) for t, x in ((1, 0), (2, 60), (3, 120))]
    ts = trackset_from_rows(rows, sizes={"v": (200, 120)}, categories=[{"id": 1, "name": "pedestrian"}])
    return write_cocovid(ts, tmp_path / "calm.json")


def test_json_adds_the_layout_statistics_and_keeps_the_summary(hard_file):
    r = tdgen("inspect", hard_file, "--json", check=True)
    s = json.loads(r.stdout)
    assert set(s) == SUMMARY_KEYS | {"layout"}
    assert (s["videos"], s["frames"], s["tracks"], s["boxes"]) == (1, 3, 3, 8)
    lay = s["layout"]
    assert (lay["crossings"], lay["occlusion_pairs"], lay["gaps"], lay["tracks_with_gaps"]) == (1, 1, 1, 1)
    assert lay["gap_length"] == {"median": 1.0, "p90": 1.0}
    assert lay["reappearances_per_video"] == 1.0
    assert lay["box_size"]["pedestrian"]["count"] == 8
    assert lay["speed"]["median"] == 20.0  # tracks 1 and 2 move 20 px a frame; track 3 has no step


def test_human_output_shows_the_hard_cases(hard_file):
    r = tdgen("inspect", hard_file, check=True)
    lines = r.stdout.splitlines()
    row = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in lines if ln.count("│") == 3}
    assert row["crossings"] == "1" and row["occlusion pairs"] == "1" and row["gaps (re-appearances)"] == "1"
    assert any(ln.startswith("box size") for ln in lines) and "pedestrian" in r.stdout
    # the lines inspect printed before are still there, in their order
    heads = [ln for ln in lines if ln in ("categories", "distributions", "problems", "no problems found")]
    assert heads[:2] == ["categories", "distributions"]


def test_compare_json_has_both_sides_and_the_ratio(hard_file, calm_file):
    r = tdgen("inspect", calm_file, "--compare", hard_file, "--json", check=True)
    c = json.loads(r.stdout)
    assert set(c) == {"a", "b", "ratio"}
    a, b, ratio = c["a"], c["b"], c["ratio"]
    assert a["source"] == str(calm_file) and b["source"] == str(hard_file)
    assert (a["crossings"], b["crossings"]) == (0, 1)
    assert ratio["crossings"] is None  # A is 0
    assert ratio["boxes"] == pytest.approx(8 / 9, abs=1e-4)
    assert ratio["box_size"]["pedestrian"]["median"] == pytest.approx(b["box_size"]["pedestrian"]["median"]
                                                                       / a["box_size"]["pedestrian"]["median"], abs=1e-4)
    assert ratio["gap_length"] == {"median": None, "p90": None}  # A has no gap
    assert "params" not in ratio and "source" not in ratio


def test_compare_human_output_has_the_three_columns(hard_file, calm_file):
    r = tdgen("inspect", hard_file, "--compare", calm_file, check=True)
    rows = {}
    for ln in r.stdout.splitlines():
        cells = [c.strip() for c in ln.split("│")[1:-1]]
        if len(cells) == 4:
            rows[cells[0]] = cells[1:]
    assert rows["crossings"] == ["1", "0", "0"]
    assert rows["boxes"] == ["8", "9", "1.12"]
    assert rows["box size pedestrian median"][2] == "2"  # 20 x 40 boxes against 10 x 20
    assert r.stdout.splitlines()[0].startswith(f"A {hard_file}")


def test_compare_of_a_real_set_with_itself_is_all_ones():
    src = REAL / "sportsmot"
    c = json.loads(tdgen("inspect", src, "--compare", src, "--json", check=True).stdout)
    assert c["a"] == c["b"] and c["a"]["crossings"] > 0 and c["a"]["occlusion_pairs"] > 0
    flat = []

    def walk(d):
        for v in d.values():
            walk(v) if isinstance(v, dict) else flat.append(v)
    walk(c["ratio"])
    assert flat and all(v == 1.0 for v in flat if v is not None)


@pytest.mark.parametrize("side", ["file", "other"])
def test_a_bad_file_on_either_side_is_one_line_exit_2(tmp_path, hard_file, side):
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": [], "images": [{"id": 1}], "annotations": []}')
    args = (bad, "--compare", hard_file) if side == "file" else (hard_file, "--compare", bad)
    for extra in ((), ("--json",)):
        r = tdgen("inspect", *args, *extra)
        assert r.returncode == 2, r.output
        assert r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {bad}"), r.stderr


def test_a_missing_other_file_is_one_line_exit_2(tmp_path, hard_file):
    r = tdgen("inspect", hard_file, "--compare", tmp_path / "nope.json")
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'nope.json'}: no such file or directory"
