"""Every optional dependency the extras install imports and works beside the numpy they pull."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import re
import tomllib
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# distribution name -> module name, where the two differ
MODULE = {"opencv-python-headless": "cv2", "pillow": "PIL", "pytest-timeout": "pytest_timeout"}


def _extras() -> dict[str, list[str]]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]


def _distributions() -> list[str]:
    names = set()
    for reqs in _extras().values():
        for req in reqs:
            name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower()
            if name != "tdgen":  # the self-referencing 'all' extra
                names.add(name)
    return sorted(names)


def test_all_extra_covers_every_other_extra():
    extras = _extras()
    listed = re.search(r"\[(.*)\]", extras["all"][0]).group(1).split(",")
    assert sorted(listed) == sorted(k for k in extras if k != "all")


def test_motmetrics_is_not_a_dependency():
    # its last release calls np.asfarray, which numpy 2 removed
    assert "motmetrics" not in _distributions()


@pytest.mark.parametrize("dist", _distributions())
def test_optional_dependency_imports(dist):
    try:
        md.version(dist)
    except md.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed here")
    importlib.import_module(MODULE.get(dist, dist.replace("-", "_")))


def test_eval_backend_default_needs_no_motmetrics():
    import numpy as np

    from tdgen.evaluate.metrics import mot_metrics

    frame = (np.array([1]), np.array([[0.0, 0.0, 10.0, 10.0]]))
    out = mot_metrics([([frame], [frame])])
    assert out["backend"] == "own" and out["overall"]["mota"] == 1.0
