"""``tdgen train`` under a real two-process launch on the CPU (gloo): torchrun and accelerate launch.

Two processes of ``b`` clips must train like one process of ``2b``: the same global sample
positions, the same per-sample noise, one loss normalisation over the global batch, gradients
averaged by DDP. The model here has no dropout (``temporal_conv_dropout=0``): a dropout mask is
drawn for a whole batch tensor from the global RNG, so with dropout the two set-ups are equally
valid runs but not the same one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import tdgen

pytestmark = pytest.mark.slow

STEPS = 4
RTOL, ATOL = 1e-4, 1e-5
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def nodrop_model(tmp_path_factory) -> Path:
    """A tiny model at 32x32, 4 frames, 4 slots, without dropout (nothing stochastic in its forward)."""
    from tdgen.modeldir import init_tiny_model

    return init_tiny_model(tmp_path_factory.mktemp("models") / "nodrop", seed=0, resolution=(32, 32), frames=4,
                           slots=4, unet_overrides={"temporal_conv_dropout": 0.0})


def _args(rects, model: Path, out: Path, batch: int, *extra: object) -> list[str]:
    # condition dropout 0.3 and flips so that the per-position draws matter on such a short run
    return [str(a) for a in ("train", "--ann", rects["ann"], "--captions", rects["captions"], "--model", model,
                             "--out", out, "--frames", 4, "--steps", STEPS, "--batch-size", batch,
                             "--ema-decay", 0.9, "--text-dropout", 0.3, "--box-dropout", 0.3, "--hflip",
                             "--checkpoint-every", 2, "--json", *extra)]


def _launch(launcher: list[str], args: list[str]) -> dict:
    """Run ``launcher -m tdgen.cli ARGS`` (two processes) and return rank 0's JSON summary; the
    other rank prints nothing."""
    r = subprocess.run([*launcher, "-m", "tdgen.cli", *args], capture_output=True, text=True, timeout=600,
                       cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, r.stdout  # one summary: only the main process reports
    return json.loads(lines[0])


def _torchrun(args: list[str]) -> dict:
    return _launch([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                    "127.0.0.1", "--master-port", str(_free_port())], args)


def _log(out: Path) -> list[tuple[int, float]]:
    return [(x["step"], x["loss"]) for x in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())]


def _weights(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The exported (EMA) UNet weights and the raw trained ones of the last checkpoint."""
    return {"ema": load_file(str(out / "model" / "unet" / "diffusion_pytorch_model.safetensors")),
            "raw": load_file(str(out / "checkpoints" / f"step-{STEPS:06d}" / "model.safetensors"))}


def _max_diffs(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    out = {}
    for kind in a:
        assert a[kind].keys() == b[kind].keys()
        for k in a[kind]:
            torch.testing.assert_close(a[kind][k], b[kind][k], rtol=RTOL, atol=ATOL, msg=f"{kind} {k}")
        out[kind] = max(float((a[kind][k] - b[kind][k]).abs().max()) for k in a[kind])
    return out


@pytest.fixture(scope="module")
def two_process_run(rects, nodrop_model, tmp_path_factory) -> dict:
    """An uninterrupted torchrun run: 2 processes x 1 clip, checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("mp") / "torchrun"
    summary = _torchrun(_args(rects, nodrop_model, out, 1))
    return {"out": out, "summary": summary}


def test_two_processes_of_b_train_like_one_process_of_2b(rects, nodrop_model, two_process_run, tmp_path):
    single = tmp_path / "single"
    tdgen(*_args(rects, nodrop_model, single, 2), check=True)
    two = two_process_run["out"]
    assert two_process_run["summary"]["samples"] == 2 * STEPS  # both processes trained

    a, b = _log(single), _log(two)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, STEPS + 1))
    la, lb = np.array([x for _, x in a]), np.array([x for _, x in b])
    np.testing.assert_allclose(lb, la, rtol=RTOL, atol=ATOL)  # the logged loss is the mean over both
    assert len(set(la.round(3))) == STEPS  # a real curve, not one repeated value
    print(f"max loss difference {np.abs(la - lb).max():.3g}")

    before = load_file(str(nodrop_model / "unet" / "diffusion_pytorch_model.safetensors"))
    after = _weights(two)
    assert any(not torch.allclose(before[k], after["raw"][k], rtol=RTOL, atol=ATOL) for k in before), \
        "the tolerance cannot tell trained weights from the start"
    print("max weight differences", _max_diffs(_weights(single), after))


def test_checkpoints_are_written_once_and_resume_under_torchrun(rects, nodrop_model, two_process_run, tmp_path):
    full = two_process_run["out"]
    assert sorted(p.name for p in full.iterdir()) == ["checkpoints", "model", "train_log.jsonl"]
    root = full / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step-000002", "step-000004"]  # no temporary folder left
    for ckpt in root.iterdir():
        # one model, one optimizer, one EMA and state file, and each process's RNG state
        assert sorted(p.name for p in ckpt.iterdir()) == [
            "ema.safetensors", "model.safetensors", "optimizer.bin", "random_states_0.pkl", "random_states_1.pkl",
            "trainer_state.json"]
        state = json.loads((ckpt / "trainer_state.json").read_text())
        assert state["world_size"] == 2 and state["step"] == int(ckpt.name[5:])

    split = tmp_path / "split"
    first = _torchrun(_args(rects, nodrop_model, split, 1, "--stop-after", 2))
    assert first["steps"] == 2 and first["model_dir"] is None
    assert [p.name for p in (split / "checkpoints").iterdir()] == ["step-000002"]
    second = _torchrun(_args(rects, nodrop_model, split, 1, "--resume"))
    assert second["start_step"] == 2 and second["steps"] == STEPS
    assert second["resumed_from"] == str(split / "checkpoints" / "step-000002")
    assert _log(split) == _log(full)  # bit for bit, as a single-process resume
    a, b = _weights(split), _weights(full)
    assert all(torch.equal(a[kind][k], b[kind][k]) for kind in a for k in a[kind])


def test_accelerate_launch_trains_like_torchrun(rects, nodrop_model, two_process_run, tmp_path):
    # accelerate's --cpu flag starts one process (its multi-CPU route is mpirun); its torchrun
    # route (multi_gpu) runs on a CPU-only machine too, where tdgen's trainer picks gloo.
    config = tmp_path / "accelerate.yaml"
    config.write_text("\n".join([
        "compute_environment: LOCAL_MACHINE", "distributed_type: MULTI_GPU", "num_machines: 1", "machine_rank: 0",
        "num_processes: 2", "main_process_ip: 127.0.0.1", f"main_process_port: {_free_port()}",
        "mixed_precision: 'no'", "use_cpu: false", "gpu_ids: all", "rdzv_backend: static", "same_network: true",
        ""]))
    out = tmp_path / "accelerate"
    summary = _launch([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)],
                      _args(rects, nodrop_model, out, 1))
    assert summary["samples"] == 2 * STEPS
    a, b = _log(out), _log(two_process_run["out"])
    assert [s for s, _ in a] == [s for s, _ in b]
    np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=RTOL, atol=ATOL)
    _max_diffs(_weights(out), _weights(two_process_run["out"]))

