"""Whatever tdgen writes with exit 0, tdgen reads back.

Hypothesis builds small valid MOT Challenge directories and YouTube-VIS files (edge cases
included: no seqinfo.ini, a single frame, frame gaps, trailing empty frames, ignore rows, many
classes, every column layout, ids up to 2**53 - 1). ``tdgen convert`` of each either refuses it
with exit 2 and one ``error:`` line, or exits 0, and then ``tdgen inspect`` of the output exits 0
and counts the same boxes.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tdgen.cli import app

RUNNER = CliRunner()
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG_ID = 2**53 - 1


def invoke(*args: str):
    return RUNNER.invoke(app, list(args))


def assert_clean_refusal(res) -> None:
    """Exit 2 and exactly one line on stderr, an ``error:`` line."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr


def convert_and_reread(src: Path, out: Path, *extra: str, must_succeed: bool) -> None:
    """``convert src -o out``: a clean refusal (unless ``must_succeed``), or an output that
    ``inspect`` reads back with the same number of boxes."""
    res = invoke("convert", str(src), "-o", str(out), "--json", *extra)
    assert "Traceback" not in res.output and "RuntimeWarning" not in res.output, res.output
    if res.exit_code != 0:
        assert not must_succeed, res.output
        assert_clean_refusal(res)
        assert not out.exists(), "a refused conversion left an output behind"
        return
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    back = invoke("inspect", str(out), "--json")
    assert back.exit_code == 0, f"tdgen wrote {out} with exit 0 but cannot read it back: {back.output}"
    stats = json.loads(back.stdout)
    assert (stats["videos"], stats["frames"], stats["boxes"]) == (
        summary["videos"], summary["frames"], summary["boxes"])


# --------------------------------------------------------------------------- MOT directories
@dataclass
class SeqSpec:
    name: str
    ini: str | None  # seqinfo.ini text, None for none
    gt: str | None  # gt.txt text, None for none
    image: tuple[str, int, int] | None  # (file name in img1/, width, height) of a frame image

    @property
    def knows_size(self) -> bool:
        return self.ini is not None or self.image is not None


@dataclass
class MotSpec:
    seqs: list[SeqSpec] = field(default_factory=list)
    pass_sequence: bool = False  # give the sequence folder itself rather than the split


def number(draw, lo: float, hi: float) -> str:
    """A number as MOT files write them: an int, a short decimal or a full repr."""
    x = draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    style = draw(st.sampled_from(["int", "short", "repr"]))
    if style == "int" and round(x) > lo:
        return str(int(round(x)))
    return f"{x:.2f}" if style == "short" and float(f"{x:.2f}") > lo else repr(x)


@st.composite
def mot_sequence(draw, name: str) -> SeqSpec:
    n = draw(st.integers(1, 8))  # frames the boxes may use; 1 is the single-frame case
    ncols = draw(st.sampled_from([6, 7, 8, 9, 10]))
    ids = draw(st.lists(st.one_of(st.integers(-3, 20), st.just(BIG_ID), st.integers(21, BIG_ID)),
                        max_size=5, unique=True))
    classes = st.sampled_from([-1, 0, 1, 2, 3, 7, 8, 12, 13, 14, 99, 2**31 - 1])  # many, ignore ones too
    sep = draw(st.sampled_from([",", ", "]))
    rows = []
    for tid in ids:
        for f in draw(st.lists(st.integers(1, n), min_size=1, max_size=n, unique=True)):  # gaps
            row = [str(f), str(tid), number(draw, -50, 500), number(draw, -50, 500),
                   number(draw, 0.01, 300), number(draw, 0.01, 300)]
            if ncols >= 7:
                row.append(draw(st.sampled_from(["1", "0", "0.5", "-1"])))  # conf 0: an ignore row
            if ncols in (8, 9):
                row.append(str(draw(classes)))
            if ncols == 9:
                row.append(draw(st.sampled_from(["1", "0", "0.25", "-1"])))
            if ncols == 10:
                row += ["-1", "-1", "-1"]
            rows.append(row)
    rows = draw(st.permutations(rows))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    tail = draw(st.sampled_from(["", ","]))
    gt_text = eol.join(sep.join(r) + tail for r in rows) + draw(st.sampled_from(["", eol]))
    has_gt = draw(st.booleans()) if rows else draw(st.sampled_from([True, False, False]))
    last = max((int(r[0]) for r in rows), default=0)

    ini = None
    image = None
    if draw(st.integers(0, 3)):  # mostly with a seqinfo.ini
        length = max(last, 1 if not rows else last) + draw(st.integers(0, 3))  # trailing empty frames
        keys = [f"name={draw(st.sampled_from([name, 'other']))}",
                f"seqLength={length}", f"imWidth={draw(st.integers(1, 4000))}",
                f"imHeight={draw(st.integers(1, 4000))}"]
        if draw(st.booleans()):
            keys.append(f"frameRate={draw(st.sampled_from(['30', '25', '29.97', '1', '120']))}")
        if draw(st.booleans()):
            keys += ["imDir=img1", f"imExt={draw(st.sampled_from(['.jpg', '.png', 'jpg']))}"]
        ini = "[Sequence]\n" + "\n".join(draw(st.permutations(keys))) + "\n"
    else:
        has_gt = True  # a folder with neither is not a sequence
        if draw(st.integers(0, 2)):
            image = (draw(st.sampled_from(["000001.jpg", "00000001.png", "000003.png"])),
                     draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    return SeqSpec(name, ini, gt_text if has_gt else None, image)


@st.composite
def mot_dirs(draw) -> MotSpec:
    count = draw(st.integers(1, 3))
    seqs = [draw(mot_sequence(f"seq{i}")) for i in range(count)]
    return MotSpec(seqs, pass_sequence=count == 1 and draw(st.booleans()))


def write_mot_dir(spec: MotSpec, root: Path) -> Path:
    from PIL import Image

    split = root / "split"
    for s in spec.seqs:
        seq = split / s.name
        seq.mkdir(parents=True)
        if s.ini is not None:
            (seq / "seqinfo.ini").write_text(s.ini, newline="")
        if s.gt is not None:
            (seq / "gt").mkdir()
            (seq / "gt" / "gt.txt").write_text(s.gt, newline="")
        if s.image is not None:
            (seq / "img1").mkdir()
            file, w, h = s.image
            Image.new("RGB", (w, h)).save(seq / "img1" / file)
    return split / spec.seqs[0].name if spec.pass_sequence else split


@SETTINGS
@given(mot_dirs())
def test_mot_converts_to_what_tdgen_reads(spec: MotSpec) -> None:
    with tempfile.TemporaryDirectory() as d:
        src = write_mot_dir(spec, Path(d))
        readable = all(s.knows_size for s in spec.seqs)
        convert_and_reread(src, Path(d) / "out.json", must_succeed=readable)
        convert_and_reread(src, Path(d) / "out_mot", "--to", "mot", must_succeed=readable)
        if not readable:  # the one valid layout tdgen refuses: no image size anywhere
            res = invoke("inspect", str(src))
            assert_clean_refusal(res)
            assert "the image size is unknown" in res.stderr


# --------------------------------------------------------------------------- YouTube-VIS files
@st.composite
def ytvis_docs(draw) -> dict:
    nv = draw(st.integers(1, 3))
    vid_ids = draw(st.lists(st.one_of(st.integers(1, 50), st.just(BIG_ID)), min_size=nv, max_size=nv, unique=True))
    cat_ids = draw(st.lists(st.one_of(st.integers(0, 40), st.just(BIG_ID)), min_size=1, max_size=6, unique=True))
    categories = [{"id": c, "name": f"c{c}", "supercategory": "object"} for c in cat_ids]
    videos = []
    for k, vid in enumerate(vid_ids):
        n = draw(st.integers(0, 5))  # 0: a video without frames
        folder = draw(st.sampled_from([f"v{k}", "same"]))  # "same": two videos, one folder name
        v = {"id": vid, "width": draw(st.integers(1, 2000)), "height": draw(st.integers(1, 2000)),
             "file_names": [f"{folder}/{i:05d}.jpg" for i in range(n)]}
        if draw(st.booleans()):
            v["length"] = n
        videos.append(v)
    annotations = []
    ann_ids = st.one_of(st.integers(-2, 30), st.just(BIG_ID))  # 0, negatives, repeats: renumbered
    coord = st.floats(-100, 3000, allow_nan=False, allow_infinity=False)
    size = st.floats(0.001, 1000, allow_nan=False, allow_infinity=False)
    for v in videos:
        n = len(v["file_names"])
        for _ in range(draw(st.integers(0, 3))):
            bboxes = [draw(st.one_of(st.none(), st.tuples(coord, coord, size, size).map(list))) for _ in range(n)]
            a = {"id": draw(ann_ids), "video_id": v["id"], "category_id": draw(st.sampled_from(cat_ids)),
                 "iscrowd": draw(st.sampled_from([0, 1])), "bboxes": bboxes}
            if draw(st.booleans()):
                a["areas"] = [None if b is None or draw(st.booleans()) else b[2] * b[3] for b in bboxes]
            if draw(st.booleans()):
                a["segmentations"] = [None if b is None else [[b[0], b[1], b[0] + b[2], b[1], b[0], b[1] + b[3]]]
                                      for b in bboxes]
            annotations.append(a)
    doc = {"videos": videos, "categories": categories}
    if annotations or draw(st.booleans()):
        doc["annotations"] = annotations  # absent: a valid/test split
    if draw(st.booleans()):
        doc["info"] = {"description": "generated"}
    return doc


@SETTINGS
@given(ytvis_docs())
def test_ytvis_converts_to_what_tdgen_reads(doc: dict) -> None:
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "ytvis.json"
        src.write_bytes(orjson.dumps(doc))
        convert_and_reread(src, Path(d) / "out.json", must_succeed=True)
        # MOT folder names come from the frames' folders: two videos may collide (a clean refusal)
        convert_and_reread(src, Path(d) / "out_mot", "--to", "mot", must_succeed=False)
