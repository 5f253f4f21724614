"""The one place that reads the launcher's variables, and the rule that nothing else does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tdgen.launch import Launch, current_launch, default_dtype, pick_device

PACKAGE = Path(__file__).resolve().parents[1] / "tdgen"
# the launcher/device function and the cache directory lookup
ALLOWED = {"launch.py", "modeldir.py"}


def test_a_plain_process_is_rank_0_of_1():
    launch = current_launch({})
    assert launch == Launch(0, 1, 0)
    assert not launch.launched and launch.is_main and launch.shard is None


def test_a_torchrun_process_is_its_rank():
    launch = current_launch({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert launch.launched and not launch.is_main
    assert launch.shard == (3, 4) and launch.local_rank == 1


@pytest.mark.parametrize("env", [{"RANK": "abc", "WORLD_SIZE": "2"}, {"RANK": "1", "WORLD_SIZE": "two"}])
def test_values_that_are_not_integers_mean_not_launched(env):
    assert current_launch(env) == Launch()


def test_inconsistent_values_are_kept_for_the_caller_to_refuse():
    assert current_launch({"RANK": "5", "WORLD_SIZE": "2"}).shard == (5, 2)


def test_device_and_dtype_defaults():
    assert pick_device("cuda:3") == "cuda:3"
    assert default_dtype("cpu") == "fp32"
    assert default_dtype("cuda:0") == "fp16"
    assert default_dtype("cuda:0", "bf16") == "bf16"


def test_only_the_launcher_and_the_cache_lookup_read_the_environment():
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                name = node.attr
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                name = next((a.name for a in node.names if a.name in ("environ", "getenv")), None)
            if name and path.name not in ALLOWED:
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert readers == []
