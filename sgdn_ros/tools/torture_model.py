"""A deliberately slow copy of an SGDN model, to stop the node during a long inference.

Before the model's own graph, the input goes through a chain of matrix products with the
identity (exact in float32, and not folded away by ONNX Runtime, whose input they depend on),
so the copy gives the original's grasps, only later. The chain's length is measured on this
machine for the inference time asked for.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper

_PROBE_PRODUCTS = 8


def save_slow_model(source: pathlib.Path, output: pathlib.Path, seconds: float) -> float:
    """Write to `output` a copy of the ONNX model `source` whose inference takes about
    `seconds` here; return the time one inference of it took."""
    model = onnx.load(str(source))
    per_product = (_inference_seconds(_slowed(model, _PROBE_PRODUCTS))
                   - _inference_seconds(model)) / _PROBE_PRODUCTS
    products = max(1, round(seconds / max(per_product, 1e-5)))
    slow = _slowed(model, products)
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(slow, str(output))
    return _inference_seconds(slow)


def _slowed(model: onnx.ModelProto, products: int) -> onnx.ModelProto:
    slow = onnx.ModelProto()
    slow.CopyFrom(model)
    graph = slow.graph
    source = graph.input[0].name
    row = graph.input[0].type.tensor_type.shape.dim[-1].dim_value
    for node in graph.node:
        node.input[:] = ["slow_input" if name == source else name for name in node.input]
    graph.initializer.extend([
        numpy_helper.from_array(np.eye(row, dtype=np.float32), "slow_identity"),
        numpy_helper.from_array(np.array([-1, row], dtype=np.int64), "slow_rows")])
    chain = [helper.make_node("Shape", [source], ["slow_shape"]),
             helper.make_node("Reshape", [source, "slow_rows"], ["slow_0"])]
    chain += [helper.make_node("MatMul", [f"slow_{step}", "slow_identity"], [f"slow_{step + 1}"])
              for step in range(products)]
    chain.append(helper.make_node("Reshape", [f"slow_{products}", "slow_shape"], ["slow_input"]))
    chain += list(graph.node)
    del graph.node[:]
    graph.node.extend(chain)
    return slow


def _inference_seconds(model: onnx.ModelProto) -> float:
    """The fastest of three inferences of `model` on a zero input (one warm-up first)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    dims = session.get_inputs()[0].shape
    frame = np.zeros([dim if isinstance(dim, int) else 1 for dim in dims], np.float32)
    feed = {session.get_inputs()[0].name: frame}
    session.run(None, feed)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return min(times)
