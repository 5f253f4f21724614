"""Shared fixtures for tests/tracks. Each fixture is named after what it builds."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pytest

from tdgen.tracks.trackset import Boxes, Frames, TrackSet, Videos

BoxRow = tuple  # (video, frame_index, track, category, x, y, w, h)


def make_trackset_from_rows(
    rows: Sequence[BoxRow],
    *,
    num_frames: Mapping[str, int] | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    default_size: tuple[int, int] = (100, 100),
    categories: Sequence[dict] | None = None,
    iscrowd: Sequence[int] | None = None,
    visibility: Sequence[float] | None = None,
    frame_numbers: Mapping[str, Sequence[float]] | None = None,
) -> TrackSet:
    """A TrackSet from ``(video, frame_index, track, category, x, y, w, h)`` tuples.

    Videos come in order of first mention (``num_frames`` keys first, then ``rows``); a video
    has ``num_frames[video]`` frames, else ``max(frame_index) + 1``. ``sizes`` maps a video to
    its ``(width, height)``. ``iscrowd``/``visibility`` are per row. Frame numbers default to
    ``index + 1``. Categories default to ``{"id": c, "name": f"cat_{c}"}`` for every id used.
    """
    num_frames = dict(num_frames or {})
    sizes = dict(sizes or {})
    names: list[str] = list(num_frames)
    for r in rows:
        if r[0] not in names:
            names.append(r[0])
    vrow = {n: i for i, n in enumerate(names)}
    counts = []
    for n in names:
        used = [r[1] for r in rows if r[0] == n]
        counts.append(int(num_frames.get(n, (max(used) + 1) if used else 0)))
    vid = np.repeat(np.arange(len(names), dtype=np.int64), counts)
    index = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if counts else np.zeros(0, np.int64)
    wh = np.array([sizes.get(n, default_size) for n in names], dtype=np.int64).reshape(-1, 2)
    number = index.astype(np.float64) + 1
    voff = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for n, nums in (frame_numbers or {}).items():
        v = vrow[n]
        number[voff[v]:voff[v + 1]] = np.asarray(nums, dtype=np.float64)
    frames = Frames(
        video=vid,
        index=index,
        file_name=np.array([f"{names[v]}/{i + 1:06d}.jpg" for v, i in zip(vid, index)], dtype=object),
        id=np.arange(len(vid), dtype=np.int64) + 1,
        width=wh[vid, 0] if len(vid) else np.zeros(0, np.int64),
        height=wh[vid, 1] if len(vid) else np.zeros(0, np.int64),
        number=number,
    )
    m = len(rows)
    frame_row = np.array([voff[vrow[r[0]]] + r[1] for r in rows], dtype=np.int64)
    order = np.argsort(frame_row, kind="stable")
    arr = np.array([r[2:8] for r in rows], dtype=np.float64).reshape(m, 6)
    boxes = Boxes(
        frame=frame_row[order],
        bbox=arr[order, 2:6].copy(),
        track=arr[order, 0].astype(np.int64),
        category=arr[order, 1].astype(np.int64),
        id=np.arange(m, dtype=np.int64)[order] + 1,
        iscrowd=(np.asarray(iscrowd, dtype=np.int8)[order] if iscrowd is not None else np.zeros(m, np.int8)),
        visibility=(np.asarray(visibility, dtype=np.float64)[order] if visibility is not None else None),
    )
    if categories is None:
        cats = sorted({int(r[3]) for r in rows})
        categories = [{"id": c, "name": f"cat_{c}"} for c in cats]
    videos = Videos(
        name=np.array(names, dtype=object),
        id=np.arange(len(names), dtype=np.int64) + 1,
        width=wh[:, 0].copy(),
        height=wh[:, 1].copy(),
    )
    ts = TrackSet(videos=videos, frames=frames, boxes=boxes, categories=list(categories), source="test")
    ts.check()
    return ts


@pytest.fixture(scope="session")
def trackset_from_rows() -> Callable[..., TrackSet]:
    """The :func:`make_trackset_from_rows` builder (session-scoped, usable with hypothesis)."""
    return make_trackset_from_rows
