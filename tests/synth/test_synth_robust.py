"""`tdgen synth` against hostile input: bad flags, foreign folders, left-overs, locks, disk full.

The command runs in process (Typer's CliRunner) with the model replaced by the stand-in
generator (the ``fake_model`` fixture), so everything but the diffusion itself is the real code path.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from tdgen.atomic import atomic_write_bytes
from tdgen.synth import SynthDir, SynthOptions, finalize, run_synth
from tdgen.errors import OutputError, UsageError

from fakegen import FakeGenerator
from helpers import tdgen
from make_mot import write_mot_split


@pytest.fixture()
def mot_split(tmp_path):
    return write_mot_split(tmp_path / "MOT" / "train")


def synth(mot, out, *extra):
    return tdgen("synth", "--ann", mot, "--out", out, "--model", "fake", "--device", "cpu", "--steps", "2", "-q",
                 *extra)


def _one_error_line(r, code=2) -> str:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _opts(ann, out, **kw):
    base = dict(frames=4, stride=4, slots=6, batch_size=2, steps=2)
    base.update(kw)
    return SynthOptions(ann=Path(ann), out=Path(out), **base)


def _listed_frames_exist(out: Path) -> None:
    doc = json.loads((out / "annotations.json").read_text())
    missing = [im["file_name"] for im in doc["images"] if not (out / im["file_name"]).is_file()]
    assert not missing


# --------------------------------------------------------------------------- flags

BAD_FLAGS = [
    (["--frames", "0"], "--frames"),
    (["--slots", "0"], "--slots"),
    (["--steps", "0"], "--steps"),
    (["--steps", "-1"], "--steps"),
    (["--steps", "5000"], "--steps"),
    (["--cfg", "nan"], "--cfg"),
    (["--cfg", "inf"], "--cfg"),
    (["--cfg", "-1"], "--cfg"),
    (["--batch-size", "0"], "--batch-size"),
    (["--stride", "0"], "--stride"),
    (["--step", "0"], "--step"),
    (["--quality", "500", "--image-format", "jpg"], "--quality"),
    (["--quality", "0", "--image-format", "jpg"], "--quality"),
    (["--image-format", "gif"], "--image-format"),
    (["--out-size", "0x0"], "--out-size"),
    (["--out-size", "64x"], "--out-size"),
    (["--out-size", "-64x48"], "--out-size"),
    (["--out-size", "64x48x3"], "--out-size"),
    (["--shard", "3/2"], "--shard"),
    (["--shard", "-1/2"], "--shard"),
    (["--shard", "a/b"], "--shard"),
    (["--max-clips", "0"], "--max-clips"),
    (["--min-tracks", "-1"], "--min-tracks"),
    (["--seed", "-1"], "--seed"),
    (["--overflow", "drop"], "--overflow"),
    (["--guidance-kind", "wild"], "--guidance-kind"),
    (["--unet-batch", "0"], "--unet-batch"),
    (["--dtype", "int8"], "--dtype"),
    (["--device", "gpu0"], "--device"),
    (["--prompt", "a {thing}"], "--prompt"),
]


@pytest.mark.parametrize("flags,named", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flags_are_refused_in_one_line_before_anything_exists(mot_split, tmp_path, fake_model, flags, named):
    out = tmp_path / "synth"
    line = _one_error_line(synth(mot_split, out, *flags))
    assert named in line
    assert not out.exists()
    assert fake_model == []  # refused before a model was even loaded


def test_a_refused_command_leaves_nothing_so_the_corrected_one_just_works(mot_split, tmp_path, fake_model):
    out = tmp_path / "synth"
    _one_error_line(synth(mot_split, out, "--steps", "0"))
    _one_error_line(synth(mot_split, out, "--frames", "0"))
    r = synth(mot_split, out)
    assert r.exit_code == 0, r.stderr
    _listed_frames_exist(out)
    # --frames 0 / --slots 0 are refused, never quietly taken as "the model's default"
    assert json.loads((out / "synth.json").read_text())["clip_spec"]["frames"] == 4


def test_library_callers_get_the_same_checks(mot_split, tmp_path):
    for bad in (dict(steps=0), dict(guidance=float("nan")), dict(batch_size=0), dict(quality=101),
                dict(out_size=(0, 10)), dict(shard=(2, 2)), dict(frames=0)):
        with pytest.raises(UsageError):
            run_synth(_opts(mot_split, tmp_path / "o", **bad), FakeGenerator)
    assert not (tmp_path / "o").exists()


def test_rank_from_the_environment_is_checked(mot_split, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(UsageError, match="RANK/WORLD_SIZE"):
        run_synth(_opts(mot_split, tmp_path / "o"), FakeGenerator)
    assert not (tmp_path / "o").exists()
    monkeypatch.setenv("RANK", "1")
    r = run_synth(_opts(mot_split, tmp_path / "o"), FakeGenerator)
    assert 0 < r.assigned < r.planned and r.done == r.assigned


def test_a_run_whose_every_clip_failed_does_not_block_other_settings(mot_split, tmp_path):
    out = tmp_path / "synth"
    r = run_synth(_opts(mot_split, out), lambda: FakeGenerator(fail_on="SYN"))
    assert r.done == 0 and len(r.failed) == r.planned
    assert (out / "synth.json").exists() and (out / "failures.jsonl").exists()
    # the corrected command claims the folder anew: no --overwrite needed, no stale failures kept
    r2 = run_synth(_opts(mot_split, out, steps=3), FakeGenerator)
    assert r2.done == r2.planned and not r2.failed
    assert json.loads((out / "synth.json").read_text())["steps"] == 3
    assert not (out / "failures.jsonl").exists()
    # once a clip is finished, the record binds
    with pytest.raises(OutputError, match="other settings"):
        run_synth(_opts(mot_split, out, steps=4), FakeGenerator)


# --------------------------------------------------------------------------- finalize


def test_finalize_needs_a_synth_run(mot_split, tmp_path, fake_model):
    missing = tmp_path / "nope"
    line = _one_error_line(tdgen("synth", "--out", missing, "--finalize"))
    assert str(missing) in line
    assert not missing.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    line = _one_error_line(tdgen("synth", "--out", foreign, "--finalize", "--json"))
    assert "synth.json" in line
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    out = tmp_path / "synth"
    assert synth(mot_split, out).exit_code == 0
    (out / "annotations.json").unlink()
    r = tdgen("synth", "--out", out, "--finalize")
    assert r.exit_code == 0, r.stderr
    _listed_frames_exist(out)


def test_leftovers_of_a_killed_finalize_are_removed(mot_split, tmp_path):
    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out, mot=True), FakeGenerator)
    ref = (out / "annotations.json").read_bytes(), (out / "manifest.parquet").read_bytes()
    stray = [out / ".annotations.json.k3j2h1.tmp", out / ".manifest.parquet.abcd1234.tmp"]
    for p in stray:
        p.write_bytes(b"half")
    seq_tmp = out / "mot" / ".SYN-01-000.q1w2e3.tmp"
    (seq_tmp / "gt").mkdir(parents=True)
    kept = [out / ".annotations.json.bak", out / "notes.tmp", out / ".other.x.tmp"]
    for p in kept:
        p.write_text("not tdgen's")
    finalize(out, mot=True)
    assert not any(p.exists() for p in stray) and not seq_tmp.exists()
    assert all(p.exists() for p in kept)
    assert ((out / "annotations.json").read_bytes(), (out / "manifest.parquet").read_bytes()) == ref
    # a resumed run cleans them too (it finalizes)
    stray[0].write_bytes(b"half")
    r = run_synth(_opts(mot_split, out, mot=True), FakeGenerator)
    assert r.done == 0 and not stray[0].exists()


def test_a_damaged_fragment_or_record_is_one_line_naming_it_and_nothing_is_written(mot_split, tmp_path):
    from tdgen.errors import AnnotationError

    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out), FakeGenerator)
    (out / "annotations.json").unlink()
    frag = sorted((out / "clips").glob("*.json"))[0]
    good = frag.read_bytes()
    for damaged in (good[: len(good) // 2], b"[]", b'{"order": 0}'):
        frag.write_bytes(damaged)
        with pytest.raises(AnnotationError, match="damaged clip fragment") as e:
            finalize(out)
        assert e.value.file == str(frag) and "\n" not in str(e.value)
        assert not (out / "annotations.json").exists()
    frag.write_bytes(good)
    # a finished clip whose frames are gone is reported, never listed
    shutil.rmtree(out / "images" / frag.stem)
    with pytest.raises(AnnotationError, match="frames folder .* is missing"):
        finalize(out)
    assert not (out / "annotations.json").exists()
    record = out / "synth.json"
    record.write_bytes(record.read_bytes()[:20])
    with pytest.raises(AnnotationError, match="damaged settings record"):
        finalize(out)


# --------------------------------------------------------------------------- claiming, left-overs


def test_a_folder_holding_only_a_killed_claims_leftovers_counts_as_empty(mot_split, tmp_path):
    out = tmp_path / "synth"
    out.mkdir()
    (out / "images").mkdir()
    (out / "clips").mkdir()
    (out / ".synth.json.x8y7z6.tmp").write_bytes(b'{"half": ')
    (out / ".tdgen.lock").write_bytes(b"")
    (out / ".tdgen.shard-0-of-1.lock").write_bytes(b"4242\n")  # its process is gone: no flock on it
    r = run_synth(_opts(mot_split, out), FakeGenerator)
    assert r.done == r.planned
    assert not list(out.glob(".synth.json.*")) and not (out / ".tdgen.shard-0-of-1.lock").exists()
    # killed after the record was written but before the subfolders were made: the same resumes
    ref = (out / "annotations.json").read_bytes()
    shutil.rmtree(out)
    out.mkdir()
    run_synth(_opts(mot_split, tmp_path / "other"), FakeGenerator)
    shutil.copy(tmp_path / "other" / "synth.json", out / "synth.json")
    r = run_synth(_opts(mot_split, out), FakeGenerator)
    assert r.done == r.planned and (out / "annotations.json").read_bytes() == ref


def test_foreign_folder_is_refused_without_creating_anything(mot_split, tmp_path, fake_model):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    line = _one_error_line(synth(mot_split, out))
    assert "not made by tdgen synth" in line
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]
    (tmp_path / "file").write_text("x")
    assert "not a directory" in _one_error_line(synth(mot_split, tmp_path / "file"))


def test_leftovers_of_killed_clip_writers_are_removed(mot_split, tmp_path):
    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out), FakeGenerator)
    ref = (out / "annotations.json").read_bytes()
    clip = sorted(p.stem for p in (out / "clips").glob("*.json"))[0]
    (out / "clips" / f"{clip}.json").unlink()
    leftovers = [out / "images" / f".{clip}.tmp-123", out / "images" / f".{clip}.old-456",
                 out / "clips" / f".{clip}.json.a1b2c3.tmp", out / ".tdgen-trash-zz"]
    for p in leftovers:
        if p.name.endswith(".tmp"):
            p.write_bytes(b"")
        else:
            p.mkdir()
    g = FakeGenerator()
    r = run_synth(_opts(mot_split, out), lambda: g)
    assert g.calls == [[clip]] and r.done == 1
    assert not any(p.exists() for p in leftovers)
    assert (out / "annotations.json").read_bytes() == ref


def test_renamed_annotations_with_the_same_content_resume(mot_split, tmp_path):
    from tdgen.tracks.cocovid import write_cocovid
    from tdgen.tracks.mot import read_mot

    ann = tmp_path / "train.json"
    write_cocovid(read_mot(mot_split), ann, "mmdet")
    out = tmp_path / "synth"
    first = run_synth(_opts(ann, out), FakeGenerator)
    moved = tmp_path / "elsewhere" / "renamed.json"
    moved.parent.mkdir()
    os.replace(ann, moved)
    g = FakeGenerator()
    r = run_synth(_opts(moved, out), lambda: g)
    assert r.skipped == first.done and r.done == 0 and g.calls == []
    assert json.loads((out / "synth.json").read_text())["source"] == str(ann.resolve())  # recorded, not compared
    # a MOT directory under another name: same
    other = tmp_path / "MOT2"
    shutil.copytree(mot_split, other)
    out2 = tmp_path / "synth2"
    run_synth(_opts(mot_split, out2), FakeGenerator)
    assert run_synth(_opts(other, out2), FakeGenerator).done == 0
    # other content is still refused
    doc = json.loads(moved.read_text())
    doc["annotations"][0]["bbox"][0] += 1
    moved.write_text(json.dumps(doc))
    with pytest.raises(OutputError, match="source_digest"):
        run_synth(_opts(moved, out), FakeGenerator)


def test_overwrite_killed_midway_never_leaves_a_fragment_without_frames(mot_split, tmp_path, monkeypatch):
    import tdgen.synth.outputs as outputs

    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out), FakeGenerator)
    real = os.replace
    calls = []

    def dying_replace(src, dst):
        calls.append(Path(dst).name)
        if Path(dst).name == "images":  # killed after clips/ went, before images/ did
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        run_synth(_opts(mot_split, out, steps=3, overwrite=True), FakeGenerator)
    monkeypatch.setattr(outputs.os, "replace", real)
    assert calls[:2] == ["clips", "images"]
    # the listings and the finished marks went first: nothing names frames that may be gone
    assert not (out / "annotations.json").exists() and not (out / "clips").exists()
    assert (out / "images").is_dir()
    # the old command resumes (regenerating), and the new one claims the folder
    r = run_synth(_opts(mot_split, out), FakeGenerator)
    assert r.done == r.planned
    _listed_frames_exist(out)
    r = run_synth(_opts(mot_split, out, steps=3, overwrite=True), FakeGenerator)
    assert r.done == r.planned and not list(out.glob(".tdgen-trash-*"))


def test_a_finished_clip_is_never_rewritten(tmp_path):
    sd = SynthDir(tmp_path / "o")
    sd.images.mkdir(parents=True)
    sd.clips.mkdir()
    assert sd.write_clip("c1", [b"one"], ["000001.png"], {"clip_id": "c1"})
    inode = (sd.frames_dir("c1") / "000001.png").stat().st_ino
    assert not sd.write_clip("c1", [b"two"], ["000001.png"], {"clip_id": "c1", "v": 2})
    assert (sd.frames_dir("c1") / "000001.png").read_bytes() == b"one"
    assert (sd.frames_dir("c1") / "000001.png").stat().st_ino == inode
    # frames of an unfinished clip already in place are swapped out, leaving no temp folder
    (sd.frames_dir("c2")).mkdir()
    (sd.frames_dir("c2") / "000001.png").write_bytes(b"stale")
    assert sd.write_clip("c2", [b"new"], ["000001.png"], {"clip_id": "c2"})
    assert (sd.frames_dir("c2") / "000001.png").read_bytes() == b"new"
    assert sorted(p.name for p in sd.images.iterdir()) == ["c1", "c2"]


# --------------------------------------------------------------------------- locks


def _settings_of(out: Path) -> dict:
    return json.loads((out / "synth.json").read_text())


def test_a_live_run_refuses_another_and_ranks_share(mot_split, tmp_path):
    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out, shard=(0, 2)), FakeGenerator)
    sd = SynthDir(out)
    pid = os.getpid()  # flock is per open file, so a second holder in this process is refused too
    with sd.session(_settings_of(out), (0, 2)):
        assert (out / ".tdgen.shard-0-of-2.lock").read_text().strip() == str(pid)
        for shard in (None, (0, 2), (0, 3), (2, 3)):
            with pytest.raises(OutputError, match=rf"in use by another tdgen synth \(pid {pid}\)"):
                run_synth(_opts(mot_split, out, shard=shard), FakeGenerator)
        # another settings is refused while a rank is live, --overwrite or not
        with pytest.raises(OutputError, match="in use by another tdgen synth"):
            run_synth(_opts(mot_split, out, shard=(1, 2), steps=3, overwrite=True), FakeGenerator)
        # the other rank of the same launch proceeds
        r = run_synth(_opts(mot_split, out, shard=(1, 2)), FakeGenerator)
        assert r.done > 0
    assert not list(out.glob(".tdgen.shard-*"))  # released and removed
    r = run_synth(_opts(mot_split, out), FakeGenerator)
    assert r.done == 0 and r.skipped == r.planned
    _listed_frames_exist(out)


def test_busy_is_a_one_line_error_naming_the_pid(mot_split, tmp_path, fake_model):
    out = tmp_path / "synth"
    assert synth(mot_split, out).exit_code == 0
    with SynthDir(out).session(_settings_of(out)):
        line = _one_error_line(synth(mot_split, out))
    assert line == f"error: {out}: in use by another tdgen synth (pid {os.getpid()})"
    assert synth(mot_split, out).exit_code == 0


# --------------------------------------------------------------------------- disk full


def _dev_full(monkeypatch, module, inside: Path):
    """Files opened for writing under ``inside`` go to /dev/full: real ENOSPC errors."""
    real_open = open

    def fake_open(path, mode="r", *a, **kw):
        if "w" in mode and str(path).startswith(str(inside)):
            return real_open("/dev/full", mode, *a, **kw)
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr(module, "open", fake_open, raising=False)


def test_disk_full_names_the_frame_being_written(mot_split, tmp_path, fake_model, monkeypatch):
    import tdgen.atomic

    out = tmp_path / "synth"
    _dev_full(monkeypatch, tdgen.atomic, out / "images")
    line = _one_error_line(synth(mot_split, out), code=1)
    assert line.endswith(": No space left on device")
    named = Path(line[len("error: "):].rsplit(":", 1)[0])
    assert named.parent.parent == out / "images" and named.name == "000001.png"
    assert not [p for p in (out / "images").iterdir()]  # the temp folder went too


def test_disk_full_names_the_atomic_target(tmp_path, monkeypatch):
    real = os.fdopen

    def full(fd, mode="r", *a, **kw):
        os.close(fd)
        return real(os.open("/dev/full", os.O_WRONLY), mode, *a, **kw)

    monkeypatch.setattr(os, "fdopen", full)
    target = tmp_path / "annotations.json"
    with pytest.raises(OSError) as e:
        atomic_write_bytes(target, b"x" * 100_000)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- model directory


def test_model_directory_without_model_index_is_refused(mot_split, tmp_path, shared_tiny_model):
    from tdgen.modeldir import ModelError, check_model_dir

    model = tmp_path / "model"
    shutil.copytree(shared_tiny_model, model)
    check_model_dir(model)
    (model / "model_index.json").unlink()
    with pytest.raises(ModelError, match="model_index.json is missing"):
        check_model_dir(model)
    out = tmp_path / "synth"
    r = tdgen("synth", "--ann", mot_split, "--out", out, "--model", model, "--device", "cpu")
    line = _one_error_line(r)
    assert str(model) in line and "model_index.json" in line
    assert not out.exists()
