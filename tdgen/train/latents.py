"""Latents for training: encoding frames with the frozen autoencoder, and a cache of encoded clips.

The latents are the autoencoder's deterministic output (the posterior mean for AutoencoderKL),
before its ``scaling_factor``, so cached and freshly encoded latents train identically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..errors import AnnotationError
from ..tracks.clips import ClipSpec

if TYPE_CHECKING:
    from .data import ClipDataset

__all__ = ["LatentCache", "encode_pixels", "latent_cache_key", "precompute_latents"]


class LatentCache:
    """Latents of clips, one ``.npy`` per (clip, flip) under ``root``: written atomically, read
    memory-mapped. The latents are the autoencoder's deterministic output (the posterior mean
    for AutoencoderKL), before ``scaling_factor``; the folder name (:func:`latent_cache_key`)
    pins everything they depend on."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, clip_id: str, flip: bool) -> Path:
        return self.root / f"{clip_id}{'.flip' if flip else ''}.npy"

    def has(self, clip_id: str, flip: bool) -> bool:
        return self.path(clip_id, flip).is_file()

    def load(self, clip_id: str, flip: bool) -> np.ndarray:
        file = self.path(clip_id, flip)
        try:
            return np.load(file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise AnnotationError(file, None, f"unreadable cached latent ({exc}); delete the file to rebuild it") \
                from None

    def save(self, clip_id: str, flip: bool, latent: np.ndarray) -> None:
        file = self.path(clip_id, flip)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(latent, dtype=np.float32))
        os.replace(tmp, file)


def latent_cache_key(vae: torch.nn.Module, *, ann: Path, images_root: Path, resolution: tuple[int, int],
                     spec: ClipSpec) -> str:
    """A short digest of what cached latents depend on: the autoencoder (class, config and
    weights), the annotation file's bytes, the frames' root, the resolution and the clip spec."""
    h = hashlib.sha256()
    h.update(type(vae).__name__.encode())
    h.update(json.dumps({k: v for k, v in dict(vae.config).items() if not k.startswith("_")},
                        sort_keys=True, default=str).encode())
    for name, t in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    with open(ann, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps([str(images_root.resolve()), list(resolution), spec.frames, spec.stride, spec.step,
                         spec.max_slots, spec.overflow, spec.min_tracks]).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_pixels(vae: torch.nn.Module, pixels: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``(B, F, 3, H, W)`` pixels in [-1, 1] -> raw latents ``(B, C, F, h, w)`` (float32, no
    scaling factor): the autoencoder's deterministic output (``latent_dist.mode()``), ``chunk``
    frames per call."""
    B, F = pixels.shape[:2]
    flat = pixels.reshape(B * F, *pixels.shape[2:])
    dtype = next((t.dtype for t in list(vae.parameters()) + list(vae.buffers()) if t.is_floating_point()),
                 torch.float32)
    device = next((t.device for t in list(vae.parameters()) + list(vae.buffers())), flat.device)
    parts = []
    for a in range(0, flat.shape[0], chunk):
        x = flat[a:a + chunk].to(device=device, dtype=dtype)
        parts.append(vae.encode(x).latent_dist.mode().float())
    z = torch.cat(parts)
    return z.reshape(B, F, *z.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


def precompute_latents(
    dataset: "ClipDataset",
    vae: torch.nn.Module,
    cache: LatentCache,
    *,
    flips: bool = False,
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Encode every clip (and its mirror image with ``flips``) missing from ``cache``; return how
    many were encoded. ``shard=(k, n)`` does every n-th clip starting at k (one per process)."""
    k, n = shard
    todo = [(i, f) for i in range(k, len(dataset), n) for f in ((False, True) if flips else (False,))
            if not cache.has(dataset.clips[i].clip_id, f)]
    for done, (i, f) in enumerate(todo, 1):
        z = encode_pixels(vae, dataset.pixels(i, f)[None])[0]
        cache.save(dataset.clips[i].clip_id, f, z.cpu().numpy())
        if progress is not None:
            progress(done, len(todo))
    return len(todo)
