"""What every part of the MOT Challenge code shares: the classes, the limits a sequence must
stay within, the defaults of ``seqinfo.ini``, the image-folder rule, and reading input text.

The format itself is described in :mod:`tdgen.tracks.mot`.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import AnnotationError
from .files import read_regular_file

__all__ = ["MAX_ABS_VALUE", "MAX_FRAME_RATE", "MAX_IMAGE_SIDE", "MAX_SEQ_LENGTH", "MAX_TOTAL_FRAMES",
           "MOT_CATEGORIES", "MOT_CLASSES"]

#: The 13 MOT Challenge classes, ids 1..13 (TrackEval ``class_name_to_class_id``, mmdet mot2coco).
MOT_CLASSES: tuple[str, ...] = (
    "pedestrian",
    "person_on_vehicle",
    "car",
    "bicycle",
    "motorbike",
    "non_mot_vehicle",
    "static_person",
    "distractor",
    "occluder",
    "occluder_on_ground",
    "occluder_full",
    "reflection",
    "crowd",
)
MOT_CATEGORIES: list[dict] = [{"id": i + 1, "name": n} for i, n in enumerate(MOT_CLASSES)]

_DEFAULT_DIGITS = 6
_DEFAULT_IM_DIR = "img1"
_DEFAULT_IM_EXT = ".jpg"
_DEFAULT_FRAME_RATE = 30

#: The most frames one sequence may hold (``seqLength``, or the last gt frame without a
#: seqinfo.ini): over 9 hours at 30 fps. A bigger number is a typo or a hostile file, and
#: reading it would only exhaust memory.
MAX_SEQ_LENGTH = 1_000_000
#: The most frames all the sequences of a split directory may hold together.
MAX_TOTAL_FRAMES = 10_000_000
#: The largest image side, in pixels, accepted for ``imWidth`` / ``imHeight``.
MAX_IMAGE_SIDE = 1_000_000
#: The largest ``frameRate`` accepted.
MAX_FRAME_RATE = 1_000_000.0
#: Ids and box values stay below this magnitude (2**53): every integer up to it is exact in
#: float64, and products such as box areas stay finite.
MAX_ABS_VALUE = 2.0**53
#: Classes are ``-1`` (the placeholder, read as 1) or ``0 .. _MAX_CLASS``.
_MAX_CLASS = 2**31 - 1
_MAX_DIGITS = 12  # longer numeric stems are not frame numbers

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IM_EXT = re.compile(r"\.[A-Za-z0-9]+")


def _im_dir_problem(im_dir: str) -> str | None:
    """Why ``im_dir`` cannot be an image folder inside a sequence (None when it can)."""
    if not im_dir:
        return "is empty"
    if _CONTROL.search(im_dir):
        return "holds a control character"
    if im_dir.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", im_dir):
        return "is an absolute path"
    if ".." in re.split(r"[/\\]", im_dir):
        return "leaves the sequence folder (..)"
    return None


def _read_bytes(path: Path) -> bytes:
    """The bytes of a regular file: a directory is not "no boxes", and a FIFO or a device is
    refused at once instead of blocking the read forever."""
    return read_regular_file(path)


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text (a leading BOM is dropped); a bad byte is named with its offset."""
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = bom + e.start
        line = data.count(b"\n", 0, at) + 1
        raise AnnotationError(path, f"line {line}",
                              f"not UTF-8 text (byte 0x{data[at]:02x} at byte offset {at})") from None


def _read_text(path: Path) -> str:
    return _decode(path, _read_bytes(path))


def _show(text: str, limit: int = 40) -> str:
    """``repr`` of a piece of input, shortened: messages stay one short line."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3]) + "..."
