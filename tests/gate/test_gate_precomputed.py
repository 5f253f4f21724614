"""The detections backend: MOT det.txt per clip, both layouts, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from tdgen.errors import AnnotationError, UsageError
from tdgen.gate import FrameDetections, PrecomputedDetections, make_detector
from tdgen.gate.precomputed import detection_files

FRAMES = np.zeros((3, 20, 30, 3), np.uint8)


def _write(path, dets: list[FrameDetections], extra: str = ",-1,-1,-1") -> None:
    """det.txt lines ``frame,-1,x,y,w,h,score`` (plus MOT's world columns)."""
    lines = []
    for t, d in enumerate(dets, 1):
        for (x1, y1, x2, y2), s in zip(d.boxes, d.scores):
            vals = (float(v) for v in (x1, y1, x2 - x1, y2 - y1, s))
            lines.append(f"{t},-1," + ",".join(repr(v) for v in vals) + extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


CLIP = [FrameDetections.from_arrays([[1.5, 2, 11.5, 7], [0, 0, 30, 20]], [0.9, 0.25]),
        FrameDetections.empty(),
        FrameDetections.from_arrays([[3, 4, 5, 6]], [1.0])]


@pytest.mark.parametrize("layout", ["flat", "sequence"])
def test_round_trip_both_layouts(tmp_path, layout):
    path = tmp_path / "clip_0001.txt" if layout == "flat" else tmp_path / "clip_0001" / "det" / "det.txt"
    _write(path, CLIP, extra="" if layout == "flat" else ",-1,-1,-1")
    det = make_detector(None, tmp_path)
    assert det.name == "detections"
    got = det.detect_clip(FRAMES, "clip_0001")
    assert [len(d) for d in got] == [2, 0, 1]
    for a, b in zip(got, CLIP):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.classes, np.full(len(b), -1))
    assert detection_files(tmp_path) == {"clip_0001": path}


def test_missing_clip_names_the_paths_tried(tmp_path):
    det = PrecomputedDetections(tmp_path)
    with pytest.raises(AnnotationError) as e:
        det.detect_clip(FRAMES, "clip_0007")
    msg = str(e.value)
    assert "clip_0007" in msg and str(tmp_path / "clip_0007.txt") in msg
    assert str(tmp_path / "clip_0007" / "det" / "det.txt") in msg and "\n" not in msg
    assert e.value.exit_code == 2


def test_two_files_for_one_clip_are_refused(tmp_path):
    _write(tmp_path / "a.txt", CLIP)
    _write(tmp_path / "a" / "det" / "det.txt", CLIP)
    with pytest.raises(AnnotationError, match="two detection files"):
        PrecomputedDetections(tmp_path).detect_clip(FRAMES, "a")
    with pytest.raises(AnnotationError, match="two detection files"):
        PrecomputedDetections(tmp_path).check_clips(["a"])


def test_check_clips_refuses_detections_for_clips_not_in_the_output(tmp_path):
    _write(tmp_path / "clip_0001.txt", CLIP)
    _write(tmp_path / "clip_0009" / "det" / "det.txt", CLIP)
    (tmp_path / "README.md").write_text("not detections")
    det = PrecomputedDetections(tmp_path)
    det.check_clips(["clip_0001", "clip_0009", "clip_0002"])  # clips without files fail later, when read
    with pytest.raises(AnnotationError) as e:
        det.check_clips(["clip_0001"])
    assert "clip_0009" in str(e.value) and "clip_0001" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("line,what", [
    ("1,-1,2,3,4", "line 2: 5 columns"),
    ("1,-1,2,x,4,5,0.5", "line 2: y: 'x' is not a number"),
    ("1,-1,2,3,4,nan,0.5", "line 2: h: 'nan' is not a finite number"),
    ("0,-1,2,3,4,5,0.5", "line 2: frame 0 is not a frame of the clip (1..3)"),
    ("4,-1,2,3,4,5,0.5", "line 2: frame 4 is not a frame of the clip (1..3)"),
    ("1.5,-1,2,3,4,5,0.5", "line 2: frame 1.5 is not a frame"),
    ("1,-1,2,3,0,5,0.5", "line 2: box width 0 and height 5 must be positive"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, what):
    path = tmp_path / "c.txt"
    path.write_text("1,-1,0,0,5,5,0.9\n" + line + "\n")
    with pytest.raises(AnnotationError) as e:
        PrecomputedDetections(tmp_path).detect_clip(FRAMES, "c")
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert what in msg


def test_blank_lines_and_extra_columns_are_fine_but_binary_is_not(tmp_path):
    (tmp_path / "c.txt").write_text("\n1, -1, 0, 0, 5, 5, 0.9, -1, -1, -1, extra\n\n")
    d = PrecomputedDetections(tmp_path).detect_clip(FRAMES, "c")
    np.testing.assert_array_equal(d[0].boxes, [[0, 0, 5, 5]])
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe1,2")
    with pytest.raises(AnnotationError, match="not UTF-8"):
        PrecomputedDetections(tmp_path).detect_clip(FRAMES, "b")


def test_bad_directory_and_clip_ids(tmp_path):
    with pytest.raises(UsageError, match="not a directory"):
        make_detector(None, tmp_path / "nope")
    with pytest.raises(UsageError, match="not a clip id"):
        PrecomputedDetections(tmp_path).detect_clip(FRAMES, "../x")
