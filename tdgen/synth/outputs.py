"""The layout of a ``synth`` output directory, written so that a killed run loses nothing.

```
synth/
  synth.json                  the settings and model the directory was made with (the lock)
  images/<clip>/000001.png    frames; written to images/.<clip>.tmp-<pid>/ then renamed
  clips/<clip>.json           per-clip fragment, written after its frames: the "finished" mark
  annotations.json            COCO-VID of all finished clips (rebuilt by finalize)
  manifest.parquet            one row per finished clip
```

A clip is finished exactly when its fragment exists. Frames of a clip without a fragment are
left-overs of a killed run: they are removed and the clip is generated again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson

from ..atomic import atomic_write_bytes
from ..tracks.errors import OutputError

__all__ = ["SynthDir", "encode_image"]

LOCK_NAME = "synth.json"


def encode_image(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode an (H, W, 3) uint8 RGB frame; deterministic for the same pixels."""
    import cv2

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    elif fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    if not ok:
        raise OSError(f"could not encode a {fmt} image")
    return buf.tobytes()


class SynthDir:
    """Paths and state of one output directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.images = self.root / "images"
        self.clips = self.root / "clips"
        self.lock_file = self.root / LOCK_NAME
        self.annotations = self.root / "annotations.json"
        self.manifest = self.root / "manifest.parquet"

    # ------------------------------------------------------------------ settings lock
    def claim(self, settings: dict[str, Any], *, overwrite: bool = False) -> None:
        """Make the directory ours for ``settings``, or refuse if it holds other work.

        The same settings (a re-run, or another process of the same launch) are accepted, so
        the run resumes. Different settings or another model are refused unless ``overwrite``,
        which removes the earlier outputs first.
        """
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"{self.root}: exists and is not a directory")
        if self.lock_file.exists():
            try:
                old = json.loads(self.lock_file.read_text())
            except (OSError, ValueError):
                old = None
            if old != settings:
                if not overwrite:
                    diff = _describe_difference(old, settings)
                    raise OutputError(f"{self.root}: holds clips made with other settings ({diff}); pass "
                                      "--overwrite to start over, or choose another --out")
                self.clear()
        elif self.root.exists() and any(self.root.iterdir()) and not overwrite:
            raise OutputError(f"{self.root}: is not empty and was not made by tdgen synth; pass --overwrite "
                              "to replace its contents, or choose another --out")
        elif overwrite and self.root.exists():
            self.clear()
        self.images.mkdir(parents=True, exist_ok=True)
        self.clips.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.lock_file, orjson.dumps(settings, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))

    def clear(self) -> None:
        for child in (self.images, self.clips):
            shutil.rmtree(child, ignore_errors=True)
        for f in (self.lock_file, self.annotations, self.manifest):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        for p in self.root.glob("mot"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob("preview"):
            shutil.rmtree(p, ignore_errors=True)

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
        return {p.stem for p in self.clips.glob("*.json")}

    def discard_unfinished(self, clip_ids: list[str]) -> int:
        """Remove frames of these clips that have no fragment, and their temp dirs. Returns count."""
        removed = 0
        wanted = set(clip_ids)
        if not self.images.exists():
            return 0
        for p in self.images.iterdir():
            name = p.name
            if name.startswith("."):
                # .<clip>.tmp-<pid>: a killed writer's temporary directory
                clip = name[1:].rsplit(".tmp-", 1)[0]
                if clip in wanted:
                    shutil.rmtree(p, ignore_errors=True)
                    removed += 1
            elif name in wanted and not self.is_finished(name):
                shutil.rmtree(p, ignore_errors=True)
                removed += 1
        return removed

    def write_clip(self, clip_id: str, frames: list[bytes], frame_names: list[str], fragment: dict) -> None:
        """Frames into ``images/<clip>/`` (temp dir + rename), then the fragment (atomic)."""
        final = self.frames_dir(clip_id)
        tmp = self.images / f".{clip_id}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for data, name in zip(frames, frame_names):
                with open(tmp / name, "wb") as f:
                    f.write(data)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_bytes(self.fragment_path(clip_id), orjson.dumps(fragment, option=orjson.OPT_SERIALIZE_NUMPY))

    def read_fragment(self, clip_id: str) -> dict:
        return orjson.loads(self.fragment_path(clip_id).read_bytes())

    @contextlib.contextmanager
    def finalize_lock(self) -> Iterator[None]:
        """An exclusive lock, so processes finalizing at once do not overwrite newer results."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".finalize.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _describe_difference(old: Any, new: dict) -> str:
    if not isinstance(old, dict):
        return "unreadable synth.json"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    parts = []
    for k in keys[:3]:
        a, b = old.get(k), new.get(k)
        if isinstance(a, (dict, list)) or isinstance(b, (dict, list)) or len(str(a)) + len(str(b)) > 60:
            parts.append(k)
        else:
            parts.append(f"{k} {a} -> {b}")
    return ", ".join(parts) + (" ..." if len(keys) > 3 else "")
