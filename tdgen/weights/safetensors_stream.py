"""Lazy, one-tensor-at-a-time reading of weight files and a streaming safetensors writer.

Readers (:func:`open_weights`) take a ``.safetensors`` file, a ``.bin``/``.pt`` file (torch zip
format) or a sharded checkpoint's ``*.index.json`` and give every tensor on request, each a fresh
CPU tensor that owns its memory, so a conversion holds about one tensor at a time:

* safetensors: :func:`safetensors.safe_open` validates the file and lists its tensors; the data
  of each tensor is read with ``pread`` into a new buffer. (Tensors returned by ``safe_open`` are
  views of a memory map: every page touched stays in the process's resident set until the file is
  closed, so reading a whole model through it shows up as one model of RSS. Reading the bytes
  ourselves keeps the resident set at one tensor.)
* ``.bin``: ``torch.load(mmap=True, weights_only=True)``; each tensor is copied out and the pages
  of the map it used are handed back to the kernel (``madvise(MADV_DONTNEED)``, Linux) for the
  same reason.
* sharded: ``*.index.json`` (``weight_map``: key -> shard file), shards opened as needed.

:class:`SafetensorsWriter` writes the safetensors format directly: the 8-byte little-endian header
length, the JSON header (``{name: {dtype, shape, data_offsets}}`` plus ``__metadata__``, padded with
spaces to a multiple of 8), then each tensor's raw little-endian bytes in header order, to a
temporary file in the target directory that is renamed over the target when complete. Peak memory
is one tensor, whatever the size of the file.

Every problem with an input file is a :class:`tdgen.modelinfo.ModelError` naming the file.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import math
import mmap
import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..atomic import plain_file_mode
from ..modelinfo import ModelError

__all__ = [
    "DTYPE_NAMES",
    "SafetensorsWriter",
    "TensorInfo",
    "WeightSource",
    "find_weights_file",
    "file_sha256",
    "open_weights",
    "safetensors_order",
    "write_safetensors",
]

_NAME_TO_DTYPE: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"), ("U16", "uint16"),
                     ("U32", "uint32"), ("U64", "uint64")):
    if hasattr(torch, _attr):
        _NAME_TO_DTYPE[_name] = getattr(torch, _attr)
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in _NAME_TO_DTYPE.items()}

_MAX_HEADER = 100 << 20  # what safetensors itself accepts
_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class TensorInfo:
    """dtype and shape of a stored tensor (known without reading its data)."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * _itemsize(self.dtype)


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- readers


class WeightSource:
    """Tensors of one checkpoint, read one at a time. Use as a context manager."""

    path: Path

    def keys(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def info(self, key: str) -> TensorInfo:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, key: str) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def files(self) -> list[Path]:
        """The files this checkpoint consists of (for sizes and digests)."""
        return [self.path]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: self.info(k).shape for k in self.keys()}

    def __contains__(self, key: object) -> bool:
        return key in set(self.keys())

    def close(self) -> None:
        pass

    def __enter__(self) -> "WeightSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SafetensorsSource(WeightSource):
    """A ``.safetensors`` file: header checked on open, tensors read with ``pread``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._entries, self.metadata, self._data_start = _read_safetensors_header(self.path)
        # A second opinion from the reference implementation (it maps the file but touches no data).
        try:
            from safetensors import safe_open

            with safe_open(str(self.path), framework="pt") as f:
                theirs = set(f.keys())
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise ModelError(f"{self.path}: not a valid safetensors file: {_first_line(exc)}") from None
        if theirs != set(self._entries):  # pragma: no cover - both parse the same header
            raise ModelError(f"{self.path}: header could not be read consistently")
        self._fd = os.open(self.path, os.O_RDONLY)

    def keys(self) -> list[str]:
        return list(self._entries)

    def info(self, key: str) -> TensorInfo:
        return self._entries[key][0]

    def read(self, key: str) -> torch.Tensor:
        info, start, end = self._entries[key]
        buf = torch.empty(end - start, dtype=torch.uint8)
        if end > start:
            view = memoryview(buf.numpy())
            pos, offset = 0, self._data_start + start
            while pos < len(view):
                n = os.preadv(self._fd, [view[pos:]], offset + pos) if hasattr(os, "preadv") else \
                    _pread_into(self._fd, view[pos:], offset + pos)
                if n <= 0:
                    raise ModelError(f"{self.path}: truncated while reading {key}")
                pos += n
        tensor = buf.view(info.dtype) if info.numel else torch.empty(0, dtype=info.dtype)
        if sys.byteorder != "little":  # pragma: no cover - safetensors data is little-endian
            tensor = torch.from_numpy(tensor.numpy().byteswap())
        return tensor.reshape(info.shape)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pread_into(fd: int, view: memoryview, offset: int) -> int:  # pragma: no cover - non-POSIX
    data = os.pread(fd, len(view), offset)
    view[: len(data)] = data
    return len(data)


def _read_safetensors_header(path: Path) -> tuple[dict[str, tuple[TensorInfo, int, int]], dict[str, str], int]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelError(f"{path}: truncated: {size} bytes, shorter than the 8-byte safetensors header length")
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                raise ModelError(f"{path}: truncated, or not a safetensors file: header length {n} does not fit "
                                 f"in the file's {size} bytes")
            raw = f.read(n)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a safetensors file: header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path}: not a safetensors file: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ModelError(f"{path}: __metadata__ must be an object")
    entries: dict[str, tuple[TensorInfo, int, int]] = {}
    spans = []
    for key, value in header.items():
        try:
            dtype = _NAME_TO_DTYPE[value["dtype"]]
            shape = tuple(int(s) for s in value["shape"])
            start, end = (int(o) for o in value["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{path}: {key}: bad header entry {value!r}") from None
        info = TensorInfo(dtype, shape)
        if any(s < 0 for s in shape) or end - start != info.nbytes:
            raise ModelError(f"{path}: {key}: data_offsets {[start, end]} do not hold {value['dtype']} {list(shape)}")
        entries[key] = (info, start, end)
        spans.append((start, end, key))
    spans.sort()
    pos = 0
    for start, end, key in spans:
        if start != pos:
            raise ModelError(f"{path}: {key}: data_offsets leave a gap or overlap at byte {pos}")
        pos = end
    data = size - 8 - n
    if pos > data:
        raise ModelError(f"{path}: truncated: the header describes {pos} bytes of tensor data, the file holds {data}")
    if pos < data:
        raise ModelError(f"{path}: {data - pos} bytes after the last tensor (not a safetensors file?)")
    return entries, {str(k): str(v) for k, v in metadata.items()}, 8 + n


class TorchBinSource(WeightSource):
    """A ``torch.save`` file (``pytorch_model.bin``, ``diffusion_pytorch_model.bin``), memory-mapped."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.note: str | None = None
        try:
            obj = torch.load(str(self.path), map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zip" not in str(exc).lower():
                raise ModelError(f"{self.path}: cannot read: {_first_line(exc)}") from None
            obj = self._load_legacy()
        except Exception as exc:  # pickle errors, EOFError, weights_only refusals
            raise ModelError(f"{self.path}: cannot read: {_first_line(exc)}") from None
        if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
            obj = obj["state_dict"]
        if not isinstance(obj, Mapping):
            raise ModelError(f"{self.path}: holds a {type(obj).__name__}, not a state dict")
        self._tensors: dict[str, torch.Tensor] = {}
        for key, value in obj.items():
            if not isinstance(value, torch.Tensor):
                raise ModelError(f"{self.path}: {key}: not a tensor ({type(value).__name__})")
            self._tensors[str(key)] = value

    def _load_legacy(self) -> Any:
        # Pre-1.6 torch.save files (not zip) cannot be memory-mapped: read them whole.
        try:
            obj = torch.load(str(self.path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"{self.path}: cannot read: {_first_line(exc)}") from None
        self.note = f"{self.path.name} is in the legacy (non-zip) torch format and was read whole into memory"
        return obj

    def keys(self) -> list[str]:
        return list(self._tensors)

    def info(self, key: str) -> TensorInfo:
        t = self._tensors[key]
        return TensorInfo(t.dtype, tuple(t.shape))

    def read(self, key: str) -> torch.Tensor:
        src = self._tensors[key]
        try:
            out = src.clone(memory_format=torch.contiguous_format)
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: {key}: cannot read: {_first_line(exc)}") from None
        _release_pages(src)
        return out

    def close(self) -> None:
        self._tensors = {}


_libc: Any = None


def _release_pages(t: torch.Tensor) -> None:
    """Tell the kernel we no longer need the mapped pages behind ``t`` (Linux; a no-op elsewhere).

    The map is private and read-only for us, so dropped pages would simply be read from the file
    again if touched; they stop counting toward the resident set."""
    global _libc
    if not sys.platform.startswith("linux"):
        return
    try:
        storage = t.untyped_storage()
        start, length = storage.data_ptr(), storage.nbytes()
        if not length:
            return
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        first = (start + _PAGE - 1) // _PAGE * _PAGE  # whole pages only: neighbours stay intact
        last = (start + length) // _PAGE * _PAGE
        if last > first:
            _libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), 4)  # MADV_DONTNEED
    except (AttributeError, OSError, RuntimeError):  # pragma: no cover - best effort
        pass


class ShardedSource(WeightSource):
    """A sharded checkpoint: ``*.index.json`` with ``weight_map`` (key -> shard file name)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            index = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ModelError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{self.path}: not valid JSON: {exc}") from None
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(f"{self.path}: no 'weight_map' (key -> shard file) in this index")
        self._map = {str(k): str(v) for k, v in weight_map.items()}
        self._shards: dict[str, WeightSource] = {}
        for name in dict.fromkeys(self._map.values()):
            shard = self.path.parent / name
            if not shard.is_file():
                raise ModelError(f"{shard}: shard listed in {self.path.name} is missing")
            self._shards[name] = _open_file(shard)
        for key, name in self._map.items():
            if key not in self._shards[name]:
                raise ModelError(f"{self.path.parent / name}: {key} is not in this shard, but {self.path.name} "
                                 "says it is")

    @property
    def files(self) -> list[Path]:
        return [self.path, *(s.path for s in self._shards.values())]

    def keys(self) -> list[str]:
        return list(self._map)

    def info(self, key: str) -> TensorInfo:
        return self._shards[self._map[key]].info(key)

    def read(self, key: str) -> torch.Tensor:
        return self._shards[self._map[key]].read(key)

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()


def _open_file(path: Path) -> WeightSource:
    name = path.name
    if name.endswith(".index.json"):
        return ShardedSource(path)
    if name.endswith(".safetensors"):
        return SafetensorsSource(path)
    if name.endswith((".bin", ".pt", ".pth", ".ckpt")):
        return TorchBinSource(path)
    raise ModelError(f"{path}: not a weights file (expected .safetensors, .bin or a sharded *.index.json)")


def open_weights(path: str | os.PathLike) -> WeightSource:
    """Open a weights file (``.safetensors``, ``.bin``/``.pt``, ``*.index.json``) for lazy reading."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    return _open_file(path)


def find_weights_file(folder: str | os.PathLike, stems: Sequence[str]) -> tuple[Path, str | None]:
    """The weights file of a diffusers/transformers component folder, and a note when the choice
    needs saying. ``stems``: base names in order of preference (``diffusion_pytorch_model``, or
    ``model`` and ``pytorch_model`` for transformers).

    Preference: ``STEM.safetensors``, its sharded index, ``STEM.bin``, its sharded index, then a
    variant (``STEM.fp16.safetensors`` ...). :class:`ModelError` when there is none.
    """
    folder = Path(folder)
    for suffix in (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json"):
        for stem in stems:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate, None
    for suffix in (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json"):
        for stem in stems:
            variants = sorted(folder.glob(f"{stem}.*{suffix}"))
            variants = [v for v in variants
                        if v.name.count(".") == f"{stem}.x{suffix}".count(".") and "-of-" not in v.name]
            if variants:
                chosen = variants[0]
                return chosen, f"{folder.name}/: only the variant {chosen.name} is present; used it"
    wanted = ", ".join(f"{s}.safetensors" for s in stems)
    raise ModelError(f"{folder}: no weights file ({wanted}, .bin or a sharded index)")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (the Hub lists this digest for every LFS file)."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


# --------------------------------------------------------------------------- writer


Spec = tuple[str, torch.dtype, tuple[int, ...]]


def safetensors_order(specs: Iterable[tuple[str, torch.dtype, Sequence[int]]]) -> list[Spec]:
    """``specs`` ordered for writing: wider dtypes first (every tensor then starts at a multiple of
    its item size), keeping the given order within a dtype width."""
    items = [(name, dtype, tuple(int(s) for s in shape)) for name, dtype, shape in specs]
    return sorted(items, key=lambda it: -_itemsize(it[1]))  # sorted() is stable


class SafetensorsWriter:
    """Write a safetensors file tensor by tensor.

    ``specs``: ``(name, dtype, shape)`` in the order the tensors will be written (see
    :func:`safetensors_order`). Use as a context manager; call :meth:`write` once per spec, in order.
    The file appears at ``path`` only when every tensor was written; on an error the temporary file
    is removed. :attr:`sha256` is the digest of the finished file.
    """

    def __init__(self, path: str | os.PathLike, specs: Sequence[tuple[str, torch.dtype, Sequence[int]]],
                 metadata: Mapping[str, str] | None = None) -> None:
        if sys.byteorder != "little":  # pragma: no cover
            raise RuntimeError("the streaming safetensors writer needs a little-endian machine")
        self.path = Path(path)
        self._specs = [(str(n), d, tuple(int(s) for s in shape)) for n, d, shape in specs]
        names = [n for n, _, _ in self._specs]
        if len(set(names)) != len(names):
            raise ValueError("duplicate tensor names")
        header: dict[str, Any] = {"__metadata__": {str(k): str(v) for k, v in (metadata or {"format": "pt"}).items()}}
        offset = 0
        for name, dtype, shape in self._specs:
            if dtype not in DTYPE_NAMES:
                raise ValueError(f"{name}: dtype {dtype} cannot be stored in safetensors")
            nbytes = math.prod(shape) * _itemsize(dtype)
            header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape),
                            "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self._header = struct.pack("<Q", len(raw)) + raw
        self.data_bytes = offset
        self.total_bytes = len(self._header) + offset
        self._next = 0
        self._file: Any = None
        self._tmp: str | None = None
        self._hash = hashlib.sha256()
        self.sha256: str | None = None

    def __enter__(self) -> "SafetensorsWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._file = os.fdopen(fd, "wb")
        self._emit(self._header)
        return self

    def _emit(self, data: Any) -> None:
        self._file.write(data)
        self._hash.update(data)

    @property
    def pending(self) -> list[str]:
        """Names still to be written, in order."""
        return [n for n, _, _ in self._specs[self._next:]]

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write the next tensor (its name, dtype and shape must match the next spec)."""
        if self._file is None:
            raise RuntimeError("SafetensorsWriter.write outside its context")
        if self._next >= len(self._specs):
            raise ValueError(f"{name}: every tensor has already been written")
        want_name, dtype, shape = self._specs[self._next]
        if name != want_name:
            raise ValueError(f"tensors must be written in header order: expected {want_name}, got {name}")
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise ValueError(f"{name}: expected {dtype} {list(shape)}, got {tensor.dtype} {list(tensor.shape)}")
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        if flat.numel():
            self._emit(memoryview(flat.view(torch.uint8).numpy()))
        self._next += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self._next != len(self._specs):
                raise ValueError(f"{self.path}: {len(self._specs) - self._next} tensors were never written "
                                 f"(first: {self._specs[self._next][0]})")
            if exc_type is None:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if exc_type is None:
                os.chmod(self._tmp, plain_file_mode())
                os.replace(self._tmp, self.path)
                self.sha256 = self._hash.hexdigest()
                self._tmp = None
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._tmp)
                self._tmp = None


def write_safetensors(path: str | os.PathLike, specs: Sequence[tuple[str, torch.dtype, Sequence[int]]],
                      produce: Callable[[str], torch.Tensor], metadata: Mapping[str, str] | None = None,
                      on_tensor: Callable[[str], None] | None = None) -> str:
    """Write ``path`` with the tensors ``produce(name)`` returns, one at a time, in ``specs`` order;
    return the file's SHA-256."""
    with SafetensorsWriter(path, specs, metadata) as writer:
        for name, _, _ in specs:
            writer.write(name, produce(name))
            if on_tensor is not None:
                on_tensor(name)
    assert writer.sha256 is not None
    return writer.sha256
