"""MOT Challenge reader, writer and half split (tdgen.tracks.mot)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdgen.errors import AnnotationError, OutputError, UsageError
from tdgen.tracks.mot import MOT_CATEGORIES, half_split, looks_like_mot, read_mot, write_mot
from tdgen.tracks.trackset import TrackSet

DATA = Path(__file__).resolve().parents[1] / "data"
SPORTS = DATA / "realdata" / "sportsmot"
SPORTS_SEQS = sorted(p for p in SPORTS.iterdir() if p.is_dir())
MOT17 = DATA / "mot" / "MOT17-mini" / "train"
MOT15 = DATA / "mot" / "MOT15-mini" / "train"

SEQINFO = "[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={n}\nimWidth=1920\nimHeight=1080\nimExt=.jpg\n"


# --------------------------------------------------------------------------- helpers
def plain_parse(gt_file: Path) -> list[list[float]]:
    """Rows of a gt.txt parsed with plain Python, independent of the reader."""
    rows = []
    for line in gt_file.read_text().splitlines():
        if line.strip():
            rows.append([float(x) for x in line.replace(",", " ").split()])
    return rows


def seq_length(seq: Path) -> int:
    for line in (seq / "seqinfo.ini").read_text().splitlines():
        if line.lower().startswith("seqlength="):
            return int(line.split("=", 1)[1])
    raise AssertionError("no seqLength")


def make_seq(root: Path, name: str, gt: str | None, n: int | None = None, ini: str | None = None) -> Path:
    seq = root / name
    seq.mkdir(parents=True)
    if ini is not None:
        (seq / "seqinfo.ini").write_text(ini)
    elif n is not None:
        (seq / "seqinfo.ini").write_text(SEQINFO.format(name=name, n=n))
    if gt is not None:
        (seq / "gt").mkdir()
        (seq / "gt" / "gt.txt").write_text(gt)
    return seq


def canonical(ts: TrackSet) -> dict[str, np.ndarray]:
    """Box columns in (frame, track) order, so that source order inside a frame does not matter."""
    b = ts.boxes
    order = np.lexsort((b.track, b.frame))
    return {
        "frame": b.frame[order],
        "number": ts.frames.number[b.frame[order]],
        "bbox": b.bbox[order],
        "track": b.track[order],
        "source_track": b.source_track[order],
        "category": b.category[order],
        "conf": b.conf[order],
        "visibility": b.visibility[order],
    }


def assert_same_boxes(a: TrackSet, b: TrackSet) -> None:
    ca, cb = canonical(a), canonical(b)
    for key in ca:
        assert ca[key].dtype == cb[key].dtype, key
        assert np.array_equal(ca[key], cb[key]), key
    assert a.videos.equals(b.videos)
    assert a.frames.equals(b.frames)
    assert a.categories == b.categories


# --------------------------------------------------------------------------- SportsMOT (real files)
@pytest.mark.parametrize("seq", SPORTS_SEQS, ids=lambda p: p.name)
def test_sportsmot_sequence_counts(seq: Path) -> None:
    rows = plain_parse(seq / "gt" / "gt.txt")
    n = seq_length(seq)
    ts = read_mot(seq)
    ts.check()
    assert ts.source_format == "mot"
    assert ts.num_videos == 1 and ts.videos.name.tolist() == [seq.name]
    assert ts.num_frames == n
    assert ts.num_boxes == len(rows)
    assert ts.num_tracks == len({r[1] for r in rows})
    assert ts.warnings == []
    assert ts.videos.width.tolist() == [1280] and ts.videos.height.tolist() == [720]
    assert ts.videos.fps.tolist() == [25.0]
    assert ts.frames.file_name[0] == f"{seq.name}/img1/000001.jpg"
    assert ts.frames.file_name[-1] == f"{seq.name}/img1/{n:06d}.jpg"
    assert ts.frames.number.tolist() == [float(k) for k in range(1, n + 1)]
    # every row, exactly: (frame, id) -> box
    got = {
        (int(ts.frames.number[f]), float(s)): tuple(bb)
        for f, s, bb in zip(ts.boxes.frame.tolist(), ts.boxes.source_track.tolist(), ts.boxes.bbox.tolist())
    }
    assert got == {(int(r[0]), r[1]): tuple(r[2:6]) for r in rows}
    # ids start at 0 in SportsMOT; track ids are 1..T in order of the source id
    assert ts.boxes.source_track.min() == 0
    assert sorted(set(ts.boxes.track.tolist())) == list(range(1, ts.num_tracks + 1))
    first = ts.boxes.source_track[ts.boxes.track == 1]
    assert np.all(first == 0)
    assert np.array_equal(ts.boxes.id, np.arange(1, len(rows) + 1))
    assert ts.boxes.area is None and ts.boxes.extra is None
    assert np.all(ts.boxes.iscrowd == 0)


def test_sportsmot_split_dir() -> None:
    ts = read_mot(SPORTS)
    ts.check()
    assert ts.videos.name.tolist() == [p.name for p in SPORTS_SEQS]
    assert ts.videos.id.tolist() == [1, 2, 3]
    assert ts.num_frames == sum(seq_length(s) for s in SPORTS_SEQS)
    all_rows = [plain_parse(s / "gt" / "gt.txt") for s in SPORTS_SEQS]
    assert ts.num_boxes == sum(len(r) for r in all_rows)
    assert ts.num_tracks == sum(len({r[1] for r in rows}) for rows in all_rows)
    assert sorted(set(ts.boxes.track.tolist())) == list(range(1, ts.num_tracks + 1))
    assert np.array_equal(ts.frames.id, np.arange(1, ts.num_frames + 1))
    assert ts.categories == MOT_CATEGORIES and len(ts.categories) == 13
    assert ts.meta == {}
    assert looks_like_mot(SPORTS) and looks_like_mot(SPORTS_SEQS[0])


def test_sportsmot_frame_gaps_preserved() -> None:
    seq = SPORTS_SEQS[0]
    rows = plain_parse(seq / "gt" / "gt.txt")
    frames_of: dict[float, list[int]] = {}
    for r in rows:
        frames_of.setdefault(r[1], []).append(int(r[0]))
    gapped = [i for i, fr in frames_of.items() if max(fr) - min(fr) + 1 != len(fr)]
    assert gapped, "fixture should contain tracks with frame gaps"
    ts = read_mot(seq)
    for i in gapped:
        mask = ts.boxes.source_track == i
        got = sorted(int(x) for x in ts.frames.number[ts.boxes.frame[mask]])
        assert got == sorted(frames_of[i])


def test_sportsmot_round_trip(tmp_path: Path) -> None:
    ts = read_mot(SPORTS)
    out = write_mot(ts, tmp_path / "out")
    assert [p.name for p in out] == [p.name for p in SPORTS_SEQS]
    back = read_mot(tmp_path / "out")
    assert_same_boxes(ts, back)
    assert back.equals(ts)  # SportsMOT is sorted by frame then id, so even the order survives
    # the files say the same thing as the originals, in canonical (id, frame) order
    for seq in SPORTS_SEQS:
        orig = sorted(plain_parse(seq / "gt" / "gt.txt"), key=lambda r: (r[1], r[0]))
        assert plain_parse(tmp_path / "out" / seq.name / "gt" / "gt.txt") == orig


# --------------------------------------------------------------------------- MOT17 / MOT15 fixtures
def test_mot17_fixture_values() -> None:
    ts = read_mot(MOT17)
    ts.check()
    assert ts.videos.name.tolist() == ["MOT17-02-FRCNN", "MOT17-09-FRCNN"]
    assert ts.frames_per_video().tolist() == [8, 7]
    rows02 = plain_parse(MOT17 / "MOT17-02-FRCNN" / "gt" / "gt.txt")
    rows09 = plain_parse(MOT17 / "MOT17-09-FRCNN" / "gt" / "gt.txt")
    assert ts.num_boxes == len(rows02) + len(rows09)
    assert set(ts.boxes.category.tolist()) == set(range(1, 14))
    assert (ts.boxes.conf == 0).sum() == sum(r[6] == 0 for r in rows02 + rows09)
    # tracks: 1..16 for the first video (ids 1..16), then 17.. for the second (ids 1, 2, 5)
    v = ts.box_video()
    assert sorted(set(ts.boxes.track[v == 0].tolist())) == list(range(1, 17))
    second = {int(s): int(t) for s, t in zip(ts.boxes.source_track[v == 1], ts.boxes.track[v == 1])}
    assert second == {1: 17, 2: 18, 5: 19}
    # boxes grouped by frame, source order kept inside a frame
    assert np.all(np.diff(ts.boxes.frame) >= 0)
    f0 = ts.boxes.source_track[ts.boxes.frame == 0].tolist()
    assert f0 == [r[1] for r in rows02 if r[0] == 1]
    # exact values incl. negative x and float visibilities
    key = {(int(ts.frames.number[f]), int(s)): (bb, c, k, vi) for f, s, bb, c, k, vi in zip(
        ts.boxes.frame[v == 0].tolist(), ts.boxes.source_track[v == 0].tolist(), ts.boxes.bbox[v == 0].tolist(),
        ts.boxes.conf[v == 0].tolist(), ts.boxes.category[v == 0].tolist(), ts.boxes.visibility[v == 0].tolist())}
    for r in rows02:
        assert key[(int(r[0]), int(r[1]))] == (r[2:6], r[6], int(r[7]), r[8])


def test_mot17_round_trip_and_file_shape(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    write_mot(ts, tmp_path)
    back = read_mot(tmp_path)
    assert_same_boxes(ts, back)
    ini = (tmp_path / "MOT17-09-FRCNN" / "seqinfo.ini").read_text()
    assert ini.splitlines() == [
        "[Sequence]", "name=MOT17-09-FRCNN", "imDir=img1", "frameRate=30", "seqLength=7",
        "imWidth=1920", "imHeight=1080", "imExt=.jpg",
    ]
    lines = (tmp_path / "MOT17-02-FRCNN" / "gt" / "gt.txt").read_text().splitlines()
    assert lines[0] == "1,1,912,484,97,109,0,7,1"
    assert "3,2,1346,417,170,380,1,1,0.97368" in lines
    assert "7,16,400.5,300.25,50.125,120.75,1,1,0.61234" in lines
    keys = [(int(ln.split(",")[1]), int(ln.split(",")[0])) for ln in lines]
    assert keys == sorted(keys)  # sorted by (id, frame)
    assert all(ln and ln.count(",") == 8 for ln in lines)


def test_mot15_fixtures(tmp_path: Path) -> None:
    ts = read_mot(MOT15)
    ts.check()
    assert ts.videos.name.tolist() == ["ADL-Rundle-6", "TUD-Campus"]
    adl = plain_parse(MOT15 / "ADL-Rundle-6" / "gt" / "gt.txt")
    tud = plain_parse(MOT15 / "TUD-Campus" / "gt" / "gt.txt")
    assert len(adl[0]) == 10 and len(tud[0]) == 6
    assert ts.num_boxes == len(adl) + len(tud)
    assert np.all(ts.boxes.category == 1)
    assert np.all(ts.boxes.visibility == 1.0)
    v = ts.box_video()
    assert ts.boxes.conf[v == 0].tolist() == [r[6] for r in sorted(adl, key=lambda r: r[0])]
    assert np.all(ts.boxes.conf[v == 1] == 1.0)
    assert ts.boxes.bbox[v == 0][0].tolist() == [1691.97, 381.048, 152.23, 352.617]
    write_mot(ts, tmp_path)
    assert_same_boxes(ts, read_mot(tmp_path))


def test_separators_crlf_trailing_comma_no_newline(tmp_path: Path) -> None:
    texts = {
        "comma": "1,1,10,20,30,40,1,1,0.5\n2,1,11,20,30,40,1,1,0.25",
        "comma_space": "1, 1, 10, 20, 30, 40, 1, 1, 0.5\n2, 1, 11, 20, 30, 40, 1, 1, 0.25\n\n\n",
        "spaces": "1 1 10 20 30 40 1 1 0.5\n   \n2\t1  11 20 30 40 1 1 0.25\n",
        "crlf": "1,1,10,20,30,40,1,1,0.5\r\n2,1,11,20,30,40,1,1,0.25\r\n",
        "trailing_comma": "1,1,10,20,30,40,1,1,0.5,\n2,1,11,20,30,40,1,1,0.25,\n",
        "by_track": "2,1,11,20,30,40,1,1,0.25\n1,1,10,20,30,40,1,1,0.5\n",
    }
    results = []
    for name, text in texts.items():
        ts = read_mot(make_seq(tmp_path, name, text, n=3))
        results.append((ts.boxes.frame.tolist(), ts.boxes.bbox.tolist(), ts.boxes.visibility.tolist()))
    assert all(r == results[0] for r in results)
    assert results[0] == ([0, 1], [[10, 20, 30, 40], [11, 20, 30, 40]], [0.5, 0.25])


def test_column_variants(tmp_path: Path) -> None:
    cases = {
        "c6": ("1,3,1,2,3,4", (1.0, 1, 1.0)),
        "c7": ("1,3,1,2,3,4,0", (0.0, 1, 1.0)),
        "c8": ("1,3,1,2,3,4,0,7", (0.0, 7, 1.0)),
        "c9": ("1,3,1,2,3,4,1,2,0.5", (1.0, 2, 0.5)),
        "c9_minus1": ("1,3,1,2,3,4,1,-1,-1", (1.0, 1, 1.0)),
        "c10": ("1,3,1,2,3,4,0.75,-1,-1,-1", (0.75, 1, 1.0)),
    }
    for name, (text, (conf, cls, vis)) in cases.items():
        ts = read_mot(make_seq(tmp_path, name, text, n=1))
        assert (ts.boxes.conf[0], ts.boxes.category[0], ts.boxes.visibility[0]) == (conf, cls, vis), name
        assert ts.boxes.bbox[0].tolist() == [1, 2, 3, 4]


def test_image_digits_from_img_dir(tmp_path: Path) -> None:
    seq = make_seq(tmp_path, "dancetrack0001", "1,1,1,2,3,4,1,1,1\n", n=3)
    (seq / "img1").mkdir()
    for k in range(1, 4):
        (seq / "img1" / f"{k:08d}.jpg").write_bytes(b"")
    ts = read_mot(seq)
    assert ts.frames.file_name.tolist() == [f"dancetrack0001/img1/{k:08d}.jpg" for k in range(1, 4)]
    # written back with the same 8 digits
    out = tmp_path / "out"
    write_mot(ts, out, images_from=tmp_path, image_mode="copy")
    assert sorted(os.listdir(out / "dancetrack0001" / "img1")) == [f"{k:08d}.jpg" for k in range(1, 4)]
    assert read_mot(out).frames.file_name.tolist() == ts.frames.file_name.tolist()


def write_png(path: Path, width: int, height: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(path)


def test_missing_seqinfo_and_missing_gt(tmp_path: Path) -> None:
    split = tmp_path / "split"
    a = make_seq(split, "a_noini", "1,1,1,2,3,4,1,1,1\n5,1,1,2,3,4,1,1,1\n")
    write_png(a / "img1" / "00000002.png", 40, 30)  # the lowest number wins
    write_png(a / "img1" / "00000010.png", 99, 99)
    (a / "img1" / "readme.txt").write_text("not a frame")
    make_seq(split, "b_test", None, n=4)
    (split / "seqmaps").mkdir()  # not a sequence: ignored
    ts = read_mot(split)
    ts.check()
    assert ts.videos.name.tolist() == ["a_noini", "b_test"]
    assert ts.frames_per_video().tolist() == [5, 4]
    assert ts.videos.width.tolist() == [40, 1920] and ts.videos.height.tolist() == [30, 1080]
    assert ts.frames.file_name[0] == "a_noini/img1/00000001.png"  # digits and extension from the images
    assert ts.num_boxes == 2
    assert np.all(ts.box_video() == 0)
    assert len(ts.warnings) == 2
    assert "no seqinfo.ini" in ts.warnings[0] and "a_noini" in ts.warnings[0] and "40x30" in ts.warnings[0]
    assert "no gt/gt.txt" in ts.warnings[1] and "4 frames" in ts.warnings[1]


def test_missing_seqinfo_without_images_is_refused(tmp_path: Path) -> None:
    seq = make_seq(tmp_path, "s", GOOD)
    with pytest.raises(AnnotationError) as ei:
        read_mot(seq)
    assert str(ei.value) == (f"{seq}: no seqinfo.ini and no images in img1/: the image size is unknown "
                             "(hint: add a seqinfo.ini with seqLength, imWidth and imHeight)")
    (seq / "img1").mkdir()
    (seq / "img1" / "000001.jpg").write_bytes(b"not an image")
    with pytest.raises(AnnotationError, match=r"img1/000001\.jpg: cannot read the image size"):
        read_mot(seq)


def test_path_to_files_and_seqinfo_quirks(tmp_path: Path) -> None:
    ini = "[Sequence]\nIMWIDTH = 640\nseqlength=2\nimHeight=480\nframeRate=29.97\nimExt=.png\nimDir=images\n"
    seq = make_seq(tmp_path, "s", "1,1,1,2,3,4,1,1,1\n", ini=ini)
    for p in (seq, seq / "seqinfo.ini", seq / "gt" / "gt.txt"):
        ts = read_mot(p)
        assert ts.videos.name.tolist() == ["s"]
        assert ts.videos.fps.tolist() == [29.97]
        assert (ts.videos.width[0], ts.videos.height[0]) == (640, 480)
        assert ts.frames.file_name.tolist() == ["s/images/000001.png", "s/images/000002.png"]
    write_mot(ts, tmp_path / "out")
    text = (tmp_path / "out" / "s" / "seqinfo.ini").read_text()
    assert "frameRate=30\n" in text and "imDir=images\n" in text and "imExt=.png\n" in text


def test_unknown_class_warns(tmp_path: Path) -> None:
    ts = read_mot(make_seq(tmp_path, "s", "1,1,1,2,3,4,1,14,1\n", n=1))
    assert ts.boxes.category.tolist() == [14]
    assert any("14" in w for w in ts.warnings)


def test_no_torch_import() -> None:
    code = "import sys, tdgen.tracks.mot, tdgen.tracks.ytvis; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# --------------------------------------------------------------------------- property test
@st.composite
def mot_sequences(draw):
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=6, unique=True))
    floats = st.floats(-500, 5000, allow_nan=False, allow_infinity=False)
    sizes = st.floats(0.001, 3000, allow_nan=False, allow_infinity=False)
    rows = []
    for i in ids:
        frames = draw(st.lists(st.integers(1, n), min_size=1, max_size=n, unique=True))
        for f in frames:
            rows.append([f, i, draw(floats), draw(floats), draw(sizes), draw(sizes),
                         draw(st.sampled_from([0, 1])), draw(st.integers(1, 13)),
                         draw(st.floats(0, 1, allow_nan=False))])
    rows = draw(st.permutations(rows))
    sep = draw(st.sampled_from([",", ", ", " "]))
    return n, rows, sep


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mot_sequences())
def test_property_round_trip(seq) -> None:
    n, rows, sep = seq
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        text = "\n".join(sep.join(repr(x) if isinstance(x, float) else str(x) for x in r) for r in rows)
        make_seq(root / "in", "seq", text, n=n)
        ts = read_mot(root / "in")
        ts.check()
        assert ts.num_boxes == len(rows) and ts.num_frames == n
        # the reader saw exactly the rows that were written
        got = sorted(
            (int(ts.frames.number[f]), int(s), *bb, c, k, v)
            for f, s, bb, c, k, v in zip(ts.boxes.frame.tolist(), ts.boxes.source_track.tolist(),
                                         ts.boxes.bbox.tolist(), ts.boxes.conf.tolist(),
                                         ts.boxes.category.tolist(), ts.boxes.visibility.tolist())
        )
        assert got == sorted(tuple(r) for r in rows)
        write_mot(ts, root / "out")
        back = read_mot(root / "out")
        assert_same_boxes(ts, back)


# --------------------------------------------------------------------------- half split
@pytest.mark.parametrize("n,train,val", [(600, 301, 299), (525, 263, 262), (1, 1, 0), (2, 2, 0), (3, 2, 1)])
def test_half_split_lengths(tmp_path: Path, n: int, train: int, val: int) -> None:
    gt = "".join(f"{f},{i},{f},{i},10,10,1,1,1\n" for f in range(1, n + 1) for i in (1, 2) if (f + i) % 3)
    ts = read_mot(make_seq(tmp_path, "s", gt, n=n))
    tr, va = half_split(ts, "half-train"), half_split(ts, "half-val")
    tr.check()
    va.check()
    assert tr.num_frames == train and va.num_frames == val
    assert tr.frames.number.tolist() == [float(k) for k in range(1, train + 1)]
    assert va.frames.number.tolist() == [float(k) for k in range(train + 1, n + 1)]
    assert tr.frames.index.tolist() == list(range(train)) and va.frames.index.tolist() == list(range(val))
    assert va.num_videos == (1 if val else 0)
    # boxes kept are exactly those in the kept frames
    num = ts.frames.number[ts.boxes.frame]
    for part, sel in ((tr, num <= train), (va, num > train)):
        assert part.num_boxes == int(sel.sum())
        assert np.array_equal(part.boxes.bbox, ts.boxes.bbox[sel])
        assert np.array_equal(part.frames.number[part.boxes.frame], num[sel])
        assert np.array_equal(part.boxes.track, ts.boxes.track[sel])
    assert tr.num_boxes + va.num_boxes == ts.num_boxes


def test_half_split_multi_video_and_write(tmp_path: Path) -> None:
    ts = read_mot(SPORTS)  # 825, 403, 550 frames
    tr, va = half_split(ts, "half-train"), half_split(ts, "half-val")
    assert tr.frames_per_video().tolist() == [413, 202, 276]
    assert va.frames_per_video().tolist() == [412, 201, 274]
    assert tr.num_boxes + va.num_boxes == ts.num_boxes
    # half-train keeps frame numbers 1..k, so the files keep them; half-val is renumbered from 1
    write_mot(va, tmp_path)
    back = read_mot(tmp_path)
    assert back.frames_per_video().tolist() == [412, 201, 274]
    assert back.num_boxes == va.num_boxes
    assert np.array_equal(back.boxes.bbox[np.lexsort((back.boxes.track, back.boxes.frame))],
                          va.boxes.bbox[np.lexsort((va.boxes.track, va.boxes.frame))])
    with pytest.raises(UsageError):
        half_split(ts, "train")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- read errors
GOOD = "1,1,1,2,3,4,1,1,1\n"

GT_ERRORS = [
    ("few_columns", GOOD + "2,1,1,2,3\n", "line 2: 5 columns, expected 6 to 10"),
    ("many_columns", "1,1,1,2,3,4,1,1,1,1,1\n", "line 1: 11 columns, expected 6 to 10"),
    ("ragged", GOOD + "2,1,1,2,3,4,1,1\n", "line 2: 8 columns, but line 1 has 9"),
    ("non_numeric", GOOD + "\n2,1,1,abc,3,4,1,1,1\n", "line 3: column 4 (bb_top): 'abc' is not a number"),
    ("empty_field", GOOD + "2,1,,2,3,4,1,1,1\n", "line 2: column 3 is empty"),
    ("nan_width", GOOD + "2,1,1,2,nan,4,1,1,1\n", "line 2: column 5 (bb_width): nan is not a finite number"),
    ("zero_height", GOOD + "2,1,1,2,3,0,1,1,1\n", "line 2: box width/height 3, 0 must be positive"),
    ("neg_width", "1,1,1,2,-3,4,1,1,1\n", "line 1: box width/height -3, 4 must be positive"),
    ("frame_high", GOOD + "9,1,1,2,3,4,1,1,1\n", "line 2: frame 9 out of range 1..5"),
    ("frame_zero", "0,1,1,2,3,4,1,1,1\n", "line 1: frame 0 out of range 1..5"),
    ("frame_float", "1.5,1,1,2,3,4,1,1,1\n", "line 1: frame 1.5 is not an integer"),
    ("class_float", "1,1,1,2,3,4,1,1.5,1\n", "line 1: class 1.5 is not an integer"),
    ("duplicate", GOOD + "2,1,1,2,3,4,1,1,1\n2,2,1,2,3,4,1,1,1\n1,1,5,6,7,8,1,1,1\n",
     "line 4: frame 1, id 1 repeats line 1"),
    # integer columns are integers, read exactly, within bounds
    ("frame_huge", GOOD + "1e30,1,1,2,3,4,1,1,1\n", "line 2: frame 1e30 out of range 1..5"),
    ("frame_long_fraction", "1.0000000000000001,1,1,2,3,4,1,1,1\n",
     "line 1: frame 1.0000000000000001 is not an integer"),
    ("id_float", GOOD + "2,1.5,1,2,3,4,1,1,1\n", "line 2: id 1.5 is not an integer"),
    ("id_long_fraction", "1,5.0000000000000001,1,2,3,4,1,1,1\n", "line 1: id 5.0000000000000001 is not an integer"),
    ("id_2_53", f"1,{2**53},1,2,3,4,1,1,1\n", f"line 1: id {2**53} is out of range (ids must be below 2**53"),
    ("id_2_53_plus_1", GOOD + f"1,{2**53 + 1},1,2,3,4,1,1,1\n", f"line 2: id {2**53 + 1} is out of range"),
    ("id_2_70", f"1,{2**70},1,2,3,4,1,1,1\n", f"line 1: id {2**70} is out of range"),
    ("id_neg_huge", "1,-1e300,1,2,3,4,1,1,1\n", "line 1: id -1e300 is out of range"),
    ("class_1e30", GOOD + "2,1,1,2,3,4,1,1e30,1\n",
     "line 2: class 1e30 is out of range (expected -1 or 0..2147483647)"),
    ("class_2_31", f"1,1,1,2,3,4,1,{2**31},1\n", f"line 1: class {2**31} is out of range"),
    ("class_minus_2", "1,1,1,2,3,4,1,-2,1\n", "line 1: class -2 is out of range"),
    ("class_long_fraction", "1,1,1,2,3,4,1,3.0000000000000001,1\n",
     "line 1: class 3.0000000000000001 is not an integer"),
    # numbers are plain ASCII numbers, boxes bounded
    ("underscore", "1,1,1_0,2,3,4,1,1,1\n", "line 1: column 3 (bb_left): '1_0' is not a number"),
    ("arabic_digit", "1,1,\u0663,2,3,4,1,1,1\n", "line 1: column 3 (bb_left): '\u0663' is not a number"),
    ("nbsp", "1,1,1\u00a02,3,4,1,1,1\n", "line 1: column 3 (bb_left): '1\\xa02' is not a number"),
    ("form_feed_line", GOOD + "\x0c\n", "line 2: 1 columns, expected 6 to 10"),
    ("inf_conf", "1,1,1,2,3,4,inf,1,1\n", "line 1: column 7 (conf): inf is not a finite number"),
    ("box_huge", "1,1,1e300,2,3,4,1,1,1\n", "line 1: column 3 (bb_left): 1e300 is out of range (box values must be"),
    ("width_huge", GOOD + "2,1,1,2,1e16,4,1,1,1\n", "line 2: column 5 (bb_width): 1e16 is out of range"),
]


@pytest.mark.filterwarnings("error")  # no numpy overflow / cast warnings on the way
@pytest.mark.parametrize("name,gt,msg", GT_ERRORS, ids=[c[0] for c in GT_ERRORS])
def test_gt_errors(tmp_path: Path, name: str, gt: str, msg: str) -> None:
    seq = make_seq(tmp_path, name, gt, n=5)
    with pytest.raises(AnnotationError) as ei:
        read_mot(seq)
    assert str(ei.value).startswith(f"{seq / 'gt' / 'gt.txt'}: {msg}")
    assert ei.value.file == str(seq / "gt" / "gt.txt")


def test_frame_out_of_range_message(tmp_path: Path) -> None:
    gt = "".join(f"{f},1,1,2,3,4,1,1,1\n" for f in range(1, 17)) + "900,1,1,2,3,4,1,1,1\n"
    seq = make_seq(tmp_path, "s", gt, n=825)
    with pytest.raises(AnnotationError, match=r"gt\.txt: line 17: frame 900 out of range 1\.\.825$"):
        read_mot(seq)


INI_ERRORS = [
    ("no_section", "name=x\nseqLength=5\n", "line 1: no [Sequence] section header"),
    ("wrong_section", "[Seq]\nseqLength=5\nimWidth=1\nimHeight=1\n", "no [Sequence] section"),
    ("bad_length", "[Sequence]\nname=s\nseqLength=12a\nimWidth=1\nimHeight=1\n",
     "line 3 (seqLength): seqLength '12a' is not an integer"),
    ("float_width", "[Sequence]\nseqLength=5\nimWidth=1920.0\nimHeight=1\n",
     "line 3 (imWidth): imWidth '1920.0' is not an integer"),
    ("missing_height", "[Sequence]\nseqLength=5\nimWidth=1\n", "[Sequence]: missing key imHeight"),
    ("bad_rate", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nframeRate=fast\n",
     "line 5 (frameRate): frameRate 'fast' is not a number"),
    ("dup_key", "[Sequence]\nseqLength=5\nseqLength=6\n", "line 3: key 'seqlength' given twice"),
    ("garbage", "[Sequence]\nseqLength=5\njust words\n", "line 3: not a key=value line"),
    ("huge_length", "[Sequence]\nseqLength=1000000000000\nimWidth=1\nimHeight=1\n",
     "line 2 (seqLength): seqLength 1000000000000 is larger than 1,000,000 (the most frames tdgen reads"),
    ("length_one_over", "[Sequence]\nseqLength=1000001\nimWidth=1\nimHeight=1\n",
     "line 2 (seqLength): seqLength 1000001 is larger than 1,000,000"),
    ("length_5000_digits", "[Sequence]\nseqLength=" + "9" * 5000 + "\nimWidth=1\nimHeight=1\n",
     "line 2 (seqLength): seqLength '9999999999999999999999999999999999999'... is larger than 1,000,000"),
    ("negative_length", "[Sequence]\nseqLength=-1\nimWidth=1\nimHeight=1\n",
     "line 2 (seqLength): seqLength -1 is negative"),
    ("arabic_length", "[Sequence]\nseqLength=\u0663\nimWidth=1\nimHeight=1\n",
     "line 2 (seqLength): seqLength '\u0663' is not an integer"),
    ("zero_width", "[Sequence]\nseqLength=5\nimWidth=0\nimHeight=1\n",
     "line 3 (imWidth): imWidth 0 is not a positive integer"),
    ("negative_height", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=-4\n",
     "line 4 (imHeight): imHeight -4 is negative"),
    ("huge_width", "[Sequence]\nseqLength=5\nimWidth=10000000\nimHeight=1\n",
     "line 3 (imWidth): imWidth 10000000 is larger than 1,000,000"),
    ("nan_rate", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nframeRate=nan\n",
     "line 5 (frameRate): frameRate 'nan' is not a positive number"),
    ("zero_rate", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nframeRate=0\n",
     "line 5 (frameRate): frameRate '0' is not a positive number"),
    ("negative_rate", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nframeRate=-25\n",
     "line 5 (frameRate): frameRate '-25' is not a positive number"),
    ("huge_rate", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nframeRate=1e300\n",
     "line 5 (frameRate): frameRate '1e300' is larger than 1,000,000"),
    ("underscore_rate", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nframeRate=3_0\n",
     "line 5 (frameRate): frameRate '3_0' is not a number"),
    ("empty_rate", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nframeRate=\n",
     "line 5 (frameRate): frameRate '' is not a number"),
    ("dotdot_dir", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nimDir=../other\n",
     "line 5 (imDir): imDir '../other' leaves the sequence folder (..)"),
    ("absolute_dir", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nimDir=/etc\n",
     "line 5 (imDir): imDir '/etc' is an absolute path"),
    ("spaced_ext", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nimExt=.j pg\n",
     "line 5 (imExt): imExt '.j pg' is not a file extension like .jpg"),
    ("continued_ext", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\nimExt=.jpg\n  more\n",
     "line 5 (imExt): imExt '.jpg\\nmore' is not a file extension"),
    ("two_sections", "[Sequence]\nseqLength=5\nimWidth=1\nimHeight=1\n[sequence]\nseqLength=6\n",
     "two [Sequence] sections ([Sequence] and [sequence])"),
]


@pytest.mark.parametrize("name,ini,msg", INI_ERRORS, ids=[c[0] for c in INI_ERRORS])
def test_seqinfo_errors(tmp_path: Path, name: str, ini: str, msg: str) -> None:
    seq = make_seq(tmp_path, name, GOOD, ini=ini)
    with pytest.raises(AnnotationError) as ei:
        read_mot(seq)
    assert str(ei.value).startswith(f"{seq / 'seqinfo.ini'}: {msg}")


def test_exact_ids_up_to_2_53(tmp_path: Path) -> None:
    big = 2**53 - 1
    gt = (f"1,{big},1,2,3,4,1,1,1\n1,{big - 1},1,2,3,4,1,1,1\n"
          f"2,{big}.000000000000000,1,2,3,4,1,1,1\n2,-{big},1,2,3,4,1,1,1\n")
    ts = read_mot(make_seq(tmp_path / "in", "s", gt, n=2))
    assert sorted(ts.boxes.source_track.tolist()) == [-big, big - 1, big, big]
    assert ts.num_tracks == 3
    write_mot(ts, tmp_path / "out")
    assert f"1,{big},1,2,3,4," in (tmp_path / "out" / "s" / "gt" / "gt.txt").read_text()
    assert_same_boxes(ts, read_mot(tmp_path / "out"))


def test_frame_bound_without_seqinfo(tmp_path: Path) -> None:
    seq = make_seq(tmp_path, "s", "1000001,1,1,2,3,4,1,1,1\n")
    with pytest.raises(AnnotationError, match=r"gt\.txt: line 1: frame 1000001 is larger than 1,000,000 "):
        read_mot(seq)


def test_non_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    seq = make_seq(tmp_path, "s", None, n=5)
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_bytes(GOOD.encode() + b"2,1,\xff,2,3,4,1,1,1\n")
    with pytest.raises(AnnotationError) as ei:
        read_mot(seq)
    assert str(ei.value) == f"{seq / 'gt' / 'gt.txt'}: line 2: not UTF-8 text (byte 0xff at byte offset 22)"
    # a BOM is skipped, but the offset counts it
    (seq / "seqinfo.ini").write_bytes(b"\xef\xbb\xbf[Sequence]\nname=\xc3(\n")
    with pytest.raises(AnnotationError) as ei:
        read_mot(seq)
    assert str(ei.value) == f"{seq / 'seqinfo.ini'}: line 2: not UTF-8 text (byte 0xc3 at byte offset 19)"


def _not_a_file(tmp_path: Path, which: str, kind: str) -> Path:
    seq = make_seq(tmp_path, "s", None if which == "gt.txt" else GOOD, n=None if which == "seqinfo.ini" else 5)
    target = seq / "gt" / "gt.txt" if which == "gt.txt" else seq / "seqinfo.ini"
    target.parent.mkdir(exist_ok=True)
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        os.symlink("/dev/null", target)
    elif kind == "broken link":
        os.symlink(tmp_path / "nowhere", target)
    return target


@pytest.mark.timeout(20)  # a FIFO that is opened for reading blocks: the test would hang, not fail
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("which", ["gt.txt", "seqinfo.ini"])
@pytest.mark.parametrize("kind,what", [("directory", "is a directory, not a regular file"),
                                       ("fifo", "is a named pipe (FIFO), not a regular file"),
                                       ("device", "is a character device, not a regular file"),
                                       ("broken link", "is a broken symbolic link (to ")])
def test_not_a_regular_file_is_refused_at_once(tmp_path: Path, which: str, kind: str, what: str) -> None:
    target = _not_a_file(tmp_path, which, kind)
    for path in (tmp_path, target.parents[1] if which == "gt.txt" else target.parent):
        with pytest.raises(AnnotationError) as ei:
            read_mot(path)
        assert str(ei.value).startswith(f"{target}: {what}") and "\n" not in str(ei.value)
    assert looks_like_mot(tmp_path / "s")


def test_gt_that_is_a_file(tmp_path: Path) -> None:
    seq = make_seq(tmp_path, "s", None, n=5)
    (seq / "gt").write_text(GOOD)
    with pytest.raises(AnnotationError, match=r"/s/gt: is not a directory \(the boxes go in gt/gt\.txt\)$"):
        read_mot(seq)


def test_total_frames_bounded(tmp_path: Path, monkeypatch) -> None:
    import tdgen.tracks.mot_read as mot_read

    monkeypatch.setattr(mot_read, "MAX_TOTAL_FRAMES", 8)
    make_seq(tmp_path, "a", GOOD, n=5)
    make_seq(tmp_path, "b", GOOD, n=4)
    with pytest.raises(AnnotationError, match=r"the sequences up to 'b' hold 9 frames, more than the 8 tdgen"):
        read_mot(tmp_path)


def test_unknown_classes_get_categories(tmp_path: Path) -> None:
    ts = read_mot(make_seq(tmp_path, "s", "1,1,1,2,3,4,1,0,1\n1,2,1,2,3,4,1,99,1\n1,3,1,2,3,4,1,-1,1\n", n=1))
    assert sorted(ts.boxes.category.tolist()) == [0, 1, 99]
    assert {c["id"]: c["name"] for c in ts.categories if c["id"] in (0, 99)} == {0: "class_0", 99: "class_99"}
    assert len(ts.categories) == 15


def test_cli_refusals_are_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tdgen.cli import app

    big = make_seq(tmp_path, "big", GOOD, ini="[Sequence]\nseqLength=1000000000000\nimWidth=64\nimHeight=48\n")
    noini = make_seq(tmp_path, "noini", GOOD)
    cls = make_seq(tmp_path, "cls", "1,1,1,2,3,4,1,1e30,1\n", n=5)
    for seq, what in ((big, "seqinfo.ini: line 2 (seqLength): seqLength 1000000000000 is larger"),
                      (noini, "noini: no seqinfo.ini and no images in img1/"),
                      (cls, "gt.txt: line 1: class 1e30 is out of range")):
        for extra in ([], ["--to", "mot"]):
            out = tmp_path / f"{seq.name}{len(extra)}.json"
            res = CliRunner().invoke(app, ["convert", str(seq), "-o", str(out), *extra])
            assert res.exit_code == 2, res.output
            assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and what in res.stderr
            assert not out.exists()


def test_frame_rate_may_be_float(tmp_path: Path) -> None:
    ini = "[Sequence]\nseqLength=1\nimWidth=1\nimHeight=1\nframeRate=12.5\n"
    assert read_mot(make_seq(tmp_path, "s", GOOD, ini=ini)).videos.fps.tolist() == [12.5]


def test_empty_split_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "empty" / "not_a_seq").mkdir(parents=True)
    with pytest.raises(AnnotationError, match=r"empty: no MOT sequences found"):
        read_mot(tmp_path / "empty")
    with pytest.raises(AnnotationError, match=r"nope: no such file or directory"):
        read_mot(tmp_path / "nope")
    assert not looks_like_mot(tmp_path / "empty")


# --------------------------------------------------------------------------- write
def test_write_refuses_existing_unless_overwrite(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    out = tmp_path / "out"
    write_mot(ts, out)
    (out / "MOT17-09-FRCNN" / "stale.txt").write_text("x")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(OutputError, match="MOT17-02-FRCNN: already exists"):
        write_mot(ts, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    write_mot(ts, out, overwrite=True)
    assert not (out / "MOT17-09-FRCNN" / "stale.txt").exists()
    assert sorted(os.listdir(out)) == ["MOT17-02-FRCNN", "MOT17-09-FRCNN"]  # no temp dirs left
    assert_same_boxes(ts, read_mot(out))


def test_write_images_link_and_copy(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    images = tmp_path / "images"
    for f in ts.frames.file_name.tolist():
        (images / f).parent.mkdir(parents=True, exist_ok=True)
        (images / f).write_bytes(f.encode())
    write_mot(ts, tmp_path / "linked", images_from=images, image_mode="link")
    write_mot(ts, tmp_path / "copied", images_from=images, image_mode="copy")
    for mode in ("linked", "copied"):
        img_dir = tmp_path / mode / "MOT17-09-FRCNN" / "img1"
        assert sorted(os.listdir(img_dir)) == [f"{k:06d}.jpg" for k in range(1, 8)]
        assert (img_dir / "000003.jpg").read_bytes() == b"MOT17-09-FRCNN/img1/000003.jpg"
        assert (img_dir / "000003.jpg").is_symlink() == (mode == "linked")
    assert not os.path.isabs(os.readlink(tmp_path / "linked" / "MOT17-02-FRCNN" / "img1" / "000001.jpg"))
    with pytest.raises(UsageError):
        write_mot(ts, tmp_path / "x", image_mode="link")


def test_write_missing_image_leaves_nothing(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    images = tmp_path / "images"
    for f in ts.frames.file_name.tolist()[:-1]:  # last frame of the last video is missing
        (images / f).parent.mkdir(parents=True, exist_ok=True)
        (images / f).write_bytes(b"")
    out = tmp_path / "out"
    with pytest.raises(AnnotationError) as ei:
        write_mot(ts, out, images_from=images, image_mode="copy")
    assert str(ei.value).startswith(str(images.absolute() / "MOT17-09-FRCNN" / "img1" / "000007.jpg"))
    assert "source image not found" in str(ei.value)
    assert not out.exists()
    # into an existing folder: nothing added
    out.mkdir()
    with pytest.raises(AnnotationError):
        write_mot(ts, out, images_from=images, image_mode="link")
    assert os.listdir(out) == []


def test_write_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    ts = read_mot(MOT17)
    import tdgen.tracks.mot_write as mot_write

    calls = []
    real = mot_write.atomic_write_text

    def flaky(path, text):
        calls.append(path)
        if len(calls) == 3:  # first file of the second sequence
            raise OSError("disk full")
        real(path, text)

    monkeypatch.setattr(mot_write, "atomic_write_text", flaky)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        write_mot(ts, out)
    assert not out.exists()


def test_write_bad_boxes_and_names(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    ts.boxes.bbox = ts.boxes.bbox.copy()
    ts.boxes.bbox[3, 2] = 0.0
    with pytest.raises(AnnotationError,
                       match=r"video 'MOT17-02-FRCNN', frame \d+, track \d+: bbox .* cannot be written"):
        write_mot(ts, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    ts = read_mot(MOT17)
    ts.videos.name = np.array(["same", "same"], dtype=object)
    with pytest.raises(OutputError, match="both named 'same'"):
        write_mot(ts, tmp_path / "out")
    ts.videos.name = np.array(["../evil", "ok"], dtype=object)
    with pytest.raises(OutputError):
        write_mot(ts, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_write_falls_back_to_track_ids_and_index(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    ts.boxes.source_track = np.zeros(ts.num_boxes)  # not unique per frame
    ts.frames.number = ts.frames.number + 100  # outside 1..seqLength
    write_mot(ts, tmp_path)
    back = read_mot(tmp_path)
    assert np.array_equal(np.sort(back.boxes.source_track), np.sort(ts.boxes.track.astype(float)))
    assert back.frames.number.tolist() == (ts.frames.number - 100).tolist()
    assert back.num_boxes == ts.num_boxes


def test_write_defaults_without_mot_columns(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    ts.boxes.conf = None
    ts.boxes.visibility = None
    ts.boxes.source_track = None
    ts.frames.number = None
    ts.videos.fps = None
    ts.frames.file_name = np.array([f"x/{k}.png" for k in range(ts.num_frames)], dtype=object)
    write_mot(ts, tmp_path)
    text = (tmp_path / "MOT17-02-FRCNN" / "seqinfo.ini").read_text()
    assert "imDir=img1\n" in text and "imExt=.png\n" in text and "frameRate=30\n" in text
    back = read_mot(tmp_path)
    assert np.all(back.boxes.conf == 1) and np.all(back.boxes.visibility == 1)
    assert np.array_equal(np.sort(back.boxes.source_track), np.sort(ts.boxes.track.astype(float)))


def test_write_refuses_what_read_refuses(tmp_path: Path) -> None:
    base = read_mot(MOT17)
    ts = read_mot(MOT17)
    ts.videos.width = np.zeros(2, np.int64)
    ts.frames.width = np.zeros(ts.num_frames, np.int64)
    with pytest.raises(OutputError, match=r"video 'MOT17-02-FRCNN': image size 0x1080 is unknown"):
        write_mot(ts, tmp_path / "out")
    ts = read_mot(MOT17)
    ts.boxes.category = ts.boxes.category.copy()
    ts.boxes.category[0] = 2**31
    with pytest.raises(OutputError, match=r"category_id 2147483648 cannot be written as a MOT class"):
        write_mot(ts, tmp_path / "out")
    ts = read_mot(MOT17)
    ts.videos.fps = np.array([1e300, 30.0])
    with pytest.raises(OutputError, match=r"fps 1e\+300 cannot be written as a MOT frameRate"):
        write_mot(ts, tmp_path / "out")
    ts = read_mot(MOT17)
    ts.boxes.bbox = ts.boxes.bbox.copy()
    ts.boxes.bbox[0, 0] = 1e300
    with pytest.raises(OutputError, match=r"box values must be below 2\*\*53"):
        write_mot(ts, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # file names whose folder would leave the sequence: the default imDir instead
    ts = read_mot(MOT17)
    ts.frames.file_name = np.array([f"x/../{k + 1:06d}.jpg" for k in range(ts.num_frames)], dtype=object)
    write_mot(ts, tmp_path / "out")
    assert "imDir=img1\n" in (tmp_path / "out" / "MOT17-02-FRCNN" / "seqinfo.ini").read_text()
    assert read_mot(tmp_path / "out").num_boxes == base.num_boxes


def test_write_renumbers_ids_float64_cannot_hold(tmp_path: Path) -> None:
    ts = read_mot(MOT17)
    ts.boxes.source_track = None
    ts.boxes.track = ts.boxes.track + 2**62  # distinct int64s that float64 rounds together
    write_mot(ts, tmp_path)
    back = read_mot(tmp_path)
    assert back.num_tracks == ts.num_tracks and back.num_boxes == ts.num_boxes
    assert back.boxes.source_track.max() < 2**53
    # the same boxes make up each track
    def tracks(t: TrackSet) -> set[frozenset]:
        key = [(int(f), *bb) for f, bb in zip(t.boxes.frame.tolist(), t.boxes.bbox.tolist())]
        ids = t.boxes.track.tolist()
        return {frozenset(k for k, tr in zip(key, ids) if tr == x) for x in set(ids)}
    assert tracks(back) == tracks(ts)
