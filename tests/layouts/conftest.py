"""Fixtures of the layouts tests (the data and the rules are in layouts_data.py)."""

from __future__ import annotations

import pytest

from layouts_data import MOT_MINI, SHAPES, sports_head
from tdgen.tracks.io import read_tracks
from tdgen.tracks.trackset import TrackSet


@pytest.fixture(scope="session")
def sources() -> dict[str, TrackSet]:
    """Real-shaped sources: MOT17-like (visibility, two classes), shapes, and dense sports clips."""
    return {"mot_mini": read_tracks(MOT_MINI), "shapes": read_tracks(SHAPES), "sports": sports_head()}


@pytest.fixture(scope="session")
def contexts(sources) -> dict:
    """Per source: its Layout and the transforms' Context (built once: the statistics take a moment)."""
    from tdgen.layouts.run import source_context

    return {name: source_context(ts) for name, ts in sources.items()}
