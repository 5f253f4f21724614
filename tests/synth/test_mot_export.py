"""`synth --mot`: the MOT Challenge copy, read the way ByteTrack's and mmdet's converters read it.

ByteTrack's ``tools/convert_mot17_to_coco.py`` lists ``<seq>/img1/*.jpg``, opens
``<seq>/img1/%06d.jpg`` for frames 1..n and reads ``gt/gt.txt`` as
``frame,id,x,y,w,h,conf,class,visibility``; mmdet's ``mot2coco.py`` also parses ``seqinfo.ini``.
"""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tdgen.synth import SynthOptions, finalize, run_synth

from fakegen import FakeGenerator
from helpers import tdgen


def write_cocovid_source(path: Path, *, videos=(("walk-a", 10, 3), ("walk-b", 7, 2)), size=(320, 240)) -> Path:
    """A small mmdet-flavour COCO-VID file: one category (pedestrian, id 1), no MOT fields."""
    rng = np.random.default_rng(1)
    doc = {"info": {}, "categories": [{"id": 1, "name": "pedestrian"}], "videos": [], "images": [], "annotations": []}
    track = 0
    for v, (name, n, k) in enumerate(videos, start=1):
        doc["videos"].append({"id": v, "name": name, "fps": 25})
        first_image = len(doc["images"]) + 1
        for f in range(n):
            doc["images"].append({"id": first_image + f, "video_id": v, "frame_id": f,
                                  "file_name": f"{name}/{f:06d}.jpg", "width": size[0], "height": size[1]})
        for _ in range(k):
            track += 1
            x, y = rng.uniform(0, 200), rng.uniform(0, 120)
            for f in range(n):
                bbox = [round(x + 4 * f, 1), round(y, 1), 40.0, 80.0]
                doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": first_image + f,
                                           "category_id": 1, "instance_id": track, "bbox": bbox,
                                           "area": bbox[2] * bbox[3], "iscrowd": 0})
    path.write_text(json.dumps(doc))
    return path


def _opts(ann, out, **kw):
    base = dict(frames=4, stride=4, slots=6, batch_size=2, steps=2, mot=True)
    base.update(kw)
    return SynthOptions(ann=Path(ann), out=Path(out), **base)


NON_PERSON = {3, 4, 5, 6, 9, 10, 11}  # the classes ByteTrack's converter skips


def read_like_bytetrack(mot_dir: Path) -> dict[str, dict]:
    """Per sequence: what the converters take from it (checking every convention on the way)."""
    seqs = {}
    for seq in sorted(p for p in mot_dir.iterdir() if not p.name.startswith(".")):
        ini = configparser.ConfigParser()
        ini.read(seq / "seqinfo.ini")
        info = ini["Sequence"]
        assert set(info) >= {"name", "imdir", "framerate", "seqlength", "imwidth", "imheight", "imext"}
        assert info["name"] == seq.name and info["imDir"] == "img1" and info["imExt"] == ".jpg"
        n, w, h = int(info["seqLength"]), int(info["imWidth"]), int(info["imHeight"])
        assert int(info["frameRate"]) >= 1
        img_dir = seq / "img1"
        assert img_dir.is_dir() and not img_dir.is_symlink()
        jpgs = sorted(p.name for p in img_dir.iterdir() if "jpg" in p.name)
        assert jpgs == [f"{i:06d}.jpg" for i in range(1, n + 1)]
        for i in range(n):
            img = cv2.imread(str(seq / "img1" / f"{i + 1:06d}.jpg"))
            assert img is not None and img.shape[:2] == (h, w)
        gt = np.loadtxt(seq / "gt" / "gt.txt", dtype=np.float64, delimiter=",", ndmin=2)
        assert gt.shape[1] == 9
        assert gt[:, 0].min() >= 1 and gt[:, 0].max() <= n
        kept = gt[(gt[:, 6] == 1) & ~np.isin(gt[:, 7], list(NON_PERSON))]
        seqs[seq.name] = {"n": n, "size": (w, h), "gt": gt, "kept": kept}
    return seqs


def _annotations_by_video(out: Path) -> dict[str, list[tuple[int, int, list[float]]]]:
    doc = json.loads((out / "annotations.json").read_text())
    images = {im["id"]: im for im in doc["images"]}
    names = {v["id"]: v["name"] for v in doc["videos"]}
    by_video: dict[str, list] = {}
    for a in doc["annotations"]:
        im = images[a["image_id"]]
        by_video.setdefault(names[im["video_id"]], []).append((im["frame_id"] + 1, a["instance_id"], a["bbox"]))
    return by_video


def test_mot_copy_follows_bytetrack_conventions_and_matches_annotations(tmp_path):
    ann = write_cocovid_source(tmp_path / "src.json")
    out = tmp_path / "synth"
    res = run_synth(_opts(ann, out), lambda: FakeGenerator((64, 48)))
    assert res.done == res.planned == 3 and res.finalized["paths"]["mot"] == str(out / "mot")
    seqs = read_like_bytetrack(out / "mot")
    doc = json.loads((out / "annotations.json").read_text())
    assert sorted(seqs) == sorted(v["name"] for v in doc["videos"])
    by_video = _annotations_by_video(out)
    for name, seq in seqs.items():
        assert seq["size"] == (64, 48) and seq["n"] == 4
        gt = seq["gt"]
        # a single-class source without MOT fields: every row is frame,id,x,y,w,h,1,1,1
        assert np.all(gt[:, 6:9] == 1) and len(seq["kept"]) == len(gt)
        want = by_video[name]
        assert len(gt) == len(want)
        # ids are per sequence (1..T) and map one-to-one onto annotations.json's instance ids
        pairs = {}
        for f, inst, bbox in want:
            rows = gt[gt[:, 0] == f]
            match = [r for r in rows if np.allclose(r[2:6], bbox, atol=1e-6)]
            assert len(match) == 1, (name, f, bbox)
            pairs.setdefault(int(match[0][1]), set()).add(inst)
        assert all(len(v) == 1 for v in pairs.values())
        assert sorted(pairs) == list(range(1, len(pairs) + 1))
        assert len({next(iter(v)) for v in pairs.values()}) == len(pairs)
    # the jpg copy of a png frame is that frame encoded at the run's --quality (95)
    for clip in seqs:
        for k in (1, 4):
            png = cv2.imread(str(out / "images" / clip / f"{k:06d}.png"))
            ok, want = cv2.imencode(".jpg", png, [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok and (out / "mot" / clip / "img1" / f"{k:06d}.jpg").read_bytes() == want.tobytes()


def test_jpg_frames_are_hard_linked_not_copied(tmp_path):
    ann = write_cocovid_source(tmp_path / "src.json")
    out = tmp_path / "synth"
    run_synth(_opts(ann, out, image_format="jpg"), FakeGenerator)
    read_like_bytetrack(out / "mot")
    for seq in (out / "mot").iterdir():
        for k in (1, 4):
            src = out / "images" / seq.name / f"{k:06d}.jpg"
            dst = seq / "img1" / f"{k:06d}.jpg"
            assert os.stat(src).st_ino == os.stat(dst).st_ino and not dst.is_symlink()


def test_mot_sequences_of_finished_clips_are_kept_and_out_of_date_ones_rebuilt(tmp_path):
    ann = write_cocovid_source(tmp_path / "src.json")
    out = tmp_path / "synth"
    run_synth(_opts(ann, out), FakeGenerator)
    seqs = sorted(p for p in (out / "mot").iterdir())
    inode = {p.name: os.stat(p / "img1" / "000001.jpg").st_ino for p in seqs}
    # an old-layout sequence (imDir=<clip>, no img1/) is replaced; an intact one is left alone
    old = seqs[0]
    (old / "seqinfo.ini").write_text((old / "seqinfo.ini").read_text().replace("imDir=img1", f"imDir={old.name}"))
    os.rename(old / "img1", old / old.name)
    # the sequence of a clip that is no longer finished goes
    gone = seqs[1].name
    (out / "clips" / f"{gone}.json").unlink()
    finalize(out, mot=True)
    after = read_like_bytetrack(out / "mot")
    assert gone not in after and len(after) == len(seqs) - 1
    assert not (old / old.name).exists()
    assert os.stat(seqs[2] / "img1" / "000001.jpg").st_ino == inode[seqs[2].name]
    assert not [p for p in (out / "mot").iterdir() if p.name.startswith(".")]  # no staging left


def test_mot_copy_of_a_mot_source_keeps_its_classes_and_visibility(tmp_path):
    from make_mot import write_mot_split

    src = write_mot_split(tmp_path / "MOT" / "train")
    out = tmp_path / "synth"
    run_synth(_opts(src, out), FakeGenerator)
    seqs = read_like_bytetrack(out / "mot")
    gt = np.concatenate([s["gt"] for s in seqs.values()])
    assert set(gt[:, 7].tolist()) == {1.0, 3.0}  # make_mot's classes: 3 (car) is skipped by the converter
    assert gt[:, 8].min() < 1  # its visibilities, not a constant 1
    assert sum(len(s["kept"]) for s in seqs.values()) < len(gt)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_cli_mot_flag_writes_the_layout(tmp_path, fake_model, fmt):
    ann = write_cocovid_source(tmp_path / "src.json")
    out = tmp_path / "synth"
    r = tdgen("synth", "--ann", ann, "--out", out, "--model", "fake", "--device", "cpu", "--steps", "2", "-q",
              "--mot", "--image-format", fmt)
    assert r.exit_code == 0, r.stderr
    assert len(read_like_bytetrack(out / "mot")) == 3
