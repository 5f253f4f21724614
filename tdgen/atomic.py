"""Atomic file output: write to a temporary sibling, then rename over the target.

A crash or a kill leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    """The permissions a plain ``open(path, "w")`` gives a new file under the current umask.

    ``mkstemp`` and the safetensors library make files 0600, which on a shared cluster locks a
    team out of a model or a checkpoint one of them wrote; every temporary file this package
    renames into place gets this mode first."""
    return 0o666 & ~_umask()


def give_plain_modes(root: str | os.PathLike) -> None:
    """Give every file and folder under ``root`` (and ``root``) the mode ``open``/``mkdir``
    would have given it under the current umask: for a tree just written into a temporary
    folder by libraries that make their files private (safetensors, ``mkstemp``)."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for here, dirs, files in os.walk(root):
        for name, mode in [*((d, 0o777) for d in dirs), *((f, 0o666) for f in files)]:
            path = os.path.join(here, name)
            if not os.path.islink(path):  # a link's target is not ours to change
                os.chmod(path, mode & ~mask)


def named_os_error(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` with ``path`` as its file name, so the one-line message names the file being written.

    A failed ``write()`` (disk full, quota) carries no file name, and one on a temporary file
    names a path the user never asked for. The errno, hence the subclass, is kept.
    """
    if err.errno is None:
        return err
    return OSError(err.errno, err.strerror or str(err), str(path))


def write_bytes_named(path: str | os.PathLike, data: bytes, *, name_as: str | os.PathLike | None = None) -> None:
    """A plain (non-atomic) write whose errors name ``name_as`` (default ``path``): for files in a
    temporary folder that will be renamed, whose final path is what the user knows."""
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise named_os_error(e, name_as if name_as is not None else path) from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    The temporary file is ``.<name>.<random>.tmp`` beside ``path`` (see :func:`remove_temp_files`).
    An ``OSError`` names ``path`` itself.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise named_os_error(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, plain_file_mode())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise named_os_error(e, path) from None
        raise


def is_temp_name(name: str, target: str) -> bool:
    """Whether ``name`` is a temporary sibling this module makes for ``target``.

    ``.<target>.<random>.tmp`` (files and folders being written) and ``.<target>.old-<pid>`` (a
    folder being replaced by :func:`atomic_directory`).
    """
    prefix = f".{target}."
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix):]
    return (rest.endswith(".tmp") and len(rest) > 4) or (rest.startswith("old-") and rest[4:].isdigit())


def remove_temp_files(directory: str | os.PathLike, targets: Iterable[str]) -> list[Path]:
    """Remove the temporary siblings of ``targets`` in ``directory`` that a killed writer left.

    Only names :func:`is_temp_name` matches are touched. The caller must know no live writer
    uses them (it holds the lock those writers take). Returns what was removed.
    """
    directory = Path(directory)
    wanted = set(targets)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        stem = entry.name[1:]
        if not any(is_temp_name(entry.name, t) for t in wanted if stem.startswith(t)):
            continue
        p = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` when the block succeeds.

    On an exception the temporary directory is removed and ``path`` is untouched. With
    ``overwrite`` an existing ``path`` is replaced; otherwise it must not exist.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(str(path))
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_free(path: str | os.PathLike, overwrite: bool) -> None:
    """Refuse an existing output unless ``overwrite``: checked before any work is done, so a
    refused command leaves nothing behind. :class:`~tdgen.errors.OutputError` otherwise."""
    from .errors import OutputError

    if Path(path).exists() and not overwrite:
        raise OutputError(f"{path}: already exists (pass --overwrite to replace it)")
