"""The ``tdgen`` command line: thin commands over the library, one module per command group.

Each command parses its flags, calls the library and prints what it returns; output helpers
(JSON line, warnings, progress) live in :mod:`tdgen.cli._output`, options shared by several
commands in :mod:`tdgen.cli._options`, and the app with its error mapping in :mod:`tdgen.cli._app`.
"""

from ._app import TdgenGroup, app, handle_errors, usage_message

# importing a command module registers its commands on ``app``, in this order in ``--help``
from . import tracks, layouts, synth, gate, model, shapes, train, evaluate  # noqa: E402  (after app exists)

COMMAND_MODULES = (tracks, layouts, synth, gate, model, shapes, train, evaluate)

__all__ = ["app", "main", "handle_errors", "usage_message", "TdgenGroup"]


def main() -> None:
    """Console-script entry point."""
    app()
