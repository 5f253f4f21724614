"""What the commands print: results on stdout, everything else on stderr.

One place for the one-line JSON summary, ``warning:``/``note:`` lines and progress, so every
command looks and behaves the same in a terminal, in a pipeline and in a cluster job's log.

Progress (:class:`Progress`) draws rich bars when stderr is a terminal. When it is not (a pipe,
a log file, a batch job) bars would print nothing useful until the end, so it writes plain
lines instead: one per finished unit of work when asked (``line=True``), else at most one every
``every`` seconds.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Iterable, Optional, TextIO

from rich.console import Console

from ..atomic import check_output_free as check_output

__all__ = ["out", "emit_json", "warn", "note", "check_output", "Progress", "duration_text"]

out = Console(highlight=False, soft_wrap=True)


def emit_json(obj: Any) -> None:
    """The ``--json`` summary: one line on stdout."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def warn(messages: Iterable[str], quiet: bool = False) -> None:
    """One ``warning: ...`` line on stderr per message (none with ``quiet``)."""
    if quiet:
        return
    for m in messages:
        print(f"warning: {m}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr, flush=True)


def duration_text(seconds: Optional[float]) -> str:
    """``75`` -> ``"1m15s"``; ``None`` or a negative value -> ``"?"``."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Progress of a command on stderr: rich bars on a terminal, plain lines elsewhere.

    ``label`` starts every plain line (``synth: 3/16 clips ...``). Each task has a total, a
    completed count, a unit and a free ``info`` text; :meth:`update` changes them. Disabled
    (``--quiet``, ``--json``, a rank other than 0) it does nothing at all.
    """

    def __init__(self, label: str, *, enabled: bool = True, every: float = 30.0,
                 stream: Optional[TextIO] = None, terminal: Optional[bool] = None, transient: bool = False) -> None:
        self.label = label
        self.enabled = enabled
        self.every = every
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = (terminal if terminal is not None else _isatty(self.stream)) and enabled
        self._tasks: dict[int, dict[str, Any]] = {}
        self._last_line: Optional[float] = None  # the first update always writes
        self._bars: Any = None
        if self.terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bars = RichProgress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[unit]}"), TextColumn("{task.fields[info]}"),
                                      TimeElapsedColumn(), console=Console(file=self.stream), transient=transient)

    def __enter__(self) -> "Progress":
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars is not None:
            self._bars.stop()

    def add(self, name: str, total: Optional[int] = None, completed: int = 0, unit: str = "", info: str = "") -> int:
        """A new task; returns its handle."""
        handle = len(self._tasks)
        self._tasks[handle] = {"name": name, "total": total, "completed": completed, "unit": unit, "info": info}
        if self._bars is not None:
            self._tasks[handle]["bar"] = self._bars.add_task(name, total=total, completed=completed, unit=unit,
                                                             info=info)
        return handle

    def update(self, handle: int, *, completed: Optional[int] = None, total: Optional[int] = None,
               info: Optional[str] = None, line: bool = False) -> None:
        """Change a task; on a plain stream write a line if ``line`` or ``every`` seconds have passed."""
        if not self.enabled:
            return
        t = self._tasks[handle]
        for key, value in (("completed", completed), ("total", total), ("info", info)):
            if value is not None:
                t[key] = value
        if self._bars is not None:
            self._bars.update(t["bar"], completed=t["completed"], total=t["total"], info=t["info"])
            return
        now = time.monotonic()
        if line or self._last_line is None or now - self._last_line >= self.every:
            self._last_line = now
            self.write(self._line(t))

    def remove(self, handle: int) -> None:
        t = self._tasks.pop(handle, None)
        if t is not None and self._bars is not None:
            self._bars.remove_task(t["bar"])

    def write(self, text: str) -> None:
        """A line above the bars (on a terminal) or a plain line."""
        if not self.enabled:
            return
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def _line(self, t: dict[str, Any]) -> str:
        count = f"{t['completed']:,}" + (f"/{t['total']:,}" if t["total"] is not None else "")
        parts = [f"{self.label}: {t['name']}" if t["name"] != self.label else f"{self.label}:", count]
        if t["unit"]:
            parts.append(t["unit"])
        text = " ".join(parts)
        return f"{text}, {t['info']}" if t["info"] else text


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
