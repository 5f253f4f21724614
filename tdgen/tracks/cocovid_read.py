"""Reading COCO-VID: the file's bytes to the columns :mod:`tdgen.tracks.cocovid_build` builds from.

Two paths read the same files to the same TrackSet: the pyarrow fast path
(:mod:`tdgen.tracks.arrowjson`) for big compact files, and the exact path (orjson, slice by
slice, with the handlers of :mod:`tdgen.tracks.cocovid_rules`) for everything else and for
whatever the fast path gives up on. Only the exact path names the record that breaks a rule.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import AnnotationError, FormatError
from .cocovid_build import build
from .cocovid_rules import _ANN_KEYS, _IMAGE_KEYS, _AnnHandler, _ImageHandler
from .files import open_regular_file
from .jsonscan import STREAMED, JSONError, first_invalid_utf8, scan_top_level
from .trackset import TrackSet

__all__ = ["FAST_PATH_BYTES", "Flavor", "detect_flavor", "parse_cocovid", "read_cocovid"]

Flavor = Literal["mmdet", "bytetrack"]
#: Files of this many bytes or more first try the pyarrow fast path.
FAST_PATH_BYTES = 4 << 20
_WHAT = "a COCO-VID JSON file"


def detect_flavor(obj: dict) -> Flavor:
    """Guess the flavour of a parsed COCO-VID dict (used for small files and tests)."""
    anns = obj.get("annotations") or []
    images = obj.get("images") or []
    if any("track_id" in a for a in anns[:1000]) and not any("instance_id" in a for a in anns[:1000]):
        return "bytetrack"
    if any("instance_id" in a for a in anns[:1000]):
        return "mmdet"
    fids = [im.get("frame_id") for im in images if isinstance(im.get("frame_id"), (int, float))]
    return "mmdet" if (not fids or min(fids) == 0) else "bytetrack"


def _check_utf8(data: Any, file: str) -> None:
    """JSON must be UTF-8: the first bad byte is named, whichever path reads the file next."""
    bad = first_invalid_utf8(data)
    if bad is None:
        return
    head = bytes(memoryview(data)[:2])
    hint = ("the file looks UTF-16: save it as UTF-8" if bad == 0 and head in (b"\xff\xfe", b"\xfe\xff")
            else "save the file as UTF-8")
    raise AnnotationError(file, f"byte {bad}", "not valid UTF-8", hint=hint)


def _try_fast(holder: list, file: str, invalid_boxes: str) -> TrackSet | None:
    from .arrowjson import fast_columns

    fast = fast_columns(holder)
    if fast is None:
        return None
    top, images, anns = fast
    return build(top, images, anns, file, invalid_boxes)


def read_cocovid(path: str | Path, *, invalid_boxes: Literal["error", "drop"] = "error") -> TrackSet:
    """Read a COCO-VID file (either flavour, auto-detected) into a TrackSet.

    Bad input raises :class:`AnnotationError` naming the file and the record, and so does a path
    that is not a readable regular file (a FIFO or a device is refused without being opened).
    Big compact files go through pyarrow's JSON reader with one copy of the file in memory;
    anything that path cannot reproduce exactly is read again by the exact streaming path, which
    applies the same rules, so both accept, refuse and read the same.

    The rules: the file is UTF-8 (a BOM is allowed). Ids, ``frame_id``, ``mot_frame_id``, sizes
    and the like are JSON integers, or numbers with an integral value (``2.0``), within
    +-(2**53 - 1) so they round-trip exactly; strings and booleans are refused, except string
    ``instance_id``/``track_id`` (BDD100K, QDTrack), which are mapped to integers. ``bbox`` is 4
    numbers; ``area``, ``visibility``, ``mot_conf``, ``fps`` are numbers; ``iscrowd`` is 0, 1 or
    a boolean. ``null`` in an optional key means absent.
    """
    path = Path(path)
    with open_regular_file(path, _WHAT) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size >= FAST_PATH_BYTES:
                # numpy allocates big arrays without zero-filling them and with huge pages where the
                # kernel allows: 5-20x faster than a bytearray of the same size
                buf = np.empty(size, np.uint8)
                got = f.readinto(memoryview(buf))
                if got == size and not f.read(1):
                    _check_utf8(buf, str(path))
                    holder = [buf]
                    del buf
                    ts = _try_fast(holder, str(path), invalid_boxes)
                    if ts is not None:
                        return ts
                else:
                    del buf
                f.seek(0)  # the fast path changed its copy in place, or the file changed size
            data = f.read()
        except OSError as e:
            raise AnnotationError(path, None, f"cannot read file ({e.strerror or e})") from None
    _check_utf8(data, str(path))
    return _parse_exact(data, str(path), invalid_boxes, 8 << 20)


def parse_cocovid(data: bytes, file: str = "<memory>", *,
                  invalid_boxes: Literal["error", "drop"] = "error", chunk_bytes: int = 8 << 20,
                  fast_path_bytes: int = FAST_PATH_BYTES) -> TrackSet:
    """Parse COCO-VID bytes; see :func:`read_cocovid`.

    Inputs of ``fast_path_bytes`` or more first try the pyarrow path (on a copy; no Python object
    per record); anything it does not handle exactly goes through the streaming orjson path.
    """
    _check_utf8(data, file)
    if len(data) >= fast_path_bytes:
        ts = _try_fast([np.frombuffer(data, np.uint8).copy()], file, invalid_boxes)
        if ts is not None:
            return ts
    return _parse_exact(data, file, invalid_boxes, chunk_bytes)


def _parse_exact(data: bytes, file: str, invalid_boxes: str, chunk_bytes: int) -> TrackSet:
    """The orjson path: slices of records checked against the rules, then :func:`cocovid_build.build`."""
    handlers: dict[str, Any] = {}

    def make():
        handlers["images"] = _ImageHandler(file, "images", _IMAGE_KEYS)
        handlers["annotations"] = _AnnHandler(file, "annotations", _ANN_KEYS)
        return dict(handlers)

    try:
        top = scan_top_level(data, make, chunk_bytes=chunk_bytes, placeholder=STREAMED)
    except JSONError as e:
        raise AnnotationError(file, f"line {e.line}, column {e.column}", str(e).split(": ", 1)[1]) from None
    if not isinstance(top, dict):
        raise FormatError(file, None, "top level is not a JSON object")
    if "images" not in top:
        raise FormatError(file, None, "no 'images' key: not a COCO-VID file",
                          hint="MOT directories and YouTube-VIS files are read too; check the path")
    if not handlers:  # no array was streamed: the handlers were never made
        make()
    for h in (handlers["images"], handlers["annotations"]):
        if h.error is not None:
            raise h.error
    return build(top, handlers["images"], handlers["annotations"], file, invalid_boxes)

