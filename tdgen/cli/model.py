"""``tdgen model``: create and import model directories."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.table import Table

from ..errors import UsageError
from ..sizes import parse_wh
from ._app import app, handle_errors
from ._output import Progress, check_output, emit_json, out

model_app = typer.Typer(help="Create, import and check model directories.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _model_resolution(text: Optional[str], default: tuple[int, int]) -> tuple[int, int]:
    return default if text is None else parse_wh(text, "--resolution", multiple_of=8)


@contextmanager
def _import_progress(enabled: bool) -> Iterator[Callable[[int, int, str], None]]:
    """Progress while the UNet file is written; the value is the ``progress(done, total, key)`` callback."""
    with Progress("model", enabled=enabled, transient=True) as progress:
        task: list[int] = []

        def tick(done: int, total: int, key: str) -> None:
            if not task:
                task.append(progress.add("writing unet", total=total, unit="tensors"))
            progress.update(task[0], completed=done, total=total)

        yield tick


def _print_import_report(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_dict())
        return
    from rich import box

    from ..weights.report import GROUP_LABELS

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
    from ..modeldir import init_tiny_model

    if (gligen is None) != (modelscope is None):
        raise UsageError("--gligen and --modelscope go together: the GLIGEN UNet gives the spatial layers, the "
                         "ModelScope UNet3D the temporal ones")
    check_output(output, overwrite)
    if gligen is not None:
        from ..weights import init_from_gligen

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
    from ..weights import import_official

    check_output(output, overwrite)
    size = _model_resolution(resolution, (384, 256))
    with _import_progress(not json_out) as progress:
        report = import_official(unet_dir, base, output, overwrite=overwrite, resolution=size, frames=frames,
                                 seed=seed, progress=progress)
    _print_import_report(report, json_out)


