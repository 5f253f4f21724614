"""TrackAP (tdgen.evaluate.trackap): hand-computed cases and a cross-check against TrackEval's TrackMAP."""

from __future__ import annotations

import numpy as np
import pytest

from tdgen.evaluate import trackap as ta
from tdgen.evaluate.trackap import IOU_THRESHOLDS, VideoTracks, spatiotemporal_iou, track_ap

BOX = [0.0, 0.0, 10.0, 10.0]


def tracks(rows, *, scores=None, ignore=None, track_scores=None) -> VideoTracks:
    """``rows``: (frame, track, x, y, w, h, category)."""
    a = np.asarray(rows, np.float64).reshape(-1, 7)
    return VideoTracks(frame=a[:, 0], track=a[:, 1], bbox=a[:, 2:6], category=a[:, 6], score=scores,
                       ignore=ignore, track_scores=track_scores)


def track(tid, frames, box=BOX, cat=1):
    return [(f, tid, *box, cat) for f in frames]


def test_spatiotemporal_iou_sums_areas_over_frames():
    gt = tracks(track(1, [0, 1]))
    # same box on frames 0 and 1, and a frame of its own (frame 2): 200 / 300
    pr = tracks(track(7, [0, 1, 2]) + track(8, [0], box=[5, 0, 10, 10]))
    gids, pids, iou = spatiotemporal_iou(gt, pr)
    assert gids.tolist() == [1] and pids.tolist() == [7, 8]
    # track 8 overlaps half the box on frame 0 only: 50 / (200 + 100 - 50)
    np.testing.assert_allclose(iou, [[2 / 3, 50 / 250]])


def test_partly_ignored_gt_track_leaves_its_flagged_frames_out():
    gt_rows = track(1, [0, 1, 2, 3])
    pr = tracks(track(5, [0, 1]))
    assert spatiotemporal_iou(tracks(gt_rows), pr)[2][0, 0] == pytest.approx(0.5)
    flagged = tracks(gt_rows, ignore=[0, 0, 1, 1])
    assert spatiotemporal_iou(flagged, pr)[2][0, 0] == pytest.approx(1.0)
    # a prediction box in a flagged frame does not count against it either
    pr2 = tracks(track(5, [0, 1, 2], box=[0, 0, 10, 10]) + [(3, 5, 50, 50, 4, 4, 1)])
    assert spatiotemporal_iou(flagged, pr2)[2][0, 0] == pytest.approx(1.0)


def test_chunked_pairs_give_the_same_iou(monkeypatch):
    rng = np.random.default_rng(3)
    gt, pr = random_video(rng, n_gt=6, n_frames=12, cats=1)
    want = spatiotemporal_iou(gt, pr)[2]
    monkeypatch.setattr(ta, "_PAIR_CHUNK", 5)
    np.testing.assert_array_equal(spatiotemporal_iou(gt, pr)[2], want)


def test_perfect_prediction_scores_one():
    gt = tracks(track(1, range(4)) + track(2, range(2, 6), box=[30, 30, 8, 12], cat=2))
    r = track_ap([(gt, gt)])
    assert (r.ap, r.ap50, r.ap75) == (1.0, 1.0, 1.0)
    assert sorted(r.per_category) == [1, 2]


def test_half_overlap_in_time_matches_only_at_050():
    gt = tracks(track(1, range(4)))
    pr = tracks(track(9, range(2)))  # IoU 2/4 exactly
    r = track_ap([(gt, pr)])
    assert r.ap50 == pytest.approx(1.0)
    assert r.ap75 == 0.0
    assert r.ap == pytest.approx(0.1)


def test_shifted_box_matches_up_to_its_iou():
    gt = tracks(track(1, range(3)))
    pr = tracks(track(9, range(3), box=[2, 0, 10, 10]))  # IoU 8/12 = 0.667 on every frame
    r = track_ap([(gt, pr)])
    assert r.ap == pytest.approx(0.4)  # matched at 0.50, 0.55, 0.60, 0.65
    assert r.ap50 == pytest.approx(1.0) and r.ap75 == 0.0


def test_two_predictions_for_one_gt():
    gt = tracks(track(1, range(4)))
    good, bad = track(5, range(4)), track(6, range(4), box=[40, 40, 10, 10])
    # the better-scored one is right: the duplicate comes after full recall
    assert track_ap([(gt, tracks(good + bad, scores=[0.9] * 4 + [0.5] * 4))]).ap == pytest.approx(1.0)
    # the wrong one ranks first: precision 1/2 at every recall point
    assert track_ap([(gt, tracks(good + bad, scores=[0.5] * 4 + [0.9] * 4))]).ap == pytest.approx(0.5)
    # two exact copies: one is the match, the other a false positive after it
    dup = track(5, range(4)) + track(6, range(4))
    assert track_ap([(gt, tracks(dup, scores=[0.9] * 4 + [0.8] * 4))]).ap == pytest.approx(1.0)


def test_extra_false_positive_lowers_ap_by_the_computed_amount():
    gt = tracks(track(1, range(3)) + track(2, range(3), box=[30, 0, 10, 10]))
    both = track(1, range(3)) + track(2, range(3), box=[30, 0, 10, 10])
    assert track_ap([(gt, tracks(both, scores=[0.9] * 3 + [0.7] * 3))]).ap == pytest.approx(1.0)
    fp = track(3, range(3), box=[60, 60, 5, 5])
    r = track_ap([(gt, tracks(both + fp, scores=[0.9] * 3 + [0.7] * 3 + [0.8] * 3))])
    # ranked TP, FP, TP: recall 0.5 at precision 1, then recall 1 at precision 2/3; recall points
    # 0..0.50 (51 of them) read 1, the 50 above read 2/3
    assert r.ap == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)
    assert r.ap50 == r.ap75 == pytest.approx(r.ap)


def test_track_score_is_the_mean_box_score_unless_given():
    gt = tracks(track(1, range(2)))
    rows = track(5, range(2)) + track(6, range(2), box=[50, 50, 10, 10])
    # the right track: box scores 1.0 and 0.2 (mean 0.6); the wrong one 0.5 and 0.5
    pr = tracks(rows, scores=[1.0, 0.2, 0.5, 0.5])
    assert track_ap([(gt, pr)]).ap == pytest.approx(1.0)
    pr = tracks(rows, scores=[1.0, 0.2, 0.5, 0.5], track_scores={5: 0.1})
    assert track_ap([(gt, pr)]).ap == pytest.approx(0.5)


def test_predictions_on_a_crowd_track_are_ignored():
    gt_rows = track(1, range(3)) + track(2, range(3), box=[40, 40, 10, 10])
    on_crowd = track(8, range(3), box=[40, 40, 10, 10]) + track(9, range(3), box=[40.2, 40, 10, 10])
    pr = tracks(track(5, range(3)) + on_crowd, scores=[0.5] * 3 + [0.9] * 6)
    crowd_gt = tracks(gt_rows, ignore=[0] * 3 + [1] * 3)
    assert track_ap([(crowd_gt, pr)]).ap == pytest.approx(1.0)  # both predictions on the crowd are skipped
    # without the flag, track 2 is a regular GT: one of the two is a hit, the other a false positive
    plain = track_ap([(tracks(gt_rows), pr)])
    assert plain.ap < 1.0
    # a crowd track alone has no AP (no regular GT)
    assert track_ap([(tracks(track(2, range(3)), ignore=[1] * 3), pr)]).ap is None


def test_empty_cases():
    empty = VideoTracks.empty()
    gt = tracks(track(1, range(3)))
    r = track_ap([(empty, empty)])
    assert r.ap is None and r.ap50 is None and r.per_category == {}
    assert track_ap([]).ap is None
    assert track_ap([(gt, empty)]).ap == 0.0  # GT, no prediction
    assert track_ap([(empty, gt)]).ap is None  # predictions only: no category with GT
    # a category with predictions but no GT leaves the others' AP alone
    other = tracks(track(4, range(3), cat=2))
    assert track_ap([(gt, tracks(track(1, range(3)) + track(4, range(3), cat=2)))]).ap == 1.0
    assert track_ap([(gt, gt), (empty, other)]).ap == 1.0


def test_categories_and_class_agnostic():
    gt = tracks(track(1, range(3), cat=1))
    pr = tracks(track(5, range(3), cat=2))
    assert track_ap([(gt, pr)]).ap == 0.0
    assert track_ap([(gt, pr)], class_agnostic=True).ap == 1.0
    with pytest.raises(ValueError, match="category"):
        track_ap([(VideoTracks(frame=[0], track=[1], bbox=[BOX]), gt)])


def test_max_dets_keeps_the_best_scored_per_video():
    gt = tracks(track(1, range(2)))
    pr = tracks(track(5, range(2), box=[50, 50, 10, 10]) + track(6, range(2)), scores=[0.9] * 2 + [0.1] * 2)
    assert track_ap([(gt, pr)]).ap == pytest.approx(0.5)
    assert track_ap([(gt, pr)], max_dets=1).ap == 0.0


def test_two_boxes_of_one_track_in_a_frame_are_refused():
    with pytest.raises(ValueError, match="two boxes"):
        tracks(track(1, [0, 0]))


# --------------------------------------------------------------------------- reference
def random_video(rng: np.random.Generator, n_gt: int, n_frames: int, cats: int) -> tuple[VideoTracks, VideoTracks]:
    """GT tracks on random frame spans; predictions: jittered copies (some cut short, some with a
    wrong category), plus random false tracks; random scores."""
    g_rows, p_rows, p_scores = [], [], []
    tid = 1
    for k in range(n_gt):
        a = int(rng.integers(0, n_frames - 1))
        b = int(rng.integers(a + 1, n_frames + 1))
        x, y = rng.uniform(0, 200, 2)
        w, h = rng.uniform(8, 60, 2)
        cat = int(rng.integers(1, cats + 1))
        for f in range(a, b):
            g_rows.append((f, k + 1, x + 2 * f, y, w, h, cat))
        for _ in range(int(rng.integers(0, 3))):
            lo = int(rng.integers(a, b))
            hi = int(rng.integers(lo + 1, b + 1))
            pc = cat if rng.random() < 0.85 else int(rng.integers(1, cats + 1))
            for f in range(lo, hi):
                j = rng.normal(0, 0.12, 4) * [w, h, w, h]
                p_rows.append((f, 100 + tid, x + 2 * f + j[0], y + j[1], max(w + j[2], 1), max(h + j[3], 1), pc))
                p_scores.append(rng.uniform(0.05, 1))
            tid += 1
    for _ in range(int(rng.integers(0, 4))):
        a = int(rng.integers(0, n_frames))
        x, y = rng.uniform(0, 200, 2)
        cat = int(rng.integers(1, cats + 1))
        for f in range(a, min(n_frames, a + int(rng.integers(1, 6)))):
            p_rows.append((f, 100 + tid, x, y, 20, 20, cat))
            p_scores.append(rng.uniform(0.05, 1))
        tid += 1
    return tracks(g_rows), tracks(p_rows, scores=p_scores) if p_rows else VideoTracks.empty()


def trackeval_ap(videos: list[tuple[VideoTracks, VideoTracks]]) -> float | None:
    """Class-averaged AP of TrackEval's TrackMAP (bbox track IoU, no area or time ranges)."""
    from trackeval.metrics import TrackMAP

    metric = TrackMAP({"USE_AREA_RANGES": False, "USE_TIME_RANGES": False, "MAX_DETECTIONS": 0,
                       "IOU_THRESHOLDS": IOU_THRESHOLDS, "PRINT_CONFIG": False})

    def by_track(v: VideoTracks, cat: int):
        out = {}
        for i in np.flatnonzero(v.category == cat) if v.category is not None else []:
            out.setdefault(int(v.track[i]), {})[int(v.frame[i])] = v.bbox[i].copy()
        return out

    per_class = []
    cats = sorted({int(c) for g, p in videos for v in (g, p) if v.category is not None for c in v.category})
    for cat in cats:
        seq_res = {}
        for s, (g, p) in enumerate(videos):
            gt_t, dt_t = by_track(g, cat), by_track(p, cat)
            # a track's score is the mean of its box scores; TrackMAP wants them sorted
            dt_score = {t: float(np.mean(p.score[(p.track == t)])) for t in dt_t}
            dt_ids = sorted(dt_t, key=lambda t: -dt_score[t])
            seq_res[s] = metric.eval_sequence({
                "gt_track_ids": list(gt_t), "gt_tracks": [gt_t[t] for t in gt_t],
                "dt_track_ids": dt_ids, "dt_tracks": [dt_t[t] for t in dt_ids],
                "dt_track_scores": np.array([dt_score[t] for t in dt_ids]), "iou_type": "bbox",
                "boxformat": "xywh"})
        ap = metric.combine_sequences(seq_res)["AP_all"]
        if ap[0] > -1:
            per_class.append(ap)
    return float(np.mean(per_class)) if per_class else None


@pytest.mark.parametrize("seed", range(6))
def test_matches_trackeval_trackmap_on_random_videos(seed):
    pytest.importorskip("trackeval")
    rng = np.random.default_rng(seed)
    videos = [random_video(rng, n_gt=int(rng.integers(1, 7)), n_frames=int(rng.integers(2, 15)), cats=3)
              for _ in range(int(rng.integers(1, 5)))]
    want = trackeval_ap(videos)
    got = track_ap(videos).ap
    assert (got is None) == (want is None)
    if want is not None:
        assert got == pytest.approx(want, abs=1e-12)
        assert 0 < want < 1  # the case is not trivial
