"""TrackDiffusionPipeline on the tiny random model: guidance, caching, seeds, decoding, inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tdgen.conditioning import ClipBatch, clip_batch
from tdgen.modeldir import init_tiny_model, load_pipeline
from tdgen.pipeline import PipelineInputError, TrackDiffusionPipeline
from tdgen.tracks.clips import ClipSpec, plan_clips
from tdgen.tracks.mot import read_mot

from make_mot import write_mot_split


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return init_tiny_model(tmp_path_factory.mktemp("m") / "tiny", seed=1, resolution=(64, 48), frames=4)


@pytest.fixture(scope="module")
def pipe(model_dir):
    return load_pipeline(model_dir)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = write_mot_split(tmp_path_factory.mktemp("mot") / "train")
    ts = read_mot(root)
    return plan_clips(ts, ClipSpec(frames=4, stride=4, max_slots=6))


def _run(pipe, clips, seeds, **kw):
    """Sample clips (or a ClipBatch) with one prompt for all."""
    kw.setdefault("num_inference_steps", 2)
    batch = clips if isinstance(clips, ClipBatch) else clip_batch(clips)
    return pipe(**batch.as_kwargs(), prompts=["a video of people"] * len(seeds), seeds=seeds, **kw)


def test_output_shape_dtype_and_default_size(pipe, clips):
    out = _run(pipe, clips[:2], [1, 2])
    assert out.shape == (2, 4, 48, 64, 3) and out.dtype == np.uint8
    assert pipe.default_size() == (48, 64)
    t = pipe.last_timings
    assert t["clips"] == 2 and t["steps"] == 2 and t["unet_calls"] == 2
    assert 0 < t["unet_s"] <= t["total_s"]


def test_same_seed_same_frames_other_seed_other_frames(pipe, clips):
    a = _run(pipe, clips[:1], [7])
    b = _run(pipe, clips[:1], [7])
    c = _run(pipe, clips[:1], [8])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_clip_frames_do_not_depend_on_batch_mates_or_order(pipe, clips):
    alone = _run(pipe, [clips[2]], [5], clips_per_forward=1)
    batch = _run(pipe, [clips[0], clips[2], clips[1]], [3, 5, 4], clips_per_forward=1)
    assert np.array_equal(alone[0], batch[1])


def test_unconditional_branch_is_empty_prompt_and_zero_masks(pipe, clips, monkeypatch):
    seen = []
    forward = pipe.unet.forward

    def spy(sample, timestep, **kw):
        seen.append({k: v.clone() for k, v in kw.items() if torch.is_tensor(v)})
        return forward(sample, timestep, **kw)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    _run(pipe, clips[:2], [1, 2], num_inference_steps=1, guidance_scale=5.0)
    kw = seen[0]
    masks = kw["box_masks"]
    assert masks.shape[0] == 4  # unconditional rows first, then conditional
    assert float(masks[:2].abs().sum()) == 0.0
    want = torch.from_numpy(np.stack([c.mask for c in clips[:2]]))
    assert torch.equal(masks[2:], want)
    empty = pipe.encode_prompts([""])[0]
    assert torch.equal(kw["encoder_hidden_states"][0], empty) and torch.equal(kw["encoder_hidden_states"][1], empty)
    assert not torch.equal(kw["encoder_hidden_states"][2], empty)
    # guidance 1: one branch only
    seen.clear()
    _run(pipe, clips[:2], [1, 2], num_inference_steps=1, guidance_scale=1.0)
    assert seen[0]["box_masks"].shape[0] == 2


def test_drop_boxes_conditions_on_no_boxes_at_all(pipe, clips, monkeypatch):
    seen = []
    forward = pipe.unet.forward

    def spy(sample, timestep, **kw):
        seen.append(kw["box_masks"].clone())
        return forward(sample, timestep, **kw)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    dropped = _run(pipe, clips[:2], [1, 2], num_inference_steps=1, drop_boxes=True)
    assert seen[0].shape[0] == 4 and float(seen[0].abs().sum()) == 0.0
    # the same as a batch whose every mask is zero, and not the same as the boxed one
    batch = clip_batch(clips[:2])
    batch.masks[:] = 0
    assert np.array_equal(dropped, _run(pipe, batch, [1, 2], num_inference_steps=1))
    assert float(seen[-1].abs().sum()) == 0.0
    seen.clear()
    _run(pipe, clips[:2], [1, 2], num_inference_steps=1)
    assert float(seen[0][2:].abs().sum()) > 0


def test_guidance_modes_differ_and_rescaled_matches_formula(pipe):
    e_c = torch.randn(2, 4, 3, 5, 5)
    e_u = torch.randn(2, 4, 3, 5, 5)
    w = TrackDiffusionPipeline._rescaled_weights(e_c, e_c - e_u, 1.2)
    for k in range(2):
        expect = 0.2 * e_c[k].norm() / (e_c[k] - e_u[k]).norm()
        assert torch.allclose(w[k].flatten()[0], expect)
    # the weight of a clip does not depend on its batch-mate
    w1 = TrackDiffusionPipeline._rescaled_weights(e_c[:1], (e_c - e_u)[:1], 1.2)
    assert torch.equal(w1[0], w[0])


def test_category_names_are_encoded_once(pipe, clips, monkeypatch):
    pipe.clear_text_cache()
    calls = []
    run = pipe._run_text_encoder

    def counting(texts):
        calls.append(list(texts))
        return run(texts)

    monkeypatch.setattr(pipe, "_run_text_encoder", counting)
    _run(pipe, clips[:2], [1, 2], num_inference_steps=1)
    _run(pipe, clips[2:4], [3, 4], num_inference_steps=1)
    encoded = [t for c in calls for t in c]
    assert encoded.count("pedestrian") == 1
    assert encoded.count("") == 1  # the empty prompt, once; unused slots are zeros, never encoded
    assert torch.equal(pipe.encode_categories([""])[0], torch.zeros(pipe.text_encoder.config.hidden_size))


def test_masked_slots_do_not_matter(pipe, clips):
    """Boxes and categories of slots whose mask is 0 do not change the frames."""
    c = clips[0]
    batch = clip_batch([c])
    a = _run(pipe, batch, [11])
    free = np.nonzero(c.mask.sum(0) == 0)[0]
    assert free.size, "the fixture leaves unused slots"
    batch.boxes[0, :, free] = [0.1, 0.2, 0.5, 0.6]
    batch.category_names[0, free] = "car"
    b = _run(pipe, batch, [11])
    assert np.array_equal(a, b)


def test_decode_chunk_size_changes_frames_by_rounding_only(pipe, clips):
    a = _run(pipe, clips[:1], [2], decode_chunk_size=1).astype(int)
    b = _run(pipe, clips[:1], [2], decode_chunk_size=3).astype(int)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 2  # batched convolution kernels round differently, nothing more


def test_latent_and_pt_outputs(pipe, clips):
    lat = _run(pipe, clips[:1], [2], output_type="latent")
    assert lat.shape == (1, 4, 4, 6, 8)
    pt = _run(pipe, clips[:1], [2], output_type="pt")
    assert pt.shape == (1, 4, 3, 48, 64) and float(pt.min()) >= 0 and float(pt.max()) <= 1


@pytest.mark.parametrize("kw, match", [
    ({"seeds": [1], "prompts": ["a", "b"]}, "one seed per clip"),
    ({"height": 50}, "multiple of 8"),
    ({"guidance_scale": 0.5}, "guidance_scale"),
    ({"guidance": "pndm"}, "guidance must be"),
    ({"num_inference_steps": 0}, "num_inference_steps"),
])
def test_bad_arguments_raise_usage_errors(pipe, clips, kw, match):
    args = {"seeds": [1, 2]}
    args.update(kw)
    seeds = args.pop("seeds")
    prompts = args.pop("prompts", ["a"] * len(seeds))
    args.setdefault("num_inference_steps", 1)
    with pytest.raises(PipelineInputError, match=match):
        pipe(**clip_batch(clips[:2]).as_kwargs(), prompts=prompts, seeds=seeds, **args)


def test_too_many_slots_for_the_model(pipe):
    n = pipe.unet.config.max_slots + 1
    with pytest.raises(PipelineInputError, match="at most"):
        pipe(np.zeros((1, 4, n, 4), np.float32), np.zeros((1, 4, n), np.float32), [[""] * n], ["a"], [1],
             num_inference_steps=1)


def test_arrays_in_any_form_give_the_same_frames(pipe, clips):
    """Tensors and nested lists are the same input as the adapter's numpy arrays."""
    batch = clip_batch(clips[:2])
    want = _run(pipe, batch, [3, 4], num_inference_steps=1)
    got = pipe(torch.from_numpy(batch.boxes), torch.from_numpy(batch.masks).double(),
               batch.category_names.tolist(), ["a video of people"] * 2, [3, 4], num_inference_steps=1)
    assert np.array_equal(want, got)


@pytest.mark.parametrize("change, match", [
    (lambda b: {**b, "masks": b["masks"][:, :, :-1]}, r"masks must be \(2, 4, 6\)"),
    (lambda b: {**b, "boxes": b["boxes"][..., :2]}, r"boxes must be \(B, F, N, 4\)"),
    (lambda b: {**b, "category_names": b["category_names"][:1]}, r"category_names must be \(2, 6\)"),
    (lambda b: {**b, "category_names": "car"}, "got a string"),
    (lambda b: {**b, "boxes": b["boxes"][:0], "masks": b["masks"][:0]}, "B >= 1"),
])
def test_mismatched_arrays_are_refused(pipe, clips, change, match):
    kw = change(clip_batch(clips[:2]).as_kwargs())
    with pytest.raises(PipelineInputError, match=match):
        pipe(**kw, prompts=["a", "b"], seeds=[1, 2], num_inference_steps=1)


def test_clips_are_not_arrays_and_the_error_names_the_adapter(pipe, clips):
    with pytest.raises(PipelineInputError, match=r"boxes must be a numeric array.*clip_batch\(clips\)"):
        pipe(clips[:1], np.zeros((1, 4, 6)), [[""] * 6], ["a"], [1], num_inference_steps=1)


def _tdgen_imports(module: str) -> set[str]:
    """The tdgen modules ``module``'s source imports anywhere (top level or inside functions)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    package = module if spec.origin.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            if n.split(".")[0] == "tdgen" and _is_module(n):
                parts = n.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__ too
                found.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    return found


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # ``from pkg.mod import Name``: pkg.mod.Name is no module
        return False


def test_nothing_the_pipeline_imports_reaches_the_annotation_side():
    """Every tdgen module reachable from tdgen.pipeline, through any import, even a lazy one."""
    seen, todo = set(), ["tdgen.pipeline"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_tdgen_imports(m))
    assert "tdgen.modelinfo" in seen and "tdgen.model.unet" in seen  # the walk follows imports
    assert not [m for m in seen if m.startswith("tdgen.tracks") or m in ("tdgen.conditioning", "tdgen.modeldir")]


@pytest.mark.slow
def test_importing_the_pipeline_loads_no_annotation_module():
    code = ("import sys, tdgen.pipeline; print(sorted(m for m in sys.modules if m.startswith('tdgen.tracks')"
            " or m in ('tdgen.conditioning', 'tdgen.modeldir')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_diffusers_from_pretrained_round_trip(model_dir, pipe, clips):
    other = TrackDiffusionPipeline.from_pretrained(str(model_dir))
    assert other.tdgen_config["resolution"] == [64, 48]
    a = _run(pipe, clips[:1], [4])
    b = _run(other, clips[:1], [4])
    assert np.array_equal(a, b)


def test_save_pretrained_writes_a_model_directory(pipe, clips, tmp_path):
    pipe.save_pretrained(tmp_path / "copy")
    again = load_pipeline(tmp_path / "copy")
    assert again.tdgen_config == pipe.tdgen_config
    assert np.array_equal(_run(pipe, clips[:1], [9]), _run(again, clips[:1], [9]))


def test_the_model_record_is_typed_and_checked(pipe, model_dir):
    from tdgen.modelinfo import ModelError, ModelInfo

    assert pipe.model_info == ModelInfo.read(model_dir) and pipe.model_info.resolution == (64, 48)
    assert pipe.tdgen_config == ModelInfo.read(model_dir).to_dict()
    with pytest.raises(ModelError, match="tdgen_config: 'frames' must be a positive integer"):
        pipe.tdgen_config = {"frames": 0}
    assert pipe.model_info.frames == 4  # a refused record leaves the old one
