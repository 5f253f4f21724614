"""The layout of a ``synth`` output directory, written so that a killed run loses nothing.

```
synth/
  synth.json                  the settings and model the directory was made with (the record)
  images/<clip>/000001.png    frames; written to images/.<clip>.tmp-<pid>/ then renamed
  clips/<clip>.json           per-clip fragment (COCO-VID of the clip + its manifest row, see
                              fragments.py), written after its frames: the "finished" mark
  annotations.json            COCO-VID of all finished clips (rebuilt by finalize)
  manifest.parquet            one row per finished clip (with the source tracks it had no slot for)
  mot/<clip>/                 with --mot: MOT Challenge copy (seqinfo.ini, img1/000001.jpg, gt/gt.txt)
  .tdgen.lock                 the claim lock (held for a moment while a run claims the folder)
  .tdgen.shard-K-of-N.lock    held by the run doing shard K of N, for the whole run; its PID inside
  .finalize.lock              held while annotations.json and manifest.parquet are rebuilt
```

A clip is finished exactly when its fragment exists, and a finished clip is never rewritten, so
at every instant a fragment implies that its frames exist. Frames of a clip without a fragment
are left-overs of a killed run: they are removed and the clip is generated again.

Locking (``fcntl.flock``, advisory, released by the kernel when a process dies, so a killed
run never blocks the next one):

- A run holds an exclusive lock on ``.tdgen.shard-K-of-N.lock`` (an unsharded run is shard 0 of
  1) from the moment it claims the folder until it returns. Ranks of one launch (``torchrun``,
  ``accelerate launch``, or ``--shard K/N`` started by hand) use the same N and different K, so
  they share the folder; a second process for the same shard, a run with another N (an
  unsharded run overlaps every shard), or a run with other settings while any shard is live, is
  refused with ``OUT: in use by another tdgen synth (pid P)``.
- Claiming happens under ``.tdgen.lock``: a process takes it, looks at which shard locks are
  held (removing lock files nobody holds), takes its own, checks or writes ``synth.json``, and
  lets it go. Every claimer does this under the same lock, so the look and the take are one step.
- Finalizing happens under ``.finalize.lock``, so concurrent finalizes do not overwrite newer
  results, and the temporary files of a killed finalize can be removed safely.
- Ending: a run lets its shard go under ``.tdgen.lock`` and, in the same step, looks whether it is
  the last of its launch (:meth:`ShardClaim.release_if_last`): no other shard still held, and the
  other shards' clips all accounted for. Of ranks ending at the same moment exactly one sees that,
  so one process finalizes a launch, not every rank.

The settings record binds only clips: a folder with no finished clip (every clip failed, or the
run was killed before one finished) is claimed anew by a run with other settings.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import orjson

from ..atomic import atomic_write_bytes, is_temp_name, named_os_error, remove_temp_files, write_bytes_named
from ..errors import OutputError
from .fragments import ClipFragment, read_fragment, write_fragment

__all__ = ["INFO_KEYS", "LOCK_NAME", "ShardClaim", "SynthDir", "encode_image", "settings_match"]

LOCK_NAME = "synth.json"  # the settings record (historically called the settings lock)
# the gate moves rejected clips here (fragment rejected/<clip>.json, frames rejected/<clip>/), with a
# copy of the settings of the run they come from
REJECTED_DIR = "rejected"
REJECTED_SETTINGS = ".synth.json"
GATE_REPORT = "gate_report.json"
CLAIM_LOCK = ".tdgen.lock"
FINALIZE_LOCK = ".finalize.lock"
TRASH_PREFIX = ".tdgen-trash-"
_SHARD_LOCK = re.compile(r"^\.tdgen\.shard-(\d+)-of-(\d+)\.lock$")
# Top-level files a finalize writes atomically (their temporary siblings are its left-overs).
FINALIZE_OUTPUTS = ("annotations.json", "manifest.parquet", "mot")
# Settings recorded for information but not compared: the same content under another path resumes.
INFO_KEYS = frozenset({"source", "captions"})
_UNREADABLE = object()


def encode_image(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode an (H, W, 3) uint8 RGB frame; deterministic for the same pixels."""
    import cv2

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    elif fmt in ("jpg", "jpeg"):
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    if not ok:
        raise OSError(f"could not encode a {fmt} image")
    return buf.tobytes()


def settings_match(old: Any, new: dict[str, Any]) -> bool:
    """Whether a directory made with ``old`` settings can resume with ``new`` (paths ignored)."""
    if not isinstance(old, dict):
        return False
    return {k: v for k, v in old.items() if k not in INFO_KEYS} == \
        {k: v for k, v in new.items() if k not in INFO_KEYS}


class _Holder:
    """A live shard lock seen while claiming."""

    def __init__(self, k: int, n: int, pid: str) -> None:
        self.k, self.n, self.pid = k, n, pid


class ShardClaim:
    """The shard a run holds on a directory, from :meth:`SynthDir.session` until it is let go."""

    def __init__(self, sd: "SynthDir", fd: int, path: Path) -> None:
        self._sd, self._fd, self._path = sd, fd, path

    def release(self) -> None:
        """Let the shard go (nothing when it is already let go)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self._sd._release_shard_lock(fd, self._path)

    def release_if_last(self, others_done: Callable[[], bool]) -> bool:
        """Let the shard go; True when this run is the last of its launch to end: no other shard of
        the directory is held any more and ``others_done()`` (the other shards' clips are all
        finished or accounted for) holds.

        The release and the look are one step under the claim lock, so of several ranks ending at
        once exactly one is last; ``others_done`` keeps a rank that ends before another rank has
        even claimed its shard from finalizing half a launch.
        """
        if self._fd is None:
            return False
        sd = self._sd
        with sd._claim_lock():
            fd, self._fd = self._fd, None
            sd._drop_shard_lock(fd, self._path, unlink=True)  # safe: claimers open shard locks under this lock
            return not sd._live_holders() and others_done()


class SynthDir:
    """Paths and state of one output directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.images = self.root / "images"
        self.clips = self.root / "clips"
        self.lock_file = self.root / LOCK_NAME
        self.annotations = self.root / "annotations.json"
        self.manifest = self.root / "manifest.parquet"
        self.failures = self.root / "failures.jsonl"

    # ------------------------------------------------------------------ claiming
    def is_synth_dir(self) -> bool:
        """Whether the directory holds a synth run (its settings record)."""
        return self.root.is_dir() and self.lock_file.is_file()

    def read_settings(self) -> Any:
        """The recorded settings; ``None`` when there is no record, a non-dict when it is unreadable."""
        try:
            return json.loads(self.lock_file.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return _UNREADABLE

    def preflight(self, shard: tuple[int, int] = (0, 1), *, overwrite: bool = False) -> None:
        """Refuse early, before a model is loaded and without creating anything, what :meth:`session`
        would refuse for reasons other than settings: not a directory, foreign content, in use."""
        self._check_not_foreign(overwrite)
        if self.is_synth_dir():
            with self._claim_lock():
                self._conflicts(self._live_holders(), shard)

    @contextlib.contextmanager
    def session(self, settings: dict[str, Any], shard: tuple[int, int] = (0, 1), *,
                overwrite: bool = False) -> Iterator[ShardClaim]:
        """Hold shard ``shard`` = (K, N) of the directory for ``settings`` while the block runs.

        The same settings (a re-run, or another rank of the same launch) resume. Other settings
        are refused while the directory holds finished clips, unless ``overwrite``, which removes
        the earlier outputs first; they are accepted when it holds none. A kill at any moment
        leaves a directory the same command resumes: the record is written (atomically) before
        ``images/`` and ``clips/`` exist, and a directory holding only tdgen's own lock and
        temporary files counts as empty. The block gets the :class:`ShardClaim`, to let the shard
        go early (:meth:`ShardClaim.release_if_last`).
        """
        self._check_not_foreign(overwrite)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{self.root}: cannot create the output directory: {e.strerror or e}") from None
        with self._claim_lock():
            holders = self._live_holders()
            self._conflicts(holders, shard)
            fd, path = self._take_shard_lock(shard)
            try:
                self._claim(settings, holders, overwrite=overwrite)
            except BaseException:
                self._drop_shard_lock(fd, path, unlink=True)
                raise
        claim = ShardClaim(self, fd, path)
        try:
            yield claim
        finally:
            claim.release()

    def _check_not_foreign(self, overwrite: bool) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"{self.root}: exists and is not a directory")
        if self.root.is_dir() and not self.lock_file.exists() and not overwrite and not self._only_own_entries():
            raise OutputError(f"{self.root}: is not empty and was not made by tdgen synth; pass --overwrite "
                              "to replace its contents, or choose another --out")

    def _only_own_entries(self) -> bool:
        """True when the directory holds nothing but what a claim killed early leaves behind."""
        for entry in os.scandir(self.root):
            name = entry.name
            if name in (CLAIM_LOCK, FINALIZE_LOCK) or _SHARD_LOCK.match(name) or name.startswith(TRASH_PREFIX):
                continue
            if any(is_temp_name(name, t) for t in (LOCK_NAME, *FINALIZE_OUTPUTS)):
                continue
            if name in ("images", "clips") and entry.is_dir(follow_symlinks=False) and all(
                    _is_temp_entry(e) for e in os.listdir(entry.path)):
                continue
            return False
        return True

    def _claim(self, settings: dict[str, Any], holders: list[_Holder], *, overwrite: bool) -> None:
        """Under the claim lock: check or write the record, then make the subdirectories."""
        self._remove_claim_leftovers()
        old = self.read_settings()
        if old is None or not settings_match(old, settings):
            self._busy_check(holders)
        if old is None:
            if not self._only_own_entries():
                if not overwrite:
                    raise OutputError(f"{self.root}: is not empty and was not made by tdgen synth; pass "
                                      "--overwrite to replace its contents, or choose another --out")
                self.clear()
        elif not settings_match(old, settings):
            if self.finished_ids() and not overwrite:
                diff = _describe_difference(old, settings)
                raise OutputError(f"{self.root}: holds clips made with other settings ({diff}); pass "
                                  "--overwrite to start over, or choose another --out")
            self.clear()
            old = None
        if old is None:
            self._write_record(settings)
        self.images.mkdir(exist_ok=True)
        self.clips.mkdir(exist_ok=True)

    def _busy_check(self, holders: list[_Holder]) -> None:
        if holders:  # never replace the record under a live run, even one of the same launch
            raise OutputError(f"{self.root}: in use by another tdgen synth (pid {holders[0].pid})")

    def _write_record(self, settings: dict[str, Any]) -> None:
        atomic_write_bytes(self.lock_file, orjson.dumps(settings, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))

    def _remove_claim_leftovers(self) -> None:
        """Temporary files only claimers write (the record, trash of a killed clear)."""
        remove_temp_files(self.root, [LOCK_NAME])
        for p in self.root.glob(f"{TRASH_PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)

    def clear(self) -> None:
        """Remove earlier outputs (never files tdgen does not make), so that a kill midway is safe.

        The listings go first, then the finished marks (``clips/``, renamed away in one step),
        then frames: at no moment does a fragment or ``annotations.json`` name frames that are gone.
        """
        with self.finalize_lock():
            for f in (self.annotations, self.manifest):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
            trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=self.root))
            with contextlib.suppress(FileNotFoundError):
                (self.root / GATE_REPORT).unlink()
            for name in ("clips", "images", "mot", "preview", REJECTED_DIR):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.root / name, trash / name)
            with contextlib.suppress(FileNotFoundError):
                self.failures.unlink()
            remove_temp_files(self.root, FINALIZE_OUTPUTS)
            shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[None]:
        fd = _open_lock(self.root / CLAIM_LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held only while a claim runs: waiting is short
            yield
        finally:
            os.close(fd)

    def _shard_lock_path(self, shard: tuple[int, int]) -> Path:
        return self.root / f".tdgen.shard-{shard[0]}-of-{shard[1]}.lock"

    def _live_holders(self) -> list[_Holder]:
        """Shard locks held by live processes; lock files nobody holds are removed. Claim lock held."""
        holders = []
        for entry in os.scandir(self.root):
            m = _SHARD_LOCK.match(entry.name)
            if not m:
                continue
            try:
                fd = os.open(entry.path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    holders.append(_Holder(int(m.group(1)), int(m.group(2)), _read_pid(fd)))
                else:
                    # Nobody holds it (its process ended): safe to remove, since every process
                    # that opens a shard lock does so under the claim lock we hold.
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
            finally:
                os.close(fd)
        return sorted(holders, key=lambda h: (h.n, h.k))

    def _conflicts(self, holders: list[_Holder], shard: tuple[int, int]) -> None:
        k, n = shard
        for h in holders:
            if h.n != n or h.k == k:
                raise OutputError(f"{self.root}: in use by another tdgen synth (pid {h.pid})")

    def _take_shard_lock(self, shard: tuple[int, int]) -> tuple[int, Path]:
        path = self._shard_lock_path(shard)
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            pid = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise OutputError(f"{self.root}: in use by another tdgen synth (pid {pid})") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd, path

    def _drop_shard_lock(self, fd: int, path: Path, *, unlink: bool) -> None:
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.close(fd)

    def _release_shard_lock(self, fd: int, path: Path) -> None:
        """Let the shard go; remove its file when that is safe now (else the next claimer will)."""
        try:
            cfd = _open_lock(self.root / CLAIM_LOCK)
        except OSError:
            os.close(fd)
            return
        try:
            try:
                fcntl.flock(cfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._drop_shard_lock(fd, path, unlink=False)
            else:
                self._drop_shard_lock(fd, path, unlink=True)
        finally:
            os.close(cfd)

    @contextlib.contextmanager
    def finalize_lock(self) -> Iterator[None]:
        """An exclusive lock, so processes finalizing at once do not overwrite newer results."""
        fd = _open_lock(self.root / FINALIZE_LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def remove_finalize_leftovers(self) -> list[Path]:
        """Temporary files of a killed finalize (call with :meth:`finalize_lock` held)."""
        removed = remove_temp_files(self.root, FINALIZE_OUTPUTS)
        mot = self.root / "mot"
        if mot.is_dir():  # write_mot's per-sequence temporary folders
            for p in mot.iterdir():
                if not _is_temp_entry(p.name):
                    continue
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    # ------------------------------------------------------------------ clips
    def fragment_path(self, clip_id: str) -> Path:
        return self.clips / f"{clip_id}.json"

    def frames_dir(self, clip_id: str) -> Path:
        return self.images / clip_id

    def is_finished(self, clip_id: str) -> bool:
        return self.fragment_path(clip_id).exists()

    def finished_ids(self) -> set[str]:
        if not self.clips.exists():
            return set()
        return {p.stem for p in self.clips.glob("*.json") if not p.name.startswith(".")}

    def rejected_ids(self, settings: dict[str, Any]) -> set[str]:
        """Clips the gate rejected in a run with ``settings`` (they count as done: a resumed run
        does not make them again); none when ``rejected/`` belongs to another run."""
        rej = self.root / REJECTED_DIR
        try:
            old = orjson.loads((rej / REJECTED_SETTINGS).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return set()
        if not settings_match(old, settings):
            return set()
        return {p.stem for p in rej.glob("*.json") if not p.name.startswith(".")}

    def discard_unfinished(self, clip_ids: Iterable[str]) -> int:
        """Remove frames of these clips that have no fragment, and temporary files a killed writer
        left for them (frame folders, fragments, previews). Only call for clips this process owns
        (its shard lock is held). Returns how many entries were removed."""
        wanted = set(clip_ids)
        removed = 0
        if self.images.exists():
            for p in self.images.iterdir():
                name = p.name
                if name.startswith("."):
                    # .<clip>.tmp-<pid> / .<clip>.old-<pid>: a killed writer's folders
                    m = re.fullmatch(r"\.(.+)\.(?:tmp|old)-\d+", name)
                    if m and m.group(1) in wanted:
                        shutil.rmtree(p, ignore_errors=True)
                        removed += 1
                elif name in wanted and not self.is_finished(name):
                    shutil.rmtree(p, ignore_errors=True)
                    removed += 1
        removed += len(remove_temp_files(self.clips, [f"{c}.json" for c in wanted]))
        preview = self.root / "preview"
        if preview.is_dir():
            for p in preview.iterdir():
                if p.name.startswith(".") and ".tmp" in p.name and \
                        any(p.name.startswith(f".{c}.") for c in wanted):
                    p.unlink(missing_ok=True)
                    removed += 1
        return removed

    def write_clip(self, clip_id: str, frames: list[bytes], frame_names: list[str],
                   fragment: ClipFragment | dict) -> bool:
        """Frames into ``images/<clip>/`` (temp dir + rename), then the fragment (atomic): a
        :class:`ClipFragment` as its COCO-VID document, a plain dict as JSON as it is.

        A finished clip (its fragment exists) is never rewritten: returns False and writes
        nothing. Frames of an unfinished clip already in place are swapped out, not deleted
        first. OSErrors name the file being written.
        """
        if self.is_finished(clip_id):
            return False
        final = self.frames_dir(clip_id)
        tmp = self.images / f".{clip_id}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            for data, name in zip(frames, frame_names):
                write_bytes_named(tmp / name, data, name_as=final / name)
            if self.is_finished(clip_id):  # finished meanwhile by someone else: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            if final.exists():
                old = self.images / f".{clip_id}.old-{os.getpid()}"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if isinstance(fragment, ClipFragment):
            write_fragment(fragment, self.fragment_path(clip_id))
        else:
            atomic_write_bytes(self.fragment_path(clip_id), orjson.dumps(fragment, option=orjson.OPT_SERIALIZE_NUMPY))
        return True

    def read_fragment(self, clip_id: str) -> ClipFragment:
        """A finished clip's fragment, in this version's format or an earlier one's (damaged:
        :class:`AnnotationError` naming the file)."""
        return read_fragment(self.fragment_path(clip_id))

    def failed_ids(self) -> set[str]:
        """Clips named in ``failures.jsonl`` (a line a killed writer cut short is skipped)."""
        try:
            text = self.failures.read_text(errors="replace")
        except FileNotFoundError:
            return set()
        except OSError as e:
            raise named_os_error(e, self.failures) from None
        ids: set[str] = set()
        for line in text.splitlines():
            try:
                clips = json.loads(line).get("clips")
            except (ValueError, AttributeError):
                continue
            if isinstance(clips, list):
                ids.update(c for c in clips if isinstance(c, str))
        return ids

    def log_failure(self, line: str) -> None:
        """Append one line to ``failures.jsonl`` (errors name the file)."""
        try:
            with open(self.failures, "a") as f:
                f.write(line + "\n")
        except OSError as e:
            raise named_os_error(e, self.failures) from None


def _is_temp_entry(name: str) -> bool:
    """A hidden temporary entry of tdgen's writers (``.x.<random>.tmp``, ``.x.tmp-<pid>``, ``.x.old-<pid>``)."""
    return name.startswith(".") and (name.endswith(".tmp") or ".tmp." in name or
                                     re.search(r"\.(?:tmp|old)-\d+$", name) is not None)


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _describe_difference(old: Any, new: dict) -> str:
    if not isinstance(old, dict):
        return "unreadable synth.json"
    keys = sorted(k for k in set(old) | set(new) if k not in INFO_KEYS and old.get(k) != new.get(k))
    parts = []
    for k in keys[:3]:
        a, b = old.get(k), new.get(k)
        if isinstance(a, (dict, list)) or isinstance(b, (dict, list)) or len(str(a)) + len(str(b)) > 60:
            parts.append(k)
        else:
            parts.append(f"{k} {a} -> {b}")
    return ", ".join(parts) + (" ..." if len(keys) > 3 else "")
