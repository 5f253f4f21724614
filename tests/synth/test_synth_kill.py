"""`tdgen synth` killed with -9 at bad moments, and run twice on one folder, in real processes.

The processes run this file as a script (see ``_driver``): the real ``tdgen synth`` command
with the model replaced by the stand-in generator, so a run starts in about a second and every
file, lock and exit code is the real one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DEFAULTS = {"frames": 4, "slots": 6, "prompt_template": "a video of {categories}", "resolution": None}


# --------------------------------------------------------------------------- the driver process


def _driver(argv: list[str]) -> None:
    """``synth ARGS...`` runs ``tdgen synth ARGS`` with the stand-in model; ``finalize-loop OUT``
    finalizes OUT over and over (to be killed). Environment: FAKE_DELAY (seconds per batch),
    PAUSE_AT=settings-tmp|settings-done (stop there, print PAUSED and wait to be killed)."""
    sys.path.insert(0, str(HERE))
    from fakegen import FakeGenerator

    import tdgen.modeldir
    import tdgen.synth.generator
    import tdgen.synth.outputs

    delay = float(os.environ.get("FAKE_DELAY", "0"))
    tdgen.synth.generator.PipelineGenerator = lambda model, **kw: FakeGenerator(delay=delay)
    tdgen.modeldir.model_defaults = lambda model: dict(DEFAULTS)
    pause = os.environ.get("PAUSE_AT")

    def paused() -> None:
        print("PAUSED", flush=True)
        time.sleep(600)

    if pause == "settings-tmp":
        # stop inside atomic_write_bytes of synth.json: the temp file written, not yet renamed
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".synth.json."):
                paused()
            real_fsync(fd)

        os.fsync = fsync
    elif pause == "settings-done":
        real_write = tdgen.synth.outputs.SynthDir._write_record

        def write_record(self, settings):
            real_write(self, settings)
            paused()  # before images/ and clips/ exist

        tdgen.synth.outputs.SynthDir._write_record = write_record
    if argv[0] == "finalize-loop":
        from tdgen.synth import finalize

        # a slower disk: the temp files of annotations.json and manifest.parquet live longer, so
        # a kill leaves one behind more often
        real_fsync = os.fsync

        def slow_fsync(fd: int) -> None:
            time.sleep(0.02)
            real_fsync(fd)

        os.fsync = slow_fsync
        finalize(argv[1])  # once before READY: the lazy imports are done, kills land in the loop
        print("READY", flush=True)
        while True:
            finalize(argv[1])
    import tdgen.cli

    sys.argv = ["tdgen", *argv]
    tdgen.cli.main()


if __name__ == "__main__":
    _driver(sys.argv[1:])
    sys.exit(0)


# --------------------------------------------------------------------------- helpers

from make_mot import write_mot_split  # noqa: E402


@pytest.fixture(scope="module")
def mot(tmp_path_factory):
    # 25 clips of 4 frames: long enough for kills to land mid-run
    return write_mot_split(tmp_path_factory.mktemp("mot") / "train", lengths=(60, 40))


def _args(mot: Path, out: Path, *extra: str) -> list[str]:
    return ["synth", "--ann", str(mot), "--out", str(out), "--model", "fake", "--device", "cpu", "--steps", "2",
            "--batch-size", "1", "-q", *extra]


def start(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **env})


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    p = start(args, **env)
    stdout, stderr = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


def kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)


def wait_for_lock(out: Path, pid: int, timeout: float = 60) -> None:
    """Until process ``pid`` holds the unsharded run's lock (its PID is in the lock file)."""
    lock = out / ".tdgen.shard-0-of-1.lock"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if lock.read_text().strip() == str(pid):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError("the run never took its lock")


def took_over(out: Path, p: subprocess.Popen, timeout: float = 60) -> bool:
    """Wait until ``p`` either exits (False) or holds the unsharded run's lock (True)."""
    lock = out / ".tdgen.shard-0-of-1.lock"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            return False
        try:
            if lock.read_text().strip() == str(p.pid):
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError("the second run neither stopped nor took the lock")


def temp_files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*") if ".tmp" in p.name or ".old-" in p.name)


def check_consistent(out: Path) -> None:
    """Every finished clip's frames exist, and annotations.json lists only frames that exist."""
    for frag in (out / "clips").glob("*.json") if (out / "clips").exists() else []:
        doc = json.loads(frag.read_text())
        for fr in doc["images"] if "images" in doc else doc["frames"]:  # a COCO-VID fragment, or the old layout
            assert (out / fr["file_name"]).is_file(), f"{frag.name} is finished but {fr['file_name']} is gone"
    if (out / "annotations.json").exists():
        doc = json.loads((out / "annotations.json").read_text())
        missing = [im["file_name"] for im in doc["images"] if not (out / im["file_name"]).is_file()]
        assert not missing, f"annotations.json lists frames that do not exist: {missing[:3]}"


@pytest.fixture(scope="module")
def reference(mot, tmp_path_factory):
    """The same command, uninterrupted."""
    out = tmp_path_factory.mktemp("ref") / "synth"
    r = run(_args(mot, out))
    assert r.returncode == 0, r.stderr
    return out


def _manifest(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # timings differ by run


def same_outputs(out: Path, ref: Path) -> None:
    """The outputs of an uninterrupted run of the same command (up to the manifest's timings)."""
    assert (out / "annotations.json").read_bytes() == (ref / "annotations.json").read_bytes()
    assert _manifest(out) == _manifest(ref)
    frames = sorted(p.relative_to(ref) for p in (ref / "images").rglob("*.png"))
    assert frames == sorted(p.relative_to(out) for p in (out / "images").rglob("*.png"))
    assert all((out / f).read_bytes() == (ref / f).read_bytes() for f in frames)


# --------------------------------------------------------------------------- tests


def test_a_busy_out_is_refused_naming_the_pid_and_free_again_after_a_kill(mot, reference, tmp_path):
    out = tmp_path / "synth"
    first = start(_args(mot, out), FAKE_DELAY="0.5")
    try:
        wait_for_lock(out, first.pid)
        second = run(_args(mot, out))
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip() == f"error: {out}: in use by another tdgen synth (pid {first.pid})"
        assert first.poll() is None
    finally:
        kill(first)
    third = run(_args(mot, out))  # the killed holder's lock went with it
    assert third.returncode == 0, third.stderr
    same_outputs(out, reference)
    assert temp_files(out) == []


@pytest.mark.parametrize("where", ["settings-tmp", "settings-done"])
def test_killed_while_the_settings_record_is_written_the_same_command_resumes(mot, reference, tmp_path, where):
    out = tmp_path / "synth"
    p = start(_args(mot, out), PAUSE_AT=where)
    try:
        assert p.stdout.readline().strip() == "PAUSED"
    finally:
        kill(p)
    if where == "settings-tmp":
        assert list(out.glob(".synth.json.*.tmp")) and not (out / "synth.json").exists()
    else:
        assert (out / "synth.json").exists() and not (out / "images").exists()
    r = run(_args(mot, out))
    assert r.returncode == 0, r.stderr
    same_outputs(out, reference)
    assert temp_files(out) == []


@pytest.mark.slow
def test_kill_during_finalize_ten_times_then_resume_gives_the_same_bytes(mot, reference, tmp_path):
    import shutil

    out = tmp_path / "synth"
    shutil.copytree(reference, out)
    want = {name: (out / name).read_bytes() for name in ("annotations.json", "manifest.parquet")}
    rng = random.Random(15)
    left_temps = 0
    for _ in range(10):
        p = start(["finalize-loop", str(out)])
        try:
            assert p.stdout.readline().strip() == "READY"
            time.sleep(rng.uniform(0, 0.2))
        finally:
            kill(p)
        check_consistent(out)
        left_temps += bool(temp_files(out))
        r = run(_args(mot, out))  # the resumed run: nothing to generate, then it finalizes
        assert r.returncode == 0, r.stderr
        assert {name: (out / name).read_bytes() for name in want} == want  # the very same bytes
        assert temp_files(out) == []
    assert left_temps > 0, "no kill landed while a file was being written"


@pytest.fixture(scope="module")
def long_mot(tmp_path_factory):
    """100 clips: with a delay per clip a run outlasts all the trials, so every kill lands mid-run."""
    return write_mot_split(tmp_path_factory.mktemp("long") / "train", lengths=(200, 200), tracks=(5, 4))


@pytest.mark.slow
def test_random_kills_while_a_second_run_is_refused_never_list_missing_frames(long_mot, tmp_path):
    from tdgen.synth import finalize

    ref = tmp_path / "ref"
    r = run(_args(long_mot, ref))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "synth"
    rng = random.Random(4)
    refused = 0
    for trial in range(10):
        first = start(_args(long_mot, out), FAKE_DELAY="0.15")
        second = None
        try:
            wait_for_lock(out, first.pid)
            second = start(_args(long_mot, out), FAKE_DELAY="0.15")
            if trial % 2:  # kill while the second one is still starting (or being refused)
                time.sleep(rng.uniform(0, 1.0))
                kill(first)
            if took_over(out, second):  # it got the folder after the kill: it is the run to kill now
                assert trial % 2
                time.sleep(rng.uniform(0, 1.0))
                kill(second)
            else:
                _, err = second.communicate(timeout=120)
                assert second.returncode == 2, err
                assert err.strip() == f"error: {out}: in use by another tdgen synth (pid {first.pid})"
                refused += 1
                check_consistent(out)
                finalize(out)  # a finalize beside the live run lists only frames that exist
                check_consistent(out)
                time.sleep(rng.uniform(0, 0.5))
        finally:
            kill(first)  # at a random moment of its run
            if second is not None:
                kill(second)
        check_consistent(out)
    assert refused >= 5
    assert 0 < len(list((out / "clips").glob("*.json"))) < len(list((ref / "clips").glob("*.json")))
    r = run(_args(long_mot, out))
    assert r.returncode == 0, r.stderr
    check_consistent(out)
    same_outputs(out, ref)
    assert temp_files(out) == []
