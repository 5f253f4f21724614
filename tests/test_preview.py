"""Tests of tdgen.preview: drawing boxes, contact sheets, mp4 previews and the ``preview`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from tdgen.preview import (  # noqa: E402
    DEFAULT_TILE_WIDTH,
    GRAY,
    PreviewWarning,
    clip_sheet,
    contact_sheet,
    draw_frame,
    load_preview_source,
    preview_clip,
    render_preview,
    sheet_shape,
    track_color,
)
from tdgen.errors import AnnotationError, UsageError  # noqa: E402
from tdgen.tracks.io import read_tracks  # noqa: E402

from helpers import tdgen  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "realdata" / "mmtracking" / "demo_cocovid_data_ann_vid.json"


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return bgr[..., ::-1]


def video_info(path: Path) -> tuple[int, int, int]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n = 0
    size = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        size = frame.shape[1], frame.shape[0]
        n += 1
    cap.release()
    return n, *(size or (0, 0))


# Solid colours of the synthetic images, per video (RGB).
COLOURS = {"red": (220, 30, 30), "blue": (30, 40, 210)}


@pytest.fixture()
def synth_set(tmp_path: Path) -> Path:
    """A COCO-VID file with two 3-frame videos of solid-colour 96x64 PNGs under images/."""
    images, annotations, videos = [], [], []
    img_id = ann_id = 0
    for v, (name, rgb) in enumerate(COLOURS.items(), start=1):
        videos.append({"id": v, "name": name})
        d = tmp_path / "images" / name
        d.mkdir(parents=True)
        for k in range(3):
            img_id += 1
            frame = np.empty((64, 96, 3), np.uint8)
            frame[:] = rgb
            cv2.imwrite(str(d / f"{k:06d}.png"), frame[..., ::-1])
            images.append({"id": img_id, "video_id": v, "frame_id": k, "file_name": f"{name}/{k:06d}.png",
                           "width": 96, "height": 64})
            ann_id += 1
            annotations.append({"id": ann_id, "image_id": img_id, "video_id": v, "category_id": 1,
                                "instance_id": v, "bbox": [10 + 5 * k, 10, 30, 30], "area": 900, "iscrowd": 0})
    doc = {"videos": videos, "images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------- drawing
def test_draw_frame_outline_colour_and_untouched_pixels():
    img = np.zeros((200, 300, 3), np.uint8)
    img[:] = (10, 20, 30)
    out = draw_frame(img, np.array([[100.0, 80.0, 60.0, 50.0]]), np.array([7]), ["car"], thickness=2)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(img[0, 0], [10, 20, 30])  # the input is not modified
    colour = track_color(7)
    # left, right and bottom edges of the outline are in the track's colour
    for y, x in ((105, 100), (105, 159), (129, 130)):
        assert tuple(out[y, x]) == colour
    # inside the box and far away: untouched
    assert np.array_equal(out[110, 130], [10, 20, 30])
    assert np.array_equal(out[190, 290], [10, 20, 30])
    assert np.array_equal(out[5, 5], [10, 20, 30])
    # the label's filled background sits just above the box
    assert tuple(out[76, 102]) == colour


def test_track_colours_stable_and_distinct():
    assert track_color(3) == track_color(3)
    assert all(0 <= c <= 255 for c in track_color(-1))
    colours = {track_color(i) for i in range(1, 101)}
    assert len(colours) >= 95
    # saturated: never a gray that would vanish on the gray canvas
    assert all(max(c) - min(c) >= 40 for c in colours)


def test_draw_frame_skips_nan_and_far_boxes():
    img = np.zeros((50, 60, 3), np.uint8)
    boxes = np.array([[np.nan, 1, 2, 3], [1e12, -1e12, 5, 5]])
    out = draw_frame(img, boxes, np.array([1, 2]), None)
    assert not out.any()
    with pytest.raises(ValueError):
        draw_frame(img, boxes, np.array([1]), None)


def test_contact_sheet_grid_size():
    tiles = [[np.full((40, 80, 3), 200, np.uint8)] * 3, [np.full((40, 80, 3), 50, np.uint8)]]
    sheet = contact_sheet(tiles, [["a", "b", "c"], ["d"]], tile_width=80, tile_height=40)
    assert sheet.shape[:2] == sheet_shape(2, 3, 80, 40)


# --------------------------------------------------------------------------- render_preview
def test_sheet_on_fixture_without_images(tmp_path):
    ts = read_tracks(FIXTURE)
    out = tmp_path / "sheet.png"
    report: dict = {}
    with pytest.warns(PreviewWarning, match="not found") as rec:
        assert render_preview(ts, out, report=report) == out
    assert sum("not found" in str(w.message) for w in rec) == 1  # one warning for 8 missing images
    sheet = read_rgb(out)
    # 1 video x 8 frames; frames are 512x256 -> 320x160 thumbnails
    assert sheet.shape[:2] == sheet_shape(1, 8, DEFAULT_TILE_WIDTH, 160)
    assert report["missing_images"] == 8 and report["frames"] == 8 and report["boxes"] == 10
    # the thumbnails are the neutral gray canvas, with coloured boxes drawn on it
    assert (np.abs(sheet.astype(int) - GRAY).sum(axis=2) == 0).mean() > 0.5
    colours = {track_color(int(t)) for t in ts.boxes.track}
    flat = {tuple(p) for p in sheet.reshape(-1, 3)[::7].tolist()}
    assert colours & flat


def test_sheet_columns_every_and_video_choice(synth_set, tmp_path):
    ts = read_tracks(synth_set)
    out = tmp_path / "s.jpg"
    report: dict = {}
    render_preview(ts, out, videos=["blue"], cols=2, size=(96, 64), report=report)
    assert read_rgb(out).shape[:2] == sheet_shape(1, 2, 96, 64)
    assert report["videos"] == 1 and report["frames"] == 2
    with pytest.raises(UsageError, match="no video named 'green'"):
        render_preview(ts, tmp_path / "x.png", videos=["green"])
    with pytest.raises(UsageError, match="unknown preview type"):
        render_preview(ts, tmp_path / "x.gif")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.gif").exists()


def test_sheet_with_real_images_shows_their_colours(synth_set, tmp_path, recwarn):
    ts = read_tracks(synth_set)  # file names are relative to images/ next to the JSON
    out = tmp_path / "sheet.png"
    render_preview(ts, out)
    assert not [w for w in recwarn if issubclass(w.category, PreviewWarning)]
    sheet = read_rgb(out).astype(int)
    h, w = sheet_shape(2, 3, DEFAULT_TILE_WIDTH, round(DEFAULT_TILE_WIDTH * 64 / 96))
    assert sheet.shape[:2] == (h, w)
    for k, rgb in enumerate(COLOURS.values()):
        row = sheet[k * h // 2:(k + 1) * h // 2]
        close = (np.abs(row - np.array(rgb)).sum(axis=2) < 12).mean()
        assert close > 0.3, (k, close)


def test_undecodable_image_is_an_annotation_error(synth_set, tmp_path):
    bad = tmp_path / "images" / "red" / "000001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(AnnotationError, match="000001.png.*cannot decode"):
        render_preview(read_tracks(synth_set), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_synth_dir_and_explicit_root(synth_set, tmp_path):
    ts = load_preview_source(tmp_path)  # a directory holding annotations.json
    assert ts.num_videos == 2
    moved = tmp_path / "elsewhere"
    (tmp_path / "images").rename(moved)
    with pytest.warns(PreviewWarning):
        render_preview(ts, tmp_path / "gray.png")
    report: dict = {}
    render_preview(ts, tmp_path / "real.png", image_root=moved, report=report)
    assert report["missing_images"] == 0


def test_mp4_frame_count_and_size(synth_set, tmp_path):
    ts = read_tracks(synth_set)
    out = tmp_path / "prev.mp4"
    render_preview(ts, out, fps=5)
    assert video_info(out) == (6, 96, 64)
    render_preview(ts, out, every=2, max_frames=1, size=(160, 120))  # replaced atomically
    assert video_info(out) == (2, 160, 120)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_mp4_on_fixture_without_images(tmp_path):
    out = tmp_path / "fixture.mp4"
    with pytest.warns(PreviewWarning):
        render_preview(read_tracks(FIXTURE), out)
    assert video_info(out) == (8, 512, 256)


# --------------------------------------------------------------------------- clips
def test_preview_clip_and_clip_sheet(tmp_path):
    F, H, W, N = 5, 48, 63, 2  # odd width: padded to even for the encoder
    frames = np.full((F, H, W, 3), 90, np.uint8)
    boxes = np.zeros((F, N, 4))
    boxes[:, 0] = [5, 5, 20, 20]
    boxes[:, 1] = [30, 10, 15, 25]
    mask = np.ones((F, N), bool)
    mask[3:, 1] = False
    out = preview_clip(frames, boxes, mask, np.array([4, 9]), ["car", "person"], tmp_path / "clip.mp4", fps=8)
    assert video_info(out) == (F, 62, 48)
    sheet = clip_sheet(frames, boxes, mask, np.array([4, 9]), ["car", "person"], cols=3, tile_width=64, title="c0")
    assert sheet.shape[:2] == sheet_shape(1, 3, 64, round(64 * H / W))
    flat = {tuple(p) for p in sheet.reshape(-1, 3).tolist()}
    assert track_color(4) in flat and track_color(9) in flat


# --------------------------------------------------------------------------- CLI
def test_cli_preview(tmp_path):
    out = tmp_path / "out.png"
    r = tdgen("preview", FIXTURE, "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and read_rgb(out).shape[0] > 100
    summary = json.loads(r.stdout)
    assert summary["output"] == str(out) and summary["frames"] == 8
    assert r.stderr.count("warning:") == 1

    bad = tmp_path / "out.bmp"
    r = tdgen("preview", FIXTURE, "-o", bad)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "unknown preview type" in lines[0]
    assert not bad.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
