"""COCO-VID reading and writing: real fixtures, round trips, streaming, malformed input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdgen.tracks.cocovid import cocovid_dict, parse_cocovid, read_cocovid, write_cocovid
from tdgen.errors import AnnotationError

REAL = Path(__file__).parent.parent / "data" / "realdata" / "mmtracking"


def _by_id(items):
    return {d["id"]: d for d in items}


def _same_doc(src: dict, out: dict, *, instance_map=None) -> None:
    """Equal up to key order and list order of annotations; ``info``/``licenses`` may be added."""
    assert set(out) - set(src) <= {"info", "licenses"}
    for key in src:
        if key in ("images", "videos", "annotations"):
            a, b = _by_id(src[key]), _by_id(out[key])
            assert a.keys() == b.keys(), key
            for i in a:
                x, y = dict(a[i]), dict(b[i])
                if instance_map is not None and "instance_id" in x:
                    x["instance_id"] = instance_map[x["instance_id"]]
                assert x == y, (key, i, x, y)
        else:
            assert src[key] == out[key], key


@pytest.mark.parametrize("name", ["demo_mot_data_ann.json", "demo_vis_data_ann.json",
                                  "demo_cocovid_data_ann_vid.json"])
def test_real_openmmlab_fixtures_counts_and_round_trip(name):
    path = REAL / name
    src = json.loads(path.read_text())
    ts = read_cocovid(path)
    ts.check()
    assert ts.num_videos == len(src["videos"])
    assert ts.num_frames == len(src["images"])
    assert ts.num_boxes == len(src["annotations"])
    assert ts.num_tracks == len({a["instance_id"] for a in src["annotations"]})
    assert ts.style["flavor"] == "mmdet"
    out = cocovid_dict(ts)
    inst = sorted({a["instance_id"] for a in src["annotations"]})
    # mmdet treats instance_id 0 as missing, so a 0-based file is written back from 1.
    mapping = {i: k + 1 for k, i in enumerate(inst)} if min(inst) < 1 else None
    _same_doc(src, out, instance_map=mapping)
    # and the written file reads back to the same set, and writes the same bytes again
    ts2 = parse_cocovid(orjson.dumps(out))
    assert cocovid_dict(ts2) == out


def test_mot_fixture_fields():
    ts = read_cocovid(REAL / "demo_mot_data_ann.json")
    assert ts.has_mot_fields()
    assert ts.frames.number.tolist() == [1.0, 2.0, 3.0] or ts.frames.number is not None
    # the duplicated "category_id" key of the real file is read (the last value wins, as in json)
    assert set(ts.boxes.category.tolist()) == {1}
    assert ts.boxes.iscrowd.tolist().count(1) == 1
    assert any("extend past" in w for w in ts.warnings)


def make_doc(n_videos: int, frames: list[int], boxes_per_frame: list[list[int]], flavor: str, seed: int) -> dict:
    """A canonical COCO-VID dict (what tdgen writes) with random content."""
    rng = np.random.default_rng(seed)
    base = 0 if flavor == "mmdet" else 1
    videos, images, anns = [], [], []
    img_id = ann_id = 0
    track_base = 0
    for v in range(n_videos):
        w, h = int(rng.integers(64, 2000)), int(rng.integers(64, 2000))
        vd = {"id": v + 1, "width": w, "height": h}
        vd["name" if flavor == "mmdet" else "file_name"] = f"seq-{v:02d}"
        videos.append(vd)
        nf = frames[v]
        vid_imgs = []
        for f in range(nf):
            img_id += 1
            im = {"id": img_id, "video_id": v + 1, "file_name": f"seq-{v:02d}/img1/{f + 1:06d}.jpg",
                  "height": h, "width": w, "frame_id": f + base}
            if flavor == "mmdet":
                im["mot_frame_id"] = f + 1
            vid_imgs.append(im)
            for k in range(boxes_per_frame[v][f % len(boxes_per_frame[v])]):
                ann_id += 1
                bw, bh = float(rng.uniform(1, 300)), float(rng.uniform(1, 300))
                a = {"id": ann_id, "image_id": img_id, "category_id": int(rng.integers(1, 4)),
                     "bbox": [float(rng.uniform(-20, w)), float(rng.uniform(-20, h)), bw, bh], "area": bw * bh,
                     "iscrowd": int(rng.random() < 0.1), "video_id": v + 1,
                     "visibility": float(rng.choice([1.0, 0.25, 0.5])), "mot_conf": float(rng.integers(0, 2))}
                a["instance_id" if flavor == "mmdet" else "track_id"] = track_base + k + 1
                anns.append(a)
        if flavor == "bytetrack":
            for i, im in enumerate(vid_imgs):
                im["prev_image_id"] = vid_imgs[i - 1]["id"] if i else -1
                im["next_image_id"] = vid_imgs[i + 1]["id"] if i + 1 < len(vid_imgs) else -1
        images.extend(vid_imgs)
        track_base += 10
    doc = {"info": {"description": "t"}, "licenses": [],
           "categories": [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "car"}, {"id": 3, "name": "bicycle"}],
           "videos": videos, "images": images, "annotations": anns}
    return doc


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_videos=st.integers(1, 3),
    frames=st.lists(st.integers(1, 6), min_size=3, max_size=3),
    bpf=st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=4), min_size=3, max_size=3),
    flavor=st.sampled_from(["mmdet", "bytetrack"]),
    seed=st.integers(0, 10_000),
)
def test_round_trip_property(n_videos, frames, bpf, flavor, seed):
    doc = make_doc(n_videos, frames, bpf, flavor, seed)
    ts = parse_cocovid(orjson.dumps(doc))
    ts.check()
    assert ts.style["flavor"] == flavor
    out = cocovid_dict(ts, flavor)
    _same_doc(doc, out)
    assert parse_cocovid(orjson.dumps(out)).equals(ts)


def test_flavour_conversion_both_ways():
    doc = make_doc(2, [5, 4], [[1, 2], [3]], "mmdet", 1)
    ts = parse_cocovid(orjson.dumps(doc))
    bt = cocovid_dict(ts, "bytetrack")
    assert min(im["frame_id"] for im in bt["images"]) == 1
    assert all("track_id" in a and "instance_id" not in a for a in bt["annotations"])
    assert all("file_name" in v for v in bt["videos"])
    first = [im for im in bt["images"] if im["frame_id"] == 1]
    assert all(im["prev_image_id"] == -1 for im in first)
    back = parse_cocovid(orjson.dumps(bt))
    assert back.style["flavor"] == "bytetrack"
    np.testing.assert_array_equal(back.boxes.bbox, ts.boxes.bbox)
    np.testing.assert_array_equal(back.boxes.track, ts.boxes.track)
    np.testing.assert_array_equal(back.frames.index, ts.frames.index)


def test_streaming_path_equals_whole_file_parse():
    doc = make_doc(3, [40, 30, 25], [[3, 5, 0, 2], [1], [4, 4]], "mmdet", 7)
    # strings holding the separators the slicer cuts at, and nested arrays of objects
    doc["annotations"][5]["note"] = "}, {\"id\": 3}]"
    doc["annotations"][9]["parts"] = [{"a": 1}, {"b": [2]}]
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    whole = parse_cocovid(data, chunk_bytes=1 << 30)
    sliced = parse_cocovid(data, chunk_bytes=2000)
    assert len(data) > 4 * 2000
    assert sliced.equals(whole)
    assert cocovid_dict(sliced) == cocovid_dict(whole)


def test_unsorted_images_and_frame_gaps_are_normalised():
    doc = make_doc(1, [4], [[1]], "mmdet", 3)
    doc["images"].reverse()
    for im in doc["images"]:
        im["frame_id"] *= 5  # 0, 5, 10, 15: gaps
    ts = parse_cocovid(orjson.dumps(doc))
    assert ts.frames.index.tolist() == [0, 1, 2, 3]
    assert ts.frames.file_name.tolist() == sorted(ts.frames.file_name.tolist())
    assert any("gaps" in w for w in ts.warnings)
    out = cocovid_dict(ts)
    assert [im["frame_id"] for im in out["images"]] == [0, 1, 2, 3]


def test_image_only_coco_becomes_one_frame_videos():
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
                      {"id": 2, "file_name": "b.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "person"}]}
    ts = parse_cocovid(orjson.dumps(doc))
    assert ts.num_videos == 2 and ts.num_frames == 2 and ts.num_boxes == 1


def test_missing_annotations_key_means_no_boxes():
    doc = make_doc(1, [3], [[1]], "mmdet", 3)
    del doc["annotations"]
    ts = parse_cocovid(orjson.dumps(doc))
    assert ts.num_boxes == 0 and ts.num_frames == 3


def test_write_is_atomic_and_complete(tmp_path):
    doc = make_doc(2, [3, 3], [[1], [2]], "mmdet", 3)
    ts = parse_cocovid(orjson.dumps(doc))
    path = write_cocovid(ts, tmp_path / "out.json")
    assert json.loads(path.read_text())["info"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_pycocotools_loads_written_file(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    ts = read_cocovid(REAL / "demo_cocovid_data_ann_vid.json")
    path = write_cocovid(ts, tmp_path / "out.json")
    coco = COCO(str(path))
    assert len(coco.getAnnIds()) == ts.num_boxes
    assert len(coco.getImgIds()) == ts.num_frames


# ----------------------------------------------------------------------------- malformed input
def _base():
    return make_doc(2, [3, 2], [[1, 2], [2]], "mmdet", 11)


def _set(path, value):
    def f(doc):
        obj = doc
        for p in path[:-1]:
            obj = obj[p]
        obj[path[-1]] = value
    return f


def _del(path):
    def f(doc):
        obj = doc
        for p in path[:-1]:
            obj = obj[p]
        del obj[path[-1]]
    return f


MALFORMED = [
    ("missing image id", _del(["images", 1, "id"]), "images[1]: missing 'id'"),
    ("missing bbox", _del(["annotations", 2, "bbox"]), "annotations[2] (id 3): missing 'bbox'"),
    ("bbox of 3", _set(["annotations", 0, "bbox"], [1, 2, 3]), "annotations[0] (id 1): 'bbox' must be 4 numbers"),
    ("negative width", _set(["annotations", 1, "bbox"], [1, 2, -3, 4]), "annotations[1] (id 2): bbox"),
    ("zero height", _set(["annotations", 1, "bbox"], [1, 2, 3, 0]), "non-positive or NaN size"),
    ("string id", _set(["annotations", 1, "id"], "x"), "annotations[1] (id x): 'id' must be an integer"),
    ("duplicate ann id", _set(["annotations", 1, "id"], 1), "annotations[1]: duplicate id 1 (also annotations[0])"),
    ("duplicate image id", _set(["images", 2, "id"], 1), "images[2]: duplicate id 1"),
    ("duplicate video id", _set(["videos", 1, "id"], 1), "videos[1]: duplicate id 1"),
    ("dangling image", _set(["annotations", 0, "image_id"], 999), "image_id 999 is not in 'images'"),
    ("dangling category", _set(["annotations", 0, "category_id"], 77), "category_id 77 is not in 'categories'"),
    ("dangling video", _set(["images", 0, "video_id"], 55), "images[0] (id 1): video_id 55 is not in 'videos'"),
    ("negative frame id", _set(["images", 0, "frame_id"], -1), "images[0] (id 1): frame_id -1 is negative"),
    ("duplicate frame id", _set(["images", 1, "frame_id"], 0), "already has a frame_id 0"),
    ("missing frame id", _del(["images", 1, "frame_id"]), "images[1] (id 2): missing 'frame_id'"),
    ("no categories", _del(["categories"]), "missing 'categories'"),
    ("not a number", _set(["annotations", 0, "visibility"], "high"), "'visibility' must be a number"),
    ("zero image width", _set(["images", 0, "width"], 0), "'width' must be positive"),
]


@pytest.mark.parametrize("name,mutate,expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_is_located(name, mutate, expected, tmp_path):
    doc = _base()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(AnnotationError) as e:
        read_cocovid(path)
    msg = str(e.value)
    assert msg.startswith(str(path) + ": ")
    assert expected in msg
    assert "\n" not in msg


def test_invalid_json_is_located(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "images": [\n    {"id": 1,,}\n  ]\n}')
    with pytest.raises(AnnotationError) as e:
        read_cocovid(path)
    assert f"{path}: line 3, column" in str(e.value)


def test_drop_invalid_boxes(tmp_path):
    doc = _base()
    doc["annotations"][0]["bbox"] = [1, 1, 0, 5]
    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps(doc))
    ts = read_cocovid(path, invalid_boxes="drop")
    assert ts.num_boxes == len(doc["annotations"]) - 1
    assert any("dropped 1" in w for w in ts.warnings)


# --------------------------------------------------------------------------- the pyarrow fast path
def _fast_vs_exact(data: bytes):
    from tdgen.tracks import arrowjson

    taken = []
    real = arrowjson.fast_columns

    def spy(d):
        r = real(d)
        taken.append(r is not None)
        return r

    arrowjson.fast_columns = spy
    try:
        fast = parse_cocovid(data, "f.json", fast_path_bytes=0)
    finally:
        arrowjson.fast_columns = real
    exact = parse_cocovid(data, "f.json", fast_path_bytes=1 << 62)
    return fast, exact, taken


@pytest.mark.parametrize("name", ["demo_mot_data_ann.json", "demo_cocovid_data_ann_vid.json"])
def test_fast_path_equals_exact_path_on_real_files(name):
    data = (REAL / name).read_bytes()
    compact = orjson.dumps(orjson.loads(data))  # the fast path takes compact files
    fast, exact, taken = _fast_vs_exact(compact)
    assert taken == [True]
    assert fast.equals(exact) and fast.style == exact.style and fast.warnings == exact.warnings


def test_fast_path_extras_vary_per_record_and_match_the_exact_path():
    doc = orjson.loads((REAL / "demo_mot_data_ann.json").read_bytes())
    for i, a in enumerate(doc["annotations"]):
        a["ignore"] = i % 3 == 0
        a["note"] = f"n{i % 5}"
        a["attrs"] = {"occluded": i % 2, "tags": ["a", "b"][: i % 3]}
    for i, im in enumerate(doc["images"]):
        im["weather"] = "rain" if i % 2 else "sun"
    fast, exact, taken = _fast_vs_exact(orjson.dumps(doc))
    assert taken == [True]
    assert fast.equals(exact)
    extra = fast.boxes.extra
    by_id = {a["id"]: a for a in doc["annotations"]}
    for row, ann_id in enumerate(fast.boxes.id.tolist()):
        a = by_id[ann_id]
        assert extra[row] == {"ignore": a["ignore"], "note": a["note"], "attrs": a["attrs"]}
    out = cocovid_dict(fast)
    assert {a["id"]: a["attrs"] for a in out["annotations"]} == {a["id"]: a["attrs"] for a in doc["annotations"]}


def test_fast_path_in_many_blocks_with_nulls_and_unusual_order(monkeypatch):
    """Columns read straight from Arrow buffers: several chunks, validity bitmaps, booleans,
    annotations out of frame order, image ids with holes, a track id shared by two videos."""
    from tdgen.tracks import arrowjson

    monkeypatch.setattr(arrowjson, "BLOCK_BYTES", 512)  # many record batches
    doc = orjson.loads((REAL / "demo_mot_data_ann.json").read_bytes())
    for im in doc["images"]:
        im["id"] = im["id"] * 3 + 7
    for i, a in enumerate(doc["annotations"]):
        a["image_id"] = a["image_id"] * 3 + 7
        a["visibility"] = None if i % 4 == 0 else 0.25 * (i % 5)
        a["iscrowd"] = i % 7 == 0
    doc["annotations"].reverse()
    fast, exact, taken = _fast_vs_exact(orjson.dumps(doc))
    assert taken == [True]
    assert fast.equals(exact) and fast.warnings == exact.warnings
    vis = fast.boxes.visibility
    assert np.isnan(vis).sum() == sum(a["visibility"] is None for a in doc["annotations"])
    assert fast.boxes.iscrowd.sum() == sum(a["iscrowd"] for a in doc["annotations"])
    # a second video that reuses the first one's instance ids: tracks are renumbered per
    # (video, id) on both paths
    v2 = max(v["id"] for v in doc["videos"]) + 1
    doc["videos"].append(dict(doc["videos"][0], id=v2, name="copy"))
    shift = max(im["id"] for im in doc["images"]) + 1
    doc["images"] += [dict(im, id=im["id"] + shift, video_id=v2) for im in list(doc["images"])]
    top = max(a["id"] for a in doc["annotations"])
    doc["annotations"] += [dict(a, id=a["id"] + top, image_id=a["image_id"] + shift)
                           for a in list(doc["annotations"])]
    fast, exact, taken = _fast_vs_exact(orjson.dumps(doc))
    assert taken == [True] and fast.equals(exact)
    assert any("renumbered" in w for w in fast.warnings)


def test_fast_path_gives_up_on_what_it_cannot_do_exactly():
    doc = orjson.loads((REAL / "demo_mot_data_ann.json").read_bytes())
    doc["annotations"][1]["bbox"] = None  # a null: the exact path reports it
    with pytest.raises(AnnotationError, match=r"annotations\[1\]"):
        parse_cocovid(orjson.dumps(doc), "f.json", fast_path_bytes=0)
    doc["annotations"][1]["bbox"] = [1, 2, 3, 4]
    doc["annotations"][2]["iscrowd"] = "no"  # a type the fast path does not take: the exact path reports it
    with pytest.raises(AnnotationError, match=r"annotations\[2\].*'iscrowd' must be a number"):
        parse_cocovid(orjson.dumps(doc), "f.json", fast_path_bytes=0)
    pretty = json.dumps(orjson.loads((REAL / "demo_mot_data_ann.json").read_bytes()), indent=1).encode()
    fast, exact, taken = _fast_vs_exact(pretty)
    assert taken == [False] and fast.equals(exact)


def test_read_cocovid_fast_path_and_its_fallback_read_the_file_again(tmp_path, monkeypatch):
    import tdgen.tracks.cocovid_read as cv

    monkeypatch.setattr(cv, "FAST_PATH_BYTES", 0)
    doc = orjson.loads((REAL / "demo_cocovid_data_ann_vid.json").read_bytes())
    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps(doc))
    fast = read_cocovid(path)
    assert fast.equals(parse_cocovid(path.read_bytes(), str(path), fast_path_bytes=1 << 62))
    # a file name holding the record separator: the in-place rewrite breaks that record, the fast
    # path gives up, and the exact path reads the untouched file
    doc["images"][0]["file_name"] = 'odd},{name.jpg'
    path.write_bytes(orjson.dumps(doc))
    ts = read_cocovid(path)
    assert 'odd},{name.jpg' in ts.frames.file_name.tolist()
    doc["annotations"][0]["bbox"] = [1, 2, -3, 4]
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(AnnotationError, match=r"annotations\[0\] \(id 1\): bbox"):
        read_cocovid(path)


@pytest.mark.parametrize("scale", [1, 10**12])  # compact ids (per-id min/max) and sparse ones (sorting)
def test_shared_between_videos_both_strategies(scale):
    from tdgen.tracks.cocovid_checks import shared_between_videos

    track = np.array([3, 1, 3, 2, 1]) * scale
    assert not shared_between_videos(track, np.array([0, 1, 0, 1, 1]))
    assert shared_between_videos(track, np.array([0, 1, 2, 1, 1]))
    assert not shared_between_videos(track[:0], track[:0])
    # runs of one video whose id ranges do not meet: answered without the exact check
    assert not shared_between_videos(np.array([1, 2, 5, 6, 3]) * scale, np.array([0, 0, 1, 1, 0]))
    assert shared_between_videos(np.array([1, 2, 5, 6, 2]) * scale, np.array([0, 0, 1, 1, 2]))


def test_fast_path_without_annotations_does_not_look_for_pandas(tmp_path):
    """pyarrow imports pandas (when installed: 0.3 s) to convert Python lists; the fast path never asks it to."""
    doc = make_doc(2, [3, 2], [[1], [1]], "mmdet", 0)
    del doc["annotations"]
    path = tmp_path / "no_annotations.json"
    path.write_bytes(orjson.dumps(doc))
    code = f"""
import sys
looked = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            looked.append(name)
        return None
sys.meta_path.insert(0, Spy())
import tdgen.tracks.cocovid_read as cv
from tdgen.tracks import arrowjson
taken = []
real = arrowjson.fast_columns
def spy(holder):
    got = real(holder)
    taken.append(got is not None)
    return got
arrowjson.fast_columns = spy
cv.FAST_PATH_BYTES = 0
ts = cv.read_cocovid({str(path)!r})
assert taken == [True] and ts.num_frames == 5 and ts.num_boxes == 0, (taken, ts.num_frames)
print(looked)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
