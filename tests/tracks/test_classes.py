"""MOT classes, conf and ignore regions: ClassFilter, detector copies and `tdgen convert`'s flags.

The MOT17-style split built here holds all 12 MOT17 classes, conf-0 rows, and every sequence in
three detector copies, as the real MOT17/train does. The expected outputs are computed by small
reference functions that follow ByteTrack's and mmdet's converter rules row by row.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tdgen.cli import app
from tdgen.tracks.classes import ClassFilter, classes_except, is_mot_categories, map_categories, parse_class_list
from tdgen.errors import UsageError
from tdgen.tracks.mot import MOT_CLASSES, detector_copy_groups, read_mot

W, H = 640, 480
DETECTORS = ("DPM", "FRCNN", "SDP")
# ByteTrack's converter: these classes are skipped, those become category -1 (people to ignore)
BT_NON_PERSON = {3, 4, 5, 6, 9, 10, 11}
BT_IGNORED_PERSON = {2, 7, 8, 12}


def _gt_rows(seed: int, n: int) -> list[tuple]:
    """Rows ``frame, id, x, y, w, h, conf, class, visibility`` in MOT17's order (by id, then
    frame): three pedestrians (conf 1), a pedestrian with conf 0, one track of each other class
    2..12 with conf 0 (as MOT17 marks them), and one short pedestrian."""
    rng = np.random.default_rng(seed)
    tracks = [(1, 1), (1, 1), (1, 1), (0, 1)] + [(0, c) for c in range(2, 13)] + [(1, 1)]
    rows = []
    for k, (conf, cls) in enumerate(tracks, start=1):
        x, y = int(rng.integers(0, W - 120)), int(rng.integers(0, H - 200))
        w, h = int(rng.integers(20, 100)), int(rng.integers(40, 180))
        frames = range(2, n - 1) if k == len(tracks) else range(1, n + 1)
        for f in frames:
            vis = round(float(rng.uniform(0.05, 1.0)), 5) if cls == 1 else 1
            rows.append((f, k, x + 3 * f, y + f, w, h, conf, cls, vis))
    return rows


def _write_seq(seq: Path, n: int, rows: list[tuple] | None, det_seed: int) -> None:
    (seq / "gt").mkdir(parents=True)
    (seq / "det").mkdir()
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname={seq.name}\nimDir=img1\nframeRate=30\nseqLength={n}\nimWidth={W}\nimHeight={H}\n"
        "imExt=.jpg\n")
    if rows is not None:
        (seq / "gt" / "gt.txt").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    else:
        (seq / "gt").rmdir()
    # public detections differ per detector copy (the ground truth does not)
    (seq / "det" / "det.txt").write_text(f"1,-1,{det_seed},10,50,90,0.9,-1,-1,-1\n")


#: sequence -> number of frames
SEQS = {"MOT17-02": 8, "MOT17-09": 7}


@pytest.fixture
def mot17(tmp_path: Path) -> Path:
    """``MOT17/train`` with two sequences, each as -DPM, -FRCNN and -SDP."""
    root = tmp_path / "MOT17" / "train"
    for i, (name, n) in enumerate(SEQS.items()):
        rows = _gt_rows(i, n)
        for j, det in enumerate(DETECTORS):
            _write_seq(root / f"{name}-{det}", n, rows, det_seed=j)
    return root


def _half_train(n: int) -> range:
    """1-based frame numbers of the first half (both converters cut after ``n // 2 + 1``)."""
    return range(1, n // 2 + 2)


def _bytetrack_reference(root: Path) -> Counter:
    """What ByteTrack's MOT17 converter keeps in ``train_half``: (seq, frame, bbox, category)."""
    kept: Counter = Counter()
    for seq in sorted(p.name for p in root.iterdir()):
        if "FRCNN" not in seq:
            continue
        n = SEQS[seq.rsplit("-", 1)[0]]
        for line in (root / seq / "gt" / "gt.txt").read_text().splitlines():
            v = [float(x) for x in line.split(",")]
            frame, conf, cls = int(v[0]), int(v[6]), int(v[7])
            if frame not in _half_train(n) or conf != 1 or cls in BT_NON_PERSON:
                continue
            cat = -1 if cls in BT_IGNORED_PERSON else 1
            kept[(seq, frame, tuple(v[2:6]), cat)] += 1
    return kept


def _mmdet_reference(root: Path) -> Counter:
    """What mmdet's mot2coco writes for half-train: every row of every folder, class as category."""
    kept: Counter = Counter()
    for seq in sorted(p.name for p in root.iterdir()):
        n = SEQS[seq.rsplit("-", 1)[0]]
        for line in (root / seq / "gt" / "gt.txt").read_text().splitlines():
            v = [float(x) for x in line.split(",")]
            if int(v[0]) in _half_train(n):
                kept[(seq, int(v[0]), int(v[1]), tuple(v[2:6]), int(v[7]), v[6], v[8])] += 1
    return kept


def _frame_of(doc: dict) -> dict[int, tuple[str, int]]:
    """image id -> (sequence folder, MOT frame number), from ``<seq>/img1/<number>.jpg``."""
    out = {}
    for im in doc["images"]:
        seq, _, name = im["file_name"].split("/")
        out[im["id"]] = (seq, int(name.split(".")[0]))
    return out


def _convert(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, ["convert", *map(str, args)])
    return r.exit_code, r.stdout, r.stderr


# --------------------------------------------------------------------------- bytetrack
def test_bytetrack_keeps_exactly_what_bytetracks_converter_keeps(mot17, tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    out = tmp_path / "train_half.json"
    code, _, err = _convert(mot17, "--split", "half-train", "--flavor", "bytetrack", "-o", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    frame = _frame_of(doc)
    got = Counter((*frame[a["image_id"]], tuple(float(x) for x in a["bbox"]), a["category_id"])
                  for a in doc["annotations"])
    expected = _bytetrack_reference(mot17)
    assert got == expected
    assert -1 not in {k[3] for k in expected}  # MOT17 marks its ignored people conf 0: none reach -1
    # 3 pedestrians in 5 + 4 half-train frames, plus the short one in 4 + 3
    assert sum(expected.values()) == 3 * (5 + 4) + (4 + 3)
    assert doc["categories"] == [{"id": 1, "name": "pedestrian"}]
    assert {a["iscrowd"] for a in doc["annotations"]} == {0}
    # ByteTrack's loader: class index = position of category_id in the sorted category ids
    coco = COCO(str(out))
    class_ids = sorted(coco.getCatIds())
    assert class_ids == [1]
    heads = {class_ids.index(a["category_id"]) for a in coco.loadAnns(coco.getAnnIds(iscrowd=False))}
    assert heads == {0} and {a["category_id"] - 1 for a in doc["annotations"]} == {0}
    # one line says what the flavour dropped and how to change it
    frcnn = [k for k in _mmdet_reference(mot17) if "FRCNN" in k[0]]
    dropped = Counter(k[4] for k in frcnn if not (k[4] == 1 and k[5] == 1))
    worst = sorted(dropped, key=lambda c: (-dropped[c], c))
    shown = ", ".join(f"{MOT_CLASSES[c - 1]} {dropped[c]}" for c in worst[:4]) + f", {len(worst) - 4} more"
    kept = len(doc["annotations"])
    note = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert note == [f"note: --flavor bytetrack keeps pedestrian boxes with conf 1 (ByteTrack's converter): "
                    f"kept {kept} of {len(frcnn)} boxes; dropped {len(frcnn) - kept} ({shown}); "
                    "1 of 13 categories listed; pass --classes/--min-conf/--ignore-as to change"]
    assert len(worst) == 12  # the conf-0 pedestrians and all 11 other classes


def test_bytetrack_ignore_as_crowd_writes_ignore_regions(mot17, tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    out = tmp_path / "crowd.json"
    code, _, err = _convert(mot17, "--split", "half-train", "--flavor", "bytetrack", "--ignore-as", "crowd",
                            "-o", out, "--json")
    assert code == 0, err
    doc = json.loads(out.read_text())
    ref = _mmdet_reference(mot17)
    frcnn = [k for k in ref if "FRCNN" in k[0]]
    # ignore regions: conf-0 pedestrians and MOT's ignored people; vehicles and occluders are gone
    ignore_classes = {2, 7, 8, 12}
    want_crowd = Counter((k[0], k[1], k[3]) for k in frcnn if (k[4] == 1 and k[5] == 0) or k[4] in ignore_classes)
    want_plain = Counter((k[0], k[1], k[3]) for k in frcnn if k[4] == 1 and k[5] == 1)
    frame = _frame_of(doc)
    key = lambda a: (*frame[a["image_id"]], tuple(float(x) for x in a["bbox"]))  # noqa: E731
    assert Counter(key(a) for a in doc["annotations"] if a["iscrowd"] == 1) == want_crowd
    assert Counter(key(a) for a in doc["annotations"] if a["iscrowd"] == 0) == want_plain
    assert doc["categories"] == [{"id": 1, "name": "pedestrian"}]
    assert {a["category_id"] for a in doc["annotations"]} == {1}
    # ByteTrack's loader skips the regions and still sees only class index 0
    coco = COCO(str(out))
    plain = coco.loadAnns(coco.getAnnIds(iscrowd=False))
    assert len(plain) == sum(want_plain.values())
    assert {sorted(coco.getCatIds()).index(a["category_id"]) for a in plain} == {0}
    summary = json.loads(_last_line(_))
    assert summary["classes"]["ignore_regions"] == sum(want_crowd.values())
    assert summary["classes"]["kept"] == sum(want_plain.values())


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_bytetrack_classes_flag_widens_and_keeps_one_index_per_class(mot17, tmp_path):
    out = tmp_path / "two.json"
    code, _, err = _convert(mot17, "--flavor", "bytetrack", "--classes", "static_person,pedestrian",
                            "--min-conf", "0", "-o", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    # renumbered 1..K in the source's category order, so category_id - 1 is the head index
    assert doc["categories"] == [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "static_person"}]
    ref = [k for k in _mmdet_reference_all_frames(mot17) if "FRCNN" in k[0]]
    assert Counter(a["category_id"] for a in doc["annotations"]) == Counter(
        {1: sum(1 for k in ref if k[4] == 1), 2: sum(1 for k in ref if k[4] == 7)})
    assert "note: kept static_person, pedestrian boxes with conf >= 0: kept 84 of 234 boxes;" in err


def _mmdet_reference_all_frames(root: Path) -> list[tuple]:
    out = []
    for seq in sorted(p.name for p in root.iterdir()):
        for line in (root / seq / "gt" / "gt.txt").read_text().splitlines():
            v = [float(x) for x in line.split(",")]
            out.append((seq, int(v[0]), int(v[1]), tuple(v[2:6]), int(v[7]), v[6], v[8]))
    return out


# --------------------------------------------------------------------------- mmdet
def test_mmdet_writes_every_class_with_mot_conf_and_visibility(mot17, tmp_path):
    out = tmp_path / "half-train_cocoformat.json"
    # every detector copy, as mmdet's converter reads every folder
    code, _, err = _convert(mot17, "--split", "half-train", "--flavor", "mmdet", "--all-detector-copies",
                            "-o", out)
    assert code == 0, err
    assert "note:" not in err and "detector" not in err
    doc = json.loads(out.read_text())
    assert doc["categories"] == [{"id": i + 1, "name": n} for i, n in enumerate(MOT_CLASSES)]
    videos = {v["id"]: v["name"] for v in doc["videos"]}
    images = {im["id"]: im for im in doc["images"]}
    got = Counter((videos[images[a["image_id"]]["video_id"]], images[a["image_id"]]["mot_frame_id"],
                   a["mot_instance_id"], tuple(float(x) for x in a["bbox"]), a["category_id"], float(a["mot_conf"]),
                   float(a["visibility"])) for a in doc["annotations"])
    assert got == _mmdet_reference(mot17)
    assert {a["iscrowd"] for a in doc["annotations"]} == {0}
    assert {a["category_id"] for a in doc["annotations"]} == set(range(1, 13))
    assert {im["frame_id"] for im in doc["images"]} == set(range(5))  # 0-based, restarting per half


def test_mmdet_default_reads_one_detector_copy_and_says_so(mot17, tmp_path):
    out = tmp_path / "mm.json"
    code, stdout, err = _convert(mot17, "-o", out, "--json")
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert [v["name"] for v in doc["videos"]] == ["MOT17-02-FRCNN", "MOT17-09-FRCNN"]
    assert len(doc["annotations"]) == sum(1 for k in _mmdet_reference_all_frames(mot17) if "FRCNN" in k[0])
    summary = json.loads(_last_line(stdout))
    assert summary["classes"] is None  # mmdet keeps every box
    [line] = [w for w in summary["warnings"] if "detector" in w]
    assert line == (f"{mot17}: 2 sequences come once per detector (-DPM, -FRCNN, -SDP) with the same ground "
                    "truth; read the -FRCNN copy of each, as ByteTrack does (2 of 6 folders; --all-detector-copies "
                    "reads every copy)")
    code, _, err = _convert(mot17, "-o", tmp_path / "plain.json")
    assert [ln for ln in err.splitlines() if "detector" in ln] == ["warning: " + line]


# --------------------------------------------------------------------------- detector copies
def test_detector_copies_read_once_unless_asked(mot17):
    one = read_mot(mot17)
    every = read_mot(mot17, detector_copies="all")
    assert one.videos.name.tolist() == ["MOT17-02-FRCNN", "MOT17-09-FRCNN"]
    assert every.num_videos == 6 and every.num_boxes == 3 * one.num_boxes
    assert not [w for w in every.warnings if "detector" in w]
    assert detector_copy_groups(["a-SDP", "a-DPM", "a-FRCNN", "b-FRCNN", "c-DPM", "c-SDP"]) == {
        "a": ["a-FRCNN", "a-SDP", "a-DPM"], "c": ["c-SDP", "c-DPM"]}


def test_detector_copies_with_different_gt_or_no_gt_are_all_kept(tmp_path):
    root = tmp_path / "train"
    _write_seq(root / "MOT17-04-FRCNN", 5, _gt_rows(1, 5), 0)
    _write_seq(root / "MOT17-04-SDP", 5, _gt_rows(2, 5), 1)
    ts = read_mot(root)
    assert ts.num_videos == 2
    assert any("hold different gt.txt files; kept every copy" in w for w in ts.warnings)
    test = tmp_path / "test"
    for j, det in enumerate(DETECTORS):
        _write_seq(test / f"MOT17-01-{det}", 4, None, j)
    # a test split has no ground truth: a benchmark wants results for every copy
    assert read_mot(test).num_videos == 3
    # copies only when they share a base: -FRCNN alone, or two different bases, stay as they are
    solo = tmp_path / "solo"
    _write_seq(solo / "MOT17-05-FRCNN", 4, _gt_rows(3, 4), 0)
    _write_seq(solo / "MOT17-10-SDP", 4, _gt_rows(3, 4), 0)
    assert read_mot(solo).num_videos == 2


def test_all_detector_copies_flag_only_for_mot_input(mot17, tmp_path):
    js = tmp_path / "a.json"
    assert _convert(mot17, "-o", js)[0] == 0
    code, _, err = _convert(js, "--all-detector-copies", "-o", tmp_path / "b.json")
    assert code == 2 and err.strip() == "error: --all-detector-copies applies to a MOT directory input only"
    assert not (tmp_path / "b.json").exists()


# --------------------------------------------------------------------------- flag checks
@pytest.mark.parametrize("args, message", [
    (["--classes", "pedestrain"], "error: --classes: unknown class 'pedestrain'; the input's classes are: "
     + ", ".join(MOT_CLASSES)),
    (["--classes", "pedestrian,,car"], "error: --classes: expected comma-separated class names like "
     "'pedestrian,static_person', got 'pedestrian,,car'"),
    (["--classes", "car,Car"], "error: --classes: class 'Car' is given twice"),
    (["--min-conf", "nan"], "error: --min-conf must be a finite number, got nan"),
    (["--ignore-as", "hide"], "error: --ignore-as must be one of crowd, drop, keep, not 'hide'"),
])
def test_bad_flags_are_one_line_and_write_nothing(mot17, tmp_path, args, message):
    out = tmp_path / "out.json"
    code, stdout, err = _convert(mot17, "--flavor", "bytetrack", *args, "-o", out)
    assert code == 2
    assert err.strip() == message
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "MOT17"]


def test_crowd_regions_refused_for_mot_output(mot17, tmp_path):
    code, _, err = _convert(mot17, "--ignore-as", "crowd", "--classes", "pedestrian", "-o", tmp_path / "mot")
    assert code == 2 and err.startswith("error: --ignore-as crowd: MOT gt.txt has no crowd regions")
    assert not (tmp_path / "mot").exists()


def test_mot_output_with_classes_keeps_mot_class_ids(mot17, tmp_path):
    out = tmp_path / "mot"
    code, _, err = _convert(mot17, "--classes", "pedestrian,reflection", "-o", out)
    assert code == 0, err
    rows = [ln.split(",") for ln in (out / "MOT17-09-FRCNN" / "gt" / "gt.txt").read_text().splitlines()]
    assert {int(r[7]) for r in rows} == {1, 12}  # not renumbered: MOT's class ids mean something
    assert {int(r[6]) for r in rows} == {0, 1}  # no --min-conf: conf-0 rows of those classes stay
    # with keep, MOT's other ignored people stay as they are too; vehicles and occluders do not
    code, _, err = _convert(mot17, "--classes", "pedestrian,reflection", "--ignore-as", "keep", "-o",
                            tmp_path / "keep")
    assert code == 0, err
    rows = [ln.split(",") for ln in (tmp_path / "keep" / "MOT17-09-FRCNN" / "gt" / "gt.txt").read_text().splitlines()]
    assert {int(r[7]) for r in rows} == {1, 2, 7, 8, 12}


def test_bytetrack_file_in_and_out_is_unchanged(mot17, tmp_path):
    first = tmp_path / "bt.json"
    assert _convert(mot17, "--flavor", "bytetrack", "-o", first)[0] == 0
    again = tmp_path / "bt2.json"
    code, _, err = _convert(first, "-o", again)
    assert code == 0 and "note:" not in err, err
    a, b = json.loads(first.read_text()), json.loads(again.read_text())
    assert a["annotations"] == b["annotations"] and a["categories"] == b["categories"]


def test_mmdet_file_to_bytetrack_is_filtered_too(mot17, tmp_path):
    mm = tmp_path / "mm.json"
    assert _convert(mot17, "--flavor", "mmdet", "-o", mm)[0] == 0
    bt, direct = tmp_path / "bt.json", tmp_path / "direct.json"
    code, _, err = _convert(mm, "--flavor", "bytetrack", "-o", bt)
    assert code == 0 and "note: --flavor bytetrack keeps pedestrian boxes with conf 1" in err
    assert _convert(mot17, "--flavor", "bytetrack", "-o", direct)[0] == 0
    strip = lambda d: [(a["bbox"], a["category_id"], a["iscrowd"]) for a in d["annotations"]]  # noqa: E731
    assert strip(json.loads(bt.read_text())) == strip(json.loads(direct.read_text()))


# --------------------------------------------------------------------------- the library API
CATS = [{"id": 1, "name": "pedestrian"}, {"id": 3, "name": "car"}, {"id": 7, "name": "static_person"}]


def _small(trackset_from_rows, conf=None, iscrowd=None):
    rows = [("v", 0, 1, 1, 0, 0, 10, 10), ("v", 0, 2, 3, 5, 5, 10, 10), ("v", 1, 3, 7, 1, 1, 5, 5),
            ("v", 1, 1, 1, 1, 0, 10, 10), ("v", 2, 4, 1, 2, 2, 4, 4)]
    ts = trackset_from_rows(rows, categories=CATS, iscrowd=iscrowd)
    if conf is not None:
        ts.boxes.conf = np.asarray(conf, dtype=np.float64)
    return ts


def test_filter_outcomes_and_report(trackset_from_rows):
    ts = _small(trackset_from_rows, conf=[1, 1, 0, 1, 0])
    before = ts.boxes.category.copy()
    f = ClassFilter(classes=("pedestrian",), min_conf=1, ignore_as="crowd", ignore_classes=("static_person",),
                    renumber=True)
    out, rep = f.apply(ts)
    assert np.array_equal(ts.boxes.category, before) and len(ts.categories) == 3  # the input is untouched
    # rows: ped conf1 kept; car dropped (no ignore class); static_person -> crowd pedestrian; ped conf0 -> crowd
    assert out.boxes.track.tolist() == [1, 3, 1, 4]
    assert out.boxes.iscrowd.tolist() == [0, 1, 0, 1]
    assert out.boxes.category.tolist() == [1, 1, 1, 1]
    assert out.categories == [{"id": 1, "name": "pedestrian"}]
    assert (rep.total, rep.kept, rep.ignored, rep.dropped) == (5, 2, 2, 1)
    assert [(c.name, c.kept, c.ignored, c.dropped) for c in rep.per_category] == [
        ("pedestrian", 2, 1, 0), ("car", 0, 0, 1), ("static_person", 0, 1, 0)]
    assert rep.summary() == ("kept 4 of 5 boxes (2 as iscrowd=1 ignore regions); dropped 1 (car 1); "
                             "1 of 3 categories listed")
    out.check()


def test_filter_drop_keep_and_noop(trackset_from_rows):
    ts = _small(trackset_from_rows, conf=[1, 1, 0, 0, np.nan])
    drop, rep = ClassFilter(classes=("pedestrian",), min_conf=0.5).apply(ts)
    assert drop.boxes.track.tolist() == [1, 4]  # NaN conf counts as 1; conf 0 dropped
    assert rep.dropped == 3 and rep.ignored == 0
    keep, _ = ClassFilter(classes=("pedestrian",), min_conf=0.5, ignore_as="keep").apply(ts)
    # ignore_classes None: every non-target class is an ignore row, kept as it was
    assert keep.boxes.track.tolist() == ts.boxes.track.tolist() and keep.categories == CATS
    same, rep = ClassFilter().apply(ts)
    assert ClassFilter().is_noop and not rep.changed and same.boxes.equals(ts.boxes)


def test_filter_renumbers_in_source_order_and_keeps_source_crowd(trackset_from_rows):
    ts = _small(trackset_from_rows, iscrowd=[0, 0, 0, 1, 0])
    out, rep = ClassFilter(classes=("static_person", "car"), renumber=True).apply(ts)
    assert out.categories == [{"id": 1, "name": "car"}, {"id": 2, "name": "static_person"}]
    assert out.boxes.category.tolist() == [1, 2] and rep.renumbered
    crowd, _ = ClassFilter(classes=("pedestrian",), min_conf=1).apply(_small(trackset_from_rows, conf=[1, 1, 1, 0, 1],
                                                                             iscrowd=[0, 0, 0, 1, 0]))
    assert crowd.boxes.iscrowd.tolist() == [0, 1, 0]  # a source crowd region of a target class stays


def test_for_flavor_defaults():
    bt = ClassFilter.for_flavor("bytetrack", "mot")
    assert (bt.classes, bt.min_conf, bt.ignore_as, bt.renumber) == (("pedestrian",), 1.0, "drop", True)
    mot_cats = [{"id": i + 1, "name": n} for i, n in enumerate(MOT_CLASSES)]
    assert ClassFilter.for_flavor("bytetrack", "cocovid-mmdet", mot_cats) == bt
    assert ClassFilter.for_flavor("mmdet", "mot").is_noop
    assert ClassFilter.for_flavor("bytetrack", "ytvis", [{"id": 1, "name": "person"}]).is_noop
    assert ClassFilter.for_flavor(None, "mot").is_noop
    assert is_mot_categories([{"id": 1, "name": "pedestrian"}])
    assert not is_mot_categories([{"id": 2, "name": "pedestrian"}])
    assert bt.with_options(ignore_as="crowd").origin == "" and bt.with_options().origin == bt.origin


def test_helpers_for_merge_and_synth(trackset_from_rows):
    ts = _small(trackset_from_rows)
    assert classes_except(ts.categories, ["Car"]) == ("pedestrian", "static_person")
    with pytest.raises(UsageError, match=r"--drop-categories: unknown class 'bus'; the input's classes are: "
                                         r"pedestrian, car, static_person"):
        classes_except(ts.categories, ["bus"])
    merged = map_categories(ts, {"static_person": "pedestrian"})
    assert merged.categories == [{"id": 1, "name": "pedestrian"}, {"id": 3, "name": "car"}]
    assert merged.boxes.category.tolist() == [1, 3, 1, 1, 1]
    renamed = map_categories(ts, {"car": "vehicle"})
    assert renamed.categories[1] == {"id": 3, "name": "vehicle"} and ts.categories[1]["name"] == "car"
    # two old names onto one new name: the second merges into the first's rename
    both = map_categories(ts, {"car": "thing", "Static person": "thing"})
    assert both.categories == [{"id": 1, "name": "pedestrian"}, {"id": 3, "name": "thing"}]
    assert both.boxes.category.tolist() == [3 if c == 7 else c for c in ts.boxes.category.tolist()]
    # each old name keeps its own new name, whatever the spelling of the others
    spelled = map_categories(ts, {"Car": "a", "car": "b", "static_person": "c"})
    assert [c["name"] for c in spelled.categories] == ["pedestrian", "b", "c"]
    assert parse_class_list(" pedestrian , person on vehicle") == ("pedestrian", "person on vehicle")
    assert ClassFilter(classes=("person on vehicle",)).check(
        [{"id": 2, "name": "person_on_vehicle"}]).classes == ("person_on_vehicle",)


def test_bytetrack_from_pedestrian_only_ground_truth_needs_no_note(tmp_path):
    # SportsMOT / DanceTrack write class 1, conf 1 everywhere: nothing is dropped, so no note
    root = tmp_path / "sports"
    _write_seq(root / "v_001", 6, [r for r in _gt_rows(4, 6) if r[7] == 1 and r[6] == 1], 0)
    out = tmp_path / "bt.json"
    code, _, err = _convert(root, "--flavor", "bytetrack", "-o", out)
    assert code == 0 and "note:" not in err, err
    doc = json.loads(out.read_text())
    assert doc["categories"] == [{"id": 1, "name": "pedestrian"}]
    assert len(doc["annotations"]) == 3 * 6 + 3
