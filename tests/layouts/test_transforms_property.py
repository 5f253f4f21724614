"""Property tests of every layout transform and of the whole pipeline (hypothesis, small counts)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdgen.errors import AnnotationError
from tdgen.layouts.boxes import normalize, with_depth_visibility
from tdgen.layouts.recipes import Recipe, Step
from tdgen.layouts.run import make_layouts, write_layouts
from tdgen.layouts.transforms import TRANSFORMS, Param
from tdgen.tracks.io import read_tracks
from tdgen.tracks.layout_stats import layout_stats

from layouts_data import assert_rules

FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
# small caps keep each example fast; the ranges themselves are the transforms'
_CAPS = {"count": 4, "ratio": 1.5, "k": 25, "frames": 40}


def _value(q: Param):
    hi = min(q.hi, _CAPS.get(q.name, q.hi)) if q.hi is not None else None
    if q.kind == "bool":
        return st.booleans()
    if q.kind == "int":
        return st.integers(int(q.lo), int(hi))
    return st.floats(q.lo, hi * (1 - 1e-9) if q.hi_open else hi, allow_nan=False)


def _params(name: str):
    out = {}
    for q in TRANSFORMS[name].params:
        s = _value(q)
        out[q.name] = st.tuples(s, s).map(lambda ab: (min(ab), max(ab))) if q.per_item else s
    return st.fixed_dictionaries(out)


def _frozen(lay):
    return [a.copy() for a in (lay.video, lay.t, lay.bbox, lay.track, lay.vis)]


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transform_keeps_the_rules(name, contexts):
    @FAST
    @given(src_name=st.sampled_from(sorted(contexts)), params=_params(name), seed=st.integers(0, 2**32 - 1))
    def check(src_name, params, seed):
        src, ctx = contexts[src_name]
        lay = normalize(src)
        before = _frozen(lay)
        out = with_depth_visibility(normalize(TRANSFORMS[name].fn(lay, np.random.default_rng(seed), ctx, **params)))
        assert_rules(out)
        for a, b in zip(before, _frozen(lay)):  # pure: the input is untouched
            np.testing.assert_array_equal(a, b)
        again = with_depth_visibility(normalize(TRANSFORMS[name].fn(lay, np.random.default_rng(seed), ctx,
                                                                    **params)))
        np.testing.assert_array_equal(out.bbox, again.bbox)  # same generator state, same result
        np.testing.assert_array_equal(out.track, again.track)

    check()


@FAST
@given(src_name=st.sampled_from(["mot_mini", "sports", "shapes"]))
def test_mirror_twice_and_reverse_twice_are_identities(contexts, src_name):
    src, ctx = contexts[src_name]
    lay = normalize(src)
    rng = np.random.default_rng(0)
    for name in ("mirror", "reverse"):
        fn = TRANSFORMS[name].fn
        twice = normalize(fn(normalize(fn(lay, rng, ctx)), rng, ctx))
        np.testing.assert_array_equal(twice.t, lay.t)
        np.testing.assert_array_equal(twice.track, lay.track)
        np.testing.assert_allclose(twice.bbox, lay.bbox, rtol=0, atol=1e-9)
        assert twice.origin == lay.origin
    once = normalize(TRANSFORMS["mirror"].fn(lay, rng, ctx))
    assert not np.allclose(once.bbox, lay.bbox)  # the mirror does move boxes


def test_speed_one_is_the_identity_and_two_halves_the_frames(contexts):
    src, ctx = contexts["sports"]
    lay = normalize(src)
    same = normalize(TRANSFORMS["speed"].fn(lay, np.random.default_rng(0), ctx, factor=1.0))
    np.testing.assert_allclose(same.bbox, lay.bbox)
    fast = normalize(TRANSFORMS["speed"].fn(lay, np.random.default_rng(0), ctx, factor=2.0))
    assert fast.nframes.tolist() == [(n - 1) // 2 + 1 for n in lay.nframes.tolist()]
    # frame t' of the fast copy is frame 2 t' of the source (no interpolation at whole frames)
    a = {(int(v), int(t), int(k)): b for v, t, k, b in zip(fast.video, fast.t, fast.track, fast.bbox)}
    for v, t, k, b in zip(lay.video, lay.t, lay.track, lay.bbox):
        if t % 2 == 0:
            np.testing.assert_allclose(a[(int(v), int(t) // 2, int(k))], b)


def _stats(lay, ts):
    from tdgen.layouts.boxes import to_trackset

    return layout_stats(to_trackset(lay, replace(ts.videos), ts))


@FAST
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 12))
def test_each_hide_adds_one_reappearance(sources, contexts, seed, k):
    ts = sources["sports"]
    src, ctx = contexts["sports"]
    lay = with_depth_visibility(normalize(src))
    out = with_depth_visibility(normalize(TRANSFORMS["hide"].fn(lay, np.random.default_rng(seed), ctx, k=(k, k),
                                                                count=3, ratio=0.0)))
    hides = [op["hide"] for r in out.origin.values() for op in r["ops"] if "hide" in op]
    assert len(hides) == 3 * ts.num_videos  # three per video: the fixture has long tracks everywhere
    assert all(h["frames"] == k for h in hides)
    assert _stats(out, ts)["gaps"] == _stats(lay, ts)["gaps"] + len(hides)


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_every_inserted_crossing_crosses_its_target(contexts, seed):
    src, ctx = contexts["sports"]
    lay = normalize(src)
    out = with_depth_visibility(normalize(TRANSFORMS["cross"].fn(lay, np.random.default_rng(seed), ctx,
                                                                 count=4, ratio=0.0)))
    made = {t: r["ops"][0]["cross"] for t, r in out.origin.items() if r["origin"] == "cross"}
    assert made, "no crossing inserted"
    box = {(int(t), int(f)): b for t, f, b in zip(out.track, out.t, out.bbox)}
    checked = 0
    for tid, op in made.items():
        f, target = op["frame"], op["target_track"]
        if not all((x, y) in box for x in (tid, target) for y in (f, f + 1)):
            continue  # clipped at the frame's edge
        c = [[box[(x, y)][0] + box[(x, y)][2] / 2 for y in (f, f + 1)] for x in (tid, target)]
        assert (c[0][0] - c[1][0]) * (c[0][1] - c[1][1]) < 0, "centre order does not flip"
        a, b = box[(tid, f)], box[(target, f)]
        assert min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1]), "no vertical overlap"
        checked += 1
    assert checked


def _random_recipe():
    step = st.sampled_from(sorted(TRANSFORMS)).flatmap(
        lambda n: _params(n).map(lambda p: Step(n, {k: v for k, v in p.items()}, 1.0)))
    return st.lists(step, min_size=1, max_size=3).map(lambda s: Recipe("prop", "prop.toml", tuple(s)))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(recipe=_random_recipe(), seed=st.integers(0, 2**31), copies=st.integers(1, 2))
def test_pipeline_same_seed_same_bytes_and_provenance_maps_every_track(sources, tmp_path_factory, recipe, seed,
                                                                       copies):
    ts = sources["mot_mini"]
    tmp = tmp_path_factory.mktemp("prop")
    try:
        res = make_layouts(ts, recipe, copies=copies, seed=seed)
    except AnnotationError as e:  # a recipe that empties the set is refused, as it must be
        assert "leaves no box" in str(e)
        return
    out = res.trackset
    out.check()
    a, pa = write_layouts(res, tmp / "a.json")
    b, pb = write_layouts(make_layouts(ts, recipe, copies=copies, seed=seed), tmp / "b.json")
    assert a.read_bytes() == b.read_bytes() and pa.read_bytes() == pb.read_bytes()
    # ids unique in the file
    back = read_tracks(a)
    for col in (back.videos.id, back.frames.id, back.boxes.id):
        assert np.unique(col).size == col.size
    assert back.num_videos == ts.num_videos * copies
    # provenance: one row per output track, each traced to a real source video (and track)
    rows = {r["track_id"]: r for r in res.provenance}
    assert set(rows) == set(np.unique(out.boxes.track).tolist())
    src_tracks = {(str(ts.videos.name[v]), int(t)) for v, t in zip(ts.box_video(), ts.boxes.track)}
    src_videos = set(ts.videos.name.tolist())
    for r in rows.values():
        assert r["source_video"] in src_videos
        if r["origin"] in ("source", "cross"):
            assert (r["source_video"], r["source_track_id"]) in src_tracks
        else:
            assert r["source_track_id"] is None
    extra = back.boxes.extra
    for t, e in zip(back.boxes.track.tolist(), extra.tolist()):
        assert e["layout"]["origin"] == rows[t]["origin"]
        assert e["layout"]["source_track_id"] == rows[t]["source_track_id"]
    for v, e in enumerate(back.videos.extra.tolist()):
        assert e["layout"]["source_video"] in src_videos
        assert [s["transform"] for s in e["layout"]["transforms"]] == [s.transform for s in recipe.steps]
