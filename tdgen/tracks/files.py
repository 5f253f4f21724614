"""Safe opening of annotation inputs, for every reader.

:func:`check_regular_file`, :func:`open_regular_file` and :func:`read_regular_file` refuse a FIFO,
a device, a directory, a broken link or an unreadable file at once with a one-line
:class:`AnnotationError`, and never open a FIFO (opening one blocks until a writer appears;
reading ``/dev/zero`` never ends).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from ..errors import AnnotationError

__all__ = ["check_regular_file", "open_regular_file", "read_regular_file", "os_error"]

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(path: str | Path, mode: int, what: str | None) -> AnnotationError:
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return AnnotationError(path, None, f"is {kind}, not {what or 'a regular file'}")


def _os_error(path: str | Path, e: OSError) -> AnnotationError:
    if isinstance(e, PermissionError):
        return AnnotationError(path, None, "permission denied (cannot read it)")
    return AnnotationError(path, None, f"cannot read file ({e.strerror or e})")


def check_regular_file(path: str | Path, what: str | None = None) -> os.stat_result:
    """The ``stat`` of ``path`` if it is a regular file (links followed), else a one-line error.

    ``what`` names the expected thing in the message, e.g. ``"a COCO-VID JSON file"`` gives
    ``<path>: is a directory, not a COCO-VID JSON file``; without it the message says "not a
    regular file". Refuses: a missing file (``no such file``), a broken symbolic link, a
    directory, a FIFO, a device, a socket, a path it cannot stat (e.g. ``permission denied``).
    Readability is only known on opening: use :func:`open_regular_file` to read.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            raise AnnotationError(path, None, f"is a broken symbolic link (to {target!r})") from None
        raise AnnotationError(path, None, "no such file") from None
    except OSError as e:
        raise _os_error(path, e) from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st.st_mode, what)
    return st


def open_regular_file(path: str | Path, what: str | None = None) -> BinaryIO:
    """:func:`check_regular_file`, then ``open(path, "rb")`` without ever blocking.

    The open is non-blocking and the opened file is checked again, so a path swapped for a
    FIFO after the first check is refused too. An unreadable file gives ``permission denied``.
    """
    check_regular_file(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise _os_error(path, e) from None
    f = os.fdopen(fd, "rb")
    try:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode, what)
    except BaseException:
        f.close()
        raise
    return f


def read_regular_file(path: str | Path, what: str | None = None) -> bytes:
    """The bytes of ``path``, refusing what :func:`open_regular_file` refuses; a read error is
    an :class:`AnnotationError` too."""
    with open_regular_file(path, what) as f:
        try:
            return f.read()
        except OSError as e:
            raise _os_error(path, e) from None


os_error = _os_error  # for readers that report their own read failures the same way
