"""Seeds are fixed by what they are about: these values must never change (resumed runs and
shards of a run made by older versions rely on them)."""

from tdgen.seeds import clip_seed, derive_seed, keyed_digest
from tdgen.tracks.clips import clip_seed as clips_clip_seed
from tdgen.tracks.clips import stable_shard
from tdgen.train.data import derive_seed as data_derive_seed


def test_values_are_stable():
    assert clip_seed(0, "MOT17-02_000000") == 6176762670891349439
    assert clip_seed(7, "x") == 8182143881927911320
    assert derive_seed(0, "a", 1) == 7123030488945307783
    assert derive_seed(3, "forward", 5, 0, 1) == 4174590845895272289
    assert stable_shard("MOT17-02_000000", 4) == 0


def test_one_implementation_behind_the_old_names():
    assert clips_clip_seed is clip_seed and data_derive_seed is derive_seed


def test_keys_keep_uses_apart():
    assert keyed_digest("x", b"tdgen-seed") != keyed_digest("x", b"tdgen-shard")
    assert 0 <= clip_seed(2**62, "a") < 2**63 and 0 <= derive_seed(1, object()) < 2**63
