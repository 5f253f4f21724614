"""A stand-in for the model: frames that depend only on the clip's seed (and its boxes)."""

from __future__ import annotations

import time

import numpy as np


class FakeGenerator:
    model_id = "fake"
    model_hash = "0" * 16
    dtype = "float32"

    def __init__(self, resolution=(64, 48), delay: float = 0.0, fail_on: str | None = None):
        self.resolution = resolution
        self.delay = delay
        self.fail_on = fail_on
        self.calls = []

    def __call__(self, clips, prompts, seeds):
        self.calls.append([c.clip_id for c in clips])
        if self.delay:
            time.sleep(self.delay)
        w, h = self.resolution
        out = []
        for clip, seed in zip(clips, seeds):
            if self.fail_on and self.fail_on in clip.clip_id:
                raise RuntimeError(f"cannot generate {clip.clip_id}")
            rng = np.random.default_rng(seed)
            frames = rng.integers(0, 255, (clip.num_frames, h, w, 3), dtype=np.uint8)
            out.append(frames)
        return np.stack(out)
