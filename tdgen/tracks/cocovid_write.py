"""Writing COCO-VID: every rule of the document in one place, as a dict or as a stream of bytes.

:class:`CocovidDoc` makes the writer's decisions once for a TrackSet (flavour, which optional
keys are written, id renumbering) and builds the records in slices. :func:`cocovid_dict`
assembles them into one dict; :func:`write_cocovid_stream` (what :func:`write_cocovid` runs)
writes the same document slice by slice, so a multi-million-box set never exists as one list of
dicts. The streamed bytes are the bytes ``orjson.dumps(cocovid_dict(ts))`` gives (orjson's
compact output of a list is the comma-joined output of its items). The file is written through
:func:`filesink.atomic_stream` (temporary file, then rename).

The document meets the strictest common denominator of the tools that read COCO-VID (mmdet,
mmtracking, ByteTrack, pycocotools): an ``info`` key, unique positive ids, images grouped by
video and sorted by frame, contiguous frame ids, ``area``/``iscrowd`` on every annotation,
instance ids >= 1 and unique across the file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import orjson

try:  # the fast paths use it; without it the writer builds dicts
    import pyarrow as pa
except ImportError:  # pragma: no cover
    pa = None

from .. import __version__
from ..atomic import atomic_write_bytes
from ..errors import OutputError
from .filesink import atomic_stream
from .jsonbulk import _plain_strings, _records
from .trackset import TrackSet

if TYPE_CHECKING:
    from .cocovid_read import Flavor

__all__ = ["CocovidDoc", "FLAVORS", "atomic_stream", "cocovid_dict", "write_cocovid", "write_cocovid_stream"]

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
                   rows: int | None = None) -> Iterator[bytes | memoryview]:
        """The document as compact JSON, piece by piece, ``rows`` records a slice (default: ``ROWS``).

        ``annotations`` replaces the records built from the boxes: pieces of comma-separated
        annotation objects (no brackets, no leading or trailing comma; empty pieces are skipped).
        """
        rows = ROWS if rows is None else rows  # read here, so that a test can make slices small
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


def _all_unique(ids: np.ndarray) -> bool:
    s = np.sort(ids)
    return bool(s.size < 2 or np.all(s[1:] != s[:-1]))


def cocovid_dict(ts: TrackSet, flavor: Flavor | None = None, *, info: dict | None = None) -> dict:
    """The COCO-VID document for ``ts`` as a dict (see the module docstring for the rules)."""
    return CocovidDoc(ts, flavor, info=info).as_dict()


def write_cocovid(ts: TrackSet, path: str | Path, flavor: Flavor | None = None, *, info: dict | None = None,
                  indent: bool = False) -> Path:
    """Write ``ts`` as COCO-VID (atomically) and return the path.

    ``flavor`` defaults to the flavour the set was read in (``mmdet`` for other sources).
    Raises :class:`OutputError` if an id would collide. Compact output is written slice by
    slice (bounded memory); ``indent`` builds the whole document first.
    """
    if not indent:
        return write_cocovid_stream(ts, path, flavor, info=info)
    doc = cocovid_dict(ts, flavor, info=info)
    for key in ("videos", "images", "annotations"):
        ids = np.fromiter((d["id"] for d in doc[key]), dtype=np.int64, count=len(doc[key]))
        if not _all_unique(ids):
            raise OutputError(f"{path}: duplicate {key} ids in the output (a bug: please report it)")
    path = Path(path)
    atomic_write_bytes(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path
