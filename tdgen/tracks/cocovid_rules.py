"""The rules every COCO-VID value follows, and the exact reader's record handlers that apply them.

One value at a time (``_int_error`` and the like: a message, or ``None`` when the value is
accepted) and a whole slice of records at a time (``_ints_required`` and the like: typed columns,
or :class:`_Bad` when some value breaks a rule; the handler then names the first one, record by
record). The rules are those :func:`tdgen.tracks.cocovid.read_cocovid` documents.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import numpy as np
import orjson

from ..errors import AnnotationError
from .jsonscan import SAFE_INT

_VIDEO_KEYS = {"id", "name", "file_name", "fps", "width", "height"}
_IMAGE_KEYS = {"id", "video_id", "file_name", "height", "width", "frame_id", "mot_frame_id",
               "prev_image_id", "next_image_id"}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "instance_id", "track_id",
             "visibility", "mot_conf", "mot_instance_id", "video_id"}
_NAN = float("nan")
_MISSING = object()


class _Bad(Exception):
    """A slice of records holds a value the rules refuse; the handler then names the first one."""


_NONE = type(None)
_NO_VIDEO = -(2**62)  # an image's video_id when it has none (no valid id is this big)


def _show(v: Any) -> str:
    """A value as JSON text, shortened: messages stay one short line."""
    if type(v) is float and not math.isfinite(v):
        text = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    else:
        try:
            text = orjson.dumps(v).decode()
        except (TypeError, orjson.JSONEncodeError):
            text = repr(v)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text if len(text) <= 60 else text[:57] + "..."


def _label(v: Any) -> str:
    """An id as shown in a location: ``annotations[3] (id 7)``."""
    if type(v) is int or (type(v) is float and v.is_integer() and abs(v) <= SAFE_INT):
        return str(int(v))
    if type(v) is str and v.isprintable() and 0 < len(v) <= 40:
        return v
    return _show(v)


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    return {_NONE: "null", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(v), type(v).__name__)


# ------------------------------------------------ the rules for one value (None: accepted)
# Integers: a JSON integer, or a number with an integral value (2.0), within +-SAFE_INT so that it
# round-trips exactly; never a string or a boolean. Numbers: finite, never strings or booleans.
def _int_error(key: str, v: Any) -> str | None:
    t = type(v)
    if t is int or (t is float and v.is_integer()):
        if -SAFE_INT <= v <= SAFE_INT:
            return None
        return f"'{key}' {_show(v)} is out of range (integers must be within +-(2**53 - 1) to stay exact)"
    return f"'{key}' must be an integer, got {_show(v)}"


def _num_error(key: str, v: Any) -> str | None:
    if type(v) is int or type(v) is float:
        return None if math.isfinite(v) else f"'{key}' must be a finite number, got {_show(v)}"
    return f"'{key}' must be a number, got {_show(v)}"


def _str_error(key: str, v: Any) -> str | None:
    return None if type(v) is str else f"'{key}' must be a string, got {_show(v)}"


def _box_error(key: str, v: Any) -> str | None:
    if type(v) is list and len(v) == 4 and all(type(x) is int or type(x) is float for x in v):
        return None
    return f"'{key}' must be 4 numbers, got {_show(v)}"


def _flag_error(key: str, v: Any) -> str | None:
    if type(v) is bool or ((type(v) is int or type(v) is float) and v in (0, 1)):
        return None
    if type(v) is int or type(v) is float:
        return f"'{key}' must be 0 or 1, got {_show(v)}"
    return f"'{key}' must be a number (0 or 1) or a boolean, got {_show(v)}"


def _inst_error(key: str, v: Any) -> str | None:
    # BDD100K/QDTrack write instance ids as strings: those are kept and mapped to integers
    if type(v) is str:
        return None
    if type(v) is int or type(v) is float:
        return _int_error(key, v)
    return f"'{key}' must be an integer or a string, got {_show(v)}"


_RULES = {"int": _int_error, "num": _num_error, "str": _str_error, "box": _box_error, "flag": _flag_error,
          "inst": _inst_error}

# (key, kind, required), in the order a record's keys are checked
_IMAGE_FIELDS = (("id", "int", True), ("file_name", "str", True), ("video_id", "int", False),
                 ("frame_id", "int", False), ("width", "int", False), ("height", "int", False),
                 ("mot_frame_id", "int", False), ("prev_image_id", "int", False), ("next_image_id", "int", False))
_ANN_FIELDS = (("id", "int", True), ("image_id", "int", True), ("category_id", "int", True), ("bbox", "box", True),
               ("area", "num", False), ("iscrowd", "flag", False), ("instance_id", "inst", False),
               ("track_id", "inst", False), ("visibility", "num", False), ("mot_conf", "num", False),
               ("mot_instance_id", "int", False), ("video_id", "int", False))


# ------------------------------------------------ the same rules on a whole slice at once
def _present(vals: list, required: bool) -> tuple[list, set, np.ndarray | None]:
    """``(values with nulls as 0, their types, mask of non-null values or None if all are)``; a
    missing key reads as null, and null means absent for an optional key."""
    types = set(map(type, vals))
    if _NONE not in types:
        return vals, types, None
    if required:
        raise _Bad
    mask = np.fromiter((v is not None for v in vals), bool, len(vals))
    types.discard(_NONE)
    return [0 if v is None else v for v in vals], types, mask


def _int_array(vals: list, types: set) -> np.ndarray:
    n = len(vals)
    try:
        if types <= {int}:
            arr = np.fromiter(vals, np.int64, n)
            if n and (arr.min() < -SAFE_INT or arr.max() > SAFE_INT):
                raise _Bad
            return arr
        if types <= {int, float}:
            arr = np.fromiter(vals, np.float64, n)
            if not (np.all(np.abs(arr) <= SAFE_INT) and np.all(arr == np.trunc(arr))):  # NaN fails too
                raise _Bad
            return arr.astype(np.int64)
    except OverflowError:  # past int64 (or float64)
        raise _Bad from None
    raise _Bad


def _ints_required(vals: list) -> np.ndarray:
    vals, types, _ = _present(vals, True)
    return _int_array(vals, types)


def _ints_optional(vals: list) -> np.ndarray:
    """float64, NaN where absent (exact: every accepted integer is within 2**53)."""
    vals, types, mask = _present(vals, False)
    arr = _int_array(vals, types).astype(np.float64)
    if mask is not None:
        arr[~mask] = _NAN
    return arr


def _nums_optional(vals: list) -> np.ndarray:
    vals, types, mask = _present(vals, False)
    if not types <= {int, float}:
        raise _Bad
    try:
        arr = np.fromiter(vals, np.float64, len(vals))
    except OverflowError:
        raise _Bad from None
    if not np.isfinite(arr).all():
        raise _Bad
    if mask is not None:
        arr[~mask] = _NAN
    return arr


def _flags(vals: list) -> np.ndarray:
    vals, types, _ = _present(vals, False)  # absent: 0
    if not types <= {int, float, bool}:
        raise _Bad
    arr = np.fromiter(vals, np.float64, len(vals))
    if not np.all((arr == 0) | (arr == 1)):
        raise _Bad
    return arr


def _boxes(vals: list) -> np.ndarray:
    if not set(map(type, vals)) <= {list} or not set(map(len, vals)) <= {4}:
        raise _Bad
    flat = list(chain.from_iterable(vals))
    if not set(map(type, flat)) <= {int, float}:
        raise _Bad
    return np.fromiter(flat, np.float64, len(flat)).reshape(-1, 4)


def _instances(ids: list, tids: list, base: int) -> tuple[np.ndarray, tuple | None]:
    """Track ids: ``instance_id``, else ``track_id``; float64, NaN where none or a string. The
    strings come back as ``(global record positions, strings)`` for the builder to map."""
    ids, t1, m1 = _present(ids, False)
    tids, t2, m2 = _present(tids, False)
    if t1 <= {int, float} and t2 <= {int, float}:
        a = _int_array(ids, t1).astype(np.float64)
        b = _int_array(tids, t2).astype(np.float64)
        if m1 is not None:
            a[~m1] = _NAN
        if m2 is not None:
            b[~m2] = _NAN
        return (np.where(np.isnan(a), b, a) if m1 is not None else a), None
    if not (t1 | t2) <= {int, float, str}:
        raise _Bad
    # some strings (rare): one record at a time
    n = len(ids)
    has1 = m1 if m1 is not None else np.ones(n, bool)
    has2 = m2 if m2 is not None else np.ones(n, bool)
    eff = [a if h1 else (b if h2 else None) for a, b, h1, h2 in zip(ids, tids, has1.tolist(), has2.tolist())]
    is_str = np.fromiter((type(v) is str for v in eff), bool, n)
    for col in (ids, tids):  # both keys follow the rules, even where the other one wins
        _int_array([0 if type(v) is str else v for v in col], {type(v) for v in col if type(v) is not str})
    nums = np.array([_NAN if (v is None or type(v) is str) else float(v) for v in eff], np.float64)
    strs = [v for v in eff if type(v) is str]
    return nums, ((np.flatnonzero(is_str) + base, strs) if strs else None)


# ------------------------------------------------ the exact path's record handlers
class _Columns:
    """Accumulates slices of records into typed column lists.

    A slice that breaks a rule is searched record by record (in file order, keys in the order
    of ``fields``) for the first offending value, and that error is kept, not raised: the caller
    raises it once the file is read, so the error does not depend on where slices were cut.
    """

    fields: tuple = ()

    def __init__(self, file: str, what: str, known: set[str]):
        self.file, self.what, self.known = file, what, known
        self.n = 0
        self.cols: dict[str, list] = {}
        self.extra_rows: list[int] = []
        self.extra_vals: list[dict] = []
        self.error: AnnotationError | None = None

    def _where(self, i: int, rec: Any) -> str:
        rid = rec.get("id") if isinstance(rec, dict) else None
        return f"{self.what}[{i}]" + (f" (id {_label(rid)})" if rid is not None else "")

    def record_error(self, rec: Any) -> str | None:
        """What is wrong with one record under the rules (None if nothing)."""
        if type(rec) is not dict:
            return f"is not an object (got {_json_type(rec)})"
        for key, kind, required in self.fields:
            v = rec.get(key, _MISSING)
            if v is _MISSING:
                if required:
                    return f"missing '{key}'"
                continue
            if v is None and not required:
                continue
            msg = _RULES[kind](key, v)
            if msg:
                return msg
        return None

    def locate(self, chunk: list, base: int) -> AnnotationError:
        for j, rec in enumerate(chunk):
            msg = self.record_error(rec)
            if msg:
                return AnnotationError(self.file, self._where(base + j, rec), msg)
        # the slice-wide checks and the per-record rules disagree: a bug, but still one line
        return AnnotationError(self.file, f"{self.what}[{base}:{base + len(chunk)}]", "a value breaks the rules",
                               hint="please report this file")

    def __call__(self, chunk: list) -> None:
        if self.error is not None:
            return  # the first error is kept; the rest of the file is only checked for syntax
        base = self.n
        try:
            if not set(map(type, chunk)) <= {dict}:
                raise _Bad
            cols = self.convert(chunk, base)
        except _Bad:
            self.error = self.locate(chunk, base)
            return
        for k, v in cols.items():
            self.cols.setdefault(k, []).append(v)
        self.add_extras(chunk, base)
        self.n += len(chunk)

    def convert(self, chunk: list, base: int) -> dict:
        raise NotImplementedError

    def add_extras(self, chunk: list, base: int) -> None:
        known = self.known
        for j, r in enumerate(chunk):
            # Cheap test first: most records hold only known keys.
            if r and not r.keys() <= known:
                self.extra_rows.append(base + j)
                self.extra_vals.append({k: v for k, v in r.items() if k not in known})

    def extras(self) -> np.ndarray | None:
        if not self.extra_rows:
            return None
        out = np.empty(self.n, dtype=object)
        out[:] = None
        for i, d in zip(self.extra_rows, self.extra_vals):
            out[i] = d
        return out


class _ImageHandler(_Columns):
    fields = _IMAGE_FIELDS

    def convert(self, chunk: list, base: int) -> dict:
        def get(key):
            return [r.get(key) for r in chunk]

        c: dict[str, Any] = {"id": _ints_required(get("id"))}
        names = get("file_name")
        if not set(map(type, names)) <= {str}:
            raise _Bad
        c["file_name"] = names
        vid = _ints_optional(get("video_id"))
        c["video_id"] = np.where(np.isnan(vid), _NO_VIDEO, vid).astype(np.int64)
        for key in ("frame_id", "width", "height", "mot_frame_id"):
            c[key] = _ints_optional(get(key))
        c["has_prev"] = int(np.count_nonzero(~np.isnan(_ints_optional(get("prev_image_id")))))
        _ints_optional(get("next_image_id"))  # checked, not kept: the writer makes them anew
        return c


class _AnnHandler(_Columns):
    fields = _ANN_FIELDS

    def convert(self, chunk: list, base: int) -> dict:
        def get(key):
            return [r.get(key) for r in chunk]

        c: dict[str, Any] = {k: _ints_required(get(k)) for k in ("id", "image_id", "category_id")}
        c["bbox"] = _boxes(get("bbox"))
        c["area"] = _nums_optional(get("area"))
        c["iscrowd"] = _flags(get("iscrowd"))
        iid, tid = get("instance_id"), get("track_id")
        c["instance"], strs = _instances(iid, tid, base)
        if strs is not None:
            c["instance_str"] = strs
        for key in ("visibility", "mot_conf"):
            c[key] = _nums_optional(get(key))
        for key in ("mot_instance_id", "video_id"):
            c[key] = _ints_optional(get(key))
        c["n_track_id"] = sum(v is not None for v in tid)
        c["n_instance_id"] = sum(v is not None for v in iid)
        return c


# ------------------------------------------------ the rules for one ``videos`` entry
def _video_error(v: Any) -> str | None:
    """The rules for one ``videos`` entry (None: accepted). A null is an absent key; a width or
    height of 0 means unknown (some tools write it)."""
    if not isinstance(v, dict):
        return f"is not an object (got {_json_type(v)})"
    if "id" not in v:
        return "missing 'id'"
    msg = _int_error("id", v["id"])
    for key in ("name", "file_name"):
        if not msg and v.get(key) is not None:
            msg = _str_error(key, v[key])
    for key in ("width", "height"):
        if not msg and v.get(key) is not None:
            msg = _int_error(key, v[key]) or (f"'{key}' must not be negative, got {_show(v[key])}"
                                              if v[key] < 0 else None)
    if not msg and v.get("fps") is not None:
        msg = _num_error("fps", v["fps"]) or (None if v["fps"] > 0
                                              else f"'fps' must be positive, got {_show(v['fps'])}")
    return msg

