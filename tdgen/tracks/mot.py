"""MOT Challenge directories (MOT15/16/17/20, DanceTrack, SportsMOT): read, write, half split.

A *sequence* directory holds ``seqinfo.ini`` and/or ``gt/gt.txt`` (plus ``img1/`` when the
images are there); a *split* directory (``train/``, ``val/``) holds sequence directories.

``gt.txt`` rows are ``frame, id, x, y, w, h, conf, class, visibility`` (MOT16+), with fewer or
more columns in older or derived files:

==========  ==========================================================================
columns     meaning of the columns after ``x, y, w, h``
==========  ==========================================================================
6           nothing (conf, class and visibility default to 1)
7           conf
8           conf, class
9           conf, class, visibility (MOT16/17/20, DanceTrack, SportsMOT)
10          conf, world x, world y, world z (MOT15 ground truth, det.txt): class 1, vis 1
==========  ==========================================================================

A class or visibility of ``-1`` (the MOT15 / detection placeholder) reads as class 1 and
visibility 1.0. Boxes are never clipped: MOT ground truth legitimately leaves the image.
Every row is read, whatever its class and conf; choosing the training targets is
:mod:`tdgen.tracks.classes`' job.

A MOT17 split holds each sequence three times (``-DPM``, ``-FRCNN``, ``-SDP``: one per public
detector, same images, same gt.txt). :func:`read_mot` reads one copy of each (``-FRCNN``) unless
told to read them all.

Reading is strict: frame, id and class are integers, read exactly (a value that float64 cannot
hold exactly is refused, not rounded); sizes and lengths have sane upper bounds; ``seqinfo.ini``
and ``gt.txt`` must be regular UTF-8 files. Every refusal is one :class:`AnnotationError` naming
the file and the line. Writing refuses whatever the reader would refuse, so every folder
:func:`write_mot` writes reads back.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import re
import shutil
import warnings as py_warnings  # `warnings` names the reader's list of messages
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import numpy as np

from tdgen.atomic import atomic_directory, atomic_write_text
from ..errors import AnnotationError, FormatError, OutputError, UsageError
from tdgen.tracks.io import read_regular_file
from tdgen.tracks.trackset import Boxes, Frames, TrackSet, Videos

__all__ = [
    "MAX_ABS_VALUE",
    "MAX_FRAME_RATE",
    "MAX_IMAGE_SIDE",
    "MAX_SEQ_LENGTH",
    "MAX_TOTAL_FRAMES",
    "MOT_CLASSES",
    "MOT_CATEGORIES",
    "DETECTOR_SUFFIXES",
    "detector_copy_groups",
    "looks_like_mot",
    "read_mot",
    "write_mot",
    "half_split",
]

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

_COLUMN_NAMES = {
    9: ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "class", "visibility"),
    10: ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "x", "y", "z"),
}
_EMPTY_FIELD = re.compile(r"(?m)(^|,)[ \t]*,")


def _column_name(ncols: int, k: int) -> str:
    names = _COLUMN_NAMES[10] if ncols == 10 else _COLUMN_NAMES[9]
    return names[k] if k < len(names) else f"column {k + 1}"


# --------------------------------------------------------------------------- input helpers
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


def _is_sequence(d: Path) -> bool:
    # lexists, not is_file: a seqinfo.ini or gt.txt that is a directory, a FIFO or a broken
    # link makes a sequence whose reading then refuses it, instead of being skipped unseen.
    return os.path.lexists(d / "seqinfo.ini") or os.path.lexists(d / "gt" / "gt.txt")


def looks_like_mot(path: str | os.PathLike) -> bool:
    """True when ``path`` is a MOT sequence directory or a directory of them."""
    p = Path(path)
    if not p.is_dir():
        return False
    if _is_sequence(p):
        return True
    try:
        return any(d.is_dir() and not d.name.startswith(".") and _is_sequence(d) for d in p.iterdir())
    except OSError:
        return False


@dataclass
class _SeqInfo:
    name: str | None
    im_dir: str
    fps: float
    length: int | None
    width: int
    height: int
    im_ext: str


_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
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


def _ini_line(text: str, key: str) -> int | None:
    m = re.search(rf"(?im)^[ \t]*{re.escape(key)}[ \t]*[=:]", text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _read_seqinfo(path: Path) -> _SeqInfo:
    text = _read_text(path)
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        cp.read_string(text, source=str(path))
    except configparser.Error as e:
        lineno = getattr(e, "lineno", None)
        if lineno is None and getattr(e, "errors", None):
            lineno = e.errors[0][0]
        where = f"line {lineno}" if lineno else None
        what = str(e.message if hasattr(e, "message") else e).splitlines()[0]
        if isinstance(e, configparser.MissingSectionHeaderError):
            what = "no [Sequence] section header before the first key"
        elif isinstance(e, configparser.ParsingError):
            what = "not a key=value line"
        elif isinstance(e, configparser.DuplicateOptionError):
            what = f"key {e.option!r} given twice"
        elif isinstance(e, configparser.DuplicateSectionError):
            what = f"section [{e.section}] given twice"
        raise AnnotationError(path, where, what) from None
    sections = [s for s in cp.sections() if s.strip().lower() == "sequence"]
    if not sections:
        raise AnnotationError(path, None, "no [Sequence] section", hint="a MOT seqinfo.ini starts with [Sequence]")
    if len(sections) > 1:
        raise AnnotationError(path, None, f"two [Sequence] sections ([{sections[0]}] and [{sections[1]}])")
    section = sections[0]
    sec = cp[section]

    def where(key: str) -> str:
        n = _ini_line(text, key)
        return f"line {n} ({key})" if n else key

    def get_int(key: str, lo: int, hi: int, what: str) -> int:
        raw = sec.get(key)
        if raw is None:
            raise AnnotationError(path, f"[{section}]", f"missing key {key}")
        raw = raw.strip()
        if not _INT_TEXT.fullmatch(raw):
            raise AnnotationError(path, where(key), f"{key} {_show(raw)} is not an integer")
        digits = raw.lstrip("+-").lstrip("0")
        # Look at the length first: int() of thousands of digits is slow, and refused past 4300.
        value = int(raw) if len(digits) <= 20 else (-1 if raw.startswith("-") else 1) * 10**20
        shown = str(value) if len(digits) <= 20 else _show(raw)
        if value < 0:
            raise AnnotationError(path, where(key), f"{key} {shown} is negative")
        if value < lo:
            raise AnnotationError(path, where(key), f"{key} {shown} is not a positive integer")
        if value > hi:
            raise AnnotationError(path, where(key), f"{key} {shown} is larger than {hi:,} ({what})")
        return value

    length = get_int("seqLength", 0, MAX_SEQ_LENGTH, "the most frames tdgen reads in one sequence")
    width = get_int("imWidth", 1, MAX_IMAGE_SIDE, "the largest image side tdgen reads")
    height = get_int("imHeight", 1, MAX_IMAGE_SIDE, "the largest image side tdgen reads")
    fps = float("nan")
    raw_fps = sec.get("frameRate")
    if raw_fps is not None:
        raw = raw_fps.strip()
        if not _FLOAT_TEXT.fullmatch(raw):
            bad = "positive number" if raw.lower().lstrip("+-") in ("nan", "inf", "infinity") else "number"
            raise AnnotationError(path, where("frameRate"), f"frameRate {_show(raw)} is not a {bad}")
        fps = float(raw)
        if not fps > 0:
            raise AnnotationError(path, where("frameRate"), f"frameRate {_show(raw)} is not a positive number")
        if fps > MAX_FRAME_RATE:
            raise AnnotationError(path, where("frameRate"),
                                  f"frameRate {_show(raw)} is larger than {MAX_FRAME_RATE:,.0f}")
    name = sec.get("name")
    im_dir = (sec.get("imDir") or "").strip() or _DEFAULT_IM_DIR
    problem = _im_dir_problem(im_dir)
    if problem:
        raise AnnotationError(path, where("imDir"), f"imDir {_show(im_dir)} {problem}")
    im_ext = (sec.get("imExt") or "").strip() or _DEFAULT_IM_EXT
    if not im_ext.startswith("."):
        im_ext = "." + im_ext
    if not _IM_EXT.fullmatch(im_ext):
        raise AnnotationError(path, where("imExt"), f"imExt {_show(im_ext)} is not a file extension like .jpg")
    return _SeqInfo(name.strip() if name else None, im_dir, fps, length, width, height, im_ext)


_BLANK = " \t"
_SEPARATORS = re.compile(r"[ \t,]+")
_NUMBER_TEXT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))")
_NUMBER_CHARS = b"0123456789eE.+-nNaAiIfFtTyY \t,\n"  # all that numbers, separators and lines need
# A number token with 16 or more digits: the only kind whose float64 value can be integral
# while the number written is not (up to 15 significant digits float64 tells them apart).
_LONG_NUMBER = re.compile(r"[0-9.]{16}")
_DIGIT_OR_DOT = bytes(ord("d") if chr(i) in "0123456789." else ord(" ") for i in range(256))


def _has_long_number(text: str) -> bool:
    """Whether ``text`` holds 16 or more digits and dots in a row (what ``_LONG_NUMBER``
    finds, ten times faster: the regex takes a quarter of a second on a MOT20 file)."""
    if not text.isascii():
        return _LONG_NUMBER.search(text) is not None
    return b"d" * 16 in text.encode("ascii").translate(_DIGIT_OR_DOT)


def _split_fields(line: str) -> list[str]:
    s = line.strip(_BLANK)
    if s.endswith(","):
        s = s[:-1]
    return [f for f in _SEPARATORS.split(s) if f]


def _lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every non-blank line: row ``i`` of the parsed array."""
    return [(i, line) for i, line in enumerate(text.split("\n"), 1) if line.strip(_BLANK)]


def _parse_gt_slow(path: Path, text: str) -> np.ndarray:
    """Line-by-line parse: slow, but names the first bad line and column."""
    rows: list[list[float]] = []
    ncols = None
    first_line = 0
    for lineno, line in _lines(text):
        m = _EMPTY_FIELD.search(line.strip(_BLANK))
        if m:
            k = line.strip(_BLANK)[: m.end()].count(",")
            raise AnnotationError(path, f"line {lineno}", f"column {k} is empty")
        fields = _split_fields(line)
        n = len(fields)
        if n < 6 or n > 10:
            raise AnnotationError(
                path, f"line {lineno}",
                f"{n} columns, expected 6 to 10 (frame, id, x, y, w, h[, conf, class, visibility])",
            )
        if ncols is None:
            ncols, first_line = n, lineno
        elif n != ncols:
            raise AnnotationError(path, f"line {lineno}", f"{n} columns, but line {first_line} has {ncols}")
        values = []
        for k, f in enumerate(fields):
            # float() alone would also take "1_000" and non-ASCII digits
            if not _NUMBER_TEXT.fullmatch(f):
                raise AnnotationError(
                    path, f"line {lineno}", f"column {k + 1} ({_column_name(n, k)}): {_show(f)} is not a number"
                )
            values.append(float(f))
        rows.append(values)
    if not rows:
        return np.zeros((0, 9))
    return np.asarray(rows, dtype=np.float64)


def _parse_gt(path: Path, text: str) -> np.ndarray:
    """All rows of a gt.txt (``\\n`` line ends) as an (M, ncols) float64 array (vectorised;
    exact error places)."""
    if not text.strip(_BLANK + "\n"):
        return np.zeros((0, 9))
    compact = text.replace(" ", "").replace("\t", "")
    # numpy's parser also splits at other whitespace (NBSP, form feed): such files take the
    # strict line-by-line path
    plain = text.isascii() and not text.encode("ascii").translate(None, _NUMBER_CHARS)
    if plain and not (",," in compact or "\n," in compact or compact.startswith(",")):
        # Trailing commas are tolerated; every other comma separates two values.
        if ",\n" in compact or compact.rstrip("\n").endswith(","):
            text = re.sub(r",[ \t]*$", "", text, flags=re.M)
        norm = text.replace(",", " ")
        try:
            arr = np.loadtxt(io.StringIO(norm), dtype=np.float64, comments=None, ndmin=2)
        except ValueError:
            arr = None
        if arr is not None and 6 <= arr.shape[1] <= 10:
            return arr
    return _parse_gt_slow(path, text)


@dataclass
class _Gt:
    frame: np.ndarray  # int64
    ids: np.ndarray  # float64, integral, |id| < 2**53
    bbox: np.ndarray  # (M, 4)
    conf: np.ndarray
    cls: np.ndarray  # int64
    vis: np.ndarray


def _short(token: str, limit: int = 40) -> str:
    return token if len(token) <= limit else token[: limit - 3] + "..."


def _read_gt(path: Path, length: int | None) -> _Gt:
    text = _read_text(path)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    arr = _parse_gt(path, text)
    ncols = arr.shape[1]
    m = arr.shape[0]
    cache: list[list[tuple[int, str]]] = []

    def all_lines() -> list[tuple[int, str]]:
        if not cache:
            cache.append(_lines(text))  # only when needed: most files have no error
        return cache[0]

    def line_of(row: int) -> tuple[int, str]:
        return all_lines()[row]

    def fail(row: int, what: str):
        raise AnnotationError(path, f"line {line_of(row)[0]}", what)

    def token(row: int, k: int) -> str:
        """Column ``k`` of a row as written (a number: the parse accepted it)."""
        return _short(_split_fields(line_of(row)[1])[k])

    def first(mask: np.ndarray) -> int | None:
        idx = np.flatnonzero(mask)
        return int(idx[0]) if idx.size else None

    def col_name(k: int) -> str:
        return _column_name(ncols, k)

    used = 7 if ncols == 10 else ncols  # the world coordinates of MOT15 files are not used
    bad = ~np.isfinite(arr[:, :used])
    if bad.any():
        r = first(bad.any(1))
        k = int(np.flatnonzero(bad[r])[0])
        fail(r, f"column {k + 1} ({col_name(k)}): {_num(arr[r, k])} is not a finite number")

    # frame: an integer in 1..seqLength (1..MAX_SEQ_LENGTH without a seqinfo.ini)
    frame = arr[:, 0]
    r = first(frame != np.round(frame))
    if r is not None:
        fail(r, f"frame {token(r, 0)} is not an integer")
    r = first(frame < 1)
    if r is not None:
        fail(r, f"frame {token(r, 0)} out of range "
                + (f"1..{length}" if length is not None else "(frames start at 1)"))
    hi = length if length is not None else MAX_SEQ_LENGTH
    r = first(frame > hi)
    if r is not None:
        fail(r, f"frame {token(r, 0)} out of range 1..{hi}" if length is not None else
             f"frame {token(r, 0)} is larger than {MAX_SEQ_LENGTH:,} (the most frames tdgen reads in one sequence)")

    # id: an integer float64 holds exactly
    ids = arr[:, 1]
    r = first(np.abs(ids) >= MAX_ABS_VALUE)
    if r is not None:
        fail(r, f"id {token(r, 1)} is out of range (ids must be below 2**53 in magnitude)")
    r = first(ids != np.round(ids))
    if r is not None:
        fail(r, f"id {token(r, 1)} is not an integer")

    # box: finite, bounded (so that areas stay finite), positive size
    box = arr[:, 2:6]
    big = np.abs(box) >= MAX_ABS_VALUE
    if big.any():
        r = first(big.any(1))
        k = 2 + int(np.flatnonzero(big[r])[0])
        fail(r, f"column {k + 1} ({col_name(k)}): {token(r, k)} is out of range "
                "(box values must be below 2**53 in magnitude)")
    wh = arr[:, 4:6]
    r = first((wh <= 0).any(1))
    if r is not None:
        fail(r, f"box width/height {_num(wh[r, 0])}, {_num(wh[r, 1])} must be positive")

    conf = arr[:, 6].copy() if ncols >= 7 else np.ones(m)
    int_cols = [0, 1]
    if 8 <= ncols <= 9:
        int_cols.append(7)
        cls = arr[:, 7].copy()
        r = first(cls != np.round(cls))
        if r is not None:
            fail(r, f"class {token(r, 7)} is not an integer")
        r = first((cls < -1) | (cls > _MAX_CLASS))
        if r is not None:
            fail(r, f"class {token(r, 7)} is out of range (expected -1 or 0..{_MAX_CLASS})")
        cls[cls == -1] = 1
        cls = cls.astype(np.int64)
    else:
        cls = np.ones(m, dtype=np.int64)
    if ncols == 9:
        vis = arr[:, 8].copy()
        vis[vis == -1] = 1.0
    else:
        vis = np.ones(m)

    if m and _has_long_number(text):
        # float64 rounds "5.0000000000000001" to an integer: look at such numbers as written.
        names = {0: "frame", 1: "id", 7: "class"}
        for r, (_, line) in enumerate(all_lines()):
            if len(line) < 16 or not _LONG_NUMBER.search(line):
                continue
            fields = _split_fields(line)
            for k in int_cols:
                tok = fields[k]
                if len(tok) >= 16 and _LONG_NUMBER.search(tok):
                    d = Decimal(tok)
                    if d != d.to_integral_value():
                        fail(r, f"{names[k]} {_short(tok)} is not an integer")

    frame_i = frame.astype(np.int64)
    ids = ids.copy()
    if m > 1:
        order = np.lexsort((np.arange(m), ids, frame_i))
        f_s, i_s = frame_i[order], ids[order]
        dup = np.flatnonzero((f_s[1:] == f_s[:-1]) & (i_s[1:] == i_s[:-1]))
        if dup.size:
            later = order[dup + 1]
            j = int(np.argmin(later))
            r, r0 = int(later[j]), int(order[dup[j]])
            fail(r, f"frame {frame_i[r]}, id {_num(ids[r])} repeats line {line_of(r0)[0]}")
    return _Gt(frame_i, ids, arr[:, 2:6].copy(), conf, cls, vis)


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 2.0**63 else repr(v)


_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_MAX_DIGITS = 12  # longer numeric stems are not frame numbers


def _numbered_images(d: Path) -> list[tuple[str, str]]:
    """``(stem, ext)`` of the files named ``<digits><ext>`` in ``d`` (empty when ``d`` is not a
    readable directory)."""
    if not d.is_dir():
        return []
    found = []
    try:
        with os.scandir(d) as it:
            for e in it:
                stem, dot, suffix = e.name.rpartition(".")
                if dot and stem.isascii() and stem.isdigit() and len(stem) <= _MAX_DIGITS:
                    found.append((stem, "." + suffix))
    except OSError:
        return []
    return found


def _image_digits(d: Path, ext: str) -> int:
    counts: Counter[int] = Counter(len(stem) for stem, e in _numbered_images(d) if e == ext)
    return counts.most_common(1)[0][0] if counts else _DEFAULT_DIGITS


def _first_image(d: Path) -> Path | None:
    """The lowest-numbered image file in ``d`` (None when there is none)."""
    images = [(int(stem), stem + ext) for stem, ext in _numbered_images(d) if ext.lower() in _IMAGE_EXTS]
    for _, name in sorted(images):
        if (d / name).is_file():
            return d / name
    return None


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from an image's header (the pixels are not decoded)."""
    from PIL import Image  # only needed for sequences without a seqinfo.ini

    data = _read_bytes(path)
    try:
        with py_warnings.catch_warnings():
            # only the header is read: a huge image is no "decompression bomb" here
            py_warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Exception as e:  # PIL raises many kinds for a bad file; any of them means "unreadable"
        first_line = (str(e) or type(e).__name__).splitlines()[0]
        raise AnnotationError(path, None, f"cannot read the image size ({first_line})") from None
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise AnnotationError(path, None, f"image size {width}x{height} is out of range 1..{MAX_IMAGE_SIDE:,}")
    return int(width), int(height)


def _find_sequences(path: Path) -> list[Path]:
    if not os.path.lexists(path):
        raise AnnotationError(path, None, "no such file or directory")
    if not path.is_dir():
        # the path to a sequence's own seqinfo.ini or gt.txt; reading checks it is a file
        if path.name == "seqinfo.ini":
            return [path.parent]
        if path.name == "gt.txt" and path.parent.name == "gt":
            return [path.parent.parent]
        if not path.exists():
            raise AnnotationError(path, None, "is a broken symbolic link")
        raise FormatError(path, None, "not a MOT sequence or split directory",
                          hint="pass a folder holding seqinfo.ini and gt/gt.txt, or a folder of such folders")
    if _is_sequence(path):
        return [path]
    try:
        subdirs = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    except OSError as e:
        raise AnnotationError(path, None, f"cannot list directory ({e.strerror or e})") from None
    seqs = sorted((d for d in subdirs if _is_sequence(d)), key=lambda d: d.name)
    if not seqs:
        raise AnnotationError(path, None, "no MOT sequences found (no sub-directory holds seqinfo.ini or gt/gt.txt)")
    return seqs


# --------------------------------------------------------------------------- detector copies
#: MOT17 ships every sequence once per public detector, as ``<seq>-DPM``, ``<seq>-FRCNN`` and
#: ``<seq>-SDP``: the same images and ground truth, different ``det/det.txt``. The one kept is the
#: first of these present (ByteTrack trains on the -FRCNN folders).
DETECTOR_SUFFIXES: tuple[str, ...] = ("FRCNN", "SDP", "DPM")
_DETECTOR_NAME = re.compile(r"^(?P<base>.+)-(?P<det>" + "|".join(DETECTOR_SUFFIXES) + r")$")


def detector_copy_groups(names: list[str]) -> dict[str, list[str]]:
    """``{base: [names]}`` for every sequence found under two or more detector suffixes, the
    preferred copy first (``MOT17-02`` -> ``[MOT17-02-FRCNN, MOT17-02-SDP, MOT17-02-DPM]``)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        m = _DETECTOR_NAME.match(n)
        if m:
            groups.setdefault(m.group("base"), []).append(n)
    rank = {d: i for i, d in enumerate(DETECTOR_SUFFIXES)}
    return {base: sorted(g, key=lambda n: rank[n.rsplit("-", 1)[1]])
            for base, g in groups.items() if len(g) > 1}


def _gt_bytes(seq: Path) -> bytes | None:
    gt = seq / "gt" / "gt.txt"
    return _read_bytes(gt) if os.path.lexists(gt) else None


def _one_detector_copy(root: Path, seqs: list[Path]) -> tuple[list[Path], list[str]]:
    """``seqs`` with one copy of each detector triplet whose copies hold the same gt.txt, and
    the one-line messages that say what was left out.

    Copies without ground truth (a test split) are all kept: a benchmark wants results for each.
    Copies whose gt.txt differ are all kept too, with a warning: they are not copies.
    """
    by_name = {s.name: s for s in seqs}
    groups = detector_copy_groups([s.name for s in seqs])
    if not groups:
        return seqs, []
    skip: set[str] = set()
    messages: list[str] = []
    differ: list[str] = []
    for base, names in groups.items():
        gts = [_gt_bytes(by_name[n]) for n in names]
        if all(g is None for g in gts):
            continue
        if any(g != gts[0] for g in gts[1:]):
            differ.append(base)
            continue
        skip.update(names[1:])
    if differ:
        messages.append(f"{root}: the detector copies of {', '.join(differ[:3])}"
                        f"{f' and {len(differ) - 3} more' if len(differ) > 3 else ''} hold different gt.txt "
                        "files; kept every copy")
    if skip:
        kept = [s for s in seqs if s.name not in skip]
        deduped = [b for b, names in groups.items() if names[0] not in skip and names[1] in skip]
        suffixes = sorted({n.rsplit("-", 1)[1] for b in deduped for n in groups[b]})
        kept_suffix = sorted({groups[b][0].rsplit("-", 1)[1] for b in deduped}, key=DETECTOR_SUFFIXES.index)
        which = "/".join("-" + x for x in kept_suffix)
        messages.append(
            f"{root}: {len(deduped)} sequences come once per detector ({', '.join('-' + x for x in suffixes)}) "
            f"with the same ground truth; read the {which} copy of each"
            f"{', as ByteTrack does' if kept_suffix == ['FRCNN'] else ''} ({len(kept)} of {len(seqs)} folders; "
            "--all-detector-copies reads every copy)")
        return kept, messages
    return seqs, messages


# --------------------------------------------------------------------------- read
def read_mot(path: str | os.PathLike, *, detector_copies: Literal["one", "all"] = "one") -> TrackSet:
    """Read a MOT sequence directory, or a split directory of sequences (sorted by name).

    In a split directory, the MOT17 detector copies of a sequence (``-FRCNN``, ``-SDP``,
    ``-DPM``, same gt.txt) are read once (the ``-FRCNN`` one) unless ``detector_copies`` is
    ``"all"``; a warning in the result says so.
    """
    if detector_copies not in ("one", "all"):
        raise UsageError(f"detector_copies must be 'one' or 'all', not {detector_copies!r}")
    root = Path(path)
    seqs = _find_sequences(root)
    warnings: list[str] = []
    if detector_copies == "one" and len(seqs) > 1:
        seqs, notes = _one_detector_copy(root, seqs)
        warnings.extend(notes)

    v_name, v_w, v_h, v_fps = [], [], [], []
    f_video, f_index, f_file, f_w, f_h, f_num = [], [], [], [], [], []
    b_frame, b_bbox, b_track, b_cat, b_conf, b_vis, b_src = [], [], [], [], [], [], []
    frame_base = 0
    track_base = 0
    unknown_classes: set[int] = set()

    for vi, seq in enumerate(seqs):
        name = seq.name or seq.resolve().name
        ini = seq / "seqinfo.ini"
        gt_dir = seq / "gt"
        gt_path = gt_dir / "gt.txt"
        if os.path.lexists(gt_dir) and not gt_dir.is_dir():
            raise AnnotationError(gt_dir, None, "is not a directory (the boxes go in gt/gt.txt)")
        # an entry that exists but is no regular file is refused when read, never skipped
        info = _read_seqinfo(ini) if os.path.lexists(ini) else None
        gt = _read_gt(gt_path, info.length if info else None) if os.path.lexists(gt_path) else None
        if info is None:
            length = int(gt.frame.max()) if gt is not None and gt.frame.size else 0
            # Without the size every writer would have to invent one: take it from the first
            # image, and refuse when there is none.
            image = _first_image(seq / _DEFAULT_IM_DIR)
            if image is None:
                raise AnnotationError(seq, None, f"no seqinfo.ini and no images in {_DEFAULT_IM_DIR}/: "
                                      "the image size is unknown",
                                      hint="add a seqinfo.ini with seqLength, imWidth and imHeight")
            width, height = _image_size(image)
            info = _SeqInfo(None, _DEFAULT_IM_DIR, float("nan"), length, width, height, image.suffix)
            warnings.append(f"{seq}: no seqinfo.ini; seqLength taken as the last gt frame ({length}), "
                            f"image size {width}x{height} from {_DEFAULT_IM_DIR}/{image.name}")
        elif info.name is not None and info.name != name:
            warnings.append(f"{ini}: name {info.name!r} differs from the folder name {name!r}; using the folder name")
        if gt is None:
            warnings.append(f"{seq}: no gt/gt.txt; its {info.length} frames have no boxes")
        n = int(info.length or 0)
        if frame_base + n > MAX_TOTAL_FRAMES:
            raise AnnotationError(root, None, f"the sequences up to {name!r} hold {frame_base + n:,} frames, more "
                                  f"than the {MAX_TOTAL_FRAMES:,} tdgen reads at once")
        digits = _image_digits(seq / info.im_dir, info.im_ext)

        v_name.append(name)
        v_w.append(info.width)
        v_h.append(info.height)
        v_fps.append(info.fps)
        f_video.append(np.full(n, vi, dtype=np.int64))
        f_index.append(np.arange(n, dtype=np.int64))
        f_num.append(np.arange(1, n + 1, dtype=np.float64))
        f_file.extend(f"{name}/{info.im_dir}/{k:0{digits}d}{info.im_ext}" for k in range(1, n + 1))
        f_w.append(np.full(n, info.width, dtype=np.int64))
        f_h.append(np.full(n, info.height, dtype=np.int64))

        if gt is not None and gt.frame.size:
            order = np.argsort(gt.frame, kind="stable")
            uniq, inv = np.unique(gt.ids, return_inverse=True)
            b_frame.append(frame_base + gt.frame[order] - 1)
            b_bbox.append(gt.bbox[order])
            b_track.append(track_base + 1 + inv[order].astype(np.int64))
            b_cat.append(gt.cls[order])
            b_conf.append(gt.conf[order])
            b_vis.append(gt.vis[order])
            b_src.append(gt.ids[order])
            track_base += uniq.size
            cats = np.unique(gt.cls)
            unknown_classes.update(int(c) for c in cats if not 1 <= c <= 13)
        frame_base += n

    categories = [dict(c) for c in MOT_CATEGORIES]
    if unknown_classes:
        warnings.append(f"{root}: class ids {sorted(unknown_classes)} are not MOT classes (1..13); kept as they are")
        # named, so that every category_id written has its category
        categories += [{"id": c, "name": f"class_{c}"} for c in sorted(unknown_classes)]

    def cat(parts, dtype, shape=(0,)):
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(shape, dtype)

    nv = len(seqs)
    videos = Videos(
        name=np.array(v_name, dtype=object),
        id=np.arange(1, nv + 1, dtype=np.int64),
        width=np.array(v_w, dtype=np.int64),
        height=np.array(v_h, dtype=np.int64),
        fps=np.array(v_fps, dtype=np.float64),
    )
    file_name = np.empty(len(f_file), dtype=object)
    file_name[:] = f_file
    nf = len(f_file)
    frames = Frames(
        video=cat(f_video, np.int64),
        index=cat(f_index, np.int64),
        file_name=file_name,
        id=np.arange(1, nf + 1, dtype=np.int64),
        width=cat(f_w, np.int64),
        height=cat(f_h, np.int64),
        number=cat(f_num, np.float64),
    )
    track = cat(b_track, np.int64)
    m = track.size
    boxes = Boxes(
        frame=cat(b_frame, np.int64),
        bbox=cat(b_bbox, np.float64, (0, 4)),
        track=track,
        category=cat(b_cat, np.int64),
        id=np.arange(1, m + 1, dtype=np.int64),
        iscrowd=np.zeros(m, dtype=np.int8),
        visibility=cat(b_vis, np.float64),
        conf=cat(b_conf, np.float64),
        area=None,
        source_track=cat(b_src, np.float64),
        extra=None,
    )
    return TrackSet(
        videos=videos,
        frames=frames,
        boxes=boxes,
        categories=categories,
        meta={},
        source=str(root),
        source_format="mot",
        warnings=warnings,
    )


# --------------------------------------------------------------------------- write
_FILE_RE = re.compile(r"^[^/\\]+[/\\]([^/\\]+)[/\\]([0-9]+)(\.[A-Za-z0-9]+)$")


def _format_column(col: np.ndarray) -> list[str]:
    """Numbers as text that reads back to the identical float64 (ints without a dot)."""
    col = np.asarray(col, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(col) & (col == np.round(col)) & (np.abs(col) < 2.0**53)
    if integral.all():
        return list(map(str, col.astype(np.int64).tolist()))
    out = np.empty(col.size, dtype=object)
    if integral.any():
        out[integral] = list(map(str, col[integral].astype(np.int64).tolist()))
    rest = ~integral
    out[rest] = list(map(repr, col[rest].tolist()))
    return out.tolist()


def _check_seq_name(name: str) -> None:
    if not name or name in (".", "..") or any(c in name for c in "/\\\n\r\0"):
        raise OutputError(f"video name {name!r} cannot be used as a MOT sequence folder name")


@dataclass
class _SeqPlan:
    name: str
    ini: str
    gt: str
    im_dir: str
    images: list[tuple[Path, str]]  # (source, destination file name inside im_dir)


def _plan_video(ts: TrackSet, v: int, frame_rows: np.ndarray, box_rows: np.ndarray,
                images_from: Path | None) -> _SeqPlan:
    name = str(ts.videos.name[v])
    _check_seq_name(name)
    src = ts.source or "<tracks>"
    n = frame_rows.size
    if n > MAX_SEQ_LENGTH:
        raise OutputError(f"video {name!r} has {n:,} frames; a MOT sequence tdgen reads holds at most "
                          f"{MAX_SEQ_LENGTH:,}")
    files = [str(f) for f in ts.frames.file_name[frame_rows].tolist()]

    # imDir, digits and imExt from names like <seq>/<dir>/<digits><ext>.
    im_dir, digits, im_ext = _DEFAULT_IM_DIR, _DEFAULT_DIGITS, _DEFAULT_IM_EXT
    matches = [_FILE_RE.match(f) for f in files]
    if matches and all(matches):
        dirs = {m.group(1) for m in matches}
        exts = {m.group(3) for m in matches}
        lens = {len(m.group(2)) for m in matches}
        if len(dirs) == 1 and len(exts) == 1 and _im_dir_problem(next(iter(dirs))) is None:
            im_dir, im_ext = dirs.pop(), exts.pop()
            if len(lens) == 1 and lens <= {*range(1, _MAX_DIGITS + 1)}:
                digits = lens.pop()
    else:
        exts = {os.path.splitext(f)[1] for f in files}
        if len(exts) == 1 and _IM_EXT.fullmatch(next(iter(exts))):
            im_ext = exts.pop()
        elif len(exts) > 1 and images_from is not None:
            raise AnnotationError(src, f"video {name!r}",
                                  "frames have different image extensions; cannot name them in one imDir")

    # Frame numbers: the source numbers when they are 1..n-valued and distinct, else index + 1.
    numbers = np.arange(1, n + 1, dtype=np.int64)
    if ts.frames.number is not None and n:
        num = ts.frames.number[frame_rows]
        if (np.all(np.isfinite(num)) and np.all(num == np.round(num)) and num.min() >= 1 and num.max() <= n
                and np.unique(num).size == n):
            numbers = num.astype(np.int64)
    first_row = int(frame_rows[0]) if n else 0  # a video's frames are contiguous rows

    b = ts.boxes
    bbox = b.bbox[box_rows]
    if box_rows.size:
        bad = ~np.all(np.isfinite(bbox), axis=1) | (bbox[:, 2] <= 0) | (bbox[:, 3] <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            r = box_rows[i]
            raise AnnotationError(
                src, f"video {name!r}, frame {int(numbers[b.frame[r] - first_row])}, track {int(b.track[r])}",
                f"bbox {bbox[i].tolist()} cannot be written to MOT (width/height must be positive finite numbers)")
        big = np.any(np.abs(bbox) >= MAX_ABS_VALUE, axis=1)
        if big.any():
            r = box_rows[int(np.flatnonzero(big)[0])]
            raise OutputError(f"video {name!r}, frame {int(numbers[b.frame[r] - first_row])}, track "
                              f"{int(b.track[r])}: bbox {b.bbox[r].tolist()} cannot be written to MOT "
                              "(box values must be below 2**53 in magnitude)")
    box_num = numbers[b.frame[box_rows] - first_row]
    track = b.track[box_rows]
    if track.size and np.abs(track).max() >= MAX_ABS_VALUE:
        # float64 (the MOT id column) would round such ids together: number the tracks 1..T
        track = np.unique(track, return_inverse=True)[1].astype(np.int64) + 1
    ids = track.astype(np.float64)
    if b.source_track is not None and box_rows.size:
        st = b.source_track[box_rows]
        if np.all(np.isfinite(st)) and np.all(st == np.round(st)) and np.abs(st).max() < MAX_ABS_VALUE:
            o = np.lexsort((st, box_num))
            same = (box_num[o][1:] == box_num[o][:-1]) & (st[o][1:] == st[o][:-1])
            if not same.any():
                ids = st
    conf = np.ones(box_rows.size) if b.conf is None else b.conf[box_rows].copy()
    conf[~np.isfinite(conf)] = 1.0
    vis = np.ones(box_rows.size) if b.visibility is None else b.visibility[box_rows].copy()
    vis[~np.isfinite(vis)] = 1.0
    cls = b.category[box_rows]
    bad_cls = (cls < 0) | (cls > _MAX_CLASS)
    if bad_cls.any():
        raise OutputError(f"video {name!r}: category_id {int(cls[np.flatnonzero(bad_cls)[0]])} cannot be written "
                          f"as a MOT class (0..{_MAX_CLASS})")

    order = np.lexsort((box_num, ids))
    cols = [
        list(map(str, box_num[order].tolist())),
        _format_column(ids[order]),
        *(_format_column(bbox[order, k]) for k in range(4)),
        _format_column(conf[order]),
        list(map(str, cls[order].tolist())),
        _format_column(vis[order]),
    ]
    gt = "\n".join(map(",".join, zip(*cols))) + ("\n" if box_rows.size else "")

    fps = float(ts.videos.fps[v]) if ts.videos.fps is not None else float("nan")
    frame_rate = max(1, int(round(fps))) if np.isfinite(fps) else _DEFAULT_FRAME_RATE
    if frame_rate > MAX_FRAME_RATE:
        raise OutputError(f"video {name!r}: fps {fps:g} cannot be written as a MOT frameRate "
                          f"(at most {MAX_FRAME_RATE:,.0f})")
    width, height = int(ts.videos.width[v]), int(ts.videos.height[v])
    if width <= 0 and n:
        width = int(ts.frames.width[frame_rows].max())
    if height <= 0 and n:
        height = int(ts.frames.height[frame_rows].max())
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        what = "unknown" if width <= 0 or height <= 0 else "out of range"
        raise OutputError(f"video {name!r}: image size {width}x{height} is {what}; a MOT seqinfo.ini needs "
                          f"imWidth and imHeight in 1..{MAX_IMAGE_SIDE:,}")
    ini = (
        "[Sequence]\n"
        f"name={name}\n"
        f"imDir={im_dir}\n"
        f"frameRate={frame_rate}\n"
        f"seqLength={n}\n"
        f"imWidth={width}\n"
        f"imHeight={height}\n"
        f"imExt={im_ext}\n"
    )

    images: list[tuple[Path, str]] = []
    if images_from is not None:
        for f, k in zip(files, numbers.tolist()):
            source = images_from / f
            if not source.is_file():
                raise AnnotationError(source, f"video {name!r}, frame {k}", "source image not found")
            images.append((source, f"{k:0{digits}d}{im_ext}"))
    return _SeqPlan(name, ini, gt, im_dir, images)


def write_mot(
    ts: TrackSet,
    out_dir: str | os.PathLike,
    *,
    images_from: str | os.PathLike | None = None,
    image_mode: Literal["none", "link", "copy"] = "none",
    overwrite: bool = False,
) -> list[Path]:
    """Write one MOT sequence folder per video under ``out_dir``; return the folders.

    Every folder holds ``seqinfo.ini`` (keys in the order mmdet's ``mot2coco`` parses them) and
    ``gt/gt.txt`` sorted by (id, frame). With ``image_mode`` ``"link"`` or ``"copy"`` the frames
    are linked/copied from ``images_from / file_name`` into ``<seq>/<imDir>/``. Nothing is
    written unless every check passes; each folder appears whole (built aside, then renamed).
    """
    if image_mode not in ("none", "link", "copy"):
        raise UsageError(f"image_mode must be 'none', 'link' or 'copy', not {image_mode!r}")
    if image_mode != "none" and images_from is None:
        raise UsageError(
            f"image_mode={image_mode!r} needs images_from (the folder the frame file names are relative to)")
    src_root = Path(images_from).absolute() if image_mode != "none" else None
    out = Path(out_dir)

    names = [str(x) for x in ts.videos.name.tolist()]
    seen: dict[str, int] = {}
    for v, name in enumerate(names):
        _check_seq_name(name)
        if name in seen:
            raise OutputError(
                f"videos {seen[name] + 1} and {v + 1} are both named {name!r}; MOT folder names must be unique")
        seen[name] = v
    targets = [out / name for name in names]
    if not overwrite:
        for t in targets:
            if t.exists() or t.is_symlink():
                raise OutputError(f"{t}: already exists (pass overwrite to replace it)")

    if ts.num_frames > MAX_TOTAL_FRAMES:
        raise OutputError(f"{ts.num_frames:,} frames: more than the {MAX_TOTAL_FRAMES:,} a MOT split tdgen reads "
                          "holds")
    voff = ts.video_offsets()
    foff = ts.frame_offsets()
    plans = []
    for v in range(ts.num_videos):
        frame_rows = np.arange(voff[v], voff[v + 1])
        box_rows = np.arange(foff[voff[v]], foff[voff[v + 1]])
        plans.append(_plan_video(ts, v, frame_rows, box_rows, src_root))

    created_out = not out.exists()
    try:
        with contextlib.ExitStack() as stack:
            for plan, target in zip(plans, targets):
                tmp = stack.enter_context(atomic_directory(target, overwrite=overwrite))
                atomic_write_text(tmp / "seqinfo.ini", plan.ini)
                atomic_write_text(tmp / "gt" / "gt.txt", plan.gt)
                if plan.images:
                    img_dir = tmp / plan.im_dir
                    img_dir.mkdir(parents=True, exist_ok=True)
                    final_img_dir = (target / plan.im_dir).absolute()
                    for source, dest in plan.images:
                        if image_mode == "link":
                            os.symlink(os.path.relpath(source, final_img_dir), img_dir / dest)
                        else:
                            shutil.copy2(source, img_dir / dest)
    except BaseException:
        if created_out:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty: never remove what was there
        raise
    return targets


# --------------------------------------------------------------------------- half split
def half_split(ts: TrackSet, which: Literal["half-train", "half-val"]) -> TrackSet:
    """The mmdet / ByteTrack half split: per video of n frames, the first ``n // 2 + 1`` frames
    are ``half-train`` and the rest ``half-val``. Frame numbers keep the original values."""
    if which not in ("half-train", "half-val"):
        raise UsageError(f"which must be 'half-train' or 'half-val', not {which!r}")
    n = ts.frames_per_video()
    split = n // 2 + 1
    cut = split[ts.frames.video] if ts.num_frames else np.zeros(0, np.int64)
    keep = ts.frames.index < cut if which == "half-train" else ts.frames.index >= cut
    out = ts.select_frames(keep)
    if out.frames.number is None:
        # keep the original frame numbers even when the source had none
        out.frames.number = (ts.frames.index[keep] + 1).astype(np.float64)
    return out
