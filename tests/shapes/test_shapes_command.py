"""``tdgen shapes``, in process through the tdgen app (Typer's CliRunner)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("cv2")

from tdgen.cli.shapes import parse_size  # noqa: E402
from tdgen.errors import UsageError  # noqa: E402

from helpers import tdgen  # noqa: E402


def test_json_summary_and_files(tmp_path):
    out = tmp_path / "s"
    r = tdgen("shapes", "-o", out, "--videos", "2", "--frames", "4", "--size", "64x48", "--seed", "5", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["videos"] == 2 and summary["frames"] == 8 and summary["size"] == [64, 48]
    assert (out / "annotations.json").is_file() and (out / "captions.json").is_file()
    assert sorted(p.name for p in (out / "backgrounds").iterdir()) == ["shapes_0000.png", "shapes_0001.png"]


def test_text_summary_and_errors(tmp_path):
    out = tmp_path / "s"
    r = tdgen("shapes", "-o", out, "--videos", "1", "--frames", "2")
    assert r.exit_code == 0 and "wrote 1 videos" in r.stdout
    r = tdgen("shapes", "-o", out, "--videos", "1", "--frames", "2")
    assert r.exit_code == 2 and "already exists" in r.output and "--overwrite" in r.output
    r = tdgen("shapes", "-o", tmp_path / "t", "--size", "big")
    assert r.exit_code == 2 and "WxH" in r.output
    r = tdgen("shapes", "-o", tmp_path / "t", "--videos", "0")
    assert r.exit_code == 2 and "--videos" in r.output
    assert not (tmp_path / "t").exists()


def test_parse_size():
    assert parse_size("128x96") == (128, 96)
    assert parse_size(" 64X64 ") == (64, 64)
    with pytest.raises(UsageError):
        parse_size("128")
