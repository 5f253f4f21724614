"""``tdgen convert`` as a library function: read any format, filter classes, write COCO-VID or MOT.

Every option is checked before the input is read, so a refused conversion leaves nothing behind.
The class filter's default depends on the output: the ByteTrack flavour from MOT ground truth
keeps what ByteTrack's converter keeps (pedestrians with conf 1, one category), the mmdet flavour
keeps every class with its MOT fields (see docs/mot_classes.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..atomic import check_output_free
from ..errors import UsageError
from .classes import IGNORE_AS, ClassFilter, FilterReport
from .io import detect_format, read_tracks
from .trackset import TrackSet

__all__ = ["ConvertResult", "convert_tracks", "output_format"]

OUTPUT_FORMATS = ("cocovid", "mot")
IMAGE_MODES = ("none", "link", "copy")


@dataclass
class ConvertResult:
    """What was written: the output's counts, the class filter's report and a note about it."""

    output: Path
    format: str
    trackset: TrackSet
    report: FilterReport | None = None
    note: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        ts = self.trackset
        return {"output": str(self.output), "format": self.format, "videos": ts.num_videos, "frames": ts.num_frames,
                "tracks": ts.num_tracks, "boxes": ts.num_boxes, "warnings": self.warnings,
                "classes": None if self.report is None else {**self.report.as_dict(), "note": self.note}}


def output_format(output: Path, to: str | None) -> str:
    """``to``, else cocovid for a ``.json`` output and mot otherwise."""
    return to or ("cocovid" if Path(output).suffix.lower() == ".json" else "mot")


def _check(to: str, flavor: str | None, min_conf: float | None, ignore_as: str | None, images: str) -> None:
    if to not in OUTPUT_FORMATS:
        raise UsageError(f"--to must be cocovid or mot, not {to!r}")
    if min_conf is not None and not math.isfinite(min_conf):
        raise UsageError(f"--min-conf must be a finite number, got {min_conf}")
    if ignore_as is not None and ignore_as not in IGNORE_AS:
        raise UsageError(f"--ignore-as must be one of {', '.join(IGNORE_AS)}, not {ignore_as!r}")
    if to == "mot" and flavor is not None:
        raise UsageError("--flavor applies to COCO-VID output only")
    if to == "mot" and ignore_as == "crowd":
        raise UsageError("--ignore-as crowd: MOT gt.txt has no crowd regions; write COCO-VID (a .json output) "
                         "or pass --ignore-as drop or keep")
    if images not in IMAGE_MODES:
        raise UsageError(f"--images must be none, link or copy, not {images!r}")


def convert_tracks(src: str | Path, output: str | Path, *, fmt: str | None = None, to: str | None = None,
                   flavor: str | None = None, split: str | None = None, images: str = "none",
                   images_from: str | Path | None = None, drop_invalid: bool = False,
                   classes: Sequence[str] | None = None, min_conf: float | None = None,
                   ignore_as: str | None = None, all_detector_copies: bool = False,
                   overwrite: bool = False) -> ConvertResult:
    """Convert ``src`` (any readable format, ``fmt`` to force one) into ``output``.

    ``split`` keeps the first (``half-train``) or second (``half-val``) half of every video;
    ``classes``/``min_conf``/``ignore_as`` change the class filter of the output's flavour;
    ``images`` (MOT output) links or copies the frames from ``images_from``.
    """
    src, output = Path(src), Path(output)
    target = output_format(output, to)
    _check(target, flavor, min_conf, ignore_as, images)
    if all_detector_copies:
        from .mot import read_mot

        if (fmt or detect_format(src)) != "mot":
            raise UsageError("--all-detector-copies applies to a MOT directory input only")
        ts = read_mot(src, detector_copies="all")
    else:
        ts = read_tracks(src, fmt, invalid_boxes="drop" if drop_invalid else "error")
    if split is not None:
        from .mot import half_split

        ts = half_split(ts, split)

    # which boxes are targets: the output flavour's default, changed by the options
    out_flavor = (flavor or ts.style.get("flavor") or "mmdet") if target == "cocovid" else None
    default = ClassFilter.for_flavor(out_flavor, ts.source_format, ts.categories)
    chosen = default.with_options(classes=tuple(classes) if classes is not None else None, min_conf=min_conf,
                                  ignore_as=ignore_as)  # type: ignore[arg-type]
    chosen = chosen.check(ts.categories)  # an unknown class name stops here, before anything is written
    note, report = None, None
    if not chosen.is_noop:
        ts, report = chosen.apply(ts)
        if report.dropped or report.ignored:  # a shorter category list alone needs no note
            if chosen.origin:
                whose = f"--flavor {out_flavor}" if flavor else f"the input's flavour ({out_flavor})"
                note = (f"{whose} keeps {chosen.describe()} ({chosen.origin}): {report.summary()}; "
                        "pass --classes/--min-conf/--ignore-as to change")
            else:
                note = f"kept {chosen.describe()}: {report.summary()}"

    if target == "cocovid":
        from .cocovid import write_cocovid

        check_output_free(output, overwrite)
        write_cocovid(ts, output, flavor)
    else:
        from .mot import write_mot

        # MOT file names are "<seq>/img1/000001.jpg": relative to the split directory, so a
        # single sequence directory's images live under its parent.
        root = Path(images_from) if images_from is not None else None
        if root is None and src.is_dir():
            root = src.parent if (src / "seqinfo.ini").exists() or (src / "gt").is_dir() else src
        if images != "none" and root is None:
            raise UsageError("--images needs --images-from (the directory image file names are relative to)")
        write_mot(ts, output, images_from=root, image_mode=images, overwrite=overwrite)
    return ConvertResult(output=output, format=target, trackset=ts, report=report, note=note,
                         warnings=list(ts.warnings))
