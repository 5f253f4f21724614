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
Every row is read, whatever its class and conf; choosing the training targets is
:mod:`tdgen.tracks.classes`' job.

A MOT17 split holds each sequence three times (``-DPM``, ``-FRCNN``, ``-SDP``: one per public
detector, same images, same gt.txt). :func:`read_mot` reads one copy of each (``-FRCNN``) unless
told to read them all.

Reading is strict: frame, id and class are integers, read exactly (a value that float64 cannot
hold exactly is refused, not rounded); sizes and lengths have sane upper bounds; ``seqinfo.ini``
and ``gt.txt`` must be regular UTF-8 files. Every refusal is one :class:`AnnotationError` naming
the file and the line. Writing refuses whatever the reader would refuse, so every folder
:func:`write_mot` writes reads back.

Where things are: :mod:`tdgen.tracks.mot_read` (directories, detector copies, :func:`read_mot`),
:mod:`tdgen.tracks.mot_seqinfo` and :mod:`tdgen.tracks.mot_gt` (the two text files of a sequence),
:mod:`tdgen.tracks.mot_write` (:func:`write_mot`), :mod:`tdgen.tracks.mot_format` (classes,
limits and defaults they share). This module keeps the public names and :func:`half_split`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..errors import UsageError
from .mot_format import (MAX_ABS_VALUE, MAX_FRAME_RATE, MAX_IMAGE_SIDE, MAX_SEQ_LENGTH, MAX_TOTAL_FRAMES,
                         MOT_CATEGORIES, MOT_CLASSES)
from .mot_read import DETECTOR_SUFFIXES, detector_copy_groups, looks_like_mot, read_mot
from .mot_write import write_mot
from .trackset import TrackSet

__all__ = [
    "MAX_ABS_VALUE",
    "MAX_FRAME_RATE",
    "MAX_IMAGE_SIDE",
    "MAX_SEQ_LENGTH",
    "MAX_TOTAL_FRAMES",
    "MOT_CLASSES",
    "MOT_CATEGORIES",
    "DETECTOR_SUFFIXES",
    "detector_copy_groups",
    "looks_like_mot",
    "read_mot",
    "write_mot",
    "half_split",
]


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
