"""make_detector: which backend a --detector / --detections value picks, and one-line refusals."""

from __future__ import annotations

import pytest

from tdgen.errors import UsageError
from tdgen.gate import PrecomputedDetections, ShapesDetector, make_detector


def _refused(*args, **kw) -> str:
    with pytest.raises(UsageError) as e:
        make_detector(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 2
    return msg


def test_backends_by_value(tmp_path):
    shapes = make_detector("shapes", None)
    assert isinstance(shapes, ShapesDetector) and shapes.name == "shapes"
    dets = make_detector(None, tmp_path)
    assert isinstance(dets, PrecomputedDetections) and dets.directory == tmp_path
    assert dets.name == "detections"


def test_neither_or_both_are_refused(tmp_path):
    assert "give one of --detector" in _refused(None, None)
    assert "not both" in _refused("shapes", tmp_path)


def test_unknown_names_and_wrong_files(tmp_path):
    assert "unknown detector" in _refused("yolov8", None)
    (tmp_path / "model.pt").write_bytes(b"x")
    assert "not an .onnx file" in _refused(str(tmp_path / "model.pt"), None)
    assert "no such file" in _refused(str(tmp_path / "missing.onnx"), None)
    (tmp_path / "dir.onnx").mkdir()
    assert "not a file" in _refused(str(tmp_path / "dir.onnx"), None)
    (tmp_path / "f.txt").write_text("")
    assert "not a directory" in _refused(None, tmp_path / "f.txt")
    assert "unknown option" in _refused(None, tmp_path, threshold=1)
