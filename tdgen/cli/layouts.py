"""``tdgen layouts``: new tracklet layouts (hard cases) from an annotation set, for ``tdgen synth``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import typer

from ._app import app, handle_errors
from ._options import InputFormat, Json, Overwrite
from ._output import check_output, emit_json, out, warn


def _help() -> str:
    from ..layouts.recipes import bundled_recipes
    from ..layouts.transforms import TRANSFORMS

    lines = ["Make new tracklet layouts from an annotation set: K transformed copies of",
             "every video, as a COCO-VID tracklet set (no frames) that `tdgen synth --ann`",
             "reads, and OUT.provenance.csv beside it (one row per track: source video and",
             "track, transforms). The output holds only the new videos (<video>_L01, ...);",
             "`tdgen merge` adds them to the source set.",
             "",
             "Example:",
             "  tdgen layouts train.json --recipe hard-cases --copies 1 -o hard.json",
             "  tdgen synth --ann hard.json --out synth_hard",
             "",
             "Transforms, with their recipe parameters (default, range); a number may be",
             "a list of two, lo and hi, drawn per copy:"]
    for spec in TRANSFORMS.values():
        lines.append(f"  {spec.name}: {spec.help}")
        for q in spec.params:  # wrapped here: the help is a block Click and rich print as it is
            lines.extend(textwrap.wrap(q.describe(), width=76, initial_indent="      ",
                                       subsequent_indent="          "))
    lines.append("  every step also takes p (probability that it runs on a copy, default 1)")
    lines.append("")
    lines.append("Bundled recipes (--recipe NAME; or a .toml file, see docs/layouts.md):")
    for name, desc in bundled_recipes().items():
        lines.extend(textwrap.wrap(f"{name}: {desc}", width=76, initial_indent="  ", subsequent_indent="      "))
    # a block Click prints as it is (no rewrapping)
    return "\b\n" + "\n".join(lines)


@app.command(help=_help(), short_help="New tracklet layouts (crowds, crossings, re-appearances, camera "
             "motion) from an annotation set, for synth.")
@handle_errors
def layouts(
    src: Path = typer.Argument(..., help="Source annotations: COCO-VID JSON, MOT Challenge directory or YouTube-VIS JSON."),
    output: Path = typer.Option(..., "--output", "-o", help="Output COCO-VID .json (the provenance table is written "
                                "beside it as <name>.provenance.csv)."),
    recipe: str = typer.Option("hard-cases", "--recipe", "-r", help="A bundled recipe's name or a recipe .toml file."),
    copies: int = typer.Option(1, "--copies", "-k", help="Transformed copies of each source video."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same bytes."),
    fmt: InputFormat = typer.Option(InputFormat.auto, "--format", "-f", help="Input format (auto-detected)."),
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    from ..errors import UsageError
    from ..layouts.provenance import provenance_path
    from ..layouts.recipes import load_recipe
    from ..layouts.run import MAX_COPIES, make_layouts, write_layouts
    from ..tracks.io import read_tracks

    # every flag and the recipe are checked before the source is read or anything is written
    if not 1 <= copies <= MAX_COPIES:
        raise UsageError(f"--copies {copies}: must be between 1 and {MAX_COPIES}")
    if seed < 0:
        raise UsageError(f"--seed {seed}: must be >= 0")
    if output.suffix != ".json":
        raise UsageError(f"--output {output}: must be a .json file (COCO-VID)")
    prov = provenance_path(output)
    check_output(output, overwrite)
    check_output(prov, overwrite)
    rec = load_recipe(recipe)
    ts = read_tracks(src, None if fmt == InputFormat.auto else fmt.value)
    result = make_layouts(ts, rec, copies=copies, seed=seed)
    if result.empty_copies:
        shown = ", ".join(result.empty_copies[:5]) + (" ..." if len(result.empty_copies) > 5 else "")
        warn([f"{rec.source}: {len(result.empty_copies)} copies lost every box ({shown}); they are kept as "
              "empty videos"], as_json)
    flavor = ts.style.get("flavor") if ts.style.get("flavor") in ("mmdet", "bytetrack") else "mmdet"
    path, prov = write_layouts(result, output, flavor)
    summary = {"output": str(path), "provenance": str(prov), "recipe": rec.name, "copies": copies, "seed": seed,
               **result.summary()}
    if as_json:
        emit_json(summary)
    else:
        by = ", ".join(f"{k} {v:,}" for k, v in sorted(summary["tracks_by_origin"].items()))
        out.print(f"wrote {path}: {summary['videos']:,} videos, {summary['frames']:,} frames, "
                  f"{summary['tracks']:,} tracks ({by}), {summary['boxes']:,} boxes; provenance in {prov}")
