"""pyarrow columns as numpy arrays, and the exact reader's value rules on them.

The COCO-VID fast path (:mod:`tdgen.tracks.arrowjson`) and the streaming merge
(:mod:`tdgen.tracks.streammerge`) both parse records with pyarrow; both read and check their
columns with these functions, so that they give up on the same values. A ``None`` from a
``*_column`` function means "a value the exact path refuses, or reads differently": that path
then reads the file and names the record. Buffers are read directly: pyarrow's own
conversions import pandas (0.3 s) on first use.
"""

from __future__ import annotations

import numpy as np

from .jsonscan import SAFE_INT

try:  # pyarrow is a core dependency, but keep the module importable without it
    import pyarrow as pa
except ImportError:  # pragma: no cover
    pa = None

__all__ = ["box_matrix", "column_values", "flag_column", "float_column", "int_column"]

_NP_TYPES = {}
if pa is not None:
    _NP_TYPES = {pa.int64(): np.int64, pa.int32(): np.int32, pa.float64(): np.float64, pa.uint64(): np.uint64,
                 pa.int8(): np.int8, pa.int16(): np.int16, pa.uint8(): np.uint8, pa.uint32(): np.uint32}


def _bits(buf: "pa.Buffer", offset: int, n: int) -> np.ndarray:
    """An Arrow bitmap as n booleans."""
    raw = np.frombuffer(buf, np.uint8, count=(offset + n + 7) // 8)
    return np.unpackbits(raw, bitorder="little", count=offset + n)[offset:].astype(bool)


def column_values(col: "pa.ChunkedArray", dtype: type) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(values, mask of the present values or None when all are)`` of a numeric or boolean
    column; a null reads as 0. ``None`` for a type this does not handle.

    Reads the Arrow buffers directly: pyarrow's own conversions import pandas (0.3 s) on first use.
    """
    n_all = len(col)
    out = np.empty(n_all, dtype)
    valid = np.ones(n_all, bool) if col.null_count else None
    pos = 0
    for chunk in col.chunks:
        n = len(chunk)
        seg = out[pos:pos + n]
        if n == 0:
            continue
        typ = chunk.type
        bufs = chunk.buffers()
        if pa.types.is_null(typ) or chunk.null_count == n:
            seg[:] = 0
            valid[pos:pos + n] = False
            pos += n
            continue
        if pa.types.is_boolean(typ):
            seg[:] = _bits(bufs[1], chunk.offset, n)
        elif typ in _NP_TYPES:
            seg[:] = np.frombuffer(bufs[1], _NP_TYPES[typ], count=chunk.offset + n)[chunk.offset:]
        else:
            return None
        if chunk.null_count:
            ok = _bits(bufs[0], chunk.offset, n)
            seg[~ok] = 0
            valid[pos:pos + n] = ok
        pos += n
    return out, valid


def _values(col: "pa.ChunkedArray", dtype: type, fill: float) -> np.ndarray | None:
    """A numeric or boolean column as a numpy array with nulls set to ``fill`` (``None`` for a type
    :func:`column_values` does not handle)."""
    got = column_values(col, dtype)
    if got is None:
        return None
    out, valid = got
    if valid is not None and fill != 0:
        out[~valid] = fill
    return out


def _num(col: "pa.ChunkedArray", fill: float) -> np.ndarray:
    out = _values(col, np.float64, fill)
    if out is None:
        raise pa.ArrowTypeError(f"unexpected column type {col.type}")
    return out


def _ints(col: "pa.ChunkedArray") -> np.ndarray:
    out = _values(col, np.int64, 0)
    if out is None:
        raise pa.ArrowTypeError(f"unexpected column type {col.type}")
    return out


def _finite(col: "pa.ChunkedArray | pa.Array") -> bool:
    """Whether every non-null value of a float64 column is finite (pyarrow reads the ``NaN`` and
    ``Infinity`` literals that orjson refuses; a null's slot may hold anything)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for chunk in chunks:
        n = len(chunk)
        if n == 0 or chunk.null_count == n:
            continue
        vals = np.frombuffer(chunk.buffers()[1], np.float64, count=chunk.offset + n)[chunk.offset:]
        bad = ~np.isfinite(vals)
        if bad.any() and (chunk.null_count == 0 or (bad & _bits(chunk.buffers()[0], chunk.offset, n)).any()):
            return False
    return True


def _integral(vals: np.ndarray) -> bool:
    """Whether the non-NaN values are integers within SAFE_INT (the exact path's integer rule)."""
    v = vals[~np.isnan(vals)]
    return bool(np.all(np.abs(v) <= SAFE_INT) and np.all(v == np.trunc(v)))


def _in_range(vals: np.ndarray) -> bool:
    return bool(vals.size == 0 or (vals.min() >= -SAFE_INT and vals.max() <= SAFE_INT))


def int_column(col: "pa.ChunkedArray") -> tuple[np.ndarray, np.ndarray | None] | None:
    """An int64 column's values and presence mask (see :func:`column_values`); ``None`` when a
    value is past +-(2**53 - 1), which the exact path refuses."""
    got = column_values(col, np.int64)
    if got is None or not _in_range(got[0]):
        return None
    return got


def float_column(col: "pa.ChunkedArray", integral: bool = False) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A float64 column's values and presence mask; ``None`` when a value is not finite, or (with
    ``integral``: a key the exact path reads as an integer) not an integer within +-(2**53 - 1)."""
    if not _finite(col):
        return None
    got = column_values(col, np.float64)
    if got is None or (integral and not _integral(got[0])):
        return None
    return got


def flag_column(col: "pa.ChunkedArray") -> tuple[np.ndarray, np.ndarray | None] | None:
    """An ``iscrowd`` column (0, 1 or booleans; its type inferred or given) as float64 values and a
    presence mask; ``None`` for any other value."""
    typ = col.type
    if not (pa.types.is_null(typ) or pa.types.is_boolean(typ) or pa.types.is_int64(typ)
            or pa.types.is_float64(typ)):
        return None
    if pa.types.is_float64(typ) and not _finite(col):
        return None
    got = column_values(col, np.float64)
    if got is None or not np.all((got[0] == 0) | (got[0] == 1)):
        return None
    return got


def box_matrix(col: "pa.ChunkedArray") -> np.ndarray | None:
    """A ``bbox`` column (lists of float64) as an (n, 4) array; ``None`` unless every record holds
    a list of 4 finite numbers."""
    parts = []
    for chunk in col.chunks:
        k = len(chunk)
        if k == 0:
            continue
        if chunk.null_count or not pa.types.is_list(chunk.type) or not pa.types.is_float64(chunk.type.value_type):
            return None
        offs = np.frombuffer(chunk.buffers()[1], np.int32, count=chunk.offset + k + 1)[chunk.offset:]
        if not np.all(np.diff(offs) == 4):
            return None
        flat = chunk.flatten()  # this chunk's numbers, whatever its offset
        if flat.null_count:
            return None
        vals = np.frombuffer(flat.buffers()[1], np.float64, count=flat.offset + len(flat))[flat.offset:]
        if not np.isfinite(vals).all():
            return None
        parts.append(vals.reshape(-1, 4))
    return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros((0, 4)))
