"""Model domain records and the warnings synth gives when annotations do not fit the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdgen.modeldir import (
    ModelDomain,
    ModelError,
    bundled_model_dir,
    domain_record,
    model_domain,
    read_tdgen_json,
    write_tdgen_json,
)
from tdgen.shapes.render import SHAPES
from tdgen.synth.domain import clip_inputs, describe_model, domain_warnings, parse_out_size
from tdgen.tracks import ClipSpec, UsageError, plan_clips, read_tracks

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = bundled_model_dir()
needs_bundled = pytest.mark.skipif(not (BUNDLED / "tdgen.json").is_file(),
                                   reason="this tree has no bundled model in tdgen/assets/default-model")
SQUARE = ModelDomain(categories=tuple(SHAPES), resolution=(128, 128), frames=8, model_id="m", name="shapes")


def _inputs(ann: Path, frames: int) -> tuple[list[str], list[tuple[int, int]]]:
    ts = read_tracks(ann)
    return clip_inputs(plan_clips(ts, ClipSpec(frames=frames, max_slots=20)))


def _older_model(tmp_path: Path) -> Path:
    """A model directory's tdgen.json as models made before domains were recorded have it."""
    info = json.loads((BUNDLED / "tdgen.json").read_text())
    info.pop("domain", None)
    d = tmp_path / "old"
    d.mkdir()
    write_tdgen_json(d, info)
    return d


# --------------------------------------------------------------------------- the record


@needs_bundled
def test_the_bundled_model_records_the_shapes_domain():
    dom = model_domain(BUNDLED)
    assert dom.categories == SHAPES
    assert dom.resolution == (128, 128) and dom.frames == 8
    assert dom.model_id == "tdgen-shapes-v1" and dom.name == "shapes"
    assert describe_model("default", BUNDLED, dom) == "the bundled shapes model (tdgen-shapes-v1)"


@needs_bundled
def test_a_model_without_the_field_has_unknown_categories(tmp_path):
    dom = model_domain(_older_model(tmp_path))
    assert dom.categories is None and dom.name is None
    assert dom.resolution == (128, 128) and dom.frames == 8


def test_domain_record_round_trips_and_lists_each_name_once(tmp_path):
    info = {"model_id": "run-step9", "resolution": [64, 32], "frames": 4,
            "domain": domain_record(["car", " pedestrian ", "car", ""], name="street")}
    write_tdgen_json(tmp_path, info)
    assert json.loads((tmp_path / "tdgen.json").read_text())["domain"] == {
        "categories": ["car", "pedestrian"], "name": "street"}
    dom = model_domain(tmp_path)
    assert dom == ModelDomain(categories=("car", "pedestrian"), resolution=(64, 32), frames=4,
                              model_id="run-step9", name="street")
    assert describe_model("runs/x", tmp_path, dom) == "model runs/x (run-step9)"


def test_an_empty_category_list_means_unknown(tmp_path):
    write_tdgen_json(tmp_path, {"frames": 4, "domain": {"categories": []}})
    dom = model_domain(tmp_path)
    assert dom.categories is None and dom.resolution is None
    assert domain_warnings(dom, ["pedestrian"], [(1920, 1080)], None, "m") == []


@pytest.mark.parametrize("domain, what", [
    (["circle"], "'domain' must be an object"),
    ({"categories": "circle"}, "'domain.categories' must be a list"),
    ({"categories": ["circle", 3]}, "'domain.categories' must be a list"),
    ({"categories": ["circle", " "]}, "'domain.categories' must be a list"),
    ({"name": ""}, "'domain.name' must be a non-empty string"),
])
def test_a_malformed_domain_is_refused_naming_the_file(tmp_path, domain, what):
    write_tdgen_json(tmp_path, {"frames": 4, "domain": domain})
    with pytest.raises(ModelError) as exc:
        read_tdgen_json(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'tdgen.json'}: {what}")
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- category warning


@needs_bundled
def test_pedestrian_annotations_with_the_bundled_model_warn_about_the_domain():
    dom = model_domain(BUNDLED)
    cats, sizes = _inputs(ROOT / "examples" / "mot_mini_cocovid.json", dom.frames)
    assert cats == ["pedestrian", "car"]
    domain_line, aspect_line = domain_warnings(dom, cats, sizes, None, describe_model("default", BUNDLED, dom))
    assert domain_line == ("the bundled shapes model (tdgen-shapes-v1) was trained on circle, square, triangle, "
                           "star, hexagon; the annotations' pedestrian, car are outside it: pass --model DIR with "
                           "a model trained on them")
    assert aspect_line.startswith("the source videos are 640x480 (4:3) but frames will be written at 128x128")


def test_category_names_compare_case_underscore_and_space_insensitively():
    dom = ModelDomain(categories=("Traffic_Light", "person"), resolution=(128, 128), frames=8)
    assert domain_warnings(dom, ["traffic light", "PERSON", "traffic-light"], [], None, "m") == []


def test_a_partial_overlap_names_only_the_outside_categories():
    [line] = domain_warnings(SQUARE, ["circle", "pedestrian", "Square"], [], None, "model x (m)")
    assert line == ("model x (m) was trained on circle, square, triangle, star, hexagon; 1 of the annotations' 3 "
                    "categories (pedestrian) is outside it: pass --model DIR with a model trained on it")


def test_many_outside_categories_are_listed_three_then_counted():
    [line] = domain_warnings(SQUARE, ["a", "b", "c", "d", "e"], [], None, "m")
    assert "the annotations' a, b, c and 2 more are outside it" in line


@needs_bundled
def test_an_older_model_gives_no_domain_warning(tmp_path):
    old = _older_model(tmp_path)
    dom = model_domain(old)
    # the sizes fit the model, so nothing is left to warn about
    assert domain_warnings(dom, ["pedestrian", "car"], [(640, 640)], None, describe_model(old, old, dom)) == []


# --------------------------------------------------------------------------- aspect warning


def test_wide_sources_on_a_square_model_warn_that_frames_are_squashed():
    [line] = domain_warnings(SQUARE, ["circle"], [(1920, 1080)] * 3, None, "m")
    assert line == ("the source videos are 1920x1080 (16:9) but frames will be written at 128x128 (1:1, the model's "
                    "resolution): they will be squashed from 16:9 to 1:1, boxes too; pass --out-size 228x128 to "
                    "keep 16:9, or --out-size source to write each video at its own size, or use a model trained "
                    "at that aspect")


def test_the_aspect_warning_counts_mixed_sources_and_names_an_explicit_out_size():
    [line] = domain_warnings(SQUARE, [], [(1920, 1080), (640, 480), (128, 128)], (256, 256), "m")
    assert line.startswith("2 of 3 source videos are 1920x1080 (16:9) and 640x480 (4:3) but frames will be written "
                           "at 256x256 (1:1, --out-size): they will be squashed from 16:9 and 4:3 to 1:1")
    assert "pass --out-size source" in line and "to keep" not in line


@pytest.mark.parametrize("sizes, out_size", [
    ([(1920, 1080)], "source"),  # each video at its own size: nothing is squashed
    ([(1920, 1080)], (640, 360)),  # the aspect kept
    ([(1280, 720)], (1280, 736)),  # within 10% (a multiple-of-8 round off)
    ([(0, 0)], None),  # unknown source size
])
def test_no_aspect_warning_when_the_output_keeps_the_aspect(sizes, out_size):
    assert domain_warnings(SQUARE, ["circle"], sizes, out_size, "m") == []


def test_no_aspect_warning_without_any_known_output_size():
    dom = ModelDomain(categories=None, resolution=None, frames=8)
    assert domain_warnings(dom, ["pedestrian"], [(1920, 1080)], None, "m") == []
    assert len(domain_warnings(dom, [], [(1920, 1080)], (128, 128), "m")) == 1


# --------------------------------------------------------------------------- the quickstart


@needs_bundled
def test_the_shapes_quickstart_gives_no_warning():
    dom = model_domain(BUNDLED)
    cats, sizes = _inputs(ROOT / "examples" / "shapes_mini" / "annotations.json", dom.frames)
    assert cats and set(cats) <= set(SHAPES) and set(sizes) == {(128, 128)}
    assert domain_warnings(dom, cats, sizes, None, describe_model("default", BUNDLED, dom)) == []


def test_clip_inputs_count_only_the_categories_the_clips_use():
    ann = json.loads((ROOT / "examples" / "mot_mini_cocovid.json").read_text())
    cats, sizes = _inputs(ROOT / "examples" / "mot_mini_cocovid.json", 8)
    used = {a["category_id"] for a in ann["annotations"]}
    declared = {c["id"]: c["name"].replace("_", " ") for c in ann["categories"]}
    assert set(cats) == {declared[i] for i in used} and len(cats) == len(set(cats))
    assert sizes == [(640, 480), (640, 480)]  # one per source video


# --------------------------------------------------------------------------- --out-size


@pytest.mark.parametrize("text, want", [
    (None, None), ("640x360", (640, 360)), (" 640X360 ", (640, 360)), ("640*360", (640, 360)),
    ("source", "source"), ("Source ", "source"),
])
def test_parse_out_size(text, want):
    assert parse_out_size(text) == want


@pytest.mark.parametrize("text, message", [
    ("big", "--out-size must be WxH (e.g. 640x384) or source (each video's own size), got 'big'"),
    ("640x", "--out-size must be WxH (e.g. 640x384) or source (each video's own size), got '640x'"),
    ("4x4", "--out-size 4x4: width and height must be in 8..16384"),
])
def test_parse_out_size_refuses_bad_values_in_one_line(text, message):
    with pytest.raises(UsageError) as exc:
        parse_out_size(text)
    assert str(exc.value) == message
