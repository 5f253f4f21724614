"""Provenance: where every generated video and track came from, in the JSON and in a table beside it.

In the COCO-VID output each video carries ``layout`` (source video name and id, copy number,
seed, recipe, the transforms with the parameters drawn for that copy) and each annotation
carries ``layout`` (origin, source video id, source track id). The table
``<OUT>.provenance.csv`` has one row per output track (:data:`COLUMNS`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text

__all__ = ["COLUMNS", "provenance_path", "provenance_csv", "write_provenance"]

COLUMNS = ("video", "video_id", "track_id", "category", "origin", "source_video", "source_video_id",
           "source_track_id", "source_gt_id", "copy", "seed", "recipe", "transforms", "track_ops")


def provenance_path(output: str | Path) -> Path:
    """``OUT.json`` -> ``OUT.provenance.csv`` (beside it)."""
    output = Path(output)
    stem = output.name[:-5] if output.name.endswith(".json") else output.name
    return output.with_name(f"{stem}.provenance.csv")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def provenance_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text (header first, ``\\n`` line ends, JSON in the list and dict columns)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in COLUMNS])
    return buf.getvalue()


def write_provenance(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write the table atomically."""
    atomic_write_text(path, provenance_csv(rows))
    return Path(path)
