"""Reading any supported annotation source, with format detection.

The safe-opening helpers every reader uses live in :mod:`tdgen.tracks.files` (re-exported here),
below the readers, so that this dispatcher can import the readers without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..errors import AnnotationError, FormatError
from .files import check_regular_file, open_regular_file, os_error, read_regular_file
from .trackset import TrackSet

__all__ = ["read_tracks", "detect_format", "FORMATS", "check_regular_file", "open_regular_file",
           "read_regular_file"]

FORMATS = ("cocovid", "mot", "ytvis")
Format = Literal["cocovid", "mot", "ytvis"]

def detect_format(path: str | Path) -> Format:
    """``mot`` for a directory, else ``ytvis`` or ``cocovid`` by a look at the JSON's keys."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            check_regular_file(path)  # says "broken symbolic link"
        raise AnnotationError(path, None, "no such file or directory")
    if path.is_dir():
        return "mot"
    with open_regular_file(path, "an annotation file or a MOT directory") as f:
        try:
            head = f.read(1 << 20)
        except OSError as e:
            raise os_error(path, e) from None
    # YouTube-VIS native files list per-video 'file_names' and per-track 'bboxes'.
    if b'"file_names"' in head and (b'"bboxes"' in head or b'"annotations"' not in head or b'"images"' not in head):
        return "ytvis"
    return "cocovid"


def read_tracks(path: str | Path, fmt: Format | None = None, *, invalid_boxes: str = "error") -> TrackSet:
    """Read tracklets from a COCO-VID file, a MOT Challenge directory or a YouTube-VIS file."""
    fmt = fmt or detect_format(path)
    if fmt == "cocovid":
        from .cocovid import read_cocovid

        return read_cocovid(path, invalid_boxes=invalid_boxes)
    if fmt == "mot":
        from .mot import read_mot

        return read_mot(path)
    if fmt == "ytvis":
        from .ytvis import read_ytvis

        return read_ytvis(path)
    raise FormatError(path, None, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
