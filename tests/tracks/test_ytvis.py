"""Native YouTube-VIS reader (tdgen.tracks.ytvis)."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import orjson
import pytest

from tdgen.errors import AnnotationError, FormatError, OutputError
from tdgen.tracks.ytvis import looks_like_ytvis, read_ytvis, write_ytvis, ytvis_from_dict, ytvis_to_dict

DATA = Path(__file__).resolve().parents[1] / "data"
MINI = DATA / "ytvis" / "mini_train.json"
COCOVID = DATA / "realdata" / "mmtracking" / "demo_vis_data_ann.json"


def load(path: Path = MINI) -> dict:
    return orjson.loads(path.read_bytes())


def test_counts_and_frames() -> None:
    doc = load()
    ts = read_ytvis(MINI)
    ts.check()
    assert ts.source_format == "ytvis" and ts.source == str(MINI)
    assert ts.num_videos == 2 and ts.videos.name.tolist() == ["003234408d", "0043f083b5"]
    assert ts.videos.id.tolist() == [1, 2]
    assert ts.videos.width.tolist() == [1280, 1280] and ts.videos.height.tolist() == [720, 720]
    n_frames = sum(len(v["file_names"]) for v in doc["videos"])
    n_boxes = sum(b is not None for a in doc["annotations"] for b in a["bboxes"])
    assert ts.num_frames == n_frames == 7
    assert ts.num_boxes == n_boxes == 8
    assert ts.num_tracks == len(doc["annotations"])
    assert ts.frames.file_name.tolist() == [f for v in doc["videos"] for f in v["file_names"]]
    assert ts.frames.index.tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert ts.frames.number.tolist() == [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0]
    assert np.array_equal(ts.frames.id, np.arange(1, 8))
    assert ts.warnings == []


def test_boxes_nulls_areas_segmentations() -> None:
    doc = load()
    ts = read_ytvis(MINI)
    b = ts.boxes
    # grouped by frame, annotation order inside a frame
    assert b.frame.tolist() == [0, 1, 2, 2, 3, 4, 5, 6]
    assert b.track.tolist() == [1, 2, 1, 2, 1, 3, 3, 3]
    assert b.category.tolist() == [2, 1, 2, 1, 2, 3, 3, 3]
    assert b.iscrowd.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert b.source_track.tolist() == [1.0, 2.0, 1.0, 2.0, 1.0, 3.0, 3.0, 3.0]
    assert b.bbox[0].tolist() == [10.0, 20.0, 100.0, 80.0]
    assert b.bbox[5].tolist() == [0.5, 0.25, 30.5, 12.75]
    # areas[k] kept; null area for a present box -> NaN
    assert b.area[:4].tolist() == [6500.0, 3900.0, 6600.0, 4000.0]
    assert math.isnan(b.area[4])
    # segmentations carried verbatim (RLE and polygons); null -> no extra
    a0, a1 = doc["annotations"][0], doc["annotations"][1]
    assert b.extra[0] == {"segmentation": a0["segmentations"][0]}
    assert b.extra[1] == {"segmentation": a1["segmentations"][1]}
    assert b.extra[4] is None
    assert b.visibility is None and b.conf is None
    assert np.array_equal(b.id, np.arange(1, 9))


def test_categories_meta_video_extra() -> None:
    doc = load()
    ts = read_ytvis(MINI)
    assert ts.categories == doc["categories"]
    assert ts.meta == {"info": doc["info"], "licenses": doc["licenses"]}
    assert ts.videos.extra[0]["date_captured"] == doc["videos"][0]["date_captured"]
    assert "file_names" not in ts.videos.extra[0]


def test_looks_like_ytvis() -> None:
    assert looks_like_ytvis(load())
    assert not looks_like_ytvis(load(COCOVID))  # COCO-VID: has images, annotations have bbox
    assert not looks_like_ytvis({"videos": []})
    assert not looks_like_ytvis([1, 2])
    doc = load()
    del doc["annotations"]
    assert looks_like_ytvis(doc)


def test_no_annotations_split(tmp_path: Path) -> None:
    doc = load()
    del doc["annotations"]
    p = tmp_path / "valid.json"
    p.write_bytes(orjson.dumps(doc))
    ts = read_ytvis(p)
    ts.check()
    assert ts.num_frames == 7 and ts.num_boxes == 0


def test_renumbered_track_ids() -> None:
    doc = load()
    doc["annotations"][0]["id"] = 0
    ts = ytvis_from_dict(doc, "x.json")
    assert sorted(set(ts.boxes.track.tolist())) == [1, 2, 3]
    assert ts.warnings and "renumbered" in ts.warnings[0]
    doc["annotations"][0]["id"] = 2  # duplicate
    ts = ytvis_from_dict(doc, "x.json")
    assert ts.num_tracks == 3 and ts.warnings


def test_write_round_trip(tmp_path: Path) -> None:
    ts = read_ytvis(MINI)
    out = write_ytvis(ts, tmp_path / "out.json")
    back = read_ytvis(out)
    # a null area next to a box is written as w * h (the only difference)
    b = ts.boxes
    expected_area = np.where(np.isnan(b.area), b.bbox[:, 2] * b.bbox[:, 3], b.area)
    assert np.array_equal(back.boxes.area, expected_area)
    back.boxes.area = b.area
    assert back.equals(ts)
    doc, written = load(), orjson.loads(out.read_bytes())
    assert written["videos"] == doc["videos"]
    assert written["annotations"][1] == doc["annotations"][1]
    with pytest.raises(OutputError, match="already exists"):
        write_ytvis(ts, out)
    assert ytvis_to_dict(ts)["categories"] == doc["categories"]


# --------------------------------------------------------------------------- errors
def _write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "bad.json"
    p.write_bytes(orjson.dumps(doc))
    return p


def test_malformed_json(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_bytes(b'{"videos": [\n  {"id": 1,}\n]}')
    with pytest.raises(AnnotationError, match=r"bad\.json: line 2, column \d+: invalid JSON"):
        read_ytvis(p)


def mutate(fn):
    doc = load()
    fn(doc)
    return doc


ERRORS = [
    ("no_videos", lambda d: d.pop("videos"), "videos: missing"),
    ("no_categories", lambda d: d.pop("categories"), "categories: missing"),
    ("no_file_names", lambda d: d["videos"][1].pop("file_names"), "videos[1] (id 2): missing key 'file_names'"),
    ("length_mismatch", lambda d: d["videos"][1].update(length=4), "videos[1] (id 2): length 4 but 3 file_names"),
    ("dup_video", lambda d: d["videos"][1].update(id=1), "videos[1] (id 1): video id 1 given twice"),
    ("no_bboxes", lambda d: d["annotations"][2].pop("bboxes"), "annotations[2] (id 3): missing key 'bboxes'"),
    ("dangling_video", lambda d: d["annotations"][2].update(video_id=7),
     "annotations[2] (id 3): video_id 7 is not the id of any video"),
    ("dangling_category", lambda d: d["annotations"][0].update(category_id=40),
     "annotations[0] (id 1): category_id 40 is not the id of any category"),
    ("short_bboxes", lambda d: d["annotations"][2]["bboxes"].pop(),
     "annotations[2] (id 3): bboxes has 2 entries, video 2 has 3 frames"),
    ("long_areas", lambda d: d["annotations"][0]["areas"].append(1.0),
     "annotations[0] (id 1): areas has 5 entries, video 1 has 4 frames"),
    ("short_segs", lambda d: d["annotations"][1]["segmentations"].pop(),
     "annotations[1] (id 2): segmentations has 3 entries, video 1 has 4 frames"),
    ("zero_width", lambda d: d["annotations"][1]["bboxes"].__setitem__(2, [1.0, 2.0, 0.0, 5.0]),
     "annotations[1] (id 2): bboxes[2]: [1.0,2.0,0.0,5.0]: width and height must be positive"),
    ("neg_height", lambda d: d["annotations"][2]["bboxes"].__setitem__(0, [1, 2, 3, -5]),
     "annotations[2] (id 3): bboxes[0]: [1,2,3,-5]: width and height must be positive"),
    ("short_box", lambda d: d["annotations"][2]["bboxes"].__setitem__(1, [1, 2, 3]),
     "annotations[2] (id 3): bboxes[1]: [1,2,3] is not [x, y, width, height]"),
    ("bad_crowd", lambda d: d["annotations"][0].update(iscrowd=2), "annotations[0] (id 1): iscrowd 2 is not 0 or 1"),
    # ids are JSON integers below 2**53: not strings, floats, booleans or null
    ("ann_id_string", lambda d: d["annotations"][0].update(id="1"),
     'annotations[0] (id "1"): id "1" is not an integer'),
    ("ann_id_bool", lambda d: d["annotations"][0].update(id=True),
     "annotations[0] (id true): id true is not an integer"),
    ("ann_id_float", lambda d: d["annotations"][0].update(id=1.0), "annotations[0] (id 1.0): id 1.0 is not an integer"),
    ("ann_id_null", lambda d: d["annotations"][0].update(id=None),
     "annotations[0] (id null): id null is not an integer"),
    ("ann_id_2_53", lambda d: d["annotations"][1].update(id=2**53),
     f"annotations[1] (id {2**53}): id {2**53} is not an integer below 2**53"),
    ("ann_id_2_64", lambda d: d["annotations"][1].update(id=2**64 - 1),
     f"annotations[1] (id {2**64 - 1}): id {2**64 - 1} is not an integer below 2**53"),
    ("video_id_string", lambda d: d["annotations"][2].update(video_id="2"),
     'annotations[2] (id 3): video_id "2" is not an integer'),
    ("video_id_bool", lambda d: d["annotations"][0].update(video_id=True),
     "annotations[0] (id 1): video_id true is not an integer"),
    ("category_id_float", lambda d: d["annotations"][0].update(category_id=2.0),
     "annotations[0] (id 1): category_id 2.0 is not an integer"),
    ("video_bool_id", lambda d: d["videos"][0].update(id=True), "videos[0]: id true is not an integer"),
    ("video_huge_id", lambda d: d["videos"][0].update(id=-(2**60)),
     f"videos[0] (id {-(2**60)}): id {-(2**60)} is not an integer below"),
    ("category_string_id", lambda d: d["categories"][0].update(id="1"), 'categories[0]: id "1" is not an integer'),
    ("category_bool_id", lambda d: d["categories"][0].update(id=False), "categories[0]: id false is not an integer"),
    ("category_name", lambda d: d["categories"][2].update(name=None),
     "categories[2] (id 3): name null is not a string"),
    # sizes are positive integers
    ("zero_width", lambda d: d["videos"][0].update(width=0),
     "videos[0] (id 1): width 0 is not an integer in 1..1,000,000"),
    ("negative_height", lambda d: d["videos"][1].update(height=-720),
     "videos[1] (id 2): height -720 is not an integer"),
    ("float_width", lambda d: d["videos"][0].update(width=1280.0), "videos[0] (id 1): width 1280.0 is not an integer"),
    ("bool_height", lambda d: d["videos"][0].update(height=True), "videos[0] (id 1): height true is not an integer"),
    ("huge_width", lambda d: d["videos"][0].update(width=10**7),
     "videos[0] (id 1): width 10000000 is not an integer in"),
    ("bool_length", lambda d: d["videos"][1].update(length=True, file_names=d["videos"][1]["file_names"][:1]),
     "videos[1] (id 2): length true but 1 file_names"),
    ("float_length", lambda d: d["videos"][1].update(length=3.0), "videos[1] (id 2): length 3.0 but 3 file_names"),
    ("bool_crowd", lambda d: d["annotations"][0].update(iscrowd=True),
     "annotations[0] (id 1): iscrowd true is not 0 or 1"),
    ("float_crowd", lambda d: d["annotations"][0].update(iscrowd=1.0),
     "annotations[0] (id 1): iscrowd 1.0 is not 0 or 1"),
    # bboxes entries are null or four numbers, bounded
    ("bool_in_box", lambda d: d["annotations"][0]["bboxes"].__setitem__(0, [1, 2, True, 4]),
     "annotations[0] (id 1): bboxes[0]: [1,2,true,4] is not [x, y, width, height]"),
    ("string_in_box", lambda d: d["annotations"][0]["bboxes"].__setitem__(0, [1, 2, "3", 4]),
     'annotations[0] (id 1): bboxes[0]: [1,2,"3",4] is not [x, y, width, height]'),
    ("null_in_box", lambda d: d["annotations"][0]["bboxes"].__setitem__(0, [1, 2, None, 4]),
     "annotations[0] (id 1): bboxes[0]: [1,2,null,4] is not [x, y, width, height]"),
    ("box_not_list", lambda d: d["annotations"][0]["bboxes"].__setitem__(0, {"x": 1}),
     'annotations[0] (id 1): bboxes[0]: {"x":1} is not [x, y, width, height]'),
    ("huge_box", lambda d: d["annotations"][0]["bboxes"].__setitem__(0, [1, 2, 1e300, 4]),
     "annotations[0] (id 1): bboxes[0]: [1,2,1e+300,4]: values must be below 2**53 in magnitude"),
    ("string_area", lambda d: d["annotations"][0]["areas"].__setitem__(0, "6500"),
     'annotations[0] (id 1): areas[0]: "6500" is not a non-negative number'),
    ("negative_area", lambda d: d["annotations"][0]["areas"].__setitem__(0, -1),
     "annotations[0] (id 1): areas[0]: -1 is not a non-negative number"),
    ("bool_area", lambda d: d["annotations"][0]["areas"].__setitem__(0, False),
     "annotations[0] (id 1): areas[0]: false is not a non-negative number"),
    ("images_key", lambda d: d.update(images=[]), "images: a YouTube-VIS file lists frames in videos[].file_names"),
]


@pytest.mark.parametrize("name,fn,msg", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(tmp_path: Path, name, fn, msg) -> None:
    p = _write(tmp_path, mutate(fn))
    with pytest.raises(AnnotationError) as ei:
        read_ytvis(p)
    assert str(ei.value).startswith(f"{p}: {msg}")


def test_nan_bbox_from_dict() -> None:
    doc = load()
    doc["annotations"][0]["bboxes"][2] = [1.0, float("nan"), 3.0, 4.0]
    with pytest.raises(AnnotationError, match=r"^x\.json: annotations\[0\] \(id 1\): bboxes\[2\]: .*finite"):
        ytvis_from_dict(copy.deepcopy(doc), "x.json")


def test_non_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    data = MINI.read_bytes()
    at = data.index(b"giant_panda")
    p = tmp_path / "latin1.json"
    p.write_bytes(data[:at] + b"\xe9" + data[at + 1:])
    line = data.count(b"\n", 0, at) + 1
    with pytest.raises(AnnotationError) as ei:
        read_ytvis(p)
    assert str(ei.value) == f"{p}: line {line}: not UTF-8 text (byte 0xe9 at byte offset {at})"
    p.write_bytes(b"\xef\xbb\xbf" + data[:at] + b"\xff" + data[at + 1:])  # the BOM counts
    with pytest.raises(AnnotationError, match=rf"line {line}: not UTF-8 text \(byte 0xff at byte offset {at + 3}\)$"):
        read_ytvis(p)
    p.write_bytes(b"\xff\xfe" + data.decode().encode("utf-16-le"))
    with pytest.raises(AnnotationError, match=r"line 1: not UTF-8 text \(byte 0xff at byte offset 0\)$"):
        read_ytvis(p)


@pytest.mark.timeout(20)  # a FIFO opened for reading would block: hang, not fail
def test_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"is a directory, not a regular file$"):
        read_ytvis(tmp_path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(AnnotationError, match=r"fifo\.json: is a named pipe \(FIFO\), not a regular file$"):
        read_ytvis(fifo)


def test_large_exact_ids_read_and_write(tmp_path: Path) -> None:
    doc = load()
    big = 2**53 - 1
    doc["annotations"][0]["id"] = big
    doc["videos"][0]["id"] = big - 1
    for a in doc["annotations"][:2]:
        a["video_id"] = big - 1
    ts = ytvis_from_dict(doc, "x.json")
    assert ts.boxes.source_track.max() == big and ts.videos.id.tolist() == [big - 1, 2]
    back = read_ytvis(write_ytvis(ts, tmp_path / "out.json"))
    assert sorted(back.boxes.track.tolist()) == sorted(ts.boxes.track.tolist())


def test_write_refuses_what_read_refuses(tmp_path: Path) -> None:
    ts = read_ytvis(MINI)
    ts.videos.width = np.array([0, 1280])
    with pytest.raises(OutputError, match=r"size 0x720 is unknown; YouTube-VIS needs width and height"):
        write_ytvis(ts, tmp_path / "out.json")
    ts = read_ytvis(MINI)
    ts.boxes.iscrowd = np.full(ts.num_boxes, 2, np.int8)
    with pytest.raises(OutputError, match=r"iscrowd 2 is not 0 or 1"):
        write_ytvis(ts, tmp_path / "out.json")
    ts = read_ytvis(MINI)
    ts.boxes.bbox = ts.boxes.bbox.copy()
    ts.boxes.bbox[1, 3] = np.nan
    with pytest.raises(OutputError, match=r"cannot be written to YouTube-VIS"):
        write_ytvis(ts, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
    # track ids beyond 2**53 are numbered 1..T
    ts = read_ytvis(MINI)
    ts.boxes.track = ts.boxes.track + 2**60
    back = read_ytvis(write_ytvis(ts, tmp_path / "out.json"))
    assert back.boxes.track.tolist() == (ts.boxes.track - 2**60).tolist()


def test_not_an_object(tmp_path: Path) -> None:
    p = tmp_path / "list.json"
    p.write_bytes(b"[1, 2]")
    with pytest.raises(FormatError, match="top level is not a JSON object"):
        read_ytvis(p)
