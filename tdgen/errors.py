"""Typed errors that tdgen reports to a user.

Library code raises these; only the CLI turns them into one-line messages and exit codes
(``error: <file>: <where>: <what>``, exit 2). They sit at the package root, beside nothing they
import, so any module can raise them without loading another part of tdgen.
"""

from __future__ import annotations

from pathlib import Path


class TdgenError(Exception):
    """Base class of every error tdgen reports to a user (exit code 1 unless a subclass says 2)."""

    exit_code = 1


class UsageError(TdgenError):
    """Bad flags or arguments (exit 2)."""

    exit_code = 2


class AnnotationError(TdgenError):
    """Bad input data, located in a file: ``<file>: <where>: <what>`` (exit 2)."""

    exit_code = 2

    def __init__(self, file: str | Path | None, where: str | None, what: str, hint: str | None = None):
        self.file = str(file) if file is not None else None
        self.where = where
        self.what = what
        self.hint = hint
        super().__init__(self.message())

    def message(self) -> str:
        parts = [p for p in (self.file, self.where, self.what) if p]
        text = ": ".join(parts)
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class FormatError(AnnotationError):
    """The file is not in any format tdgen reads, or not the one asked for."""


class OutputError(TdgenError):
    """An output cannot be written (exists without --overwrite, collides, fails a uniqueness check)."""

    exit_code = 2
