"""Writing MOT Challenge directories: one sequence folder per video (``seqinfo.ini``, ``gt/gt.txt``,
optionally the frames), refusing whatever the reader would refuse, so every folder reads back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..atomic import atomic_directory, atomic_write_text
from ..errors import AnnotationError, OutputError, UsageError
from .mot_format import (_DEFAULT_DIGITS, _DEFAULT_FRAME_RATE, _DEFAULT_IM_DIR, _DEFAULT_IM_EXT, _IM_EXT,
                         _MAX_CLASS, _MAX_DIGITS, MAX_ABS_VALUE, MAX_FRAME_RATE, MAX_IMAGE_SIDE, MAX_SEQ_LENGTH,
                         MAX_TOTAL_FRAMES, _im_dir_problem)
from .trackset import TrackSet

__all__ = ["write_mot"]


_FILE_RE = re.compile(r"^[^/\\]+[/\\]([^/\\]+)[/\\]([0-9]+)(\.[A-Za-z0-9]+)$")


def _format_column(col: np.ndarray) -> list[str]:
    """Numbers as text that reads back to the identical float64 (ints without a dot)."""
    col = np.asarray(col, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(col) & (col == np.round(col)) & (np.abs(col) < 2.0**53)
    if integral.all():
        return list(map(str, col.astype(np.int64).tolist()))
    out = np.empty(col.size, dtype=object)
    if integral.any():
        out[integral] = list(map(str, col[integral].astype(np.int64).tolist()))
    rest = ~integral
    out[rest] = list(map(repr, col[rest].tolist()))
    return out.tolist()


def _check_seq_name(name: str) -> None:
    if not name or name in (".", "..") or any(c in name for c in "/\\\n\r\0"):
        raise OutputError(f"video name {name!r} cannot be used as a MOT sequence folder name")


@dataclass
class _SeqPlan:
    name: str
    ini: str
    gt: str
    im_dir: str
    images: list[tuple[Path, str]]  # (source, destination file name inside im_dir)


def _plan_video(ts: TrackSet, v: int, frame_rows: np.ndarray, box_rows: np.ndarray,
                images_from: Path | None) -> _SeqPlan:
    name = str(ts.videos.name[v])
    _check_seq_name(name)
    src = ts.source or "<tracks>"
    n = frame_rows.size
    if n > MAX_SEQ_LENGTH:
        raise OutputError(f"video {name!r} has {n:,} frames; a MOT sequence tdgen reads holds at most "
                          f"{MAX_SEQ_LENGTH:,}")
    files = [str(f) for f in ts.frames.file_name[frame_rows].tolist()]

    # imDir, digits and imExt from names like <seq>/<dir>/<digits><ext>.
    im_dir, digits, im_ext = _DEFAULT_IM_DIR, _DEFAULT_DIGITS, _DEFAULT_IM_EXT
    matches = [_FILE_RE.match(f) for f in files]
    if matches and all(matches):
        dirs = {m.group(1) for m in matches}
        exts = {m.group(3) for m in matches}
        lens = {len(m.group(2)) for m in matches}
        if len(dirs) == 1 and len(exts) == 1 and _im_dir_problem(next(iter(dirs))) is None:
            im_dir, im_ext = dirs.pop(), exts.pop()
            if len(lens) == 1 and lens <= {*range(1, _MAX_DIGITS + 1)}:
                digits = lens.pop()
    else:
        exts = {os.path.splitext(f)[1] for f in files}
        if len(exts) == 1 and _IM_EXT.fullmatch(next(iter(exts))):
            im_ext = exts.pop()
        elif len(exts) > 1 and images_from is not None:
            raise AnnotationError(src, f"video {name!r}",
                                  "frames have different image extensions; cannot name them in one imDir")

    # Frame numbers: the source numbers when they are 1..n-valued and distinct, else index + 1.
    numbers = np.arange(1, n + 1, dtype=np.int64)
    if ts.frames.number is not None and n:
        num = ts.frames.number[frame_rows]
        if (np.all(np.isfinite(num)) and np.all(num == np.round(num)) and num.min() >= 1 and num.max() <= n
                and np.unique(num).size == n):
            numbers = num.astype(np.int64)
    first_row = int(frame_rows[0]) if n else 0  # a video's frames are contiguous rows

    b = ts.boxes
    bbox = b.bbox[box_rows]
    if box_rows.size:
        bad = ~np.all(np.isfinite(bbox), axis=1) | (bbox[:, 2] <= 0) | (bbox[:, 3] <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            r = box_rows[i]
            raise AnnotationError(
                src, f"video {name!r}, frame {int(numbers[b.frame[r] - first_row])}, track {int(b.track[r])}",
                f"bbox {bbox[i].tolist()} cannot be written to MOT (width/height must be positive finite numbers)")
        big = np.any(np.abs(bbox) >= MAX_ABS_VALUE, axis=1)
        if big.any():
            r = box_rows[int(np.flatnonzero(big)[0])]
            raise OutputError(f"video {name!r}, frame {int(numbers[b.frame[r] - first_row])}, track "
                              f"{int(b.track[r])}: bbox {b.bbox[r].tolist()} cannot be written to MOT "
                              "(box values must be below 2**53 in magnitude)")
    box_num = numbers[b.frame[box_rows] - first_row]
    track = b.track[box_rows]
    if track.size and np.abs(track).max() >= MAX_ABS_VALUE:
        # float64 (the MOT id column) would round such ids together: number the tracks 1..T
        track = np.unique(track, return_inverse=True)[1].astype(np.int64) + 1
    ids = track.astype(np.float64)
    if b.source_track is not None and box_rows.size:
        st = b.source_track[box_rows]
        if np.all(np.isfinite(st)) and np.all(st == np.round(st)) and np.abs(st).max() < MAX_ABS_VALUE:
            o = np.lexsort((st, box_num))
            same = (box_num[o][1:] == box_num[o][:-1]) & (st[o][1:] == st[o][:-1])
            if not same.any():
                ids = st
    conf = np.ones(box_rows.size) if b.conf is None else b.conf[box_rows].copy()
    conf[~np.isfinite(conf)] = 1.0
    vis = np.ones(box_rows.size) if b.visibility is None else b.visibility[box_rows].copy()
    vis[~np.isfinite(vis)] = 1.0
    cls = b.category[box_rows]
    bad_cls = (cls < 0) | (cls > _MAX_CLASS)
    if bad_cls.any():
        raise OutputError(f"video {name!r}: category_id {int(cls[np.flatnonzero(bad_cls)[0]])} cannot be written "
                          f"as a MOT class (0..{_MAX_CLASS})")

    order = np.lexsort((box_num, ids))
    cols = [
        list(map(str, box_num[order].tolist())),
        _format_column(ids[order]),
        *(_format_column(bbox[order, k]) for k in range(4)),
        _format_column(conf[order]),
        list(map(str, cls[order].tolist())),
        _format_column(vis[order]),
    ]
    gt = "\n".join(map(",".join, zip(*cols))) + ("\n" if box_rows.size else "")

    fps = float(ts.videos.fps[v]) if ts.videos.fps is not None else float("nan")
    frame_rate = max(1, int(round(fps))) if np.isfinite(fps) else _DEFAULT_FRAME_RATE
    if frame_rate > MAX_FRAME_RATE:
        raise OutputError(f"video {name!r}: fps {fps:g} cannot be written as a MOT frameRate "
                          f"(at most {MAX_FRAME_RATE:,.0f})")
    width, height = int(ts.videos.width[v]), int(ts.videos.height[v])
    if width <= 0 and n:
        width = int(ts.frames.width[frame_rows].max())
    if height <= 0 and n:
        height = int(ts.frames.height[frame_rows].max())
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        what = "unknown" if width <= 0 or height <= 0 else "out of range"
        raise OutputError(f"video {name!r}: image size {width}x{height} is {what}; a MOT seqinfo.ini needs "
                          f"imWidth and imHeight in 1..{MAX_IMAGE_SIDE:,}")
    ini = (
        "[Sequence]\n"
        f"name={name}\n"
        f"imDir={im_dir}\n"
        f"frameRate={frame_rate}\n"
        f"seqLength={n}\n"
        f"imWidth={width}\n"
        f"imHeight={height}\n"
        f"imExt={im_ext}\n"
    )

    images: list[tuple[Path, str]] = []
    if images_from is not None:
        for f, k in zip(files, numbers.tolist()):
            source = images_from / f
            if not source.is_file():
                raise AnnotationError(source, f"video {name!r}, frame {k}", "source image not found")
            images.append((source, f"{k:0{digits}d}{im_ext}"))
    return _SeqPlan(name, ini, gt, im_dir, images)


def write_mot(
    ts: TrackSet,
    out_dir: str | os.PathLike,
    *,
    images_from: str | os.PathLike | None = None,
    image_mode: Literal["none", "link", "copy"] = "none",
    overwrite: bool = False,
) -> list[Path]:
    """Write one MOT sequence folder per video under ``out_dir``; return the folders.

    Every folder holds ``seqinfo.ini`` (keys in the order mmdet's ``mot2coco`` parses them) and
    ``gt/gt.txt`` sorted by (id, frame). With ``image_mode`` ``"link"`` or ``"copy"`` the frames
    are linked/copied from ``images_from / file_name`` into ``<seq>/<imDir>/``. Nothing is
    written unless every check passes; each folder appears whole (built aside, then renamed).
    """
    if image_mode not in ("none", "link", "copy"):
        raise UsageError(f"image_mode must be 'none', 'link' or 'copy', not {image_mode!r}")
    if image_mode != "none" and images_from is None:
        raise UsageError(
            f"image_mode={image_mode!r} needs images_from (the folder the frame file names are relative to)")
    src_root = Path(images_from).absolute() if image_mode != "none" else None
    out = Path(out_dir)

    names = [str(x) for x in ts.videos.name.tolist()]
    seen: dict[str, int] = {}
    for v, name in enumerate(names):
        _check_seq_name(name)
        if name in seen:
            raise OutputError(
                f"videos {seen[name] + 1} and {v + 1} are both named {name!r}; MOT folder names must be unique")
        seen[name] = v
    targets = [out / name for name in names]
    if not overwrite:
        for t in targets:
            if t.exists() or t.is_symlink():
                raise OutputError(f"{t}: already exists (pass overwrite to replace it)")

    if ts.num_frames > MAX_TOTAL_FRAMES:
        raise OutputError(f"{ts.num_frames:,} frames: more than the {MAX_TOTAL_FRAMES:,} a MOT split tdgen reads "
                          "holds")
    voff = ts.video_offsets()
    foff = ts.frame_offsets()
    plans = []
    for v in range(ts.num_videos):
        frame_rows = np.arange(voff[v], voff[v + 1])
        box_rows = np.arange(foff[voff[v]], foff[voff[v + 1]])
        plans.append(_plan_video(ts, v, frame_rows, box_rows, src_root))

    created_out = not out.exists()
    try:
        with contextlib.ExitStack() as stack:
            for plan, target in zip(plans, targets):
                tmp = stack.enter_context(atomic_directory(target, overwrite=overwrite))
                atomic_write_text(tmp / "seqinfo.ini", plan.ini)
                atomic_write_text(tmp / "gt" / "gt.txt", plan.gt)
                if plan.images:
                    img_dir = tmp / plan.im_dir
                    img_dir.mkdir(parents=True, exist_ok=True)
                    final_img_dir = (target / plan.im_dir).absolute()
                    for source, dest in plan.images:
                        if image_mode == "link":
                            os.symlink(os.path.relpath(source, final_img_dir), img_dir / dest)
                        else:
                            shutil.copy2(source, img_dir / dest)
    except BaseException:
        if created_out:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty: never remove what was there
        raise
    return targets
