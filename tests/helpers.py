"""Running the ``tdgen`` command from tests: in process (the default) or as a real subprocess.

In process, the command runs through Typer's ``CliRunner``, which keeps stdout and stderr
apart (``output`` is the two interleaved, as a terminal shows them); an exception the command
does not turn into an exit code propagates, so a crash never reads as an expected exit status.
A subprocess (``python -m tdgen.cli``) is for what only a real interpreter shows: the entry
point itself, signals and SIGKILL, environment variables read at start-up, and that no
traceback reaches the terminal.
"""

from __future__ import annotations

import os
import subprocess as _subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

__all__ = ["CliResult", "tdgen", "tdgen_command"]


@dataclass(frozen=True)
class CliResult:
    """What one ``tdgen`` run left: its exit status and its two output streams."""

    returncode: int
    stdout: str
    stderr: str
    output: str  # stdout and stderr as a terminal shows them (a subprocess: one after the other)

    @property
    def exit_code(self) -> int:
        """The same as ``returncode`` (the name Typer's ``CliRunner`` results use)."""
        return self.returncode

    def last_json_line(self) -> str:
        """The last stdout line: where ``--json`` puts its summary."""
        return self.stdout.strip().splitlines()[-1]


def tdgen_command(*args: object) -> list[str]:
    """The argv of ``python -m tdgen.cli ARGS`` (for tests that drive a ``Popen`` themselves)."""
    return [sys.executable, "-m", "tdgen.cli", *map(str, args)]


def tdgen(
    *args: object,
    check: bool = False,
    subprocess: bool = False,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    timeout: float = 600,
) -> CliResult:
    """Run ``tdgen ARGS`` (each argument through ``str``) and return what it left.

    ``subprocess=True`` runs a real ``python -m tdgen.cli`` with this environment plus ``env``,
    in ``cwd``; otherwise the command runs in this process with ``env`` set for its duration
    (``cwd`` and ``timeout``, in seconds, apply to a subprocess only). ``check`` asserts exit
    status 0, showing stderr if not.
    """
    argv = [str(a) for a in args]
    if subprocess:
        r = _subprocess.run(tdgen_command(*argv), capture_output=True, text=True, cwd=cwd, timeout=timeout,
                            env={**os.environ, **(env or {})})
        result = CliResult(r.returncode, r.stdout, r.stderr, r.stdout + r.stderr)
    else:
        if cwd is not None:
            raise ValueError("cwd needs subprocess=True (an in-process run cannot change directory safely)")
        from typer.testing import CliRunner

        from tdgen.cli import app

        r = CliRunner().invoke(app, argv, env=dict(env or {}), catch_exceptions=False)
        result = CliResult(r.exit_code, r.stdout, r.stderr, r.output)
    if check:
        assert result.returncode == 0, (result.returncode, result.stderr)
    return result


def tree_modes(root: Path) -> dict[str, set[str]]:
    """The permission bits (octal strings) found under ``root``, for its folders and its files."""
    found: dict[str, set[str]] = {"dirs": {oct(root.stat().st_mode & 0o777)}, "files": set()}
    for p in root.rglob("*"):
        if not p.is_symlink():
            found["dirs" if p.is_dir() else "files"].add(oct(p.stat().st_mode & 0o777))
    return found
