"""Rebuild ``annotations.json`` and ``manifest.parquet`` from the finished clips' fragments.

The result depends only on which clips are finished, never on the order they finished in or on
how they were sharded: fragments are sorted by their position in the plan, and ids are given
in that order.

With ``mot`` a MOT Challenge copy is kept in ``mot/``, one sequence per clip, in the layout
ByteTrack's ``convert_mot17_to_coco.py`` and mmdet's ``mot2coco.py`` read::

    mot/<clip>/seqinfo.ini      imDir=img1, frameRate, seqLength, imWidth, imHeight, imExt=.jpg
    mot/<clip>/img1/000001.jpg  frames 1..seqLength
    mot/<clip>/gt/gt.txt        frame,id,x,y,w,h,conf,class,visibility

Frames are always JPEG there: hard links to ``images/`` when the run writes jpg (a copy where
the file system has no hard links), JPEG copies encoded from the PNG frames otherwise. Track ids
in ``gt.txt`` are per sequence (1..T in slot order), so a finished clip's sequence never changes
and later finalizes only write the sequences that are new or out of date.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..atomic import atomic_directory, atomic_write_bytes, write_bytes_named
from ..tracks.cocovid import write_cocovid
from ..errors import AnnotationError, OutputError, UsageError
from ..tracks.trackset import Boxes, Frames, TrackSet, Videos
from .outputs import LOCK_NAME, SynthDir

__all__ = ["finalize", "fragments_to_trackset", "write_mot_copy"]

MANIFEST_COLUMNS = [
    "clip_id", "order", "source", "source_video", "first_frame", "last_frame", "frame_step", "frames", "tracks",
    "source_track_ids", "dropped_tracks", "dropped_track_ids", "prompt", "seed", "model_id", "model_hash", "steps",
    "guidance", "guidance_kind", "width", "height", "seconds",
]


def fragments_to_trackset(fragments: list[dict], categories: list[dict], *, mot_fields: bool) -> TrackSet:
    """One video per clip, in plan order, with fresh ids (1..) for videos, frames, boxes, tracks."""
    fragments = sorted(fragments, key=lambda f: f["order"])
    v_name, v_w, v_h, v_fps = [], [], [], []
    f_video, f_index, f_name, f_w, f_h, f_num = [], [], [], [], [], []
    b_frame, b_bbox, b_track, b_cat, b_vis, b_conf = [], [], [], [], [], []
    frame_base = 0
    track_base = 0
    for v, frag in enumerate(fragments):
        vid = frag["video"]
        v_name.append(vid["name"])
        v_w.append(vid["width"])
        v_h.append(vid["height"])
        v_fps.append(np.nan if vid.get("fps") is None else float(vid["fps"]))
        frames = frag["frames"]
        n = len(frames)
        f_video.extend([v] * n)
        f_index.extend(range(n))
        f_name.extend(fr["file_name"] for fr in frames)
        f_w.extend([vid["width"]] * n)
        f_h.extend([vid["height"]] * n)
        f_num.extend(float(fr["number"]) for fr in frames)
        b = frag["boxes"]
        if b["frame"]:
            b_frame.append(np.asarray(b["frame"], np.int64) + frame_base)
            b_bbox.append(np.asarray(b["bbox"], np.float64).reshape(-1, 4))
            b_track.append(np.asarray(b["slot"], np.int64) + track_base + 1)
            b_cat.append(np.asarray(b["category"], np.int64))
            b_vis.append(np.asarray(b.get("visibility") or [np.nan] * len(b["frame"]), np.float64))
            b_conf.append(np.asarray(b.get("conf") or [np.nan] * len(b["frame"]), np.float64))
        frame_base += n
        track_base += int(frag["slots"])
    cat = (lambda parts, dt, shape=(0,): np.concatenate(parts) if parts else np.zeros(shape, dt))
    frame = cat(b_frame, np.int64)
    order = np.argsort(frame, kind="stable")  # group boxes by frame
    nb = frame.size
    vis = cat(b_vis, np.float64)[order]
    conf = cat(b_conf, np.float64)[order]
    track = cat(b_track, np.int64)[order]
    if nb:
        _, track = np.unique(track, return_inverse=True)  # compact 1..T in plan order
        track = track.astype(np.int64) + 1
    ts = TrackSet(
        videos=Videos(name=np.array(v_name, dtype=object), id=np.arange(1, len(v_name) + 1),
                      width=np.array(v_w, np.int64), height=np.array(v_h, np.int64),
                      fps=np.array(v_fps) if not np.isnan(np.array(v_fps, float)).all() else None),
        frames=Frames(video=np.array(f_video, np.int64), index=np.array(f_index, np.int64),
                      file_name=np.array(f_name, dtype=object), id=np.arange(1, len(f_name) + 1),
                      width=np.array(f_w, np.int64), height=np.array(f_h, np.int64), number=np.array(f_num)),
        boxes=Boxes(frame=frame[order], bbox=cat(b_bbox, np.float64, (0, 4))[order], track=track,
                    category=cat(b_cat, np.int64)[order], id=np.arange(1, nb + 1), iscrowd=np.zeros(nb, np.int8),
                    visibility=(np.where(np.isnan(vis), 1.0, vis) if mot_fields else None),
                    conf=(np.where(np.isnan(conf), 1.0, conf) if mot_fields else None)),
        categories=[dict(c) for c in categories],
        meta={"info": {"description": "synthetic clips generated by tdgen synth"}},
        source="synth",
        source_format="synth",
        style={"flavor": "mmdet", "ann_video_id": True, "mot_frame_id": mot_fields, "video_name": True},
    )
    ts.check()
    return ts


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """``manifest.parquet``: one row per finished clip (columns in MANIFEST_COLUMNS).

    ``dropped_tracks`` / ``dropped_track_ids``: the source tracks of the clip's window that did
    not fit its slots (null for clips finished by a version that did not record them).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: r["order"])
    table = pa.table({c: [r.get(c) for r in rows] for c in MANIFEST_COLUMNS},
                     schema=pa.schema([
                         ("clip_id", pa.string()), ("order", pa.int64()), ("source", pa.string()),
                         ("source_video", pa.string()), ("first_frame", pa.int64()), ("last_frame", pa.int64()),
                         ("frame_step", pa.int64()), ("frames", pa.int64()), ("tracks", pa.int64()),
                         ("source_track_ids", pa.list_(pa.int64())), ("dropped_tracks", pa.int64()),
                         ("dropped_track_ids", pa.list_(pa.int64())), ("prompt", pa.string()), ("seed", pa.int64()),
                         ("model_id", pa.string()), ("model_hash", pa.string()), ("steps", pa.int64()),
                         ("guidance", pa.float64()), ("guidance_kind", pa.string()), ("width", pa.int64()),
                         ("height", pa.int64()), ("seconds", pa.float64())]))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


_REDO = "delete it and run the same tdgen synth command again to redo the clip"


def _read_object(path: Path, what: str) -> dict:
    """A JSON object from ``path``; a damaged file is a one-line :class:`AnnotationError`."""
    import orjson

    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise AnnotationError(path, None, f"damaged {what}: not valid JSON ({e})",
                              hint=_REDO if what == "clip fragment" else None) from None
    except OSError as e:
        raise AnnotationError(path, None, f"cannot read the {what}: {e.strerror or e}") from None
    if not isinstance(obj, dict):
        raise AnnotationError(path, None, f"damaged {what}: expected a JSON object",
                              hint=_REDO if what == "clip fragment" else None)
    return obj


def _check_fragment(sd: SynthDir, path: Path, frag: dict) -> dict:
    """The fields finalize uses, with their types; and the clip's frames folder must exist."""
    def bad(what: str) -> AnnotationError:
        return AnnotationError(path, None, f"damaged clip fragment: {what}", hint=_REDO)

    for key, kind in (("order", int), ("slots", int), ("video", dict), ("frames", list), ("boxes", dict),
                      ("manifest", dict)):
        if not isinstance(frag.get(key), kind) or isinstance(frag.get(key), bool):
            raise bad(f"{key!r} is missing or not {'an integer' if kind is int else 'a ' + kind.__name__}")
    video = frag["video"]
    if not isinstance(video.get("name"), str) or not all(
            isinstance(video.get(k), int) and video[k] > 0 for k in ("width", "height")):
        raise bad("'video' needs a name and positive integer width and height")
    if not all(isinstance(f, dict) and isinstance(f.get("file_name"), str) and
               isinstance(f.get("number"), (int, float)) for f in frag["frames"]):
        raise bad("every frame needs a file_name and a number")
    boxes = frag["boxes"]
    n = None
    for key in ("frame", "slot", "bbox", "category", "visibility", "conf"):
        value = boxes.get(key)
        if value is None and key in ("visibility", "conf"):
            continue
        if not isinstance(value, list) or (n is not None and len(value) != n):
            raise bad(f"boxes {key!r} is missing or its length differs from the others")
        n = len(value)
    if not all(isinstance(b, list) and len(b) == 4 for b in boxes["bbox"]):
        raise bad("every box needs 4 numbers")
    frames_dir = sd.frames_dir(path.stem)  # the fragment's name is its clip id
    if not frames_dir.is_dir():
        raise AnnotationError(path, None, f"its frames folder {frames_dir} is missing", hint=_REDO)
    return frag


def finalize(out: str | Path, *, flavor: Literal["mmdet", "bytetrack"] = "mmdet", mot: bool = False,
             jpeg_quality: int = 95) -> dict:
    """Write ``annotations.json`` and ``manifest.parquet`` for every finished clip in ``out``.

    With ``mot`` also bring ``mot/`` up to date (see the module docstring; ``jpeg_quality`` is
    used for JPEG copies of PNG frames). Returns a summary: clips, frames, boxes and the paths
    written. Safe to run while other processes are still writing clips (a lock keeps concurrent
    finalizes in order). ``out`` must hold a synth run (its ``synth.json``), else
    :class:`OutputError` and nothing is written. Temporary files a killed finalize left are
    removed first.
    """
    if mot:
        _check_quality(jpeg_quality)  # before anything is written
    sd = SynthDir(out)
    if not sd.root.is_dir():
        raise OutputError(f"{sd.root}: no such directory (nothing to finalize)")
    if not sd.is_synth_dir():
        raise OutputError(f"{sd.root}: not a tdgen synth output directory (no {LOCK_NAME}); nothing to finalize")
    with sd.finalize_lock():
        sd.remove_finalize_leftovers()
        settings = _read_object(sd.lock_file, "settings record")
        fragments = []
        for cid in sorted(sd.finished_ids()):
            path = sd.fragment_path(cid)
            fragments.append(_check_fragment(sd, path, _read_object(path, "clip fragment")))
        categories = settings.get("categories") or (fragments[0]["categories"] if fragments else [])
        mot_fields = bool(settings.get("mot_fields", False))
        ts = fragments_to_trackset(fragments, categories, mot_fields=mot_fields)
        write_cocovid(ts, sd.annotations, flavor)
        write_manifest(sd.manifest, [f["manifest"] for f in fragments])
        paths = {"annotations": str(sd.annotations), "manifest": str(sd.manifest)}
        if mot:
            write_mot_copy(sd, ts, jpeg_quality=jpeg_quality)
            paths["mot"] = str(sd.root / "mot")
    planned = settings.get("planned_clips")
    return {"clips": len(fragments), "planned": planned, "frames": ts.num_frames, "boxes": ts.num_boxes,
            "paths": paths}


# --------------------------------------------------------------------------------------- MOT copy
MOT_IM_DIR = "img1"
MOT_IM_EXT = ".jpg"


def _mot_trackset(ts: TrackSet) -> TrackSet:
    """``ts`` with frame names ``<clip>/img1/000001.jpg`` and track ids numbered 1..T per clip.

    The writer takes imDir, imExt and the digits from such names; ``source_track`` is the id it
    writes to ``gt.txt``.
    """
    names = ts.videos.name[ts.frames.video]
    file_name = np.array([f"{n}/{MOT_IM_DIR}/{i + 1:06d}{MOT_IM_EXT}"
                          for n, i in zip(names.tolist(), ts.frames.index.tolist())], dtype=object)
    local = np.zeros(ts.num_boxes, np.float64)
    if ts.num_boxes:
        pairs, inv = np.unique(np.stack([ts.box_video(), ts.boxes.track], 1), axis=0, return_inverse=True)
        first = np.searchsorted(pairs[:, 0], pairs[:, 0], side="left")  # first track of the same clip
        local = (np.arange(len(pairs)) - first + 1)[np.ravel(inv)].astype(np.float64)
    return dataclasses.replace(ts, frames=dataclasses.replace(ts.frames, file_name=file_name),
                               boxes=dataclasses.replace(ts.boxes, source_track=local))


def _same_sequence(staged: Path, target: Path, frames: int) -> bool:
    """Whether ``target`` already holds the sequence ``staged`` describes, with all its frames."""
    try:
        for rel in ("seqinfo.ini", "gt/gt.txt"):
            if (staged / rel).read_bytes() != (target / rel).read_bytes():
                return False
        have = set(os.listdir(target / MOT_IM_DIR))
    except OSError:
        return False
    return have == {f"{k:06d}{MOT_IM_EXT}" for k in range(1, frames + 1)}


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # no hard links here (some network and FUSE file systems): copy instead
        shutil.copy2(src, dest)


def _jpeg_copy(src: Path, dest: Path, final: Path, quality: int) -> None:
    import cv2

    bgr = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if bgr is None:
        raise AnnotationError(src, None, "cannot read this frame to make its MOT copy", hint=_REDO)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OutputError(f"{final}: could not encode a jpg image")
    write_bytes_named(dest, buf.tobytes(), name_as=final)


def _check_quality(q: Any) -> None:
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 1 <= q <= 100:
        raise UsageError(f"--quality {q}: must be in 1..100")


def write_mot_copy(sd: SynthDir, ts: TrackSet, *, jpeg_quality: int = 95) -> Path:
    """Bring ``mot/`` up to date with the finished clips of ``ts`` (see the module docstring).

    ``seqinfo.ini`` and ``gt.txt`` of every clip are written aside by the MOT writer; a sequence
    already in place with the same files and all its frames is kept, the others are rebuilt
    whole (aside, then renamed). Sequences of clips that are no longer finished are removed.
    Call with the finalize lock held.
    """
    from ..tracks.mot import write_mot

    _check_quality(jpeg_quality)
    mot_dir = sd.root / "mot"
    mot_dir.mkdir(exist_ok=True)
    mts = _mot_trackset(ts)
    names = [str(n) for n in ts.videos.name.tolist()]
    voff = ts.video_offsets()
    # a hidden ".<name>.tmp" folder: what remove_finalize_leftovers clears after a kill
    stage = Path(tempfile.mkdtemp(prefix=".stage.", suffix=".tmp", dir=mot_dir))
    try:
        write_mot(mts, stage, image_mode="none")
        for v, name in enumerate(names):
            staged, target = stage / name, mot_dir / name
            rows = range(int(voff[v]), int(voff[v + 1]))
            if _same_sequence(staged, target, len(rows)):
                continue
            with atomic_directory(target, overwrite=True) as tmp:
                os.replace(staged / "seqinfo.ini", tmp / "seqinfo.ini")
                os.replace(staged / "gt", tmp / "gt")
                img_dir = tmp / MOT_IM_DIR
                img_dir.mkdir()
                for k, r in enumerate(rows, start=1):
                    src = sd.root / str(ts.frames.file_name[r])
                    dest_name = f"{k:06d}{MOT_IM_EXT}"
                    if not src.is_file():
                        raise AnnotationError(src, None, "frame missing; cannot make its MOT copy", hint=_REDO)
                    if src.suffix.lower() in (".jpg", ".jpeg"):
                        _link_or_copy(src, img_dir / dest_name)
                    else:
                        _jpeg_copy(src, img_dir / dest_name, target / MOT_IM_DIR / dest_name, jpeg_quality)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    keep = set(names)
    for entry in mot_dir.iterdir():
        # only sequences this writer made (they hold a seqinfo.ini), never other files
        if entry.name not in keep and not entry.name.startswith(".") and (entry / "seqinfo.ini").is_file():
            shutil.rmtree(entry, ignore_errors=True)
    return mot_dir
