"""Clip fragments: one-video COCO-VID documents with their manifest row, concatenated by finalize;
fragments of earlier versions (``data/legacy_run``, written by the plain-record layout) still read."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from tdgen.errors import AnnotationError
from tdgen.synth import SynthDir, SynthOptions, finalize, fragments_to_trackset, run_synth
from tdgen.synth.fragments import (MANIFEST_KEY, ClipFragment, clip_trackset, concat_fragments, read_fragment,
                                   write_fragment)
from tdgen.tracks.cocovid import read_cocovid, write_cocovid

from fakegen import FakeGenerator
from make_mot import write_mot_split

LEGACY = Path(__file__).parent / "data" / "legacy_run"
# annotations.json that the version writing data/legacy_run made from it
LEGACY_SHA = "9e80d83739e3f2e399d1366077c10454c829e3fbe4bbee70bbba37e76719185f"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """This version's run of the settings data/legacy_run was made with: (source, out)."""
    root = tmp_path_factory.mktemp("fresh")
    ann = write_mot_split(root / "MOT" / "train")
    out = root / "synth"
    r = run_synth(_opts(ann, out), FakeGenerator)
    assert r.done == r.planned == 8
    return ann, out


def _opts(ann, out, **kw):
    return SynthOptions(ann=Path(ann), out=Path(out), frames=4, stride=4, slots=6, batch_size=2, steps=2, **kw)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _legacy_copy(tmp_path: Path) -> Path:
    out = tmp_path / "legacy"
    shutil.copytree(LEGACY, out)
    for frag in (out / "clips").glob("*.json"):
        (out / "images" / frag.stem).mkdir(parents=True)  # finalize needs each clip's frames folder
    return out


def _manifest(out: Path, drop=("seconds", "source")):
    t = pq.read_table(out / "manifest.parquet")
    return t.select([c for c in t.column_names if c not in drop])


def test_a_fragment_is_a_one_video_cocovid_document_with_its_manifest_row(fresh):
    _, out = fresh
    path = sorted((out / "clips").glob("*.json"))[1]
    ts = read_cocovid(path)
    assert ts.num_videos == 1 and ts.videos.name.tolist() == [path.stem]
    assert ts.frames.file_name.tolist() == [f"images/{path.stem}/{i:06d}.png" for i in range(1, 5)]
    assert ts.num_boxes > 0 and set(ts.boxes.track.tolist()) <= set(range(1, 7))  # slot + 1
    row = ts.meta[MANIFEST_KEY]
    assert row["clip_id"] == path.stem and row["frames"] == 4 and row["tracks"] == len(set(ts.boxes.track.tolist()))
    frag = SynthDir(out).read_fragment(path.stem)
    assert frag.manifest == row and frag.order == row["order"] and frag.trackset.equals(ts, meta=False)


def test_annotations_are_the_concatenation_of_the_fragments(fresh):
    _, out = fresh
    frags = [read_fragment(p) for p in sorted((out / "clips").glob("*.json"))]
    ts = read_cocovid(out / "annotations.json")
    assert ts.num_videos == len(frags) == 8
    assert ts.num_boxes == sum(f.trackset.num_boxes for f in frags)
    ordered = sorted(frags, key=lambda f: f.order)
    assert ts.videos.name.tolist() == [f.trackset.videos.name[0] for f in ordered]
    assert np.array_equal(ts.boxes.bbox, np.concatenate([f.trackset.boxes.bbox for f in ordered]))
    # tracks numbered 1..T in (clip, slot) order
    assert ts.boxes.track.min() == 1 and np.unique(ts.boxes.track).size == ts.boxes.track.max()


def test_legacy_fragments_finalize_to_the_bytes_their_version_wrote(fresh, tmp_path):
    _, new = fresh
    out = _legacy_copy(tmp_path)
    s = finalize(out)
    assert s["clips"] == 8
    assert _sha(out / "annotations.json") == LEGACY_SHA == _sha(new / "annotations.json")
    assert _manifest(out).equals(_manifest(new))
    seconds = pq.read_table(out / "manifest.parquet").column("seconds").to_pylist()
    rows = sorted((orjson.loads(p.read_bytes())["manifest"] for p in (LEGACY / "clips").glob("*.json")),
                  key=lambda r: r["order"])
    assert seconds == [r["seconds"] for r in rows]
    # the public converter of plain records agrees
    records = [orjson.loads(p.read_bytes()) for p in sorted((LEGACY / "clips").glob("*.json"))]
    ts = fragments_to_trackset(records, records[0]["categories"], mot_fields=True)
    assert _sha(write_cocovid(ts, tmp_path / "again.json")) == LEGACY_SHA


def test_a_run_of_an_earlier_version_resumes_mixing_both_formats(fresh, tmp_path):
    ann, new = fresh
    out = _legacy_copy(tmp_path)
    gone = ["SYN-01_000004", "SYN-02_000008", "SYN-01_000016"]
    for cid in gone:
        (out / "clips" / f"{cid}.json").unlink()
    r = run_synth(_opts(ann, out), FakeGenerator)
    assert r.skipped == 5 and r.done == 3
    for cid in gone:  # written by this version, the others kept as they were
        assert MANIFEST_KEY in orjson.loads((out / "clips" / f"{cid}.json").read_bytes())
    assert "boxes" in orjson.loads((out / "clips" / "SYN-01_000000.json").read_bytes())
    assert _sha(out / "annotations.json") == _sha(new / "annotations.json")
    assert _manifest(out).equals(_manifest(new))


def _frag(slots, order, fps=30.0, vis=None):
    f_idx = np.repeat(np.arange(2), len(slots))
    s_idx = np.tile(np.asarray(slots), 2)
    bbox = np.tile([1.5, 2.0, 3.0, 4.25], (f_idx.size, 1))
    ts = clip_trackset(f"c{order}", (16, 8), fps, ["a.png", "b.png"], f_idx, bbox, s_idx, np.ones(f_idx.size),
                       [{"id": 1, "name": "car"}], visibility=vis)
    return ClipFragment(ts, {"clip_id": f"c{order}", "order": order}, order)


def test_concat_numbers_everything_in_plan_order():
    frags = [_frag([4, 0], 1, fps=None), _frag([2], 0, vis=np.array([0.5, np.nan]))]
    ts = concat_fragments(frags, [{"id": 1, "name": "car"}], mot_fields=True)
    assert ts.videos.name.tolist() == ["c0", "c1"] and ts.videos.id.tolist() == [1, 2]
    assert np.isnan(ts.videos.fps[1]) and ts.videos.fps[0] == 30.0
    assert ts.frames.id.tolist() == [1, 2, 3, 4] and ts.frames.index.tolist() == [0, 1, 0, 1]
    assert ts.boxes.frame.tolist() == [0, 1, 2, 2, 3, 3]
    assert ts.boxes.track.tolist() == [1, 1, 3, 2, 3, 2]  # c0 slot 2, then c1 slots 0 and 4
    assert ts.boxes.visibility.tolist() == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]  # unknown: 1.0
    plain = concat_fragments(frags, [{"id": 1, "name": "car"}], mot_fields=False)
    assert plain.boxes.visibility is None and plain.boxes.conf is None
    assert concat_fragments([], [], mot_fields=False).num_videos == 0


def test_a_written_fragment_reads_back_the_same(tmp_path):
    frag = _frag([3, 1], 7, vis=np.array([0.25, np.nan, 1.0, 0.5]))
    path = write_fragment(frag, tmp_path / "c7.json")
    back = read_fragment(path)
    assert back.order == 7 and back.manifest == frag.manifest
    assert back.trackset.boxes.bbox.tolist() == frag.trackset.boxes.bbox.tolist()
    assert np.array_equal(back.trackset.boxes.visibility, frag.trackset.boxes.visibility, equal_nan=True)
    assert back.trackset.boxes.track.tolist() == frag.trackset.boxes.track.tolist()


def test_a_box_rounded_to_no_size_is_left_out(tmp_path):
    frag = _frag([0, 1], 0)
    frag.trackset.boxes.bbox[1, 2] = 0.0  # frame 0, slot 1: 0 px wide
    back = read_fragment(write_fragment(frag, tmp_path / "c0.json"))
    assert back.trackset.num_boxes == 3 and back.trackset.boxes.track.tolist() == [1, 1, 2]


@pytest.mark.parametrize("edit, says", [
    (lambda d: d.pop("annotations"), "'annotations' is missing"),
    (lambda d: d.pop(MANIFEST_KEY), "'manifest' is missing"),
    (lambda d: d[MANIFEST_KEY].update(order="0"), "no integer 'order'"),
    (lambda d: d["annotations"][0].update(category_id=99), "category_id 99"),
    (lambda d: d["videos"].append({"id": 2, "name": "x"}), "2 videos"),
])
def test_a_damaged_fragment_of_this_version_is_one_line_naming_it(tmp_path, edit, says):
    path = write_fragment(_frag([0], 0), tmp_path / "c0.json")
    doc = orjson.loads(path.read_bytes())
    edit(doc)
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(AnnotationError, match="damaged clip fragment") as e:
        read_fragment(path)
    assert says in str(e.value) and e.value.file == str(path) and "\n" not in str(e.value)


def test_a_legacy_fragment_with_boxes_on_frames_it_lacks_is_damaged(tmp_path):
    doc = orjson.loads(sorted((LEGACY / "clips").glob("*.json"))[0].read_bytes())
    doc["boxes"]["frame"][0] = 9
    path = tmp_path / "c.json"
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(AnnotationError, match="damaged clip fragment: boxes do not fit its frames"):
        read_fragment(path)
