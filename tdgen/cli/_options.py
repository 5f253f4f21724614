"""Choices and options that several commands share, declared once.

An option declared here reads the same in every command's ``--help`` and is parsed the same
way; a command that needs another wording declares its own.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError


class InputFormat(str, Enum):
    auto = "auto"
    cocovid = "cocovid"
    mot = "mot"
    ytvis = "ytvis"


class OutputFormat(str, Enum):
    cocovid = "cocovid"
    mot = "mot"


class Flavor(str, Enum):
    mmdet = "mmdet"
    bytetrack = "bytetrack"


class Split(str, Enum):
    half_train = "half-train"
    half_val = "half-val"


class ImageMode(str, Enum):
    none = "none"
    link = "link"
    copy = "copy"


# ------------------------------------------------------------------ clip and prompt options
Frames = Annotated[Optional[int], typer.Option("--frames", help="Frames per clip (default: the model's).")]
Slots = Annotated[Optional[int], typer.Option("--slots", help="Track slots per clip (default: the model's, "
                                                               "20 for the published one).")]
Prompt = Annotated[Optional[str], typer.Option("--prompt", help="Prompt template with {categories} and {video} "
                                                                "(default: the model's).")]
Captions = Annotated[Optional[Path], typer.Option("--captions", help="Captions per source video: a JSON object "
                                                                     "(video name -> caption) or '<video><TAB>"
                                                                     "<caption>' lines. Other videos get the "
                                                                     "prompt template.")]
# ------------------------------------------------------------------ output options
Json = Annotated[bool, typer.Option("--json", help="Print a one-line JSON summary instead of text.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]


def parse_category_map(pairs: list[str], flag: str = "--map") -> dict[str, str]:
    """``["person=pedestrian", ...]`` -> ``{"person": "pedestrian"}``; a one-line error otherwise."""
    mapping: dict[str, str] = {}
    for text in pairs:
        old, sep, new = (part.strip() for part in text.partition("="))
        if not sep or not old or not new:
            raise UsageError(f"{flag} {text!r}: must look like OLD=NEW (e.g. person=pedestrian)")
        if old in mapping and mapping[old] != new:
            raise UsageError(f"{flag}: {old!r} is mapped twice ({mapping[old]!r} and {new!r})")
        mapping[old] = new
    return mapping


# ------------------------------------------------------------------ gate options (tdgen gate, synth --gate)
class GateLevel(str, Enum):
    clip = "clip"
    box = "box"
    both = "both"


class BoxAction(str, Enum):
    drop = "drop"
    ignore = "ignore"


Detector = Annotated[Optional[str], typer.Option("--detector", help="shapes (the shapes domain's classical "
                                                                     "detector) or the path of a YOLOX model .onnx "
                                                                     "file.")]
Detections = Annotated[Optional[Path], typer.Option("--detections", help="Precomputed detections instead: a "
                                                                         "directory of MOT det.txt files, one per "
                                                                         "clip.")]
MinRecall = Annotated[float, typer.Option("--min-recall", help="Reject a clip whose recall is below this (levels "
                                                               "clip and both).")]
Iou = Annotated[float, typer.Option("--iou", help="IoU at which an annotated box counts as found.")]
GateLevelOpt = Annotated[GateLevel, typer.Option("--gate-level", help="clip: reject weak clips; box: drop or mark "
                                                                      "weak boxes; both: the two.")]
MinBoxIou = Annotated[float, typer.Option("--min-box-iou", help="A box whose matched IoU is below this is weak "
                                                                "(levels box and both).")]
BoxActionOpt = Annotated[BoxAction, typer.Option("--box-action", help="drop weak boxes from the annotations, or "
                                                                      "ignore: keep them as ignore regions "
                                                                      "(iscrowd=1, MOT conf 0).")]
