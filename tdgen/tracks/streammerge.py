"""Merging big COCO-VID files in bounded memory: what ``tdgen merge`` runs.

:func:`merge_files` writes what reading every input, :func:`merge.merge_tracksets` and
:func:`cocovid.write_cocovid` would write for the same inputs (the same records, ids,
categories, warnings and errors), without holding any input as a TrackSet:

1. Pass 1 reads each input once, ``BLOCK`` bytes at a time. Everything but the ``annotations``
   array (the "skeleton": videos, images, categories, ...) goes through the normal reader. The
   annotations are parsed by pyarrow block by block, checked with the reader's own rules (the
   column rules of :mod:`tdgen.tracks.arrowcols`, the checks against images, categories and
   videos of :mod:`tdgen.tracks.cocovid_checks`: the same errors, in the same order) and reduced
   to a few integer columns: ids, frame rows, categories, tracks (about 30 bytes a box).
2. The merge is planned on those columns with the rules of the in-memory merge.
3. Pass 2 writes a temporary file: the head (videos, images) by the normal writer, then each
   input's annotation bytes, read again and rewritten where a value changes (ids offset,
   categories matched, tracks renumbered, keys renamed, added or dropped) or copied where none
   does, then the tail; the file is renamed into place at the end. No Python object is made per
   box, and no text is made for a value that does not change.

Rewriting keeps each record's own spelling of everything else (key order, ``bbox`` digits), so
the file equals the in-memory merge's output after parsing (numbers compare by value: ``12`` in
an input may stay ``12`` where the writer would put ``12.0``), not byte for byte. Inputs this path
does not reproduce exactly (pretty-printed JSON, ``null`` values, string track ids, boxes not in
image order, nested values or escapes in a file whose ids change, ...) are merged in memory
instead, as are small inputs (below ``STREAM_MIN_BYTES``), MOT or YouTube-VIS inputs, and every
merge that drops or maps categories (``MergeOptions.drop_categories`` / ``category_map``: the
rules of :mod:`tdgen.tracks.classes` run on whole TrackSets, so such a merge holds its inputs in
memory).
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import os
import re
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

import numpy as np
import orjson

from .cocovid_checks import AnnotationChecks, CategoryIndex, ImageIndex, duplicate_id, make_tracks
from .cocovid_write import FLAVORS, CocovidDoc, _ids_or_renumber, atomic_stream
from .jsonbulk import _arrow, _digits, _ndigits
from ..errors import AnnotationError, OutputError
from .merge import (CategoryMerge, MergeOptions, check_names, check_prefixes, merge_tracksets, prefix_for,
                    prefixed, subsample_rows)
from .trackset import Frames, TrackSet, Videos

try:  # a core dependency; without it every merge takes the in-memory path
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    # the fast reader's column rules, so that both give up on the same values
    from .arrowcols import box_matrix, flag_column, float_column, int_column
except ImportError:  # pragma: no cover
    pa = None

__all__ = ["MergeResult", "merge_files", "STREAM_MIN_BYTES"]

STREAM_MIN_BYTES = 8 << 20  # below this the in-memory merge is as fast and needs no care
BLOCK = 16 << 20  # bytes of annotations parsed at a time
PARSE_BLOCK = 4 << 20  # pyarrow's block: a few per BLOCK, so its threads share the work
WORKERS = 2  # pieces rewritten at the same time
SPLIT = 1 << 15  # records per piece rewritten
MAX_DEFERRED = 8  # blocks parsed ahead of the skeleton before waiting for it
_WHAT = "a COCO-VID JSON file"


_LIBC: Any = None


def _trim() -> None:
    """Hand memory freed by a finished phase back to the OS. glibc keeps freed heap memory for
    reuse, so without this each phase's leftovers add up in the peak resident size."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)
    if pa is not None:
        pa.default_memory_pool().release_unused()


class _Restart(Exception):
    """The guessed skeleton was wrong: read the input again with the right one."""


class _Unsupported(Exception):
    """The input is valid or not, but this path cannot tell exactly: use the in-memory merge."""


@dataclass
class MergeResult:
    """What was written, for the summary the CLI prints."""

    output: Path
    num_videos: int
    num_frames: int
    num_tracks: int
    num_boxes: int
    base_videos: int
    base_frames: int
    base_boxes: int
    warnings: list[str] = field(default_factory=list)
    streamed: bool = False  # False: the in-memory merge wrote it


def merge_files(base: str | Path, extras: Sequence[str | Path], output: str | Path,
                options: MergeOptions = MergeOptions(), flavor: str | None = None, *,
                stream_min_bytes: int = STREAM_MIN_BYTES) -> MergeResult:
    """Merge ``extras`` into ``base`` (annotation files or MOT/YouTube-VIS sources) into ``output``.

    Same rules, output and errors as reading every input, :func:`merge.merge_tracksets` and
    :func:`cocovid.write_cocovid`; big COCO-VID inputs are streamed (see the module docstring),
    except when ``options`` drops or maps categories: that merge is made in memory.
    ``output`` is written atomically; on an error nothing is written.
    """
    if flavor is not None and flavor not in FLAVORS:
        raise ValueError(f"unknown flavour {flavor!r}; expected one of {FLAVORS}")
    paths = [Path(base), *(Path(p) for p in extras)]
    output = Path(output)
    if pa is not None and not options.edits_categories and _streamable(paths, stream_min_bytes):
        try:
            return _stream_merge(paths, output, options, flavor)
        except _Unsupported:
            pass
    return _merge_in_memory(paths, output, options, flavor)


def _streamable(paths: list[Path], min_bytes: int) -> bool:
    from .io import detect_format

    try:
        if any(detect_format(p) != "cocovid" for p in paths):
            return False
        return max(p.stat().st_size for p in paths) >= min_bytes
    except (OSError, AnnotationError):
        return False  # the in-memory path reports it, in its order


def _merge_in_memory(paths: list[Path], output: Path, options: MergeOptions, flavor: str | None) -> MergeResult:
    from .cocovid import write_cocovid
    from .io import read_tracks

    base_ts = read_tracks(paths[0])
    extra_ts = [read_tracks(p) for p in paths[1:]]
    merged = merge_tracksets(base_ts, extra_ts, options)
    write_cocovid(merged, output, flavor)
    return MergeResult(output, merged.num_videos, merged.num_frames, merged.num_tracks, merged.num_boxes,
                       base_ts.num_videos, base_ts.num_frames, base_ts.num_boxes, list(merged.warnings))


# --------------------------------------------------------------------------- reading (pass 1)
_START = re.compile(rb'"annotations"\s*:\s*\[')
_END = re.compile(rb"\}\s*\](?=\s*[,}])")  # the last record's '}' and the array's ']'
_WS = b" \t\r\n"
_LBRACE, _RBRACE, _COMMA, _SPACE, _NL, _COLON, _QUOTE = b'{}, \n:"'

_ANN_SCHEMA = None


def _schema() -> "pa.Schema":
    global _ANN_SCHEMA
    if _ANN_SCHEMA is None:
        i, f = pa.int64(), pa.float64()
        _ANN_SCHEMA = pa.schema([("id", i), ("image_id", i), ("category_id", i), ("bbox", pa.list_(f)),
                                 ("area", f), ("iscrowd", i), ("instance_id", i), ("track_id", i),
                                 ("visibility", f), ("mot_conf", f), ("mot_instance_id", f), ("video_id", i)])
    return _ANN_SCHEMA


class _Window:
    """Bytes ``[pos, pos + hi)`` of a file in one reusable buffer, read a block at a time."""

    def __init__(self, f: BinaryIO, block: int, start: int = 0):
        self.f, self.block = f, block
        self.raw = bytearray(2 * block + 64)
        self.arr = np.frombuffer(self.raw, np.uint8)
        self.mv = memoryview(self.raw)
        f.seek(start)
        self.pos, self.lo, self.hi = start, 0, 0
        self.eof = False

    def more(self) -> bool:
        """Drop the bytes before ``lo`` and read up to a block more; False at the end of the file."""
        if self.eof:
            return False
        keep = self.hi - self.lo
        if keep > len(self.raw) - self.block:
            raise _Unsupported  # one record bigger than a block: not an annotation file we stream
        if self.lo:
            self.arr[:keep] = self.arr[self.lo:self.hi]
            self.pos += self.lo
            self.lo, self.hi = 0, keep
        got = 0
        while got < self.block:
            n = self.f.readinto(self.mv[self.hi + got:self.hi + self.block])
            if not n:
                self.eof = True
                break
            got += n
        self.hi += got
        return got > 0

    def release(self) -> None:
        self.mv.release()
        self.arr = self.raw = None


def _given(got: tuple | None) -> tuple:
    """A column the fast reader's rules accept, else :class:`_Unsupported` (the reader says why)."""
    if got is None:
        raise _Unsupported
    return got


class _Part:
    """One input after pass 1: its skeleton TrackSet (no boxes) and compact box columns.

    The skeleton is parsed first (the end of the annotations array is guessed from the end of
    the file, and checked when the array has been read), so every block of records is checked
    against the images and categories as it is parsed, and only a few integer columns are kept.
    """

    def __init__(self, path: Path):
        self.path, self.file = path, str(path)

    def read(self) -> "_Part":
        """Pass 1 for this input alone."""
        self.locate()
        self.scan(self.guess_skeleton())
        return self

    def locate(self) -> None:
        """Open the file, read up to the annotations and guess where they end (quick)."""
        from .files import open_regular_file

        self._f = open_regular_file(self.path, _WHAT)
        try:
            f = self._f
            size = os.fstat(f.fileno()).st_size
            self._head_bytes, self._body = self._head(f)
            self._close = None if self._body is None else self._guess_close(f, self._body, size)
        except OSError as e:
            self._f.close()
            raise AnnotationError(self.path, None, f"cannot read file ({e.strerror or e})") from None
        except BaseException:
            self._f.close()
            raise

    def guess_skeleton(self) -> TrackSet | None:
        """The skeleton if the guess of :meth:`locate` is right (``None``: it is not, or the skeleton
        is bad; :meth:`scan` then finds out). Slow, independent of other inputs: may run in a
        thread while another input (or this one) is scanned."""
        head = self._head_bytes
        if self._body is None:  # no annotations: the whole file is the skeleton
            return self._skeleton(head)
        if self._close is None:
            return None
        try:
            with open(self.path, "rb") as f:
                return self._skeleton(head + self._read_from(f, self._close))
        except (_Unsupported, AnnotationError, OSError):
            return None

    def prepare(self) -> TrackSet | None:
        self.locate()
        return self.guess_skeleton()

    def scan(self, guess: "TrackSet | Future | None") -> None:
        """Read and check every record, given the guessed skeleton (or a future of it)."""
        f = self._f
        try:
            head, body, close = self._head_bytes, self._body, self._close
            if body is None:
                self._reset(guess.result() if isinstance(guess, Future) else guess)
                self._finish()
                return
            ts = guess
            for attempt in range(3):
                if ts is None:  # the guess was wrong: find the end for real, then the skeleton
                    if attempt == 2:
                        raise _Unsupported  # pragma: no cover - the located end is where the scan ends
                    close = self._locate_close(f, body)
                    try:
                        ts = self._skeleton(head + self._read_from(f, close))
                    except AnnotationError:
                        raise _Unsupported from None  # bad input (or a layout not foreseen): the reader says
                self._reset(ts)
                try:
                    actual = self._scan(f, body)
                    if self.ts is None:
                        self._adopt(self._pending.result())
                except _Restart:
                    ts = None
                    continue
                if actual == close:
                    break
                ts = None
            del head, self._head_bytes  # the guess is resolved: nothing reads it any more
            self._finish()
        except OSError as e:
            raise AnnotationError(self.path, None, f"cannot read file ({e.strerror or e})") from None
        finally:
            f.close()

    # ---------------------------------------------------------------- structure
    @staticmethod
    def _read_from(f: BinaryIO, pos: int) -> bytes:
        f.seek(pos)
        return f.read()

    def _head(self, f: BinaryIO) -> tuple[bytes, int | None]:
        """The bytes up to and including the annotations' ``[``, and the file offset after it."""
        w = _Window(f, 1 << 20)
        w.more()
        head: list[bytes] = []
        while True:
            m = _START.search(w.raw, w.lo, w.hi)
            if m:
                head.append(bytes(w.mv[w.lo:m.end()]))
                return b"".join(head), w.pos + m.end()
            keep = max(w.lo, w.hi - 64)  # the key may straddle two blocks
            head.append(bytes(w.mv[w.lo:keep]))
            w.lo = keep
            if not w.more():
                head.append(bytes(w.mv[w.lo:w.hi]))
                return b"".join(head), None

    @staticmethod
    def _guess_close(f: BinaryIO, body: int, size: int, window: int = 1 << 20) -> int | None:
        """Where the annotations' ``]`` probably is: the first ``]`` near the end of the file that
        follows a ``}`` and after which the rest of the file parses as the rest of an object."""
        start = max(body, size - window)
        f.seek(start)
        tail = f.read()
        arr = np.frombuffer(tail, np.uint8)
        i = np.flatnonzero(arr[2:] == ord("]")) + 2
        prev, prev2 = arr[i - 1], arr[i - 2]
        for i in i[(prev == _RBRACE) | ((prev == _SPACE) & (prev2 == _RBRACE))][:16].tolist():
            try:
                orjson.loads(b'{"a":[' + tail[i:])
            except orjson.JSONDecodeError:
                continue
            return start + i
        return None

    def _locate_close(self, f: BinaryIO, body: int) -> int:
        """The annotations' ``]`` found by reading the whole array (no parsing)."""
        w = _Window(f, BLOCK, body)
        w.more()
        while w.lo < w.hi and w.raw[w.lo] in _WS:
            w.lo += 1
        if w.lo < w.hi and w.raw[w.lo] == ord("]"):  # an empty array
            return w.pos + w.lo
        while True:
            m = _END.search(w.raw, w.lo, w.hi)
            if m:
                return w.pos + m.end() - 1
            w.lo = max(w.lo, w.hi - 64)
            if not w.more():
                break
        raise _Unsupported  # no end of the array: malformed, the exact reader locates the error

    def _skeleton(self, data: bytes) -> TrackSet:
        from .cocovid import parse_cocovid
        from .jsonscan import first_invalid_utf8

        if first_invalid_utf8(data) is not None:
            raise _Unsupported  # the exact reader names the byte in the whole file
        ts = parse_cocovid(data, self.file)
        del data
        _trim()
        if ts.num_boxes or ts.style.get("image_only"):
            raise _Unsupported  # "annotations" found inside something else first, or an image-only file
        return ts

    # ---------------------------------------------------------------- the records
    def _set_skeleton(self, ts: TrackSet) -> None:
        self.ts = ts
        cats = CategoryIndex(np.array([int(c["id"]) for c in ts.categories], dtype=np.int64))
        self.small_categories = cats.table is not None  # category ids then fit in int32
        frame_vid = ts.videos.id[ts.frames.video] if ts.num_frames else np.zeros(0, np.int64)
        self.checks.set_skeleton(ImageIndex(ts.frames.id), cats, frame_vid, ts.frames.width, ts.frames.height)

    def _reset(self, ts: TrackSet | Future | None) -> None:
        """Empty columns; ``ts`` the skeleton, or a future of the guessed one."""
        self.ts = None
        self._pending: Future | None = None
        self._deferred: list[tuple] = []
        self.checks = AnnotationChecks(self.file)  # the reader's checks, block by block
        if isinstance(ts, Future):
            self._pending = ts
        elif ts is not None:
            self._set_skeleton(ts)
        # pieces of the array for pass 2: (file offset of the first record, end, records)
        self.chunks: list[tuple[int, int, int]] = []
        self.block_rows: list[int] = []  # records per parsed block (the columns' parts)
        self.n = 0
        self.backslash = False  # some string has an escape: the key scan of pass 2 cannot run
        self.nested = False  # a '}' that does not end a record (nested object, or in a string)
        self.unordered = False  # boxes not in image order: the reader reorders them
        self.last_frame = -1
        self.cols: dict[str, list] = {k: [] for k in ("id", "frame", "cat", "inst", "inst_ok", "inst_len", "tid",
                                                      "tid_ok", "tid_len", "vid_ok")}
        self.area_missing: list[tuple[np.ndarray, np.ndarray]] = []  # (record, w * h)
        self.crowd_missing: list[np.ndarray] = []
        self.has_vis = self.has_conf = False
        self.n_iid = self.n_tid = 0
        self.ids_increasing = True
        self.last_id = None

    def _scan(self, f: BinaryIO, body: int) -> int:
        """Parse and check every record; return the file offset of the array's ``]``."""
        w = _Window(f, BLOCK, body)
        try:
            w.more()
            while True:
                while w.lo < w.hi and w.raw[w.lo] in _WS:
                    w.lo += 1
                if w.lo < w.hi or not w.more():
                    break
            if w.lo >= w.hi:
                raise _Unsupported  # the file ends inside the array
            if w.raw[w.lo] == ord("]"):
                return w.pos + w.lo
            while True:
                close = self._block(w, w.eof)
                if close is not None:
                    return close
                if not w.more():
                    close = self._block(w, True)
                    if close is None:
                        raise _Unsupported  # no end of the array: malformed, the exact reader locates it
                    return close
        finally:
            w.release()

    def _block(self, w: _Window, at_eof: bool) -> int | None:
        """Parse the whole records in the window. Returns the file offset of the array's ``]``
        if it is in the window (all records parsed), else ``None`` (the rest is kept)."""
        raw, arr, lo, hi = w.raw, w.arr, w.lo, w.hi
        every = np.flatnonzero(arr[lo:hi] == _RBRACE) + lo
        closes = every[every + 3 < hi]  # what follows must be in the window
        nxt = arr[closes + 1]
        # the end of the array: '}' then ']' (compact) or spaces and ']'
        ends = closes[(nxt == ord("]")) | (nxt == _SPACE)]
        end = None
        if ends.size <= 64 and not at_eof:
            for c in ends.tolist():
                m = _END.match(raw, c, hi)
                if m:
                    end = (c + 1, m.end() - 1)
                    break
        else:  # many candidates (nested arrays of objects), or the last bytes: the plain search
            m = _END.search(raw, lo, hi)
            if m is None and at_eof:
                raise _Unsupported
            if m is not None:
                end = (m.start() + 1, m.end() - 1)
        stop = end[0] if end is not None else hi
        if raw.find(b"\n", lo, stop) >= 0 or raw.find(b"\r", lo, stop) >= 0:
            raise _Unsupported  # pretty-printed
        closes = closes[closes < stop]
        after = arr[closes + 1]
        two = arr[closes + 2]
        sep = closes[(after == _COMMA) & ((two == _LBRACE) | ((two == _SPACE) & (arr[closes + 3] == _LBRACE)))]
        if end is None:
            if sep.size == 0:
                return None
            cut = int(sep[-1]) + 1  # the records up to the last separator; the rest waits for more bytes
            last = cut + 1
            n_closes = int(np.searchsorted(every, sep[-1], side="right"))
            sep = sep[:-1]
        else:
            cut, last = end[0], None
            n_closes = int(np.searchsorted(every, cut, side="left"))
        arr[sep + 1] = _NL
        start = lo
        while start < cut and raw[start] in b" \t":
            start += 1
        rows = sep.size + 1
        self._parse(w, lo, cut, rows, n_closes)
        self.block_rows.append(rows)
        # pass 2 rewrites SPLIT records at a time (a few MB: its temporaries stay small)
        for k in range(0, rows, SPLIT):
            a = start if k == 0 else int(sep[k - 1]) + 2 + (raw[int(sep[k - 1]) + 2] == _SPACE)
            b = cut if k + SPLIT >= rows else int(sep[k + SPLIT - 1]) + 1
            self.chunks.append((w.pos + a, w.pos + b, min(SPLIT, rows - k)))
        if end is not None:
            return w.pos + end[1]
        w.lo = last
        return None

    def _parse(self, w: _Window, lo: int, cut: int, rows: int, n_closes: int) -> None:
        raw = w.raw
        # single-byte searches (memchr) first; the literal only when its first letter is there
        if raw.find(b"\\", lo, cut) >= 0:
            self.backslash = True
        if n_closes != rows:
            self.nested = True
        # null (absent to the reader, so written back absent), NaN/Infinity (pyarrow takes them,
        # JSON does not)
        for letter, lit in ((b"u", b"null"), (b"N", b"NaN"), (b"I", b"Infinity")):
            if raw.find(letter, lo, cut) >= 0 and raw.find(lit, lo, cut) >= 0:
                raise _Unsupported
        if w.arr[lo:cut].max() >= 0x80:
            try:
                codecs.utf_8_decode(w.mv[lo:cut], "strict", True)
            except UnicodeDecodeError:
                raise _Unsupported from None
        try:
            t = pj.read_json(pa.BufferReader(pa.py_buffer(w.mv[lo:cut])),
                             read_options=pj.ReadOptions(block_size=PARSE_BLOCK),
                             parse_options=pj.ParseOptions(explicit_schema=_schema(),
                                                           unexpected_field_behavior="ignore"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise _Unsupported from None
        if t.num_rows != rows:
            raise _Unsupported  # two objects on one line (a missing comma) or similar
        c, base = self.cols, self.n
        req = {}
        for name in ("id", "image_id", "category_id"):
            v, ok = _given(int_column(t.column(name)))
            if ok is not None:
                raise _Unsupported  # missing: the reader names the record
            req[name] = v
        ids = req["id"]
        c["id"].append(ids)
        if ids.size:
            if self.ids_increasing and ((self.last_id is not None and ids[0] <= self.last_id)
                                        or not (ids[1:] > ids[:-1]).all()):
                self.ids_increasing = False
            self.last_id = int(ids[-1])
        for key, name in (("inst", "instance_id"), ("tid", "track_id")):
            col = t.column(name)
            if key == "tid" and col.null_count == rows:  # the usual case: kept as "none here"
                c[key].append(None)
                c[key + "_ok"].append(None)
                c[key + "_len"].append(None)
                continue
            v, ok = _given(int_column(col))
            present = np.ones(rows, bool) if ok is None else ok
            count = int(np.count_nonzero(present))
            if key == "inst":
                self.n_iid += count
            else:
                self.n_tid += count
            c[key].append(v)
            c[key + "_ok"].append(present)
            c[key + "_len"].append(_ndigits(v).astype(np.uint8))
        vcol = t.column("video_id")
        vid = vid_ok = None
        if vcol.null_count < rows:
            vid, ok = _given(int_column(vcol))
            vid_ok = np.ones(rows, bool) if ok is None else ok
        c["vid_ok"].append(vid_ok)
        _, ok = _given(flag_column(t.column("iscrowd")))
        if ok is not None:
            self.crowd_missing.append(np.flatnonzero(~ok) + base)
        box = _given(box_matrix(t.column("bbox")))
        if box.shape[0] != rows:
            raise _Unsupported
        edges = self.checks.boxes(base, ids, box)
        _, ok = _given(float_column(t.column("area")))
        if ok is not None:
            miss = np.flatnonzero(~ok)
            self.area_missing.append((miss + base, box[miss, 2] * box[miss, 3]))
        del box
        for name in ("visibility", "mot_conf"):
            if t.column(name).null_count < rows:
                if name == "visibility":
                    self.has_vis = True
                else:
                    self.has_conf = True
        _given(float_column(t.column("mot_instance_id"), integral=True))
        del t
        block = (base, ids, req["image_id"], req["category_id"], vid, vid_ok, edges)
        self.n += rows
        if self.ts is None:  # the skeleton is still being parsed: check this block when it is there
            self._deferred.append(block)
            if self._pending is not None and (self._pending.done() or len(self._deferred) >= MAX_DEFERRED):
                self._adopt(self._pending.result())
        else:
            self._check(block)

    def _adopt(self, ts: TrackSet | None) -> None:
        """Take the (guessed) skeleton and check the blocks parsed before it was there."""
        self._pending = None
        if ts is None:
            raise _Restart  # the guess failed: find the skeleton for real and read again
        self._set_skeleton(ts)
        deferred, self._deferred = self._deferred, []
        for block in deferred:
            self._check(block)

    def _check(self, block: tuple) -> None:
        """The checks against the skeleton (images, categories, videos, frame sizes) of one block."""
        base, ids, img, cat, vid, vid_ok, edges = block
        c = self.cols
        rows = ids.size
        frame = self.checks.records(base, ids, img, cat, vid, vid_ok, edges)
        if rows and (frame[0] < self.last_frame or np.any(frame[1:] < frame[:-1])):
            self.unordered = True
        if rows:
            self.last_frame = int(frame[-1])
        c["frame"].append(frame.astype(np.int32))
        c["cat"].append(cat.astype(np.int32) if self.small_categories else cat)

    # ---------------------------------------------------------------- the rules
    def _finish(self) -> None:
        ts, file, c = self.ts, self.file, self.cols
        fr = ts.frames

        sizes = self.block_rows

        def cat(key: str, dtype: Any) -> np.ndarray:
            parts = c.pop(key)
            if any(p is None for p in parts):  # "none in this chunk": zeros
                parts = [np.zeros(k, dtype) if p is None else p for p, k in zip(parts, sizes)]
            return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, dtype))

        ids = cat("id", np.int64)
        n = ids.size
        # the reader's order: duplicate ids, then image ids, categories, video ids, boxes
        if not self.ids_increasing:
            err = duplicate_id(file, "annotations", ids)
            if err is not None:
                raise err
        notes = self.checks.finish()
        if self.unordered:
            raise _Unsupported
        warnings, style = ts.warnings, ts.style
        warnings.extend(notes)
        frame = cat("frame", np.int32)
        vrow = fr.video.astype(np.int32)[frame] if n else np.zeros(0, np.int32)
        # tracks, as the reader makes them (the columns are big: no copies that are not needed)
        inst, inst_ok = cat("inst", np.int64), cat("inst_ok", bool)
        self.inst_len = cat("inst_len", np.uint8)
        if self.n_tid:
            tid, tid_ok = cat("tid", np.int64), cat("tid_ok", bool)
            self.tid_len = cat("tid_len", np.uint8)
            eff = np.where(inst_ok, inst, tid)
            no_inst = ~(inst_ok | tid_ok) | (eff < 0)
        else:
            for k in ("tid", "tid_ok", "tid_len"):
                c.pop(k)
            tid = tid_ok = self.tid_len = None
            eff = inst
            no_inst = ~inst_ok | (eff < 0)
        track = np.where(no_inst, 0, eff) if no_inst.any() else eff  # eff itself is not changed below
        del eff
        track = make_tracks(track, no_inst, vrow, warnings, style)
        del vrow, no_inst
        if self.n_tid or self.n_iid:
            style["flavor"] = "bytetrack" if self.n_tid > self.n_iid else "mmdet"
        vid_ok = cat("vid_ok", bool) if any(p is not None for p in c["vid_ok"]) else None
        c.pop("vid_ok", None)
        style["ann_video_id"] = vid_ok is not None and bool(vid_ok.any())
        ts.source_format = f"cocovid-{style['flavor']}"
        # what pass 2 needs: text lengths of the values it may rewrite, and whether the track
        # column still spells each key's own value
        self.inst_ok = inst_ok
        self.tid_ok = tid_ok if self.n_tid else None
        self.track_is_inst = _equal_where(track, inst, inst_ok)
        self.track_is_tid = _equal_where(track, tid, tid_ok) if self.n_tid else True
        del inst, tid
        self.vid_ok = vid_ok if style["ann_video_id"] else None
        self.ids = _compact(ids)
        self.frame = frame
        self.cat = cat("cat", np.int32)
        self.track = _compact(track)
        self.area_missing = ((np.concatenate([a for a, _ in self.area_missing]),
                              np.concatenate([b for _, b in self.area_missing])) if self.area_missing else None)
        self.crowd_missing = np.concatenate(self.crowd_missing) if self.crowd_missing else None
        del self.cols, self.checks
        _trim()


def _equal_where(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> bool:
    """``a[mask] == b[mask]`` everywhere, without the copies when the mask is all true."""
    if mask.all():
        return a is b or bool(np.array_equal(a, b))
    return bool(np.array_equal(a[mask], b[mask]))


def _compact(a: np.ndarray) -> np.ndarray:
    """``a`` as int32 when its values fit (half the memory), else as it is."""
    if a.dtype == np.int64 and (a.size == 0 or (a.min() >= -(2**31) and a.max() < 2**31)):
        return a.astype(np.int32)
    return a


def _distinct(v: np.ndarray) -> np.ndarray:
    """``np.unique(v)``, by counting when the values are in a small range."""
    if v.size and v.min() >= 0 and v.max() < (1 << 20):
        return np.flatnonzero(np.bincount(v)).astype(np.int64)
    return np.unique(v)


def _rank(t: np.ndarray) -> np.ndarray:
    """``np.unique(t, return_inverse=True)[1]``, by a lookup table when the ids are compact."""
    if t.size == 0:
        return t.astype(np.int64)
    lo, hi = int(t.min()), int(t.max())
    if hi - lo < 8 * t.size + 1024:
        used = np.zeros(hi - lo + 1, bool)
        used[t - lo] = True
        table = np.cumsum(used) - 1
        return table[t - lo].astype(np.int64)
    return np.unique(t, return_inverse=True)[1].reshape(-1).astype(np.int64)


# --------------------------------------------------------------------------- the merge
@dataclass
class _PartPlan:
    """How one input's boxes go into the output."""

    part: _Part
    box_keep: np.ndarray | None  # boxes kept by the subsample (None: all)
    img_by_frame: np.ndarray  # output image id of each of the input's frames (-1: dropped)
    vid_by_frame: np.ndarray  # output video id of each frame's video
    id_offset: int
    id_renumber: bool  # ids become 1..n (+ offset), as the writer does with non-positive ids
    cat_map: tuple[np.ndarray, np.ndarray] | None  # (input ids, output ids) when they differ
    track_out: np.ndarray | None  # output track of every box (None: the input's tracks)
    id_edit: bool = False
    img_edit: bool = False
    vid_edit: bool = False


class _Plan:
    """The merge of :func:`merge.merge_tracksets` on the inputs' skeletons and box columns."""

    def __init__(self, parts: list[_Part], options: MergeOptions, flavor: str | None):
        base = parts[0]
        prefixes = options.prefixes
        check_prefixes(len(parts) - 1, prefixes)
        cats = CategoryMerge(base.ts.categories, base.ts.source)
        warnings = list(base.ts.warnings)
        videos_out, frames_out, plans = [], [], []
        top_v = top_i = top_a = top_t = 0
        n_tracks: list[int] = []
        for e, part in enumerate(parts):
            ts = part.ts
            videos, frames = ts.videos, ts.frames
            rows = None if e == 0 else subsample_rows(ts.num_videos, options.ratio, options.max_videos,
                                                      options.seed + e - 1)
            keep_frame = box_keep = None
            if rows is not None:
                keep_frame = np.isin(frames.video, rows)
                new_vid = np.full(ts.num_videos, -1, np.int64)
                new_vid[rows] = np.arange(rows.size)
                videos = videos.take(rows)
                frames = frames.take(np.flatnonzero(keep_frame))
                frames.video = new_vid[frames.video]
                box_keep = keep_frame[part.frame]
            cat_k = part.cat if box_keep is None else part.cat[box_keep]
            cat_map = None
            if e:
                src, dst = cats.add(ts.categories, _distinct(cat_k), ts.source, options.add_categories)
                if not np.array_equal(src, dst):
                    cat_map = (src, dst)
            del cat_k
            vid_out = _ids_or_renumber(videos.id) + top_v
            img_out = _ids_or_renumber(frames.id) + top_i
            ids_k = part.ids if box_keep is None else part.ids[box_keep]
            renumber = not (ids_k.size and ids_k.min() >= 1)  # ids are unique: the reader checked
            a_max = (ids_k.size if renumber else (int(ids_k.max()) if ids_k.size else 0)) + top_a
            t_k = part.track if box_keep is None else part.track[box_keep]
            rank = _rank(t_k)
            if e == 0:
                t_out = t_k if (t_k.size == 0 or t_k.min() >= 1) else rank + 1
            else:
                t_out = rank + top_t + 1
            n_tracks.append(int(rank.max()) + 1 if rank.size else 0)
            track_out = None
            if t_out is not t_k and not np.array_equal(t_out, t_k):
                track_out = np.zeros(part.n, _compact(t_out).dtype)
                if box_keep is None:
                    track_out[:] = t_out
                else:
                    track_out[box_keep] = t_out
            del t_k, rank, ids_k
            if keep_frame is None:
                img_by_frame = img_out
                vid_by_frame = vid_out[frames.video]
            else:
                img_by_frame = np.full(ts.num_frames, -1, np.int64)
                img_by_frame[keep_frame] = img_out
                vid_by_frame = np.full(ts.num_frames, -1, np.int64)
                vid_by_frame[keep_frame] = vid_out[frames.video]
            pp = _PartPlan(part, box_keep, img_by_frame, vid_by_frame, top_a, renumber, cat_map, track_out)
            pp.id_edit = renumber or top_a != 0
            pp.img_edit = not np.array_equal(img_out, frames.id)
            pp.vid_edit = not np.array_equal(vid_out, videos.id)
            plans.append(pp)
            if vid_out.size:
                top_v = max(top_v, int(vid_out.max()))
            if img_out.size:
                top_i = max(top_i, int(img_out.max()))
            top_a = max(top_a, a_max)
            if t_out.size:
                top_t = max(top_t, int(t_out.max()))
            if e:
                prefix = prefix_for(prefixes, e - 1)
                videos = replace(videos, name=prefixed(prefix, videos.name))
                frames = replace(frames, file_name=prefixed(prefix, frames.file_name))
                warnings.extend(f"{ts.source}: {w}" for w in ts.warnings)
            videos_out.append(replace(videos, id=vid_out))
            frames_out.append(replace(frames, id=img_out))
        v_off = np.cumsum([0] + [len(v) for v in videos_out])
        merged_v = Videos.concat(videos_out)
        merged_f = Frames.concat(frames_out)
        merged_f.video = np.concatenate([f.video + v_off[i] for i, f in enumerate(frames_out)])
        for what, ids in (("video", merged_v.id), ("image", merged_f.id)):
            srt = np.sort(ids)
            if srt.size > 1 and not (srt[1:] != srt[:-1]).all():
                raise OutputError(f"merge produced duplicate {what} ids (a bug: please report it)")
        check_names(merged_v.name, merged_f.file_name)
        skeleton = TrackSet(videos=merged_v, frames=merged_f, boxes=TrackSet.empty().boxes,
                            categories=cats.categories, meta=dict(base.ts.meta), source=base.ts.source,
                            source_format=base.ts.source_format, warnings=warnings, style=dict(base.ts.style))
        skeleton.check()
        if top_t >= 2**31:  # the writer numbers tracks 1..n then: each input's range stays apart
            done = 0
            for pp, k in zip(plans, n_tracks):
                t = pp.part.track if pp.track_out is None else pp.track_out
                sel = t if pp.box_keep is None else t[pp.box_keep]
                out = np.zeros(pp.part.n, np.int64)
                if pp.box_keep is None:
                    out[:] = _rank(sel) + done + 1
                else:
                    out[pp.box_keep] = _rank(sel) + done + 1
                pp.track_out = out
                done += k
        self.plans = plans
        self.counts = (skeleton.num_videos, skeleton.num_frames, base.ts.num_videos, base.ts.num_frames, base.n)
        self.warnings = list(warnings)
        for part in parts:  # what pass 2 needs of each skeleton; the rest goes
            fr = part.ts.frames
            part.in_img, part.in_vid = fr.id, part.ts.videos.id[fr.video]
            part.ts = None
        self.num_tracks = int(sum(n_tracks))
        self.num_boxes = int(sum(pp.part.n if pp.box_keep is None else int(pp.box_keep.sum()) for pp in plans))
        mot = any(p.has_vis for p in parts) and any(p.has_conf for p in parts)
        self.doc = CocovidDoc(skeleton, flavor, mot=mot, num_instances=self.num_tracks)
        _trim()

    def emitters(self) -> list["_Emitter"]:
        """One per input; made before anything is written, as they may refuse an input."""
        return [_Emitter(pp, self.doc.track_key, self.doc.write_ann_video) for pp in self.plans]

    def result(self, output: Path) -> MergeResult:
        videos, frames, base_videos, base_frames, base_boxes = self.counts
        return MergeResult(output, videos, frames, self.num_tracks, self.num_boxes, base_videos, base_frames,
                           base_boxes, list(self.warnings), streamed=True)


def _stream_merge(paths: list[Path], output: Path, options: MergeOptions, flavor: str | None) -> MergeResult:
    stats = [p.stat() for p in paths]
    parts = [_Part(p) for p in paths]
    # pass 1, one input after the other; the next input's skeleton is parsed meanwhile (mostly
    # Python, while this input's records are mostly pyarrow, which lets go of the GIL)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tdgen-skeleton") as pool:
            parts[0].locate()
            guess = pool.submit(parts[0].guess_skeleton)  # parsed while the records are
            ready = pool.submit(parts[1].prepare) if len(parts) > 1 else None
            parts[0].scan(guess)
            for k in range(1, len(parts)):
                guess = ready.result()  # its error, if any, comes after the errors of the inputs before it
                ready = pool.submit(parts[k + 1].prepare) if k + 1 < len(parts) else None
                parts[k].scan(guess)
    finally:
        for part in parts:  # a prepared input whose turn did not come
            f = getattr(part, "_f", None)
            if f is not None:
                f.close()
    plan = _Plan(parts, options, flavor)
    for p, st in zip(paths, stats):
        now = p.stat()
        if (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise _Unsupported  # changed since it was read: read it again, whole
    emitters = plan.emitters()
    pieces = (piece for em in emitters for piece in em.pieces())
    with atomic_stream(output) as f:
        for piece in plan.doc.iter_bytes(annotations=pieces):
            f.write(piece)
    return plan.result(output)


# --------------------------------------------------------------------------- writing (pass 2)
_P = 16  # zero bytes before a chunk in the buffer, so 8-byte reads before a position stay inside
_CONSTS = (b"", b",", b'"instance_id":', b'"track_id":', b',"instance_id":', b',"track_id":', b',"video_id":',
           b',"iscrowd":0', b',"area":')
_EMPTY, _SEP = 0, 1
_CONST = {c: i for i, c in enumerate(_CONSTS)}
_DIGIT_OR_MINUS = np.zeros(256, bool)
_DIGIT_OR_MINUS[list(b"-0123456789")] = True
_VALUE_END = np.zeros(256, bool)
_VALUE_END[list(b",} ")] = True


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Read ``len(view)`` bytes at ``offset`` into ``view`` (thread-safe: no shared file position)."""
    done = 0
    while done < len(view):
        if hasattr(os, "preadv"):
            n = os.preadv(fd, [view[done:]], offset + done)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(fd, len(view) - done, offset + done)
            view[done:done + len(data)] = data
            n = len(data)
        if n == 0:
            break
        done += n
    return done


def _u64(b: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(b, "little"))


def _literal_at(words: np.ndarray, pos: np.ndarray, lit: bytes) -> np.ndarray:
    """Whether the bytes at each position start with ``lit`` (8-byte words, overlapping)."""
    m = len(lit)
    if m == 0:
        return np.ones(pos.size, bool)
    if m < 8:
        return (words[pos] & np.uint64((1 << (8 * m)) - 1)) == _u64(lit)
    ok = np.ones(pos.size, bool)
    for o in sorted({*range(0, m - 8, 8), m - 8}):
        ok &= words[pos + o] == _u64(lit[o:o + 8])
    return ok


@functools.lru_cache(maxsize=None)
def _gap_after(key: bytes) -> "re.Pattern[bytes]":
    """The text from a value's end (or the ``{``) to the next value, when the next key is ``key``."""
    return re.compile(rb"(?:, ?| ?)\"" + re.escape(key) + rb"\":( ?)")


@functools.lru_cache(maxsize=None)
def _gap_before(key: bytes) -> "re.Pattern[bytes]":
    """``key`` and its integer value as the last thing before a given position."""
    return re.compile(rb"(, ?)\"" + re.escape(key) + rb"\":( ?)(-?[0-9]+)( ?)$")


class _Edits:
    """Replacements ``[a, z) -> const pref + value`` collected for one chunk."""

    def __init__(self):
        self.parts: list[tuple] = []  # (a, z, pref, kind, ival, text)

    def add(self, a, z, pref, kind: int = 0, ival=None, text=None) -> None:
        n = len(a)
        if n == 0:
            return
        pref = np.broadcast_to(np.asarray(pref, np.int64), (n,))
        self.parts.append((np.asarray(a, np.int64), np.asarray(z, np.int64), pref, kind,
                           None if ival is None else np.asarray(ival, np.int64), text))


class _Emitter:
    """One input's annotation bytes for the output, piece by piece (the pieces pass 1 recorded)."""

    def __init__(self, pp: _PartPlan, track_key: str, write_video: bool):
        self.pp, self.part = pp, pp.part
        part = self.part
        self.key, self.other = (b"instance_id", b"track_id") if track_key == "instance_id" else (b"track_id",
                                                                                               b"instance_id")
        key_ok = part.inst_ok if track_key == "instance_id" else part.tid_ok
        other_ok = part.tid_ok if track_key == "instance_id" else part.inst_ok
        n = part.n
        self.key_ok = key_ok if key_ok is not None else np.zeros(n, bool)
        self.other_ok = other_ok if other_ok is not None else np.zeros(n, bool)
        self.key_len = part.inst_len if track_key == "instance_id" else part.tid_len
        self.other_len = part.tid_len if track_key == "instance_id" else part.inst_len
        spelled = part.track_is_inst if track_key == "instance_id" else part.track_is_tid
        self.track_edit = pp.track_out is not None or not spelled
        self.write_video = write_video
        self.vid_ok = part.vid_ok
        self.in_img = part.in_img  # input image id of each frame
        self.in_vid = part.in_vid  # input video id of each frame
        self.verbatim = (pp.box_keep is None and not pp.id_edit and not pp.img_edit and pp.cat_map is None
                         and not self.track_edit and not self.other_ok.any() and self.key_ok.all()
                         and part.crowd_missing is None and part.area_missing is None
                         and (self.vid_ok is None if not write_video
                              else (self.vid_ok is not None and self.vid_ok.all() and not pp.vid_edit)))
        if not self.verbatim and (part.backslash or part.nested):
            raise _Unsupported  # the key scan needs plain records
        self.local = threading.local()  # one buffer per worker thread
        self.kept_before = None
        if pp.id_renumber and pp.box_keep is not None:
            self.kept_before = np.cumsum(pp.box_keep) - pp.box_keep  # ordinal among the kept boxes

    def pieces(self) -> Iterator[memoryview | bytes]:
        """The records of each chunk, rewritten (two chunks at a time, in worker threads: numpy and
        Arrow release the GIL) or copied as they are."""
        part = self.part
        with open(part.path, "rb") as f:
            fd = f.fileno()
            if self.verbatim:
                # one buffer, reused: the consumer copies each piece before asking for the next
                buf = bytearray(max((e - s for s, e, _ in part.chunks), default=0))
                view = memoryview(buf)
                for s, e, _ in part.chunks:
                    if _pread_into(fd, view[:e - s], s) != e - s:
                        raise _Unsupported  # the file changed
                    yield view[:e - s]
                return
            starts = np.cumsum([0] + [k for _, _, k in part.chunks])
            jobs = [(s, e - s, int(r0), rows) for (s, e, rows), r0 in zip(part.chunks, starts)]
            with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="tdgen-merge") as pool:
                pending: deque = deque()
                for job in jobs:
                    pending.append(pool.submit(self._chunk, fd, *job))
                    if len(pending) > WORKERS:
                        out = pending.popleft().result()
                        if out is not None:
                            yield out
                while pending:
                    out = pending.popleft().result()
                    if out is not None:
                        yield out

    # ---------------------------------------------------------------- one chunk
    def _chunk(self, fd: int, s: int, L: int, r0: int, rows: int) -> memoryview | None:
        pp, part = self.pp, self.part
        g = np.arange(r0, r0 + rows)
        keep = np.ones(rows, bool) if pp.box_keep is None else pp.box_keep[r0:r0 + rows]
        if not keep.any():
            return None
        cap = _P + L + rows * 64 + (1 << 16)
        B = getattr(self.local, "buf", None)
        if B is None or B.size < cap:
            B = self.local.buf = np.zeros(max(cap, int(0 if B is None else B.size * 1.25)), np.uint8)
        if _pread_into(fd, memoryview(B)[_P:_P + L], s) != L:
            raise _Unsupported  # the file changed
        data = B[_P:_P + L]
        starts = np.flatnonzero(data == _LBRACE) + _P
        if starts.size != rows or B[_P + L - 1] != _RBRACE:
            raise _Unsupported
        nxt = starts[1:]
        one = (B[nxt - 1] == _COMMA) & (B[nxt - 2] == _RBRACE)
        two = (B[nxt - 1] == _SPACE) & (B[nxt - 2] == _COMMA) & (B[nxt - 3] == _RBRACE)
        if not np.all(one | two):
            raise _Unsupported
        ends = np.empty(rows, np.int64)
        ends[:-1] = np.where(one, nxt - 1, nxt - 2)
        ends[-1] = _P + L
        frame = part.frame[r0:r0 + rows]
        ed = _Edits()
        # where each rewritten key's value is: one scan of the key colons of the chunk
        need = []
        if pp.id_edit:
            need.append(b"id")
        if pp.img_edit:
            need.append(b"image_id")
        if pp.cat_map is not None:
            need.append(b"category_id")
        key_ok, other_ok = self.key_ok[r0:r0 + rows], self.other_ok[r0:r0 + rows]
        if self.track_edit and key_ok.any():
            need.append(self.key)
        if other_ok.any():
            need.append(self.other)
        vid_ok = self.vid_ok[r0:r0 + rows] if self.vid_ok is not None else None
        if vid_ok is not None and vid_ok.any() and (not self.write_video or pp.vid_edit):
            need.append(b"video_id")
        found = self._locate(B, L, starts, ends, need, {
            b"id": (None, lambda: _ndigits(part.ids[r0:r0 + rows])),
            b"image_id": (None, lambda: _ndigits(self.in_img[frame])),
            b"category_id": (None, lambda: _ndigits(part.cat[r0:r0 + rows].astype(np.int64))),
            self.key: (key_ok, lambda: self.key_len[r0:r0 + rows]),
            self.other: (other_ok, lambda: self.other_len[r0:r0 + rows]),
            b"video_id": (vid_ok, lambda: _ndigits(self.in_vid[frame])),
        })
        close = ends - 1  # each record's '}'

        def sel(recs):  # kept ones among record indices
            return recs[keep[recs]]

        if pp.id_edit:
            recs, c, vs, ve = found[b"id"]
            k = keep[recs]
            if pp.id_renumber:
                before = (g[recs] if self.kept_before is None else self.kept_before[g[recs]])
                vals = before + 1 + pp.id_offset
            else:
                vals = part.ids[g[recs]].astype(np.int64) + pp.id_offset
            ed.add(vs[k], ve[k], _EMPTY, 1, vals[k])
        if pp.img_edit:
            recs, c, vs, ve = found[b"image_id"]
            k = keep[recs]
            ed.add(vs[k], ve[k], _EMPTY, 1, pp.img_by_frame[frame[recs[k]]])
        if pp.cat_map is not None:
            recs, c, vs, ve = found[b"category_id"]
            k = keep[recs]
            src, dst = pp.cat_map
            cv = part.cat[g[recs[k]]].astype(np.int64)
            ed.add(vs[k], ve[k], _EMPTY, 1, dst[np.searchsorted(src, cv)])
        tracks = part.track if pp.track_out is None else pp.track_out
        key_q = b'"' + self.key + b'":'
        if self.key in found:  # the key is there: its value
            recs, c, vs, ve = found[self.key]
            k = keep[recs]
            ed.add(vs[k], ve[k], _EMPTY, 1, tracks[g[recs[k]]])
        if self.other in found:  # the other key: renamed, or dropped where the key is there too
            recs, c, vs, ve = found[self.other]
            k = keep[recs]
            recs, c, vs, ve = recs[k], c[k], vs[k], ve[k]
            both = key_ok[recs]
            ks = c - (len(self.other) + 2)
            ed.add(ks[~both], ve[~both], _CONST[key_q], 1, tracks[g[recs[~both]]])
            a, z = self._deletion(B, ks[both], ve[both])
            ed.add(a, z, _EMPTY)
        none = sel(np.flatnonzero(~key_ok & ~other_ok))
        if none.size:
            ed.add(close[none], close[none], _CONST[b"," + key_q], 1, tracks[g[none]])
        if b"video_id" in found:
            recs, c, vs, ve = found[b"video_id"]
            k = keep[recs]
            recs, c, vs, ve = recs[k], c[k], vs[k], ve[k]
            if self.write_video:
                ed.add(vs, ve, _EMPTY, 1, pp.vid_by_frame[frame[recs]])
            else:
                a, z = self._deletion(B, c - len(b'"video_id"'), ve)
                ed.add(a, z, _EMPTY)
        if self.write_video:
            miss = sel(np.flatnonzero(~vid_ok) if vid_ok is not None else np.arange(rows))
            ed.add(close[miss], close[miss], _CONST[b',"video_id":'], 1, pp.vid_by_frame[frame[miss]])
        if part.crowd_missing is not None:
            cm = part.crowd_missing
            recs = sel(cm[(cm >= r0) & (cm < r0 + rows)] - r0)
            ed.add(close[recs], close[recs], _CONST[b',"iscrowd":0'])
        if part.area_missing is not None:
            am, av = part.area_missing
            w = (am >= r0) & (am < r0 + rows)
            recs, vals = am[w] - r0, av[w]
            k = keep[recs]
            recs, vals = recs[k], vals[k]
            if recs.size:
                ed.add(close[recs], close[recs], _CONST[b',"area":'], 2, text=pc.cast(_arrow(vals), pa.string()))
        gaps = not keep.all()
        if gaps:  # dropped records (a subsample): cut them with the separators around them
            kept = np.flatnonzero(keep)
            if kept[0] > 0:
                ed.add([_P], [starts[kept[0]]], _EMPTY)
            jump = np.flatnonzero(np.diff(kept) > 1)
            ed.add(ends[kept[jump]], starts[kept[jump + 1]], _SEP)
            if kept[-1] < rows - 1:
                ed.add([ends[kept[-1]]], [_P + L], _EMPTY)
        return self._assemble(B, L, ed)

    def _locate(self, B: np.ndarray, L: int, starts: np.ndarray, ends: np.ndarray, need: list[bytes],
                how: dict) -> dict:
        """Per key: (record indices, colon, value start, value end) of the records that have it.

        Records written by one program share a layout, so the keys are first walked from each
        record's start and from its end, through integer values of known length, checking at every
        record that the text between two values is the same as in the first record. Keys out of
        reach of that walk (after a float, say) are found by a scan of the chunk's key colons.
        """
        if not need:
            return {}
        rows = starts.size
        words = np.ndarray((B.size - 7,), dtype="<u8", buffer=B, strides=(1,))
        found: dict[bytes, tuple] = {}
        every = np.arange(rows)
        first = bytes(B[starts[0]:ends[0]])
        try:
            keys = [k.encode() for k in orjson.loads(first)]
        except (orjson.JSONDecodeError, UnicodeEncodeError):
            keys = []

        def walkable(key: bytes):
            spec = how.get(key)
            if spec is None:
                return None
            mask, lens = spec
            if mask is not None and not mask.all():
                return None
            return lens

        # from the start of each record
        cursor, c0 = starts + 1, 1
        for key in keys:
            lens = walkable(key)
            m = _gap_after(key).match(first, c0) if lens is not None else None
            if m is None:
                break
            gap = m.group(0)
            if not _literal_at(words, cursor, gap).all():
                break
            vs = cursor + len(gap)
            ve = vs + np.asarray(lens(), np.int64)
            if not (_DIGIT_OR_MINUS[B[vs]].all() and _VALUE_END[B[ve]].all()):
                break
            found[key] = (every, vs - 1 - len(m.group(1)), vs, ve)
            cursor, c0 = ve, m.end() + int(ve[0] - vs[0])
        # from the end of each record
        cursor, e0 = ends - 1, len(first) - 1  # the '}'
        for key in reversed(keys):
            lens = walkable(key) if key not in found else None
            m = _gap_before(key).search(first, 0, e0) if lens is not None else None
            if m is None:
                break
            ve = cursor - len(m.group(4))
            vs = ve - np.asarray(lens(), np.int64)
            gap = m.group(1) + b'"' + key + b'":' + m.group(2)
            g = vs - len(gap)
            if not (_literal_at(words, g, gap).all() and _DIGIT_OR_MINUS[B[vs]].all()
                    and _literal_at(words, ve, first[m.end(3):e0 + 1][:1]).all()):
                break
            found[key] = (every, vs - 1 - len(m.group(2)), vs, ve)
            cursor, e0 = g, m.start()
        rest = [k for k in need if k not in found]
        if not rest:
            return found
        data = B[_P:_P + L]
        colons = np.flatnonzero(data == _COLON) + _P
        colons = colons[B[colons - 1] == _QUOTE]  # key colons (no escapes: a quote ends a string)
        last8 = words[colons - 8]
        for key in rest:
            quoted = b'"' + key + b'"'
            q = len(quoted)
            if q <= 8:
                hits = colons[(last8 >> np.uint64(8 * (8 - q))) == _u64(quoted)]
            else:
                cand = np.flatnonzero(last8 == _u64(quoted[-8:]))
                hits = colons[cand[words[colons[cand] - q] == _u64(quoted[:8])]]
            mask, lens = how[key]
            recs = np.searchsorted(starts, hits, side="right") - 1
            expect = every if mask is None else np.flatnonzero(mask)
            if not np.array_equal(recs, expect):
                raise _Unsupported  # a key twice in a record, or where the columns say it is not
            vs = hits + 1 + (B[hits + 1] == _SPACE)
            ve = vs + np.asarray(lens(), np.int64)[expect]
            if not (_DIGIT_OR_MINUS[B[vs]].all() and _VALUE_END[B[ve]].all()):
                raise _Unsupported  # not the plain integer the columns hold (2.0, -0, ...)
            found[key] = (recs, hits, vs, ve)
        return found

    @staticmethod
    def _deletion(B: np.ndarray, ks: np.ndarray, ve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The span that removes ``"key":value`` starting at ``ks`` with one of its commas."""
        before1 = B[ks - 1]
        a = np.where(before1 == _COMMA, ks - 1, np.where((before1 == _SPACE) & (B[ks - 2] == _COMMA), ks - 2, ks))
        first = a == ks  # the record's first key: take the comma after it instead
        after = B[ve] == _COMMA
        z = np.where(first & after, ve + 1 + (B[ve + 1] == _SPACE), ve)
        return a, z

    def _assemble(self, B: np.ndarray, L: int, ed: _Edits) -> memoryview:
        if ed.parts:
            a = np.concatenate([p[0] for p in ed.parts])
            z = np.concatenate([p[1] for p in ed.parts])
            pref = np.concatenate([p[2] for p in ed.parts])
            kind = np.concatenate([np.full(len(p[0]), p[3], np.int8) for p in ed.parts])
            ival = np.concatenate([p[4] if p[4] is not None else np.zeros(len(p[0]), np.int64) for p in ed.parts])
            texts = [p[5] for p in ed.parts if p[5] is not None]
            tpos = np.concatenate([np.full(len(p[0]), -1, np.int64) if p[5] is None else np.arange(len(p[0]))
                                   for p in ed.parts])
            if len(ed.parts) > 1:
                # parts are each in file order; interleave them by position (edits never overlap)
                order = self._order(ed, a)
                a, z, pref, kind, ival, tpos = a[order], z[order], pref[order], kind[order], ival[order], tpos[order]
        else:
            a = z = pref = ival = tpos = np.zeros(0, np.int64)
            kind = np.zeros(0, np.int8)
            texts = []
        m = a.size
        cuts = np.empty(2 * m + 2, np.int64)
        cuts[0], cuts[-1] = _P, _P + L
        cuts[1:-1:2], cuts[2:-1:2] = a, z
        if np.any(cuts[1:] < cuts[:-1]):
            raise _Unsupported  # overlapping edits: a record shaped in a way not foreseen
        is_int = kind == 1
        mat, width, lens = _digits(ival[is_int])
        nv = int(is_int.sum())
        if texts:
            text = pa.concat_arrays(texts) if len(texts) > 1 else texts[0]
            t_off = np.frombuffer(text.buffers()[1], np.int32, count=len(text) + 1 + text.offset)[text.offset:]
            t_blob = np.frombuffer(text.buffers()[2], np.uint8)[t_off[0]:t_off[-1]]
            t_ends = (t_off[1:] - t_off[0]).astype(np.int64)
        else:
            t_blob, t_ends = np.zeros(0, np.uint8), np.zeros(0, np.int64)
        consts = np.frombuffer(b"".join(_CONSTS), np.uint8)
        c_ends = np.cumsum([len(c) for c in _CONSTS])
        tail = _P + L
        need = tail + nv * width + t_blob.size + consts.size
        if need > B.size:
            nb = np.zeros(need + (1 << 16), np.uint8)
            nb[:tail] = B[:tail]
            B = self.local.buf = nb
        B[tail:tail + nv * width] = mat.reshape(-1)
        t0 = tail + nv * width
        B[t0:t0 + t_blob.size] = t_blob
        c0 = t0 + t_blob.size
        B[c0:c0 + consts.size] = consts
        cell = tail + np.arange(nv, dtype=np.int64) * width
        digit_offs = np.empty(2 * nv, np.int64)
        digit_offs[0::2] = cell + width - lens
        digit_offs[1::2] = cell + width
        offsets = np.concatenate([cuts, digit_offs, t0 + t_ends, c0 + c_ends]).astype(np.int32)
        first_text = 2 * m + 1 + 2 * nv
        first_const = first_text + t_ends.size
        val = np.full(m, first_const + _EMPTY, np.int64)
        val[is_int] = 2 * m + 2 + 2 * np.arange(nv)
        is_text = kind == 2
        val[is_text] = first_text + tpos[is_text]
        pieces = 2 * np.arange(m + 1, dtype=np.int64)
        if np.any(pref != _EMPTY):
            idx = np.empty((m, 3), np.int64)
            idx[:, 1] = first_const + pref
            idx[:, 2] = val
        else:
            idx = np.empty((m, 2), np.int64)
            idx[:, 1] = val
        idx[:, 0] = pieces[:-1]
        idx = np.append(idx.reshape(-1), pieces[-1])
        arr = pa.Array.from_buffers(pa.binary(), offsets.size - 1, [None, pa.py_buffer(offsets), pa.py_buffer(B)])
        out = arr.take(_arrow(idx))
        total = int(np.frombuffer(out.buffers()[1], np.int32, count=len(out) + 1)[-1])
        return memoryview(out.buffers()[2])[:total]

    @staticmethod
    def _order(ed: _Edits, a: np.ndarray) -> np.ndarray:
        """Positions order of the edits. When every part has one edit per record in the same
        order (the usual case), interleaving the parts is a reshape; else a sort."""
        n0 = len(ed.parts[0][0])
        if all(len(p[0]) == n0 for p in ed.parts):
            k = len(ed.parts)
            mat = a.reshape(k, n0)
            by_first = np.argsort(mat[:, 0], kind="stable")
            order = (by_first[None, :] * n0 + np.arange(n0)[:, None]).reshape(-1)
            if np.all(a[order][1:] >= a[order][:-1]):
                return order
        return np.argsort(a, kind="stable")
