"""No host syncs in the UNet forward or in a sampling step (tdgen.model.syncguard).

On a GPU a step that reads a value on the host (``.item()``, ``if tensor:``, ``nonzero``, a
copy to the CPU, ``torch.cuda.synchronize``) makes the host wait for every queued kernel. The
guard refuses each of these on the CPU too, so these tests fail here as soon as one is added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tdgen.model import TrackDiffusionUNet, tiny_config  # noqa: E402
from tdgen.model.syncguard import HostSyncError, forbid_host_sync  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _unet_inputs(cfg: dict, batch: int = 2, frames: int = 3, size: int = 8) -> dict:
    g = torch.Generator().manual_seed(0)
    n, x = cfg["max_slots"], cfg["cross_attention_dim"]
    xy = torch.rand(batch, frames, n, 2, generator=g) * 0.6
    boxes = torch.cat([xy, xy + 0.1 + torch.rand(batch, frames, n, 2, generator=g) * 0.3], -1)
    masks = torch.rand(batch, frames, n, generator=g) > 0.4
    return dict(sample=torch.randn(batch, 4, frames, size, size, generator=g), timestep=torch.tensor(500),
                encoder_hidden_states=torch.randn(batch, 7, x, generator=g), boxes=boxes, box_masks=masks,
                box_embeddings=torch.randn(batch, frames, n, x, generator=g))


# ------------------------------------------------------------------ the guard itself

_x = torch.arange(6, dtype=torch.float32)
SYNCS = {
    "item": lambda: _x[0].item(),
    "if tensor": lambda: 1 if _x.sum() > 0 else 0,
    "int": lambda: int(_x[1]),
    "float": lambda: float(_x[1]),
    "range of a tensor": lambda: range(_x.sum().long()),
    "tolist": lambda: _x.tolist(),
    "numpy": lambda: _x.numpy(),
    "cpu": lambda: _x.cpu(),
    "nonzero": lambda: torch.nonzero(_x),
    "mask index": lambda: _x[_x > 2],
    "masked_select": lambda: _x.masked_select(_x > 2),
    "unique": lambda: torch.unique(_x),
    "equal": lambda: torch.equal(_x, _x),
    "repeat_interleave by tensor": lambda: _x.repeat_interleave(torch.ones(6, dtype=torch.long)),
    "cuda synchronize": lambda: torch.cuda.synchronize(),
}


@pytest.mark.parametrize("name", sorted(SYNCS))
def test_guard_refuses_every_kind_of_host_sync(name):
    with pytest.raises(HostSyncError, match="host sync"):
        with forbid_host_sync():
            SYNCS[name]()
    if name != "cuda synchronize":  # (no CUDA here)
        SYNCS[name]()  # outside the block the same call goes through


def test_guard_lets_device_side_work_through():
    with forbid_host_sync():
        y = torch.where(_x > 2, _x * 2, torch.zeros_like(_x)).repeat_interleave(2).to(torch.float16)
        z = torch.linalg.vector_norm(y.float()).clamp_min(1e-6)
        w = _x[1:4] + _x[torch.tensor([0, 2])].sum()  # integer-tensor indexing has a static shape
    assert y.shape == (12,) and z.ndim == 0 and w.shape == (3,)
    assert torch.cuda.synchronize is not None and torch.cuda.synchronize.__name__ != "_no_synchronize"


# ------------------------------------------------------------------ the UNet forward

@pytest.mark.parametrize("variant", ["bool masks", "float masks", "masks from boxes", "no boxes", "int timestep"])
def test_unet_forward_is_sync_free(variant):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = TrackDiffusionUNet(**cfg).eval()
    inputs = _unet_inputs(cfg)
    if variant == "float masks":
        inputs["box_masks"] = inputs["box_masks"].float()
    elif variant == "masks from boxes":
        inputs.pop("box_masks")
    elif variant == "no boxes":
        for k in ("boxes", "box_masks", "box_embeddings"):
            inputs.pop(k)
    elif variant == "int timestep":
        inputs["timestep"] = 250
    with torch.no_grad():
        ref = model(**inputs).sample
        with forbid_host_sync():
            out = model(**inputs).sample
    assert torch.equal(out, ref)


def test_an_item_in_the_unet_forward_is_caught(monkeypatch):
    cfg = tiny_config()
    model = TrackDiffusionUNet(**cfg).eval()
    emb = model.time_embedding
    real = emb.forward
    monkeypatch.setattr(emb, "forward", lambda x: real(x) * (1.0 + 0.0 * x.abs().max().item()))
    with torch.no_grad():
        model(**_unet_inputs(cfg))  # runs without the guard
        with pytest.raises(HostSyncError, match=r"\.item\(\)"):
            with forbid_host_sync():
                model(**_unet_inputs(cfg))


# ------------------------------------------------------------------ the sampling loop

@pytest.fixture(scope="module")
def tiny_pipe(shared_tiny_model):
    from tdgen.modeldir import load_pipeline

    return load_pipeline(shared_tiny_model, device="cpu", dtype=torch.float32)


def _arrays(clips: int, frames: int = 4, slots: int = 5) -> dict:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 0.6, (clips, frames, slots, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.1, 0.3, (clips, frames, slots, 2))], -1).astype(np.float32)
    masks = (rng.uniform(size=(clips, frames, slots)) > 0.3).astype(np.float32)
    names = np.array([["person", "car", "", "person", "dog"]] * clips, dtype=object)
    return dict(boxes=boxes, masks=masks, category_names=names, prompts=["a street"] * clips,
                seeds=list(range(7, 7 + clips)))


def _guard_steps(monkeypatch, pipe) -> list[int]:
    """Run every ``_denoise_step`` of ``pipe`` under the guard; returns the step indices seen."""
    seen: list[int] = []
    real = pipe._denoise_step

    def guarded(index, *args, **kwargs):
        seen.append(index)
        with forbid_host_sync():
            return real(index, *args, **kwargs)

    monkeypatch.setattr(pipe, "_denoise_step", guarded)
    return seen


@pytest.mark.parametrize("guidance,scale,clips,per_forward", [("cfg", 5.0, 1, 1), ("rescaled", 1.5, 3, 2),
                                                              ("cfg", 1.0, 2, None)])
def test_every_sampling_step_is_sync_free(tiny_pipe, monkeypatch, guidance, scale, clips, per_forward):
    kw = dict(_arrays(clips), num_inference_steps=3, guidance_scale=scale, guidance=guidance,
              output_type="latent", clips_per_forward=per_forward)
    ref = tiny_pipe(**kw)
    seen = _guard_steps(monkeypatch, tiny_pipe)
    out = tiny_pipe(**kw, callback=lambda i, t, latents: None)
    assert seen == [0, 1, 2]  # the first step too: no timestep lookup in the schedule (a .item())
    assert torch.equal(out, ref)
    assert tiny_pipe.last_timings["unet_calls"] == 3 * -(-clips // (per_forward or clips))


def test_the_generators_progress_callback_is_sync_free(shared_tiny_model, tmp_path, monkeypatch):
    from tdgen.synth.generator import PipelineGenerator
    from tdgen.synth.options import SynthOptions
    from tdgen.synth.plan import plan_synth

    steps: list[tuple] = []
    gen = PipelineGenerator(shared_tiny_model, steps=2, on_step=lambda *a: steps.append(a))
    seen = _guard_steps(monkeypatch, gen.pipe)
    plan = plan_synth(SynthOptions(ann=EXAMPLES / "shapes_mini" / "annotations.json", out=tmp_path, frames=4,
                                   slots=8, max_clips=1))
    frames = gen(plan.clips, [plan.prompts[c.clip_id] for c in plan.clips], [plan.seeds[c.clip_id] for c in plan.clips])
    assert frames.shape[:2] == (1, 4) and seen == [0, 1] and steps == [(0, 2, 1), (1, 2, 1)]


def test_a_syncing_callback_or_scheduler_is_caught(tiny_pipe, monkeypatch):
    _guard_steps(monkeypatch, tiny_pipe)
    kw = dict(_arrays(1), num_inference_steps=2, output_type="latent")
    with pytest.raises(HostSyncError, match=r"\.item\(\)"):
        tiny_pipe(**kw, callback=lambda i, t, latents: latents.abs().mean().item())
    # the scheduler's own lookup of the first timestep (nonzero + .item()) when no begin index is set
    monkeypatch.setattr(tiny_pipe.scheduler, "set_begin_index", lambda index=0: None)
    tiny_pipe.scheduler._begin_index = None
    with pytest.raises(HostSyncError, match="nonzero"):
        tiny_pipe(**kw)
