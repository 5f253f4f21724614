"""A small MOT-style split (two sequences) written as real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_mot_split(root: Path, *, seed: int = 0, lengths=(20, 13), tracks=(4, 3)) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for s, (n, k) in enumerate(zip(lengths, tracks)):
        name = f"SYN-{s + 1:02d}"
        seq = root / name
        (seq / "gt").mkdir(parents=True, exist_ok=True)
        (seq / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={n}\nimWidth=640\nimHeight=480\nimExt=.jpg\n")
        rows = []
        for t in range(k):
            start = int(rng.integers(0, 4))
            stop = int(rng.integers(n - 4, n + 1))
            x, y = rng.uniform(0, 560), rng.uniform(0, 380)
            w, h = rng.uniform(20, 80), rng.uniform(40, 100)
            cls = 1 if t % 3 else 3
            for f in range(start, stop):
                if t == 1 and f == start + 2:
                    continue  # a gap
                rows.append((f + 1, t + 1, round(x + 3 * f, 1), round(y, 1), round(w, 1), round(h, 1), 1, cls,
                             round(float(rng.uniform(0.2, 1)), 2)))
        rows.sort()
        (seq / "gt" / "gt.txt").write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return root
