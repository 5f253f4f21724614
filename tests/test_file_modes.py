"""What we write is readable by the user's team: the permissions ``open``/``mkdir`` give under
the umask, never the private 0600/0700 that ``mkstemp``, ``mkdtemp`` and the safetensors
library give their files (a model or preview one engineer made that nobody else on the cluster
could read)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tdgen.atomic import atomic_write_text, give_plain_modes

from helpers import tree_modes


def test_give_plain_modes_follows_the_umask_and_leaves_links_alone(tmp_path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    for p in (root / "a.safetensors", root / "sub" / "b.json"):
        p.write_bytes(b"x")
        p.chmod(0o600)
    (root / "sub").chmod(0o700)
    root.chmod(0o700)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"y")
    outside.chmod(0o600)
    (root / "link").symlink_to(outside)
    old = os.umask(0o027)
    try:
        give_plain_modes(root)
    finally:
        os.umask(old)
    assert tree_modes(root) == {"dirs": {"0o750"}, "files": {"0o640"}}
    assert outside.stat().st_mode & 0o777 == 0o600  # a link's target is not ours


def test_atomic_files_get_the_umask_not_mkstemp_0600(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_a_new_model_directory_is_readable_by_the_team(tmp_path, umask_022):
    pytest.importorskip("torch")
    from tdgen.modeldir import init_tiny_model

    out = init_tiny_model(tmp_path / "tiny", seed=0, resolution=(32, 32), frames=2)
    # the three safetensors files come out of the safetensors library as 0600
    assert len(list(out.rglob("*.safetensors"))) == 3
    assert tree_modes(out) == {"dirs": {"0o755"}, "files": {"0o644"}}


def test_a_preview_video_is_readable_by_the_team(tmp_path, umask_022):
    pytest.importorskip("cv2")
    from tdgen.preview import preview_clip

    frames = np.full((3, 32, 32, 3), 90, np.uint8)
    boxes = np.zeros((3, 1, 4), np.float32)
    boxes[:, 0] = [4, 4, 20, 20]
    out = preview_clip(frames, boxes, np.ones((3, 1), bool), np.array([1]), ["car"], tmp_path / "clip.mp4", fps=4)
    assert out.stat().st_mode & 0o777 == 0o644
