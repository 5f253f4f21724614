"""Native YouTube-VIS 2019/2021 JSON: one annotation per track, per-frame lists with nulls.

::

    {"info", "licenses",
     "videos": [{"id", "width", "height", "length", "file_names": [...]}],
     "annotations": [{"id", "video_id", "category_id", "iscrowd",
                      "bboxes": [[x, y, w, h] | null, ...],      # one entry per frame
                      "areas": [float | null, ...],
                      "segmentations": [RLE | polygons | null, ...]}],
     "categories": [{"id", "name", "supercategory"}]}

Reading gives one box per non-null ``bboxes`` entry. The segmentation of a box is kept in its
``extra`` dict as ``{"segmentation": ...}``; the area goes to the ``area`` column (NaN when
null). Video keys other than the known ones are kept in ``videos.extra``.

Reading is strict about types: ids are JSON integers (not strings, floats or booleans) below
2**53 in magnitude, ``width``/``height`` are positive integers, every ``bboxes`` entry is
``null`` or four numbers; a file that is not UTF-8 is refused with the offset of the bad byte.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tdgen.atomic import atomic_write_bytes
from ..errors import AnnotationError, FormatError, OutputError
from .files import read_regular_file
from tdgen.tracks.jsonscan import JSONError, load_json
from tdgen.tracks.mot_format import MAX_ABS_VALUE, MAX_IMAGE_SIDE
from tdgen.tracks.trackset import Boxes, Frames, TrackSet, Videos

__all__ = ["looks_like_ytvis", "read_ytvis", "write_ytvis", "ytvis_from_dict", "ytvis_to_dict"]

_VIDEO_KEYS = ("id", "width", "height", "length", "file_names")
_TOP_KEYS = ("videos", "annotations", "categories")


def looks_like_ytvis(obj: Any) -> bool:
    """True for a parsed native YouTube-VIS document (videos with ``file_names``, tracks with
    ``bboxes`` lists), as opposed to COCO-VID (which has ``images``)."""
    if not isinstance(obj, dict):
        return False
    videos = obj.get("videos")
    if not isinstance(videos, list) or not videos:
        return False
    if not all(isinstance(v, dict) and isinstance(v.get("file_names"), list) for v in videos[:10]):
        return False
    anns = obj.get("annotations")
    if anns is None or anns == []:
        return "images" not in obj
    if not isinstance(anns, list):
        return False
    return all(isinstance(a, dict) and isinstance(a.get("bboxes"), list) for a in anns[:10])


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_id(x: Any) -> bool:
    """A JSON integer that float64 and int64 columns hold exactly."""
    return _is_int(x) and abs(x) < MAX_ABS_VALUE


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _show(x: Any) -> str:
    try:
        text = orjson.dumps(x).decode()
    except TypeError:
        text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def read_ytvis(path: str | os.PathLike) -> TrackSet:
    """Read a native YouTube-VIS 2019/2021 annotation file."""
    path = Path(path)
    data = read_regular_file(path)  # refuses directories, FIFOs and devices at once
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        doc = load_json(data[bom:] if bom else data)
    except JSONError as e:
        # orjson places a bad UTF-8 byte at the start of the file: find it
        try:
            data[bom:].decode("utf-8")
        except UnicodeDecodeError as u:
            at = bom + u.start
            line = data.count(b"\n", 0, at) + 1
            raise AnnotationError(path, f"line {line}",
                                  f"not UTF-8 text (byte 0x{data[at]:02x} at byte offset {at})") from None
        line, column = e.line, e.column
        if bom and line == 1:
            column += 1  # the BOM is one character of the first line
        raise AnnotationError(path, f"line {line}, column {column}", str(e).split(": ", 1)[-1]) from None
    return ytvis_from_dict(doc, path)


def ytvis_from_dict(doc: Any, path: str | os.PathLike | None = None) -> TrackSet:
    """Build a TrackSet from a parsed native YouTube-VIS document (``path`` names it in errors)."""
    file = str(path) if path is not None else "<ytvis>"
    if not isinstance(doc, dict):
        raise FormatError(file, None, "top level is not a JSON object")
    videos = doc.get("videos")
    if not isinstance(videos, list):
        raise AnnotationError(file, "videos", "missing" if videos is None else "is not a list")
    categories = doc.get("categories")
    if not isinstance(categories, list):
        raise AnnotationError(file, "categories", "missing" if categories is None else "is not a list")
    anns = doc.get("annotations")
    if anns is None:
        anns = []  # valid/test splits carry no annotations
    elif not isinstance(anns, list):
        raise AnnotationError(file, "annotations", "is not a list")
    if "images" in doc:
        # it would be carried along and clash with the images a COCO-VID output lists
        raise FormatError(file, "images", "a YouTube-VIS file lists frames in videos[].file_names, not in 'images'",
                          hint="for COCO-VID input pass --from cocovid")
    warnings: list[str] = []

    cat_ids: set[int] = set()
    for i, c in enumerate(categories):
        if not isinstance(c, dict):
            raise AnnotationError(file, f"categories[{i}]", "is not an object")
        for key in ("id", "name"):
            if key not in c:
                raise AnnotationError(file, f"categories[{i}]", f"missing key {key!r}")
        if not _is_id(c["id"]):
            raise AnnotationError(file, f"categories[{i}]", f"id {_show(c['id'])} is not an integer"
                                  + (" below 2**53" if _is_int(c["id"]) else ""))
        if not isinstance(c["name"], str):
            raise AnnotationError(file, f"categories[{i}] (id {c['id']})", f"name {_show(c['name'])} is not a string")
        if c["id"] in cat_ids:
            raise AnnotationError(file, f"categories[{i}]", f"id {c['id']} given twice")
        cat_ids.add(c["id"])

    # ------------------------------------------------------------------ videos and frames
    vid_row: dict[int, int] = {}
    v_name, v_id, v_w, v_h, v_extra = [], [], [], [], []
    f_file: list[str] = []
    f_video, f_index, v_len = [], [], []
    for i, v in enumerate(videos):
        if not isinstance(v, dict):
            raise AnnotationError(file, f"videos[{i}]", "is not an object")
        where = f"videos[{i}]" + (f" (id {v['id']})" if _is_int(v.get("id")) else "")
        for key in ("id", "width", "height", "file_names"):
            if key not in v:
                raise AnnotationError(file, where, f"missing key {key!r}")
        vid = v["id"]
        if not _is_id(vid):
            raise AnnotationError(file, where, f"id {_show(vid)} is not an integer"
                                  + (" below 2**53" if _is_int(vid) else ""))
        if vid in vid_row:
            raise AnnotationError(file, where, f"video id {vid} given twice (also videos[{vid_row[vid]}])")
        for key in ("width", "height"):
            if not _is_int(v[key]) or not 1 <= v[key] <= MAX_IMAGE_SIDE:
                raise AnnotationError(file, where, f"{key} {_show(v[key])} is not an integer in "
                                      f"1..{MAX_IMAGE_SIDE:,}")
        names = v["file_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AnnotationError(file, where, "file_names is not a list of strings")
        if "length" in v and (not _is_int(v["length"]) or v["length"] != len(names)):
            raise AnnotationError(file, where, f"length {_show(v['length'])} but {len(names)} file_names")
        vid_row[vid] = i
        first = names[0].replace("\\", "/") if names else ""
        v_name.append(first.split("/", 1)[0] if "/" in first else str(vid))
        v_id.append(vid)
        v_w.append(v["width"])
        v_h.append(v["height"])
        extra = {k: val for k, val in v.items() if k not in _VIDEO_KEYS}
        v_extra.append(extra or None)
        n = len(names)
        v_len.append(n)
        f_file.extend(names)
        f_video.append(np.full(n, i, dtype=np.int64))
        f_index.append(np.arange(n, dtype=np.int64))
    nv = len(videos)
    v_off = np.zeros(nv + 1, dtype=np.int64)
    np.cumsum(v_len, out=v_off[1:])
    nf = int(v_off[-1])

    # ------------------------------------------------------------------ tracks and boxes
    b_frame: list[int] = []
    b_bbox: list[list[float]] = []
    b_ann: list[int] = []  # annotation row of every box
    b_area: list[float] = []
    b_seg: list[Any] = []
    a_id, a_cat, a_crowd = [], [], []
    has_seg = False
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            raise AnnotationError(file, f"annotations[{i}]", "is not an object")
        where = f"annotations[{i}]" + (f" (id {_show(a['id'])})" if "id" in a else "")
        for key in ("id", "video_id", "category_id", "bboxes"):
            if key not in a:
                raise AnnotationError(file, where, f"missing key {key!r}")
        for key in ("id", "video_id", "category_id"):
            if not _is_id(a[key]):
                raise AnnotationError(file, where, f"{key} {_show(a[key])} is not an integer"
                                      + (" below 2**53" if _is_int(a[key]) else ""))
        vid, cid = a["video_id"], a["category_id"]
        if vid not in vid_row:
            raise AnnotationError(file, where, f"video_id {_show(vid)} is not the id of any video")
        if cid not in cat_ids:
            raise AnnotationError(file, where, f"category_id {_show(cid)} is not the id of any category")
        crowd = a.get("iscrowd", 0)
        if not _is_int(crowd) or crowd not in (0, 1):
            raise AnnotationError(file, where, f"iscrowd {_show(crowd)} is not 0 or 1")
        row = vid_row[vid]
        n = v_len[row]
        lists = {}
        for key in ("bboxes", "areas", "segmentations"):
            val = a.get(key)
            if val is None:
                if key == "bboxes":
                    raise AnnotationError(file, where, "bboxes is null")
                lists[key] = None
                continue
            if not isinstance(val, list):
                raise AnnotationError(file, where, f"{key} is not a list")
            if len(val) != n:
                raise AnnotationError(file, where, f"{key} has {len(val)} entries, video {vid} has {n} frames")
            lists[key] = val
        bboxes, areas, segs = lists["bboxes"], lists["areas"], lists["segmentations"]
        a_id.append(a["id"])
        a_cat.append(cid)
        a_crowd.append(int(crowd))
        base = int(v_off[row])
        for k, bb in enumerate(bboxes):
            if bb is None:
                continue
            if (not isinstance(bb, list) or len(bb) != 4 or not all(_is_num(x) for x in bb)):
                raise AnnotationError(file, f"{where}: bboxes[{k}]", f"{_show(bb)} is not [x, y, width, height]")
            if not all(math.isfinite(x) for x in bb) or not (bb[2] > 0 and bb[3] > 0):
                raise AnnotationError(file, f"{where}: bboxes[{k}]",
                                      f"{_show(bb)}: width and height must be positive finite numbers")
            if not all(abs(x) < MAX_ABS_VALUE for x in bb):
                raise AnnotationError(file, f"{where}: bboxes[{k}]",
                                      f"{_show(bb)}: values must be below 2**53 in magnitude")
            area = float("nan")
            if areas is not None and areas[k] is not None:
                ak = areas[k]
                if not _is_num(ak) or not (math.isfinite(ak) and 0 <= ak < MAX_ABS_VALUE**2):
                    raise AnnotationError(file, f"{where}: areas[{k}]", f"{_show(ak)} is not a non-negative number")
                area = float(ak)
            seg = segs[k] if segs is not None else None
            has_seg = has_seg or seg is not None
            b_frame.append(base + k)
            b_bbox.append(bb)
            b_ann.append(i)
            b_area.append(area)
            b_seg.append(seg)

    # Track ids: the annotation ids when they are distinct and >= 1, else 1..T.
    ids_ok = all(x >= 1 for x in a_id) and len(set(a_id)) == len(a_id)
    if ids_ok:
        track_of_ann = np.array(a_id, dtype=np.int64)
    else:
        track_of_ann = np.arange(1, len(a_id) + 1, dtype=np.int64)
        if a_id:
            warnings.append(f"{file}: annotation ids are not distinct integers >= 1; tracks renumbered 1..{len(a_id)}")
    src_track = np.array(a_id, dtype=np.float64)  # exact: every id is below 2**53

    m = len(b_frame)
    frame_col = np.array(b_frame, dtype=np.int64)
    order = np.argsort(frame_col, kind="stable")
    ann_col = np.array(b_ann, dtype=np.int64)[order]
    extra = None
    if has_seg:
        extra = np.empty(m, dtype=object)
        extra[:] = [None if s is None else {"segmentation": s} for s in (b_seg[j] for j in order.tolist())]
    boxes = Boxes(
        frame=frame_col[order],
        bbox=np.array(b_bbox, dtype=np.float64).reshape(m, 4)[order],
        track=track_of_ann[ann_col] if m else np.zeros(0, np.int64),
        category=np.array(a_cat, dtype=np.int64)[ann_col] if m else np.zeros(0, np.int64),
        id=np.arange(1, m + 1, dtype=np.int64),
        iscrowd=np.array(a_crowd, dtype=np.int8)[ann_col] if m else np.zeros(0, np.int8),
        area=np.array(b_area, dtype=np.float64)[order],
        source_track=src_track[ann_col] if m else np.zeros(0, np.float64),
        extra=extra,
    )

    def obj(values: list) -> np.ndarray:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr

    vw = np.array(v_w, dtype=np.int64)
    vh = np.array(v_h, dtype=np.int64)
    fv = np.concatenate(f_video) if f_video else np.zeros(0, np.int64)
    frames = Frames(
        video=fv,
        index=np.concatenate(f_index) if f_index else np.zeros(0, np.int64),
        file_name=obj(f_file),
        id=np.arange(1, nf + 1, dtype=np.int64),
        width=vw[fv] if nf else np.zeros(0, np.int64),
        height=vh[fv] if nf else np.zeros(0, np.int64),
        number=(np.concatenate(f_index) + 1).astype(np.float64) if f_index else np.zeros(0, np.float64),
    )
    vids = Videos(
        name=obj(v_name),
        id=np.array(v_id, dtype=np.int64),
        width=vw,
        height=vh,
        fps=None,
        extra=obj(v_extra) if any(e is not None for e in v_extra) else None,
    )
    meta = {k: val for k, val in doc.items() if k not in _TOP_KEYS}
    return TrackSet(
        videos=vids,
        frames=frames,
        boxes=boxes,
        categories=list(categories),
        meta=meta,
        source=file,
        source_format="ytvis",
        warnings=warnings,
    )


# --------------------------------------------------------------------------- write
def _check_writable(ts: TrackSet) -> None:
    """Refuse what :func:`ytvis_from_dict` would refuse, so that every file written reads back."""
    for v in range(ts.num_videos):
        w, h, vid = int(ts.videos.width[v]), int(ts.videos.height[v]), int(ts.videos.id[v])
        if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE):
            what = "unknown" if w <= 0 or h <= 0 else "out of range"
            raise OutputError(f"video {ts.videos.name[v]!r}: size {w}x{h} is {what}; YouTube-VIS needs width and "
                              f"height in 1..{MAX_IMAGE_SIDE:,}")
        if abs(vid) >= MAX_ABS_VALUE:
            raise OutputError(f"video {ts.videos.name[v]!r}: id {vid} is not below 2**53")
    for c in ts.categories:
        if not _is_id(c.get("id")) or not isinstance(c.get("name"), str):
            raise OutputError(f"category {_show(c)} needs an integer id below 2**53 and a string name")
    crowd = ts.boxes.iscrowd
    if len(crowd) and not np.isin(crowd, (0, 1)).all():
        r = int(np.flatnonzero(~np.isin(crowd, (0, 1)))[0])
        raise OutputError(f"track {int(ts.boxes.track[r])}: iscrowd {int(crowd[r])} is not 0 or 1")
    bbox = ts.boxes.bbox
    if len(bbox):
        bad = (~np.all(np.isfinite(bbox), axis=1) | (bbox[:, 2] <= 0) | (bbox[:, 3] <= 0)
               | np.any(np.abs(np.nan_to_num(bbox)) >= MAX_ABS_VALUE, axis=1))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise OutputError(f"track {int(ts.boxes.track[r])}: bbox {bbox[r].tolist()} cannot be written to "
                              "YouTube-VIS (positive finite width and height, values below 2**53)")


def ytvis_to_dict(ts: TrackSet) -> dict:
    """The native YouTube-VIS document of a TrackSet (one annotation per track and video)."""
    _check_writable(ts)
    voff = ts.video_offsets()
    n_per_video = np.diff(voff)
    videos = []
    for v in range(ts.num_videos):
        entry: dict[str, Any] = {}
        extra = ts.videos.extra[v] if ts.videos.extra is not None else None
        entry.update(extra or {})
        entry.update(
            id=int(ts.videos.id[v]),
            width=int(ts.videos.width[v]),
            height=int(ts.videos.height[v]),
            length=int(n_per_video[v]),
            file_names=[str(f) for f in ts.frames.file_name[voff[v]:voff[v + 1]].tolist()],
        )
        videos.append(entry)

    b = ts.boxes
    box_video = ts.box_video()
    box_index = ts.box_frame_index()
    order = np.lexsort((box_index, b.track))  # grouped by track, then frame
    annotations = []
    start = 0
    m = len(b)
    track_sorted = b.track[order]
    # annotation ids are the track ids, numbered 1..T where they would not read back exactly
    out_id = b.track
    if m and np.abs(b.track).max() >= MAX_ABS_VALUE:
        out_id = np.unique(b.track, return_inverse=True)[1].astype(np.int64) + 1
    while start < m:
        stop = int(np.searchsorted(track_sorted, track_sorted[start], side="right"))
        rows = order[start:stop]
        start = stop
        v = int(box_video[rows[0]])
        tid = int(b.track[rows[0]])
        aid = int(out_id[rows[0]])
        cats = np.unique(b.category[rows])
        if cats.size != 1:
            raise OutputError(f"track {tid} changes category ({cats.tolist()}); YouTube-VIS allows one per track")
        idx = box_index[rows]
        if np.unique(idx).size != idx.size:
            raise OutputError(f"track {tid} has two boxes in one frame; YouTube-VIS allows one")
        n = int(n_per_video[v])
        bboxes: list[Any] = [None] * n
        areas: list[Any] = [None] * n
        segs: list[Any] = [None] * n
        for r, k in zip(rows.tolist(), idx.tolist()):
            x, y, w, h = b.bbox[r].tolist()
            bboxes[k] = [x, y, w, h]
            area = float(b.area[r]) if b.area is not None else float("nan")
            areas[k] = area if math.isfinite(area) and area >= 0 else w * h
            ex = b.extra[r] if b.extra is not None else None
            if ex and ex.get("segmentation") is not None:
                segs[k] = ex["segmentation"]
        annotations.append(
            dict(
                id=aid,
                video_id=int(ts.videos.id[v]),
                category_id=int(cats[0]),
                iscrowd=int(b.iscrowd[rows[0]]),
                width=int(ts.videos.width[v]),
                height=int(ts.videos.height[v]),
                length=1,
                bboxes=bboxes,
                areas=areas,
                segmentations=segs,
            )
        )
    annotations.sort(key=lambda a: a["id"])
    doc: dict[str, Any] = {k: val for k, val in ts.meta.items() if k != "images"}  # the reader refuses it
    doc.update(videos=videos, annotations=annotations, categories=list(ts.categories))
    return doc


def write_ytvis(ts: TrackSet, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ts`` as a native YouTube-VIS JSON file (atomically)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (pass overwrite to replace it)")
    atomic_write_bytes(path, orjson.dumps(ytvis_to_dict(ts), option=orjson.OPT_SERIALIZE_NUMPY))
    return path
