"""Commands on annotation files: ``inspect``, ``convert``, ``merge`` and ``preview``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ._app import app, handle_errors
from ._options import Flavor, parse_category_map, ImageMode, InputFormat, Json, OutputFormat, Overwrite, Split
from ._output import check_output, emit_json, note, out, warn


def _read(path: Path, fmt: InputFormat, drop_invalid: bool = False):
    from ..tracks.io import read_tracks

    return read_tracks(path, None if fmt == InputFormat.auto else fmt.value,
                       invalid_boxes="drop" if drop_invalid else "error")


# --------------------------------------------------------------------------- inspect
@app.command()
@handle_errors
def inspect(
    ann: Path = typer.Argument(..., help="COCO-VID JSON, MOT Challenge directory (one sequence or a split), "
                               "or YouTube-VIS JSON."),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--format", "-f", help="Input format (auto-detected; "
                                    "with --compare, of both files)."),
    compare: Optional[Path] = typer.Option(None, "--compare", metavar="OTHER", help="Show the layout statistics "
                                           "of ANN and OTHER side by side, with the ratio OTHER/ANN."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Summarise an annotation source: videos, frames, tracks, boxes, categories, problems, and the
    hard cases of tracking (occlusion pairs, crossings, gaps and re-appearances, speed, scale,
    box sizes per category; docs/layout_stats.md defines each).

    Example: tdgen inspect data/MOT17/annotations/half-train_cocoformat.json

    Compare a set with what a layout recipe made of it:

      tdgen inspect mot17_half_train.json --compare hard_cases.json
    """
    from ..tracks.layout_stats import compare_stats, layout_stats
    from ..tracks.summary import summarize

    ts = _read(ann, fmt)
    if compare is not None:
        other = _read(compare, fmt)
        a = {"source": ts.source, "format": ts.source_format, **layout_stats(ts)}
        b = {"source": other.source, "format": other.source_format, **layout_stats(other)}
        ratio = compare_stats(a, b)
        if as_json:
            emit_json({"a": a, "b": b, "ratio": ratio})
        else:
            _print_comparison(a, b, ratio)
        return
    s = summarize(ts)
    s["layout"] = layout_stats(ts)
    if as_json:
        emit_json(s)
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
    _print_layout(s["layout"])
    if s["problems"]:
        out.print("[bold yellow]problems[/]")
        for p in s["problems"]:
            out.print(f"  - {p}")
    else:
        out.print("[green]no problems found[/]")


# Rows of the layout tables: (label, key, unit) for the counts and the distributions.
_LAYOUT_COUNTS = (("seen boxes", "seen_boxes"), ("occlusion pairs", "occlusion_pairs"),
                  ("occlusion pairs per frame", "occlusion_pairs_per_frame"), ("crossings", "crossings"),
                  ("crossings per frame", "crossings_per_frame"), ("gaps (re-appearances)", "gaps"),
                  ("tracks with gaps", "tracks_with_gaps"), ("re-appearances per video", "reappearances_per_video"))
_LAYOUT_DISTRIBUTIONS = (("gap length", "gap_length", "frames"), ("speed", "speed", "px/frame"),
                         ("relative speed", "relative_speed", "box sizes/frame"),
                         ("scale change", "scale_change", "|log ratio|/frame"),
                         ("track life", "track_length", "frames"))


def _num(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.4g}"


def _print_layout(lay: dict) -> None:
    """The hard cases of tracking: counts, distributions, box sizes per category."""
    t = Table(title="hard cases (visibility >= 0.25 is seen; docs/layout_stats.md)", title_justify="left",
              show_header=False)
    t.add_column("")
    t.add_column("", justify="right")
    for label, key in _LAYOUT_COUNTS:
        t.add_row(label, _num(lay[key]))
    out.print(t)
    mt = Table(title="motion and gaps", title_justify="left")
    for col in ("", "median", "p90", "unit"):
        mt.add_column(col, justify="right" if col in ("median", "p90") else "left")
    for label, key, unit in _LAYOUT_DISTRIBUTIONS:
        mt.add_row(label, _num(lay[key]["median"]), _num(lay[key]["p90"]), unit)
    out.print(mt)
    bt = Table(title="box size, sqrt(w*h) px", title_justify="left")
    for col in ("category", "boxes", "q1", "median", "q3", "iqr"):
        bt.add_column(col, justify="left" if col == "category" else "right")
    for name, d in lay["box_size"].items():
        bt.add_row(name, _num(d["count"]), *(_num(d[k]) for k in ("q1", "median", "q3", "iqr")))
    out.print(bt)


def _comparison_rows(a: dict, b: dict, ratio: dict) -> list[tuple[str, object, object, object]]:
    """(label, A, B, B/A) for every number the two layout dicts hold."""
    rows = [(k, a.get(k), b.get(k), ratio.get(k)) for k in ("videos", "frames", "tracks", "boxes")]
    rows += [(label, a.get(k), b.get(k), ratio.get(k)) for label, k in _LAYOUT_COUNTS]
    for label, key, unit in _LAYOUT_DISTRIBUTIONS:
        for q in ("median", "p90"):
            rows.append((f"{label} {q} ({unit})", a[key][q], b[key][q], ratio[key][q]))
    for name in {**a["box_size"], **b["box_size"]}:
        da, db, dr = a["box_size"].get(name, {}), b["box_size"].get(name, {}), ratio["box_size"][name]
        for q in ("count", "median", "iqr"):
            rows.append((f"box size {name} {q}", da.get(q), db.get(q), dr[q]))
    return rows


def _print_comparison(a: dict, b: dict, ratio: dict) -> None:
    out.print(f"[bold]A[/] {a['source']}  ({a['format']})")
    out.print(f"[bold]B[/] {b['source']}  ({b['format']})")
    t = Table()
    for col in ("", "A", "B", "B/A"):
        t.add_column(col, justify="left" if not col else "right")
    for label, va, vb, r in _comparison_rows(a, b, ratio):
        t.add_row(label, _num(va), _num(vb), "-" if r is None else f"{r:.3g}")
    out.print(t)


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
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Convert between COCO-VID (both flavours), MOT Challenge and YouTube-VIS.

    Make the file the synth example reads:

      tdgen convert MOT17/train --split half-train -o mot17_half_train.json

    --flavor bytetrack from MOT ground truth keeps what ByteTrack's converter keeps (pedestrians
    with conf 1, one category); --flavor mmdet keeps every class with mot_conf and visibility.
    """
    from ..tracks.classes import parse_class_list
    from ..tracks.conversion import convert_tracks

    result = convert_tracks(
        src, output, fmt=None if fmt == InputFormat.auto else fmt.value, to=to.value if to else None,
        flavor=flavor.value if flavor else None, split=split.value if split else None, images=images.value,
        images_from=images_from, drop_invalid=drop_invalid,
        classes=parse_class_list(classes) if classes is not None else None, min_conf=min_conf,
        ignore_as=ignore_as, all_detector_copies=all_detector_copies, overwrite=overwrite)
    warn(result.warnings, as_json)
    if result.note and not as_json:
        note(result.note)
    if as_json:
        emit_json(result.as_dict())
    else:
        ts = result.trackset
        out.print(f"wrote {output} ({result.format}): {ts.num_videos:,} videos, {ts.num_frames:,} frames, "
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
    drop_categories: Optional[str] = typer.Option(None, "--drop-categories", help="Leave these categories of the "
                                                  "extra sets out, comma-separated (their boxes, and tracks left "
                                                  "empty), e.g. static_person,car to merge into a 1-class "
                                                  "pedestrian base."),
    category_map: List[str] = typer.Option([], "--map", metavar="OLD=NEW", help="Rename a category of the extra "
                                           "sets before matching by name (repeatable; several OLD may share one "
                                           "NEW), e.g. --map person=pedestrian."),
    seed: int = typer.Option(0, "--seed", help="Seed of the video subsampling."),
    flavor: Optional[Flavor] = typer.Option(None, "--flavor", help="Output flavour (default: the base's)."),
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Fold extra sets (e.g. synthetic clips) into a real COCO-VID training set.

    Ids are offset past the base's maxima, categories matched by name (after --drop-categories
    and --map), and every id checked for uniqueness before anything is written.

      tdgen merge mot17_half_train.json synth/annotations.json --prefix synth -o train_plus_synth.json
    """
    from ..tracks.classes import parse_class_list
    from ..tracks.merge import MergeOptions
    from ..tracks.streammerge import merge_files

    dropped = tuple(parse_class_list(drop_categories, "--drop-categories")) if drop_categories is not None else ()
    mapping = parse_category_map(category_map)
    check_output(output, overwrite)
    # streams big compact files (bounded memory); anything else goes through the in-memory merge
    merged = merge_files(base, extras, output, MergeOptions(prefixes=tuple(prefix), add_categories=add_categories,
                                                            ratio=ratio, max_videos=max_videos, seed=seed,
                                                            drop_categories=dropped, category_map=mapping),
                         flavor.value if flavor else None)
    warn(merged.warnings, as_json)
    summary = {"output": str(output), "videos": merged.num_videos, "frames": merged.num_frames,
               "tracks": merged.num_tracks, "boxes": merged.num_boxes,
               "added": {"videos": merged.num_videos - merged.base_videos,
                         "frames": merged.num_frames - merged.base_frames,
                         "boxes": merged.num_boxes - merged.base_boxes},
               "links": _merge_links(extras, prefix)}
    if as_json:
        emit_json(summary)
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
    as_json: Json = False,
) -> None:
    """Draw boxes, track ids and categories over the frames, to eyeball an input or a synth output.

      tdgen preview synth/ -o synth_sheet.png
      tdgen preview mot17_half_train.json --images MOT17/train --videos MOT17-02-FRCNN -o mot17_02.mp4
    """
    from ..preview import load_preview_source, output_kind, parse_size, render_preview

    output_kind(output)  # an unknown extension fails before the input is read
    wh = parse_size(size)
    ts = load_preview_source(src)
    report: dict = {}
    render_preview(ts, output, image_root=[images] if images is not None else None, videos=videos or None,
                   max_frames=max_frames, every=every, cols=cols, fps=fps, size=wh,
                   on_warning=lambda m: warn([m]), report=report)
    if as_json:
        emit_json(report)
    else:
        out.print(f"wrote {output} ({report['kind']}): {report['videos']:,} videos, {report['frames']:,} frames, "
                  f"{report['boxes']:,} boxes")


