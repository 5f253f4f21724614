"""The fast path for big COCO-VID files: pyarrow's C++ JSON reader straight into columns.

The ``images`` and ``annotations`` arrays are turned into newline-delimited JSON (one object a
line) and parsed by pyarrow with the known fields' types given, so no Python object is made
per record. This path never reports an error itself: anything it cannot reproduce exactly (a
type that differs from the expected one, a missing required field, a ``null``, a value the exact
path refuses, JSON that pyarrow accepts but orjson does not such as ``NaN`` or two records on one
line, nested arrays of objects, pretty-printed input) makes it give up and return ``None``; the
caller then runs the exact path, which applies the same rules and reports located errors. So a
file is accepted, refused, and read to the same values whichever path reads it.
"""

from __future__ import annotations

import re

import numpy as np
import orjson

from .arrowcols import _finite, _ints, _num, _values, box_matrix, flag_column, float_column, int_column
from .jsonscan import STREAMED, key_used_once

try:  # pyarrow is a core dependency, but keep the module importable without it
    import pyarrow as pa
    import pyarrow.json as pj
except ImportError:  # pragma: no cover
    pa = None

_END = re.compile(rb"\}\s*\]\s*(?=[,}])")
_LF, _CR = re.compile(rb"\n"), re.compile(rb"\r")  # literal searches: 10x faster than a class
BLOCK_BYTES = 16 << 20  # pyarrow's JSON block size (tests make it small to get many chunks)

# "i": int64 (pyarrow refuses floats, booleans, strings and overflow itself); "f": float64 (ints
# and floats; booleans and strings refused); "s": string; "b": list of float64.
_IMAGE_SCHEMA = [("id", "i"), ("video_id", "i"), ("file_name", "s"), ("height", "f"), ("width", "f"),
                 ("frame_id", "f"), ("mot_frame_id", "f"), ("prev_image_id", "i"), ("next_image_id", "i")]
_ANN_SCHEMA = [("id", "i"), ("image_id", "i"), ("category_id", "i"), ("bbox", "b"), ("area", "f"),
               ("instance_id", "i"), ("track_id", "i"), ("visibility", "f"), ("mot_conf", "f"),
               ("mot_instance_id", "f"), ("video_id", "f")]
_REQUIRED = {"images": ("id", "file_name"), "annotations": ("id", "image_id", "category_id", "bbox")}
# float64 columns that the exact path reads as integers (integral values within SAFE_INT only)
_INTEGRAL = {"images": ("height", "width", "frame_id", "mot_frame_id"),
             "annotations": ("mot_instance_id", "video_id")}


def _schema(spec):
    types = {"i": pa.int64(), "f": pa.float64(), "s": pa.string(), "b": pa.list_(pa.float64())}
    return pa.schema([(k, types[t]) for k, t in spec])


def _span(data: np.ndarray, key: str, pos: int = 0) -> tuple[int, int, int] | None:
    """(start of '[', start of body, end after ']') of a top-level array of objects."""
    m = re.compile(rb'"' + key.encode() + rb'"\s*:\s*\[').search(data, pos)
    if m is None:
        return None
    body = m.end()
    j = body
    while j < len(data) and data[j] in b" \t\r\n":
        j += 1
    if j < len(data) and data[j] == ord("]"):
        return m.end() - 1, body, j + 1
    e = _END.search(data, body)
    if e is None:
        return None
    return m.end() - 1, body, e.end()


_LBRACE, _RBRACE, _COMMA, _SPACE, _NL = b"{}, \n"


def _commas_to_newlines(arr: np.ndarray, start: int, end: int, chunk: int = 32 << 20) -> int:
    """In ``buf[start:end]``, turn the comma of every ``},{`` (and ``}, {``) into a newline, in place.

    Same length, so no copy of a multi-GB body is made; the records become newline-delimited
    JSON for pyarrow. Works in chunks so the temporaries stay small. Returns how many commas
    it turned (so the caller can check that pyarrow found one more record than that).
    """
    turned = 0
    for a in range(start, end, chunk):
        b = min(a + chunk, end)
        seg = arr[a:b]
        pos = np.flatnonzero(seg == _LBRACE) + a  # candidate '{' of the next record
        pos = pos[pos >= start + 2]
        comma = pos - 1
        ok = (arr[comma] == _COMMA) & (arr[pos - 2] == _RBRACE)
        arr[comma[ok]] = _NL
        turned += int(np.count_nonzero(ok))
        spaced = pos[~ok]
        spaced = spaced[spaced >= start + 3]
        if spaced.size:
            ok2 = (arr[spaced - 1] == _SPACE) & (arr[spaced - 2] == _COMMA) & (arr[spaced - 3] == _RBRACE)
            arr[spaced[ok2] - 2] = _NL
            turned += int(np.count_nonzero(ok2))
    return turned


def _table(buf: np.ndarray, start: int, end: int, spec) -> "pa.Table | None":
    """Parse the records in ``buf[start:end]`` (newline-delimited by now) without copying them."""
    try:
        return pj.read_json(
            pa.BufferReader(pa.py_buffer(buf).slice(start, end - start)),
            read_options=pj.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pj.ParseOptions(explicit_schema=_schema(spec), unexpected_field_behavior="infer"),
            # the system allocator: in a fresh process the parse is 1.5x faster with it than with
            # pyarrow's default mimalloc, whose first use of hundreds of MB page-faults slowly
            memory_pool=pa.system_memory_pool(),
        )
    except pa.ArrowException:
        return None


def _exact_extra(arr: "pa.Array", top: bool) -> bool:
    """Whether ``to_pylist`` of an unknown key's column gives what orjson gives for each record.

    Not so for: a struct child with nulls (a key some objects lack is filled with null), a
    float64 column with an integral value (pyarrow turns ``1`` into ``1.0`` when other records
    hold floats, and ints past int64 into floats), a non-finite float (a ``NaN`` literal), and
    any type orjson never makes (pyarrow reads date-like strings as timestamps).
    """
    typ = arr.type
    if pa.types.is_null(typ):
        return not top
    if pa.types.is_boolean(typ) or pa.types.is_int64(typ) or pa.types.is_string(typ):
        return True
    if pa.types.is_float64(typ):
        if not _finite(arr):
            return False
        vals = _values(pa.chunked_array([arr]), np.float64, np.nan)
        v = vals[~np.isnan(vals)] if arr.null_count else vals
        return not bool((v == np.trunc(v)).any())
    if pa.types.is_list(typ):
        return _exact_extra(arr.flatten(), False)
    if pa.types.is_struct(typ):
        for i in range(typ.num_fields):
            child = arr.field(i)  # the child of the whole array (offset-aware, unlike .flatten() of slices)
            if child.null_count or not _exact_extra(child, False):
                return False
        return True
    return False


class ArrowColumns:
    """Columns in the shape the COCO-VID builder expects (see ``cocovid._Columns``)."""

    def __init__(self, table: "pa.Table", known: set[str]):
        self.n = table.num_rows
        self.cols: dict[str, list] = {}
        self._extra_names = [n for n in table.column_names if n not in known]
        self._table = table

    def extras(self) -> np.ndarray | None:
        """One dict of the unknown keys per record. Records with equal values share one dict (the
        dicts are read-only by convention), so a constant extra key such as ``"ignore": 0`` costs
        a factorisation, not a dict per record."""
        if not self._extra_names:
            return None
        codes = np.zeros(self.n, np.int64)
        uniques: list[list] = []
        for name in self._extra_names:
            col = self._table.column(name)
            if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type) \
                    or pa.types.is_string(col.type):
                enc = col.combine_chunks().dictionary_encode()
                idx = _values(pa.chunked_array([enc.indices]), np.int64, -1)
                vals = enc.dictionary.to_pylist()
            else:  # nested values: compare their JSON text
                rows = col.to_pylist()
                texts = [orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in rows]
                uniq_text, idx = np.unique(np.array(texts, dtype=object), return_inverse=True)
                first = {t: r for t, r in zip(texts, rows)}
                vals = [first[t] for t in uniq_text.tolist()]
            uniques.append(vals)
            if len(uniques) == 1:
                codes = idx
            else:
                codes = codes * len(vals) + idx
                codes = np.unique(codes, return_inverse=True)[1].astype(np.int64)  # keep codes compact
        if len(uniques) == 1:  # one extra key: its distinct values are the combinations
            dicts = np.empty(len(uniques[0]), dtype=object)
            dicts[:] = [{self._extra_names[0]: v} for v in uniques[0]]
            return dicts[codes]
        # decode each distinct combination once
        combos, first_row = np.unique(codes, return_index=True)
        per_col_idx = []
        for name in self._extra_names:
            col = self._table.column(name)
            per_col_idx.append(col.take(pa.array(first_row)).to_pylist())
        dicts = np.empty(combos.size, dtype=object)
        dicts[:] = [dict(zip(self._extra_names, vals)) for vals in zip(*per_col_idx)]
        return dicts[codes]


def fast_columns(holder: list) -> tuple[dict, ArrowColumns, ArrowColumns] | None:
    """``(top-level dict without the big arrays, image columns, annotation columns)`` or ``None``.

    The document's ``images``/``annotations`` values are :data:`jsonscan.STREAMED`.
    ``holder`` is a one-item list with the file's bytes (a writable ``uint8`` numpy array or a
    ``bytearray``) that this function owns: it is modified in place (commas between records
    become newlines) and released as soon as the records are parsed, so peak memory is one copy
    of the file plus the columns. After a ``None`` the buffer may have been modified: the caller
    must go back to the original bytes. The bytes must be valid UTF-8 (the caller checks:
    pyarrow does not).
    """
    if pa is None:
        return None
    data = holder[0]
    holder[0] = None
    if not isinstance(data, np.ndarray):
        data = np.frombuffer(data, np.uint8)
    off = 3 if bytes(data[:3]) == b"\xef\xbb\xbf" else 0
    spans = {}
    for key in ("images", "annotations"):
        s = _span(data, key, off)
        if s is not None:
            spans[key] = s
    if "images" not in spans:
        return None
    order = sorted(spans.items(), key=lambda kv: kv[1][0])
    parts, last = [], off
    for _, (lb, _, end) in order:
        if lb < last:
            return None  # one array found inside the other
        parts.append(bytes(data[last:lb]))
        parts.append(b"[]")
        last = end
    parts.append(bytes(data[last:]))
    skeleton = b"".join(parts)
    del parts
    try:
        top = orjson.loads(skeleton)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(top, dict) or any(top.get(k) != [] or not key_used_once(skeleton, k) for k in spans):
        return None
    del skeleton
    regions = {}
    for key, (_, body, end) in spans.items():
        a, b = body, end - 1  # end - 1 is the array's ']'
        while a < b and data[a] in b" \t":
            a += 1
        while b > a and data[b - 1] in b" \t":
            b -= 1
        if _LF.search(data, a, b) is not None or _CR.search(data, a, b) is not None:
            return None  # pretty-printed: leave it to the exact path
        if a < b and (data[a] != _LBRACE or data[b - 1] != _RBRACE):
            # a first record that is not an object: pyarrow 26 crashes on a first line "null"
            # (every later line starts with "{": newlines are only made in front of one)
            return None
        regions[key] = (a, b)
    tables = {}
    for key, spec in (("images", _IMAGE_SCHEMA), ("annotations", _ANN_SCHEMA)):
        a, b = regions.get(key, (0, 0))
        if a == b:
            tables[key] = None
            continue
        turned = _commas_to_newlines(data, a, b)
        t = _table(data, a, b, spec)
        if t is None or t.num_rows != turned + 1:
            return None  # more records than separators: e.g. "}{" or "} {" (no comma; orjson refuses)
        if not _plain_table(t, key, spec):
            return None
        tables[key] = t
    del data  # the columns are parsed: the file's bytes are no longer needed
    for key in spans:
        top[key] = STREAMED  # where the records were (a literal null stays None)
    try:
        img = _image_columns(tables.pop("images"))
        ann = _ann_columns(tables.pop("annotations"))
    except (pa.ArrowException, ValueError, TypeError):
        return None  # e.g. an iscrowd that is neither a number nor a boolean
    if img is None or ann is None:
        return None
    return top, img, ann


def _plain_table(t: "pa.Table", key: str, spec) -> bool:
    """Whether every known column holds what the exact path accepts and every unknown one reads
    back as orjson would read it (see :func:`_exact_extra`); otherwise the exact path decides."""
    types = dict(spec)
    for req in _REQUIRED[key]:
        if t.column(req).null_count:
            return False
    for name in t.column_names:
        col = t.column(name)
        kind = types.get(name)
        if kind == "i":
            if int_column(col) is None:
                return False
        elif kind == "f":
            if float_column(col, integral=name in _INTEGRAL[key]) is None:
                return False
        elif kind == "b":
            pass  # read and checked by box_matrix when the columns are made
        elif kind is None and name == "iscrowd" and key == "annotations":
            if flag_column(col) is None:
                return False
        elif kind is None:
            # an unknown key absent in some records (or null), or values pyarrow reads differently
            if col.null_count or not all(_exact_extra(chunk, True) for chunk in col.chunks):
                return False
    return True


def _empty_table(spec) -> "pa.Table":
    """A table of no records with the columns of ``spec`` (an array that was not in the file).
    ``pa.nulls``, not ``pa.array([])``: converting a Python list makes pyarrow import pandas."""
    schema = _schema(spec)
    return pa.table([pa.nulls(0, f.type) for f in schema], schema=schema)


def _image_columns(t: "pa.Table | None") -> ArrowColumns | None:
    known = {k for k, _ in _IMAGE_SCHEMA}
    if t is None:
        t = _empty_table(_IMAGE_SCHEMA)
    c = ArrowColumns(t, known)
    col = t.column
    c.cols["id"] = [_ints(col("id"))]
    names = np.empty(t.num_rows, dtype=object)
    names[:] = col("file_name").to_pylist()
    c.cols["file_name"] = [names]
    c.cols["video_id"] = [_values(col("video_id"), np.int64, -(2**62))]
    for k in ("frame_id", "width", "height", "mot_frame_id"):
        c.cols[k] = [_num(col(k), np.nan) + 0.0]  # + 0.0: -0.0 becomes 0.0, as an integer read would
    c.cols["has_prev"] = [t.num_rows - col("prev_image_id").null_count]
    return c


def _ann_columns(t: "pa.Table | None") -> ArrowColumns | None:
    known = {k for k, _ in _ANN_SCHEMA} | {"iscrowd"}  # iscrowd: 0/1 or false/true, its type inferred
    if t is None:
        t = _empty_table(_ANN_SCHEMA)
    c = ArrowColumns(t, known)
    col = t.column
    for k in ("id", "image_id", "category_id"):
        c.cols[k] = [_ints(col(k))]
    bbox = box_matrix(col("bbox"))
    if bbox is None:
        return None
    c.cols["bbox"] = [bbox]
    inst = _num(col("instance_id"), np.nan)
    tid = _num(col("track_id"), np.nan)
    c.cols["instance"] = [np.where(np.isnan(inst), tid, inst)]
    c.cols["iscrowd"] = [_num(col("iscrowd"), 0.0) if "iscrowd" in t.column_names else np.zeros(t.num_rows)]
    for k in ("area", "visibility", "mot_conf"):
        c.cols[k] = [_num(col(k), np.nan)]
    for k in ("mot_instance_id", "video_id"):  # integers: -0.0 read as 0.0
        c.cols[k] = [_num(col(k), np.nan) + 0.0]
    c.cols["n_track_id"] = [t.num_rows - col("track_id").null_count]
    c.cols["n_instance_id"] = [t.num_rows - col("instance_id").null_count]
    return c
