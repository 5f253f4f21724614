"""Checkpoint bookkeeping without a training run: the newest complete one, keep-N, log truncation,
resume checks."""

from __future__ import annotations

import json

import pytest

from tdgen.errors import UsageError
from tdgen.train.checkpoints import (
    STATE_FILE,
    check_resumable,
    checkpoint_name,
    latest_checkpoint,
    prune_checkpoints,
    truncate_log,
)
from tdgen.train.config import RESUME_FIELDS, TrainConfig


def _checkpoint(root, step, complete=True):
    path = root / "checkpoints" / checkpoint_name(step)
    path.mkdir(parents=True)
    if complete:
        (path / STATE_FILE).write_text(json.dumps({"step": step}))
    return path


def test_latest_checkpoint_is_the_highest_complete_step(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 20)
    best = _checkpoint(tmp_path, 100)  # sorts before step 20 as text; as a number it is later
    _checkpoint(tmp_path, 300, complete=False)  # interrupted while writing
    (tmp_path / "checkpoints" / ".step-000400.tmp").mkdir()
    (tmp_path / "checkpoints" / "step-latest").mkdir()
    (tmp_path / "checkpoints" / "step-latest" / STATE_FILE).write_text("{}")
    assert checkpoint_name(100) == "step-000100"
    assert latest_checkpoint(tmp_path) == best


def test_prune_keeps_the_newest_complete_checkpoints(tmp_path):
    for step in (2, 4, 6, 8):
        _checkpoint(tmp_path, step)
    partial = _checkpoint(tmp_path, 10, complete=False)
    prune_checkpoints(tmp_path / "checkpoints", 2)
    left = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert left == ["step-000006", "step-000008", partial.name]  # an incomplete one is not counted


def test_truncate_log_keeps_the_steps_up_to_the_resumed_one(tmp_path):
    log = tmp_path / "train_log.jsonl"
    truncate_log(log, 3)
    assert not log.exists()
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3, 4, 5)]
    log.write_text("\n".join(lines[:4]) + "\n" + lines[4][:7] + "\n")  # the last line cut off by a kill
    truncate_log(log, 3)
    assert log.read_text() == "".join(line + "\n" for line in lines[:3])


def test_resume_needs_the_same_settings_and_process_count(tmp_path):
    ann = tmp_path / "a.json"
    config = TrainConfig(ann=ann, out=tmp_path / "o", model="m", lr=1e-4)
    fields = config.resume_fields()
    assert set(fields) == set(RESUME_FIELDS) and fields["ann"] == str(ann)
    state = {"config": dict(fields), "world_size": 2}
    check_resumable(tmp_path, state, fields, 2)
    check_resumable(tmp_path, {"config": {}}, fields, 4)  # an old checkpoint that recorded neither
    with pytest.raises(UsageError, match="processes"):
        check_resumable(tmp_path, state, fields, 1)
    changed = TrainConfig(ann=ann, out=tmp_path / "o", model="m", lr=3e-4).resume_fields()
    with pytest.raises(UsageError, match=r"lr=0\.0001.*lr=0\.0003"):
        check_resumable(tmp_path, state, changed, 2)
