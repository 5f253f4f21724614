"""``seqinfo.ini``, the sequence's key=value file, read and checked (see :mod:`tdgen.tracks.mot`)."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import AnnotationError
from .mot_format import (_DEFAULT_IM_DIR, _DEFAULT_IM_EXT, _IM_EXT, MAX_FRAME_RATE, MAX_IMAGE_SIDE, MAX_SEQ_LENGTH,
                         _im_dir_problem, _read_text, _show)


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
