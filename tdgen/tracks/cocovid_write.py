"""Writing COCO-VID: every rule of the document in one place, as a dict or as a stream of bytes.

:class:`CocovidDoc` makes the writer's decisions once for a TrackSet (flavour, which optional
keys are written, id renumbering) and builds the records in slices. :func:`cocovid.cocovid_dict`
assembles them into one dict; :func:`write_cocovid_stream` writes the same document slice by
slice, so a multi-million-box set never exists as one list of dicts. The streamed bytes are the
bytes ``orjson.dumps(cocovid_dict(ts))`` gives (orjson's compact output of a list is the
comma-joined output of its items). :func:`atomic_stream` is the temp-file-then-rename writer
both use.
"""

from __future__ import annotations

import contextlib
import errno
import math
import mmap
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import orjson

try:  # the fast paths use it; without it the writer builds dicts
    import pyarrow as pa
except ImportError:  # pragma: no cover
    pa = None

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: plain buffered writes there
    fcntl = None

from .. import __version__
from ..atomic import named_os_error
from ..errors import OutputError
from .trackset import TrackSet

__all__ = ["CocovidDoc", "atomic_stream", "write_cocovid_stream", "FLAVORS"]

FLAVORS = ("mmdet", "bytetrack")
ROWS = 65536  # records per slice: a few tens of MB of dicts at most
# keys the document writes itself; a meta key among them would replace one in place (dict order)
_DOC_KEYS = ("info", "licenses", "categories", "videos", "images", "annotations", "num_instances")


def _num(x: float) -> int | float:
    """JSON number: integral floats become ints so files stay compact and exact."""
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _integral(a: np.ndarray) -> bool:
    """Whether every value is finite, integral and exact as an int (then written as ints)."""
    return bool(np.isfinite(a).all() and np.all(a == np.round(a)) and (a.size == 0 or np.abs(a).max() < 2**53))


def _as_list(a: np.ndarray, as_int: bool) -> list:
    return a.astype(np.int64).tolist() if as_int else a.tolist()


# ------------------------------------------------------------------ integers as text, in bulk
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
    parts, offsets, first_of = [], [np.zeros(1, np.int64)], {}
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


def _ids_or_renumber(ids: np.ndarray) -> np.ndarray:
    """``ids`` if they are positive and unique, else 1..n (the writer's ids)."""
    if ids.size and ids.min() >= 1:
        s = np.sort(ids)
        if s.size < 2 or np.all(s[1:] != s[:-1]):
            return ids
    return np.arange(1, ids.size + 1, dtype=np.int64)


class CocovidDoc:
    """The COCO-VID document for ``ts`` in ``flavor`` (default: the flavour it was read in).

    ``mot`` overrides "the boxes carry MOT fields" and ``num_instances`` the track count, for a
    caller that writes the annotations itself (the streaming merge).
    """

    def __init__(self, ts: TrackSet, flavor: str | None = None, *, info: dict | None = None,
                 mot: bool | None = None, num_instances: int | None = None):
        flavor = flavor or ts.style.get("flavor", "mmdet")
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavour {flavor!r}; expected one of {FLAVORS}")
        self.ts, self.flavor = ts, flavor
        self.same = same = flavor == ts.style.get("flavor")
        self.style = style = ts.style if same else {}
        self.mot = ts.has_mot_fields() if mot is None else mot
        self.vid_ids = _ids_or_renumber(ts.videos.id)
        self.img_ids = _ids_or_renumber(ts.frames.id)
        self.ann_ids = _ids_or_renumber(ts.boxes.id)
        track = ts.boxes.track
        if track.size and (track.min() < 1 or track.max() >= 2**31):
            _, inv = np.unique(track, return_inverse=True)
            track = inv.astype(np.int64) + 1
        self.track = track
        self._num_instances = num_instances

        # top-level keys around the three arrays
        meta = dict(ts.meta)
        self.info = info if info is not None else meta.pop("info", None) or {
            "description": "written by tdgen", "version": __version__}
        meta.pop("info", None)
        self.licenses = meta.pop("licenses", [])
        self.write_num_instances = bool(style.get("num_instances", self.mot and flavor == "mmdet")
                                        or "num_instances" in meta)
        meta.pop("num_instances", None)
        self.meta = meta

        # videos
        self.write_name = flavor == "mmdet" or style.get("video_name", False)
        self.write_file_name = flavor == "bytetrack" or style.get("video_file_name", False)
        self.write_size = style.get("video_size", True)

        # images
        fr = ts.frames
        self.frame_base = 0 if flavor == "mmdet" else 1
        self.write_mot_fid = fr.number is not None and (style.get("mot_frame_id", False) if same
                                                        else (self.mot and flavor == "mmdet"))
        self.write_prev_next = flavor == "bytetrack" and style.get("prev_next", True)

        # annotations
        self.track_key = None if (style.get("image_only") and same) else (
            "instance_id" if flavor == "mmdet" else "track_id")
        self.write_ann_video = bool(style.get("ann_video_id", True) if same else True)
        self._ann_ready = False

    # ------------------------------------------------------------------ pieces
    def num_instances(self) -> int:
        if self._num_instances is not None:
            return self._num_instances
        return int(np.unique(self.track).size)

    def categories(self) -> list[dict]:
        return [dict(c) for c in self.ts.categories]

    def videos(self) -> list[dict]:
        ts = self.ts
        out = []
        fps = ts.videos.fps
        vextra = ts.videos.extra
        for v in range(ts.num_videos):
            d: dict[str, Any] = {"id": int(self.vid_ids[v])}
            name = str(ts.videos.name[v])
            if self.write_name:
                d["name"] = name
            if self.write_file_name:
                d["file_name"] = name
            if fps is not None and not math.isnan(fps[v]):
                d["fps"] = _num(float(fps[v]))
            if self.write_size and ts.videos.width[v] > 0:
                d["width"] = int(ts.videos.width[v])
                d["height"] = int(ts.videos.height[v])
            if vextra is not None and vextra[v]:
                d.update(vextra[v])
            out.append(d)
        return out

    def images(self, start: int, stop: int) -> list[dict]:
        fr = self.ts.frames
        sl = slice(start, stop)
        ids = self.img_ids
        f_id = ids[sl].tolist()
        f_vid = self.vid_ids[fr.video[sl]].tolist()
        f_idx = (fr.index[sl] + self.frame_base).tolist()
        f_w, f_h = fr.width[sl].tolist(), fr.height[sl].tolist()
        f_name = fr.file_name[sl].tolist()
        numbers = [_num(x) for x in fr.number[sl].tolist()] if self.write_mot_fid else None
        if self.write_prev_next:
            # the frame before / after in the same video (-1 at a video's ends); index 0 starts a video
            idx = fr.index[sl]
            rows = np.arange(start, stop)
            last = np.ones(stop - start, bool)
            nxt = rows + 1 < len(fr)
            last[nxt] = fr.video[rows[nxt] + 1] != fr.video[rows[nxt]]
            prev = np.where(idx == 0, -1, ids[np.maximum(rows - 1, 0)]).tolist() if len(rows) else []
            nexts = np.where(last, -1, ids[np.minimum(rows + 1, len(fr) - 1)]).tolist() if len(rows) else []
        fextra = fr.extra
        out = []
        for i in range(stop - start):
            d = {"id": f_id[i], "video_id": f_vid[i], "file_name": f_name[i], "height": f_h[i], "width": f_w[i],
                 "frame_id": f_idx[i]}
            if numbers is not None and not math.isnan(numbers[i]):
                d["mot_frame_id"] = numbers[i]
            if self.write_prev_next:
                d["prev_image_id"] = prev[i]
                d["next_image_id"] = nexts[i]
            if fextra is not None and fextra[start + i]:
                d.update(fextra[start + i])
            out.append(d)
        return out

    def images_json(self, start: int, stop: int) -> bytes | None:
        """``orjson.dumps(self.images(start, stop))[1:-1]`` built column-wise, or ``None`` when the
        images have extra keys, odd file names or non-integral frame numbers (the dict path)."""
        fr = self.ts.frames
        if pa is None or fr.extra is not None or stop <= start:
            return None
        sl = slice(start, stop)
        numbers = None
        if self.write_mot_fid:
            num = fr.number[sl]
            if not (np.isfinite(num).all() and np.all(num == np.round(num)) and np.all(np.abs(num) < 2**53)):
                return None
            numbers = num.astype(np.int64)
        names = _plain_strings(fr.file_name[sl].tolist())
        if names is None:
            return None
        ids = self.img_ids
        cols: list = [b'{"id":', ids[sl], b',"video_id":', self.vid_ids[fr.video[sl]], b',"file_name":"', names,
                      b'","height":', fr.height[sl], b',"width":', fr.width[sl], b',"frame_id":',
                      fr.index[sl] + self.frame_base]
        if numbers is not None:
            cols += [b',"mot_frame_id":', numbers]
        if self.write_prev_next:
            rows = np.arange(start, stop)
            nxt = rows + 1 < len(fr)
            last = np.ones(stop - start, bool)
            last[nxt] = fr.video[rows[nxt] + 1] != fr.video[rows[nxt]]
            cols += [b',"prev_image_id":', np.where(fr.index[sl] == 0, -1, ids[np.maximum(rows - 1, 0)]),
                     b',"next_image_id":', np.where(last, -1, ids[np.minimum(rows + 1, len(fr) - 1)])]
        cols.append(b"},")
        return _records(stop - start, cols)[:-1]

    def _prepare_annotations(self) -> None:
        """Whole-column decisions (ints or floats) made once, so every slice agrees."""
        if self._ann_ready:
            return
        b = self.ts.boxes
        area = b.bbox[:, 2] * b.bbox[:, 3]
        if b.area is not None:
            area = np.where(np.isnan(b.area), area, b.area)
        self._area = area
        self._bbox_int = _integral(b.bbox)
        self._area_int = _integral(area)
        self._optional = []
        for key, col, as_int in (("visibility", b.visibility, False), ("mot_conf", b.conf, False),
                                 ("mot_instance_id", b.source_track, True)):
            if col is None:
                continue
            present = ~np.isnan(col)
            if not present.any():
                continue
            values = np.where(present, col, 0)
            self._optional.append((key, values, present, as_int or _integral(values), bool(present.all())))
        self._ann_ready = True

    def annotations(self, start: int, stop: int) -> list[dict]:
        self._prepare_annotations()
        b = self.ts.boxes
        fr = self.ts.frames
        sl = slice(start, stop)
        frame = b.frame[sl]
        cols: list[tuple[str, list]] = [
            ("id", self.ann_ids[sl].tolist()), ("image_id", self.img_ids[frame].tolist()),
            ("category_id", b.category[sl].tolist()), ("bbox", _as_list(b.bbox[sl], self._bbox_int)),
            ("area", _as_list(self._area[sl], self._area_int)), ("iscrowd", b.iscrowd[sl].astype(int).tolist()),
        ]
        if self.track_key is not None:
            cols.append((self.track_key, self.track[sl].tolist()))
        if self.write_ann_video:
            cols.append(("video_id", self.vid_ids[fr.video[frame]].tolist()))
        partial = []
        for key, values, present, as_int, full in self._optional:
            vals = _as_list(values[sl], as_int)
            if full:
                cols.append((key, vals))
            else:
                partial.append((key, vals, present[sl]))
        keys = [k for k, _ in cols]
        anns = [dict(zip(keys, row)) for row in zip(*(c for _, c in cols))] if stop > start else []
        for key, vals, present in partial:
            for i in np.flatnonzero(present).tolist():
                anns[i][key] = vals[i]
        aextra = b.extra
        if aextra is not None:
            for i, e in enumerate(aextra[sl].tolist()):
                if e:
                    anns[i].update(e)
        return anns

    # ------------------------------------------------------------------ whole documents
    def as_dict(self) -> dict:
        ts = self.ts
        out: dict[str, Any] = {"info": self.info, "licenses": self.licenses, "categories": self.categories(),
                               "videos": self.videos(), "images": self.images(0, ts.num_frames),
                               "annotations": self.annotations(0, ts.num_boxes)}
        if self.write_num_instances:
            out["num_instances"] = self.num_instances()
        out.update(self.meta)
        return out

    def iter_bytes(self, annotations: Iterable[bytes | memoryview] | None = None,
                   rows: int = ROWS) -> Iterator[bytes | memoryview]:
        """The document as compact JSON, piece by piece.

        ``annotations`` replaces the records built from the boxes: pieces of comma-separated
        annotation objects (no brackets, no leading or trailing comma; empty pieces are skipped).
        """
        if any(k in self.meta for k in _DOC_KEYS):
            # such a meta key replaces a value in place in the dict: only the dict says where
            if annotations is not None:
                raise ValueError("cannot stream a document whose meta repeats one of its own keys")
            yield orjson.dumps(self.as_dict())
            return
        dumps = orjson.dumps
        yield (b'{"info":' + dumps(self.info) + b',"licenses":' + dumps(self.licenses) + b',"categories":'
               + dumps(self.categories()) + b',"videos":' + dumps(self.videos()) + b',"images":[')
        n = self.ts.num_frames
        for s in range(0, n, rows):
            e = min(s + rows, n)
            text = self.images_json(s, e)
            yield (b"," if s else b"") + (dumps(self.images(s, e))[1:-1] if text is None else text)
        yield b'],"annotations":['
        if annotations is not None:
            # the caller writes the records: the frames are no longer needed (for a merge of big
            # sets they are a good part of the memory), so this document is spent from here on
            self.ts = self.img_ids = self.vid_ids = None
        else:
            m = self.ts.num_boxes
            annotations = (dumps(self.annotations(s, min(s + rows, m)))[1:-1] for s in range(0, m, rows))
        first = True
        for piece in annotations:  # type: ignore[union-attr]
            if not len(piece):
                continue
            if not first:
                yield b","
            first = False
            yield piece
        tail = [b"]"]
        if self.write_num_instances:
            tail.append(b',"num_instances":' + dumps(self.num_instances()))
        for k, v in self.meta.items():
            tail.append(b"," + dumps(k) + b":" + dumps(v))
        tail.append(b"}")
        yield b"".join(tail)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Sink:
    """A write-only file that copies what it is given into page-aligned buffers and writes each
    full buffer from a background thread, with ``O_DIRECT`` where the file system allows it.

    Writing a big file through the page cache costs the kernel a fresh page per 4 KiB, which on
    some machines is slower than the disk; ``O_DIRECT`` skips that, and the thread lets the next
    buffer be filled while one is written. The unaligned end of the file is written normally.
    """

    ALIGN = 4096
    SIZE = 8 << 20

    def __init__(self, fd: int):
        self.fd = fd
        self.direct = False
        flag = getattr(os, "O_DIRECT", 0)
        if flag and fcntl is not None:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flag)
                self.direct = True
            except OSError:
                pass
        self.bufs = [mmap.mmap(-1, self.SIZE), mmap.mmap(-1, self.SIZE)]
        self.views = [memoryview(b) for b in self.bufs]
        self.cur = 0
        self.fill = 0
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tdgen-write")
        self.pending: Future | None = None

    def write(self, data: Any) -> None:
        mv = memoryview(data).cast("B")
        pos, n = 0, len(mv)
        while pos < n:
            k = min(n - pos, self.SIZE - self.fill)
            self.views[self.cur][self.fill:self.fill + k] = mv[pos:pos + k]
            self.fill += k
            pos += k
            if self.fill == self.SIZE:
                self._hand_off()

    def _write_all(self, view: memoryview) -> None:
        while len(view):
            try:
                n = os.write(self.fd, view)
            except OSError as e:
                if not (self.direct and e.errno == errno.EINVAL):
                    raise
                self._buffered()  # O_DIRECT accepted by fcntl but not by the file system
                continue
            view = view[n:]
            if len(view) and self.direct:
                self._buffered()  # a short write leaves an unaligned rest

    def _buffered(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def _hand_off(self) -> None:
        self._wait()
        self.pending = self.pool.submit(self._write_all, self.views[self.cur][:self.fill])
        self.cur ^= 1
        self.fill = 0

    def close(self) -> None:
        """Write what is left and wait for it (the caller fsyncs)."""
        try:
            self._wait()
            aligned = self.fill - self.fill % self.ALIGN
            view = self.views[self.cur]
            if aligned:
                self._write_all(view[:aligned])
            if self.fill > aligned:
                if self.direct:  # the last partial block cannot go through O_DIRECT
                    self._buffered()
                self._write_all(view[aligned:self.fill])
        finally:
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._wait()
        self.pool.shutdown(wait=True)
        for v in self.views:
            v.release()
        for b in self.bufs:
            b.close()
        self.views, self.bufs = [], []


@contextlib.contextmanager
def atomic_stream(path: str | os.PathLike) -> Iterator[_Sink]:
    """A sink to write ``path`` through: a temporary sibling renamed over ``path`` when the
    block succeeds, removed when it fails (so ``path`` is either untouched or complete).

    The temporary file is ``.<name>.<random>.tmp`` beside ``path`` (what
    :func:`tdgen.atomic.remove_temp_files` cleans up after a kill). An ``OSError`` names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise named_os_error(e, path) from None
    sink = None
    try:
        sink = _Sink(fd)
        yield sink
        sink.close()
        sink = None
        os.fsync(fd)
        os.close(fd)
        fd = -1
        # mkstemp makes the file 0600; give it the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        if sink is not None:
            sink.abort()
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise named_os_error(e, path) from None
        raise


def write_cocovid_stream(ts: TrackSet, path: str | os.PathLike, flavor: str | None = None, *,
                         info: dict | None = None) -> Path:
    """Write ``ts`` as compact COCO-VID, slice by slice, atomically; see :class:`CocovidDoc`."""
    doc = CocovidDoc(ts, flavor, info=info)
    for key, ids in (("videos", doc.vid_ids), ("images", doc.img_ids), ("annotations", doc.ann_ids)):
        s = np.sort(ids)
        if s.size > 1 and not np.all(s[1:] != s[:-1]):
            raise OutputError(f"{path}: duplicate {key} ids in the output (a bug: please report it)")
    path = Path(path)
    with atomic_stream(path) as f:
        for piece in doc.iter_bytes():
            f.write(piece)
    return path
