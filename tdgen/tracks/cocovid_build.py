"""A TrackSet built from the columns of a COCO-VID file, one table at a time.

Both readers hand over the same thing: the top-level dict (its ``images`` and ``annotations``
replaced by :data:`jsonscan.STREAMED`) and the records' typed columns (the exact path's
``_ImageHandler``/``_AnnHandler``, the fast path's ``ArrowColumns``), so the checks between
tables (ids that must exist, frame ids, sizes) and the flavour guess are made here once, in the
order the errors are reported: the top-level arrays, categories, images, videos, frames,
annotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AnnotationError, FormatError
from .cocovid_checks import AnnotationChecks, CategoryIndex, ImageIndex, duplicate_id, make_tracks
from .cocovid_rules import (_MISSING, _NAN, _NO_VIDEO, _VIDEO_KEYS, _int_error, _json_type, _label, _str_error,
                            _video_error)
from .jsonscan import STREAMED
from .trackset import Boxes, Frames, TrackSet, Videos

__all__ = ["build"]


def build(top: dict, ih: Any, ah: Any, file: str, invalid_boxes: str) -> TrackSet:
    """The TrackSet of a file: ``top`` its top-level dict, ``ih``/``ah`` its image and
    annotation columns. Bad input raises a located :class:`AnnotationError`."""
    warnings: list[str] = []
    style: dict[str, Any] = {}
    _check_arrays(top, file)
    cats, cat_ids = _categories(top, file)
    img = _images(ih, file)
    vids = _video_list(top, img, file, warnings, style)
    vid_ids, img_vrow = _video_rows(vids, img, file)
    order, index, base0 = _frame_order(img, img_vrow, vid_ids, file, warnings, style)
    v_w, v_h = _frame_sizes(img, vids, img_vrow, file, warnings, style)
    frames, frame_of_img = _frames(ih, img, img_vrow, order, index, base0, style)
    videos = _videos(vids, vid_ids, v_w, v_h, style)
    boxes, n_tid, n_iid = _annotations(ah, img, frames, frame_of_img, vid_ids, cat_ids, file, invalid_boxes,
                                       warnings, style)
    flavor_guess = "mmdet" if base0 else "bytetrack"
    style["flavor"] = ("bytetrack" if n_tid > n_iid else "mmdet") if (n_tid or n_iid) else flavor_guess
    style["num_instances"] = "num_instances" in top
    style["frame_base"] = 0 if base0 else 1
    meta = {k: v for k, v in top.items() if k not in ("images", "annotations", "videos", "categories")}
    return TrackSet(videos=videos, frames=frames, boxes=boxes, categories=list(cats), meta=meta,
                    source=file, source_format=f"cocovid-{style['flavor']}", warnings=warnings, style=style)


def _cat(parts: list, dtype=None, empty_shape=(0,)) -> np.ndarray:
    """One column from its slices (object columns from lists)."""
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


def _obj(items: list) -> np.ndarray | None:
    if all(x is None for x in items):
        return None
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _raise(err: AnnotationError | None) -> None:
    if err is not None:
        raise err


# --------------------------------------------------------------------------- top level and categories
def _check_arrays(top: dict, file: str) -> None:
    """The two big arrays were read by a handler; anything else in their place is refused."""
    for key in ("images", "annotations"):
        value = top.get(key, _MISSING)
        if value is STREAMED or (value is _MISSING and key == "annotations"):
            continue
        if value is _MISSING:
            raise FormatError(file, None, "no 'images' key: not a COCO-VID file",
                              hint="MOT directories and YouTube-VIS files are read too; check the path")
        raise AnnotationError(file, key, f"must be an array of objects, got {_json_type(value)}")


def _categories(top: dict, file: str) -> tuple[list, np.ndarray]:
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
    _raise(duplicate_id(file, "categories", cat_ids))
    return cats, cat_ids


# --------------------------------------------------------------------------- images and videos
@dataclass
class _Images:
    """The image columns, in file order (floats: NaN where a record lacks the key)."""

    id: np.ndarray
    video: np.ndarray  # int64, _NO_VIDEO where none
    frame_id: np.ndarray
    width: np.ndarray
    height: np.ndarray
    mot_frame_id: np.ndarray
    file_name: np.ndarray

    @property
    def n(self) -> int:
        return self.id.size

    def where(self, j: int) -> str:
        return f"images[{j}] (id {int(self.id[j])})"


def _images(ih: Any, file: str) -> _Images:
    img_id = _cat(ih.cols.get("id", []), np.int64)
    _raise(duplicate_id(file, "images", img_id))
    return _Images(id=img_id, video=_cat(ih.cols.get("video_id", []), np.int64),
                   frame_id=_cat(ih.cols.get("frame_id", [])), width=_cat(ih.cols.get("width", [])),
                   height=_cat(ih.cols.get("height", [])), mot_frame_id=_cat(ih.cols.get("mot_frame_id", [])),
                   file_name=_cat(ih.cols.get("file_name", []), object))


def _video_list(top: dict, img: _Images, file: str, warnings: list[str], style: dict) -> list:
    """The ``videos`` entries, checked; made from the images when the file has none."""
    n_img = img.n
    no_vid = img.video == _NO_VIDEO
    vids = top.get("videos")
    if vids is not None and not isinstance(vids, list):
        raise AnnotationError(file, "videos", f"must be an array of objects, got {_json_type(vids)}")
    if n_img and no_vid.all() and not vids:
        # An image-only COCO file: every image becomes a one-frame video (mmtracking's
        # load_img_as_vid behaviour).
        warnings.append(f"{n_img} images have no 'video_id': each is read as a one-frame video")
        vids = [{"id": int(i), "name": str(f)} for i, f in zip(img.id.tolist(), img.file_name.tolist())]
        img.video = img.id.copy()
        img.frame_id = np.zeros(n_img)
        style["image_only"] = True
    elif no_vid.any():
        j = int(np.flatnonzero(no_vid)[0])
        raise AnnotationError(file, img.where(j), "missing 'video_id'")
    if vids is None:
        uv = np.unique(img.video)
        warnings.append("no 'videos' list: videos are made from the images' video_id")
        vids = [{"id": int(v), "name": f"video_{int(v)}"} for v in uv]
        style["no_videos"] = True
    for i, v in enumerate(vids):
        msg = _video_error(v)
        if msg:
            where = f"videos[{i}]" + (f" (id {_label(v['id'])})" if isinstance(v, dict) and "id" in v else "")
            raise AnnotationError(file, where, msg)
    return vids


def _video_rows(vids: list, img: _Images, file: str) -> tuple[np.ndarray, np.ndarray]:
    """``(video ids, video row of every image)``; an image of an unknown video is an error."""
    n_img = img.n
    vid_ids = np.array([int(v["id"]) for v in vids], dtype=np.int64)
    _raise(duplicate_id(file, "videos", vid_ids))
    vid_order = np.argsort(vid_ids, kind="stable")
    pos = np.searchsorted(vid_ids[vid_order], img.video)
    pos = np.clip(pos, 0, max(len(vids) - 1, 0))
    ok = (vid_ids[vid_order][pos] == img.video) if len(vids) else np.zeros(n_img, bool)
    if n_img and not ok.all():
        j = int(np.flatnonzero(~ok)[0])
        raise AnnotationError(file, img.where(j), f"video_id {int(img.video[j])} is not in 'videos'")
    img_vrow = vid_order[pos] if n_img else np.zeros(0, np.int64)
    return vid_ids, img_vrow


# --------------------------------------------------------------------------- frames
def _frame_order(img: _Images, img_vrow: np.ndarray, vid_ids: np.ndarray, file: str, warnings: list[str],
                 style: dict) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(image order by (video, frame_id), 0-based frame index in that order, whether frame ids
    start at 0)``; missing, negative or repeated frame ids are errors, gaps and odd starts warnings."""
    n_img, frame_id = img.n, img.frame_id
    n_vids = vid_ids.size
    if n_img and np.isnan(frame_id).any():
        j = int(np.flatnonzero(np.isnan(frame_id))[0])
        raise AnnotationError(file, img.where(j), "missing 'frame_id'")
    if n_img and (frame_id < 0).any():
        j = int(np.flatnonzero(frame_id < 0)[0])
        raise AnnotationError(file, img.where(j), f"frame_id {frame_id[j]:g} is negative")
    order = np.lexsort((frame_id, img_vrow))
    sv, sf = img_vrow[order], frame_id[order]
    same = (sv[1:] == sv[:-1]) & (sf[1:] == sf[:-1])
    if same.any():
        j = int(order[np.flatnonzero(same)[0] + 1])
        raise AnnotationError(file, img.where(j),
                              f"video {int(vid_ids[img_vrow[j]])} already has a frame_id {frame_id[j]:g}")
    counts = np.bincount(img_vrow, minlength=n_vids)
    voff = np.concatenate([[0], np.cumsum(counts)])
    index = np.arange(n_img) - np.repeat(voff[:-1], counts)
    first = np.full(n_vids, np.nan)
    if n_img:
        first[sv[np.r_[True, sv[1:] != sv[:-1]]]] = sf[np.r_[True, sv[1:] != sv[:-1]]]
    if n_img:
        base0 = bool(np.nanmin(first) == 0) if not style.get("image_only") else True
    else:
        base0 = True
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
    return order, index, base0


def _frame_sizes(img: _Images, vids: list, img_vrow: np.ndarray, file: str, warnings: list[str],
                 style: dict) -> tuple[np.ndarray, np.ndarray]:
    """Fill the images' missing width/height from their video's (in place); return the videos'
    sizes (NaN: unknown). The entries' types were checked; 0 or null means unknown."""
    v_w = np.array([float(v.get("width") or _NAN) for v in vids])
    v_h = np.array([float(v.get("height") or _NAN) for v in vids])
    for arr, varr, key in ((img.width, v_w, "width"), (img.height, v_h, "height")):
        miss = np.isnan(arr)
        if miss.any():
            arr[miss] = varr[img_vrow[miss]] if len(vids) else _NAN
            still = np.isnan(arr)
            if still.any():
                j = int(np.flatnonzero(still)[0])
                raise AnnotationError(file, img.where(j), f"missing '{key}' (and its video has none)")
            warnings.append(f"{int(miss.sum())} images lack '{key}': taken from their video")
            style[f"image_no_{key}"] = True
        if img.n and (arr <= 0).any():
            j = int(np.flatnonzero(arr <= 0)[0])
            raise AnnotationError(file, img.where(j), f"'{key}' must be positive")
    return v_w, v_h


def _frames(ih: Any, img: _Images, img_vrow: np.ndarray, order: np.ndarray, index: np.ndarray, base0: bool,
            style: dict) -> tuple[Frames, np.ndarray]:
    """The frames table (images sorted by video and frame) and the frame row of every image."""
    n_img, frame_id, mot_fid = img.n, img.frame_id, img.mot_frame_id
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
        file_name=img.file_name[order],
        id=img.id[order],
        width=img.width[order].astype(np.int64, copy=False),
        height=img.height[order].astype(np.int64, copy=False),
        number=number[order],
        extra=None if img_extra is None else img_extra[order],
    )
    frame_of_img = np.empty(n_img, np.int64)
    frame_of_img[order] = np.arange(n_img)
    return frames, frame_of_img


def _videos(vids: list, vid_ids: np.ndarray, v_w: np.ndarray, v_h: np.ndarray, style: dict) -> Videos:
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
    return videos


# --------------------------------------------------------------------------- annotations
def _string_instances(cols: dict, inst: np.ndarray, warnings: list[str]) -> None:
    """String ids (BDD100K, QDTrack): one integer per distinct string, over the whole file (a
    track cut by a slice boundary keeps one id), after the largest numeric id; in place."""
    str_parts = cols.get("instance_str", [])
    if not str_parts:
        return
    rows = np.concatenate([p for p, _ in str_parts])
    strs = np.empty(rows.size, dtype=object)
    strs[:] = [x for _, part in str_parts for x in part]
    finite = inst[np.isfinite(inst)]
    offset = max(int(finite.max()), 0) if finite.size else 0
    inst[rows] = np.unique(strs, return_inverse=True)[1].reshape(-1) + 1 + offset
    warnings.append("string instance ids were mapped to integers")


def _annotations(ah: Any, img: _Images, frames: Frames, frame_of_img: np.ndarray, vid_ids: np.ndarray,
                 cat_ids: np.ndarray, file: str, invalid_boxes: str, warnings: list[str],
                 style: dict) -> tuple[Boxes, int, int]:
    """The boxes table (in frame order), and how many records had a ``track_id`` and an
    ``instance_id`` (for the flavour)."""
    cols = ah.cols
    ann_id = _cat(cols.get("id", []), np.int64)
    _raise(duplicate_id(file, "annotations", ann_id))
    ann_img = _cat(cols.get("image_id", []), np.int64)
    ann_cat = _cat(cols.get("category_id", []), np.int64)
    bbox = _cat(cols.get("bbox", []), empty_shape=(0, 4))
    inst = _cat(cols.get("instance", []))
    _string_instances(cols, inst, warnings)
    crowd = _cat(cols.get("iscrowd", []))
    ann_vid = _cat(cols.get("video_id", []))
    has_vid = ~np.isnan(ann_vid)

    checks = AnnotationChecks(file)
    checks.set_skeleton(ImageIndex(img.id, frame_of_img), CategoryIndex(cat_ids), vid_ids[frames.video],
                        frames.width, frames.height)
    edges = checks.boxes(0, ann_id, bbox)
    vid = np.where(has_vid, ann_vid, 0).astype(np.int64) if has_vid.any() else None
    ann_frame = checks.records(0, ann_id, ann_img, ann_cat, vid, has_vid, edges)
    style["ann_video_id"] = bool(has_vid.any())
    warnings.extend(checks.finish(invalid_boxes))
    keep = ~edges.bad
    del edges

    # tracks: instance ids unique across the file and never shared by two videos
    no_inst = np.isnan(inst) | (inst < 0)
    track = np.where(no_inst, 0, inst).astype(np.int64, copy=False) if no_inst.any() else inst.astype(np.int64)
    track = make_tracks(track, no_inst, frames.video[ann_frame], warnings, style,
                        say_no_instance=not style.get("image_only"))
    n_tid, n_iid = sum(cols.get("n_track_id", [])), sum(cols.get("n_instance_id", []))

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
    return boxes, n_tid, n_iid
