"""The typed errors, re-exported for code that imports them from ``tdgen.tracks`` (they live in
:mod:`tdgen.errors`, at the root, so that modules outside ``tracks`` need not load it)."""

from ..errors import AnnotationError, FormatError, OutputError, TdgenError, UsageError

__all__ = ["AnnotationError", "FormatError", "OutputError", "TdgenError", "UsageError"]
