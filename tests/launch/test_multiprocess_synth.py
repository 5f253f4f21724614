"""``tdgen synth`` under real launchers on CPU: ``torchrun`` and ``accelerate launch``, 2 processes.

The ranks of one launch share one ``--out``; their clips together must be the clips of one
process, byte for byte (every frame and ``annotations.json``), and only the last rank to end
finalizes: exactly one rank's ``--json`` summary has ``finalized`` set. A worker killed with
SIGKILL leaves its shard half made; the same launch run again makes only what is missing.

Each test starts launchers that start interpreters importing torch: the slow tier.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tdgen.tracks.clips import stable_shard

from helpers import tdgen

pytestmark = pytest.mark.slow

ANN = Path(__file__).resolve().parents[2] / "examples" / "mot_mini_cocovid.json"
CLIPS = 4
# small on purpose: 8 frames of 64x48 (the shared tiny model), 2 sampler steps; one clip per
# batch so that a worker can be killed between two of its clips
FLAGS = ("--frames", "8", "--max-clips", str(CLIPS), "--steps", "2", "--batch-size", "1", "--json", "-q")
TIMEOUT = 300


def _synth_args(model: Path, out: Path) -> list[str]:
    return ["synth", "--ann", str(ANN), "--out", str(out), "--model", str(model), *FLAGS]


def _torchrun(*args: str) -> list[str]:
    # --standalone: a rendezvous on a free local port, so parallel test runs never collide
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "tdgen.cli", *args]


def _accelerate(*args: str) -> list[str]:
    # --multi_gpu is accelerate's torch.distributed launcher; on a machine without CUDA its
    # processes run on the CPU. (--cpu --num_processes 2 starts ONE process unless mpirun is set
    # up: accelerate's multi-CPU launch goes through MPI.) Every setting is a flag, so no
    # `accelerate config` file is read or needed.
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", "0", "-m", "tdgen.cli", *args]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    # one thread per rank (2 ranks on a small CPU); accelerate's config lookup kept out of ~
    return {**env, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}


def _launch(argv: list[str], tmp_path: Path) -> dict[int, dict]:
    """Run a launch to its end; each rank's ``--json`` summary, by rank."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    return _per_rank(r.stdout)


def _per_rank(stdout: str) -> dict[int, dict]:
    ranks = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            summary = json.loads(line)
            k, n = summary["plan"]["shard"]
            assert n == 2 and k not in ranks
            ranks[k] = summary
    assert sorted(ranks) == [0, 1], stdout[-3000:]
    return ranks


def _finalizers(ranks: dict[int, dict]) -> list[int]:
    return [k for k, s in ranks.items() if s["finalized"] is not None]


def _digests(out: Path) -> dict[str, str]:
    """sha256 of every frame and of annotations.json, by path inside ``out``."""
    files = [out / "annotations.json", *sorted((out / "images").rglob("*"))]
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def _manifest_rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    # "seconds" is how long the clip took: the one column that is not a function of the settings
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _assert_same_as(out: Path, ref: Path) -> None:
    got, want = _digests(out), _digests(ref)
    assert sum(k.startswith("images/") for k in want) == CLIPS * 8
    assert got == want
    assert _manifest_rows(out) == _manifest_rows(ref)
    # nothing a rank left behind: no shard lock, no temporary frame folder or fragment
    assert not list(out.glob(".tdgen.shard-*"))
    assert not [p.name for d in ("images", "clips") for p in (out / d).iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def reference(shared_tiny_model, tmp_path_factory) -> Path:
    """One process, no launcher: the clips every launch must reproduce.

    It runs with the ranks' thread count (one): on the CPU the thread count changes how a
    reduction is split and so its rounding (1 against 2 threads: 6 of 294,912 pixel values one
    level apart on these clips), while the launch itself must change nothing."""
    out = tmp_path_factory.mktemp("one-process") / "synth"
    r = tdgen(*_synth_args(shared_tiny_model, out), check=True, subprocess=True,
              env=_env(tmp_path_factory.mktemp("one-process-home")))
    summary = json.loads(r.last_json_line())
    assert summary["done"] == CLIPS and summary["finalized"]["clips"] == CLIPS
    return out


def _shard_sizes(ref: Path) -> dict[int, int]:
    ids = [p.stem for p in (ref / "clips").glob("*.json")]
    return {k: sum(stable_shard(c, 2) == k for c in ids) for k in (0, 1)}


def test_accelerate_two_ranks_make_the_clips_of_one_process_and_one_finalizes(reference, shared_tiny_model,
                                                                              tmp_path):
    # torchrun gets the same checks in the next test (its second launch), which saves a launch
    out = tmp_path / "synth"
    ranks = _launch(_accelerate(*_synth_args(shared_tiny_model, out)), tmp_path)
    sizes = _shard_sizes(reference)
    for k, s in ranks.items():
        assert s["assigned"] == s["done"] == sizes[k] and s["skipped"] == 0 and not s["failed"]
    assert sum(s["done"] for s in ranks.values()) == CLIPS
    finalizers = _finalizers(ranks)
    assert len(finalizers) == 1, ranks
    assert ranks[finalizers[0]]["finalized"]["clips"] == CLIPS
    _assert_same_as(out, reference)


def _fragments(out: Path) -> dict[str, tuple[int, int]]:
    """Finished clips: (inode, mtime) of each fragment, to see that a rerun leaves them alone."""
    if not (out / "clips").is_dir():
        return {}
    return {p.stem: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "clips").glob("*.json")
            if not p.name.startswith(".")}


def test_torchrun_worker_killed_mid_run_resumes_only_its_own_shard(reference, shared_tiny_model, tmp_path):
    """torchrun, 2 ranks: SIGKILL one worker after its first clip (torchrun then stops the
    launch), run the launch again: each rank makes only its shard's missing clips, one rank
    finalizes, and the result is the one process's, byte for byte."""
    sizes = _shard_sizes(reference)
    victim = max(sizes, key=lambda k: sizes[k])
    assert sizes[victim] >= 2  # room to be killed between two of its clips
    out = tmp_path / "synth"
    lock = out / f".tdgen.shard-{victim}-of-2.lock"
    proc = subprocess.Popen(_torchrun(*_synth_args(shared_tiny_model, out)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    try:
        deadline = time.time() + TIMEOUT
        pid = None
        while time.time() < deadline and proc.poll() is None:
            done = [c for c in _fragments(out) if stable_shard(c, 2) == victim]
            if done:
                # the worker's PID, written when it claimed its shard (the lock is gone if it ended)
                pid = int(lock.read_text().strip()) if lock.exists() else None
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        assert pid is not None, "the launch ended before its worker could be killed"
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, err[-2000:]  # torchrun saw its worker die and stopped the launch
    before = _fragments(out)
    done_before = {k: sum(stable_shard(c, 2) == k for c in before) for k in (0, 1)}
    assert 0 < done_before[victim] < sizes[victim], "the worker finished its shard before it was killed"
    assert not (out / "annotations.json").exists()  # no rank finalized half a launch

    ranks = _launch(_torchrun(*_synth_args(shared_tiny_model, out)), tmp_path)
    for k, s in ranks.items():
        # each rank skips what its shard already had and makes only its shard's missing clips
        assert s["skipped"] == done_before[k] and s["done"] == sizes[k] - done_before[k], (k, s)
    assert len(_finalizers(ranks)) == 1
    after = _fragments(out)
    assert {c: after[c] for c in before} == before  # the clips finished before the kill are untouched
    _assert_same_as(out, reference)
