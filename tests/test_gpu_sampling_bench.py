"""benchmarks/gpu_sampling.py --tiny: the table and the JSON line a GPU run prints, on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_sampling.py"
ROW_KEYS = {"size", "dtype", "clips", "batch", "mode", "baseline", "frames", "ms_per_step", "s_per_video",
            "peak_mem_gib", "tflops_per_step", "achieved_tflops", "peak_fraction", "speedup_vs_baseline",
            "mem_vs_baseline", "first_call_s"}


def _bench():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_sampling
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_sampling


def test_tiny_benchmark_prints_a_table_and_one_json_line(tmp_path, capsys):
    out = tmp_path / "bench.json"
    _bench().main(["--tiny", "--no-compile", "--sizes", "16x24,24x32", "--steps-measured", "1", "--warmup", "0",
                   "--json-out", str(out)])
    _check_output(capsys.readouterr().out, out)


@pytest.mark.slow
def test_tiny_benchmark_as_a_script(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--no-compile", "--sizes", "16x24,24x32",
                        "--steps-measured", "1", "--warmup", "0", "--json-out", str(out)],
                       capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    assert r.returncode == 0, r.stderr
    _check_output(r.stdout, out)


def _check_output(stdout: str, out: Path) -> None:
    lines = stdout.splitlines()
    json_lines = [ln for ln in lines if ln.startswith("JSON ")]
    assert len(json_lines) == 1
    result = json.loads(json_lines[0][len("JSON "):])
    assert result == json.loads(out.read_text())
    assert result["unet"] == "tiny" and result["device"] == "cpu" and result["frames"] == 4
    assert result["baseline"] == {"clips": 1, "unet_batch": 2, "mode": "eager", "dtype": "fp32"}
    rows = result["rows"]
    # per size: the baseline (1 clip, eager) and 2 clips, eager only
    assert [(tuple(r["size"]), r["clips"], r["mode"], r["baseline"]) for r in rows] == [
        ((16, 24), 1, "eager", True), ((16, 24), 2, "eager", False),
        ((24, 32), 1, "eager", True), ((24, 32), 2, "eager", False)]
    for row in rows:
        assert ROW_KEYS <= set(row) and "error" not in row, row
        assert row["batch"] == 2 * row["clips"]  # both guidance branches of each clip in one forward
        assert row["s_per_video"] == pytest.approx(row["ms_per_step"] * 50 / row["clips"] / 1000, rel=1e-3, abs=1e-4)
        assert row["tflops_per_step"] > 0 and row["peak_mem_gib"] is None  # no CUDA here
    assert rows[0]["speedup_vs_baseline"] == 1.0
    # the FLOPs grow with the batch and the frame size (counted per shape on the meta device)
    flops = [r["tflops_per_step"] for r in rows]
    assert flops[1] > flops[0] and flops[2] > flops[0]
    header = lines[0].split()
    assert header[:5] == ["HxW", "dtype", "clips", "batch", "mode"] and "ms/step" in header
    assert sum("(baseline)" in ln for ln in lines) == 2


def test_a_failing_configuration_is_a_row_not_a_crash(monkeypatch, capsys):
    gpu_sampling = _bench()

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here\nsecond line")

    monkeypatch.setattr(gpu_sampling.torch, "compile", broken)
    result = gpu_sampling.main(["--tiny", "--sizes", "16x24", "--clips", "1", "--steps-measured", "1",
                                "--warmup", "0"])
    rows = {r["mode"]: r for r in result["rows"]}
    assert "error" not in rows["eager"] and rows["eager"]["ms_per_step"] > 0
    assert rows["compile"]["error"] == "RuntimeError: no compiler here"
    assert "ms_per_step" not in rows["compile"] and rows["compile"]["speedup_vs_baseline"] is None
    assert "no compiler here" in capsys.readouterr().out
