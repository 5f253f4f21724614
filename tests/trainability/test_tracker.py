"""The ByteTrack-style tracker on hand-made detections: crossing, a missed frame, weak detections."""

from __future__ import annotations

import numpy as np
import pytest

from tdgen.trainability.tracker import ByteTrackConfig, byte_track, write_mot_results


def _frame(*dets: tuple[float, float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(dets, np.float64).reshape(-1, 5)
    return a[:, :4], a[:, 4]


def _ids_by_x(out, t):
    """Ids of frame t ordered by box x."""
    f = out[t]
    return [int(i) for i in f.ids[np.argsort(f.boxes[:, 0])]]


def test_two_objects_crossing_keep_their_ids():
    # A moves right, B moves left, 8 px a frame; at t=3 and 4 they overlap heavily
    frames = []
    for t in range(8):
        a = (10 + 8 * t, 50, 20, 20, 0.9)
        b = (66 - 8 * t, 52, 20, 20, 0.8)
        frames.append(_frame(a, b))
    out = byte_track(frames)
    first = {int(i): tuple(b) for i, b in zip(out[0].ids, out[0].boxes)}
    a_id = next(i for i, b in first.items() if b[0] == 10)
    for t, f in enumerate(out):
        assert len(f.ids) == 2
        a_row = int(np.flatnonzero(f.boxes[:, 0] == 10 + 8 * t)[0])
        assert f.ids[a_row] == a_id, t  # constant-velocity prediction carries A through B
    assert sorted({int(i) for f in out for i in f.ids}) == [1, 2]


def test_a_missed_frame_continues_the_track_within_max_age():
    box = (40, 40, 20, 20, 0.9)
    frames = [_frame(box), _frame(box), _frame(), _frame(box)]
    assert [list(f.ids) for f in byte_track(frames, ByteTrackConfig(max_age=1))] == [[1], [1], [], [1]]
    # with no frame of grace the object comes back as a new track
    assert [list(f.ids) for f in byte_track(frames, ByteTrackConfig(max_age=0))] == [[1], [1], [], [2]]


def test_a_track_gone_longer_than_max_age_ends():
    box = (40, 40, 20, 20, 0.9)
    frames = [_frame(box)] + [_frame()] * 3 + [_frame(box)]
    assert [list(f.ids) for f in byte_track(frames, ByteTrackConfig(max_age=2))][-1] == [2]
    assert [list(f.ids) for f in byte_track(frames, ByteTrackConfig(max_age=3))][-1] == [1]


def test_weak_detections_continue_tracks_but_never_start_one():
    frames = [_frame((40, 40, 20, 20, 0.9), (90, 90, 20, 20, 0.3)),
              _frame((41, 40, 20, 20, 0.3), (90, 90, 20, 20, 0.3)),
              _frame((42, 40, 20, 20, 0.9))]
    out = byte_track(frames)
    assert [list(f.ids) for f in out] == [[1], [1], [1]]
    np.testing.assert_allclose(out[1].scores, [0.3])
    # below the low threshold a detection is dropped
    out = byte_track([frames[0], _frame((41, 40, 20, 20, 0.05)), frames[2]])
    assert [list(f.ids) for f in out] == [[1], [], [1]]


def test_high_detections_match_first_and_the_weak_stage_needs_more_overlap():
    # a weak detection overlapping the track by IoU ~0.33 (< 0.5): not matched in stage 2
    frames = [_frame((40, 40, 20, 20, 0.9)), _frame((50, 40, 20, 20, 0.3))]
    assert [list(f.ids) for f in byte_track(frames)] == [[1], []]
    # the same box with a high score matches (stage 1 needs IoU >= 0.2)
    frames = [_frame((40, 40, 20, 20, 0.9)), _frame((50, 40, 20, 20, 0.9))]
    assert [list(f.ids) for f in byte_track(frames)] == [[1], [1]]


def test_mot_result_file_is_what_tdgen_eval_reads(tmp_path):
    from tdgen.evaluate.tracker_eval import read_result_file

    out = byte_track([_frame((1, 2, 3, 4, 0.9)), _frame((2, 2, 3, 4, 0.8), (50, 50, 10, 10, 0.95))])
    write_mot_results(tmp_path / "v.txt", out)
    tracks = read_result_file(tmp_path / "v.txt", 2)
    assert list(tracks.frame) == [0, 1, 1] and list(tracks.track) == [1, 1, 2]
    np.testing.assert_allclose(tracks.bbox[1], [2, 2, 3, 4])
    assert tracks.score[2] == pytest.approx(0.95)
