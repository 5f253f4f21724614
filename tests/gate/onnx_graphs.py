"""Tiny ONNX graphs for the gate's tests, built with the onnx package's helper API.

Each model takes an image input and returns a constant output chosen by the test (the input's
values are folded in times zero, so the graph really reads its input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def constant_model(path: Path, output: np.ndarray, input_shape=(1, 3, 64, 96), *, hide_shape: bool = False,
                   input_type: int = TensorProto.FLOAT) -> Path:
    """Write a model ``images -> output`` (constant ``output``) to ``path``.

    ``hide_shape``: the output's shape is computed from the input's values at run time, so
    that nothing about it but its rank is known before the model runs.
    """
    out = np.asarray(output, np.float32)
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    inits = [zero]
    nodes = [
        helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["images_f"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    if hide_shape:
        inits += [numpy_helper.from_array(out.reshape(-1), "const"),
                  numpy_helper.from_array(np.asarray(out.shape, np.float32), "dims")]
        nodes += [helper.make_node("Add", ["dims", "nothing"], ["dims_f"]),
                  helper.make_node("Cast", ["dims_f"], ["dims_i"], to=TensorProto.INT64),
                  helper.make_node("Reshape", ["const", "dims_i"], ["shaped"]),
                  helper.make_node("Add", ["shaped", "nothing"], ["output"])]
    else:
        inits.append(numpy_helper.from_array(out, "const"))
        nodes.append(helper.make_node("Add", ["const", "nothing"], ["output"]))
    graph = helper.make_graph(
        nodes, "constant_detector",
        [helper.make_tensor_value_info("images", input_type, list(input_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None if hide_shape else list(out.shape))],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def first_pixels_model(path: Path, input_shape=(1, 3, 64, 96)) -> Path:
    """Write a model whose one output row is the input's first two pixels, channel by channel:
    ``[c0(0,0), c0(0,1), c1(0,0), c1(0,1), c2(0,0), c2(0,1)]`` (shape (1, 1, 6))."""
    ints = [numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in
            (("starts", [0, 0]), ("ends", [1, 2]), ("axes", [2, 3]), ("shape", [1, 1, 6]))]
    nodes = [helper.make_node("Slice", ["images", "starts", "ends", "axes"], ["corner"]),
             helper.make_node("Reshape", ["corner", "shape"], ["output"])]
    graph = helper.make_graph(
        nodes, "first_pixels", [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 6])], initializer=ints)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path
