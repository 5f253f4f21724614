"""Reading MOT Challenge directories: a sequence folder, or a split folder of sequences, into a TrackSet.

Finding the sequences, reading one copy of MOT17's per-detector copies, and taking the image
size from the first image when a sequence has no ``seqinfo.ini``; the two text files of a
sequence are read by :mod:`tdgen.tracks.mot_seqinfo` and :mod:`tdgen.tracks.mot_gt`.
"""

from __future__ import annotations

import io
import os
import re
import warnings as py_warnings  # `warnings` names the reader's list of messages
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import AnnotationError, FormatError, UsageError
from .mot_format import (_DEFAULT_DIGITS, _DEFAULT_IM_DIR, _MAX_DIGITS, MAX_IMAGE_SIDE, MAX_TOTAL_FRAMES,
                         MOT_CATEGORIES, _read_bytes)
from .mot_gt import read_gt_text
from .mot_seqinfo import _read_seqinfo, _SeqInfo
from .trackset import Boxes, Frames, TrackSet, Videos

__all__ = ["DETECTOR_SUFFIXES", "detector_copy_groups", "looks_like_mot", "read_mot"]


def _is_sequence(d: Path) -> bool:
    # lexists, not is_file: a seqinfo.ini or gt.txt that is a directory, a FIFO or a broken
    # link makes a sequence whose reading then refuses it, instead of being skipped unseen.
    return os.path.lexists(d / "seqinfo.ini") or os.path.lexists(d / "gt" / "gt.txt")


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


_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _numbered_images(d: Path) -> list[tuple[str, str]]:
    """``(stem, ext)`` of the files named ``<digits><ext>`` in ``d`` (empty when ``d`` is not a
    readable directory)."""
    if not d.is_dir():
        return []
    found = []
    try:
        with os.scandir(d) as it:
            for e in it:
                stem, dot, suffix = e.name.rpartition(".")
                if dot and stem.isascii() and stem.isdigit() and len(stem) <= _MAX_DIGITS:
                    found.append((stem, "." + suffix))
    except OSError:
        return []
    return found


def _image_digits(d: Path, ext: str) -> int:
    counts: Counter[int] = Counter(len(stem) for stem, e in _numbered_images(d) if e == ext)
    return counts.most_common(1)[0][0] if counts else _DEFAULT_DIGITS


def _first_image(d: Path) -> Path | None:
    """The lowest-numbered image file in ``d`` (None when there is none)."""
    images = [(int(stem), stem + ext) for stem, ext in _numbered_images(d) if ext.lower() in _IMAGE_EXTS]
    for _, name in sorted(images):
        if (d / name).is_file():
            return d / name
    return None


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from an image's header (the pixels are not decoded)."""
    from PIL import Image  # only needed for sequences without a seqinfo.ini

    data = _read_bytes(path)
    try:
        with py_warnings.catch_warnings():
            # only the header is read: a huge image is no "decompression bomb" here
            py_warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Exception as e:  # PIL raises many kinds for a bad file; any of them means "unreadable"
        first_line = (str(e) or type(e).__name__).splitlines()[0]
        raise AnnotationError(path, None, f"cannot read the image size ({first_line})") from None
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise AnnotationError(path, None, f"image size {width}x{height} is out of range 1..{MAX_IMAGE_SIDE:,}")
    return int(width), int(height)


def _find_sequences(path: Path) -> list[Path]:
    if not os.path.lexists(path):
        raise AnnotationError(path, None, "no such file or directory")
    if not path.is_dir():
        # the path to a sequence's own seqinfo.ini or gt.txt; reading checks it is a file
        if path.name == "seqinfo.ini":
            return [path.parent]
        if path.name == "gt.txt" and path.parent.name == "gt":
            return [path.parent.parent]
        if not path.exists():
            raise AnnotationError(path, None, "is a broken symbolic link")
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


# --------------------------------------------------------------------------- detector copies
#: MOT17 ships every sequence once per public detector, as ``<seq>-DPM``, ``<seq>-FRCNN`` and
#: ``<seq>-SDP``: the same images and ground truth, different ``det/det.txt``. The one kept is the
#: first of these present (ByteTrack trains on the -FRCNN folders).
DETECTOR_SUFFIXES: tuple[str, ...] = ("FRCNN", "SDP", "DPM")
_DETECTOR_NAME = re.compile(r"^(?P<base>.+)-(?P<det>" + "|".join(DETECTOR_SUFFIXES) + r")$")


def detector_copy_groups(names: list[str]) -> dict[str, list[str]]:
    """``{base: [names]}`` for every sequence found under two or more detector suffixes, the
    preferred copy first (``MOT17-02`` -> ``[MOT17-02-FRCNN, MOT17-02-SDP, MOT17-02-DPM]``)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        m = _DETECTOR_NAME.match(n)
        if m:
            groups.setdefault(m.group("base"), []).append(n)
    rank = {d: i for i, d in enumerate(DETECTOR_SUFFIXES)}
    return {base: sorted(g, key=lambda n: rank[n.rsplit("-", 1)[1]])
            for base, g in groups.items() if len(g) > 1}


def _gt_bytes(seq: Path) -> bytes | None:
    gt = seq / "gt" / "gt.txt"
    return _read_bytes(gt) if os.path.lexists(gt) else None


def _one_detector_copy(root: Path, seqs: list[Path]) -> tuple[list[Path], list[str]]:
    """``seqs`` with one copy of each detector triplet whose copies hold the same gt.txt, and
    the one-line messages that say what was left out.

    Copies without ground truth (a test split) are all kept: a benchmark wants results for each.
    Copies whose gt.txt differ are all kept too, with a warning: they are not copies.
    """
    by_name = {s.name: s for s in seqs}
    groups = detector_copy_groups([s.name for s in seqs])
    if not groups:
        return seqs, []
    skip: set[str] = set()
    messages: list[str] = []
    differ: list[str] = []
    for base, names in groups.items():
        gts = [_gt_bytes(by_name[n]) for n in names]
        if all(g is None for g in gts):
            continue
        if any(g != gts[0] for g in gts[1:]):
            differ.append(base)
            continue
        skip.update(names[1:])
    if differ:
        messages.append(f"{root}: the detector copies of {', '.join(differ[:3])}"
                        f"{f' and {len(differ) - 3} more' if len(differ) > 3 else ''} hold different gt.txt "
                        "files; kept every copy")
    if skip:
        kept = [s for s in seqs if s.name not in skip]
        deduped = [b for b, names in groups.items() if names[0] not in skip and names[1] in skip]
        suffixes = sorted({n.rsplit("-", 1)[1] for b in deduped for n in groups[b]})
        kept_suffix = sorted({groups[b][0].rsplit("-", 1)[1] for b in deduped}, key=DETECTOR_SUFFIXES.index)
        which = "/".join("-" + x for x in kept_suffix)
        messages.append(
            f"{root}: {len(deduped)} sequences come once per detector ({', '.join('-' + x for x in suffixes)}) "
            f"with the same ground truth; read the {which} copy of each"
            f"{', as ByteTrack does' if kept_suffix == ['FRCNN'] else ''} ({len(kept)} of {len(seqs)} folders; "
            "--all-detector-copies reads every copy)")
        return kept, messages
    return seqs, messages


# --------------------------------------------------------------------------- read
def read_mot(path: str | os.PathLike, *, detector_copies: Literal["one", "all"] = "one") -> TrackSet:
    """Read a MOT sequence directory, or a split directory of sequences (sorted by name).

    In a split directory, the MOT17 detector copies of a sequence (``-FRCNN``, ``-SDP``,
    ``-DPM``, same gt.txt) are read once (the ``-FRCNN`` one) unless ``detector_copies`` is
    ``"all"``; a warning in the result says so.
    """
    if detector_copies not in ("one", "all"):
        raise UsageError(f"detector_copies must be 'one' or 'all', not {detector_copies!r}")
    root = Path(path)
    seqs = _find_sequences(root)
    warnings: list[str] = []
    if detector_copies == "one" and len(seqs) > 1:
        seqs, notes = _one_detector_copy(root, seqs)
        warnings.extend(notes)

    v_name, v_w, v_h, v_fps = [], [], [], []
    f_video, f_index, f_file, f_w, f_h, f_num = [], [], [], [], [], []
    b_frame, b_bbox, b_track, b_cat, b_conf, b_vis, b_src = [], [], [], [], [], [], []
    frame_base = 0
    track_base = 0
    unknown_classes: set[int] = set()

    for vi, seq in enumerate(seqs):
        name = seq.name or seq.resolve().name
        ini = seq / "seqinfo.ini"
        gt_dir = seq / "gt"
        gt_path = gt_dir / "gt.txt"
        if os.path.lexists(gt_dir) and not gt_dir.is_dir():
            raise AnnotationError(gt_dir, None, "is not a directory (the boxes go in gt/gt.txt)")
        # an entry that exists but is no regular file is refused when read, never skipped
        info = _read_seqinfo(ini) if os.path.lexists(ini) else None
        gt = read_gt_text(gt_path, info.length if info else None) if os.path.lexists(gt_path) else None
        if info is None:
            length = int(gt.frame.max()) if gt is not None and gt.frame.size else 0
            # Without the size every writer would have to invent one: take it from the first
            # image, and refuse when there is none.
            image = _first_image(seq / _DEFAULT_IM_DIR)
            if image is None:
                raise AnnotationError(seq, None, f"no seqinfo.ini and no images in {_DEFAULT_IM_DIR}/: "
                                      "the image size is unknown",
                                      hint="add a seqinfo.ini with seqLength, imWidth and imHeight")
            width, height = _image_size(image)
            info = _SeqInfo(None, _DEFAULT_IM_DIR, float("nan"), length, width, height, image.suffix)
            warnings.append(f"{seq}: no seqinfo.ini; seqLength taken as the last gt frame ({length}), "
                            f"image size {width}x{height} from {_DEFAULT_IM_DIR}/{image.name}")
        elif info.name is not None and info.name != name:
            warnings.append(f"{ini}: name {info.name!r} differs from the folder name {name!r}; using the folder name")
        if gt is None:
            warnings.append(f"{seq}: no gt/gt.txt; its {info.length} frames have no boxes")
        n = int(info.length or 0)
        if frame_base + n > MAX_TOTAL_FRAMES:
            raise AnnotationError(root, None, f"the sequences up to {name!r} hold {frame_base + n:,} frames, more "
                                  f"than the {MAX_TOTAL_FRAMES:,} tdgen reads at once")
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

    categories = [dict(c) for c in MOT_CATEGORIES]
    if unknown_classes:
        warnings.append(f"{root}: class ids {sorted(unknown_classes)} are not MOT classes (1..13); kept as they are")
        # named, so that every category_id written has its category
        categories += [{"id": c, "name": f"class_{c}"} for c in sorted(unknown_classes)]

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
        categories=categories,
        meta={},
        source=str(root),
        source_format="mot",
        warnings=warnings,
    )
