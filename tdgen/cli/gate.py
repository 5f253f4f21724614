"""``tdgen gate``: check a finished synth output with a detector and keep only what it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import OutputError
from ._app import app, handle_errors
from ._options import BoxAction, BoxActionOpt, Detections, Detector, GateLevel, GateLevelOpt, Iou, Json, MinBoxIou, \
    MinRecall
from ._output import Progress, emit_json, out as stdout_console

__all__ = ["gate_command", "make_detector", "summary_table"]


def make_detector(detector: Optional[str], detections: Optional[Path]) -> Any:
    """The detector backend for the flags (imported only when the command runs)."""
    from ..gate.factory import make_detector as factory

    return factory(detector, detections)


def _fmt(value: Any, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def summary_table(report: dict[str, Any]):
    """A rich Table of a gate report's totals: counts, then recall / IoU quantiles."""
    from rich.table import Table

    tot = report["totals"]
    s = report["settings"]
    t = Table(title=f"gate ({report['detector']}, level {s['gate_level']}, recall@{s['iou']:g})",
              title_justify="left")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("clips", f"{tot['clips']:,}")
    t.add_row("kept", f"{tot['kept']:,}")
    t.add_row("rejected", f"{tot['rejected']:,}")
    t.add_row("boxes scored", f"{tot['boxes']:,}")
    t.add_row(f"boxes found (IoU >= {s['iou']:g})", f"{tot['found']:,}")
    if s["gate_level"] != "clip":
        t.add_row(f"boxes {'dropped' if s['box_action'] == 'drop' else 'made ignore regions'} "
                  f"(IoU < {s['min_box_iou']:g})", f"{tot['boxes_dropped'] + tot['boxes_ignored']:,}")
    q = Table(title="per-clip score distribution", title_justify="left")
    q.add_column("")
    for name in ("mean", "min", "p10", "p50", "p90", "max"):
        q.add_column(name, justify="right")
    for key, label in (("recall", "recall, all clips"), ("recall_kept", "recall, kept clips"),
                       ("mean_iou", "mean IoU, all clips")):
        d = tot[key]
        q.add_row(label, *(_fmt(d[n]) for n in ("mean", "min", "p10", "p50", "p90", "max")))
    return t, q


def gate_command(
    synth_dir: Path = typer.Argument(..., metavar="SYNTH_DIR", help="A tdgen synth output directory."),
    detector: Detector = None,
    detections: Detections = None,
    min_recall: MinRecall = 0.5,
    iou: Iou = 0.5,
    gate_level: GateLevelOpt = GateLevel.clip,
    min_box_iou: MinBoxIou = 0.3,
    box_action: BoxActionOpt = BoxAction.drop,
    as_json: Json = False,
) -> None:
    """Check every finished clip of a synth output with a detector; keep only what it shows.

    Each frame's annotated boxes are matched one-to-one to the detector's boxes (Hungarian on
    IoU; crowd / ignore regions are not scored). A box is found when its match has IoU >= --iou;
    a clip's recall is the fraction of its boxes found. Then:

      SYNTH_DIR/annotations.json    only the kept clips, weak boxes dropped or marked
      SYNTH_DIR/rejected/<clip>/    rejected clips' frames (and <clip>.json, their fragments)
      SYNTH_DIR/manifest.parquet    gate_recall, gate_mean_iou, gate_decision per clip
      SYNTH_DIR/gate_report.json    per clip score and decision, totals and quantiles

    Running it again gives the same files; running it with other settings re-decides every
    clip (rejected clips that now pass are moved back).

    Example: tdgen gate synth_out --detector shapes --min-recall 0.6 --gate-level both
    """
    from ..gate.apply import gate_synth_dir
    from ..gate.policy import GatePolicy
    from ..gate.score import check_iou

    # every flag is checked before the detector loads and before anything is written
    from ..gate.factory import detector_choice

    detector, detections = detector_choice(detector, detections)
    check_iou(iou)
    policy = GatePolicy(level=gate_level.value, min_recall=min_recall, min_box_iou=min_box_iou,
                        box_action=box_action.value)
    if not synth_dir.is_dir():
        raise OutputError(f"{synth_dir}: no such directory (nothing to gate)")
    det = make_detector(detector, detections)
    with Progress("gate", enabled=not as_json, transient=True) as progress:
        task = progress.add("gate", unit="clips")
        result = gate_synth_dir(synth_dir, det, policy, iou=iou,
                                progress=lambda done, total: progress.update(task, completed=done, total=total))
    report = result["report"]
    if as_json:
        emit_json({"detector": report["detector"], **report["settings"], **report["totals"],
                   "moved_aside": result["moved_aside"], "moved_back": result["moved_back"],
                   "paths": result["paths"]})
        return
    for table in summary_table(report):
        stdout_console.print(table)
    tot = report["totals"]
    if tot["rejected"]:
        print(f"{tot['rejected']} rejected clip(s) are in {synth_dir / report['rejected_dir']} "
              f"({result['moved_aside']} moved there now)")
    if result["moved_back"]:
        print(f"{result['moved_back']} clip(s) rejected before pass now and were moved back")
    print(f"wrote {result['paths']['annotations']} ({tot['kept']} clips), {result['paths']['manifest']}, "
          f"{result['paths']['report']}")


app.command("gate")(handle_errors(gate_command))
