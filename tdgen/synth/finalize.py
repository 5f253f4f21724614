"""Rebuild ``annotations.json`` and ``manifest.parquet`` from the finished clips' fragments.

Each fragment is a one-video TrackSet with its manifest row (:mod:`tdgen.synth.fragments`);
``annotations.json`` is their concatenation and ``manifest.parquet`` their rows. The result
depends only on which clips are finished, never on the order they finished in or on how they
were sharded: fragments are sorted by their position in the plan, and ids are given in that
order.

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
from ..tracks.trackset import TrackSet
from .fragments import MANIFEST_COLUMNS, MANIFEST_TYPES, REDO_HINT, concat_fragments, legacy_fragment
from .outputs import LOCK_NAME, SynthDir

__all__ = ["MANIFEST_COLUMNS", "finalize", "fragments_to_trackset", "write_manifest", "write_mot_copy"]


def fragments_to_trackset(fragments: list[dict], categories: list[dict], *, mot_fields: bool) -> TrackSet:
    """Fragments in the plain-record layout of earlier versions, concatenated (see
    :func:`tdgen.synth.fragments.concat_fragments`)."""
    return concat_fragments([legacy_fragment(f) for f in fragments], categories, mot_fields=mot_fields)


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """``manifest.parquet``: one row per finished clip (columns in MANIFEST_COLUMNS).

    ``dropped_tracks`` / ``dropped_track_ids``: the source tracks of the clip's window that did
    not fit its slots (null for clips finished by a version that did not record them).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "list<int64>": pa.list_(pa.int64())}
    rows = sorted(rows, key=lambda r: r["order"])
    table = pa.table({c: [r.get(c) for r in rows] for c in MANIFEST_COLUMNS},
                     schema=pa.schema([(name, types[kind]) for name, kind in MANIFEST_TYPES]))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def _read_settings(path: Path) -> dict:
    """The settings record; a damaged one is a one-line :class:`AnnotationError`."""
    import orjson

    try:
        obj = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise AnnotationError(path, None, f"damaged settings record: not valid JSON ({e})") from None
    except OSError as e:
        raise AnnotationError(path, None, f"cannot read the settings record: {e.strerror or e}") from None
    if not isinstance(obj, dict):
        raise AnnotationError(path, None, "damaged settings record: expected a JSON object")
    return obj


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
        settings = _read_settings(sd.lock_file)
        fragments = []
        for cid in sorted(sd.finished_ids()):
            fragments.append(sd.read_fragment(cid))
            frames_dir = sd.frames_dir(cid)
            if not frames_dir.is_dir():
                raise AnnotationError(sd.fragment_path(cid), None, f"its frames folder {frames_dir} is missing",
                                      hint=REDO_HINT)
        categories = settings.get("categories") or (fragments[0].trackset.categories if fragments else [])
        mot_fields = bool(settings.get("mot_fields", False))
        ts = concat_fragments(fragments, categories, mot_fields=mot_fields)
        write_cocovid(ts, sd.annotations, flavor)
        write_manifest(sd.manifest, [f.manifest for f in fragments])
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
        raise AnnotationError(src, None, "cannot read this frame to make its MOT copy", hint=REDO_HINT)
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
                        raise AnnotationError(src, None, "frame missing; cannot make its MOT copy", hint=REDO_HINT)
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
