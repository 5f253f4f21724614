"""The ``tdgen`` application: the root command group, the error mapping and ``--version``.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input, 130 interrupted. Bad input
is reported as one line on stderr, ``error: <file>: <where>: <what>``, never a traceback:
library code raises the typed errors of :mod:`tdgen.errors` and :func:`handle_errors` maps
them; Click's own usage errors are mapped by :class:`TdgenGroup`.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any, Callable, Optional

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import TdgenError

try:  # recent Typer releases carry their own copy of Click: its usage errors are these classes
    from typer._click import exceptions as _click_errors
except ImportError:  # older Typer runs on Click itself
    from click import exceptions as _click_errors


def _lower_first(text: str) -> str:
    # "No such option" -> "no such option", but "ANN ..." and "'x' ..." stay as they are
    return text[0].lower() + text[1:] if len(text) > 1 and text[0].isupper() and text[1].islower() else text


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _param_label(e: Exception) -> Optional[str]:
    """The option (its long name) or argument (upper case, as in the help) a usage error is about."""
    hint = getattr(e, "param_hint", None)
    if hint:
        hints = [hint] if isinstance(hint, str) else list(hint)
        return " / ".join(str(h).strip("'\"") for h in hints)
    param = getattr(e, "param", None)
    if param is None:
        return None
    if getattr(param, "param_type_name", None) == "option":
        opts = list(param.opts) or [str(param.name)]
        return next((o for o in opts if o.startswith("--")), opts[0])
    return str(param.name).upper()


def _bad_value_text(e: Exception) -> str:
    text = _one_line(str(getattr(e, "message", "") or e)).rstrip(".")
    if text.startswith("Value error, "):  # a ValueError raised inside Typer's validation
        text = text[len("Value error, "):]
    # Typer's pydantic-backed checks say "Input should be ..." without the value: put it back
    cause = e.__cause__
    errors = cause.errors() if cause is not None and callable(getattr(cause, "errors", None)) else None
    value = errors[0].get("input") if errors else None
    if isinstance(value, str) and text.startswith("Input should be "):
        text = f"{value!r} should be {text[len('Input should be '):]}"
    return _lower_first(text)


def usage_message(e: Exception) -> str:
    """A Click/Typer usage error as the one line printed after ``error: ``, without the usage box."""
    label = _param_label(e)
    if isinstance(e, _click_errors.MissingParameter):
        kind = e.param_type or getattr(e.param, "param_type_name", None) or "parameter"
        text = f"missing {kind} {label}" if label else f"missing {kind}"
        return f"{text}: {_lower_first(_one_line(e.message))}" if e.message else text
    if isinstance(e, _click_errors.BadParameter):
        text = _bad_value_text(e)
        return f"{label}: {text}" if label else f"invalid value: {text}"
    return _lower_first(_one_line(e.format_message()).rstrip("."))


class TdgenGroup(TyperGroup):
    """The root command group: Click's usage errors (a bad option value, a missing argument, an
    unknown option or command) become one ``error: ...`` line and exit 2, like every other tdgen
    error. Hooked at ``main`` so the console script, ``python -m tdgen.cli`` and Typer's
    ``CliRunner`` (which calls ``main`` of this group) all behave the same."""

    def main(self, args: Any = None, prog_name: Optional[str] = None, complete_var: Optional[str] = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:  # a caller that handles Click's exceptions itself
            return super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        try:
            # Not standalone: Click returns the exit code of typer.Exit (--help, --version, the
            # commands' own exits) and raises its usage errors instead of drawing them.
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except _click_errors.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `tdgen` / `tdgen model`: the help
                text = e.format_message()
                if text.strip():  # plain Click; Typer's rich help is already printed
                    print(text, file=sys.stderr)
                sys.exit(e.exit_code)
            _fail(usage_message(e), 2)
            sys.exit(2)
        except _click_errors.ClickException as e:  # e.g. a file Click could not open
            _fail(_lower_first(_one_line(e.format_message())), e.exit_code)
            sys.exit(e.exit_code)
        except typer.Abort:
            _fail("aborted", 1)
            sys.exit(1)
        sys.exit(rv if type(rv) is int else 0)


app = typer.Typer(
    cls=TdgenGroup,
    name="tdgen",
    help="Synthetic multi-object-tracking training data from a tracklet-conditioned video diffusion "
    "model (TrackDiffusion).\n\nRead tracklets from COCO-VID, MOT Challenge or YouTube-VIS files, "
    "generate videos that follow them, and merge the result into a real training set.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _fail(message: str, code: int) -> "typer.Exit":
    # One plain line, whatever the terminal: scripts grep for it.
    print(f"error: {message}", file=sys.stderr, flush=True)
    return typer.Exit(code)


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """tdgen's own warnings as one plain ``warning: ...`` line; anything else as Python shows it."""
    if category.__module__.split(".")[0] == "tdgen":
        print(f"warning: {message}", file=sys.stderr, flush=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def handle_errors(fn: Callable) -> Callable:
    """Turn library exceptions into one-line messages and exit codes; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except TdgenError as e:
            raise _fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except MemoryError:
            raise _fail("out of memory", 1) from None
        except OSError as e:
            raise _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        print(f"tdgen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    pass


