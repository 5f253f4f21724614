"""Seeds and stable hashes: keyed BLAKE2b digests, never Python's ``hash()``.

Every random choice tdgen makes is seeded from a keyed hash of what it is about (a clip id, a
training step, a label), so results do not depend on process, batch size, shard, order or Python
version. One digest function serves them all; the ``person`` key keeps the uses apart, so a clip
seed never equals a shard hash of the same text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["keyed_digest", "clip_seed", "derive_seed"]

_MASK63 = (1 << 63) - 1


def keyed_digest(text: str, person: bytes, size: int = 8) -> bytes:
    """``size`` bytes of BLAKE2b over ``text`` (UTF-8), keyed by ``person`` (at most 16 bytes)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=size, person=person).digest()


def clip_seed(run_seed: int, clip_id: str) -> int:
    """A 63-bit seed for one clip from the run seed and the clip id.

    ``blake2b(f"{run_seed}:{clip_id}")``: the same for every process, batch size, shard count
    and order, and different for different clips or run seeds.
    """
    return int.from_bytes(keyed_digest(f"{int(run_seed)}:{clip_id}", b"tdgen-seed"), "little") & _MASK63


def derive_seed(seed: int, *parts: Any) -> int:
    """A 63-bit seed from a run seed and any labels/numbers (training: data order, flips, noise)."""
    text = json.dumps([int(seed), *[p if isinstance(p, (int, str)) else str(p) for p in parts]])
    return int.from_bytes(keyed_digest(text, b"tdgen-tr"), "little") >> 1
