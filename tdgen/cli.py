"""The ``tdgen`` command line: one small function per command, each delegating to the library.

Exit codes (DESIGN §8): 0 success, 1 runtime failure, 2 bad usage or bad input. Bad input is
reported as one line on stderr: ``error: <file>: <where>: <what>``.
"""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .tracks.errors import TdgenError, UsageError

app = typer.Typer(
    name="tdgen",
    help="Synthetic multi-object-tracking training data from a tracklet-conditioned video diffusion "
    "model (TrackDiffusion).\n\nRead tracklets from COCO-VID, MOT Challenge or YouTube-VIS files, "
    "generate videos that follow them, and merge the result into a real training set.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> "typer.Exit":
    # One plain line, whatever the terminal: scripts grep for it.
    print(f"error: {message}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Turn library exceptions into one-line messages and exit codes; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TdgenError as e:
            raise _fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except MemoryError:
            raise _fail("out of memory", 1) from None
        except OSError as e:
            raise _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        print(f"tdgen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    pass


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def _warn(messages: list[str], quiet: bool = False) -> None:
    if quiet:
        return
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)


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


def _read(path: Path, fmt: InputFormat, drop_invalid: bool = False):
    from .tracks.io import read_tracks

    return read_tracks(path, None if fmt == InputFormat.auto else fmt.value,
                       invalid_boxes="drop" if drop_invalid else "error")


def _check_output(path: Path, overwrite: bool) -> None:
    from .tracks.errors import OutputError

    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (pass --overwrite to replace it)")


# --------------------------------------------------------------------------- inspect
@app.command()
@handle_errors
def inspect(
    ann: Path = typer.Argument(..., help="COCO-VID JSON, MOT Challenge directory (one sequence or a split), "
                               "or YouTube-VIS JSON."),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--format", "-f", help="Input format (auto-detected)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Summarise an annotation source: videos, frames, tracks, boxes, categories, problems.

    Example: tdgen inspect data/MOT17/annotations/half-train_cocoformat.json
    """
    from .tracks.summary import summarize

    ts = _read(ann, fmt)
    s = summarize(ts)
    if as_json:
        _emit_json(s)
        return
    out.print(f"[bold]{s['source']}[/]  ({s['format']})")
    t = Table(show_header=False, box=None, pad_edge=False)
    for k in ("videos", "frames", "tracks", "boxes", "crowd_boxes", "empty_frames"):
        t.add_row(k.replace("_", " "), f"{s[k]:,}")
    out.print(t)
    ct = Table(title="categories", title_justify="left")
    for col in ("id", "name", "tracks", "boxes"):
        ct.add_column(col, justify="right" if col != "name" else "left")
    for c in s["categories"]:
        ct.add_row(str(c["id"]), c["name"], f"{c['tracks']:,}", f"{c['boxes']:,}")
    out.print(ct)
    dt = Table(title="distributions", title_justify="left")
    dt.add_column("")
    for col in ("min", "p10", "median", "mean", "p90", "max"):
        dt.add_column(col, justify="right")
    for key in ("frames_per_video", "track_length", "boxes_per_frame", "box_width", "box_height"):
        d = s[key]
        dt.add_row(key.replace("_", " "), *(f"{d[c]:g}" for c in ("min", "p10", "median", "mean", "p90", "max")))
    out.print(dt)
    if s["problems"]:
        out.print("[bold yellow]problems[/]")
        for p in s["problems"]:
            out.print(f"  - {p}")
    else:
        out.print("[green]no problems found[/]")


# --------------------------------------------------------------------------- convert
@app.command()
@handle_errors
def convert(
    src: Path = typer.Argument(..., help="Input: COCO-VID JSON, MOT directory (sequence or split) or YouTube-VIS JSON."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .json file (COCO-VID) or directory (MOT)."),
    to: Optional[OutputFormat] = typer.Option(None, "--to", help="Output format [default: cocovid for a "
                                              ".json output, else mot]."),
    flavor: Optional[Flavor] = typer.Option(None, "--flavor", help="COCO-VID flavour: mmdet (0-based frame_id, "
                                            "instance_id) or bytetrack (1-based frame_id, track_id) "
                                            "[default: the input's, or mmdet]."),
    split: Optional[Split] = typer.Option(None, "--split", help="Keep only the first (half-train) or second "
                                          "(half-val) half of every video, split as mmdet and ByteTrack do."),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--from", help="Input format (auto-detected)."),
    images: ImageMode = typer.Option(ImageMode.none, "--images", help="MOT output: link or copy the frames."),
    images_from: Optional[Path] = typer.Option(None, "--images-from", help="Root that image file names are "
                                               "relative to [default: the MOT input directory]."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid-boxes", help="Skip boxes with non-positive or NaN "
                                      "size instead of stopping."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary."),
) -> None:
    """Convert between COCO-VID (both flavours), MOT Challenge and YouTube-VIS.

    Make the file the synth example reads:

      tdgen convert MOT17/train --split half-train -o mot17_half_train.json
    """
    ts = _read(src, fmt, drop_invalid)
    if split is not None:
        from .tracks.mot import half_split

        ts = half_split(ts, split.value)
    target = to or (OutputFormat.cocovid if output.suffix.lower() == ".json" else OutputFormat.mot)
    if target == OutputFormat.cocovid:
        from .tracks.cocovid import write_cocovid

        _check_output(output, overwrite)
        write_cocovid(ts, output, flavor.value if flavor else None)
    else:
        from .tracks.mot import write_mot

        if flavor is not None:
            raise UsageError("--flavor applies to COCO-VID output only")
        # MOT file names are "<seq>/img1/000001.jpg": relative to the split directory, so a
        # single sequence directory's images live under its parent.
        root = images_from
        if root is None and src.is_dir():
            root = src.parent if (src / "seqinfo.ini").exists() or (src / "gt").is_dir() else src
        if images != ImageMode.none and root is None:
            raise UsageError("--images needs --images-from (the directory image file names are relative to)")
        write_mot(ts, output, images_from=root, image_mode=images.value, overwrite=overwrite)
    _warn(ts.warnings, as_json)
    summary = {"output": str(output), "format": target.value, "videos": ts.num_videos, "frames": ts.num_frames,
               "tracks": ts.num_tracks, "boxes": ts.num_boxes, "warnings": ts.warnings}
    if as_json:
        _emit_json(summary)
    else:
        out.print(f"wrote {output} ({target.value}): {ts.num_videos:,} videos, {ts.num_frames:,} frames, "
                  f"{ts.num_tracks:,} tracks, {ts.num_boxes:,} boxes")


# --------------------------------------------------------------------------- merge
@app.command()
@handle_errors
def merge(
    base: Path = typer.Argument(..., help="The real training set (COCO-VID); kept as it is."),
    extras: List[Path] = typer.Argument(..., help="Sets to add (e.g. synth/annotations.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="Merged COCO-VID file."),
    prefix: List[str] = typer.Option([], "--prefix", help="Prefix for the image paths and video names of the "
                                     "extra sets: once for all, or once per extra set."),
    add_categories: bool = typer.Option(False, "--add-categories", help="Append categories the base lacks "
                                        "instead of stopping."),
    ratio: Optional[float] = typer.Option(None, "--ratio", help="Keep this fraction of each extra set's videos."),
    max_videos: Optional[int] = typer.Option(None, "--max-videos", help="Keep at most this many videos of each "
                                             "extra set."),
    seed: int = typer.Option(0, "--seed", help="Seed of the video subsampling."),
    flavor: Optional[Flavor] = typer.Option(None, "--flavor", help="Output flavour [default: the base's]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary."),
) -> None:
    """Fold extra sets (e.g. synthetic clips) into a real COCO-VID training set.

    Ids are offset past the base's maxima, categories matched by name, and every id checked
    for uniqueness before anything is written.

      tdgen merge mot17_half_train.json synth/annotations.json --prefix synth -o train_plus_synth.json
    """
    from .tracks.cocovid import write_cocovid
    from .tracks.io import read_tracks
    from .tracks.merge import MergeOptions, merge_tracksets

    _check_output(output, overwrite)
    base_ts = read_tracks(base)
    extra_ts = [read_tracks(p) for p in extras]
    merged = merge_tracksets(base_ts, extra_ts, MergeOptions(prefixes=tuple(prefix), add_categories=add_categories,
                                                             ratio=ratio, max_videos=max_videos, seed=seed))
    write_cocovid(merged, output, flavor.value if flavor else None)
    _warn(merged.warnings, as_json)
    summary = {"output": str(output), "videos": merged.num_videos, "frames": merged.num_frames,
               "tracks": merged.num_tracks, "boxes": merged.num_boxes,
               "added": {"videos": merged.num_videos - base_ts.num_videos,
                         "frames": merged.num_frames - base_ts.num_frames,
                         "boxes": merged.num_boxes - base_ts.num_boxes}}
    if as_json:
        _emit_json(summary)
    else:
        a = summary["added"]
        out.print(f"wrote {output}: {merged.num_videos:,} videos, {merged.num_frames:,} frames, "
                  f"{merged.num_boxes:,} boxes (+{a['videos']:,} videos, +{a['frames']:,} frames, "
                  f"+{a['boxes']:,} boxes from {len(extras)} extra set(s))")
        if prefix:
            out.print(f"image paths of the extra sets start with {', '.join(repr(p) for p in prefix)}: link them "
                      f"under your data prefix, e.g. ln -s $(realpath synth/images) <data_root>/{prefix[0]}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
