"""JSON text for many records at once, without a Python object per record.

Integers become decimal text in one vectorised pass (:func:`_digits`), and records are
assembled from constant pieces, integer columns and string columns by one Arrow ``take``
(:func:`_records`). The COCO-VID writer and the streaming merge use them.
"""

from __future__ import annotations

import numpy as np

try:  # the fast paths use it; without it the writer builds dicts
    import pyarrow as pa
except ImportError:  # pragma: no cover
    pa = None

__all__: list[str] = []

_POW10 = np.array([10**k for k in range(1, 19)], dtype=np.int64)
_QUADS = np.frombuffer(b"".join(b"%04d" % i for i in range(10000)), dtype="<u4")


def _ndigits(v: np.ndarray) -> np.ndarray:
    """Length of each integer's decimal text, sign included."""
    return np.searchsorted(_POW10, np.abs(v), side="right") + 1 + (v < 0)


def _digits(v: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """``(matrix of right-aligned decimal texts, its width, text lengths)`` for int64 values."""
    lens = _ndigits(v)
    width = 4 * ((int(lens.max()) + 3) // 4) if v.size else 4
    groups = np.empty((v.size, width // 4), np.uint32)
    a = np.abs(v)
    for g in range(width // 4 - 1, -1, -1):
        groups[:, g] = _QUADS[a % 10000]
        a = a // 10000
    mat = groups.view(np.uint8).reshape(v.size, width)
    neg = np.flatnonzero(v < 0)
    if neg.size:
        mat[neg, width - lens[neg]] = ord("-")
    return mat, width, lens


def _arrow(a: np.ndarray) -> "pa.Array":
    """A numpy array as an Arrow array without a copy (``pa.array`` would import pandas: 0.3 s)."""
    a = np.ascontiguousarray(a)
    return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), a.size, [None, pa.py_buffer(a)])


def _records(n: int, columns: list) -> bytes:
    """``n`` records, each the concatenation of ``columns`` in order, records one after the other.

    A column is ``bytes`` (the same text in every record), an int64 array (decimal integers) or
    ``(blob, ends)`` (record ``i``'s text is ``blob[ends[i-1]:ends[i]]``). Built by one Arrow
    ``take`` over a buffer holding every piece: no Python object per record.
    """
    consts = [c for c in columns if isinstance(c, bytes)]
    const_index = {c: i for i, c in enumerate(dict.fromkeys(consts))}
    const_list = list(const_index)
    parts, offsets = [], [np.zeros(1, np.int64)]
    pos = 0
    blob = b"".join(const_list)
    parts.append(np.frombuffer(blob, np.uint8))
    offsets.append(np.cumsum([len(c) for c in const_list], dtype=np.int64))
    pos = len(blob)
    n_el = len(const_list)
    idx = np.empty((n, len(columns)), np.int64)
    for j, col in enumerate(columns):
        if isinstance(col, bytes):
            idx[:, j] = const_index[col]
        elif isinstance(col, tuple):
            data, ends = col
            parts.append(np.frombuffer(data, np.uint8))
            offsets.append(pos + np.asarray(ends, np.int64))
            idx[:, j] = n_el + np.arange(n)
            n_el += n
            pos += len(data)
        else:
            mat, width, lens = _digits(np.asarray(col, np.int64))
            parts.append(mat.reshape(-1))
            cell = pos + np.arange(n, dtype=np.int64) * width
            both = np.empty(2 * n, np.int64)
            both[0::2], both[1::2] = cell + width - lens, cell + width
            offsets.append(both)
            idx[:, j] = n_el + 2 * np.arange(n) + 1
            n_el += 2 * n
            pos += mat.size
    buf = np.concatenate(parts)
    arr = pa.Array.from_buffers(pa.binary(), n_el, [None, pa.py_buffer(np.concatenate(offsets).astype(np.int32)),
                                                   pa.py_buffer(buf)])
    out = arr.take(_arrow(idx.reshape(-1)))
    total = int(np.frombuffer(out.buffers()[1], np.int32, count=len(out) + 1)[-1])
    return out.buffers()[2].to_pybytes()[:total]


def _plain_strings(names: list) -> tuple[bytes, np.ndarray] | None:
    """``(blob, ends)`` of the UTF-8 bytes of ``names`` when orjson writes each one as those bytes
    in quotes (no quote, backslash or control character to escape), else ``None``."""
    try:
        data = "".join(names).encode()
    except (TypeError, UnicodeEncodeError):
        return None  # not all strings, or a lone surrogate: the dict path says what orjson says
    raw = np.frombuffer(data, np.uint8)
    if (raw < 0x20).any() or (raw == 0x22).any() or (raw == 0x5C).any():
        return None
    if raw.size == 0 or raw.max() < 0x80:  # ASCII: one byte a character
        lens = np.fromiter(map(len, names), np.int64, len(names))
    else:
        lens = np.fromiter((len(x.encode()) for x in names), np.int64, len(names))
    return data, np.cumsum(lens)
