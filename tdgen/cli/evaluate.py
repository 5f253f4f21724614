"""``tdgen eval``: score generated clips of the shapes domain, or a tracker's results on any clips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import UsageError
from ._app import app, handle_errors
from ._output import Progress, emit_json, out as stdout_console, warn

__all__ = ["eval_command", "report_table", "tracks_table"]

# (key, label, format) of the rows printed for each evaluated set
_ROWS = [
    ("videos", "videos", "{:,}"), ("frames", "frames", "{:,}"), ("gt", "GT boxes", "{:,}"),
    ("ignored", "ignored GT (occluded)", "{:,}"), ("det", "detections", "{:,}"),
    ("recall", "recall @ IoU 0.5", "{:.3f}"), ("precision", "precision @ IoU 0.5", "{:.3f}"),
    ("mean_iou", "mean IoU (matched)", "{:.3f}"), ("identity_consistency", "identity consistency", "{:.3f}"),
    ("hota", "HOTA", "{:.3f}"), ("deta", "DetA", "{:.3f}"), ("assa", "AssA", "{:.3f}"),
    ("mota", "MOTA", "{:.3f}"), ("idf1", "IDF1", "{:.3f}"), ("id_switches", "ID switches", "{:,}"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    return fmt.format(value)


def report_table(results: list[tuple[str, dict]]):
    """A rich Table with one column per ``(title, evaluate_dir result)``."""
    from rich.table import Table

    t = Table(title="shapes-domain evaluation", title_justify="left")
    t.add_column("metric")
    for title, _ in results:
        t.add_column(title, justify="right")
    for key, label, fmt in _ROWS:
        t.add_row(label, *(_cell(r.get(key), fmt) for _, r in results))
    t.add_row("background", *(str(r.get("background")) for _, r in results))
    return t


# (key, header, format) of the columns of the --tracks table (narrow enough for 80 columns; the
# JSON report has every number)
_TRACK_COLUMNS = [
    ("gt", "GT", "{:,}"), ("det", "det", "{:,}"), ("hota", "HOTA", "{:.3f}"), ("mota", "MOTA", "{:.3f}"),
    ("idf1", "IDF1", "{:.3f}"), ("id_switches", "IDsw", "{:,}"), ("track_ap", "TrackAP", "{:.3f}"),
    ("track_ap50", "AP50", "{:.3f}"),
]


def tracks_table(result: dict):
    """A rich Table of an ``evaluate_tracks`` result: one row per video, then the overall row."""
    from rich.table import Table

    missing = any(row["result"] == "missing" for row in result["per_video"])
    t = Table(title=f"tracker results {result['results']} (scores are fractions 0..1)", title_justify="left",
              caption="* no result file: scored as an empty result" if missing else None, caption_justify="left")
    t.add_column("video")
    for _, header, _ in _TRACK_COLUMNS:
        t.add_column(header, justify="right")
    for row in result["per_video"]:
        name = row["video"] + ("*" if row["result"] == "missing" else "")
        t.add_row(name, *(_cell(row.get(k), fmt) for k, _, fmt in _TRACK_COLUMNS))
    t.add_section()
    t.add_row("overall", *(_cell(result.get(k), fmt) for k, _, fmt in _TRACK_COLUMNS), style="bold")
    return t


def _eval_tracks(target: Path, results: Path, min_visibility: Optional[float], as_json: bool,
                 out: Optional[Path]) -> None:
    from ..atomic import atomic_write_text
    from ..evaluate.evaluate import resolve_target
    from ..evaluate.tracker_eval import evaluate_tracks

    _, ann, _ = resolve_target(target)
    with Progress("eval", enabled=not as_json, transient=True) as progress:
        task = progress.add("tracks", unit="videos")

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        res = evaluate_tracks(ann, results, min_visibility=min_visibility or 0.0, progress=tick)
    warn(res["warnings"], as_json)
    report = {"tracks": res}
    if out is not None:
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    if as_json:
        emit_json(report)
        return
    stdout_console.print(tracks_table(res))
    if out is not None:
        print(f"wrote {out}")


def eval_command(
    target: Path = typer.Argument(..., metavar="DIR_OR_ANN", help="A tdgen synth or tdgen shapes output "
                                  "directory, or an annotations.json (image paths relative to its directory)."),
    oracle: Optional[Path] = typer.Option(None, "--oracle", help="Also evaluate this real rendered set "
                                          "(tdgen shapes output) and print the two side by side."),
    frames_root: Optional[Path] = typer.Option(None, "--frames-root", help="Directory image file names are "
                                               "relative to (default: the one holding annotations.json)."),
    estimate_bg: bool = typer.Option(False, "--estimate-background", help="Ignore backgrounds/ and estimate "
                                     "every background from its clip, as for generated clips."),
    min_visibility: Optional[float] = typer.Option(None, "--min-visibility", help="Ignore GT boxes less visible "
                                                   "than this (hidden behind other shapes). Default 0.4; with "
                                                   "--tracks 0 (every box counts, as in MOT Challenge)."),
    tracks: Optional[Path] = typer.Option(None, "--tracks", metavar="RESULTS_DIR", help="Score a tracker's "
                                          "results instead: one MOT result file <video name>.txt per video "
                                          "(frame,id,x,y,w,h,score,...; frame 1-based) against the annotations."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON line instead of a table."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the full report (with per-video rows) "
                                       "to this JSON file."),
) -> None:
    """Score clips of the shapes domain with a classical detector: box alignment and identity.

    Every frame goes through a background-difference + colour-segmentation detector (no
    learned model). Detections are matched to the annotation boxes at IoU >= 0.5 and linked
    by a simple IoU tracker, giving:

      recall, precision, mean IoU  how well the frames show the boxes they were asked for
      identity consistency         how stable each object's colour stays (1.0 = same object)
      HOTA, MOTA, IDF1             tracking quality of the detections

    On real rendered clips (tdgen shapes) the detector finds >= 95 % of the boxes, so low
    numbers on generated clips mean the generator, not the detector, missed. The clean
    backgrounds in backgrounds/ are used when present; otherwise each is estimated from its
    clip (per-pixel median).

    With --tracks RESULTS_DIR it scores a tracker's output on the clips instead (no images are
    read): HOTA, MOTA, IDF1 and ID switches with TrackEval, and TrackAP (the YouTube-VIS AP over
    spatio-temporal box IoU, mean over IoU 0.50:0.95) and AP50, per clip and overall. Crowd boxes
    (iscrowd, MOT conf 0) are ignore regions. A clip without a result file scores as an empty
    result, with a warning.

    Every score is a fraction in 0..1 (1.0 = perfect), never a percentage; counts are counts.

    Example: tdgen eval synth_out --oracle data/shapes --out report.json

    Example: tdgen eval synth_out --tracks bytetrack_out/track_results --json
    """
    if tracks is not None:
        for given, flag in ((oracle, "--oracle"), (frames_root, "--frames-root"),
                            (estimate_bg or None, "--estimate-background")):
            if given is not None:
                raise UsageError(f"{flag} is for scoring with the shapes detector; it does nothing with --tracks")
        _eval_tracks(target, tracks, min_visibility, as_json, out)
        return
    from ..atomic import atomic_write_text
    from ..evaluate.evaluate import DEFAULT_MIN_VISIBILITY, evaluate_dir, resolve_target

    if min_visibility is None:
        min_visibility = DEFAULT_MIN_VISIBILITY

    jobs: list[tuple[str, Path, Path, Optional[Path]]] = []
    root, ann, bgs = resolve_target(target)
    jobs.append(("target", frames_root or root, ann, None if estimate_bg else bgs))
    if oracle is not None:
        o_root, o_ann, o_bgs = resolve_target(oracle)
        jobs.append(("oracle", o_root, o_ann, None if estimate_bg else o_bgs))

    results: list[tuple[str, dict]] = []
    with Progress("eval", enabled=not as_json, transient=True) as progress:
        for name, r, a, b in jobs:
            task = progress.add(name, unit="videos")

            def tick(done: int, total: int, task=task) -> None:
                progress.update(task, completed=done, total=total)

            results.append((name, evaluate_dir(r, a, b, min_visibility=min_visibility, progress=tick)))
    report: dict[str, Any] = {name: res for name, res in results}
    if out is not None:
        atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    if as_json:
        emit_json(report)
        return
    titles = [(f"{name}\n{Path(res['annotations']).parent.name or res['annotations']}", res) for name, res in results]
    stdout_console.print(report_table(titles))
    if out is not None:
        print(f"wrote {out}")


app.command("eval")(handle_errors(eval_command))
