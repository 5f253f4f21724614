"""Writing a big file atomically and fast: :func:`atomic_stream`.

The file is written to a temporary sibling through :class:`_Sink` (page-aligned buffers written
from a background thread, with ``O_DIRECT`` where the file system allows it), then renamed over
the target, so the target is either untouched or complete.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: plain buffered writes there
    fcntl = None

from ..atomic import named_os_error, plain_file_mode

__all__ = ["atomic_stream"]


class _Sink:
    """A write-only file that copies what it is given into page-aligned buffers and writes each
    full buffer from a background thread, with ``O_DIRECT`` where the file system allows it.

    Writing a big file through the page cache costs the kernel a fresh page per 4 KiB, which on
    some machines is slower than the disk; ``O_DIRECT`` skips that, and the thread lets the next
    buffer be filled while one is written. The unaligned end of the file is written normally.
    """

    ALIGN = 4096
    SIZE = 8 << 20

    def __init__(self, fd: int):
        self.fd = fd
        self.direct = False
        flag = getattr(os, "O_DIRECT", 0)
        if flag and fcntl is not None:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flag)
                self.direct = True
            except OSError:
                pass
        self.bufs = [mmap.mmap(-1, self.SIZE), mmap.mmap(-1, self.SIZE)]
        self.views = [memoryview(b) for b in self.bufs]
        self.cur = 0
        self.fill = 0
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tdgen-write")
        self.pending: Future | None = None

    def write(self, data: Any) -> None:
        mv = memoryview(data).cast("B")
        pos, n = 0, len(mv)
        while pos < n:
            k = min(n - pos, self.SIZE - self.fill)
            self.views[self.cur][self.fill:self.fill + k] = mv[pos:pos + k]
            self.fill += k
            pos += k
            if self.fill == self.SIZE:
                self._hand_off()

    def _write_all(self, view: memoryview) -> None:
        while len(view):
            try:
                n = os.write(self.fd, view)
            except OSError as e:
                if not (self.direct and e.errno == errno.EINVAL):
                    raise
                self._buffered()  # O_DIRECT accepted by fcntl but not by the file system
                continue
            view = view[n:]
            if len(view) and self.direct:
                self._buffered()  # a short write leaves an unaligned rest

    def _buffered(self) -> None:
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def _hand_off(self) -> None:
        self._wait()
        self.pending = self.pool.submit(self._write_all, self.views[self.cur][:self.fill])
        self.cur ^= 1
        self.fill = 0

    def close(self) -> None:
        """Write what is left and wait for it (the caller fsyncs)."""
        try:
            self._wait()
            aligned = self.fill - self.fill % self.ALIGN
            view = self.views[self.cur]
            if aligned:
                self._write_all(view[:aligned])
            if self.fill > aligned:
                if self.direct:  # the last partial block cannot go through O_DIRECT
                    self._buffered()
                self._write_all(view[aligned:self.fill])
        finally:
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._wait()
        self.pool.shutdown(wait=True)
        for v in self.views:
            v.release()
        for b in self.bufs:
            b.close()
        self.views, self.bufs = [], []


@contextlib.contextmanager
def atomic_stream(path: str | os.PathLike) -> Iterator[_Sink]:
    """A sink to write ``path`` through: a temporary sibling renamed over ``path`` when the
    block succeeds, removed when it fails (so ``path`` is either untouched or complete).

    The temporary file is ``.<name>.<random>.tmp`` beside ``path`` (what
    :func:`tdgen.atomic.remove_temp_files` cleans up after a kill). An ``OSError`` names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise named_os_error(e, path) from None
    sink = None
    try:
        sink = _Sink(fd)
        yield sink
        sink.close()
        sink = None
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.chmod(tmp, plain_file_mode())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as e:
        if sink is not None:
            sink.abort()
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise named_os_error(e, path) from None
        raise
