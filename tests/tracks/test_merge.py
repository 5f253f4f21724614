"""Merging training sets."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest

from tdgen.tracks import streammerge as sm
from tdgen.tracks.cocovid import cocovid_dict, parse_cocovid, read_cocovid, write_cocovid
from tdgen.tracks.cocovid_write import CocovidDoc, atomic_stream
from tdgen.errors import AnnotationError, OutputError, UsageError
from tdgen.tracks.merge import MergeOptions, merge_tracksets
from tdgen.tracks.streammerge import merge_files

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


# --------------------------------------------------------------------------- the streaming merge
# ``merge_files`` streams big COCO-VID inputs; every test below runs it with ``stream_min_bytes=0``
# and tiny blocks (many chunks, records cut across blocks) and compares it with the in-memory
# merge (read_tracks + merge_tracksets + write_cocovid) on the same inputs.


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch):
    monkeypatch.setattr(sm, "BLOCK", 1500)
    monkeypatch.setattr(sm, "PARSE_BLOCK", 1 << 12)
    monkeypatch.setattr(sm, "SPLIT", 3)


def _same(a, b, path="$"):
    """Equal as parsed JSON: numbers compare by value (1 == 1.0), booleans, strings, nulls exactly."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        assert type(a) is type(b) and a == b, (path, a, b)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        assert a == b, (path, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (path, set(a) ^ set(b))
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (path, len(a), len(b) if isinstance(b, list) else b)
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


def _dump(path: Path, doc: dict, style: str = "compact") -> Path:
    if style == "compact":
        path.write_bytes(orjson.dumps(doc))
    elif style == "spaced":  # json.dump's defaults: ", " and ": " (mmtracking, ByteTrack)
        path.write_text(json.dumps(doc))
    else:
        path.write_text(json.dumps(doc, indent=2))
    return path


def _both(tmp_path, paths, options=MergeOptions(), flavor=None, streamed=True):
    """Merge both ways; check the outputs and summaries agree; return the parsed output."""
    out_s, out_m = tmp_path / "streamed.json", tmp_path / "in_memory.json"
    got = merge_files(paths[0], paths[1:], out_s, options, flavor, stream_min_bytes=0)
    want = sm._merge_in_memory([Path(p) for p in paths], out_m, options, flavor)
    assert got.streamed is streamed
    a, b = orjson.loads(out_s.read_bytes()), orjson.loads(out_m.read_bytes())
    assert list(a) == list(b)
    _same(a, b)
    for k in ("num_videos", "num_frames", "num_tracks", "num_boxes", "base_videos", "base_frames", "base_boxes",
              "warnings"):
        assert getattr(got, k) == getattr(want, k), k
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    return a


def _docs(seed=0, base_flavor="mmdet", extra_flavor="mmdet"):
    base = make_doc(3, [5, 4, 6], [[2, 1], [3, 0], [1]], base_flavor, seed)
    extra = make_doc(2, [4, 6], [[1, 2], [2]], extra_flavor, seed + 1)
    return base, extra


@pytest.mark.parametrize("base_flavor,extra_flavor,out", [
    ("mmdet", "mmdet", None), ("mmdet", "bytetrack", None), ("bytetrack", "mmdet", None),
    ("bytetrack", "bytetrack", None), ("mmdet", "mmdet", "bytetrack"), ("bytetrack", "mmdet", "mmdet")])
def test_streaming_merge_equals_the_in_memory_merge(tmp_path, base_flavor, extra_flavor, out):
    base, extra = _docs(1, base_flavor, extra_flavor)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("syn",)), out)
    assert len(doc["annotations"]) == len(base["annotations"]) + len(extra["annotations"])


def test_streaming_merge_loads_in_pycocotools_with_unique_ids(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    base, extra = _docs(2)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra),
             _dump(tmp_path / "extra2.json", extra, "spaced")]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("a", "b")))
    for key in ("videos", "images", "annotations"):
        ids = [d["id"] for d in doc[key]]
        assert len(ids) == len(set(ids)), key
    coco = COCO(str(tmp_path / "streamed.json"))
    assert len(coco.getAnnIds()) == len(base["annotations"]) + 2 * len(extra["annotations"])
    # the two copies of the extra got different track ids
    n_tracks = len({a["instance_id"] for a in base["annotations"]}) + 2 * len(
        {a["instance_id"] for a in extra["annotations"]})
    assert len({a["instance_id"] for a in doc["annotations"]}) == n_tracks


@pytest.mark.parametrize("style", ["compact", "spaced"])
def test_spacing_and_key_order_of_the_inputs_do_not_matter(tmp_path, style):
    base, extra = _docs(3)
    rng = random.Random(0)
    for a in extra["annotations"]:  # every record with its own key order
        items = list(a.items())
        rng.shuffle(items)
        a.clear()
        a.update(items)
    paths = [_dump(tmp_path / "base.json", base, style), _dump(tmp_path / "extra.json", extra, style)]
    _both(tmp_path, paths, MergeOptions(prefixes=("syn",)))


def test_records_that_lack_optional_keys(tmp_path):
    base, extra = _docs(4)
    for i, a in enumerate(extra["annotations"]):
        if i % 3 == 0:
            del a["area"]
        if i % 4 == 1:
            del a["iscrowd"]
        if i % 5 == 2:
            del a["instance_id"]  # each such box gets its own track
        if i % 2:
            del a["video_id"]
            del a["visibility"]
    for i, a in enumerate(base["annotations"]):
        if i % 3 == 1:
            del a["video_id"]
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("syn",)))
    assert all("area" in a and "iscrowd" in a and "video_id" in a for a in doc["annotations"])


def test_video_ids_dropped_when_the_base_has_none_and_track_keys_renamed(tmp_path):
    base, extra = _docs(5, "mmdet", "bytetrack")
    for a in base["annotations"]:
        del a["video_id"]
    for i, a in enumerate(extra["annotations"]):
        if i % 2:
            a["instance_id"] = a["track_id"]  # both keys: the instance id wins, track_id goes
    extra["annotations"][0] = {"video_id": extra["annotations"][0].pop("video_id"), **extra["annotations"][0]}
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra, "spaced")]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("syn",)))
    assert not any("video_id" in a or "track_id" in a for a in doc["annotations"])


def test_ids_the_writer_renumbers(tmp_path):
    base, extra = _docs(6)
    for a in base["annotations"]:
        a["id"] -= 1  # 0-based annotation ids: renumbered 1..n
        a["instance_id"] -= 1  # 0-based tracks
    for a in extra["annotations"]:
        a["instance_id"] = a["instance_id"] % 10  # restarting in every video: renumbered per (video, id)
        a["id"] += 10**6
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("syn",)))
    assert min(a["id"] for a in doc["annotations"]) == 1


def test_huge_track_ids_are_numbered_from_one(tmp_path):
    base, extra = _docs(7)
    for a in base["annotations"]:
        a["instance_id"] += 3 * 2**31
        a["id"] += 2**31 - 10  # the extra's ids, offset past these, no longer fit 32 bits
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("syn",)))
    assert max(a["instance_id"] for a in doc["annotations"]) < 2**31
    assert max(a["id"] for a in doc["annotations"]) > 2**31


def test_images_out_of_file_order_and_sparse_ids(tmp_path):
    base, extra = _docs(8)
    id_map = {im["id"]: 7 * im["id"] + 100 for im in extra["images"]}
    for im in extra["images"]:
        im["id"] = id_map[im["id"]]
    for a in extra["annotations"]:
        a["image_id"] = id_map[a["image_id"]]
    random.Random(1).shuffle(extra["images"])  # the boxes still follow (video, frame) order
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    _both(tmp_path, paths, MergeOptions(prefixes=("syn",)))


@pytest.mark.parametrize("opts", [MergeOptions(prefixes=("s",), ratio=0.5, seed=3),
                                  MergeOptions(prefixes=("s",), max_videos=1, seed=1),
                                  MergeOptions(prefixes=("s",), max_videos=0)])
def test_subsampled_extras(tmp_path, opts):
    base = make_doc(2, [3, 4], [[1], [2]], "mmdet", 9)
    extra = make_doc(4, [3, 5, 2, 4], [[1, 2], [0, 3], [2], [1]], "mmdet", 10)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra),
             _dump(tmp_path / "extra2.json", extra, "spaced")]
    _both(tmp_path, paths, replace(opts, prefixes=("a", "b")))


def test_categories_by_name_added_or_refused(tmp_path):
    base, extra = _docs(11)
    extra["categories"] = [{"id": 11, "name": "car"}, {"id": 12, "name": "zebra"}, {"id": 13, "name": "unused"},
                           {"id": 14, "name": "pedestrian"}, {"id": 15, "name": "bicycle"}]
    for i, a in enumerate(extra["annotations"]):
        a["category_id"] = [11, 12, 14, 15][i % 4]
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("s",), add_categories=True))
    assert [c["name"] for c in doc["categories"]] == ["pedestrian", "car", "bicycle", "zebra"]
    out = tmp_path / "refused.json"
    with pytest.raises(AnnotationError, match="category 'zebra' is not in the base set") as e1:
        merge_files(paths[0], paths[1:], out, MergeOptions(prefixes=("s",)), stream_min_bytes=0)
    with pytest.raises(AnnotationError) as e2:
        sm._merge_in_memory([Path(p) for p in paths], out, MergeOptions(prefixes=("s",)), None)
    assert str(e1.value) == str(e2.value)
    assert not out.exists()


def test_extra_keys_nested_values_and_escapes(tmp_path):
    base, extra = _docs(12)
    for i, a in enumerate(base["annotations"]):
        a["ignore"] = 0
        a["attributes"] = {"occluded": bool(i % 2), "note": "a \"quoted\" \\ name"}  # copied as they are
    for a in extra["annotations"]:
        a["ignore"] = 1
    base["type"] = "instances"
    base["num_instances"] = 3
    for im in extra["images"]:
        im["file_name"] = "vidéo/" + im["file_name"]
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("s",)))
    assert doc["type"] == "instances" and doc["annotations"][0]["attributes"]["note"] == 'a "quoted" \\ name'


def test_a_rewritten_input_with_nested_values_falls_back(tmp_path):
    base, extra = _docs(13)
    for a in extra["annotations"]:
        a["attributes"] = {"occluded": False}
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    _both(tmp_path, paths, MergeOptions(prefixes=("s",)), streamed=False)


@pytest.mark.parametrize("layout", ["annotations_first", "bytetrack_order", "no_annotations", "empty", "bom"])
def test_key_layouts(tmp_path, layout):
    base, extra = _docs(14)
    if layout == "annotations_first":
        extra = {"annotations": extra["annotations"], **{k: v for k, v in extra.items() if k != "annotations"}}
    elif layout == "bytetrack_order":  # ByteTrack's converters: images, annotations, videos, categories
        extra = {k: extra[k] for k in ("images", "annotations", "videos", "categories")}
    elif layout == "no_annotations":
        del extra["annotations"]
    elif layout == "empty":
        extra["annotations"] = []
        base["annotations"] = []
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    if layout == "bom":
        paths[1].write_bytes(b"\xef\xbb\xbf" + paths[1].read_bytes())
    _both(tmp_path, paths, MergeOptions(prefixes=("s",)))


def test_small_and_non_cocovid_inputs_take_the_in_memory_merge(tmp_path):
    base, extra = _docs(21)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    got = merge_files(paths[0], paths[1:], tmp_path / "a.json", MergeOptions(prefixes=("s",)))
    assert not got.streamed  # below STREAM_MIN_BYTES
    mot = Path(__file__).parent.parent / "data" / "realdata" / "sportsmot" / "v_-6Os86HzwCs_c001"
    got = merge_files(paths[0], [mot], tmp_path / "b.json", MergeOptions(prefixes=("s",), add_categories=True),
                      stream_min_bytes=0)
    assert not got.streamed and got.num_boxes > len(base["annotations"])


def test_real_fixtures_compacted(tmp_path):
    names = ["demo_mot_data_ann.json", "demo_cocovid_data_ann_vid.json", "demo_vis_data_ann.json"]
    paths = []
    for n in names:
        doc = json.loads((REAL / n).read_text())
        for a in doc["annotations"]:
            if isinstance(a.get("iscrowd"), bool):
                a["iscrowd"] = int(a["iscrowd"])
        paths.append(_dump(tmp_path / n, doc))
    _both(tmp_path, [paths[0], paths[0], paths[0]], MergeOptions(prefixes=("x", "y")))
    # boxes listed out of image order (the reader reorders them) and masks as nested objects in a
    # set whose ids change: both are left to the in-memory merge
    _both(tmp_path, paths[:2], MergeOptions(prefixes=("b",), add_categories=True), streamed=False)
    _both(tmp_path, [paths[0], paths[2]], MergeOptions(prefixes=("b",), add_categories=True), streamed=False)


@pytest.mark.parametrize("change", ["pretty", "null", "string_tracks", "boxes_out_of_order", "bool_crowd", "float_ids"])
def test_inputs_the_stream_leaves_to_the_in_memory_merge(tmp_path, change):
    base, extra = _docs(15)
    style = "compact"
    if change == "pretty":
        style = "pretty"
    elif change == "null":
        extra["annotations"][1]["visibility"] = None
    elif change == "string_tracks":
        for a in extra["annotations"]:
            a["instance_id"] = f"t{a['instance_id']}"
    elif change == "boxes_out_of_order":
        extra["annotations"].reverse()
    elif change == "bool_crowd":
        for a in extra["annotations"]:
            a["iscrowd"] = bool(a["iscrowd"])
    else:
        for a in extra["annotations"]:
            a["id"] = float(a["id"])
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra, style)]
    _both(tmp_path, paths, MergeOptions(prefixes=("s",)), streamed=False)


def _bad(doc: dict, what: str) -> dict:
    a = doc["annotations"]
    if what == "image":
        a[3]["image_id"] = 999
    elif what == "category":
        a[2]["category_id"] = 77
    elif what == "dup":
        a[4]["id"] = a[1]["id"]
    elif what == "box":
        a[5]["bbox"][2] = 0
    elif what == "video":
        a[1]["video_id"] = 2 if a[1]["video_id"] == 1 else 1
    elif what == "order_and_image":  # two problems: the reader's first one is named
        a[2]["image_id"], a[3]["category_id"] = 999, 77
    elif what == "huge_id":
        a[0]["id"] = 2**60
    elif what == "string_id":
        a[1]["id"] = "x"
    elif what == "nan":
        a[1]["area"] = float("nan")
    return doc


@pytest.mark.parametrize("what", ["image", "category", "dup", "box", "video", "order_and_image", "huge_id",
                                  "string_id", "nan"])
@pytest.mark.parametrize("which", [0, 1])
def test_bad_input_gives_the_same_error_and_writes_nothing(tmp_path, what, which):
    docs = list(_docs(16))
    docs[which] = _bad(docs[which], what)
    paths = []
    for i, d in enumerate(docs):
        p = tmp_path / f"in{i}.json"
        p.write_bytes(orjson.dumps(d) if what != "nan" else orjson.dumps(d).replace(b"null", b"NaN"))
        paths.append(p)
    out = tmp_path / "out.json"
    with pytest.raises(AnnotationError) as e1:
        merge_files(paths[0], paths[1:], out, MergeOptions(prefixes=("s",)), stream_min_bytes=0)
    with pytest.raises(AnnotationError) as e2:
        sm._merge_in_memory(paths, out, MergeOptions(prefixes=("s",)), None)
    assert str(e1.value) == str(e2.value)
    assert str(paths[which]) in str(e1.value)
    assert sorted(tmp_path.iterdir()) == sorted(paths)  # no output, no temporary file


@pytest.mark.parametrize("case", ["prefixes", "names", "ratio"])
def test_merge_rule_errors_are_the_same(tmp_path, case):
    base, extra = _docs(17)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    opts = {"prefixes": MergeOptions(prefixes=("a", "b")), "names": MergeOptions(),
            "ratio": MergeOptions(prefixes=("a",), ratio=0.0)}[case]
    if case == "names":
        paths = [paths[0], paths[0]]
    out = tmp_path / "out.json"
    with pytest.raises((UsageError, OutputError)) as e1:
        merge_files(paths[0], paths[1:], out, opts, stream_min_bytes=0)
    with pytest.raises((UsageError, OutputError)) as e2:
        sm._merge_in_memory([Path(p) for p in paths], out, opts, None)
    assert type(e1.value) is type(e2.value) and str(e1.value) == str(e2.value)
    assert not out.exists()


def test_missing_extra_is_reported_like_the_reader_does(tmp_path):
    base, _ = _docs(18)
    paths = [_dump(tmp_path / "base.json", base), tmp_path / "nope.json"]
    with pytest.raises(AnnotationError, match="nope.json"):
        merge_files(paths[0], paths[1:], tmp_path / "out.json", stream_min_bytes=0)


def test_streamed_files_written_atomically_and_exactly(tmp_path):
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 3 << 20, 12)]
    path = tmp_path / "x.bin"
    with atomic_stream(path) as f:
        for p in pieces:
            f.write(p)
            f.write(memoryview(p)[:7])
    assert path.read_bytes() == b"".join(p + p[:7] for p in pieces)
    with pytest.raises(RuntimeError):
        with atomic_stream(tmp_path / "y.bin") as f:
            f.write(b"partial")
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_streamed_writer_is_byte_identical_to_the_dict(tmp_path, monkeypatch):
    from tdgen.tracks import cocovid_write

    monkeypatch.setattr(cocovid_write, "ROWS", 3)
    sets = [read_cocovid(REAL / n) for n in ("demo_mot_data_ann.json", "demo_cocovid_data_ann_vid.json")]
    sets += [_set(make_doc(3, [4, 2, 5], [[1, 3], [2], [0, 1]], f, 19)) for f in ("mmdet", "bytetrack")]
    odd = make_doc(2, [3, 2], [[1], [2]], "mmdet", 22)
    odd["images"][0]["file_name"] = "vidéo/\u2028x\x7f\U0001F600.jpg"  # written raw by orjson
    odd["images"][1]["file_name"] = 'a "quoted" \\ name\n'  # escaped: the dict path
    sets.append(_set(odd))
    for ts in sets:
        for flavor in (None, "mmdet", "bytetrack"):
            path = write_cocovid(ts, tmp_path / "w.json", flavor)
            assert path.read_bytes() == orjson.dumps(cocovid_dict(ts, flavor))
            assert b"".join(bytes(p) for p in CocovidDoc(ts, flavor).iter_bytes(rows=2)) == path.read_bytes()


def test_box_warnings_are_the_readers(tmp_path):
    base, extra = _docs(20)
    w = extra["images"][0]["width"]
    edges = [[-0.5, 1, 5, 5], [w - 5, 1, 5, 5], [w - 5, 1, 5.000001, 5], [0, 0, 1, 1]]
    for a, box in zip(extra["annotations"], edges):
        a["image_id"] = extra["images"][0]["id"]
        a["bbox"] = box
    extra["annotations"].sort(key=lambda a: a["image_id"])
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    doc = _both(tmp_path, paths, MergeOptions(prefixes=("s",)))
    got = merge_files(paths[0], paths[1:], tmp_path / "again.json", MergeOptions(prefixes=("s",)),
                      stream_min_bytes=0)
    assert any("extend past their frame" in x for x in got.warnings)
    assert len(doc["annotations"]) == len(base["annotations"]) + len(extra["annotations"])


@pytest.mark.parametrize("mode", ["late", "late_and_waited_for", "wrong_guess", "no_guess"])
def test_the_skeleton_late_or_guessed_wrong(tmp_path, monkeypatch, mode):
    """Records parsed before the skeleton is there are checked once it is; a wrong guess of where
    the annotations end is found out, and the input read again with the right skeleton."""
    import threading
    import time

    base, extra = _docs(23)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    guess = sm._Part.guess_skeleton
    seen = []
    if mode.startswith("late"):
        main = threading.main_thread()

        def slow(self):
            time.sleep(0.3)  # the main thread parses blocks meanwhile
            return guess(self)

        monkeypatch.setattr(sm._Part, "guess_skeleton", slow)
        if mode == "late_and_waited_for":
            monkeypatch.setattr(sm, "MAX_DEFERRED", 2)
        check = sm._Part._check

        def spy(self, block):
            seen.append(threading.current_thread() is main)
            return check(self, block)

        monkeypatch.setattr(sm._Part, "_check", spy)
    else:
        monkeypatch.setattr(sm._Part, "_guess_close",
                            staticmethod(lambda f, body, size, window=0: body + 3 if mode == "wrong_guess" else None))
    _both(tmp_path, paths, MergeOptions(prefixes=("s",)))
    if mode.startswith("late"):
        assert seen and all(seen)


# --------------------------------------------------------------------------- dropping and mapping categories
def _mot_like(flavor: str, categories: list[dict], seed: int, n_videos: int = 2) -> dict:
    """A document whose boxes cycle through ``categories`` (each track keeps one category)."""
    doc = make_doc(n_videos, [5] * n_videos, [[len(categories)]] * n_videos, flavor, seed)
    doc["categories"] = categories
    key = "instance_id" if flavor == "mmdet" else "track_id"
    for a in doc["annotations"]:
        a["category_id"] = categories[(a[key] - 1) % 10 % len(categories)]["id"]
    return doc


PED = [{"id": 1, "name": "pedestrian"}]
MIXED = [{"id": 1, "name": "pedestrian"}, {"id": 3, "name": "car"}, {"id": 7, "name": "static_person"}]


def _class_indices(doc: dict) -> list[int]:
    """What ByteTrack's loader gives a detector head: each category_id's position among the
    sorted category ids (an id that is not listed raises)."""
    ids = sorted(c["id"] for c in doc["categories"])
    return [ids.index(a["category_id"]) for a in doc["annotations"]]


def test_dropped_categories_leave_a_one_class_file(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    base, extra = _mot_like("bytetrack", PED, 30), _mot_like("mmdet", MIXED, 31)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    with pytest.raises(AnnotationError, match="category 'car' is not in the base set"):
        merge_files(paths[0], paths[1:], tmp_path / "refused.json", MergeOptions(prefixes=("s",)))
    opts = MergeOptions(prefixes=("s",), drop_categories=("static_person", "Car"))
    doc = _both(tmp_path, paths, opts, streamed=False)
    assert doc["categories"] == PED
    assert {a["category_id"] for a in doc["annotations"]} == {1}
    assert set(_class_indices(doc)) == {0}  # a 1-class head takes every box
    kept = [a for a in extra["annotations"] if a["category_id"] == 1]
    assert len(doc["annotations"]) == len(base["annotations"]) + len(kept)
    extra_tracks = {a["track_id"] for a in doc["annotations"]} - {a["track_id"] for a in base["annotations"]}
    assert len(extra_tracks) == len({a["instance_id"] for a in kept})  # tracks without a box are gone
    assert all("track_id" in a and "instance_id" not in a for a in doc["annotations"])  # the base's flavour
    got = merge_files(paths[0], paths[1:], tmp_path / "again.json", opts)
    dropped = len(extra["annotations"]) - len(kept)
    lost = len({a["instance_id"] for a in extra["annotations"]}) - len({a["instance_id"] for a in kept})
    line = [w for w in got.warnings if "--drop-categories" in w]
    assert line == [f"{paths[1]}: --drop-categories static_person, car: kept {len(kept)} of "
                    f"{len(extra['annotations'])} boxes; dropped {dropped} (car {dropped // 2}, static_person "
                    f"{dropped // 2}); 1 of 3 categories listed; {lost} tracks left with no box dropped"]
    assert got.num_boxes == len(doc["annotations"]) and not got.streamed
    assert len(COCO(str(tmp_path / "again.json")).getAnnIds()) == len(doc["annotations"])


def test_mapped_categories_match_the_base(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    base = _mot_like("bytetrack", PED, 32)
    extra = _mot_like("mmdet", [{"id": 4, "name": "person"}, {"id": 9, "name": "rider"}], 33)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    opts = MergeOptions(prefixes=("s",), category_map={"person": "pedestrian", "Rider": "pedestrian"})
    doc = _both(tmp_path, paths, opts, streamed=False)
    assert doc["categories"] == PED
    assert set(_class_indices(doc)) == {0}
    assert len(doc["annotations"]) == len(base["annotations"]) + len(extra["annotations"])
    assert len(COCO(str(tmp_path / "streamed.json")).getAnnIds()) == len(doc["annotations"])
    # a mapping alone adds no warning
    got = merge_files(paths[0], paths[1:], tmp_path / "again.json", opts)
    plain = merge_files(paths[0], paths[1:], tmp_path / "plain.json", MergeOptions(prefixes=("s",), add_categories=True))
    assert got.warnings == plain.warnings


def test_several_old_names_onto_one_new_name_merge():
    base = _set(_mot_like("mmdet", PED, 34))
    extra = _set(_mot_like("mmdet", [{"id": 2, "name": "man"}, {"id": 5, "name": "woman"},
                                     {"id": 6, "name": "car"}], 35))
    opts = MergeOptions(prefixes=("s",), add_categories=True, category_map={"man": "person", "woman": "person"})
    merged = merge_tracksets(base, [extra], opts)
    assert merged.categories == PED + [{"id": 2, "name": "person"}, {"id": 3, "name": "car"}]
    names = merged.category_names()
    got = Counter(names[int(c)] for c in merged.boxes.category[base.num_boxes:])
    want = Counter({"man": "person", "woman": "person"}.get(n, n) for n in
                   (extra.category_names()[int(c)] for c in extra.boxes.category))
    assert got == want and got["person"] > 0
    assert base.categories == PED and merged.boxes.category[:base.num_boxes].tolist() == [1] * base.num_boxes


def test_drop_and_map_touch_only_the_extras():
    base = _set(_mot_like("mmdet", MIXED, 36))
    extra = _set(_mot_like("mmdet", MIXED, 37))
    merged = merge_tracksets(base, [extra], MergeOptions(prefixes=("s",), drop_categories=("car",),
                                                         category_map={"static_person": "pedestrian"}))
    assert merged.categories == MIXED  # the base's list, as it was
    cats = merged.boxes.category
    assert np.array_equal(cats[:base.num_boxes], base.boxes.category)
    assert set(cats[base.num_boxes:].tolist()) == {1}
    assert merged.num_boxes - base.num_boxes == int((extra.boxes.category != 3).sum())


def test_a_name_one_extra_lacks_is_fine_a_name_none_has_is_refused():
    base = _set(_mot_like("mmdet", PED, 38))
    cars = _set(_mot_like("mmdet", [{"id": 1, "name": "pedestrian"}, {"id": 3, "name": "car"}], 39))
    people = _set(_mot_like("mmdet", [{"id": 1, "name": "pedestrian"}, {"id": 7, "name": "static_person"}], 40))
    merged = merge_tracksets(base, [cars, people], MergeOptions(prefixes=("a", "b"),
                                                                drop_categories=("car", "static_person")))
    assert merged.categories == PED and set(merged.boxes.category.tolist()) == {1}
    assert sum("--drop-categories" in w for w in merged.warnings) == 2  # one line per extra set
    with pytest.raises(UsageError) as e:
        merge_tracksets(base, [cars, people], MergeOptions(prefixes=("a", "b"), drop_categories=("bus",)))
    assert str(e.value) == ("--drop-categories: unknown class 'bus'; the extra sets' classes are: "
                            "pedestrian, car, static_person")
    with pytest.raises(UsageError, match=r"^--map: unknown class 'bus'; the extra sets' classes are: "):
        merge_tracksets(base, [cars], MergeOptions(prefixes=("a",), category_map={"bus": "pedestrian"}))
    with pytest.raises(UsageError, match=r"^--map: 'car' is dropped by --drop-categories too"):
        merge_tracksets(base, [cars], MergeOptions(prefixes=("a",), drop_categories=("car",),
                                                   category_map={"car": "pedestrian"}))


def test_dropping_every_category_of_an_extra_keeps_its_frames():
    base = _set(_mot_like("mmdet", PED, 41))
    cars = _set(_mot_like("mmdet", [{"id": 3, "name": "car"}], 42))
    merged = merge_tracksets(base, [cars], MergeOptions(prefixes=("a",), drop_categories=("car",)))
    assert merged.num_boxes == base.num_boxes and merged.num_frames == base.num_frames + cars.num_frames
    assert merged.categories == PED
    assert any(w.endswith(f"kept 0 of {cars.num_boxes} boxes; no category listed; {cars.num_tracks} tracks "
                          "left with no box dropped") for w in merged.warnings)


def test_category_edits_and_the_usage_errors_of_merge_files(tmp_path):
    base, extra = _mot_like("mmdet", PED, 43), _mot_like("mmdet", MIXED, 44)
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    # a subsample and a drop together: the drop counts only the videos kept
    opts = MergeOptions(prefixes=("s",), max_videos=1, drop_categories=("car", "static_person"))
    doc = _both(tmp_path, paths, opts, streamed=False)
    assert {a["category_id"] for a in doc["annotations"]} == {1}
    with pytest.raises(UsageError, match="unknown class 'bus'"):
        merge_files(paths[0], paths[1:], tmp_path / "out.json", MergeOptions(prefixes=("s",),
                                                                            category_map={"bus": "car"}),
                    stream_min_bytes=0)
    assert not (tmp_path / "out.json").exists()


def test_annotations_without_images_are_refused_like_the_reader_does(tmp_path):
    base, extra = _docs(45)
    extra["images"] = []
    paths = [_dump(tmp_path / "base.json", base), _dump(tmp_path / "extra.json", extra)]
    with pytest.raises(AnnotationError) as streamed:
        merge_files(paths[0], paths[1:], tmp_path / "out.json", MergeOptions(prefixes=("s",)), stream_min_bytes=0)
    with pytest.raises(AnnotationError) as in_memory:
        sm._merge_in_memory([Path(p) for p in paths], tmp_path / "out.json", MergeOptions(prefixes=("s",)), None)
    assert str(streamed.value) == str(in_memory.value)
    assert str(streamed.value).endswith("annotations[0] (id 1): image_id 1 is not in 'images'")
