"""Merging training sets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from tdgen.tracks.cocovid import cocovid_dict, parse_cocovid, read_cocovid, write_cocovid
from tdgen.tracks.errors import AnnotationError, UsageError
from tdgen.tracks.merge import MergeOptions, merge_tracksets

from test_cocovid import REAL, make_doc


def _set(doc, **kw):
    return parse_cocovid(orjson.dumps(doc), kw.get("name", "<mem>"))


def _box_key(doc: dict, ann: dict, strip: str = "") -> tuple:
    images = {im["id"]: im for im in doc["images"]}
    cats = {c["id"]: c["name"] for c in doc["categories"]}
    fn = images[ann["image_id"]]["file_name"]
    if strip and fn.startswith(strip):
        fn = fn[len(strip):]
    return fn, cats[ann["category_id"]], tuple(ann["bbox"])


def test_merge_keeps_every_record_once_and_loads_in_pycocotools(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    base_doc = make_doc(2, [6, 5], [[2, 1], [3]], "mmdet", 1)
    extra_doc = make_doc(3, [4, 4, 3], [[1], [2, 0], [1, 3]], "mmdet", 2)
    extra_doc["categories"] = [{"id": 7, "name": "car"}, {"id": 8, "name": "pedestrian"}, {"id": 9, "name": "bicycle"}]
    for a in extra_doc["annotations"]:
        a["category_id"] += 6
    base, extra = _set(base_doc), _set(extra_doc)
    merged = merge_tracksets(base, [extra, extra], MergeOptions(prefixes=("synA", "synB")))
    path = write_cocovid(merged, tmp_path / "m.json")
    doc = json.loads(path.read_text())
    coco = COCO(str(path))
    for key in ("videos", "images", "annotations"):
        ids = [d["id"] for d in doc[key]]
        assert len(ids) == len(set(ids)), key
    assert len(coco.getAnnIds()) == len(base_doc["annotations"]) + 2 * len(extra_doc["annotations"])
    assert doc["categories"] == base_doc["categories"]  # base categories kept, same order
    inst = Counter(a["instance_id"] for a in doc["annotations"])
    # instance ids unique across the file: the two copies of the extra got different ones
    n_tracks = len({a["instance_id"] for a in base_doc["annotations"]}) + 2 * len(
        {a["instance_id"] for a in extra_doc["annotations"]})
    assert len(inst) == n_tracks
    # every box of every input exactly once, category matched by name
    got = Counter(_box_key(doc, a) for a in doc["annotations"])
    want = Counter(_box_key(base_doc, a) for a in base_doc["annotations"])
    for p in ("synA/", "synB/"):
        want.update(Counter((p + k[0],) + k[1:] for k in (_box_key(extra_doc, a) for a in extra_doc["annotations"])))
    assert got == want
    # the base part is untouched
    base_out = {a["id"]: a for a in doc["annotations"]}
    for a in base_doc["annotations"]:
        assert base_out[a["id"]] == a
    assert all(v["name"].startswith(("seq", "synA/", "synB/")) for v in doc["videos"])


def test_unknown_category_is_an_error_unless_added():
    base = _set(make_doc(1, [3], [[1]], "mmdet", 1))
    extra_doc = make_doc(1, [3], [[1]], "mmdet", 2)
    extra_doc["categories"].append({"id": 4, "name": "zebra"})
    extra_doc["annotations"][0]["category_id"] = 4
    extra = _set(extra_doc, name="extra.json")
    with pytest.raises(AnnotationError, match="category 'zebra' is not in the base set"):
        merge_tracksets(base, [extra])
    merged = merge_tracksets(base, [extra], MergeOptions(add_categories=True, prefixes=("s",)))
    names = {c["id"]: c["name"] for c in merged.categories}
    assert names[4] == "zebra"
    assert (merged.boxes.category == 4).sum() == 1


def test_subsampling_is_seeded():
    base = _set(make_doc(1, [3], [[1]], "mmdet", 1))
    extra = _set(make_doc(3, [2, 2, 2], [[1], [1], [1]], "mmdet", 2))
    a = merge_tracksets(base, [extra], MergeOptions(prefixes=("s",), max_videos=2, seed=5))
    b = merge_tracksets(base, [extra], MergeOptions(prefixes=("s",), max_videos=2, seed=5))
    assert a.num_videos == 3
    assert a.videos.name.tolist() == b.videos.name.tolist()
    r = merge_tracksets(base, [extra], MergeOptions(prefixes=("s",), ratio=1 / 3))
    assert r.num_videos == 2


def test_prefix_count_must_match():
    base = _set(make_doc(1, [3], [[1]], "mmdet", 1))
    with pytest.raises(UsageError):
        merge_tracksets(base, [base, base, base], MergeOptions(prefixes=("a", "b")))


def test_same_names_without_prefix_are_refused():
    from tdgen.tracks.errors import OutputError

    base = _set(make_doc(1, [3], [[1]], "mmdet", 1))
    with pytest.raises(OutputError, match="--prefix"):
        merge_tracksets(base, [base])


def test_bytetrack_base_keeps_its_flavour():
    base = _set(make_doc(1, [4], [[1]], "bytetrack", 1))
    extra = _set(make_doc(1, [3], [[2]], "mmdet", 2))
    merged = merge_tracksets(base, [extra], MergeOptions(prefixes=("syn",)))
    doc = cocovid_dict(merged)
    assert all("track_id" in a for a in doc["annotations"])
    starts = [im["frame_id"] for im in doc["images"] if im["prev_image_id"] == -1]
    assert starts == [1, 1]


def test_merge_real_fixture_with_itself(tmp_path):
    base = read_cocovid(REAL / "demo_mot_data_ann.json")
    merged = merge_tracksets(base, [base], MergeOptions(prefixes=("copy",)))
    assert merged.num_boxes == 2 * base.num_boxes
    doc = cocovid_dict(merged)
    assert min(a["instance_id"] for a in doc["annotations"]) >= 1
    assert len({a["instance_id"] for a in doc["annotations"]}) == 2 * base.num_tracks
