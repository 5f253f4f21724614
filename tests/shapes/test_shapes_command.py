"""The ``shapes`` command function, mounted on a Typer app the way tdgen.cli registers it."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("cv2")

from tdgen.cli import handle_errors  # noqa: E402
from tdgen.cli.shapes import parse_size, shapes_command  # noqa: E402
from tdgen.errors import UsageError  # noqa: E402


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    a.command("shapes")(handle_errors(shapes_command))
    a.command("noop")(lambda: None)  # two commands, so "shapes" is a subcommand as in tdgen
    return a


def test_json_summary_and_files(tmp_path, app):
    out = tmp_path / "s"
    r = CliRunner().invoke(app, ["shapes", "-o", str(out), "--videos", "2", "--frames", "4", "--size", "64x48",
                                 "--seed", "5", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["videos"] == 2 and summary["frames"] == 8 and summary["size"] == [64, 48]
    assert (out / "annotations.json").is_file() and (out / "captions.json").is_file()
    assert sorted(p.name for p in (out / "backgrounds").iterdir()) == ["shapes_0000.png", "shapes_0001.png"]


def test_text_summary_and_errors(tmp_path, app):
    out = tmp_path / "s"
    runner = CliRunner()
    r = runner.invoke(app, ["shapes", "-o", str(out), "--videos", "1", "--frames", "2"])
    assert r.exit_code == 0 and "wrote 1 videos" in r.stdout
    r = runner.invoke(app, ["shapes", "-o", str(out), "--videos", "1", "--frames", "2"])
    assert r.exit_code == 2 and "already exists" in r.output and "--overwrite" in r.output
    r = runner.invoke(app, ["shapes", "-o", str(tmp_path / "t"), "--size", "big"])
    assert r.exit_code == 2 and "WxH" in r.output
    r = runner.invoke(app, ["shapes", "-o", str(tmp_path / "t"), "--videos", "0"])
    assert r.exit_code == 2 and "--videos" in r.output
    assert not (tmp_path / "t").exists()


def test_parse_size():
    assert parse_size("128x96") == (128, 96)
    assert parse_size(" 64X64 ") == (64, 64)
    with pytest.raises(UsageError):
        parse_size("128")
