"""Fixtures for the training tests: a tiny rendered dataset and tiny models (CPU, fp32)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

from tdgen.tracks.cocovid import write_cocovid  # noqa: E402
from tdgen.tracks.trackset import Boxes, Frames, TrackSet, Videos  # noqa: E402

CATEGORIES = [{"id": 1, "name": "red_box"}, {"id": 2, "name": "blue box"}]
COLORS = {1: (220, 40, 40), 2: (40, 60, 220)}


def render_rectangles(root: Path, *, videos: int = 2, frames: int = 6, size: tuple[int, int] = (48, 40),
                      seed: int = 0) -> dict[str, Path]:
    """Coloured rectangles moving over a grey background: PNG frames + COCO-VID + captions.

    Video ``v`` has two tracks (one per category); the second leaves the frame for the last
    frame of every video, so masks vary. Frames are ``size`` (W, H) pixels, named
    ``images/<video>/<n>.png`` relative to ``root``.
    """
    rng = np.random.default_rng(seed)
    W, H = size
    names, f_video, f_index, f_file = [], [], [], []
    b_frame, b_bbox, b_track, b_cat = [], [], [], []
    row = 0
    for v in range(videos):
        name = f"rects_{v:02d}"
        names.append(name)
        (root / "images" / name).mkdir(parents=True, exist_ok=True)
        starts = rng.uniform(0, 0.5, size=(2, 2)) * [W, H]
        vel = rng.uniform(-2, 2, size=(2, 2))
        dims = rng.uniform(0.2, 0.4, size=(2, 2)) * [W, H]
        for f in range(frames):
            img = np.full((H, W, 3), 128, np.uint8)
            for k in range(2):
                if k == 1 and f == frames - 1:
                    continue
                x, y = starts[k] + vel[k] * f
                w, h = dims[k]
                x0, y0 = int(max(0, x)), int(max(0, y))
                x1, y1 = int(min(W, x + w)), int(min(H, y + h))
                img[y0:y1, x0:x1] = COLORS[k + 1]
                b_frame.append(row)
                b_bbox.append([x0, y0, x1 - x0, y1 - y0])
                b_track.append(v * 10 + k + 1)
                b_cat.append(k + 1)
            file = f"images/{name}/{f + 1:06d}.png"
            cv2.imwrite(str(root / file), img[:, :, ::-1])
            f_video.append(v)
            f_index.append(f)
            f_file.append(file)
            row += 1
    n = len(f_video)
    m = len(b_frame)
    ts = TrackSet(
        videos=Videos(name=np.array(names, dtype=object), id=np.arange(1, videos + 1, dtype=np.int64),
                      width=np.full(videos, W, np.int64), height=np.full(videos, H, np.int64)),
        frames=Frames(video=np.array(f_video, np.int64), index=np.array(f_index, np.int64),
                      file_name=np.array(f_file, dtype=object), id=np.arange(1, n + 1, dtype=np.int64),
                      width=np.full(n, W, np.int64), height=np.full(n, H, np.int64),
                      number=np.array(f_index, np.float64) + 1),
        boxes=Boxes(frame=np.array(b_frame, np.int64), bbox=np.array(b_bbox, np.float64).reshape(-1, 4),
                    track=np.array(b_track, np.int64), category=np.array(b_cat, np.int64),
                    id=np.arange(1, m + 1, dtype=np.int64), iscrowd=np.zeros(m, np.int8)),
        categories=[dict(c) for c in CATEGORIES],
    )
    ann = write_cocovid(ts, root / "annotations.json", "mmdet")
    captions = root / "captions.json"
    captions.write_text(json.dumps({names[0]: "two rectangles drifting"}), encoding="utf-8")
    return {"root": root, "ann": ann, "captions": captions, "colors": COLORS}


@pytest.fixture(scope="session")
def rects(tmp_path_factory) -> dict[str, Path]:
    """A 2-video, 6-frame rectangles dataset at 48x40 pixels."""
    return render_rectangles(tmp_path_factory.mktemp("rects"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random model directory at 32x32 pixels (4x4 latents), 4 frames, 4 slots."""
    from tdgen.modeldir import init_tiny_model

    return init_tiny_model(tmp_path_factory.mktemp("models") / "tiny32", seed=0, resolution=(32, 32), frames=4,
                           slots=4)
