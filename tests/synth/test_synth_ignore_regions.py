"""`synth --ignore-as crowd`: boxes that are not generated come back as iscrowd=1 ignore regions,
scaled like the generated boxes, and never take a slot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tdgen.synth import SynthOptions, plan_synth

from helpers import tdgen

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracks"))
import test_classes  # noqa: E402

mot17 = test_classes.mot17  # all 12 MOT classes, conf-0 rows, 3 detector copies (640x480)
pycocotools = pytest.importorskip("pycocotools.coco")


def _synth(mot17, out, *extra):
    r = tdgen("synth", "--ann", mot17, "--out", out, "--model", "fake", "--device", "cpu", "--max-clips", "2",
              "-q", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "annotations.json").read_text())


def _source_rows(mot17: Path, video: str) -> list[tuple]:
    rows = []
    for line in (mot17 / video / "gt" / "gt.txt").read_text().splitlines():
        f, t, x, y, w, h, conf, cls, vis = line.split(",")
        rows.append((int(f), int(t), float(x), float(y), float(w), float(h), int(conf), int(cls)))
    return rows


def test_ignore_regions_are_written_scaled_and_take_no_slot(mot17, tmp_path, fake_model):
    plain = _synth(mot17, tmp_path / "plain")
    crowd = _synth(mot17, tmp_path / "crowd", "--ignore-as", "crowd")
    assert not any(a["iscrowd"] for a in plain["annotations"])
    regions = [a for a in crowd["annotations"] if a["iscrowd"]]
    targets = [a for a in crowd["annotations"] if not a["iscrowd"]]
    # the generated boxes are exactly those of the run without regions
    strip = lambda anns: sorted((a["image_id"], a["instance_id"], tuple(a["bbox"])) for a in anns)  # noqa: E731
    assert strip(targets) == strip(plain["annotations"])
    assert regions, "the fixture's conf-0 rows should come back as regions"
    # never a slot: the manifest's tracks and the generator's slots are the pedestrians only
    man = {c["clip_id"]: c for c in (json.loads(p.read_text())["manifest"]
                                     for p in sorted((tmp_path / "crowd" / "clips").glob("*.json")))}
    assert all(m["tracks"] <= 4 for m in man.values())
    region_tracks = {a["instance_id"] for a in regions}
    assert not region_tracks & {a["instance_id"] for a in targets}

    # each region is a source row with conf 0, moved from 640x480 into the output's 64x48 frames
    W, H = 640, 480
    images = {im["id"]: im for im in crowd["images"]}
    videos = {v["id"]: v for v in crowd["videos"]}
    for a in regions:
        im = images[a["image_id"]]
        clip = man[videos[im["video_id"]]["name"]]
        number = clip["first_frame"] + im["frame_id"] * clip["frame_step"]
        sx, sy = im["width"] / W, im["height"] / H
        candidates = [r for r in _source_rows(mot17, clip["source_video"]) if r[0] == number and r[6] == 0]
        x, y, w, h = a["bbox"]

        def matches(r) -> bool:
            x0, y0 = max(r[2], 0) * sx, max(r[3], 0) * sy
            x1, y1 = min(r[2] + r[4], W) * sx, min(r[3] + r[5], H) * sy
            return np.allclose([x, y, x + w, y + h], [x0, y0, x1, y1], atol=0.02)

        assert any(matches(r) for r in candidates), (a, number)
    # the file loads where trackers load it, with the regions flagged
    coco = pycocotools.COCO(str(tmp_path / "crowd" / "annotations.json"))
    assert sum(coco.anns[i]["iscrowd"] for i in coco.anns) == len(regions)


def test_crowd_boxes_of_the_source_never_take_a_slot(tmp_path):
    """A COCO-VID source's own iscrowd boxes: left out of slot planning (default) or carried as regions."""
    doc = {"videos": [{"id": 1, "name": "v", "width": 100, "height": 80}],
           "images": [{"id": i + 1, "video_id": 1, "frame_id": i, "file_name": f"v/{i:06d}.jpg", "width": 100,
                       "height": 80} for i in range(4)],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [{"id": k * 4 + i + 1, "image_id": i + 1, "video_id": 1, "category_id": 1,
                            "instance_id": k + 1, "bbox": [10 + 20 * k, 10, 15, 30], "area": 450,
                            "iscrowd": int(k == 2)} for k in range(3) for i in range(4)]}
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(doc))
    plain = plan_synth(SynthOptions(ann=ann, out=tmp_path / "o", frames=4, slots=4))
    assert [c.num_tracks for c in plain.clips] == [2] and plain.regions is None
    kept = plan_synth(SynthOptions(ann=ann, out=tmp_path / "o", frames=4, slots=4, ignore_as="crowd"))
    assert [c.num_tracks for c in kept.clips] == [2] and len(kept.regions) == 4


def test_ignore_as_is_checked_before_anything(mot17, tmp_path):
    r = tdgen("synth", "--ann", mot17, "--out", tmp_path / "o", "--model", "tiny", "--ignore-as", "keep")
    assert r.returncode == 2 and r.stderr.strip() == "error: --ignore-as must be drop or crowd, got 'keep'"
    assert not (tmp_path / "o").exists()
