"""The shapes domain renderer: determinism, exact boxes, borders, occlusion, colours, file formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from tdgen.shapes import CATEGORIES, render_shapes, render_video, shape_mask  # noqa: E402
from tdgen.shapes.render import MIN_BOX_SIDE, MIN_INFRAME_FRACTION, TRACK_STRIDE  # noqa: E402
from tdgen.errors import OutputError, UsageError  # noqa: E402
from tdgen.tracks.io import read_tracks  # noqa: E402


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return bgr[..., ::-1]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shapes") / "set"
    render_shapes(out, videos=3, frames=12, seed=7)
    return out


@pytest.fixture(scope="module")
def videos() -> list:
    """Twelve in-memory videos of 24 frames (seed 3), enough to see every behaviour."""
    return [render_video(k, seed=3, frames=24) for k in range(12)]


def test_layout_and_annotations_follow_the_repo_rules(small_set):
    names = sorted(p.name for p in (small_set / "images").iterdir())
    assert names == ["shapes_0000", "shapes_0001", "shapes_0002"]
    for n in names:
        frames = sorted(p.name for p in (small_set / "images" / n).iterdir())
        assert frames == [f"{i:06d}.png" for i in range(1, 13)]
        assert (small_set / "backgrounds" / f"{n}.png").is_file()
    captions = json.loads((small_set / "captions.json").read_text())
    assert set(captions) == set(names)
    assert all(c.endswith("background") and " on a" in c for c in captions.values())
    assert not list(small_set.parent.glob(".set.*"))  # no temp dirs left behind

    ts = read_tracks(small_set / "annotations.json")
    assert ts.warnings == []
    assert ts.source_format == "cocovid-mmdet"
    assert [c["name"] for c in ts.categories] == ["circle", "square", "triangle", "star", "hexagon"]
    assert ts.boxes.visibility is not None and np.all((ts.boxes.visibility >= 0) & (ts.boxes.visibility <= 1))
    assert list(ts.videos.name) == names
    assert ts.frames.file_name[0] == "images/shapes_0000/000001.png"
    for f in (0, len(ts.frames) - 1):
        img = read_rgb(small_set / ts.frames.file_name[f])
        assert img.shape == (ts.frames.height[f], ts.frames.width[f], 3) == (128, 128, 3)
    b = ts.boxes.bbox
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 1] >= 0)
    assert np.all(b[:, 0] + b[:, 2] <= 128) and np.all(b[:, 1] + b[:, 3] <= 128)
    assert np.all(b[:, 2:] >= MIN_BOX_SIDE) and np.all(b == np.round(b))
    # every track stays inside one video, with ids that say which one
    video_of_box = ts.box_video()
    assert np.array_equal(ts.boxes.track // TRACK_STRIDE, video_of_box)


def test_annotations_load_in_pycocotools(small_set):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    coco = COCO(str(small_set / "annotations.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns and all("instance_id" in a and "visibility" in a and a["iscrowd"] == 0 for a in anns)
    assert {c["id"] for c in coco.loadCats(coco.getCatIds())} == {c["id"] for c in CATEGORIES}


def test_same_seed_gives_identical_files_and_video_k_does_not_depend_on_n(tmp_path, small_set):
    again = tmp_path / "again"
    render_shapes(again, videos=3, frames=12, seed=7)
    for p in sorted(small_set.rglob("*")):
        if p.is_file():
            assert (again / p.relative_to(small_set)).read_bytes() == p.read_bytes(), p
    two = tmp_path / "two"
    render_shapes(two, videos=2, frames=12, seed=7)
    for p in sorted((two / "images").rglob("*.png")):
        assert (small_set / p.relative_to(two)).read_bytes() == p.read_bytes()
    a2, a3 = read_tracks(two / "annotations.json"), read_tracks(small_set / "annotations.json")
    keep = a3.box_video() < 2
    assert np.array_equal(a2.boxes.bbox, a3.boxes.bbox[keep])
    assert np.array_equal(a2.boxes.track, a3.boxes.track[keep])
    assert np.array_equal(a2.boxes.visibility, a3.boxes.visibility[keep])
    other = render_video(0, seed=8, frames=12)
    assert not np.array_equal(other.frames, render_video(0, seed=7, frames=12).frames)


def test_shape_masks_are_what_is_drawn_and_boxes_are_tight():
    for shape in ("circle", "square", "triangle", "star", "hexagon"):
        mask, x0, y0 = shape_mask(shape, 40.3, 50.7, 11.0, angle=0.4)
        ys, xs = np.nonzero(mask)
        # a centred shape of radius 11 spans about 22 pixels and lies around its centre
        assert 14 <= xs.max() - xs.min() + 1 <= 30 and 14 <= ys.max() - ys.min() + 1 <= 30
        assert abs((xs.mean() + x0 + 0.5) - 40.3) < 2.5 and abs((ys.mean() + y0 + 0.5) - 50.7) < 2.5
        # nothing touches the canvas edge: the mask holds the whole shape
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def test_unoccluded_box_equals_the_drawn_pixels(videos):
    checked = 0
    for v in videos:
        for row in np.flatnonzero(v.visibility == 1.0)[:40]:
            t, inst = v.frame_index[row], v.instance[row]
            colour = np.array(v.colors[int(inst)], np.uint8)
            x, y, w, h = v.bbox[row].astype(int)
            # the instance's colour is unique in the video, so its pixels are the ones of that colour
            ys, xs = np.nonzero(np.all(v.frames[t] == colour, axis=2))
            assert (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (x, y, w, h)
            checked += 1
    assert checked > 200


def test_visibility_counts_pixels_hidden_by_shapes_in_front(videos):
    occluded = 0
    for v in videos:
        for row in range(len(v.visibility)):
            t, inst = v.frame_index[row], int(v.instance[row])
            x, y, w, h = v.bbox[row].astype(int)
            shown = np.all(v.frames[t][y:y + h, x:x + w] == np.array(v.colors[inst], np.uint8), axis=2).sum()
            # visibility = pixels still showing / pixels inside the frame
            assert shown == pytest.approx(v.visibility[row] * v.pixels[row], abs=0.01 * v.pixels[row] + 0.5)
            occluded += v.visibility[row] < 1
    assert occluded > 20


def test_objects_enter_and_leave_through_the_borders_with_clipped_boxes(videos):
    entering = leaving = 0

    def on_border(b: np.ndarray) -> bool:
        return bool(b[0] == 0 or b[1] == 0 or b[0] + b[2] == 128 or b[1] + b[3] == 128)

    for v in videos:
        n_frames = v.frames.shape[0]
        for inst in np.unique(v.instance):
            rows = np.flatnonzero(v.instance == inst)
            rows = rows[np.argsort(v.frame_index[rows])]
            # no gaps: an instance is annotated in every frame from its first box to its last
            assert np.array_equal(v.frame_index[rows], np.arange(v.frame_index[rows[0]], v.frame_index[rows[-1]] + 1))
            if v.frame_index[rows[0]] > 0:  # appeared later: it came in through a border
                entering += 1
                assert on_border(v.bbox[rows[0]])
            if v.frame_index[rows[-1]] < n_frames - 1:  # disappeared: it left through a border
                leaving += 1
                assert on_border(v.bbox[rows[-1]])
                # and its last box was a clipped part of it, at least the minimum share
                assert v.pixels[rows[-1]] >= 1
    assert entering >= 5 and leaving >= 5


def test_the_drop_rule_is_the_documented_one():
    # A square centred 3 px from the left border is mostly inside; one centred 12 px outside is
    # less than 20 % inside, so it has no box.
    for cx, expect_box in ((3.0, True), (-12.0, False)):
        mask, x0, _ = shape_mask("square", cx, 60.0, 12.0)
        inside = mask[:, max(0, -x0):].sum() / mask.sum()
        assert (inside >= MIN_INFRAME_FRACTION) == expect_box
    assert MIN_INFRAME_FRACTION == pytest.approx(0.2) and MIN_BOX_SIDE == 4


def test_colours_are_fixed_per_instance_and_well_apart(videos):
    for v in videos:
        cols = np.array(list(v.colors.values()), float)
        d = np.linalg.norm(cols[:, None] - cols[None], axis=2) + np.eye(len(cols)) * 1e9
        assert d.min() >= 60
        bg = v.background.reshape(-1, 3).astype(int)
        for inst, c in v.colors.items():
            assert np.abs(bg - np.array(c)).max(1).min() >= 60
            # every visible box shows the instance's colour, and nothing else draws it
            rows = np.flatnonzero((v.instance == inst) & (v.visibility > 0.2))
            for row in rows[:8]:
                x, y, w, h = v.bbox[row].astype(int)
                patch = v.frames[v.frame_index[row]][y:y + h, x:x + w]
                assert np.all(patch == np.array(c, np.uint8), axis=2).any()


def test_counts_stay_in_range(videos):
    for v in videos:
        n_inst = len(v.colors)
        assert 1 <= n_inst <= 10
        per_frame = np.bincount(v.frame_index, minlength=v.frames.shape[0])
        assert per_frame.max() <= 6
        assert v.caption.count(" and ") <= 1


def test_bad_arguments_and_existing_output(tmp_path, small_set):
    with pytest.raises(OutputError, match="already exists"):
        render_shapes(small_set, videos=1, frames=2)
    with pytest.raises(UsageError):
        render_shapes(tmp_path / "x", videos=0)
    with pytest.raises(UsageError):
        render_shapes(tmp_path / "x", videos=1, size=(16, 128))
    with pytest.raises(UsageError):
        render_shapes(tmp_path / "x", videos=1, seed=-1)
    assert not (tmp_path / "x").exists()
    out = tmp_path / "over"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    render_shapes(out, videos=1, frames=3, size=(96, 64), overwrite=True)
    assert not (out / "stale.txt").exists()
    assert read_rgb(out / "images" / "shapes_0000" / "000003.png").shape == (64, 96, 3)
