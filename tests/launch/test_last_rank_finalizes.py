"""Of the ranks of one launch, only the last to end finalizes (the stand-in generator, in process).

The real launchers are in ``test_multiprocess_synth.py``; here each rule is pinned on its own:
a rank that ends while another still holds its shard, or before another has made its clips,
leaves ``finalized`` None and writes no ``annotations.json``; failed clips count as ended.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tdgen.synth import SynthOptions, run_synth
from tdgen.synth.outputs import SynthDir

from fakegen import FakeGenerator
from make_mot import write_mot_split


@pytest.fixture()
def mot_split(tmp_path: Path) -> Path:
    return write_mot_split(tmp_path / "MOT" / "train")


def _opts(ann: Path, out: Path, **kw) -> SynthOptions:
    base = dict(frames=4, stride=4, slots=6, batch_size=2, steps=2)
    base.update(kw)
    return SynthOptions(ann=Path(ann), out=Path(out), **base)


def _settings(out: Path) -> dict:
    return json.loads((out / "synth.json").read_text())


def test_the_rank_that_ends_last_finalizes_once_with_every_clip(mot_split, tmp_path):
    out = tmp_path / "synth"
    r0 = run_synth(_opts(mot_split, out, shard=(0, 2)), FakeGenerator)
    # shard 1 has not made its clips yet (a rank that has not started, or was killed): no finalize
    assert r0.done > 0 and r0.finalized is None and not (out / "annotations.json").exists()
    r1 = run_synth(_opts(mot_split, out, shard=(1, 2)), FakeGenerator)
    assert r1.done > 0 and r1.finalized is not None
    assert r1.finalized["clips"] == r0.done + r1.done == r1.planned
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["videos"]) == r1.planned
    # an unsharded rerun skips everything and still finalizes (it is always the last)
    r = run_synth(_opts(mot_split, out), FakeGenerator)
    assert r.done == 0 and r.finalized is not None and r.finalized["clips"] == r.planned


def test_a_rank_that_ends_while_another_holds_its_shard_does_not_finalize(mot_split, tmp_path):
    out = tmp_path / "synth"
    r1 = run_synth(_opts(mot_split, out, shard=(1, 2)), FakeGenerator)
    assert r1.finalized is None
    # rank 1 is live again (its clips are all there): rank 0 ends first and leaves the finalize to it
    with SynthDir(out).session(_settings(out), (1, 2)) as rank1:
        r0 = run_synth(_opts(mot_split, out, shard=(0, 2)), FakeGenerator)
        assert r0.done > 0 and r0.finalized is None and not (out / "annotations.json").exists()
        assert rank1.release_if_last(lambda: True)  # and now rank 1 is the last
    assert not list(out.glob(".tdgen.shard-*"))


class _Failing(FakeGenerator):
    """A model that fails on every batch (the runner logs the clips in failures.jsonl)."""

    def __call__(self, clips, prompts, seeds):
        raise RuntimeError("out of memory")


def test_failed_clips_of_another_rank_count_as_ended(mot_split, tmp_path):
    out = tmp_path / "synth"
    plan = run_synth(_opts(mot_split, tmp_path / "probe", shard=(1, 2)), FakeGenerator)
    r1 = run_synth(_opts(mot_split, out, shard=(1, 2)), _Failing)
    assert r1.done == 0 and len(r1.failed) == plan.assigned and r1.finalized is None
    r0 = run_synth(_opts(mot_split, out, shard=(0, 2)), FakeGenerator)
    assert r0.finalized is not None and r0.finalized["clips"] == r0.done == r0.planned - plan.assigned


def test_of_ranks_ending_at_once_exactly_one_is_last(mot_split, tmp_path):
    out = tmp_path / "synth"
    run_synth(_opts(mot_split, out, shard=(0, 2)), FakeGenerator)
    settings = _settings(out)
    for _ in range(20):
        sd = SynthDir(out)
        answers: list[bool] = []
        start = threading.Barrier(2)
        with sd.session(settings, (0, 2)) as a, sd.session(settings, (1, 2)) as b:
            def end(claim):
                start.wait()
                answers.append(claim.release_if_last(lambda: True))

            threads = [threading.Thread(target=end, args=(c,)) for c in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert sorted(answers) == [False, True]
