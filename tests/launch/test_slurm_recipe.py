"""``examples/slurm_synth.sh``: it parses, it submits what it says, and every command it would run
is one ``tdgen`` (and ``torchrun``) accept.

SLURM is not here: ``sbatch``, ``srun`` and ``scontrol`` are stand-ins that record their argv,
and so are ``tdgen`` and ``python`` (the script's TDGEN and PYTHON). The recorded ``tdgen synth``
commands are then run for real, with ``--dry-run`` where they would generate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import tdgen

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "slurm_synth.sh"
ANN = ROOT / "examples" / "mot_mini_cocovid.json"
# what --dry-run needs so as not to read a model: clip length, slots and output size given
NO_MODEL = ("--frames", "8", "--slots", "20", "--out-size", "64x48")

RECORDER = """#!{python}
import json, os, sys
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
sys.stdout.write({stdout!r})
"""


@pytest.fixture()
def run_script(tmp_path):
    """Run the script with the stand-ins; returns (process, the argv each stand-in was called with)."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    fake = tmp_path / "bin"
    fake.mkdir()
    outputs = {"sbatch": "4242;cluster1\n", "srun": "", "scontrol": "node001\nnode002\n", "tdgen": "", "python": ""}
    for name, stdout in outputs.items():
        path = fake / name
        path.write_text(RECORDER.format(python=sys.executable, stdout=stdout))
        path.chmod(0o755)
    record = tmp_path / "record.jsonl"

    def run(*args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        record.unlink(missing_ok=True)
        full = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "RECORD": str(record),
                "ANN": str(ANN), "OUT": str(tmp_path / "out"), "MODEL": "tiny", "TDGEN": str(fake / "tdgen"),
                "PYTHON": str(fake / "python"), **env}
        for k in ("SLURM_ARRAY_TASK_ID", "SLURM_NODEID", "SLURM_NNODES", "SLURM_JOB_NODELIST"):
            if k not in env:
                full.pop(k, None)
        p = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full, timeout=60)
        calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
        return p, calls

    return run


def test_the_script_parses():
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_submit_makes_a_0_based_array_and_a_finalize_job_after_it(run_script):
    p, calls = run_script("submit", SHARDS="4")
    assert p.returncode == 0, p.stderr
    assert [c[0] for c in calls] == ["sbatch", "sbatch"]
    array, fin = calls
    assert "--array=0-3" in array and array[-2:] == [str(SCRIPT), "shard"]
    # the job id without the cluster name that --parsable may add
    assert "--dependency=afterok:4242" in fin and fin[-2:] == [str(SCRIPT), "finalize"]
    # resubmitting a few tasks keeps the split into SHARDS
    _, calls = run_script("submit", SHARDS="4", ARRAY="1,3")
    assert "--array=1,3" in calls[0]


def test_each_array_task_runs_its_shard_with_flags_synth_accepts(run_script, tmp_path):
    p, calls = run_script("shard", SHARDS="4", SLURM_ARRAY_TASK_ID="2")
    assert p.returncode == 0, p.stderr
    (argv,) = calls
    assert argv[0] == "tdgen" and argv[1] == "synth" and argv[-2:] == ["--shard", "2/4"]
    r = tdgen(*argv[1:], *NO_MODEL, "--dry-run", "--json", check=True)
    plan = json.loads(r.last_json_line())
    assert plan["shard"] == [2, 4] and 0 < plan["assigned_clips"] < plan["clips"]
    assert not (tmp_path / "out").exists()  # --dry-run creates nothing
    # an array numbered from 1, or past SHARDS, is refused before tdgen runs
    p, calls = run_script("shard", SHARDS="4", SLURM_ARRAY_TASK_ID="4")
    assert p.returncode == 2 and "--array=0-3" in p.stderr and not calls


def test_the_finalize_job_finalizes_a_synth_folder(run_script, tmp_path):
    from fakegen import FakeGenerator

    from tdgen.synth import SynthOptions, run_synth

    out = tmp_path / "out"
    run_synth(SynthOptions(ann=ANN, out=out, frames=4, slots=6, max_clips=2, steps=2, shard=(0, 2)), FakeGenerator)
    assert not (out / "annotations.json").exists()  # shard 1 never ran: nobody finalized
    p, calls = run_script("finalize")
    assert p.returncode == 0, p.stderr
    (argv,) = calls
    tdgen(*argv[1:], check=True)
    assert (out / "annotations.json").is_file()


def test_the_torchrun_recipe_runs_one_torchrun_per_node(run_script):
    p, calls = run_script("submit-torchrun", NODES="3", GPUS_PER_NODE="2")
    assert p.returncode == 0, p.stderr
    (sb,) = calls
    assert {"--nodes=3", "--ntasks-per-node=1", "--gpus-per-node=2"} <= set(sb) and sb[-1] == "torchrun-job"
    p, calls = run_script("torchrun-job", SLURM_JOB_NODELIST="node[001-002]")
    assert p.returncode == 0, p.stderr
    assert [c[0] for c in calls] == ["scontrol", "srun"] and calls[1][-2:] == [str(SCRIPT), "node"]
    argv = _node_command(run_script)
    assert argv[:3] == ["python", "-m", "torch.distributed.run"]
    assert argv[argv.index("--node-rank") + 1] == "1" and argv[argv.index("--rdzv-endpoint") + 1] == "node001:29500"


def _node_command(run_script) -> list[str]:
    """What the script runs on node 1 of 2 (4 GPUs each), the head node being node001."""
    p, calls = run_script("node", SLURM_NODEID="1", SLURM_NNODES="2", RDZV_HOST="node001", GPUS_PER_NODE="4")
    assert p.returncode == 0, p.stderr
    (argv,) = calls
    return argv


@pytest.mark.slow  # imports torch for torchrun's own argument parser
def test_torchrun_and_synth_accept_the_node_command(run_script):
    pytest.importorskip("torch")
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(_node_command(run_script)[3:])  # the flags torchrun reads
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "4", 1)
    assert args.rdzv_endpoint == "node001:29500" and args.rdzv_backend == "static"
    assert args.module and args.training_script == "tdgen.cli"
    r = tdgen(*args.training_script_args, *NO_MODEL, "--dry-run", "--json", check=True)
    assert json.loads(r.last_json_line())["clips"] > 0
