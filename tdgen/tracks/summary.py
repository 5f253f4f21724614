"""Statistics of a TrackSet, for ``tdgen inspect``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .trackset import TrackSet

__all__ = ["summarize"]


def _stats(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"min": 0, "p10": 0, "median": 0, "mean": 0, "p90": 0, "max": 0}
    q = np.percentile(x, [10, 50, 90])
    return {"min": float(x.min()), "p10": float(q[0]), "median": float(q[1]), "mean": round(float(x.mean()), 3),
            "p90": float(q[2]), "max": float(x.max())}


def summarize(ts: TrackSet) -> dict[str, Any]:
    """Counts, distributions and problems of ``ts`` as a JSON-ready dict."""
    b = ts.boxes
    names = ts.category_names()
    track_ids, track_len = np.unique(b.track, return_counts=True)
    per_frame = np.diff(ts.frame_offsets())
    # frames a track spans vs frames it is present in -> gaps
    gaps = 0
    if b.track.size:
        order = np.lexsort((ts.box_frame_index(), b.track))
        t, fi = b.track[order], ts.box_frame_index()[order]
        same = t[1:] == t[:-1]
        gaps = int(np.unique(t[1:][same & (np.diff(fi) > 1)]).size)
    cats, cat_counts = np.unique(b.category, return_counts=True)
    w, h = b.bbox[:, 2], b.bbox[:, 3]
    fw = ts.frames.width[b.frame]
    fh = ts.frames.height[b.frame]
    outside = (b.bbox[:, 0] < 0) | (b.bbox[:, 1] < 0) | (b.bbox[:, 0] + w > fw) | (b.bbox[:, 1] + h > fh)
    tiny = (w < 1) | (h < 1)
    problems = list(ts.warnings)
    if outside.any() and not any("extend past" in p for p in problems):
        problems.append(f"{int(outside.sum())} boxes extend past their frame")
    if tiny.any():
        problems.append(f"{int(tiny.sum())} boxes are narrower or lower than 1 px (mmdet drops them)")
    if gaps:
        problems.append(f"{gaps} tracks disappear and come back (frame gaps; not interpolated)")
    empty_videos = int((ts.frames_per_video() == 0).sum())
    if empty_videos:
        problems.append(f"{empty_videos} videos have no frames")
    return {
        "source": ts.source,
        "format": ts.source_format,
        "videos": ts.num_videos,
        "frames": ts.num_frames,
        "tracks": int(track_ids.size),
        "boxes": ts.num_boxes,
        "crowd_boxes": int(b.iscrowd.sum()),
        "categories": [
            {"id": int(c), "name": names.get(int(c), "?"), "boxes": int(n),
             "tracks": int(np.unique(b.track[b.category == c]).size)}
            for c, n in zip(cats.tolist(), cat_counts.tolist())
        ],
        "frames_per_video": _stats(ts.frames_per_video()),
        "track_length": _stats(track_len),
        "boxes_per_frame": _stats(per_frame),
        "empty_frames": int((per_frame == 0).sum()),
        "box_width": _stats(w),
        "box_height": _stats(h),
        "problems": problems,
    }
