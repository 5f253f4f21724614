"""Import structure of ``tdgen.model``: no hidden cycles behind function-level imports."""

from __future__ import annotations

import ast
from pathlib import Path

import tdgen.model as model_pkg
from tdgen.model import embeddings, fourier

MODEL_DIR = Path(model_pkg.__file__).parent
# Function-level imports kept on purpose: optional or heavy third-party modules loaded on use.
ALLOWED_LAZY = {"safetensors.torch", "diffusers"}


def _imports(path: Path) -> tuple[list[str], list[str]]:
    """(top-level, nested) imported module names of one file; relative ones as ``.name``."""
    tree = ast.parse(path.read_text())
    top, nested = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        (top if node in tree.body else nested).extend(names)
    return top, nested


def test_no_function_level_imports_of_own_modules():
    for path in sorted(MODEL_DIR.glob("*.py")):
        _, nested = _imports(path)
        bad = [n for n in nested if n not in ALLOWED_LAZY]
        assert not bad, f"{path.name} imports {bad} inside a function"


def test_internal_import_graph_is_acyclic():
    graph = {}
    for path in MODEL_DIR.glob("*.py"):
        if path.stem == "__init__":
            continue
        top, _ = _imports(path)
        graph[path.stem] = {n.lstrip(".") for n in top if n.startswith(".") and n.lstrip(".")}
    assert "embeddings" not in graph["attention"] and graph["fourier"] == set()
    state: dict[str, str] = {}

    def visit(node: str, trail: tuple[str, ...]) -> None:
        assert state.get(node) != "open", f"import cycle: {' -> '.join(trail + (node,))}"
        if state.get(node) == "done":
            return
        state[node] = "open"
        for dep in graph.get(node, ()):
            visit(dep, trail + (node,))
        state[node] = "done"

    for name in graph:
        visit(name, ())


def test_fourier_helpers_re_exported_from_embeddings():
    assert embeddings.fourier_box_embedding is fourier.fourier_box_embedding
    assert embeddings.fourier_frame_embedding is fourier.fourier_frame_embedding
    assert model_pkg.fourier_box_embedding is fourier.fourier_box_embedding


def test_layers_stay_importable_from_blocks():
    from tdgen.model import blocks, layers

    for name in layers.__all__:
        assert getattr(blocks, name) is getattr(layers, name), name
    # blocks build on layers, never the other way round.
    top, _ = _imports(MODEL_DIR / "layers.py")
    assert ".blocks" not in top
