"""Bounded-memory JSON loading for large COCO-style files.

A BDD100K-scale COCO-VID file holds millions of annotation objects. Parsing it whole builds
millions of Python dicts at once (gigabytes). Here the two big top-level arrays (``images`` and
``annotations``) are decoded in slices of a few megabytes, and each slice is handed to a
callback that turns it into columns before the next one is decoded. Everything else in the file
(videos, categories, info, ...) is small and parsed normally.

Slices are cut at ``}, {`` separators. A cut that falls inside a string or a nested array makes
the slice fail to parse, in which case the slice is extended to the next separator, so a wrong
cut can cost time but never correctness. Anything unexpected falls back to a whole-file parse.
"""

from __future__ import annotations

import codecs
import re
from typing import Any, Callable

import numpy as np
import orjson

__all__ = ["JSONError", "load_json", "scan_top_level", "first_invalid_utf8", "key_used_once",
           "SAFE_INT", "STREAMED"]

_SEP = re.compile(rb"\}\s*,\s*\{")
_END = re.compile(rb"\}\s*\]")
_WS = b" \t\r\n"


class JSONError(ValueError):
    """Malformed JSON, with a 1-based line and column."""

    def __init__(self, msg: str, line: int, column: int):
        self.line, self.column = line, column
        super().__init__(f"line {line}, column {column}: invalid JSON ({msg})")


def _line_col(data: bytes, pos: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return line, col


class _Streamed:
    def __repr__(self) -> str:
        return "<streamed>"


#: What a reader that streams a top-level array puts in its place in the returned document
#: (``None`` would be ambiguous with a literal ``null``).
STREAMED = _Streamed()

#: The largest integer magnitude an integer field may hold: every reader and writer of JSON
#: (float64 ones, JavaScript) keeps integers up to 2**53 - 1 exact, beyond it they drift.
SAFE_INT = 2**53 - 1
_HIGH_BITS = 0x8080808080808080


def first_invalid_utf8(data: bytes | bytearray | memoryview | np.ndarray, chunk: int = 32 << 20) -> int | None:
    """The offset of the first byte that is not valid UTF-8 in ``data``, or ``None``.

    JSON text must be UTF-8; checking once, up front, gives every reader the same located
    error whatever parser runs next. Pure ASCII (the usual case) is recognised at memory speed
    by OR-ing 8 bytes at a time; otherwise the text is decoded in chunks (nothing is kept).
    """
    buf = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    n = buf.size
    ascii_only = True
    for a in range(0, n, chunk):
        seg = buf[a:min(a + chunk, n)]
        k = seg.size // 8 * 8
        high = int(np.bitwise_or.reduce(seg[:k].view(np.uint64))) & _HIGH_BITS if k else 0
        if high or (seg.size > k and int(seg[k:].max()) >= 0x80):
            ascii_only = False
            break
    if ascii_only:
        return None
    mv = memoryview(buf)
    pos = 0
    while pos < n:
        end = min(pos + chunk, n)
        try:
            _, used = codecs.utf_8_decode(mv[pos:end], "strict", end == n)
        except UnicodeDecodeError as e:
            return pos + e.start
        pos += used  # a sequence cut by the chunk's end is decoded with the next chunk
        if used == 0:  # cannot happen with chunk > 3, but never loop forever
            return pos
    return None


def load_json(data: bytes):
    """Parse a whole document, raising :class:`JSONError` with a location on failure."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        pos = getattr(e, "pos", 0) or 0
        line, col = _line_col(data, pos)
        msg = str(e.args[0]) if e.args else "parse error"
        msg = msg.split(":")[0]
        raise JSONError(msg, line, col) from None


def _try(piece: bytes):
    try:
        out = orjson.loads(b"[" + piece + b"]")
    except orjson.JSONDecodeError:
        return None
    return out if isinstance(out, list) else None


def _scan_array(data: bytes, pos: int, on_chunk: Callable[[list], None], chunk_bytes: int) -> int | None:
    """Decode the array of objects whose ``[`` is at ``pos``; return the index after ``]``.

    Returns ``None`` when the array does not look like a plain array of objects (the caller
    then falls back to a whole-file parse).
    """
    n = len(data)
    i = pos + 1
    while i < n and data[i] in _WS:
        i += 1
    if i < n and data[i] == ord("]"):
        return i + 1
    if i >= n or data[i] != ord("{"):
        return None
    start = end_from = i
    while True:
        search_from = min(start + chunk_bytes, n)
        while True:
            sep = _SEP.search(data, search_from)
            limit = sep.start() + 2 if sep else n
            # Does the array end before this cut? (A `}]` inside an element fails to parse.)
            for end in _END.finditer(data, end_from, limit):
                items = _try(data[start:end.start() + 1])
                if items is not None:
                    on_chunk(items)
                    return end.end()
            end_from = max(end_from, limit - 2)
            if sep is None:
                return None
            items = _try(data[start:sep.start() + 1])
            if items is not None:
                break
            search_from = sep.end()  # the cut fell inside an element: take a longer slice
        on_chunk(items)
        start = sep.end() - 1
        end_from = max(end_from, start)


def key_used_once(skeleton: bytes, key: str) -> bool:
    """Whether ``"key":`` occurs once in ``skeleton`` (a document with its big arrays cut out).

    A second occurrence may be a repeated top-level key (the last one wins in a full parse, not
    the streamed one) or a nested key of that name: either way the caller parses the whole file.
    """
    return len(re.findall(rb'"' + re.escape(key.encode()) + rb'"\s*:', skeleton)) == 1


def scan_top_level(
    data: bytes,
    make_handlers: Callable[[], dict[str, Callable[[list], None]]],
    *,
    chunk_bytes: int = 8 << 20,
    placeholder: Any = None,
):
    """Parse a top-level JSON document, streaming the arrays that the handlers name in slices.

    ``make_handlers()`` returns ``{key: handler}``; each handler is called with consecutive
    slices (lists of decoded elements) of that top-level array. If the streaming pass has to be
    abandoned, ``make_handlers()`` is called again for a fresh set before the whole-file parse,
    so handlers never see an element twice. The returned object is the document with each
    streamed key set to ``placeholder`` (keys whose value is not an array keep their value).
    Raises :class:`JSONError` for malformed input.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if len(data) > 4 * chunk_bytes:
        handlers = make_handlers()
        spans = []
        for key in handlers:
            m = re.search(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*\[', data)
            if m:
                spans.append((m.end() - 1, key))
        spans.sort()
        cuts = []
        for pos, key in spans:
            end = _scan_array(data, pos, handlers[key], chunk_bytes)
            if end is None:
                break
            cuts.append((pos, end, key))
        if len(cuts) == len(spans):
            parts, last = [], 0
            for pos, end, _ in cuts:
                parts.append(data[last:pos])
                parts.append(b"[]")
                last = end
            parts.append(data[last:])
            joined = b"".join(parts)
            try:
                skeleton = orjson.loads(joined)
            except orjson.JSONDecodeError:
                skeleton = None
            if isinstance(skeleton, dict) and all(skeleton.get(k) == [] for _, _, k in cuts) \
                    and all(key_used_once(joined, k) for _, _, k in cuts):
                for _, _, key in cuts:
                    skeleton[key] = placeholder
                return skeleton
    obj = load_json(data)
    if not isinstance(obj, dict):
        return obj
    handlers = make_handlers()
    for key, handler in handlers.items():
        value = obj.get(key)
        if isinstance(value, list):
            obj[key] = placeholder
            for i in range(0, len(value), 100_000):
                handler(value[i:i + 100_000])
    return obj
