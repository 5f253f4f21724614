"""``gt/gt.txt``, the sequence's ground truth, parsed and checked (see :mod:`tdgen.tracks.mot`).

The parse is vectorised (numpy's text reader) for the usual file, and line by line, naming the
first bad line and column, for anything else; either way every value is then checked in bulk,
and a refusal names the line.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from ..errors import AnnotationError
from .mot_format import _MAX_CLASS, MAX_ABS_VALUE, MAX_SEQ_LENGTH, _read_text, _show

_COLUMN_NAMES = {
    9: ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "class", "visibility"),
    10: ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "x", "y", "z"),
}
_EMPTY_FIELD = re.compile(r"(?m)(^|,)[ \t]*,")


def _column_name(ncols: int, k: int) -> str:
    names = _COLUMN_NAMES[10] if ncols == 10 else _COLUMN_NAMES[9]
    return names[k] if k < len(names) else f"column {k + 1}"


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


def read_gt_text(path: Path, length: int | None) -> _Gt:
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
