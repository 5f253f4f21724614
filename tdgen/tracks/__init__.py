"""Everything about annotations: reading, writing, converting, merging and windowing tracklets.

Imports no torch, so ``inspect``, ``convert`` and ``merge`` start fast on any machine.
"""

from .clips import Clip, ClipSpec, clip_seed, collate, plan_clips, select_clips, stable_shard
from .cocovid import read_cocovid, write_cocovid
from ..errors import AnnotationError, FormatError, OutputError, TdgenError, UsageError
from .io import detect_format, read_tracks
from .merge import MergeOptions, merge_tracksets
from .mot import half_split, read_mot, write_mot
from .trackset import Boxes, Frames, TrackSet, Videos
from .ytvis import read_ytvis

__all__ = [
    "AnnotationError", "Boxes", "Clip", "ClipSpec", "FormatError", "Frames", "MergeOptions", "OutputError",
    "TdgenError", "TrackSet", "UsageError", "Videos", "clip_seed", "collate", "detect_format", "half_split",
    "merge_tracksets", "plan_clips", "read_cocovid", "read_mot", "read_tracks", "read_ytvis", "select_clips",
    "stable_shard", "write_cocovid", "write_mot",
]
