"""The ``tdgen`` command line: one small function per command, each delegating to the library.

Exit codes (DESIGN §8): 0 success, 1 runtime failure, 2 bad usage or bad input. Bad input is
reported as one line on stderr: ``error: <file>: <where>: <what>``.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .sizes import parse_wh
from .errors import TdgenError, UsageError

try:  # recent Typer releases carry their own copy of Click: its usage errors are these classes
    from typer._click import exceptions as _click_errors
except ImportError:  # older Typer runs on Click itself
    from click import exceptions as _click_errors


def _lower_first(text: str) -> str:
    # "No such option" -> "no such option", but "ANN ..." and "'x' ..." stay as they are
    return text[0].lower() + text[1:] if len(text) > 1 and text[0].isupper() and text[1].islower() else text


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _param_label(e: Exception) -> Optional[str]:
    """The option (its long name) or argument (upper case, as in the help) a usage error is about."""
    hint = getattr(e, "param_hint", None)
    if hint:
        hints = [hint] if isinstance(hint, str) else list(hint)
        return " / ".join(str(h).strip("'\"") for h in hints)
    param = getattr(e, "param", None)
    if param is None:
        return None
    if getattr(param, "param_type_name", None) == "option":
        opts = list(param.opts) or [str(param.name)]
        return next((o for o in opts if o.startswith("--")), opts[0])
    return str(param.name).upper()


def _bad_value_text(e: Exception) -> str:
    text = _one_line(str(getattr(e, "message", "") or e)).rstrip(".")
    if text.startswith("Value error, "):  # a ValueError raised inside Typer's validation
        text = text[len("Value error, "):]
    # Typer's pydantic-backed checks say "Input should be ..." without the value: put it back
    cause = e.__cause__
    errors = cause.errors() if cause is not None and callable(getattr(cause, "errors", None)) else None
    value = errors[0].get("input") if errors else None
    if isinstance(value, str) and text.startswith("Input should be "):
        text = f"{value!r} should be {text[len('Input should be '):]}"
    return _lower_first(text)


def usage_message(e: Exception) -> str:
    """A Click/Typer usage error as the one line printed after ``error: ``, without the usage box."""
    label = _param_label(e)
    if isinstance(e, _click_errors.MissingParameter):
        kind = e.param_type or getattr(e.param, "param_type_name", None) or "parameter"
        text = f"missing {kind} {label}" if label else f"missing {kind}"
        return f"{text}: {_lower_first(_one_line(e.message))}" if e.message else text
    if isinstance(e, _click_errors.BadParameter):
        text = _bad_value_text(e)
        return f"{label}: {text}" if label else f"invalid value: {text}"
    return _lower_first(_one_line(e.format_message()).rstrip("."))


class TdgenGroup(TyperGroup):
    """The root command group: Click's usage errors (a bad option value, a missing argument, an
    unknown option or command) become one ``error: ...`` line and exit 2, like every other tdgen
    error. Hooked at ``main`` so the console script, ``python -m tdgen.cli`` and Typer's
    ``CliRunner`` (which calls ``main`` of this group) all behave the same."""

    def main(self, args: Any = None, prog_name: Optional[str] = None, complete_var: Optional[str] = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:  # a caller that handles Click's exceptions itself
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        try:
            # Not standalone: Click returns the exit code of typer.Exit (--help, --version, the
            # commands' own exits) and raises its usage errors instead of drawing them.
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except _click_errors.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `tdgen` / `tdgen model`: the help
                text = e.format_message()
                if text.strip():  # plain Click; Typer's rich help is already printed
                    print(text, file=sys.stderr)
                sys.exit(e.exit_code)
            _fail(usage_message(e), 2)
            sys.exit(2)
        except _click_errors.ClickException as e:  # e.g. a file Click could not open
            _fail(_lower_first(_one_line(e.format_message())), e.exit_code)
            sys.exit(e.exit_code)
        except typer.Abort:
            _fail("aborted", 1)
            sys.exit(1)
        sys.exit(rv if type(rv) is int else 0)


app = typer.Typer(
    cls=TdgenGroup,
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


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """tdgen's own warnings as one plain ``warning: ...`` line; anything else as Python shows it."""
    if category.__module__.split(".")[0] == "tdgen":
        print(f"warning: {message}", file=sys.stderr, flush=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def handle_errors(fn: Callable) -> Callable:
    """Turn library exceptions into one-line messages and exit codes; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
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
    from .errors import OutputError

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
    to: Optional[OutputFormat] = typer.Option(None, "--to", help="Output format (default: cocovid for a "
                                              ".json output, else mot)."),
    flavor: Optional[Flavor] = typer.Option(None, "--flavor", help="COCO-VID flavour: mmdet (0-based frame_id, "
                                            "instance_id) or bytetrack (1-based frame_id, track_id) "
                                            "(default: the input's, or mmdet)."),
    split: Optional[Split] = typer.Option(None, "--split", help="Keep only the first (half-train) or second "
                                          "(half-val) half of every video, split as mmdet and ByteTrack do."),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--from", help="Input format (auto-detected)."),
    images: ImageMode = typer.Option(ImageMode.none, "--images", help="MOT output: link or copy the frames."),
    images_from: Optional[Path] = typer.Option(None, "--images-from", help="Root that image file names are "
                                               "relative to (default: the MOT input directory)."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid-boxes", help="Skip boxes with non-positive or NaN "
                                      "size instead of stopping."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Keep only these classes, comma-separated "
                                          "(e.g. pedestrian,static_person) (default: pedestrian for --flavor "
                                          "bytetrack from MOT ground truth, else all)."),
    min_conf: Optional[float] = typer.Option(None, "--min-conf", help="Boxes of those classes with a lower conf "
                                             "(MOT's 0/1 'consider' flag) become ignore rows (default: 1 for "
                                             "--flavor bytetrack from MOT ground truth, else none)."),
    ignore_as: Optional[str] = typer.Option(None, "--ignore-as", metavar="crowd|drop|keep",
                                            help="Ignore rows (low conf, and MOT's distractor classes "
                                            "person_on_vehicle, static_person, distractor, reflection, crowd): "
                                            "crowd = iscrowd=1 ignore regions, drop, or keep as ordinary boxes "
                                            "(default: drop)."),
    all_detector_copies: bool = typer.Option(False, "--all-detector-copies", help="MOT17 input: read every "
                                             "detector copy of a sequence (-DPM, -FRCNN, -SDP), not only "
                                             "-FRCNN."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary."),
) -> None:
    """Convert between COCO-VID (both flavours), MOT Challenge and YouTube-VIS.

    Make the file the synth example reads:

      tdgen convert MOT17/train --split half-train -o mot17_half_train.json

    --flavor bytetrack from MOT ground truth keeps what ByteTrack's converter keeps (pedestrians
    with conf 1, one category); --flavor mmdet keeps every class with mot_conf and visibility.
    """
    from .tracks.classes import IGNORE_AS, ClassFilter, parse_class_list

    # every flag is checked before the input is read, so nothing half-done is left behind
    class_list = parse_class_list(classes) if classes is not None else None
    if min_conf is not None and not (min_conf == min_conf and abs(min_conf) != float("inf")):
        raise UsageError(f"--min-conf must be a finite number, got {min_conf}")
    if ignore_as is not None and ignore_as not in IGNORE_AS:
        raise UsageError(f"--ignore-as must be one of {', '.join(IGNORE_AS)}, not {ignore_as!r}")
    target = to or (OutputFormat.cocovid if output.suffix.lower() == ".json" else OutputFormat.mot)
    if target == OutputFormat.mot and flavor is not None:
        raise UsageError("--flavor applies to COCO-VID output only")
    if target == OutputFormat.mot and ignore_as == "crowd":
        raise UsageError("--ignore-as crowd: MOT gt.txt has no crowd regions; write COCO-VID (a .json output) "
                         "or pass --ignore-as drop or keep")
    if all_detector_copies:
        from .tracks.io import detect_format
        from .tracks.mot import read_mot

        if (fmt.value if fmt != InputFormat.auto else detect_format(src)) != "mot":
            raise UsageError("--all-detector-copies applies to a MOT directory input only")
        ts = read_mot(src, detector_copies="all")
    else:
        ts = _read(src, fmt, drop_invalid)
    if split is not None:
        from .tracks.mot import half_split

        ts = half_split(ts, split.value)

    # which boxes are targets: the output flavour's default, changed by the flags
    out_flavor = (flavor.value if flavor else ts.style.get("flavor") or "mmdet") if target == OutputFormat.cocovid \
        else None
    default = ClassFilter.for_flavor(out_flavor, ts.source_format, ts.categories)
    chosen = default.with_options(classes=class_list, min_conf=min_conf, ignore_as=ignore_as)  # type: ignore[arg-type]
    chosen = chosen.check(ts.categories)  # an unknown class name stops here, before anything is written
    note = None
    filter_report = None
    if not chosen.is_noop:
        ts, filter_report = chosen.apply(ts)
        if filter_report.dropped or filter_report.ignored:  # a shorter category list alone needs no note
            if chosen.origin:
                whose = f"--flavor {out_flavor}" if flavor else f"the input's flavour ({out_flavor})"
                note = (f"{whose} keeps {chosen.describe()} ({chosen.origin}): {filter_report.summary()}; "
                        "pass --classes/--min-conf/--ignore-as to change")
            else:
                note = f"kept {chosen.describe()}: {filter_report.summary()}"

    if target == OutputFormat.cocovid:
        from .tracks.cocovid import write_cocovid

        _check_output(output, overwrite)
        write_cocovid(ts, output, flavor.value if flavor else None)
    else:
        from .tracks.mot import write_mot

        # MOT file names are "<seq>/img1/000001.jpg": relative to the split directory, so a
        # single sequence directory's images live under its parent.
        root = images_from
        if root is None and src.is_dir():
            root = src.parent if (src / "seqinfo.ini").exists() or (src / "gt").is_dir() else src
        if images != ImageMode.none and root is None:
            raise UsageError("--images needs --images-from (the directory image file names are relative to)")
        write_mot(ts, output, images_from=root, image_mode=images.value, overwrite=overwrite)
    _warn(ts.warnings, as_json)
    if note and not as_json:
        print(f"note: {note}", file=sys.stderr, flush=True)
    summary = {"output": str(output), "format": target.value, "videos": ts.num_videos, "frames": ts.num_frames,
               "tracks": ts.num_tracks, "boxes": ts.num_boxes, "warnings": ts.warnings,
               "classes": None if filter_report is None else {**filter_report.as_dict(), "note": note}}
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
    flavor: Optional[Flavor] = typer.Option(None, "--flavor", help="Output flavour (default: the base's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary."),
) -> None:
    """Fold extra sets (e.g. synthetic clips) into a real COCO-VID training set.

    Ids are offset past the base's maxima, categories matched by name, and every id checked
    for uniqueness before anything is written.

      tdgen merge mot17_half_train.json synth/annotations.json --prefix synth -o train_plus_synth.json
    """
    from .tracks.merge import MergeOptions
    from .tracks.streammerge import merge_files

    _check_output(output, overwrite)
    # streams big compact files (bounded memory); anything else goes through the in-memory merge
    merged = merge_files(base, extras, output, MergeOptions(prefixes=tuple(prefix), add_categories=add_categories,
                                                            ratio=ratio, max_videos=max_videos, seed=seed),
                         flavor.value if flavor else None)
    _warn(merged.warnings, as_json)
    summary = {"output": str(output), "videos": merged.num_videos, "frames": merged.num_frames,
               "tracks": merged.num_tracks, "boxes": merged.num_boxes,
               "added": {"videos": merged.num_videos - merged.base_videos,
                         "frames": merged.num_frames - merged.base_frames,
                         "boxes": merged.num_boxes - merged.base_boxes},
               "links": _merge_links(extras, prefix)}
    if as_json:
        _emit_json(summary)
    else:
        a = summary["added"]
        out.print(f"wrote {output}: {merged.num_videos:,} videos, {merged.num_frames:,} frames, "
                  f"{merged.num_boxes:,} boxes (+{a['videos']:,} videos, +{a['frames']:,} frames, "
                  f"+{a['boxes']:,} boxes from {len(extras)} extra set(s))")
        if summary["links"]:
            # An extra set's file names are relative to its annotation file's folder, and the merged
            # names are '<prefix>/<file name>': so <data_root>/<prefix> must be that folder.
            out.print("image paths of the extra sets start with their prefix; make them resolve from the folder "
                      "the base's image paths are relative to (<data_root>):")
            for link in summary["links"]:
                out.print(f"  ln -s {link['target']} <data_root>/{link['prefix']}")


def _merge_links(extras: List[Path], prefixes: List[str]) -> list[dict[str, str]]:
    """The symlinks that make a merged file's prefixed image paths resolve: prefix -> extra's folder."""
    if not prefixes:
        return []
    per = prefixes if len(prefixes) == len(extras) else prefixes * len(extras)
    links, seen = [], set()
    for extra, p in zip(extras, per):
        p = p.strip("/")
        if p and p not in seen:
            seen.add(p)
            # a MOT directory's file names are relative to the directory itself
            links.append({"prefix": p, "target": str(extra.resolve() if extra.is_dir() else extra.resolve().parent)})
    return links


# --------------------------------------------------------------------------- preview
@app.command()
@handle_errors
def preview(
    src: Path = typer.Argument(..., help="Annotation source (COCO-VID or YouTube-VIS JSON, MOT directory) or a "
                               "synth output directory (its annotations.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output: .mp4 (video of the frames) or .png/.jpg "
                                "(contact sheet: one row per video)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Root that image file names are relative to; "
                                          "tried before the annotation's directory and its images/ folder. "
                                          "Frames without an image are drawn on gray."),
    videos: List[str] = typer.Option([], "--videos", help="Only these videos, in this order (repeat the option "
                                      "or separate names by commas) (default: all, at most 32)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Per video, use only the first N sampled "
                                             "frames (default: all)."),
    every: int = typer.Option(1, "--every", help="Take every K-th frame."),
    cols: int = typer.Option(8, "--cols", help="Contact sheet: frames per video (evenly spread)."),
    fps: float = typer.Option(10.0, "--fps", help="Video: frames per second."),
    size: Optional[str] = typer.Option(None, "--size", help="WxH of the video frames or of the sheet's thumbnails "
                                       "(default: the first frame's size; 320 px wide thumbnails)."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary."),
) -> None:
    """Draw boxes, track ids and categories over the frames, to eyeball an input or a synth output.

      tdgen preview synth/ -o synth_sheet.png
      tdgen preview mot17_half_train.json --images MOT17/train --videos MOT17-02-FRCNN -o mot17_02.mp4
    """
    from .preview import load_preview_source, output_kind, parse_size, render_preview

    output_kind(output)  # an unknown extension fails before the input is read
    wh = parse_size(size)
    ts = load_preview_source(src)
    report: dict = {}
    render_preview(ts, output, image_root=[images] if images is not None else None, videos=videos or None,
                   max_frames=max_frames, every=every, cols=cols, fps=fps, size=wh,
                   on_warning=lambda m: _warn([m]), report=report)
    if as_json:
        _emit_json(report)
    else:
        out.print(f"wrote {output} ({report['kind']}): {report['videos']:,} videos, {report['frames']:,} frames, "
                  f"{report['boxes']:,} boxes")


# --------------------------------------------------------------------------- synth
def _parse_size(text: Optional[str]) -> Any:
    from .synth.domain import parse_out_size

    return parse_out_size(text)


@app.command()
@handle_errors
def synth(
    ann: Optional[Path] = typer.Option(None, "--ann", "-a", help="Tracklets to follow: COCO-VID JSON, MOT "
                                       "directory or YouTube-VIS JSON."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (frames, annotations.json, "
                             "manifest.parquet). Re-running the same command resumes."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model directory, or a preset name "
                                        "(tiny = random weights, to try the pipeline)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per clip (default: the model's)."),
    stride: Optional[int] = typer.Option(None, "--stride", help="Source frames between clip starts "
                                         "(default: frames x step, no overlap)."),
    step: int = typer.Option(1, "--step", help="Take every STEP-th source frame."),
    slots: Optional[int] = typer.Option(None, "--slots", help="Tracks per clip (default: the model's, 20)."),
    overflow: str = typer.Option("longest", "--overflow", help="More tracks than slots: 'longest' (default) or "
                                 "'largest' keep training targets first (not crowd/ignore, conf > 0), then the "
                                 "tracks present in most frames, or with the largest boxes; 'split' makes "
                                 "several clips so no track is left out. Left-out tracks are named in the plan "
                                 "line, --json and manifest.parquet."),
    min_tracks: int = typer.Option(1, "--min-tracks", help="Skip windows with fewer tracks."),
    videos: List[str] = typer.Option([], "--videos", help="Only these source videos (repeatable)."),
    max_clips: Optional[int] = typer.Option(None, "--max-clips", help="At most this many clips (a seeded sample)."),
    seed: int = typer.Option(0, "--seed", help="Run seed: each clip's seed derives from it and the clip id."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", help="Clips per batch (text encoding, decoding and "
                                   "writing are batched; a clip's frames never depend on it)."),
    unet_batch: int = typer.Option(1, "--unet-batch", help="Clips per UNet forward. Above 1 it can be faster on "
                                   "a GPU with a small model, but the kernels then round differently, so a "
                                   "clip's frames change by a few levels with the batch it lands in."),
    steps: int = typer.Option(50, "--steps", help="Sampler steps (DPM-Solver++)."),
    cfg: float = typer.Option(5.0, "--cfg", help="Classifier-free guidance scale (1 = no guidance)."),
    guidance_kind: str = typer.Option("cfg", "--guidance-kind", help="cfg, or rescaled (the published demo's "
                                      "norm-rescaled guidance; use with --cfg 1.2 for its weights)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Prompt template with {categories} and {video} "
                                         "(default: the model's)."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="Captions per source video: JSON object "
                                            "or '<video><TAB><caption>' lines."),
    out_size: Optional[str] = typer.Option(None, "--out-size", help="Resize frames (and boxes) to WxH, or "
                                           "'source' for each source video's own size (default: the model's "
                                           "resolution)."),
    image_format: str = typer.Option("png", "--image-format", help="png or jpg."),
    quality: int = typer.Option(95, "--quality", help="JPEG quality, 1..100."),
    flavor: Flavor = typer.Option(Flavor.mmdet, "--flavor", help="annotations.json flavour."),
    mot: bool = typer.Option(False, "--mot", help="Also write MOT Challenge sequences in OUT/mot/<clip>/ "
                             "(seqinfo.ini, img1/000001.jpg, gt/gt.txt; jpg frames are hard links, png frames "
                             "get jpg copies), as ByteTrack's and mmdet's MOT converters read them."),
    preview: bool = typer.Option(False, "--preview", help="Also write an mp4 and a PNG sheet per clip with "
                                 "boxes and ids drawn (preview/)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: generate only shard K of N (stable by clip "
                                        "id). Under torchrun/accelerate launch the shard is the process rank."),
    finalize_only: bool = typer.Option(False, "--finalize", help="Only rebuild annotations.json and "
                                       "manifest.parquet from the finished clips."),
    plan_only: bool = typer.Option(False, "--plan-only", "--dry-run", help="Only print the plan (clips, tracks "
                                   "per clip, dropped tracks, frames to write, output size): no model is "
                                   "loaded and OUT is not created. With --json, one JSON object."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if "
                                         "available (this process's local rank under a launcher), else cpu)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32, fp16 or bf16 (default: fp32 on cpu, "
                                        "fp16 on cuda)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in an --out made with other settings."),
    drop_boxes: bool = typer.Option(False, "--drop-boxes", help="Ablation: generate with every box dropped "
                                    "(the model sees no layout) while annotations.json still lists the "
                                    "tracklets, so 'tdgen eval' shows what the boxes contribute."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Categories to generate, comma-separated "
                                          "(default: the training targets; for MOT data every class but static "
                                          "people, people on vehicles, distractors, reflections and crowds, or "
                                          "only pedestrians with --flavor bytetrack). Other boxes take no slot "
                                          "and no prompt word, and are left out of the annotations."),
    min_conf: Optional[float] = typer.Option(None, "--min-conf", help="Generate only boxes with at least this "
                                             "conf (default: 1 for MOT data, so conf-0 ignore rows take no slot)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary at the end."),
) -> None:
    """Generate synthetic clips that follow the tracklets of ANN, with annotations that match them.

      tdgen synth --ann mot17_half_train.json --out synth/ --model tiny --max-clips 4

    Frames go to OUT/images/<clip>/, one annotation fragment per clip to OUT/clips/, and
    OUT/annotations.json (COCO-VID) plus OUT/manifest.parquet are rebuilt at the end. A killed
    run resumes where it stopped when the same command is run again. One run holds OUT at a
    time (the ranks of one torchrun/accelerate launch or --shard K/N share it); another is
    refused with the holder's PID.

    When a window has more tracks than --slots, --overflow longest/largest keeps training
    targets first (tracks that are not crowd/ignore regions and have conf > 0), then the
    longest/largest tracks. Every track left out is counted and named: in the plan line on
    stderr, in --json (plan.dropped) and in manifest.parquet (dropped_track_ids). --plan-only
    shows the plan without a model.
    """
    from .synth import SynthOptions, finalize, parse_shard, run_synth

    if finalize_only:
        # refuses a folder without a synth run; --quality sets the jpg copies of png frames in mot/
        summary = finalize(out, flavor=flavor.value, mot=mot, jpeg_quality=quality)
        if as_json:
            _emit_json(summary)
        else:
            print(f"wrote {summary['paths']['annotations']}: {summary['clips']} clips, {summary['frames']:,} frames, "
                  f"{summary['boxes']:,} boxes")
        return
    if ann is None:
        raise UsageError("--ann is required (the annotation file whose tracklets the clips follow)")
    from .synth.generator import PipelineGenerator, check_generator_flags
    from .synth.runner import shard_from_env, validate_options

    def build_options(md: dict) -> SynthOptions:
        # clip length, slots and prompt follow the model unless given (0 is refused, not "default")
        return SynthOptions(
            ann=ann, out=out, frames=frames if frames is not None else md["frames"], stride=stride, step=step,
            slots=slots if slots is not None else md["slots"], overflow=overflow, min_tracks=min_tracks,
            videos=tuple(videos), max_clips=max_clips, seed=seed, batch_size=batch_size, steps=steps, guidance=cfg,
            guidance_kind=guidance_kind, prompt_template=prompt if prompt is not None else md["prompt_template"],
            captions=captions, out_size=_parse_size(out_size), image_format=image_format, quality=quality,
            flavor=flavor.value, mot=mot, preview=preview, overwrite=overwrite,
            shard=parse_shard(shard) if shard else None, drop_boxes=drop_boxes,
            classes=parse_class_list(classes) if classes is not None else None, min_conf=min_conf,
        )

    from .tracks.classes import parse_class_list

    # Every flag is checked before a model is resolved or anything is written.
    validate_options(build_options({"frames": 1, "slots": 1, "prompt_template": ""}))
    if prompt is not None:
        from .prompts import parse_template

        parse_template(prompt, source="--prompt template")
    check_generator_flags(device=device, dtype=dtype, guidance_kind=guidance_kind, unet_batch=unet_batch)
    env_shard = shard_from_env()
    if shard and env_shard:
        raise UsageError("--shard cannot be combined with a torchrun/accelerate launch (the rank is the shard)")
    if plan_only:
        from .modeldir import DEFAULT_PROMPT_TEMPLATE, model_defaults
        from .synth.runner import plan_lines
        from .synth.runner import plan_only as make_plan

        # the model is only asked for what the flags leave open (its tdgen.json: no weights loaded)
        if frames is not None and slots is not None and out_size is not None:
            md = {"frames": frames, "slots": slots, "prompt_template": DEFAULT_PROMPT_TEMPLATE, "resolution": None}
        else:
            if model is None:
                from .modeldir import default_model

                model = default_model()
            md = model_defaults(model)
        opts = build_options(md)
        plan = make_plan(opts, resolution=md.get("resolution"))
        _warn_domain(md, plan, opts.out_size)
        if as_json:
            _emit_json(plan)
        else:
            print("\n".join(plan_lines(plan)))
        return
    if model is None:
        from .modeldir import default_model

        model = default_model()
    from .launch import default_dtype, pick_device

    device = pick_device(device)
    dtype = default_dtype(device, dtype)
    state: dict = {}

    def make_generator():
        g = PipelineGenerator(model, device=device, dtype=dtype, steps=steps, guidance=cfg,
                              guidance_kind=guidance_kind, slots=slots, frames=frames, unet_batch=unet_batch,
                              drop_boxes=drop_boxes)
        state["gen"] = g
        return g

    from .modeldir import model_defaults

    md = model_defaults(model)
    opts = build_options(md)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]synth[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("clips"),
                        TextColumn("{task.fields[fps]}"), TimeRemainingColumn(),
                        console=Console(stderr=True), disable=quiet or as_json, transient=False)
    t_start = {}
    import time as _time

    def on_start(total: int, already: int) -> None:
        t_start["t"] = _time.perf_counter()
        t_start["task"] = progress.add_task("synth", total=total, completed=already, fps="")

    def on_progress(done: int, total: int, frames_done: int) -> None:
        dt = _time.perf_counter() - t_start["t"]
        progress.update(t_start["task"], completed=done, fps=f"{frames_done / dt:.1f} frames/s" if dt > 0 else "")

    def on_plan(plan: dict) -> None:
        from .synth.runner import plan_line

        # a dropped track is never silent: even --quiet reports it
        if not quiet or plan["dropped_tracks"]:
            print(("warning: " if quiet else "") + plan_line(plan), file=sys.stderr, flush=True)
        _warn_domain(md, plan, opts.out_size)

    with progress:
        result = run_synth(opts, make_generator, progress=on_progress, on_start=on_start, on_plan=on_plan)
    summary = result.as_dict()
    if as_json:
        _emit_json(summary)
    elif not quiet:
        fin = result.finalized or {}
        print(f"{result.done} clips generated, {result.skipped} already done, {len(result.failed)} failed "
              f"in {result.seconds:.1f} s; {fin.get('clips', 0)} clips in {out / 'annotations.json'}")
    if result.interrupted:
        raise typer.Exit(130)
    if result.failed:
        print(f"error: {len(result.failed)} clips failed (see {out / 'failures.jsonl'}); run again to retry them",
              file=sys.stderr)
        raise typer.Exit(1)


def _warn_domain(md: dict, plan: dict, out_size: Any) -> None:
    """One warning line each when the clips' categories or aspect are outside the model's domain
    (``md``: :func:`tdgen.modeldir.model_defaults`)."""
    from .synth.domain import domain_warnings

    if md.get("domain") is None:
        return
    for w in domain_warnings(md["domain"], plan["categories_used"], [tuple(s) for s in plan["source_sizes"]],
                             out_size, md["label"]):
        print(f"warning: {w}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- model
model_app = typer.Typer(help="Create, import and check model directories.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _model_resolution(text: Optional[str], default: tuple[int, int]) -> tuple[int, int]:
    return default if text is None else parse_wh(text, "--resolution", multiple_of=8)


class _import_progress:
    """A progress bar on stderr while the UNet file is written (on a terminal only); the context
    value is the ``progress(done, total, key)`` callback, or None."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("writing unet"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)

    def __enter__(self) -> Optional[Callable[[int, int, str], None]]:
        if self.bar is None:
            return None
        self.bar.start()
        task = self.bar.add_task("unet", total=None)
        return lambda done, total, key: self.bar.update(task, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_import_report(report: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(report.as_dict())
        return
    from rich import box

    from .weights.report import GROUP_LABELS

    out.print(report.headline(), markup=False)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (("module group", "left"), ("tensors", "right"), ("found", "right"),
                          ("fresh", "right"), ("fresh tensors start as", "left")):
        table.add_column(name, justify=justify)
    for group, count in report.groups.items():
        table.add_row(GROUP_LABELS.get(group, group), f"{count.tensors:,}", f"{count.found:,}", f"{count.fresh:,}",
                      report.group_state(group))
    out.print(table)
    for line in report.detail_lines():
        out.print(line, markup=False)


@model_app.command("init")
@handle_errors
def model_init(
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write."),
    preset: str = typer.Option("tiny", "--preset", help="tiny: a randomly initialised tiny model (tests, "
                               "trying the whole chain without weights)."),
    gligen: Optional[Path] = typer.Option(None, "--gligen", help="Build the starting TrackDiffusion model instead: "
                                          "a diffusers GLIGEN (SD-1.4 text-box) directory supplies the spatial layers, "
                                          "fusers, instance-token MLP, VAE, text encoder, tokenizer and scheduler."),
    modelscope: Optional[Path] = typer.Option(None, "--modelscope", help="With --gligen: a diffusers ModelScope "
                                              "text-to-video directory (or its unet/) supplies the temporal layers."),
    seed: int = typer.Option(0, "--seed", help="Initialisation seed (of the fresh modules with --gligen)."),
    resolution: Optional[str] = typer.Option(None, "--resolution", help="WxH the model generates at (default: "
                                             "128x128 for tiny, the GLIGEN UNet's sample size x 8 with --gligen)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per clip (default: 8 for tiny, 16 with "
                                         "--gligen)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing directory."),
    json_out: bool = typer.Option(False, "--json", help="With --gligen: print the report as one JSON object."),
) -> None:
    """Write a model directory (diffusers layout + tdgen.json).

      tdgen model init --preset tiny -o models/tiny
      tdgen model init --gligen gligen-1-4-text-box --modelscope text-to-video-ms-1.7b -o models/td-init
    """
    from .modeldir import init_tiny_model

    if (gligen is None) != (modelscope is None):
        raise UsageError("--gligen and --modelscope go together: the GLIGEN UNet gives the spatial layers, the "
                         "ModelScope UNet3D the temporal ones")
    _check_output(output, overwrite)
    if gligen is not None:
        from .weights import init_from_gligen

        size = _model_resolution(resolution, (0, 0)) if resolution is not None else None
        with _import_progress(not json_out) as progress:
            report = init_from_gligen(gligen, modelscope, output, overwrite=overwrite, resolution=size,
                                      frames=16 if frames is None else frames, seed=seed, progress=progress)
        _print_import_report(report, json_out)
        return
    if preset != "tiny":
        raise UsageError(f"unknown preset {preset!r} (available: tiny); real weights: see `tdgen model --help`")
    size = _model_resolution(resolution, (128, 128))
    path = init_tiny_model(output, seed=seed, resolution=size, frames=8 if frames is None else frames,
                           overwrite=overwrite)
    print(f"wrote {path}")


@model_app.command("import-official")
@handle_errors
def model_import_official(
    unet_dir: Path = typer.Argument(..., help="Published TrackDiffusion UNet directory (config.json + "
                                    "diffusion_pytorch_model.safetensors or .bin), e.g. "
                                    "trackdiffusion_ytvis/modelscope_ft/unet or TrackDiffusion_Pretrain/unet."),
    base: Path = typer.Option(..., "--base", help="Stable Diffusion 1.x directory: its vae/, text_encoder/ (CLIP "
                              "ViT-L/14), tokenizer/ and scheduler/ are copied."),
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write."),
    resolution: Optional[str] = typer.Option(None, "--resolution", help="WxH the model generates at (default "
                                             "384x256, the maintainers' size for the released weights)."),
    frames: int = typer.Option(16, "--frames", help="Frames per clip."),
    seed: int = typer.Option(0, "--seed", help="Initialisation seed of module groups the checkpoint lacks."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing directory."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Import a published TrackDiffusion UNet into a model directory, checking every key and shape.

      tdgen model import-official trackdiffusion_ytvis/modelscope_ft/unet --base stable-diffusion-v1-5 -o models/td
    """
    from .weights import import_official

    _check_output(output, overwrite)
    size = _model_resolution(resolution, (384, 256))
    with _import_progress(not json_out) as progress:
        report = import_official(unet_dir, base, output, overwrite=overwrite, resolution=size, frames=frames,
                                 seed=seed, progress=progress)
    _print_import_report(report, json_out)


# --------------------------------------------------------------------------- shapes, eval
def _register_domain_commands() -> None:
    from .evaluate.command import eval_command
    from .shapes.command import shapes_command
    from .train.command import train_command

    app.command("shapes")(handle_errors(shapes_command))
    app.command("train")(handle_errors(train_command))
    app.command("eval")(handle_errors(eval_command))


_register_domain_commands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
