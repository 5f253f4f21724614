"""``tdgen shapes``: render a synthetic tracking set of moving shapes."""

from __future__ import annotations

from pathlib import Path

import typer

from ..sizes import parse_wh
from ._app import app, handle_errors
from ._options import Json, Overwrite
from ._output import Progress, emit_json

__all__ = ["shapes_command", "parse_size"]


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``"128x96"`` -> ``(128, 96)`` (width, height); a one-line UsageError otherwise."""
    return parse_wh(text, flag)


def shapes_command(
    output: Path = typer.Option(..., "--output", "-o", help="Directory to create (must not exist unless "
                                "--overwrite)."),
    videos: int = typer.Option(20, "--videos", help="Number of videos."),
    frames: int = typer.Option(32, "--frames", help="Frames per video."),
    size: str = typer.Option("128x128", "--size", help="Frame size as WxH (each side 32..4096)."),
    seed: int = typer.Option(0, "--seed", help="Run seed: video k depends only on (seed, k)."),
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Render a synthetic tracking set of moving shapes with exact boxes and identities.

    Each video shows 2-10 shapes (circle, square, triangle, star, hexagon; 1-6 at a time) in
    saturated colours on a plain or faintly textured background. Shapes drift, grow and shrink,
    occlude each other, and enter and leave through the borders. Boxes are the tight boxes of
    the drawn pixels, clipped to the frame; every box records its visibility (the fraction of
    its pixels not hidden by shapes in front).

    The output is a complete training or test set:

      OUT/images/shapes_0000/000001.png ...   frames
      OUT/annotations.json                    COCO-VID (mmdet flavour) with visibility
      OUT/captions.json                       video name -> caption, for --captions
      OUT/backgrounds/shapes_0000.png         clean backgrounds (oracle checks in tdgen eval)

    The same seed gives byte-identical files, and video k does not depend on --videos, so a
    small set is a prefix of a larger one.

    Example: tdgen shapes -o data/shapes --videos 100 && tdgen eval data/shapes
    """
    from ..shapes.render import check_render_args, render_shapes

    width, height = parse_size(size)
    check_render_args(output, videos=videos, frames=frames, size=(width, height), seed=seed, overwrite=overwrite)
    with Progress("shapes", enabled=not as_json) as progress:
        task = progress.add("shapes", total=videos, unit="videos")
        summary = render_shapes(output, videos=videos, frames=frames, size=(width, height), seed=seed,
                                overwrite=overwrite,
                                progress=lambda done, total: progress.update(task, completed=done))
    if as_json:
        emit_json(summary)
        return
    print(f"wrote {summary['videos']} videos, {summary['frames']} frames, {summary['tracks']} tracks, "
          f"{summary['boxes']} boxes ({width}x{height}, seed {seed}) to {output} in {summary['seconds']:.1f}s")


app.command("shapes")(handle_errors(shapes_command))
