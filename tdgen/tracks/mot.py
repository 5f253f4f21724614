"""MOT Challenge directories (MOT15/16/17/20, DanceTrack, SportsMOT): read, write, half split.

A *sequence* directory holds ``seqinfo.ini`` and/or ``gt/gt.txt`` (plus ``img1/`` when the
images are there); a *split* directory (``train/``, ``val/``) holds sequence directories.

``gt.txt`` rows are ``frame, id, x, y, w, h, conf, class, visibility`` (MOT16+), with fewer or
more columns in older or derived files:

==========  ==========================================================================
columns     meaning of the columns after ``x, y, w, h``
==========  ==========================================================================
6           nothing (conf, class and visibility default to 1)
7           conf
8           conf, class
9           conf, class, visibility (MOT16/17/20, DanceTrack, SportsMOT)
10          conf, world x, world y, world z (MOT15 ground truth, det.txt): class 1, vis 1
==========  ==========================================================================

A class or visibility of ``-1`` (the MOT15 / detection placeholder) reads as class 1 and
visibility 1.0. Boxes are never clipped: MOT ground truth legitimately leaves the image.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tdgen.atomic import atomic_directory, atomic_write_text
from tdgen.tracks.errors import AnnotationError, FormatError, OutputError, UsageError
from tdgen.tracks.trackset import Boxes, Frames, TrackSet, Videos

__all__ = [
    "MOT_CLASSES",
    "MOT_CATEGORIES",
    "looks_like_mot",
    "read_mot",
    "write_mot",
    "half_split",
]

#: The 13 MOT Challenge classes, ids 1..13 (TrackEval ``class_name_to_class_id``, mmdet mot2coco).
MOT_CLASSES: tuple[str, ...] = (
    "pedestrian",
    "person_on_vehicle",
    "car",
    "bicycle",
    "motorbike",
    "non_mot_vehicle",
    "static_person",
    "distractor",
    "occluder",
    "occluder_on_ground",
    "occluder_full",
    "reflection",
    "crowd",
)
MOT_CATEGORIES: list[dict] = [{"id": i + 1, "name": n} for i, n in enumerate(MOT_CLASSES)]

_DEFAULT_DIGITS = 6
_DEFAULT_IM_DIR = "img1"
_DEFAULT_IM_EXT = ".jpg"
_DEFAULT_FRAME_RATE = 30

_COLUMN_NAMES = {
    9: ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "class", "visibility"),
    10: ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "conf", "x", "y", "z"),
}
_EMPTY_FIELD = re.compile(r"(?m)(^|,)[ \t]*,")


def _column_name(ncols: int, k: int) -> str:
    names = _COLUMN_NAMES[10] if ncols == 10 else _COLUMN_NAMES[9]
    return names[k] if k < len(names) else f"column {k + 1}"


# --------------------------------------------------------------------------- input helpers
def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AnnotationError(path, None, f"cannot read file ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise AnnotationError(path, f"line {line}", "not UTF-8 text") from None


def _is_sequence(d: Path) -> bool:
    return (d / "seqinfo.ini").is_file() or (d / "gt" / "gt.txt").is_file()


def looks_like_mot(path: str | os.PathLike) -> bool:
    """True when ``path`` is a MOT sequence directory or a directory of them."""
    p = Path(path)
    if not p.is_dir():
        return False
    if _is_sequence(p):
        return True
    try:
        return any(d.is_dir() and not d.name.startswith(".") and _is_sequence(d) for d in p.iterdir())
    except OSError:
        return False


@dataclass
class _SeqInfo:
    name: str | None
    im_dir: str
    fps: float
    length: int | None
    width: int
    height: int
    im_ext: str


def _ini_line(text: str, key: str) -> int | None:
    m = re.search(rf"(?im)^[ \t]*{re.escape(key)}[ \t]*[=:]", text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _read_seqinfo(path: Path) -> _SeqInfo:
    text = _read_text(path)
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        cp.read_string(text, source=str(path))
    except configparser.Error as e:
        lineno = getattr(e, "lineno", None)
        if lineno is None and getattr(e, "errors", None):
            lineno = e.errors[0][0]
        where = f"line {lineno}" if lineno else None
        what = str(e.message if hasattr(e, "message") else e).splitlines()[0]
        if isinstance(e, configparser.MissingSectionHeaderError):
            what = "no [Sequence] section header before the first key"
        elif isinstance(e, configparser.ParsingError):
            what = "not a key=value line"
        elif isinstance(e, configparser.DuplicateOptionError):
            what = f"key {e.option!r} given twice"
        elif isinstance(e, configparser.DuplicateSectionError):
            what = f"section [{e.section}] given twice"
        raise AnnotationError(path, where, what) from None
    section = next((s for s in cp.sections() if s.strip().lower() == "sequence"), None)
    if section is None:
        raise AnnotationError(path, None, "no [Sequence] section", hint="a MOT seqinfo.ini starts with [Sequence]")
    sec = cp[section]

    def where(key: str) -> str:
        n = _ini_line(text, key)
        return f"line {n} ({key})" if n else key

    def get_int(key: str, required: bool) -> int | None:
        raw = sec.get(key)
        if raw is None:
            if required:
                raise AnnotationError(path, f"[{section}]", f"missing key {key}")
            return None
        raw = raw.strip()
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise AnnotationError(path, where(key), f"{key} {raw!r} is not an integer")
        value = int(raw)
        if value < 0:
            raise AnnotationError(path, where(key), f"{key} {value} is negative")
        return value

    length = get_int("seqLength", True)
    width = get_int("imWidth", True)
    height = get_int("imHeight", True)
    fps = float("nan")
    raw_fps = sec.get("frameRate")
    if raw_fps is not None:
        try:
            fps = float(raw_fps.strip())
        except ValueError:
            raise AnnotationError(path, where("frameRate"), f"frameRate {raw_fps.strip()!r} is not a number") from None
        if not np.isfinite(fps) or fps <= 0:
            raise AnnotationError(path, where("frameRate"), f"frameRate {raw_fps.strip()!r} is not a positive number")
    name = sec.get("name")
    im_dir = (sec.get("imDir") or "").strip() or _DEFAULT_IM_DIR
    im_ext = (sec.get("imExt") or "").strip() or _DEFAULT_IM_EXT
    if not im_ext.startswith("."):
        im_ext = "." + im_ext
    return _SeqInfo(name.strip() if name else None, im_dir, fps, length, width or 0, height or 0, im_ext)


def _split_fields(line: str) -> list[str]:
    s = line.strip()
    if s.endswith(","):
        s = s[:-1]
    return s.replace(",", " ").split()


def _parse_gt_slow(path: Path, text: str) -> np.ndarray:
    """Line-by-line parse: slow, but names the first bad line and column."""
    rows: list[list[float]] = []
    ncols = None
    first_line = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _EMPTY_FIELD.search(line.strip())
        if m:
            k = line.strip()[: m.end()].count(",")
            raise AnnotationError(path, f"line {lineno}", f"column {k} is empty")
        fields = _split_fields(line)
        n = len(fields)
        if n < 6 or n > 10:
            raise AnnotationError(
                path, f"line {lineno}",
                f"{n} columns, expected 6 to 10 (frame, id, x, y, w, h[, conf, class, visibility])",
            )
        if ncols is None:
            ncols, first_line = n, lineno
        elif n != ncols:
            raise AnnotationError(path, f"line {lineno}", f"{n} columns, but line {first_line} has {ncols}")
        values = []
        for k, f in enumerate(fields):
            try:
                values.append(float(f))
            except ValueError:
                raise AnnotationError(
                    path, f"line {lineno}", f"column {k + 1} ({_column_name(n, k)}): {f!r} is not a number"
                ) from None
        rows.append(values)
    if not rows:
        return np.zeros((0, 9))
    return np.asarray(rows, dtype=np.float64)


def _parse_gt(path: Path, text: str) -> np.ndarray:
    """All rows of a gt.txt as an (M, ncols) float64 array (vectorised; exact error places)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return np.zeros((0, 9))
    compact = text.replace(" ", "").replace("\t", "")
    if not (",," in compact or "\n," in compact or compact.startswith(",")):
        # Trailing commas are tolerated; every other comma separates two values.
        if ",\n" in compact or compact.rstrip("\n").endswith(","):
            text = re.sub(r",[ \t]*$", "", text, flags=re.M)
        norm = text.replace(",", " ")
        try:
            arr = np.loadtxt(io.StringIO(norm), dtype=np.float64, comments=None, ndmin=2)
        except ValueError:
            arr = None
        if arr is not None and 6 <= arr.shape[1] <= 10:
            return arr
    return _parse_gt_slow(path, text)


def _row_lines(text: str) -> list[int]:
    """1-based line number of every non-blank line (row ``i`` of the parsed array)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [i for i, line in enumerate(text.splitlines(), 1) if line.strip()]


@dataclass
class _Gt:
    frame: np.ndarray  # int64
    ids: np.ndarray  # float64
    bbox: np.ndarray  # (M, 4)
    conf: np.ndarray
    cls: np.ndarray  # int64
    vis: np.ndarray


def _read_gt(path: Path, length: int | None) -> _Gt:
    text = _read_text(path)
    arr = _parse_gt(path, text)
    ncols = arr.shape[1]
    lines: list[int] | None = None

    def fail(row: int, what: str):
        nonlocal lines
        if lines is None:
            lines = _row_lines(text)
        raise AnnotationError(path, f"line {lines[row]}", what)

    def first(mask: np.ndarray) -> int | None:
        idx = np.flatnonzero(mask)
        return int(idx[0]) if idx.size else None

    bad = ~np.isfinite(arr)
    if ncols == 10:
        bad[:, 7:] = False  # world coordinates are not used
    if bad.any():
        r = first(bad.any(1))
        k = int(np.flatnonzero(bad[r])[0])
        fail(r, f"column {k + 1} ({_column_name(ncols, k)}): {_num(arr[r, k])} is not a finite number")
    frame = arr[:, 0]
    r = first(frame != np.round(frame))
    if r is not None:
        fail(r, f"frame {_num(frame[r])} is not an integer")
    hi = length if length is not None else None
    if hi is not None:
        r = first((frame < 1) | (frame > hi))
        if r is not None:
            fail(r, f"frame {int(frame[r])} out of range 1..{hi}")
    else:
        r = first(frame < 1)
        if r is not None:
            fail(r, f"frame {int(frame[r])} out of range (frames start at 1)")
    wh = arr[:, 4:6]
    r = first((wh <= 0).any(1))
    if r is not None:
        fail(r, f"box width/height {_num(wh[r, 0])}, {_num(wh[r, 1])} must be positive")
    m = arr.shape[0]
    conf = arr[:, 6].copy() if ncols >= 7 else np.ones(m)
    if 8 <= ncols <= 9:
        cls = arr[:, 7].copy()
        cls[cls == -1] = 1
        r = first(cls != np.round(cls))
        if r is not None:
            fail(r, f"class {_num(arr[r, 7])} is not an integer")
        cls = cls.astype(np.int64)
    else:
        cls = np.ones(m, dtype=np.int64)
    if ncols == 9:
        vis = arr[:, 8].copy()
        vis[vis == -1] = 1.0
    else:
        vis = np.ones(m)
    frame_i = frame.astype(np.int64)
    ids = arr[:, 1].copy()
    if m > 1:
        order = np.lexsort((np.arange(m), ids, frame_i))
        f_s, i_s = frame_i[order], ids[order]
        dup = np.flatnonzero((f_s[1:] == f_s[:-1]) & (i_s[1:] == i_s[:-1]))
        if dup.size:
            later = order[dup + 1]
            j = int(np.argmin(later))
            r, r0 = int(later[j]), int(order[dup[j]])
            if lines is None:
                lines = _row_lines(text)
            fail(r, f"frame {frame_i[r]}, id {_num(ids[r])} repeats line {lines[r0]}")
    return _Gt(frame_i, ids, arr[:, 2:6].copy(), conf, cls, vis)


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 2.0**63 else repr(v)


def _image_digits(d: Path, ext: str) -> int:
    if not d.is_dir():
        return _DEFAULT_DIGITS
    counts: Counter[int] = Counter()
    try:
        with os.scandir(d) as it:
            for e in it:
                stem, dot, suffix = e.name.rpartition(".")
                if dot and "." + suffix == ext and stem.isdigit():
                    counts[len(stem)] += 1
    except OSError:
        return _DEFAULT_DIGITS
    return counts.most_common(1)[0][0] if counts else _DEFAULT_DIGITS


def _find_sequences(path: Path) -> list[Path]:
    if not path.exists():
        raise AnnotationError(path, None, "no such file or directory")
    if path.is_file():
        if path.name == "seqinfo.ini":
            return [path.parent]
        if path.name == "gt.txt" and path.parent.name == "gt":
            return [path.parent.parent]
        raise FormatError(path, None, "not a MOT sequence or split directory",
                          hint="pass a folder holding seqinfo.ini and gt/gt.txt, or a folder of such folders")
    if _is_sequence(path):
        return [path]
    try:
        subdirs = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    except OSError as e:
        raise AnnotationError(path, None, f"cannot list directory ({e.strerror or e})") from None
    seqs = sorted((d for d in subdirs if _is_sequence(d)), key=lambda d: d.name)
    if not seqs:
        raise AnnotationError(path, None, "no MOT sequences found (no sub-directory holds seqinfo.ini or gt/gt.txt)")
    return seqs


# --------------------------------------------------------------------------- read
def read_mot(path: str | os.PathLike) -> TrackSet:
    """Read a MOT sequence directory, or a split directory of sequences (sorted by name)."""
    root = Path(path)
    seqs = _find_sequences(root)
    warnings: list[str] = []

    v_name, v_w, v_h, v_fps = [], [], [], []
    f_video, f_index, f_file, f_w, f_h, f_num = [], [], [], [], [], []
    b_frame, b_bbox, b_track, b_cat, b_conf, b_vis, b_src = [], [], [], [], [], [], []
    frame_base = 0
    track_base = 0
    unknown_classes: set[int] = set()

    for vi, seq in enumerate(seqs):
        name = seq.name or seq.resolve().name
        ini = seq / "seqinfo.ini"
        gt_path = seq / "gt" / "gt.txt"
        info = _read_seqinfo(ini) if ini.is_file() else None
        gt = _read_gt(gt_path, info.length if info else None) if gt_path.is_file() else None
        if info is None:
            length = int(gt.frame.max()) if gt is not None and gt.frame.size else 0
            info = _SeqInfo(None, _DEFAULT_IM_DIR, float("nan"), length, 0, 0, _DEFAULT_IM_EXT)
            warnings.append(
                f"{seq}: no seqinfo.ini; seqLength taken as the last gt frame ({length}), image size unknown (0x0)"
            )
        elif info.name is not None and info.name != name:
            warnings.append(f"{ini}: name {info.name!r} differs from the folder name {name!r}; using the folder name")
        if gt is None:
            warnings.append(f"{seq}: no gt/gt.txt; its {info.length} frames have no boxes")
        n = int(info.length or 0)
        digits = _image_digits(seq / info.im_dir, info.im_ext)

        v_name.append(name)
        v_w.append(info.width)
        v_h.append(info.height)
        v_fps.append(info.fps)
        f_video.append(np.full(n, vi, dtype=np.int64))
        f_index.append(np.arange(n, dtype=np.int64))
        f_num.append(np.arange(1, n + 1, dtype=np.float64))
        f_file.extend(f"{name}/{info.im_dir}/{k:0{digits}d}{info.im_ext}" for k in range(1, n + 1))
        f_w.append(np.full(n, info.width, dtype=np.int64))
        f_h.append(np.full(n, info.height, dtype=np.int64))

        if gt is not None and gt.frame.size:
            order = np.argsort(gt.frame, kind="stable")
            uniq, inv = np.unique(gt.ids, return_inverse=True)
            b_frame.append(frame_base + gt.frame[order] - 1)
            b_bbox.append(gt.bbox[order])
            b_track.append(track_base + 1 + inv[order].astype(np.int64))
            b_cat.append(gt.cls[order])
            b_conf.append(gt.conf[order])
            b_vis.append(gt.vis[order])
            b_src.append(gt.ids[order])
            track_base += uniq.size
            cats = np.unique(gt.cls)
            unknown_classes.update(int(c) for c in cats if not 1 <= c <= 13)
        frame_base += n

    if unknown_classes:
        warnings.append(f"{root}: class ids {sorted(unknown_classes)} are not MOT classes (1..13); kept as they are")

    def cat(parts, dtype, shape=(0,)):
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(shape, dtype)

    nv = len(seqs)
    videos = Videos(
        name=np.array(v_name, dtype=object),
        id=np.arange(1, nv + 1, dtype=np.int64),
        width=np.array(v_w, dtype=np.int64),
        height=np.array(v_h, dtype=np.int64),
        fps=np.array(v_fps, dtype=np.float64),
    )
    file_name = np.empty(len(f_file), dtype=object)
    file_name[:] = f_file
    nf = len(f_file)
    frames = Frames(
        video=cat(f_video, np.int64),
        index=cat(f_index, np.int64),
        file_name=file_name,
        id=np.arange(1, nf + 1, dtype=np.int64),
        width=cat(f_w, np.int64),
        height=cat(f_h, np.int64),
        number=cat(f_num, np.float64),
    )
    track = cat(b_track, np.int64)
    m = track.size
    boxes = Boxes(
        frame=cat(b_frame, np.int64),
        bbox=cat(b_bbox, np.float64, (0, 4)),
        track=track,
        category=cat(b_cat, np.int64),
        id=np.arange(1, m + 1, dtype=np.int64),
        iscrowd=np.zeros(m, dtype=np.int8),
        visibility=cat(b_vis, np.float64),
        conf=cat(b_conf, np.float64),
        area=None,
        source_track=cat(b_src, np.float64),
        extra=None,
    )
    return TrackSet(
        videos=videos,
        frames=frames,
        boxes=boxes,
        categories=[dict(c) for c in MOT_CATEGORIES],
        meta={},
        source=str(root),
        source_format="mot",
        warnings=warnings,
    )


# --------------------------------------------------------------------------- write
_FILE_RE = re.compile(r"^[^/\\]+[/\\]([^/\\]+)[/\\](\d+)(\.[A-Za-z0-9]+)$")


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
    files = [str(f) for f in ts.frames.file_name[frame_rows].tolist()]

    # imDir, digits and imExt from names like <seq>/<dir>/<digits><ext>.
    im_dir, digits, im_ext = _DEFAULT_IM_DIR, _DEFAULT_DIGITS, _DEFAULT_IM_EXT
    matches = [_FILE_RE.match(f) for f in files]
    if matches and all(matches):
        dirs = {m.group(1) for m in matches}
        exts = {m.group(3) for m in matches}
        lens = {len(m.group(2)) for m in matches}
        if len(dirs) == 1 and len(exts) == 1:
            im_dir, im_ext = dirs.pop(), exts.pop()
            if len(lens) == 1:
                digits = lens.pop()
    else:
        exts = {os.path.splitext(f)[1] for f in files}
        if len(exts) == 1 and next(iter(exts)):
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
    box_num = numbers[b.frame[box_rows] - first_row]
    ids = b.track[box_rows].astype(np.float64)
    if b.source_track is not None and box_rows.size:
        st = b.source_track[box_rows]
        if np.all(np.isfinite(st)):
            o = np.lexsort((st, box_num))
            same = (box_num[o][1:] == box_num[o][:-1]) & (st[o][1:] == st[o][:-1])
            if not same.any():
                ids = st
    conf = np.ones(box_rows.size) if b.conf is None else b.conf[box_rows].copy()
    conf[~np.isfinite(conf)] = 1.0
    vis = np.ones(box_rows.size) if b.visibility is None else b.visibility[box_rows].copy()
    vis[~np.isfinite(vis)] = 1.0
    cls = b.category[box_rows]

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
    width, height = int(ts.videos.width[v]), int(ts.videos.height[v])
    if width <= 0 and n:
        width = int(ts.frames.width[frame_rows].max())
    if height <= 0 and n:
        height = int(ts.frames.height[frame_rows].max())
    ini = (
        "[Sequence]\n"
        f"name={name}\n"
        f"imDir={im_dir}\n"
        f"frameRate={frame_rate}\n"
        f"seqLength={n}\n"
        f"imWidth={max(width, 0)}\n"
        f"imHeight={max(height, 0)}\n"
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


# --------------------------------------------------------------------------- half split
def half_split(ts: TrackSet, which: Literal["half-train", "half-val"]) -> TrackSet:
    """The mmdet / ByteTrack half split: per video of n frames, the first ``n // 2 + 1`` frames
    are ``half-train`` and the rest ``half-val``. Frame numbers keep the original values."""
    if which not in ("half-train", "half-val"):
        raise UsageError(f"which must be 'half-train' or 'half-val', not {which!r}")
    n = ts.frames_per_video()
    split = n // 2 + 1
    cut = split[ts.frames.video] if ts.num_frames else np.zeros(0, np.int64)
    keep = ts.frames.index < cut if which == "half-train" else ts.frames.index >= cut
    out = ts.select_frames(keep)
    if out.frames.number is None:
        # keep the original frame numbers even when the source had none
        out.frames.number = (ts.frames.index[keep] + 1).astype(np.float64)
    return out
