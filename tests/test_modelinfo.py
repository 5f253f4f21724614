"""ModelInfo: tdgen.json as one typed record, its defaults, checks and exact round trip."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tdgen import modeldir, modelinfo
from tdgen.modelinfo import (
    DEFAULT_FRAMES,
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_SLOTS,
    DomainRecord,
    ModelDomain,
    ModelError,
    ModelInfo,
    read_tdgen_json,
    write_tdgen_json,
)

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "tdgen" / "assets" / "default-model" / "tdgen.json"

FULL = {
    "model_id": "run-step9",
    "resolution": [64, 32],
    "frames": 4,
    "slots": 6,
    "prompt_template": "a clip of {categories}",
    "domain": {"categories": ["car", "pedestrian"], "name": "street", "source": "kitti"},
    "weights": {"kind": "trained", "ema": True},
    "created_by": "tdgen train",
    "training": {"steps": 9, "data": {"clips": 2}},
    "training_history": [{"steps": 3}],
    "description": "a test model",
    "future_key": {"nested": [1, 2, {"x": None}]},
    "notes": None,
}


def test_every_key_round_trips_unknown_ones_included(tmp_path):
    info = ModelInfo.from_dict(FULL)
    assert info.resolution == (64, 32) and info.frames == 4 and info.slots == 6
    assert info.domain == DomainRecord(categories=("car", "pedestrian"), name="street", extra={"source": "kitti"})
    assert info.weights == {"kind": "trained", "ema": True} and info.training_history == ({"steps": 3},)
    assert info.extra == {"future_key": {"nested": [1, 2, {"x": None}]}, "notes": None}
    assert info.to_dict() == FULL
    info.write(tmp_path)
    assert json.loads((tmp_path / "tdgen.json").read_text()) == FULL
    assert ModelInfo.read(tmp_path) == info and read_tdgen_json(tmp_path) == FULL


@pytest.mark.skipif(not BUNDLED.is_file(), reason="this tree has no bundled model")
def test_the_bundled_file_reads_and_writes_back_byte_for_byte(tmp_path):
    info = ModelInfo.read(BUNDLED.parent)
    assert info.model_id == "tdgen-shapes-v1" and info.categories and info.training and info.training_history
    info.write(tmp_path)
    assert (tmp_path / "tdgen.json").read_bytes() == BUNDLED.read_bytes()


def test_the_defaults_apply_only_where_nothing_is_recorded(tmp_path):
    empty = ModelInfo.from_dict({})
    assert (empty.frames, empty.slots, empty.prompt_template, empty.resolution) == (None, None, None, None)
    assert (empty.effective_frames, empty.effective_slots, empty.effective_prompt_template) == (
        DEFAULT_FRAMES, DEFAULT_SLOTS, DEFAULT_PROMPT_TEMPLATE)
    assert DEFAULT_FRAMES == 16 and DEFAULT_SLOTS == 20 and DEFAULT_PROMPT_TEMPLATE == "a video of {categories}"
    assert empty.to_dict() == {}  # reading a default does not write it into the file
    info = ModelInfo(frames=8, slots=3, prompt_template="{video}")
    assert (info.effective_frames, info.effective_slots, info.effective_prompt_template) == (8, 3, "{video}")
    # the domain view synth's warnings use applies the same default
    write_tdgen_json(tmp_path, {})
    assert modeldir.model_domain(tmp_path) == ModelDomain(categories=None, resolution=None, frames=DEFAULT_FRAMES)


def test_domain_view_treats_an_empty_category_list_as_unknown():
    info = ModelInfo.from_dict({"frames": 4, "domain": {"categories": []}})
    assert info.domain.categories == () and info.categories is None
    assert info.to_dict() == {"frames": 4, "domain": {"categories": []}}
    assert info.as_domain() == ModelDomain(categories=None, resolution=None, frames=4)
    named = ModelInfo(model_id="m", resolution=(16, 8), domain=DomainRecord(categories=["a", "b"], name="ab"))
    assert named.as_domain() == ModelDomain(categories=("a", "b"), resolution=(16, 8), frames=16, model_id="m",
                                            name="ab")


def test_provenance_of_an_unexpected_type_is_carried_not_refused():
    odd = {"model_id": 7, "weights": "random", "training_history": [{"steps": 1}, "x"], "created_by": ["a"]}
    info = ModelInfo.from_dict(odd)
    assert info.model_id is None and info.weights is None and info.training_history is None
    assert info.extra == odd and info.to_dict() == odd


@pytest.mark.parametrize("data, what", [
    ([128, 128], "must hold a JSON object"),
    ({"resolution": [100, 64]}, "'resolution' must be [width, height], positive multiples of 8, got [100, 64]"),
    ({"resolution": "128x128"}, "'resolution' must be [width, height]"),
    ({"frames": 0}, "'frames' must be a positive integer, got 0"),
    ({"frames": "8"}, "'frames' must be a positive integer, got '8'"),
    ({"frames": None}, "'frames' must be a positive integer, got None"),
    ({"slots": -1}, "'slots' must be a positive integer, got -1"),
    ({"prompt_template": 5}, "'prompt_template' must be a string"),
    ({"domain": ["circle"]}, "'domain' must be an object"),
    ({"domain": {"categories": ["circle", " "]}}, "'domain.categories' must be a list of category names"),
    ({"domain": {"name": ""}}, "'domain.name' must be a non-empty string"),
])
def test_malformed_records_name_the_source_in_one_line(tmp_path, data, what):
    write_tdgen_json(tmp_path, data) if isinstance(data, dict) else (tmp_path / "tdgen.json").write_text(
        json.dumps(data))
    with pytest.raises(ModelError) as exc:
        ModelInfo.read(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'tdgen.json'}: {what}")
    assert "\n" not in str(exc.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ModelError, match=r"tdgen.json is missing \(it records resolution"):
        ModelInfo.read(tmp_path)
    (tmp_path / "tdgen.json").write_bytes(b'{"model_id": "mod\xe8le"}')
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelInfo.read(tmp_path)


def test_construction_checks_values_and_replace_keeps_the_rest():
    with pytest.raises(ModelError, match="'frames' must be a positive integer"):
        ModelInfo(frames=0)
    with pytest.raises(ModelError, match="'resolution' must be"):
        ModelInfo(resolution=(60, 32))
    with pytest.raises(ModelError, match="'categories' must be category names"):
        DomainRecord(categories="circle")
    info = ModelInfo.from_dict(FULL)
    other = dataclasses.replace(info, frames=8)
    assert other.to_dict() == {**FULL, "frames": 8} and info.frames == 4


def test_to_dict_is_a_copy():
    info = ModelInfo.from_dict(FULL)
    d = info.to_dict()
    d["weights"]["kind"] = "changed"
    d["domain"]["categories"].append("bus")
    d["future_key"]["nested"].append(3)
    assert info.to_dict() == FULL


def test_modeldir_names_are_the_modelinfo_ones():
    for name in ("ModelError", "ModelWarning", "ModelDomain", "ModelInfo", "read_tdgen_json", "write_tdgen_json",
                 "write_model_index", "domain_record", "DEFAULT_PROMPT_TEMPLATE", "COMPONENTS"):
        assert getattr(modeldir, name) is getattr(modelinfo, name), name


def test_the_record_and_the_directory_code_load_without_torch():
    code = ("import sys, tdgen.modelinfo, tdgen.modeldir, tdgen.conditioning; "
            "print(sorted(m for m in ('torch', 'diffusers', 'tdgen.pipeline', 'tdgen.synth', 'tdgen.train') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
