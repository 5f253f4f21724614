"""The benchmark's shared scoring and bookkeeping: detection recall/precision with ignore regions,
the arms, the real-data fractions, the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdgen.trainability.data import FrameSet
from tdgen.trainability.run import BenchConfig, arms_for, detection_scores, format_table, real_videos


def _set(boxes, ignore) -> FrameSet:
    n = len(boxes)
    return FrameSet(np.zeros((n, 16, 16, 3), np.uint8), [np.asarray(b, float).reshape(-1, 4) for b in boxes],
                    [np.asarray(b, float).reshape(-1, 4) for b in ignore], np.zeros(n, np.int64), ["v"])


def test_detection_scores_count_hits_misses_and_false_positives_but_not_ignored_boxes():
    fs = _set([[[0, 0, 10, 10], [20, 20, 10, 10]], [[50, 50, 10, 10]]], [[], [[0, 0, 30, 30]]])
    dets = [
        (np.array([[1, 0, 10, 10], [60, 60, 5, 5]]), np.array([0.9, 0.8])),  # a hit, a false positive
        (np.array([[50, 50, 10, 10], [5, 5, 10, 10], [51, 50, 10, 10]]), np.array([0.9, 0.7, 0.2])),
    ]
    s = detection_scores(fs, dets, min_score=0.5)
    # frame 1: the box at (5, 5) lies inside the ignore region (neither hit nor miss); the 0.2 one is below the score
    assert (s["gt"], s["tp"], s["det"]) == (3, 2, 3)
    assert s["det_recall"] == round(2 / 3, 4) and s["det_precision"] == round(2 / 3, 4)
    # with every detection counted, the weak duplicate is a false positive
    assert detection_scores(fs, dets, min_score=0.1)["det"] == 4


def test_no_ground_truth_and_no_detections_give_no_score_not_zero():
    s = detection_scores(_set([[]], [[]]), [(np.zeros((0, 4)), np.zeros(0))], min_score=0.5)
    assert s["det_recall"] is None and s["det_precision"] is None


def test_arms_and_fractions():
    cfg = BenchConfig(work=Path("w"), out=Path("w/r.json"), train_videos=24)
    arms = arms_for(cfg)
    assert [a.name for a in arms] == ["real 10%", "real 50%", "real 10% + generated", "real 10% + gated",
                                      "generated only"]
    assert [real_videos(cfg, a.real) for a in arms] == [2, 12, 2, 2, 0]
    assert real_videos(BenchConfig(work=Path("w"), out=Path("r"), train_videos=4), 0.1) == 1  # never none


def test_table_shows_mean_and_spread_per_arm():
    stat = {"mean": 0.5, "std": 0.01, "min": 0.49, "max": 0.51, "n": 3}
    res = {"arms": [{"name": "real 10%", "real_frames": 16, "generated_frames": 0,
                     "summary": {k: dict(stat) for k in ("det_recall", "det_precision", "hota", "mota", "idf1",
                                                         "id_switches")}}]}
    res["arms"][0]["summary"]["mota"] = {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    table = format_table(res).splitlines()
    assert table[0].startswith("| arm | real frames | generated frames | recall")
    assert table[2] == "| real 10% | 16 | 0 | 0.500 ± 0.010 | 0.500 ± 0.010 | 0.500 ± 0.010 | - | " \
                       "0.500 ± 0.010 | 0.5 ± 0.0 |"


def test_train_and_heldout_seeds_must_differ(tmp_path, capsys):
    from tdgen.trainability.run import main

    assert main(["--work", str(tmp_path / "w"), "--train-seed", "4", "--heldout-seed", "4"]) == 2
    assert "must differ" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
