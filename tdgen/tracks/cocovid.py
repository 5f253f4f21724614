"""COCO-VID in both flavours, read into a TrackSet and written back.

Flavours (research/formats.md §1):

* ``mmdet`` (OpenMMLab: mmdet 3.x, mmtracking, QDTrack): 0-based ``frame_id``, ``instance_id``,
  ``videos[].name``, ``mot_frame_id``/``visibility``/``mot_conf`` when MOT-derived.
* ``bytetrack`` (ByteTrack, OC-SORT, CenterTrack): 1-based ``frame_id``, ``track_id``,
  ``videos[].file_name``, ``prev_image_id``/``next_image_id``.

The reader auto-detects the flavour. The writer meets the "strictest common denominator" of
formats.md §1.9: an ``info`` key, unique positive ids, images grouped by video and sorted by
frame, contiguous frame ids, ``area``/``iscrowd`` on every annotation, instance ids >= 1 and
unique across the file.
"""

from __future__ import annotations

import math
import os
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from .. import __version__
from ..atomic import atomic_write_bytes
from ..errors import AnnotationError, FormatError
from .io import open_regular_file
from .jsonscan import SAFE_INT, STREAMED, JSONError, first_invalid_utf8, scan_top_level
from .trackset import Boxes, Frames, TrackSet, Videos

__all__ = ["read_cocovid", "parse_cocovid", "write_cocovid", "cocovid_dict", "detect_flavor", "Flavor"]

Flavor = Literal["mmdet", "bytetrack"]
FLAVORS = ("mmdet", "bytetrack")

_VIDEO_KEYS = {"id", "name", "file_name", "fps", "width", "height"}
_IMAGE_KEYS = {"id", "video_id", "file_name", "height", "width", "frame_id", "mot_frame_id",
               "prev_image_id", "next_image_id"}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "instance_id", "track_id",
             "visibility", "mot_conf", "mot_instance_id", "video_id"}
_NAN = float("nan")
_MISSING = object()


# --------------------------------------------------------------------------- reading
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


def _cat(parts: list, dtype=None, empty_shape=(0,)) -> np.ndarray:
    if not parts:
        return np.zeros(empty_shape, dtype=dtype or np.float64)
    if isinstance(parts[0], list):
        out = np.empty(sum(len(p) for p in parts), dtype=object)
        i = 0
        for p in parts:
            out[i:i + len(p)] = p
            i += len(p)
        return out
    if len(parts) == 1:  # the common case: one column, no copy unless the type differs or it is read-only
        arr = np.asarray(parts[0], dtype=dtype)
        return arr if arr.flags.writeable else arr.copy()
    return np.concatenate(parts)


def _increasing(a: np.ndarray) -> bool:
    return bool(a.size < 2 or (a[1:] > a[:-1]).all())


def _dup_error(file: str, what: str, ids: np.ndarray) -> AnnotationError | None:
    if _increasing(ids):  # the usual case, checked in O(n)
        return None
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    d = np.flatnonzero(s[1:] == s[:-1])
    if d.size == 0:
        return None
    a, b = order[d[0]], order[d[0] + 1]
    return AnnotationError(file, f"{what}[{b}]", f"duplicate id {int(ids[b])} (also {what}[{a}])")


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


FAST_PATH_BYTES = 4 << 20
_WHAT = "a COCO-VID JSON file"


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
    return _build(top, images, anns, file, invalid_boxes)


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
    """The orjson path: slices of records checked against the rules, then :func:`_build`."""
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
    return _build(top, handlers["images"], handlers["annotations"], file, invalid_boxes)


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


def _build(top: dict, ih: Any, ah: Any, file: str, invalid_boxes: str) -> TrackSet:
    warnings: list[str] = []
    style: dict[str, Any] = {}
    # ---------------- the two big arrays: read by a handler, or something else
    for key in ("images", "annotations"):
        value = top.get(key, _MISSING)
        if value is STREAMED or (value is _MISSING and key == "annotations"):
            continue
        if value is _MISSING:
            raise FormatError(file, None, "no 'images' key: not a COCO-VID file",
                              hint="MOT directories and YouTube-VIS files are read too; check the path")
        raise AnnotationError(file, key, f"must be an array of objects, got {_json_type(value)}")
    # ---------------- categories
    cats = top.get("categories")
    if cats is None:
        raise AnnotationError(file, None, "missing 'categories'")
    if not isinstance(cats, list):
        raise AnnotationError(file, "categories", f"must be an array of objects, got {_json_type(cats)}")
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise AnnotationError(file, f"categories[{i}]", "needs 'id' and 'name'")
        msg = _int_error("id", c["id"]) or _str_error("name", c["name"])
        if msg:
            raise AnnotationError(file, f"categories[{i}]", msg)
    cat_ids = np.array([int(c["id"]) for c in cats], dtype=np.int64)
    err = _dup_error(file, "categories", cat_ids)
    if err:
        raise err

    # ---------------- images
    img_id = _cat(ih.cols.get("id", []), np.int64)
    n_img = img_id.size
    err = _dup_error(file, "images", img_id)
    if err:
        raise err
    img_vid = _cat(ih.cols.get("video_id", []), np.int64)
    frame_id = _cat(ih.cols.get("frame_id", []))
    img_w = _cat(ih.cols.get("width", []))
    img_h = _cat(ih.cols.get("height", []))
    mot_fid = _cat(ih.cols.get("mot_frame_id", []))
    file_name = _cat(ih.cols.get("file_name", []), object)
    no_vid = img_vid == -(2**62)

    # ---------------- videos
    vids = top.get("videos")
    if vids is not None and not isinstance(vids, list):
        raise AnnotationError(file, "videos", f"must be an array of objects, got {_json_type(vids)}")
    if n_img and no_vid.all() and not vids:
        # An image-only COCO file: every image becomes a one-frame video (mmtracking's
        # load_img_as_vid behaviour).
        warnings.append(f"{n_img} images have no 'video_id': each is read as a one-frame video")
        vids = [{"id": int(i), "name": str(f)} for i, f in zip(img_id.tolist(), file_name.tolist())]
        img_vid = img_id.copy()
        frame_id = np.zeros(n_img)
        style["image_only"] = True
    elif no_vid.any():
        j = int(np.flatnonzero(no_vid)[0])
        raise AnnotationError(file, f"images[{j}] (id {int(img_id[j])})", "missing 'video_id'")
    if vids is None:
        uv = np.unique(img_vid)
        warnings.append("no 'videos' list: videos are made from the images' video_id")
        vids = [{"id": int(v), "name": f"video_{int(v)}"} for v in uv]
        style["no_videos"] = True
    for i, v in enumerate(vids):
        msg = _video_error(v)
        if msg:
            where = f"videos[{i}]" + (f" (id {_label(v['id'])})" if isinstance(v, dict) and "id" in v else "")
            raise AnnotationError(file, where, msg)
    vid_ids = np.array([int(v["id"]) for v in vids], dtype=np.int64)
    err = _dup_error(file, "videos", vid_ids)
    if err:
        raise err
    vid_order = np.argsort(vid_ids, kind="stable")
    pos = np.searchsorted(vid_ids[vid_order], img_vid)
    pos = np.clip(pos, 0, max(len(vids) - 1, 0))
    ok = (vid_ids[vid_order][pos] == img_vid) if len(vids) else np.zeros(n_img, bool)
    if n_img and not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        raise AnnotationError(file, f"images[{j}] (id {int(img_id[j])})",
                              f"video_id {int(img_vid[j])} is not in 'videos'")
    img_vrow = vid_order[pos] if n_img else np.zeros(0, np.int64)

    # frame ids
    if n_img and np.isnan(frame_id).any():
        j = int(np.flatnonzero(np.isnan(frame_id))[0])
        raise AnnotationError(file, f"images[{j}] (id {int(img_id[j])})", "missing 'frame_id'")
    if n_img and (frame_id < 0).any():
        j = int(np.flatnonzero(frame_id < 0)[0])
        raise AnnotationError(file, f"images[{j}] (id {int(img_id[j])})", f"frame_id {frame_id[j]:g} is negative")
    order = np.lexsort((frame_id, img_vrow))
    sv, sf = img_vrow[order], frame_id[order]
    same = (sv[1:] == sv[:-1]) & (sf[1:] == sf[:-1])
    if same.any():
        j = int(order[np.flatnonzero(same)[0] + 1])
        raise AnnotationError(file, f"images[{j}] (id {int(img_id[j])})",
                              f"video {int(vid_ids[img_vrow[j]])} already has a frame_id {frame_id[j]:g}")
    counts = np.bincount(img_vrow, minlength=len(vids))
    voff = np.concatenate([[0], np.cumsum(counts)])
    index = np.arange(n_img) - np.repeat(voff[:-1], counts)
    first = np.full(len(vids), np.nan)
    if n_img:
        first[sv[np.r_[True, sv[1:] != sv[:-1]]]] = sf[np.r_[True, sv[1:] != sv[:-1]]]
    if n_img:
        base0 = bool(np.nanmin(first) == 0) if not style.get("image_only") else True
    else:
        base0 = True
    flavor_guess = "mmdet" if base0 else "bytetrack"
    expect = sf - np.repeat(np.nan_to_num(first), counts) if n_img else sf
    gaps = n_img and not np.array_equal(expect, index.astype(np.float64))
    if gaps:
        nv = int(len(np.unique(sv[expect != index])))
        # Frames.number keeps the original (clips use it to find a frame in a source video), but
        # no writer writes it back: COCO-VID gets frame_id 0..n-1 or 1..n, MOT renumbers gapped frames
        warnings.append(f"{nv} video(s) have gaps in frame_id: frames renumbered contiguously "
                        "(written files do not keep the original frame_id)")
    if n_img:
        # frame ids must start at the flavour's base in every video
        start = 0 if base0 else 1
        bad = np.flatnonzero((first != start) & (counts > 0))
        if bad.size and not gaps:
            v = int(bad[0])
            warnings.append(f"video {int(vid_ids[v])}: frame_id starts at {first[v]:g}, expected {start}")

    # width/height fallback to the video's (types checked above; 0 or null: unknown)
    v_w = np.array([float(v.get("width") or _NAN) for v in vids])
    v_h = np.array([float(v.get("height") or _NAN) for v in vids])
    for arr, varr, key in ((img_w, v_w, "width"), (img_h, v_h, "height")):
        miss = np.isnan(arr)
        if miss.any():
            arr[miss] = varr[img_vrow[miss]] if len(vids) else _NAN
            still = np.isnan(arr)
            if still.any():
                j = int(np.flatnonzero(still)[0])
                raise AnnotationError(file, f"images[{j}] (id {int(img_id[j])})",
                                      f"missing '{key}' (and its video has none)")
            warnings.append(f"{int(miss.sum())} images lack '{key}': taken from their video")
            style[f"image_no_{key}"] = True
        if n_img and (arr <= 0).any():
            j = int(np.flatnonzero(arr <= 0)[0])
            raise AnnotationError(file, f"images[{j}] (id {int(img_id[j])})", f"'{key}' must be positive")

    if base0:
        number = np.where(np.isnan(mot_fid), frame_id + 1, mot_fid)
    else:
        number = np.where(np.isnan(mot_fid), frame_id, mot_fid)
    style["mot_frame_id"] = bool(n_img and not np.isnan(mot_fid).all())
    style["prev_next"] = bool(sum(ih.cols.get("has_prev", [])))
    img_extra = ih.extras()
    frames = Frames(
        video=img_vrow[order].astype(np.int64, copy=False),
        index=index.astype(np.int64, copy=False),
        file_name=file_name[order],
        id=img_id[order],
        width=img_w[order].astype(np.int64, copy=False),
        height=img_h[order].astype(np.int64, copy=False),
        number=number[order],
        extra=None if img_extra is None else img_extra[order],
    )
    frame_of_img = np.empty(n_img, np.int64)
    frame_of_img[order] = np.arange(n_img)

    videos = Videos(
        name=np.array([next((v[k] for k in ("name", "file_name") if v.get(k) is not None), f"video_{int(v['id'])}")
                       for v in vids], dtype=object),
        id=vid_ids,
        width=np.nan_to_num(v_w, nan=0).astype(np.int64),
        height=np.nan_to_num(v_h, nan=0).astype(np.int64),
        fps=np.array([_NAN if v.get("fps") is None else float(v["fps"]) for v in vids])
        if any("fps" in v for v in vids) else None,
        extra=_obj([{k: x for k, x in v.items() if k not in _VIDEO_KEYS} or None for v in vids]),
    )
    style["video_name"] = any("name" in v for v in vids)
    style["video_file_name"] = any("file_name" in v for v in vids)
    style["video_size"] = any("width" in v for v in vids)

    # ---------------- annotations
    n_ann = ah.n
    cols = ah.cols
    ann_id = _cat(cols.get("id", []), np.int64)
    err = _dup_error(file, "annotations", ann_id)
    if err:
        raise err
    ann_img = _cat(cols.get("image_id", []), np.int64)
    ann_cat = _cat(cols.get("category_id", []), np.int64)
    bbox = _cat(cols.get("bbox", []), empty_shape=(0, 4))
    inst = _cat(cols.get("instance", []))
    str_parts = cols.get("instance_str", [])
    if str_parts:
        # string ids (BDD100K, QDTrack): one integer per distinct string, over the whole file
        # (a track cut by a slice boundary keeps one id), after the largest numeric id
        rows = np.concatenate([p for p, _ in str_parts])
        strs = np.empty(rows.size, dtype=object)
        strs[:] = [x for _, part in str_parts for x in part]
        finite = inst[np.isfinite(inst)]
        offset = max(int(finite.max()), 0) if finite.size else 0
        inst[rows] = np.unique(strs, return_inverse=True)[1].reshape(-1) + 1 + offset
        warnings.append("string instance ids were mapped to integers")
    crowd = _cat(cols.get("iscrowd", []))
    if n_img and _increasing(img_id) and int(img_id[-1]) - int(img_id[0]) == n_img - 1:
        img_sorted = np.arange(n_img)  # ids 1..n in order (the usual case): positions by subtraction
        p = ann_img - img_id[0]
        ok = (p >= 0) & (p < n_img)
        p = np.where(ok, p, 0)
    else:
        img_sorted = np.argsort(img_id)
        p = np.clip(np.searchsorted(img_id[img_sorted], ann_img), 0, max(n_img - 1, 0))
        ok = img_id[img_sorted][p] == ann_img if n_img else np.zeros(n_ann, bool)
    if n_ann and not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        raise AnnotationError(file, f"annotations[{j}] (id {int(ann_id[j])})",
                              f"image_id {int(ann_img[j])} is not in 'images'")
    ann_frame = frame_of_img[img_sorted[p]] if n_ann else np.zeros(0, np.int64)
    if cat_ids.size and cat_ids.min() >= 0 and cat_ids.max() < (1 << 20):  # a lookup table
        table = np.zeros(int(cat_ids.max()) + 2, bool)
        table[cat_ids] = True
        cat_known = table[np.clip(ann_cat, 0, table.size - 1)] & (ann_cat >= 0) & (ann_cat < table.size - 1)
    else:
        cat_known = np.isin(ann_cat, cat_ids)
    if not cat_known.all():
        j = int(np.flatnonzero(~cat_known)[0])
        raise AnnotationError(file, f"annotations[{j}] (id {int(ann_id[j])})",
                              f"category_id {int(ann_cat[j])} is not in 'categories'")
    ann_vid = _cat(cols.get("video_id", []))
    has_vid = ~np.isnan(ann_vid)
    if has_vid.any():
        mism = has_vid & (ann_vid != vid_ids[frames.video[ann_frame]] if n_ann else has_vid)
        if mism.any():
            j = int(np.flatnonzero(mism)[0])
            raise AnnotationError(file, f"annotations[{j}] (id {int(ann_id[j])})",
                                  f"video_id {int(ann_vid[j])} differs from its image's video "
                                  f"{int(vid_ids[frames.video[ann_frame[j]]])}")
    style["ann_video_id"] = bool(has_vid.any())
    # box validity
    w, h = bbox[:, 2], bbox[:, 3]
    bad = ~np.isfinite(bbox).all(axis=1) | (w <= 0) | (h <= 0)
    keep = np.ones(n_ann, bool)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        if invalid_boxes == "error":
            raise AnnotationError(file, f"annotations[{j}] (id {int(ann_id[j])})",
                                  f"bbox {bbox[j].tolist()} has non-positive or NaN size",
                                  hint="pass --drop-invalid-boxes to skip such boxes")
        keep = ~bad
        warnings.append(f"dropped {int(bad.sum())} boxes with non-positive or NaN size")
    fw = frames.width[ann_frame].astype(np.float64, copy=False)
    fh = frames.height[ann_frame].astype(np.float64, copy=False)
    outside = keep & ((bbox[:, 0] < 0) | (bbox[:, 1] < 0) | (bbox[:, 0] + w > fw) | (bbox[:, 1] + h > fh))
    if outside.any():
        warnings.append(f"{int(outside.sum())} boxes extend past their frame (kept as they are; "
                        "clipped when cut into clips)")

    # tracks: instance ids unique across the file and never shared by two videos
    ann_vrow = frames.video[ann_frame]
    no_inst = np.isnan(inst) | (inst < 0)
    any_no_inst = bool(no_inst.any())
    track = np.where(no_inst, 0, inst).astype(np.int64, copy=False) if any_no_inst else inst.astype(np.int64)
    if n_ann:
        if any_no_inst:
            t_ok, v_ok = track[~no_inst], ann_vrow[~no_inst].astype(np.int64, copy=False)
        else:
            t_ok, v_ok = track, ann_vrow.astype(np.int64, copy=False)
        shared = _shared_between_videos(t_ok, v_ok)
        if shared:
            key = ann_vrow.astype(np.int64) * (int(track.max()) + 2) + track
            _, inv = np.unique(key, return_inverse=True)
            track = inv.astype(np.int64) + 1
            warnings.append("instance ids repeat across videos: tracks renumbered per (video, id)")
            style["renumbered_tracks"] = True
        if any_no_inst:
            nxt = int(track.max()) + 1 if n_ann else 1
            track[no_inst] = np.arange(nxt, nxt + int(no_inst.sum()))
            if not style.get("image_only"):
                warnings.append(f"{int(no_inst.sum())} boxes have no instance/track id: each got its own track")
            style["no_instance"] = int(no_inst.sum())
        if ((track[~no_inst] if any_no_inst else track) == 0).any():
            warnings.append("instance ids start at 0: written back from 1 (mmdet treats 0 as missing)")
    n_tid, n_iid = sum(cols.get("n_track_id", [])), sum(cols.get("n_instance_id", []))
    style["flavor"] = ("bytetrack" if n_tid > n_iid else "mmdet") if (n_tid or n_iid) else flavor_guess
    style["num_instances"] = "num_instances" in top
    style["frame_base"] = 0 if base0 else 1

    vis = _cat(cols.get("visibility", []))
    conf = _cat(cols.get("mot_conf", []))
    area = _cat(cols.get("area", []))
    src = _cat(cols.get("mot_instance_id", []))
    ann_extra = ah.extras()
    if keep.all() and (ann_frame.size < 2 or (ann_frame[1:] >= ann_frame[:-1]).all()):
        def take(a):  # already in frame order (the usual case): no copies
            return a
    else:
        box_order = np.argsort(ann_frame, kind="stable")
        box_order = box_order[keep[box_order]]

        def take(a):
            return a[box_order]
    boxes = Boxes(
        frame=take(ann_frame),
        bbox=take(bbox),
        track=take(track),
        category=take(ann_cat),
        id=take(ann_id),
        iscrowd=(take(crowd) != 0).astype(np.int8),
        visibility=None if np.isnan(vis).all() else take(vis),
        conf=None if np.isnan(conf).all() else take(conf),
        area=None if np.isnan(area).all() else take(area),
        source_track=None if np.isnan(src).all() else take(src),
        extra=None if ann_extra is None else take(ann_extra),
    )
    meta = {k: v for k, v in top.items() if k not in ("images", "annotations", "videos", "categories")}
    ts = TrackSet(videos=videos, frames=frames, boxes=boxes, categories=list(cats), meta=meta,
                  source=file, source_format=f"cocovid-{style['flavor']}", warnings=warnings, style=style)
    return ts


def _shared_between_videos(track: np.ndarray, video: np.ndarray) -> bool:
    """Whether some track id has boxes in more than one video."""
    if track.size == 0:
        return False
    lo_t, hi_t = int(track.min()), int(track.max())
    if hi_t - lo_t < 8 * track.size + 1024:  # ids in a compact range: per-id min and max video
        k = track - lo_t
        lo = np.full(hi_t - lo_t + 1, np.iinfo(np.int64).max)
        hi = np.full(hi_t - lo_t + 1, -1)
        np.minimum.at(lo, k, video)
        np.maximum.at(hi, k, video)
        used = hi >= 0
        return bool((lo[used] != hi[used]).any())
    o = np.argsort(track, kind="stable")
    ts_, vs_ = track[o], video[o]
    return bool(((ts_[1:] == ts_[:-1]) & (vs_[1:] != vs_[:-1])).any())


def _obj(items: list) -> np.ndarray | None:
    if all(x is None for x in items):
        return None
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


# --------------------------------------------------------------------------- writing
# The document's rules live in cocovid_write.CocovidDoc; these are the entry points.
def _all_unique(ids: np.ndarray) -> bool:
    s = np.sort(ids)
    return bool(s.size < 2 or np.all(s[1:] != s[:-1]))


def cocovid_dict(ts: TrackSet, flavor: Flavor | None = None, *, info: dict | None = None) -> dict:
    """The COCO-VID document for ``ts`` as a dict (see module docstring for the rules)."""
    from .cocovid_write import CocovidDoc

    return CocovidDoc(ts, flavor, info=info).as_dict()


def write_cocovid(ts: TrackSet, path: str | Path, flavor: Flavor | None = None, *, info: dict | None = None,
                  indent: bool = False) -> Path:
    """Write ``ts`` as COCO-VID (atomically) and return the path.

    ``flavor`` defaults to the flavour the set was read in (``mmdet`` for other sources).
    Raises :class:`OutputError` if an id would collide. Compact output is written slice by
    slice (bounded memory); ``indent`` builds the whole document first.
    """
    from .cocovid_write import write_cocovid_stream

    if not indent:
        return write_cocovid_stream(ts, path, flavor, info=info)
    from ..errors import OutputError

    doc = cocovid_dict(ts, flavor, info=info)
    for key in ("videos", "images", "annotations"):
        ids = np.fromiter((d["id"] for d in doc[key]), dtype=np.int64, count=len(doc[key]))
        if not _all_unique(ids):
            raise OutputError(f"{path}: duplicate {key} ids in the output (a bug: please report it)")
    path = Path(path)
    atomic_write_bytes(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path
