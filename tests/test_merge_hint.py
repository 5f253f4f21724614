"""`tdgen merge --prefix`: the printed link makes every merged image path resolve."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import tdgen


def _set(root: Path, image_dir: str, video: str, frames: int) -> Path:
    """A one-video mmdet COCO-VID file in ``root`` whose images exist under ``root/image_dir``."""
    images, anns = [], []
    for i in range(frames):
        name = f"{image_dir}/{video}/{i + 1:06d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 24, 3), 40 * i, np.uint8)).save(root / name)
        images.append({"id": i + 1, "video_id": 1, "file_name": name, "frame_id": i, "width": 24, "height": 16})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "instance_id": 1, "bbox": [2, 2, 8, 6],
                     "area": 48, "iscrowd": 0})
    doc = {"videos": [{"id": 1, "name": video}], "images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "pedestrian"}]}
    path = root / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def test_following_the_printed_link_resolves_every_image(tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    base = _set(data_root, "train", "MOT17-02", 3)
    synth = tmp_path / "work" / "synth"
    synth.mkdir(parents=True)
    extra = _set(synth, "images", "MOT17-02_clip0000", 4)
    merged = tmp_path / "merged.json"

    res = tdgen("merge", base, extra, "--prefix", "synth", "-o", merged, "--json")
    assert res.exit_code == 0, res.output
    links = json.loads(res.stdout.strip().splitlines()[-1])["links"]
    assert links == [{"prefix": "synth", "target": str(synth.resolve())}]

    # the text form prints the same command
    res = tdgen("merge", base, extra, "--prefix", "synth", "-o", tmp_path / "m2.json")
    assert f"ln -s {synth.resolve()} <data_root>/synth" in res.stdout

    os.symlink(links[0]["target"], data_root / links[0]["prefix"])
    doc = json.loads(merged.read_text())
    names = [im["file_name"] for im in doc["images"]]
    assert len(names) == 7 and sum(n.startswith("synth/") for n in names) == 4
    for name in names:
        with Image.open(data_root / name) as im:  # every image loads through the link
            assert im.size == (24, 16)
