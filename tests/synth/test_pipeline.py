"""TrackDiffusionPipeline on the tiny random model: guidance, caching, seeds, decoding, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdgen.modeldir import init_tiny_model, load_pipeline
from tdgen.pipeline import PipelineInputError, TrackDiffusionPipeline
from tdgen.tracks.clips import ClipSpec, collate, plan_clips
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
    kw.setdefault("num_inference_steps", 2)
    return pipe(clips, ["a video of people"] * len(seeds), seeds, **kw)


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
    batch = collate(clips[:2])
    batch["mask"][:] = 0
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
    batch = collate([c])
    a = _run(pipe, batch, [11])
    free = np.nonzero(c.mask.sum(0) == 0)[0]
    assert free.size, "the fixture leaves unused slots"
    batch["boxes"][0, :, free] = [0.1, 0.2, 0.5, 0.6]
    batch["category_names"][0, free] = "car"
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
        pipe(clips[:2], prompts, seeds, **args)


def test_too_many_slots_for_the_model(pipe, clips):
    c = clips[0]
    n = pipe.unet.config.max_slots + 1
    batch = {"boxes": np.zeros((1, 4, n, 4), np.float32), "mask": np.zeros((1, 4, n), np.float32),
             "category_names": np.array([[""] * n], dtype=object)}
    with pytest.raises(PipelineInputError, match="at most"):
        _run(pipe, batch, [1])
    del c


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
