"""The rules every transform's result obeys: clipping, dropping, depth-order visibility."""

from __future__ import annotations

import numpy as np
import pytest

from tdgen.layouts.boxes import Layout, normalize, with_depth_visibility


def _layout(boxes, origins, vis=None, size=(100.0, 100.0), frames=1):
    """One video; ``boxes`` are (t, track, x, y, w, h); ``origins`` maps track -> origin kind."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    m = len(b)
    return Layout(video=np.zeros(m, np.int64), t=b[:, 0].astype(np.int64), bbox=b[:, 2:6].copy(),
                  track=b[:, 1].astype(np.int64), category=np.ones(m, np.int64),
                  vis=np.full(m, np.nan) if vis is None else np.asarray(vis, np.float64),
                  conf=np.full(m, np.nan), iscrowd=np.zeros(m, np.int8), nframes=np.array([frames]),
                  width=np.array([size[0]]), height=np.array([size[1]]),
                  origin={t: {"origin": o, "ops": []} for t, o in origins.items()})


def test_boxes_are_clipped_or_dropped_when_mostly_outside():
    lay = _layout([(0, 1, -20, 10, 40, 40),   # half inside: clipped to x 0..20
                   (0, 2, 80, 10, 60, 40),    # a third inside: dropped
                   (0, 3, 50, 50, 0.5, 30),   # under 1 px wide: dropped
                   (1, 4, 10, 10, 10, 10)],   # frame 1 of a 1-frame video: dropped
                  {1: "source", 2: "source", 3: "source", 4: "source"})
    out = normalize(lay)
    assert out.track.tolist() == [1]
    np.testing.assert_allclose(out.bbox, [[0, 10, 20, 40]])
    assert set(out.origin) == {1}  # provenance follows the tracks that remain
    assert normalize(lay, min_inside=0.25).track.tolist() == [1, 2]


def test_a_generated_box_in_front_hides_what_it_covers():
    # track 2 (generated) has the lower bottom edge: nearer; it covers the left half of track 1
    lay = _layout([(0, 1, 10, 10, 40, 40), (0, 2, -10, 20, 40, 40)], {1: "source", 2: "crowd"})
    out = with_depth_visibility(normalize(lay))
    vis = dict(zip(out.track.tolist(), out.vis.tolist()))
    # track 2 is clipped to x 0..30: it covers x 10..30 of track 1 (x 10..50), y 20..50 of 10..50
    assert vis == {1: pytest.approx(1 - (20 * 30) / (40 * 40)), 2: 1.0}


def test_union_of_occluders_is_counted_once_and_capped_by_the_carried_visibility():
    lay = _layout([(0, 1, 0, 0, 40, 40), (0, 2, 0, 10, 30, 40), (0, 3, 10, 10, 30, 40)],
                  {1: "source", 2: "cross", 3: "cross"}, vis=[0.9, 1.0, 0.2])
    out = with_depth_visibility(normalize(lay))
    vis = dict(zip(out.track.tolist(), out.vis.tolist()))
    # tracks 2 and 3 (bottom 50) are nearer than 1 (bottom 40); their union covers x 0..40, y 10..40
    assert vis[1] == pytest.approx(1 - (40 * 30) / 1600)
    assert vis[3] == pytest.approx(0.2)  # the carried visibility caps it (2 covers part of it too)
    assert vis[2] == 1.0  # ties on the bottom edge go to the larger box, then the smaller id


def test_two_source_tracks_keep_the_visibility_their_source_gave():
    lay = _layout([(0, 1, 0, 0, 40, 40), (0, 2, 0, 10, 40, 40)], {1: "source", 2: "source"}, vis=[0.8, 1.0])
    out = with_depth_visibility(normalize(lay))
    assert out.vis.tolist() == [0.8, 1.0]


def test_layouts_import_without_torch():
    import subprocess
    import sys

    code = "import sys, tdgen.layouts; print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
