"""Every malformed input gets the same answer: exit 2, one ``error: ...`` line, no traceback, and
nothing written.

The cases come from ``malformed_corpus.py`` (a valid base plus one realistic mistake each). They
run in process through Typer's ``CliRunner``, except FIFOs and endless devices, where a hang or a
memory blow-up is the failure: those run as a subprocess with a timeout and a memory limit.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from tdgen.cli import TdgenGroup, app

from malformed_corpus import Case, Resources, all_cases, cocovid_doc, synth_args, write_mot_split, ytvis_doc

CASES = all_cases()


# --------------------------------------------------------------------------- shared bases
@pytest.fixture(scope="session")
def big_cocovid() -> dict:
    """A valid COCO-VID document whose compact JSON is past the pyarrow fast path's size limit."""
    from malformed_corpus import big_cocovid_doc
    from tdgen.tracks.cocovid import FAST_PATH_BYTES

    return big_cocovid_doc(FAST_PATH_BYTES + (512 << 10))


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The ``tiny`` preset's model directory (built into the cache on first use, then reused)."""
    from tdgen.modeldir import resolve_model_dir

    return resolve_model_dir("tiny")


@pytest.fixture(scope="session")
def synth_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished synth output (one 1-step clip of the synth base): what the finalize cases damage.
    Made by the same command the synth cases start from, so that command is known to work."""
    res = Resources(tmp_path_factory.mktemp("synth-base"), lambda: {}, lambda: Path(), lambda: Path())
    args = synth_args(res)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, (args, r.stderr, r.exception)
    assert any((res.synth_out / "clips").glob("*.json")) and (res.synth_out / "annotations.json").is_file()
    return res.synth_out


# --------------------------------------------------------------------------- running a case
def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (links not followed) with its type, size and mtime."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode >> 12, st.st_size if not os.path.isdir(p) else 0,
                                             st.st_mtime_ns)
    return out


def _in_process(args: list[str]) -> tuple[int | None, str, str, str | None]:
    r = CliRunner().invoke(app, args)
    crash = None
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        # CliRunner swallows it; a user would have seen a traceback
        first = (str(r.exception).splitlines() or [""])[0]
        crash = f"uncaught {type(r.exception).__name__}: {first}"
    return r.exit_code, r.stdout, r.stderr, crash


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def _subprocess(args: list[str], timeout: float) -> tuple[int | None, str, str, str | None]:
    # torch reserves more address space than the limit allows: synth runs without it
    limit = None if args[0] == "synth" else _limit_memory
    try:
        p = subprocess.run([sys.executable, "-m", "tdgen.cli", *args], capture_output=True, text=True,
                           errors="replace", timeout=timeout, preexec_fn=limit,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, "", err, f"hung: no exit within {timeout:g} s"
    return p.returncode, p.stdout, p.stderr, None


def _problems(case: Case, code: int | None, stdout: str, stderr: str, crash: str | None) -> list[str]:
    problems = [crash] if crash else []
    if code is not None and code != 2:
        problems.append(f"exit {code}, expected 2")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if "Traceback" in stdout or "Traceback" in stderr:
        problems.append("a traceback was printed")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines, expected 1")
    errors = [ln for ln in lines if ln.startswith("error: ")]
    if not errors:
        problems.append("no stderr line starts with 'error: '")
    elif case.expect and case.expect not in errors[0]:
        problems.append(f"the error line does not name {case.expect!r}")
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_fails_cleanly(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if case.skip_as_root and os.geteuid() == 0:
        pytest.skip("root reads files without read permission")
    res = Resources(tmp_path, lambda: request.getfixturevalue("big_cocovid"),
                    lambda: request.getfixturevalue("tiny_model"), lambda: request.getfixturevalue("synth_output"))
    args = case.make(res)
    outputs = [p for p in (res.out_json, res.synth_out) if not os.path.lexists(p)]
    before = _snapshot(tmp_path)
    if case.subprocess:
        code, stdout, stderr, crash = _subprocess(args, case.timeout)
    else:
        code, stdout, stderr, crash = _in_process(args)
    problems = _problems(case, code, stdout, stderr, crash)
    written = [str(p.relative_to(tmp_path)) for p in outputs if os.path.lexists(p)]
    after = _snapshot(tmp_path)
    changed = sorted(k for k in after if k not in before or after[k] != before[k])
    if written or changed:
        problems.append(f"wrote {', '.join(sorted(set(written) | set(changed)))}")
    if any(k not in after for k in before):
        problems.append("removed an input")
    assert not problems, "; ".join(problems) + f"\n  args: {args}\n  stderr: {stderr[-2000:]!r}"


# --------------------------------------------------------------------------- the bases alone are accepted
def _spy_fast_path(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    from tdgen.tracks import arrowjson

    taken: list[bool] = []
    real = arrowjson.fast_columns

    def spy(holder):
        r = real(holder)
        taken.append(r is not None)
        return r

    monkeypatch.setattr(arrowjson, "fast_columns", spy)
    return taken


def test_valid_bases_are_accepted(tmp_path: Path, big_cocovid: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without their mistake the inputs convert and merge: the mistake is what each case's error is about."""
    (tmp_path / "ann.json").write_bytes(orjson.dumps(cocovid_doc()))
    (tmp_path / "ytvis.json").write_bytes(orjson.dumps(ytvis_doc()))
    (tmp_path / "extra.json").write_bytes(orjson.dumps(cocovid_doc(names="SYN")))
    (tmp_path / "big.json").write_bytes(orjson.dumps(big_cocovid))
    split = write_mot_split(tmp_path / "train")
    taken = _spy_fast_path(monkeypatch)
    runs = [
        ["convert", str(tmp_path / "ann.json"), "-o", str(tmp_path / "o1.json")],
        ["convert", str(tmp_path / "big.json"), "-o", str(tmp_path / "o2.json")],
        ["convert", str(split), "-o", str(tmp_path / "o3.json")],
        ["convert", str(tmp_path / "ytvis.json"), "--from", "ytvis", "-o", str(tmp_path / "o4.json")],
        ["merge", str(tmp_path / "ann.json"), str(tmp_path / "extra.json"), "--prefix", "synth", "-o",
         str(tmp_path / "o5.json")],
    ]
    for args in runs:
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0 and not r.stderr.strip(), (args, r.stderr, r.exception)
    assert True in taken, "the big base did not go through the pyarrow fast path"


def test_valid_model_and_synth_inputs_pass_their_checks(tiny_model: Path, synth_output: Path) -> None:
    """The model copy the model cases mutate is a complete one, with the defaults synth reads."""
    from tdgen.modeldir import check_model_dir, model_defaults

    check_model_dir(tiny_model)
    assert (tiny_model / "model_index.json").is_file()
    md = model_defaults(tiny_model)
    assert md["frames"] <= 10 and md["slots"] >= 2  # the synth base (10 frames, 2 tracks) plans clips
    # the finished output the finalize cases damage finalizes cleanly as it is
    r = CliRunner().invoke(app, ["synth", "--out", str(synth_output), "--finalize"])
    assert r.exit_code == 0 and "error" not in r.stderr, (r.stderr, r.exception)


# --------------------------------------------------------------------------- usage errors at every entry point
def _script() -> list[str] | None:
    exe = shutil.which("tdgen")
    return [exe] if exe else None


@pytest.mark.parametrize("entry", ["module", "script"])
def test_usage_error_is_one_line_from_every_entry_point(entry: str, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "tdgen.cli"] if entry == "module" else _script()
    if cmd is None:
        pytest.skip("the tdgen console script is not installed")
    args = ["merge", "a.json", "b.json", "-o", str(tmp_path / "o.json"), "--ratio", "half"]
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [p.stderr.strip()] and p.stderr.startswith("error: --ratio: 'half'"), p.stderr
    assert not p.stdout


@pytest.mark.parametrize("args,line", [
    (["convert", "x.json"], "error: missing option --output"),
    (["inspect"], "error: missing argument ANN"),
    (["inspect", "x.json", "--bogus"], "error: no such option: --bogus"),
    (["bogus"], "error: no such command 'bogus'"),
    (["inspect", "x.json", "--format", "coco"], "error: --format: 'coco' is not one of"),
])
def test_usage_error_messages(args: list[str], line: str) -> None:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(line), r.stderr


def test_help_and_version_are_unchanged() -> None:
    r = CliRunner().invoke(app, ["merge", "--help"])
    assert r.exit_code == 0 and "Usage" in r.stdout and "--ratio" in r.stdout and not r.stderr
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("tdgen ")
    r = CliRunner().invoke(app, [])  # no command: the help, as before
    assert "Usage" in r.output and "error:" not in r.output


def test_typer_path_checks_are_one_line(tmp_path: Path) -> None:
    """Parameters declared with ``exists=True`` fail in Typer, before the command: one line too."""
    demo = typer.Typer(cls=TdgenGroup, add_completion=False)

    @demo.callback()
    def _root() -> None:
        pass

    @demo.command()
    def show(path: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
        print(path.read_text())

    r = CliRunner().invoke(demo, ["show", str(tmp_path / "nope.txt")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: PATH: ") and "nope.txt" in r.stderr
    r = CliRunner().invoke(demo, ["show", str(tmp_path)])
    assert r.exit_code == 2 and r.stderr.startswith("error: PATH: ") and "directory" in r.stderr
