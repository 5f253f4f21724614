"""A corpus of malformed inputs for every kind of input ``tdgen`` reads, as test cases.

Each :class:`Case` builds its inputs (a valid base plus one realistic mistake) in a fresh
directory and returns the command line to run. ``tests/test_malformed_inputs.py`` runs every
case and checks the error contract: exit 2, one ``error: ...`` line, no traceback, nothing
written. Valid bases are built here too, so the test can check that each base alone is
accepted (the mistake, not the base, is what a case's error is about).
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import orjson

DATA = Path(__file__).resolve().parent / "data"
YTVIS_MINI = DATA / "ytvis" / "mini_train.json"

Doc = dict
Mutation = Callable[[Doc], Union[Doc, bytes]]  # a new document (inputs are never edited) or raw bytes


# --------------------------------------------------------------------------- the resources of a case
class Resources:
    """What a case builder gets: its own empty directory and the session's shared bases."""

    def __init__(self, tmp: Path, big_cocovid: Callable[[], Doc], tiny_model: Callable[[], Path],
                 synth_output: Callable[[], Path]):
        self.tmp = tmp
        self._big = big_cocovid
        self._model = tiny_model
        self._synth = synth_output

    @property
    def out_json(self) -> Path:
        """Where convert/merge cases write (it must not exist afterwards)."""
        return self.tmp / "out.json"

    @property
    def synth_out(self) -> Path:
        """Where synth cases write (it must not exist afterwards)."""
        return self.tmp / "synth"

    def big_doc(self) -> Doc:
        return self._big()

    def model_copy(self, name: str = "model") -> Path:
        """A private, mutable copy of the tiny model directory."""
        dst = self.tmp / name
        shutil.copytree(self._model(), dst)
        return dst

    def synth_copy(self, name: str = "synth") -> Path:
        """A private copy of a finished synth output directory (one clip)."""
        dst = self.tmp / name
        shutil.copytree(self._synth(), dst, symlinks=True)
        return dst


@dataclass(frozen=True)
class Case:
    """One malformed input: ``make`` writes it under ``res.tmp`` and returns the tdgen arguments."""

    id: str
    kind: str
    make: Callable[[Resources], list[str]]
    expect: str | None = None  # a substring the error line must contain (the file or flag at fault)
    subprocess: bool = False  # run as a separate process (a hang or a memory blow-up is the risk)
    timeout: float = 15.0
    skip_as_root: bool = False  # permission cases: root reads anything


# --------------------------------------------------------------------------- valid bases
CATEGORIES = [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "car"}]


def cocovid_doc(videos: int = 2, frames: int = 10, tracks: int = 2, *, names: str = "VID") -> Doc:
    """A valid mmdet-flavour COCO-VID document: boxes inside 640x480 frames, ids from 1."""
    vids, images, anns = [], [], []
    for v in range(videos):
        name = f"{names}-{v + 1:02d}"
        vids.append({"id": v + 1, "name": name, "width": 640, "height": 480, "fps": 30})
        for f in range(frames):
            image_id = len(images) + 1
            images.append({"id": image_id, "video_id": v + 1, "file_name": f"{name}/img1/{f + 1:06d}.jpg",
                           "height": 480, "width": 640, "frame_id": f})
            for t in range(tracks):
                x, y = (10 + 35 * t + 3 * f) % 600, 20 + 25 * t  # x + 30 and y + 60 stay inside 640x480
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1 + t % 2,
                             "bbox": [x, y, 30, 60], "area": 1800, "iscrowd": 0,
                             "instance_id": v * tracks + t + 1, "video_id": v + 1, "visibility": 1.0})
    return {"info": {"description": "malformed-input corpus base"}, "categories": [dict(c) for c in CATEGORIES],
            "videos": vids, "images": images, "annotations": anns}


def big_cocovid_doc(min_bytes: int) -> Doc:
    """A valid COCO-VID document whose compact JSON is at least ``min_bytes`` long."""
    frames = 200
    while True:
        doc = cocovid_doc(videos=10, frames=frames, tracks=14)
        if len(orjson.dumps(doc)) >= min_bytes:
            return doc
        frames += 40


SEQINFO = ("[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={length}\nimWidth=640\nimHeight=480\n"
           "imExt=.jpg\n")


def gt_lines(frames: int = 10, tracks: int = 3) -> list[str]:
    """MOT17-style 9-column ground truth rows, sorted by frame then track."""
    rows = []
    for f in range(1, frames + 1):
        for t in range(1, tracks + 1):
            rows.append(f"{f},{t},{20 * t + 2 * f},{30 + 10 * t},40,80,1,1,1.0")
    return rows


def write_mot_split(root: Path, frames: int = 10) -> Path:
    """A split directory with two valid sequences, SEQ-01 and SEQ-02."""
    for name in ("SEQ-01", "SEQ-02"):
        seq = root / name
        (seq / "gt").mkdir(parents=True)
        (seq / "seqinfo.ini").write_text(SEQINFO.format(name=name, length=frames))
        (seq / "gt" / "gt.txt").write_text("\n".join(gt_lines(frames)) + "\n")
    return root


def ytvis_doc() -> Doc:
    return orjson.loads(YTVIS_MINI.read_bytes())


CAPTIONS = {"VID-01": "people crossing a street", "VID-02": "cars on a road at night"}


# --------------------------------------------------------------------------- copy-on-write edits
def _edit(doc: Doc, section: str, i: int, fn: Callable[[Any], Any]) -> Doc:
    """A new document whose ``doc[section][i]`` is ``fn(copy of it)``; the input stays as it was."""
    new = dict(doc)
    items = list(doc[section])
    rec = items[i]
    items[i] = fn(dict(rec) if isinstance(rec, dict) else rec)
    new[section] = items
    return new


def put(section: str, i: int, key: str, value: Any) -> Mutation:
    def f(doc: Doc) -> Doc:
        return _edit(doc, section, i, lambda r: {**r, key: value})
    return f


def put_from(section: str, i: int, key: str, j: int) -> Mutation:
    """``doc[section][i][key] = doc[section][j][key]`` (duplicate ids)."""
    def f(doc: Doc) -> Doc:
        return _edit(doc, section, i, lambda r: {**r, key: doc[section][j][key]})
    return f


def drop(section: str, i: int, key: str) -> Mutation:
    def f(doc: Doc) -> Doc:
        return _edit(doc, section, i, lambda r: {k: v for k, v in r.items() if k != key})
    return f


def replace(section: str, i: int, value: Any) -> Mutation:
    def f(doc: Doc) -> Doc:
        return _edit(doc, section, i, lambda r: value)
    return f


def top(key: str, value: Any) -> Mutation:
    return lambda doc: {**doc, key: value}


def top_drop(key: str) -> Mutation:
    return lambda doc: {k: v for k, v in doc.items() if k != key}


def other_video(i: int) -> Mutation:
    """``annotations[i].video_id`` names a video other than its image's."""
    def f(doc: Doc) -> Doc:
        vid = doc["annotations"][i]["video_id"]
        return _edit(doc, "annotations", i, lambda r: {**r, "video_id": 1 if vid != 1 else 2})
    return f


def on_bytes(fn: Callable[[bytes], bytes]) -> Mutation:
    return lambda doc: fn(orjson.dumps(doc))


def sub_once(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        assert old in data, old
        return data.replace(old, new, 1)
    return f


def sub_last(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        k = data.rfind(old)
        assert k >= 0, old
        return data[:k] + new + data[k + len(old):]
    return f


def render(doc: Doc, mutation: Mutation) -> bytes:
    out = mutation(doc)
    return out if isinstance(out, bytes) else orjson.dumps(out)


# --------------------------------------------------------------------------- COCO-VID
def _cocovid_mutations(i: int, last_image: int) -> list[tuple[str, Mutation, bool]]:
    """(name, mutation, also_for_big) for a record index ``i`` (an image index of the same video
    as image ``i - 1``) and ``last_image`` (the index of an image late in the file)."""
    A, I = "annotations", "images"
    return [
        # annotation fields
        ("string-image_id", put(A, i, "image_id", "4"), True),
        ("float-image_id", put(A, i, "image_id", 3.5), True),
        ("null-image_id", put(A, i, "image_id", None), True),
        ("missing-image_id", drop(A, i, "image_id"), True),
        ("dangling-image_id", put(A, i, "image_id", 999_999), True),
        ("huge-image_id", put(A, i, "image_id", 1e30), True),
        ("string-category_id", put(A, i, "category_id", "1"), True),
        ("dangling-category_id", put(A, i, "category_id", 77), True),
        ("missing-bbox", drop(A, i, "bbox"), True),
        ("bbox-three-numbers", put(A, i, "bbox", [10, 20, 30]), True),
        ("bbox-five-numbers", put(A, i, "bbox", [10, 20, 30, 40, 1]), False),
        ("bbox-string", put(A, i, "bbox", "10,20,30,40"), True),
        ("bbox-with-null", put(A, i, "bbox", [10, None, 30, 40]), True),
        ("bbox-with-string", put(A, i, "bbox", [10, "20", 30, 40]), False),
        ("bbox-negative-width", put(A, i, "bbox", [10, 20, -30, 40]), True),
        ("bbox-zero-height", put(A, i, "bbox", [10, 20, 30, 0]), False),
        ("bbox-object", put(A, i, "bbox", {"x": 10, "y": 20, "w": 30, "h": 40}), False),
        ("string-annotation-id", put(A, i, "id", "a1"), True),
        ("duplicate-annotation-id", put_from(A, i, "id", 0), True),
        ("missing-annotation-id", drop(A, i, "id"), False),
        ("string-iscrowd", put(A, i, "iscrowd", "no"), True),
        ("string-visibility", put(A, i, "visibility", "high"), True),
        ("string-area", put(A, i, "area", "big"), False),
        ("annotation-video_id-mismatch", other_video(i), True),
        ("annotation-not-an-object", replace(A, i, 17), True),
        ("annotation-null", replace(A, i, None), False),
        # image fields
        ("string-image-id", put(I, i, "id", "x"), True),
        ("duplicate-image-id", put_from(I, last_image, "id", 0), True),
        ("missing-file_name", drop(I, i, "file_name"), True),
        ("number-file_name", put(I, i, "file_name", 123), False),
        ("missing-frame_id", drop(I, last_image, "frame_id"), True),
        ("negative-frame_id", put(I, i, "frame_id", -1), False),
        ("string-frame_id", put(I, i, "frame_id", "3"), True),
        ("fractional-frame_id", put(I, i, "frame_id", 2.5), False),
        ("duplicate-frame_id", put_from(I, i, "frame_id", i - 1), True),
        ("zero-image-width", put(I, i, "width", 0), False),
        ("negative-image-height", put(I, i, "height", -480), False),
        ("string-image-width", put(I, i, "width", "640"), False),
        ("dangling-video_id", put(I, i, "video_id", 55), True),
        ("image-null", replace(I, i, None), False),
        # videos, categories, top level
        ("duplicate-video-id", put_from("videos", -1, "id", 0), False),
        ("string-video-id", put("videos", 0, "id", "1"), False),
        ("missing-categories", top_drop("categories"), False),
        ("categories-not-a-list", top("categories", {"1": "pedestrian"}), False),
        ("category-missing-name", drop("categories", 1, "name"), False),
        ("duplicate-category-id", put_from("categories", 1, "id", 0), False),
        ("string-category-id", put("categories", 0, "id", "1"), False),
        ("images-not-a-list", top("images", {"1": {"id": 1}}), False),
        ("annotations-not-a-list", top("annotations", "none"), False),
        ("videos-not-a-list", top("videos", 2), False),
        ("no-images-key", top_drop("images"), False),
        # the file as a whole
        ("truncated", on_bytes(lambda b: b[: len(b) - 57]), True),
        ("trailing-comma", on_bytes(lambda b: b[:-1] + b",}"), False),
        ("trailing-garbage", on_bytes(lambda b: b + b"\n}\n"), True),
        ("two-documents", on_bytes(lambda b: b + b"\n" + b), True),
        ("nan-literal", on_bytes(sub_last(b'"visibility":1.0', b'"visibility":NaN')), True),
        ("python-repr", lambda d: repr(d).encode(), False),
        ("top-level-list", lambda d: orjson.dumps([d]), False),
        ("utf16", on_bytes(lambda b: b.decode().encode("utf-16")), False),
        ("gzip-compressed", on_bytes(lambda b: gzip.compress(b, mtime=0)), False),
        ("nul-bytes", on_bytes(sub_last(b'"iscrowd":0', b'"iscrowd":\x00\x00')), True),
        ("latin1-file_name", on_bytes(sub_last(b'img1/000007.jpg"', b'img1/caf\xe9.jpg"')), True),
    ]


def _cocovid_case(name: str, mutation: Mutation, big: bool) -> Case:
    file = "big.json" if big else "ann.json"

    def make(res: Resources) -> list[str]:
        doc = res.big_doc() if big else cocovid_doc()
        data = render(doc, mutation)
        if big:
            from tdgen.tracks.cocovid import FAST_PATH_BYTES

            assert len(data) >= FAST_PATH_BYTES, "the big case must stay on the fast path's side of the size limit"
        (res.tmp / file).write_bytes(data)
        return ["convert", str(res.tmp / file), "-o", str(res.out_json)]

    return Case(f"{'cocovid-big' if big else 'cocovid'}-{name}", "cocovid-big" if big else "cocovid", make, file)


def cocovid_cases() -> list[Case]:
    small = [_cocovid_case(n, m, False) for n, m, _ in _cocovid_mutations(3, 17)]
    # Late records: the fast path reads whole columns, so a mistake near the end must be found too.
    big = [_cocovid_case(n, m, True) for n, m, for_big in _cocovid_mutations(-7, -3) if for_big]
    return small + big


# --------------------------------------------------------------------------- MOT Challenge
def _gt_line(k: int, fn: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    """Edit the k-th (1-based) line of gt.txt."""
    def f(lines: list[str]) -> list[str]:
        out = list(lines)
        out[k - 1] = fn(out[k - 1])
        return out
    return f


def _field(j: int, value: str) -> Callable[[str], str]:
    def f(line: str) -> str:
        parts = line.split(",")
        parts[j] = value
        return ",".join(parts)
    return f


GT_MUTATIONS: list[tuple[str, Callable[[list[str]], Union[list[str], bytes]]]] = [
    ("text-in-column", _gt_line(4, _field(2, "abc"))),
    ("empty-column", _gt_line(4, _field(3, ""))),
    ("five-columns", _gt_line(4, lambda s: ",".join(s.split(",")[:5]))),
    ("eleven-columns", _gt_line(4, lambda s: s + ",0,0")),
    ("mixed-column-count", _gt_line(5, lambda s: ",".join(s.split(",")[:8]))),
    ("frame-zero", _gt_line(1, _field(0, "0"))),
    ("negative-frame", _gt_line(1, _field(0, "-1"))),
    ("frame-past-seqLength", lambda ls: ls + ["11,1,20,40,40,80,1,1,1.0"]),
    ("fractional-frame", _gt_line(4, _field(0, "2.5"))),
    ("negative-width", _gt_line(4, _field(4, "-40"))),
    ("zero-height", _gt_line(4, _field(5, "0"))),
    ("nan-coordinate", _gt_line(4, _field(2, "nan"))),
    ("inf-coordinate", _gt_line(4, _field(3, "inf"))),
    ("fractional-class", _gt_line(4, _field(7, "1.5"))),
    ("semicolon-separated", lambda ls: [s.replace(",", ";") for s in ls]),
    ("header-row", lambda ls: ["frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility"] + ls),
    ("quoted-values", lambda ls: [",".join(f'"{v}"' for v in s.split(",")) for s in ls]),
    ("duplicate-track-in-frame", lambda ls: ls[:4] + [ls[3]] + ls[4:]),
    ("nul-bytes", _gt_line(4, lambda s: s[:3] + "\x00\x00" + s[3:])),
    ("utf16", lambda ls: ("\n".join(ls) + "\n").encode("utf-16")),
]

SEQINFO_MUTATIONS: list[tuple[str, Callable[[str], Union[str, bytes]]]] = [
    ("text-seqLength", lambda s: s.replace("seqLength=10", "seqLength=five")),
    ("missing-seqLength", lambda s: s.replace("seqLength=10\n", "")),
    ("missing-imWidth", lambda s: s.replace("imWidth=640\n", "")),
    ("negative-imWidth", lambda s: s.replace("imWidth=640", "imWidth=-640")),
    ("fractional-imHeight", lambda s: s.replace("imHeight=480", "imHeight=480.5")),
    ("zero-frameRate", lambda s: s.replace("frameRate=30", "frameRate=0")),
    ("text-frameRate", lambda s: s.replace("frameRate=30", "frameRate=thirty")),
    ("no-section-header", lambda s: s.replace("[Sequence]\n", "")),
    ("duplicate-key", lambda s: s + "seqLength=12\n"),
    ("duplicate-section", lambda s: s + "[Sequence]\nname=again\n"),
    ("not-key-value", lambda s: s + "this line is not a key\n"),
    ("zero-seqLength", lambda s: s.replace("seqLength=10", "seqLength=0")),
    ("utf16", lambda s: s.encode("utf-16")),
]


def _mot_case(part: str, name: str, edit: Callable[[Path], None], expect: str) -> Case:
    def make(res: Resources) -> list[str]:
        split = write_mot_split(res.tmp / "train")
        edit(split / "SEQ-02")
        return ["convert", str(split), "-o", str(res.out_json)]

    return Case(f"mot-{part}-{name}", "mot", make, expect)


def mot_cases() -> list[Case]:
    cases = []
    for name, fn in GT_MUTATIONS:
        def edit(seq: Path, fn=fn) -> None:
            gt = seq / "gt" / "gt.txt"
            out = fn(gt.read_text().splitlines())
            gt.write_bytes(out if isinstance(out, bytes) else ("\n".join(out) + "\n").encode())
        cases.append(_mot_case("gt", name, edit, "gt.txt"))

    for name, fn in SEQINFO_MUTATIONS:
        def edit(seq: Path, fn=fn) -> None:
            ini = seq / "seqinfo.ini"
            out = fn(ini.read_text())
            ini.write_bytes(out if isinstance(out, bytes) else out.encode())
        # a zero length is reported where it bites: the gt.txt rows past it
        cases.append(_mot_case("seqinfo", name, edit, "SEQ-02" if name == "zero-seqLength" else "seqinfo.ini"))

    def empty_split(res: Resources) -> list[str]:
        (res.tmp / "train").mkdir()
        return ["convert", str(res.tmp / "train"), "-o", str(res.out_json)]
    cases.append(Case("mot-empty-split-directory", "mot", empty_split, "train"))

    def only_files(res: Resources) -> list[str]:
        (res.tmp / "train").mkdir()
        (res.tmp / "train" / "README.txt").write_text("sequences go here\n")
        return ["convert", str(res.tmp / "train"), "-o", str(res.out_json)]
    cases.append(Case("mot-split-without-sequences", "mot", only_files, "train"))
    return cases


# --------------------------------------------------------------------------- YouTube-VIS
def _bboxes_entry(i: int, k: int, value: Any) -> Mutation:
    def f(doc: Doc) -> Doc:
        def g(r: dict) -> dict:
            boxes = list(r["bboxes"])
            boxes[k] = value
            return {**r, "bboxes": boxes}
        return _edit(doc, "annotations", i, g)
    return f


def _list_edit(section: str, i: int, key: str, fn: Callable[[list], list]) -> Mutation:
    def f(doc: Doc) -> Doc:
        return _edit(doc, section, i, lambda r: {**r, key: fn(list(r[key]))})
    return f


YTVIS_MUTATIONS: list[tuple[str, Mutation]] = [
    ("missing-videos", top_drop("videos")),
    ("missing-categories", top_drop("categories")),
    ("annotations-not-a-list", top("annotations", {"1": {}})),
    ("missing-file_names", drop("videos", 1, "file_names")),
    ("file_names-string", put("videos", 1, "file_names", "0043f083b5/00000.jpg")),
    ("file_names-with-number", _list_edit("videos", 1, "file_names", lambda xs: xs[:1] + [5] + xs[2:])),
    ("length-mismatch", put("videos", 1, "length", 4)),
    ("duplicate-video-id", put_from("videos", 1, "id", 0)),
    ("string-video-width", put("videos", 0, "width", "1280")),
    ("category-not-an-object", replace("categories", 0, "person")),
    ("string-category-id", put("categories", 1, "id", "2")),
    ("duplicate-category-id", put_from("categories", 1, "id", 0)),
    ("missing-bboxes", drop("annotations", 2, "bboxes")),
    ("null-bboxes", put("annotations", 2, "bboxes", None)),
    ("missing-annotation-id", drop("annotations", 1, "id")),
    ("dangling-video_id", put("annotations", 2, "video_id", 7)),
    ("string-video_id", put("annotations", 2, "video_id", "1")),
    ("dangling-category_id", put("annotations", 0, "category_id", 40)),
    ("short-bboxes", _list_edit("annotations", 2, "bboxes", lambda xs: xs[:-1])),
    ("long-areas", _list_edit("annotations", 0, "areas", lambda xs: xs + [1.0])),
    ("bbox-zero-width", _bboxes_entry(1, 2, [1.0, 2.0, 0.0, 5.0])),
    ("bbox-three-numbers", _bboxes_entry(2, 1, [1, 2, 3])),
    ("bbox-string", _bboxes_entry(2, 1, "1,2,3,4")),
    ("string-area", _list_edit("annotations", 0, "areas", lambda xs: ["big"] + xs[1:])),
    ("iscrowd-two", put("annotations", 0, "iscrowd", 2)),
    ("string-iscrowd", put("annotations", 0, "iscrowd", "0")),
    ("truncated", on_bytes(lambda b: b[: len(b) // 2])),
    ("nan-literal", on_bytes(sub_once(b"[10.0,20.0,100.0,80.0]", b"[10.0,NaN,100.0,80.0]"))),
    ("top-level-list", lambda d: orjson.dumps([d])),
]


def ytvis_cases() -> list[Case]:
    cases = []
    for name, mutation in YTVIS_MUTATIONS:
        def make(res: Resources, mutation=mutation) -> list[str]:
            (res.tmp / "ytvis.json").write_bytes(render(ytvis_doc(), mutation))
            return ["convert", str(res.tmp / "ytvis.json"), "--from", "ytvis", "-o", str(res.out_json)]
        cases.append(Case(f"ytvis-{name}", "ytvis", make, "ytvis.json"))

    # the same mistakes with the format left to auto-detection, as users usually run it
    for name, mutation in (("auto-length-mismatch", put("videos", 1, "length", 4)),
                           ("auto-bbox-zero-width", _bboxes_entry(1, 2, [1.0, 2.0, 0.0, 5.0]))):
        def make(res: Resources, mutation=mutation) -> list[str]:
            (res.tmp / "ytvis.json").write_bytes(render(ytvis_doc(), mutation))
            return ["convert", str(res.tmp / "ytvis.json"), "-o", str(res.out_json)]
        cases.append(Case(f"ytvis-{name}", "ytvis", make, "ytvis.json"))
    return cases


# --------------------------------------------------------------------------- synth: flags, prompts, captions, models
def synth_args(res: Resources, *extra: str, model: str = "tiny") -> list[str]:
    """A synth command on a valid base that would generate one 1-step clip; ``extra`` overrides
    (Click takes the last value of an option given twice)."""
    ann = res.tmp / "ann.json"
    if not ann.exists():
        ann.write_bytes(orjson.dumps(cocovid_doc()))
    return ["synth", "--ann", str(ann), "--out", str(res.synth_out), "--model", model, "--steps", "1",
            "--max-clips", "1", "--batch-size", "1", "--quiet", *extra]


SYNTH_FLAGS: list[tuple[str, Sequence[str], str]] = [
    ("frames-0", ["--frames", "0"], "--frames"),
    ("frames-negative", ["--frames", "-4"], "--frames"),
    ("frames-float", ["--frames", "1.5"], "--frames"),
    ("slots-0", ["--slots", "0"], "--slots"),
    ("slots-negative", ["--slots", "-1"], "--slots"),
    ("steps-0", ["--steps", "0"], "--steps"),
    ("steps-negative", ["--steps", "-1"], "--steps"),
    ("cfg-nan", ["--cfg", "nan"], "--cfg"),
    ("cfg-inf", ["--cfg", "inf"], "--cfg"),
    ("cfg-text", ["--cfg", "high"], "--cfg"),
    ("quality-500", ["--quality", "500"], "--quality"),
    ("quality-0-jpg", ["--image-format", "jpg", "--quality", "0"], "--quality"),
    ("batch-size-0", ["--batch-size", "0"], "--batch-size"),
    ("batch-size-negative", ["--batch-size", "-2"], "--batch-size"),
    ("unet-batch-0", ["--unet-batch", "0"], "--unet-batch"),
    ("shard-3-of-2", ["--shard", "3/2"], "--shard"),
    ("shard-2-of-2", ["--shard", "2/2"], "--shard"),
    ("shard-negative", ["--shard", "-1/2"], "--shard"),
    ("shard-of-0", ["--shard", "1/0"], "--shard"),
    ("shard-text", ["--shard", "half"], "--shard"),
    ("shard-three-parts", ["--shard", "1/2/3"], "--shard"),
    ("stride-0", ["--stride", "0"], "--stride"),
    ("stride-negative", ["--stride", "-1"], "--stride"),
    ("step-0", ["--step", "0"], "--step"),
    ("step-negative", ["--step", "-2"], "--step"),
    ("min-tracks-negative", ["--min-tracks", "-1"], "--min-tracks"),
    ("max-clips-negative", ["--max-clips", "-1"], "--max-clips"),
    ("overflow-unknown", ["--overflow", "biggest"], "--overflow"),
    ("guidance-kind-unknown", ["--guidance-kind", "cfg++"], "--guidance-kind"),
    ("image-format-gif", ["--image-format", "gif"], "--image-format"),
    ("out-size-zero", ["--out-size", "0x0"], "--out-size"),
    ("out-size-one-number", ["--out-size", "64"], "--out-size"),
    ("out-size-negative", ["--out-size", "100x-5"], "--out-size"),
    ("dtype-unknown", ["--dtype", "fp8"], "fp8"),
    ("device-unknown", ["--device", "tpu"], "tpu"),
    ("flavor-unknown", ["--flavor", "coco"], "--flavor"),
    ("seed-text", ["--seed", "abc"], "--seed"),
    ("unknown-video", ["--videos", "VID-99"], "VID-99"),
    ("frames-longer-than-videos", ["--frames", "64"], "64"),
]


def synth_cases() -> list[Case]:
    cases = []
    for name, flags, expect in SYNTH_FLAGS:
        cases.append(Case(f"synth-{name}", "synth", lambda res, flags=flags: synth_args(res, *flags), expect))

    def no_ann(res: Resources) -> list[str]:
        return ["synth", "--out", str(res.synth_out), "--model", "tiny", "--quiet"]
    cases.append(Case("synth-missing-ann", "synth", no_ann, "--ann"))

    def ann_missing_file(res: Resources) -> list[str]:
        args = synth_args(res)
        args[args.index("--ann") + 1] = str(res.tmp / "nope.json")
        return args
    cases.append(Case("synth-ann-does-not-exist", "synth", ann_missing_file, "nope.json"))

    def ann_malformed(res: Resources) -> list[str]:
        (res.tmp / "ann.json").write_bytes(render(cocovid_doc(), put("annotations", 3, "image_id", "4")))
        return synth_args(res)
    cases.append(Case("synth-ann-malformed", "synth", ann_malformed, "ann.json"))

    def finalize_plain_folder(res: Resources) -> list[str]:
        folder = res.tmp / "photos"
        folder.mkdir()
        (folder / "notes.txt").write_text("not a synth output\n")
        (folder / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        return ["synth", "--out", str(folder), "--finalize"]
    cases.append(Case("synth-finalize-non-synth-folder", "synth", finalize_plain_folder, "photos"))

    def finalize_missing(res: Resources) -> list[str]:
        return ["synth", "--out", str(res.synth_out), "--finalize"]
    cases.append(Case("synth-finalize-missing-folder", "synth", finalize_missing, "synth"))

    def finalize_file(res: Resources) -> list[str]:
        (res.tmp / "synth.txt").write_text("a file\n")
        return ["synth", "--out", str(res.tmp / "synth.txt"), "--finalize"]
    cases.append(Case("synth-finalize-on-a-file", "synth", finalize_file, "synth.txt"))

    def finalize_damaged(name: str, damage: Callable[[Path], Any], expect: str) -> Case:
        def make(res: Resources) -> list[str]:
            folder = res.synth_copy()
            damage(folder)
            return ["synth", "--out", str(folder), "--finalize"]
        return Case(f"synth-finalize-{name}", "synth", make, expect)

    def fragment(folder: Path) -> Path:
        return next((folder / "clips").glob("*.json"))

    def truncate(p: Path) -> None:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    def drop_boxes(p: Path) -> None:
        p.write_bytes(orjson.dumps({k: v for k, v in orjson.loads(p.read_bytes()).items() if k not in ("boxes", "annotations")}))

    cases += [
        finalize_damaged("truncated-fragment", lambda d: truncate(fragment(d)), "clips"),
        finalize_damaged("fragment-without-boxes", lambda d: drop_boxes(fragment(d)), "clips"),
        finalize_damaged("fragment-is-a-list", lambda d: fragment(d).write_bytes(b"[]"), "clips"),
        finalize_damaged("truncated-synth-json", lambda d: truncate(d / "synth.json"), "synth.json"),
    ]
    return cases


PROMPTS: list[tuple[str, str]] = [
    ("misspelled-field", "a video of {cateogries} in {video}"),
    ("positional-field", "a video of {0}"),
    ("empty-field", "a video of {}"),
    ("unclosed-brace", "a video of {categories"),
    ("stray-closing-brace", "a video of categories}"),
    ("attribute-access", "a video of {video.name}"),
    ("item-access", "a video of {categories[first]}"),
    ("bad-conversion", "a video of {categories!z}"),
    ("bad-format-spec", "a video of {video:d}"),
    ("nested-field", "a video of {categories:{video}}"),
]


def prompt_cases() -> list[Case]:
    return [Case(f"prompt-{name}", "prompt", lambda res, t=t: synth_args(res, "--prompt", t), "--prompt")
            for name, t in PROMPTS]


CAPTION_FILES: list[tuple[str, str, bytes]] = [
    ("json-truncated", "captions.json", orjson.dumps(CAPTIONS)[:-9]),
    ("json-trailing-comma", "captions.json", orjson.dumps(CAPTIONS)[:-1] + b",}"),
    ("json-list", "captions.json", orjson.dumps(list(CAPTIONS.values()))),
    ("json-string", "captions.json", b'"people crossing a street"'),
    ("json-number-value", "captions.json", orjson.dumps({**CAPTIONS, "VID-02": 5})),
    ("json-null-value", "captions.json", orjson.dumps({**CAPTIONS, "VID-02": None})),
    ("json-nested-value", "captions.json", orjson.dumps({**CAPTIONS, "VID-02": {"text": "cars"}})),
    ("json-binary", "captions.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    ("tsv-spaces-not-tab", "captions.tsv", b"VID-01 people crossing a street\nVID-02 cars on a road\n"),
    ("tsv-empty-video-name", "captions.tsv", b"VID-01\tpeople crossing a street\n\tcars on a road\n"),
    ("tsv-duplicate-video", "captions.tsv", b"VID-01\tpeople crossing\nVID-01\tcars on a road\n"),
    ("tsv-binary", "captions.tsv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"),
    ("csv-commas", "captions.csv", b"VID-01,people crossing a street\nVID-02,cars on a road\n"),
]


def caption_cases() -> list[Case]:
    cases = []
    for name, file, data in CAPTION_FILES:
        def make(res: Resources, file=file, data=data) -> list[str]:
            (res.tmp / file).write_bytes(data)
            return synth_args(res, "--captions", str(res.tmp / file))
        cases.append(Case(f"captions-{name}", "captions", make, file))

    def missing(res: Resources) -> list[str]:
        return synth_args(res, "--captions", str(res.tmp / "captions.json"))
    cases.append(Case("captions-missing-file", "captions", missing, "captions.json"))
    return cases


def _model_case(name: str, edit: Callable[[Path], Any], expect: str, kind: str = "model") -> Case:
    def make(res: Resources) -> list[str]:
        model = res.model_copy()
        edit(model)
        return synth_args(res, model=str(model))
    return Case(f"{kind}-{name}", kind, make, expect)


def _tdgen_json(change: Callable[[dict], Any]) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        info = orjson.loads((model / "tdgen.json").read_bytes())
        out = change(info)
        (model / "tdgen.json").write_bytes(out if isinstance(out, bytes) else orjson.dumps(out))
    return edit


def _remove(rel: str) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        p = model / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return edit


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    return lambda model: (model / rel).write_bytes(data)


def _replace_by_dir(rel: str) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        (model / rel).unlink()
        (model / rel).mkdir()
    return edit


def _truncate_weights(model: Path) -> None:
    w = model / "unet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])


def model_cases() -> list[Case]:
    cases = [
        _model_case("missing-model_index", _remove("model_index.json"), "model_index.json"),
        _model_case("model_index-invalid-json", _write("model_index.json", b'{"_class_name": '), "model_index.json"),
        _model_case("missing-tdgen-json", _remove("tdgen.json"), "tdgen.json"),
        _model_case("tdgen-json-invalid", _write("tdgen.json", b'{"frames": 8,'), "tdgen.json"),
        _model_case("tdgen-json-list", _write("tdgen.json", b"[128, 128]"), "tdgen.json"),
        _model_case("tdgen-json-latin1", _tdgen_json(lambda d: orjson.dumps({**d, "model_id": "x"}).replace(
            b'"x"', b'"mod\xe8le"')), "tdgen.json"),
        _model_case("resolution-not-multiple-of-8", _tdgen_json(lambda d: {**d, "resolution": [100, 50]}), "tdgen.json"),
        _model_case("resolution-string", _tdgen_json(lambda d: {**d, "resolution": "128x128"}), "tdgen.json"),
        _model_case("frames-0", _tdgen_json(lambda d: {**d, "frames": 0}), "tdgen.json"),
        _model_case("frames-string", _tdgen_json(lambda d: {**d, "frames": "8"}), "tdgen.json"),
        _model_case("slots-negative", _tdgen_json(lambda d: {**d, "slots": -1}), "tdgen.json"),
        _model_case("prompt-template-number", _tdgen_json(lambda d: {**d, "prompt_template": 5}), "tdgen.json"),
        _model_case("prompt-template-unknown-field",
                    _tdgen_json(lambda d: {**d, "prompt_template": "a video of {objects}"}), "{objects}"),
        _model_case("missing-unet", _remove("unet"), "unet"),
        _model_case("missing-unet-config", _remove("unet/config.json"), "config.json"),
        _model_case("unet-config-invalid-json", _write("unet/config.json", b"{"), "unet"),
        _model_case("missing-unet-weights", _remove("unet/diffusion_pytorch_model.safetensors"), "unet"),
        _model_case("truncated-unet-weights", _truncate_weights, "unet"),
        _model_case("missing-tokenizer-files", lambda m: [p.unlink() for p in (m / "tokenizer").iterdir()], "tokenizer"),
        _model_case("missing-scheduler-config", _remove("scheduler/scheduler_config.json"), "scheduler"),
    ]

    def path_is_file(res: Resources) -> list[str]:
        (res.tmp / "model.safetensors").write_bytes(b"\x00" * 64)
        return synth_args(res, model=str(res.tmp / "model.safetensors"))
    cases.append(Case("model-path-is-a-file", "model", path_is_file, "model.safetensors"))

    def missing_dir(res: Resources) -> list[str]:
        return synth_args(res, model=str(res.tmp / "models" / "td"))
    cases.append(Case("model-path-does-not-exist", "model", missing_dir, "td"))

    def empty_dir(res: Resources) -> list[str]:
        (res.tmp / "model").mkdir()
        return synth_args(res, model=str(res.tmp / "model"))
    cases.append(Case("model-empty-directory", "model", empty_dir, "model"))

    cases.append(Case("model-unknown-preset", "model", lambda res: synth_args(res, model="tinny"), "tinny"))
    return cases


# --------------------------------------------------------------------------- merge
def _merge_inputs(res: Resources, base: Doc | None = None, extra: Doc | bytes | None = None) -> tuple[Path, Path]:
    b, e = res.tmp / "base.json", res.tmp / "extra.json"
    b.write_bytes(orjson.dumps(base if base is not None else cocovid_doc()))
    data = extra if extra is not None else cocovid_doc(names="SYN")
    e.write_bytes(data if isinstance(data, bytes) else orjson.dumps(data))
    return b, e


def merge_args(res: Resources, *extra: str, base: Doc | None = None, extra_doc: Doc | bytes | None = None) -> list[str]:
    b, e = _merge_inputs(res, base, extra_doc)
    return ["merge", str(b), str(e), "--prefix", "synth", "-o", str(res.out_json), *extra]


def _extra_with_new_category() -> Doc:
    doc = cocovid_doc(names="SYN")
    doc["categories"] = doc["categories"] + [{"id": 3, "name": "bicycle"}]
    doc["annotations"][5]["category_id"] = 3
    return doc


def _base_with_duplicate_names() -> Doc:
    doc = cocovid_doc()
    doc["categories"] = [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "pedestrian"}]
    return doc


def merge_cases() -> list[Case]:
    flag_cases = [
        ("ratio-text", ["--ratio", "half"], "--ratio"),
        ("ratio-2", ["--ratio", "2"], "--ratio"),
        ("ratio-0", ["--ratio", "0"], "--ratio"),
        ("ratio-negative", ["--ratio", "-0.5"], "--ratio"),
        ("ratio-nan", ["--ratio", "nan"], "--ratio"),
        ("max-videos-negative", ["--max-videos", "-1"], "--max-videos"),
        ("max-videos-text", ["--max-videos", "all"], "--max-videos"),
        ("flavor-unknown", ["--flavor", "detectron"], "--flavor"),
        ("too-many-prefixes", ["--prefix", "second"], "--prefix"),
    ]
    cases = [Case(f"merge-{n}", "merge", lambda res, f=f: merge_args(res, *f), x) for n, f, x in flag_cases]

    def missing_base(res: Resources) -> list[str]:
        args = merge_args(res)
        args[1] = str(res.tmp / "train.json")
        return args
    cases.append(Case("merge-unknown-base", "merge", missing_base, "train.json"))

    def base_empty_dir(res: Resources) -> list[str]:
        args = merge_args(res)
        (res.tmp / "train").mkdir()
        args[1] = str(res.tmp / "train")
        return args
    cases.append(Case("merge-base-empty-directory", "merge", base_empty_dir, "train"))

    def missing_extra(res: Resources) -> list[str]:
        args = merge_args(res)
        args[2] = str(res.tmp / "synth.json")
        return args
    cases.append(Case("merge-missing-extra", "merge", missing_extra, "synth.json"))

    cases.append(Case("merge-unknown-category", "merge",
                      lambda res: merge_args(res, extra_doc=_extra_with_new_category()), "bicycle"))
    cases.append(Case("merge-base-categories-share-a-name", "merge",
                      lambda res: merge_args(res, base=_base_with_duplicate_names()), "base.json"))

    def same_names(res: Resources) -> list[str]:
        args = merge_args(res, extra_doc=cocovid_doc())
        k = args.index("--prefix")
        return args[:k] + args[k + 2:]
    cases.append(Case("merge-same-video-names-without-prefix", "merge", same_names, "VID-0"))

    cases.append(Case("merge-extra-malformed", "merge", lambda res: merge_args(
        res, extra_doc=render(cocovid_doc(names="SYN"), put("annotations", 3, "image_id", "4"))), "extra.json"))
    cases.append(Case("merge-extra-truncated", "merge", lambda res: merge_args(
        res, extra_doc=orjson.dumps(cocovid_doc(names="SYN"))[:-40]), "extra.json"))

    def output_is_dir(res: Resources) -> list[str]:
        args = merge_args(res)
        (res.tmp / "merged").mkdir()
        args[args.index("-o") + 1] = str(res.tmp / "merged")
        return args
    cases.append(Case("merge-output-is-a-directory", "merge", output_is_dir, "merged"))
    return cases


# --------------------------------------------------------------------------- plain usage mistakes
def usage_cases() -> list[Case]:
    def with_ann(*args: str) -> Callable[[Resources], list[str]]:
        def make(res: Resources) -> list[str]:
            ann = res.tmp / "ann.json"
            ann.write_bytes(orjson.dumps(cocovid_doc()))
            return [a.replace("ANN", str(ann)).replace("OUT", str(res.out_json)) for a in args]
        return make

    table = [
        ("unknown-command", ["convret", "ANN", "-o", "OUT"], "convret"),
        ("unknown-option", ["inspect", "ANN", "--jsno"], "--jsno"),
        ("missing-argument", ["inspect"], "ANN"),
        ("missing-output-option", ["convert", "ANN"], "--output"),
        ("option-without-value", ["convert", "ANN", "-o"], "-o"),
        ("extra-argument", ["inspect", "ANN", "ANN"], "ann.json"),
        ("to-unknown", ["convert", "ANN", "-o", "OUT", "--to", "xml"], "--to"),
        ("split-unknown", ["convert", "ANN", "-o", "OUT", "--split", "half"], "--split"),
        ("format-unknown", ["inspect", "ANN", "--format", "coco"], "--format"),
        ("images-mode-unknown", ["convert", "ANN", "-o", "OUT", "--images", "hardlink"], "--images"),
        ("preview-fps-text", ["preview", "ANN", "-o", "OUT.png", "--fps", "fast"], "--fps"),
        ("model-init-unknown-preset", ["model", "init", "--preset", "huge", "-o", "OUT.model"], "huge"),
        ("model-unknown-subcommand", ["model", "frobnicate"], "frobnicate"),
    ]
    return [Case(f"usage-{n}", "usage", with_ann(*a), x) for n, a, x in table]


# --------------------------------------------------------------------------- special files
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def special_cases() -> list[Case]:
    def convert(res: Resources, src: Path, *fmt: str) -> list[str]:
        return ["convert", str(src), *fmt, "-o", str(res.out_json)]

    def mot_with(res: Resources, rel: str, make_special: Callable[[Path], Any]) -> list[str]:
        split = write_mot_split(res.tmp / "train")
        target = split / "SEQ-02" / rel
        target.unlink()
        make_special(target)
        return convert(res, split)

    def latin1_mot_gt(res: Resources) -> list[str]:
        split = write_mot_split(res.tmp / "train")
        gt = split / "SEQ-02" / "gt" / "gt.txt"
        lines = gt.read_bytes().split(b"\n")
        lines[3] = lines[3].replace(b",", b",\xa0", 1)  # a Windows-1252 no-break space pasted in
        gt.write_bytes(b"\n".join(lines))
        return convert(res, split)

    def latin1_seqinfo(res: Resources) -> list[str]:
        split = write_mot_split(res.tmp / "train")
        ini = split / "SEQ-02" / "seqinfo.ini"
        ini.write_bytes(ini.read_bytes().replace(b"name=SEQ-02", b"name=Cam\xe9ra-02"))
        return convert(res, split)

    def file_case(name: str, file: str, build: Callable[[Path], Any], *fmt: str, expect: str | None = None,
                  **kw: Any) -> Case:
        def make(res: Resources) -> list[str]:
            build(res.tmp / file)
            return convert(res, res.tmp / file, *fmt)
        return Case(f"special-{name}", "special", make, expect or file, **kw)

    def captions_case(name: str, file: str, build: Callable[[Path], Any], **kw: Any) -> Case:
        def make(res: Resources) -> list[str]:
            build(res.tmp / file)
            return synth_args(res, "--captions", str(res.tmp / file))
        return Case(f"special-{name}", "special", make, file, **kw)

    def dead_link(p: Path) -> None:
        p.symlink_to(p.parent / "gone" / p.name)

    def broken_model_link(res: Resources) -> list[str]:
        dead_link(res.tmp / "model")
        return synth_args(res, model=str(res.tmp / "model"))

    def unreadable(p: Path) -> None:
        p.write_bytes(orjson.dumps(cocovid_doc()))
        p.chmod(0)

    ytvis_latin1 = orjson.dumps(ytvis_doc()).replace(b"0043f083b5/00005.jpg", b"0043f083b5/caf\xe9.jpg")
    cocovid_latin1 = orjson.dumps(cocovid_doc()).replace(b"VID-02/img1/000003.jpg", b"VID-02/img1/caf\xe9.jpg")

    cases = [
        # FIFOs: a reader that opens one waits forever for a writer
        file_case("fifo-cocovid", "ann.json", _fifo, subprocess=True),
        file_case("fifo-ytvis", "ytvis.json", _fifo, "--from", "ytvis", subprocess=True),
        Case("special-fifo-mot-gt", "special", lambda res: mot_with(res, "gt/gt.txt", _fifo), "gt.txt",
             subprocess=True),
        Case("special-fifo-mot-seqinfo", "special", lambda res: mot_with(res, "seqinfo.ini", _fifo), "seqinfo.ini",
             subprocess=True),
        captions_case("fifo-captions", "captions.json", _fifo, subprocess=True, timeout=25.0),
        # an endless device: read whole, it never ends (run with a memory limit)
        Case("special-dev-zero-cocovid", "special", lambda res: convert(res, Path("/dev/zero")), "/dev/zero",
             subprocess=True),
        Case("special-dev-zero-ytvis", "special", lambda res: convert(res, Path("/dev/zero"), "--from", "ytvis"),
             "/dev/zero", subprocess=True),
        # a directory where a file is expected
        file_case("directory-as-cocovid", "ann.json", lambda p: p.mkdir(), "--from", "cocovid"),
        file_case("directory-as-ytvis", "ytvis.json", lambda p: p.mkdir(), "--from", "ytvis"),
        Case("special-directory-as-mot-gt", "special", lambda res: mot_with(res, "gt/gt.txt", lambda p: p.mkdir()),
             "gt.txt"),
        Case("special-directory-as-mot-seqinfo", "special",
             lambda res: mot_with(res, "seqinfo.ini", lambda p: p.mkdir()), "seqinfo.ini"),
        captions_case("directory-as-captions", "captions.json", lambda p: p.mkdir()),
        _model_case("directory-as-tdgen-json", _replace_by_dir("tdgen.json"), "tdgen.json", "special"),
        # broken symlinks
        file_case("broken-symlink-cocovid", "ann.json", dead_link),
        Case("special-broken-symlink-mot-gt", "special", lambda res: mot_with(res, "gt/gt.txt", dead_link), "gt.txt"),
        Case("special-broken-symlink-mot-seqinfo", "special", lambda res: mot_with(res, "seqinfo.ini", dead_link),
             "seqinfo.ini"),
        captions_case("broken-symlink-captions", "captions.json", dead_link),
        Case("special-broken-symlink-model", "special", broken_model_link, "model"),
        # empty files
        file_case("empty-cocovid", "ann.json", lambda p: p.write_bytes(b"")),
        file_case("whitespace-cocovid", "ann.json", lambda p: p.write_bytes(b"  \n\n")),
        file_case("empty-ytvis", "ytvis.json", lambda p: p.write_bytes(b""), "--from", "ytvis"),
        Case("special-empty-mot-seqinfo", "special",
             lambda res: mot_with(res, "seqinfo.ini", lambda p: p.write_bytes(b"")), "seqinfo.ini"),
        captions_case("empty-captions-json", "captions.json", lambda p: p.write_bytes(b"")),
        _model_case("empty-tdgen-json", _write("tdgen.json", b""), "tdgen.json", "special"),
        # Latin-1 (not UTF-8) bytes
        file_case("latin1-cocovid", "ann.json", lambda p: p.write_bytes(cocovid_latin1)),
        file_case("latin1-ytvis", "ytvis.json", lambda p: p.write_bytes(ytvis_latin1)),
        Case("special-latin1-mot-gt", "special", latin1_mot_gt, "gt.txt"),
        Case("special-latin1-mot-seqinfo", "special", latin1_seqinfo, "seqinfo.ini"),
        captions_case("latin1-captions-json", "captions.json",
                      lambda p: p.write_bytes(orjson.dumps(CAPTIONS).replace(b"street", b"caf\xe9"))),
        captions_case("latin1-captions-tsv", "captions.tsv",
                      lambda p: p.write_bytes(b"VID-01\tpeople at a caf\xe9\nVID-02\tcars\n")),
        # no permission to read
        file_case("unreadable-cocovid", "ann.json", unreadable, skip_as_root=True),
    ]
    return cases


def all_cases() -> list[Case]:
    cases = (usage_cases() + cocovid_cases() + mot_cases() + ytvis_cases() + caption_cases() + prompt_cases()
             + synth_cases() + model_cases() + merge_cases() + special_cases())
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    return cases
