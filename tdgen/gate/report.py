"""``gate_report.json``: per clip score and decision, and totals with the score distribution.

The report describes the state the gate left the directory in, never what one run did, so a
second run with the same settings writes the same bytes (no timings, no absolute paths)::

    {"version": 1, "detector": "shapes", "settings": {...}, "flavor": "mmdet",
     "rejected_dir": "rejected",
     "totals": {"clips", "kept", "rejected", "boxes", "found", "boxes_dropped", "boxes_ignored",
                "recall": {quantiles}, "mean_iou": {quantiles}, "recall_kept": {quantiles}},
     "clips": [{"clip_id", "order", "recall", "mean_iou", ..., "decision", "reason",
                "frames_dir", "dropped": [{"frame", "track", "iou"}], "ignored": [...]}]}
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .policy import GateDecision
from .score import ClipScore

__all__ = ["QUANTILES", "REPORT_NAME", "REPORT_VERSION", "build_report", "quantiles"]

REPORT_NAME = "gate_report.json"
REPORT_VERSION = 1
QUANTILES = (("min", 0.0), ("p10", 0.1), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p90", 0.9), ("max", 1.0))


def quantiles(values: Sequence[float | None]) -> dict[str, Any]:
    """Count, mean and the :data:`QUANTILES` of ``values`` (``None`` left out; all ``None`` when empty)."""
    v = np.array([x for x in values if x is not None], np.float64)
    out: dict[str, Any] = {"n": int(v.size), "mean": round(float(v.mean()), 6) if v.size else None}
    for name, q in QUANTILES:
        out[name] = round(float(np.quantile(v, q)), 6) if v.size else None
    return out


def build_report(scored: Sequence[tuple[int, ClipScore, GateDecision, str]], *, detector: str,
                 settings: dict[str, Any], flavor: str, rejected_dir: str) -> dict[str, Any]:
    """The report for ``(order, score, decision, frames_dir)`` of every clip, in plan order."""
    rows = sorted(scored, key=lambda r: (r[0], r[1].clip_id))
    clips = []
    for order, score, decision, frames_dir in rows:
        clips.append({"order": order, **score.as_dict(), **decision.as_dict(score), "frames_dir": frames_dir})
    kept = [r for r in rows if r[2].kept]
    totals = {
        "clips": len(rows), "kept": len(kept), "rejected": len(rows) - len(kept),
        "boxes": sum(r[1].boxes for r in rows), "found": sum(r[1].found for r in rows),
        "boxes_dropped": sum(int(r[2].dropped.size) for r in kept),
        "boxes_ignored": sum(int(r[2].ignored.size) for r in kept),
        "recall": quantiles([r[1].recall for r in rows]),
        "mean_iou": quantiles([r[1].mean_iou for r in rows]),
        "recall_kept": quantiles([r[1].recall for r in kept]),
    }
    return {"version": REPORT_VERSION, "detector": detector, "settings": dict(settings), "flavor": flavor,
            "rejected_dir": rejected_dir, "totals": totals, "clips": clips}
