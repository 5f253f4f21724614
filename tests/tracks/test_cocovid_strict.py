"""COCO-VID input is checked, not coerced, and both readers apply the same rules.

The pyarrow fast path (big files) and the orjson exact path must accept the same files, read
them to the same values, and refuse the rest with the same one-line error. Every case here runs
through both (``fast_path_bytes=0`` forces the fast path to be tried, ``1 << 62`` skips it).
"""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tdgen.tracks import arrowjson
from tdgen.tracks import io as tio
from tdgen.tracks.cocovid import cocovid_dict, parse_cocovid, read_cocovid
from tdgen.errors import AnnotationError
from tdgen.tracks.jsonscan import first_invalid_utf8

# an integer past float64's exact range, or an overflowed cast, must never print a numpy warning
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

DATA = Path(__file__).parent.parent / "data"
REAL = DATA / "realdata" / "mmtracking"
FAST, EXACT = 0, 1 << 62

# Values JSON can hold but orjson cannot write: placeholders swapped for raw text after dumping.
RAW = {"@NaN": b"NaN", "@Inf": b"Infinity", "@-Inf": b"-Infinity", "@2**70": b"1180591620717411303425",
       "@2**63": b"9223372036854775808", "@1e400": b"1e400"}
MISSING = "@missing"


def dumps(doc: dict, indent: bool = False) -> bytes:
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if indent else 0)
    for mark, raw in RAW.items():
        data = data.replace(b'"' + mark.encode() + b'"', raw)
    return data


def make_doc(n_videos: int = 2, frames: tuple = (3, 2), boxes: tuple = (2, 1), flavor: str = "mmdet",
             seed: int = 0) -> dict:
    """A small valid COCO-VID document."""
    rng = np.random.default_rng(seed)
    base = 0 if flavor == "mmdet" else 1
    tkey = "instance_id" if flavor == "mmdet" else "track_id"
    videos, images, anns = [], [], []
    for v in range(n_videos):
        videos.append({"id": v + 1, ("name" if flavor == "mmdet" else "file_name"): f"v{v}", "width": 640,
                       "height": 480, "fps": 30})
        for f in range(frames[v % len(frames)]):
            img = {"id": len(images) + 1, "video_id": v + 1, "file_name": f"v{v}/{f:06d}.jpg", "width": 640,
                   "height": 480, "frame_id": f + base}
            if flavor == "mmdet":
                img["mot_frame_id"] = f + 1
            else:
                img["prev_image_id"], img["next_image_id"] = -1, -1
            images.append(img)
            for k in range(boxes[v % len(boxes)]):
                w, h = float(rng.uniform(1, 50)), float(rng.uniform(1, 50))
                anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": int(rng.integers(1, 3)),
                             "bbox": [float(rng.uniform(0, 500)), float(rng.uniform(0, 400)), w, h],
                             "area": w * h, "iscrowd": 0, tkey: 10 * v + k + 1, "visibility": 0.5,
                             "mot_conf": 1.0, "video_id": v + 1})
    return {"info": {"description": "t"}, "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}],
            "videos": videos, "images": images, "annotations": anns}


def outcome(data: bytes, fast_path_bytes: int, **kw):
    try:
        return "ok", parse_cocovid(data, "f.json", fast_path_bytes=fast_path_bytes, **kw)
    except AnnotationError as e:
        return "error", str(e)


def fast_taken(data: bytes, monkeypatch) -> bool:
    """Whether the fast path read ``data`` itself (rather than handing it to the exact path)."""
    taken = []
    real = arrowjson.fast_columns

    def spy(holder):
        r = real(holder)
        taken.append(r is not None)
        return r

    monkeypatch.setattr(arrowjson, "fast_columns", spy)
    try:
        outcome(data, FAST)
    finally:
        monkeypatch.setattr(arrowjson, "fast_columns", real)
    return taken == [True]


def assert_same(data: bytes, **kw):
    """Both paths give the same TrackSet or the same one-line error; returns the outcome."""
    a, b = outcome(data, FAST, **kw), outcome(data, EXACT, **kw)
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1] == b[1]
        assert "\n" not in a[1] and len(a[1]) < 300
    else:
        x, y = a[1], b[1]
        assert x.equals(y) and x.style == y.style and x.warnings == y.warnings
        assert cocovid_dict(x) == cocovid_dict(y)
    return b


def mutate(doc: dict, array: str, index: int, key: str, value) -> dict:
    rec = doc[array][index % len(doc[array])]
    if value == MISSING:
        rec.pop(key, None)
    else:
        rec[key] = value
    return doc


FIELDS = {
    "images": ["id", "video_id", "file_name", "width", "height", "frame_id", "mot_frame_id", "prev_image_id",
               "next_image_id", "weather"],
    "annotations": ["id", "image_id", "category_id", "bbox", "area", "iscrowd", "instance_id", "track_id",
                    "visibility", "mot_conf", "mot_instance_id", "video_id", "score"],
    "videos": ["id", "name", "file_name", "width", "height", "fps"],
    "categories": ["id", "name"],
}
VALUES = ["2", "a1b2", "", True, False, None, 0.5, 2.0, -0.0, -1, 0, 1, 3, 2**53 - 1, 2**53, 2**53 + 1,
          -(2**53) - 1, 2**62, 1e20, [], {}, [1, 2, 3], [1, 2, 3, 4], [1, "2", 3, 4], [1, True, 3, 4],
          [1, None, 3, 4], {"a": 1}, *RAW, MISSING]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flavor=st.sampled_from(["mmdet", "bytetrack"]),
    n_videos=st.integers(1, 3),
    frames=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    boxes=st.tuples(st.integers(0, 3), st.integers(1, 3)),
    seed=st.integers(0, 1000),
    mutations=st.lists(st.tuples(st.sampled_from(sorted(FIELDS)), st.integers(0, 20), st.integers(0, 20),
                                 st.sampled_from(VALUES)), max_size=2),
)
def test_both_paths_agree_on_random_and_malformed_documents(flavor, n_videos, frames, boxes, seed, mutations):
    doc = make_doc(n_videos, frames, boxes, flavor, seed)
    for array, i, k, value in mutations:
        if doc[array]:
            fields = FIELDS[array]
            mutate(doc, array, i, fields[k % len(fields)], value)
    assert_same(dumps(doc))


@pytest.mark.parametrize("flavor", ["mmdet", "bytetrack"])
def test_every_single_field_mutation_agrees(flavor):
    """The exhaustive version of the property: each field of one record, each odd value."""
    refused = accepted = 0
    for array, fields in FIELDS.items():
        for key in fields:
            for value in VALUES:
                kind, _ = assert_same(dumps(mutate(make_doc(flavor=flavor), array, 1, key, value)))
                refused += kind == "error"
                accepted += kind == "ok"
    assert refused > 250 and accepted > 150  # both kinds of outcome are really exercised


def test_valid_documents_do_take_the_fast_path(monkeypatch):
    """Otherwise the comparisons above would compare the exact path with itself."""
    for flavor in ("mmdet", "bytetrack"):
        assert fast_taken(dumps(make_doc(3, (4, 2), (3, 1), flavor)), monkeypatch)
    doc = make_doc()
    doc["annotations"][0]["score"] = 0.25  # extra floats without integral values: still fast
    for a in doc["annotations"][1:]:
        a["score"] = 0.75
    assert fast_taken(dumps(doc), monkeypatch)


@pytest.mark.parametrize("path", sorted(DATA.rglob("*.json")), ids=lambda p: p.name)
def test_existing_test_data_reads_the_same_on_both_paths(path):
    data = path.read_bytes()
    assert_same(data)
    assert_same(orjson.dumps(orjson.loads(data)))  # compact, which the fast path takes


# --------------------------------------------------------------------------- the rules, case by case
def _anns(i, key, value):
    return lambda d: mutate(d, "annotations", i, key, value)


def _imgs(i, key, value):
    return lambda d: mutate(d, "images", i, key, value)


def _vids(i, key, value):
    return lambda d: mutate(d, "videos", i, key, value)


def _top(key, value):
    def f(d):
        d[key] = value
        return d
    return f


REFUSED = [
    ("string image_id", _anns(1, "image_id", "2"), "annotations[1] (id 2): 'image_id' must be an integer, got \"2\""),
    ("string image id", _imgs(1, "id", "2"), "images[1] (id 2): 'id' must be an integer, got \"2\""),
    ("bool category_id", _anns(0, "category_id", True),
     "annotations[0] (id 1): 'category_id' must be an integer, got true"),
    ("fractional frame_id", _imgs(1, "frame_id", 0.5), "images[1] (id 2): 'frame_id' must be an integer, got 0.5"),
    ("string video_id", _imgs(0, "video_id", "1"), "images[0] (id 1): 'video_id' must be an integer, got \"1\""),
    ("id 2**53 + 1", _anns(0, "id", 2**53 + 1),
     "annotations[0] (id 9007199254740993): 'id' 9007199254740993 is out of range"),
    ("id 2**63", _anns(0, "id", "@2**63"), "'id' 9223372036854775808 is out of range"),
    ("id 2**70", _imgs(0, "id", "@2**70"),
     "images[0] (id 1.1805916207174113e+21): 'id' 1.1805916207174113e+21 is out of range"),
    ("image_id -(2**53 + 1)", _anns(0, "image_id", -(2**53) - 1), "'image_id' -9007199254740993 is out of range"),
    ("float id past 2**53", _anns(0, "id", 1e20), "'id' 1e+20 is out of range"),
    ("bool instance_id", _anns(0, "instance_id", False), "'instance_id' must be an integer or a string, got false"),
    ("fractional instance_id", _anns(0, "instance_id", 1.5), "'instance_id' must be an integer, got 1.5"),
    ("string iscrowd", _anns(1, "iscrowd", "no"),
     "annotations[1] (id 2): 'iscrowd' must be a number (0 or 1) or a boolean, got \"no\""),
    ("iscrowd 2", _anns(1, "iscrowd", 2), "'iscrowd' must be 0 or 1, got 2"),
    ("string image width", _imgs(0, "width", "640"), "images[0] (id 1): 'width' must be an integer, got \"640\""),
    ("fractional image height", _imgs(0, "height", 479.5), "'height' must be an integer, got 479.5"),
    ("bool visibility", _anns(0, "visibility", True), "'visibility' must be a number, got true"),
    ("string area", _anns(0, "area", "10"), "'area' must be a number, got \"10\""),
    ("string mot_conf", _anns(0, "mot_conf", "1"), "'mot_conf' must be a number, got \"1\""),
    ("fractional mot_frame_id", _imgs(0, "mot_frame_id", 1.5), "'mot_frame_id' must be an integer, got 1.5"),
    ("string prev_image_id", _imgs(0, "prev_image_id", "x"), "'prev_image_id' must be an integer, got \"x\""),
    ("null bbox", _anns(1, "bbox", None), "annotations[1] (id 2): 'bbox' must be 4 numbers, got null"),
    ("bbox of strings", _anns(1, "bbox", ["1", "2", "3", "4"]),
     "'bbox' must be 4 numbers, got [\"1\",\"2\",\"3\",\"4\"]"),
    ("bbox with a bool", _anns(1, "bbox", [1, True, 3, 4]), "'bbox' must be 4 numbers, got [1,true,3,4]"),
    ("bbox with a null", _anns(1, "bbox", [1, None, 3, 4]), "'bbox' must be 4 numbers, got [1,null,3,4]"),
    ("null file_name", _imgs(0, "file_name", None), "images[0] (id 1): 'file_name' must be a string, got null"),
    ("Infinity area", _anns(0, "area", "@Inf"), "invalid JSON"),
    ("NaN bbox value", _anns(0, "bbox", [1, 2, "@NaN", 4]), "invalid JSON"),
    ("-Infinity visibility", _anns(0, "visibility", "@-Inf"), "invalid JSON"),
    ("1e400 area", _anns(0, "area", "@1e400"), "number is infinity"),
    ("huge area width", _imgs(0, "width", "@2**70"), "'width' 1.1805916207174113e+21 is out of range"),
    ("record not an object", lambda d: d["annotations"].__setitem__(1, 5) or d,
     "annotations[1]: is not an object (got a number)"),
    ("null record", lambda d: d["images"].__setitem__(0, None) or d, "images[0]: is not an object (got null)"),
    ("images not an array", _top("images", {"a": 1}), "f.json: images: must be an array of objects, got an object"),
    ("annotations null", _top("annotations", None), "f.json: annotations: must be an array of objects, got null"),
    ("categories an object", _top("categories", {}), "categories: must be an array of objects, got an object"),
    ("string category id", lambda d: d["categories"][0].__setitem__("id", "1") or d,
     "categories[0]: 'id' must be an integer, got \"1\""),
    ("numeric category name", lambda d: d["categories"][1].__setitem__("name", 2) or d,
     "categories[1]: 'name' must be a string, got 2"),
    ("string video id", _vids(0, "id", "1"), "videos[0] (id 1): 'id' must be an integer, got \"1\""),
    ("string video width", _vids(0, "width", "640"), "videos[0] (id 1): 'width' must be an integer, got \"640\""),
    ("negative video height", _vids(1, "height", -5), "videos[1] (id 2): 'height' must not be negative, got -5"),
    ("string fps", _vids(0, "fps", "30"), "videos[0] (id 1): 'fps' must be a number, got \"30\""),
    ("bool fps", _vids(0, "fps", True), "'fps' must be a number, got true"),
    ("zero fps", _vids(0, "fps", 0), "'fps' must be positive, got 0"),
    ("numeric video name", _vids(0, "name", 7), "videos[0] (id 1): 'name' must be a string, got 7"),
    ("multi-line string id", _anns(0, "id", "a\nb"),
     "annotations[0] (id \"a\\nb\"): 'id' must be an integer, got \"a\\nb\""),
]


@pytest.mark.parametrize("name,mutation,expected", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_the_same_one_line_error_on_both_paths(name, mutation, expected):
    kind, msg = assert_same(dumps(mutation(make_doc())))
    assert kind == "error"
    assert msg.startswith("f.json: ") and expected in msg, msg


ACCEPTED = [
    ("integral float ids", lambda d: [a.__setitem__("id", float(a["id"])) for a in d["annotations"]] and d),
    ("integral float frame_id and sizes", lambda d: [im.update(frame_id=float(im["frame_id"]), width=640.0)
                                                     for im in d["images"]] and d),
    ("-0.0 frame id", _imgs(0, "frame_id", -0.0)),
    ("largest exact id", _anns(0, "id", 2**53 - 1)),
    ("boolean iscrowd", lambda d: [a.__setitem__("iscrowd", i % 2 == 0) for i, a in enumerate(d["annotations"])] and d),
    ("null optional fields", lambda d: [a.update(area=None, visibility=None, iscrowd=None)
                                        for a in d["annotations"]] and d),
    ("null video size and fps", _vids(0, "fps", None)),
    ("video width 0 (unknown)", lambda d: d["videos"][0].update(width=0, height=0) or d),
    ("date-like extra string", lambda d: [a.__setitem__("when", "2020-01-01") for a in d["annotations"]] and d),
    ("extra int then float", lambda d: [a.__setitem__("score", 1 if i == 0 else 0.5)
                                        for i, a in enumerate(d["annotations"])] and d),
    ("extra objects with different keys", lambda d: [a.__setitem__("attrs", {"k%d" % (i % 2): i})
                                                     for i, a in enumerate(d["annotations"])] and d),
]


@pytest.mark.parametrize("name,mutation", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_and_read_the_same_on_both_paths(name, mutation):
    doc = mutation(make_doc())
    kind, ts = assert_same(dumps(doc))
    assert kind == "ok", ts
    ts.check()
    if name == "date-like extra string":  # pyarrow would read a timestamp: the value stays the string
        assert {e["when"] for e in ts.boxes.extra} == {"2020-01-01"}
    if name == "extra int then float":  # the int stays an int (pyarrow would make it 1.0)
        assert any(type(e["score"]) is int for e in ts.boxes.extra)
    if name == "extra objects with different keys":  # no key a record lacks is filled with null
        assert all(len(e["attrs"]) == 1 for e in ts.boxes.extra)


LATE = [("late string image_id", lambda d: mutate(d, "annotations", -2, "image_id", "2")),
        ("late NaN area", lambda d: mutate(d, "annotations", -2, "area", "@NaN")),
        ("late fractional frame_id", lambda d: mutate(d, "images", -2, "frame_id", 7.5)),
        ("late huge mot_instance_id", lambda d: mutate(d, "annotations", -2, "mot_instance_id", 2**60)),
        ("late iscrowd 3", lambda d: mutate(d, "annotations", -2, "iscrowd", 3)),
        ("late extra integral float", lambda d: [a.__setitem__("s", 0.5) for a in d["annotations"]]
         and mutate(d, "annotations", -2, "s", 2.0)),
        ("late extra object lacking a key", lambda d: [a.__setitem__("o", {"a": 1, "b": 2}) for a in d["annotations"]]
         and mutate(d, "annotations", -2, "o", {"a": 1}))]


@pytest.mark.parametrize("name,mutation", LATE + ACCEPTED, ids=[c[0] for c in LATE + ACCEPTED])
def test_many_arrow_blocks(name, mutation, monkeypatch):
    """pyarrow splits the records in blocks (chunked columns, offsets): every check sees them all."""
    monkeypatch.setattr(arrowjson, "BLOCK_BYTES", 700)
    doc = make_doc(3, (20, 20), (3, 2))
    assert fast_taken(dumps(doc), monkeypatch)
    assert_same(dumps(mutation(doc)))


def test_largest_ids_round_trip_exactly():
    doc = make_doc()
    doc["annotations"][0]["id"] = 2**53 - 1
    doc["images"][-1]["id"] = 2**53 - 2
    for a in doc["annotations"]:
        if a["image_id"] == len(doc["images"]):
            a["image_id"] = 2**53 - 2
    ts = parse_cocovid(dumps(doc))
    assert (2**53 - 1) in ts.boxes.id.tolist() and (2**53 - 2) in ts.frames.id.tolist()
    out = cocovid_dict(ts)
    assert 2**53 - 1 in {a["id"] for a in out["annotations"]}


RAW_TEXT = [
    ("two records without a comma", lambda b: b.replace(b'},{"id":2,"image_id"', b'}{"id":2,"image_id"', 1)),
    ("two records, space, no comma", lambda b: b.replace(b'},{"id":2,"image_id"', b'} {"id":2,"image_id"', 1)),
    ("trailing comma", lambda b: b.replace(b'}],"annotations"', b'},],"annotations"', 1)),
    ("a raw tab in a string", lambda b: b.replace(b'v0/000000.jpg', b'v0/\t.jpg', 1)),
    ("a lone surrogate escape", lambda b: b.replace(b'v0/000000.jpg', b'v0/\\ud800.jpg', 1)),
]


@pytest.mark.parametrize("name,edit", RAW_TEXT, ids=[c[0] for c in RAW_TEXT])
def test_json_that_pyarrow_would_take_but_orjson_refuses(name, edit):
    data = edit(dumps(make_doc()))
    assert data != dumps(make_doc())
    kind, msg = assert_same(data)
    assert kind == "error" and "invalid JSON" in msg, msg


def test_repeated_keys_read_as_orjson_reads_them():
    data = dumps(make_doc()).replace(b'"category_id":', b'"category_id":1,"category_id":', 1)
    kind, ts = assert_same(data)  # the last value wins, on both paths
    assert kind == "ok"
    two = dumps(make_doc()).replace(b'"images":', b'"images":[],"images":', 1)  # a repeated top-level array
    kind, ts = assert_same(two)
    assert kind == "ok" and ts.num_frames == len(make_doc()["images"])


def test_string_instance_ids_are_mapped_over_the_whole_file():
    doc = make_doc(2, (30, 30), (3, 3))
    for a in doc["annotations"]:
        a["instance_id"] = f"t{a['instance_id']}"  # BDD100K / QDTrack style
    doc["annotations"][0]["instance_id"] = 7  # mixed with a number: kept, strings go after it
    data = dumps(doc, indent=True)
    whole = parse_cocovid(data, chunk_bytes=1 << 30)
    sliced = parse_cocovid(data, chunk_bytes=512)  # a track's boxes fall in many slices
    assert len(data) > 4 * 512
    assert sliced.equals(whole)
    assert "string instance ids were mapped to integers" in whole.warnings
    by_str = {}
    for a, t in zip(sorted(doc["annotations"], key=lambda a: a["id"]), whole.boxes.track[np.argsort(whole.boxes.id)]):
        by_str.setdefault(str(a["instance_id"]), set()).add(int(t))
    assert all(len(v) == 1 for v in by_str.values())  # one track per string
    assert len({next(iter(v)) for v in by_str.values()}) == len(by_str)  # distinct strings, distinct tracks
    assert_same(dumps(doc))


def test_the_first_bad_record_is_named_wherever_the_slices_are_cut():
    doc = make_doc(2, (40, 40), (2, 2))
    doc["annotations"][60]["area"] = "x"
    doc["annotations"][5]["bbox"] = None
    doc["images"][70]["frame_id"] = 0.5
    # annotations before images in the file: images are still reported first
    ordered = {"categories": doc["categories"], "videos": doc["videos"], "annotations": doc["annotations"],
               "images": doc["images"]}
    data = dumps(ordered, indent=True)
    errors = {outcome(data, EXACT, chunk_bytes=c)[1] for c in (300, 2000, 1 << 30)}
    assert errors == {"f.json: images[70] (id 71): 'frame_id' must be an integer, got 0.5"}
    ordered["images"][70]["frame_id"] = 30
    data = dumps(ordered, indent=True)
    errors = {outcome(data, EXACT, chunk_bytes=c)[1] for c in (300, 2000, 1 << 30)}
    assert errors == {"f.json: annotations[5] (id 6): 'bbox' must be 4 numbers, got null"}


def test_no_numpy_warning_is_printed_for_huge_ids(capfd):
    doc = make_doc()
    doc["annotations"][0]["id"] = "@2**70"
    for path in (FAST, EXACT):
        assert outcome(dumps(doc), path)[0] == "error"
    doc["annotations"][0]["id"] = 2**62
    assert outcome(dumps(doc), FAST)[0] == "error"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# --------------------------------------------------------------------------- encodings
def test_non_utf8_bytes_are_named_by_offset_on_both_paths(tmp_path, monkeypatch):
    data = dumps(make_doc()).replace(b"v0/000001.jpg", "v0/caf\u00e9.jpg".encode("latin-1"), 1)
    at = data.index(b"\xe9")
    kind, msg = assert_same(data)
    assert msg == f"f.json: byte {at}: not valid UTF-8 (hint: save the file as UTF-8)"
    import tdgen.tracks.cocovid_read as cv

    path = tmp_path / "latin1.json"
    path.write_bytes(data)
    for threshold in (0, 1 << 62):  # read_cocovid's own fast path, and its exact one
        monkeypatch.setattr(cv, "FAST_PATH_BYTES", threshold)
        with pytest.raises(AnnotationError) as e:
            read_cocovid(path)
        assert str(e.value) == f"{path}: byte {at}: not valid UTF-8 (hint: save the file as UTF-8)"


def test_utf16_gets_a_hint_and_a_bom_is_accepted():
    doc = make_doc()
    kind, msg = assert_same(json.dumps(doc).encode("utf-16"))
    assert msg == "f.json: byte 0: not valid UTF-8 (hint: the file looks UTF-16: save it as UTF-8)"
    plain = outcome(dumps(doc), EXACT)[1]
    kind, ts = assert_same(b"\xef\xbb\xbf" + dumps(doc))
    assert kind == "ok" and ts.equals(plain)


def test_utf8_check_finds_the_first_bad_byte_across_chunk_boundaries():
    text = ("a\u00e9\u4e2d\U0001f600" * 50).encode()
    for chunk in (8, 9, 10, 11, 64):  # multi-byte characters cut by every chunk boundary
        assert first_invalid_utf8(text, chunk=chunk) is None
        assert first_invalid_utf8(text + b"\xff" + text, chunk=chunk) == len(text)
        assert first_invalid_utf8(text[:-1], chunk=chunk) == len(text) - 4  # a cut-off last character
    assert first_invalid_utf8(b"plain ascii" * 10) is None
    assert first_invalid_utf8(b"\xed\xa0\x80") == 0  # an encoded surrogate


# --------------------------------------------------------------------------- special files
@pytest.fixture
def alarm():
    """Fail instead of hanging should a reader ever open a FIFO."""
    def boom(*_):
        raise TimeoutError("the reader blocked")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        p = tmp_path / "pipe.json"
        os.mkfifo(p)
    elif kind == "chardev":
        p = Path("/dev/zero")
    elif kind == "directory":
        p = tmp_path / "dir.json"
        p.mkdir()
    elif kind == "broken link":
        p = tmp_path / "link.json"
        p.symlink_to(tmp_path / "gone.json")
    else:
        p = tmp_path / "nope.json"
    return p


SPECIAL = [("fifo", "is a named pipe (FIFO), not a COCO-VID JSON file"),
           ("chardev", "is a character device, not a COCO-VID JSON file"),
           ("directory", "is a directory, not a COCO-VID JSON file"),
           ("broken link", "is a broken symbolic link (to "),
           ("missing", "no such file")]


@pytest.mark.parametrize("kind,expected", SPECIAL, ids=[k for k, _ in SPECIAL])
def test_special_files_are_refused_at_once(kind, expected, tmp_path, alarm):
    p = _special(tmp_path, kind)
    with pytest.raises(AnnotationError) as e:
        read_cocovid(p)
    assert str(e.value).startswith(f"{p}: {expected}"), str(e.value)
    with pytest.raises(AnnotationError) as e:
        tio.read_regular_file(p)
    assert str(e.value).startswith(f"{p}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["fifo", "chardev", "broken link"])
def test_cli_inspect_refuses_special_files_in_one_line(kind, tmp_path, alarm):
    from tdgen.cli import app

    p = _special(tmp_path, kind)
    r = CliRunner().invoke(app, ["inspect", str(p)])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {p}: "), r.stderr
    assert "Traceback" not in r.output


def test_cli_inspect_refuses_a_bad_file_in_one_line(tmp_path):
    from tdgen.cli import app

    p = tmp_path / "bad.json"
    p.write_bytes(dumps(mutate(make_doc(), "annotations", 1, "image_id", "2")))
    r = CliRunner().invoke(app, ["inspect", str(p)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: {p}: annotations[1] (id 2): 'image_id' must be an integer, got \"2\""


def test_unreadable_file_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "secret.json"
    p.write_bytes(dumps(make_doc()))
    p.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for a user
        real = os.open

        def deny(path, *a, **k):
            if Path(path) == p:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *a, **k)

        monkeypatch.setattr(os, "open", deny)
    with pytest.raises(AnnotationError) as e:
        read_cocovid(p)
    assert str(e.value) == f"{p}: permission denied (cannot read it)"


def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(tmp_path, monkeypatch, alarm):
    p = _special(tmp_path, "fifo")
    monkeypatch.setattr(tio, "check_regular_file", lambda path, what=None: os.stat(path))  # the check "passed"
    with pytest.raises(AnnotationError, match="is a named pipe"):
        tio.open_regular_file(p)


def test_check_regular_file_api(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x")
    st_ = tio.check_regular_file(p, "a captions file")
    assert stat.S_ISREG(st_.st_mode) and st_.st_size == 1
    (tmp_path / "link").symlink_to(p)
    assert tio.check_regular_file(tmp_path / "link").st_size == 1  # links are followed
    with pytest.raises(AnnotationError, match=r"is a directory, not a captions file$"):
        tio.check_regular_file(tmp_path, "a captions file")
    with pytest.raises(AnnotationError, match=r"is a directory, not a regular file$"):
        tio.check_regular_file(tmp_path)
    assert tio.read_regular_file(p) == b"x"


def test_detect_format_never_opens_a_special_file(tmp_path, alarm):
    p = _special(tmp_path, "fifo")
    with pytest.raises(AnnotationError, match="is a named pipe"):
        tio.detect_format(p)
    with pytest.raises(AnnotationError, match="is a character device"):
        tio.read_tracks("/dev/zero")
    link = _special(tmp_path, "broken link")
    with pytest.raises(AnnotationError, match="broken symbolic link"):
        tio.detect_format(link)


# --------------------------------------------------------------------------- the gapped-frame warning
def test_gap_warning_says_what_happens_to_frame_ids():
    doc = make_doc(1, (4,), (1,), "bytetrack")
    for im in doc["images"]:
        im["frame_id"] = 1 + 5 * (im["frame_id"] - 1)  # 1, 6, 11, 16
    ts = parse_cocovid(dumps(doc))
    assert any("frames renumbered contiguously (written files do not keep the original frame_id)" in w
               for w in ts.warnings)
    out = cocovid_dict(ts)
    assert [im["frame_id"] for im in out["images"]] == [1, 2, 3, 4]  # the warning is true: not kept
    assert "mot_frame_id" not in out["images"][0]
