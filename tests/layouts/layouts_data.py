"""Shared pieces of the layouts tests: real-shaped sources and the rules every result obeys.

A module of its own (not conftest.py, whose name the top-level tests folder has too), so that
tests import it by a unique name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdgen.layouts.boxes import Layout
from tdgen.tracks.io import read_tracks
from tdgen.tracks.trackset import TrackSet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MOT_MINI = EXAMPLES / "mot_mini_cocovid.json"
SHAPES = EXAMPLES / "shapes_mini" / "annotations.json"
SPORTS = ROOT / "tests" / "data" / "realdata" / "sportsmot"


def sports_head(frames: int = 60) -> TrackSet:
    """The first ``frames`` frames of the SportsMOT ground-truth fixture (3 dense sequences)."""
    ts = read_tracks(SPORTS)
    return ts.select_frames(ts.frames.index < frames)


def assert_rules(lay: Layout) -> None:
    """What every transform's result, after normalising, must satisfy."""
    W, H = lay.width[lay.video], lay.height[lay.video]
    x, y, w, h = lay.bbox.T
    assert np.isfinite(lay.bbox).all()
    assert (w >= 1).all() and (h >= 1).all(), "degenerate box"
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= W + 1e-9).all() and (y + h <= H + 1e-9).all(), \
        "box outside its frame"
    assert ((lay.t >= 0) & (lay.t < lay.nframes[lay.video])).all()
    key = np.stack([lay.track, lay.t], axis=1)
    assert np.unique(key, axis=0).shape[0] == len(lay), "two boxes of one track in one frame"
    pairs = np.unique(np.stack([lay.track, lay.video], axis=1), axis=0)
    assert np.unique(pairs[:, 0]).size == pairs.shape[0], "a track in two videos"
    assert set(np.unique(lay.track).tolist()) <= set(lay.origin), "a track without provenance"
    if len(lay):
        assert np.nanmin(lay.vis) >= 0 and np.nanmax(lay.vis) <= 1
