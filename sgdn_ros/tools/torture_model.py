"""A deliberately slow copy of an SGDN model, to stop the node during a long inference.

Before the model's own graph, the input goes through a chain of matrix products with the
identity (exact in float32, and not folded away by ONNX Runtime, whose input they depend on),
so the copy gives the original's grasps, only later. The chain's length is measured on this
machine for the inference time asked for: the time of a chain alone, not the difference between
the model with and without one (on a loaded machine that difference came out near zero once, and
the chain it asked for ran for minutes).
"""

from __future__ import annotations

import pathlib
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper

_PROBE_PRODUCTS = 32


def save_slow_model(source: pathlib.Path, output: pathlib.Path, seconds: float) -> float:
    """Write to `output` a copy of the ONNX model `source` whose inference takes about
    `seconds` here; return the time one inference of it took."""
    model = onnx.load(str(source))
    per_product = _inference_seconds(_chain_alone(model, _PROBE_PRODUCTS)) / _PROBE_PRODUCTS
    remaining = max(seconds - _inference_seconds(model), 0.0)
    products = max(1, round(remaining / max(per_product, 1e-5)))
    slow = _slowed(model, products)
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(slow, str(output))
    return _inference_seconds(slow)


def _identity_chain(model: onnx.ModelProto, products: int
                    ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes from the model's input to ``slow_input`` (the same values, after
    ``products`` matrix products), and their constants."""
    source = model.graph.input[0]
    row = source.type.tensor_type.shape.dim[-1].dim_value
    constants = [numpy_helper.from_array(np.eye(row, dtype=np.float32), "slow_identity"),
                 numpy_helper.from_array(np.array([-1, row], dtype=np.int64), "slow_rows")]
    nodes = [helper.make_node("Shape", [source.name], ["slow_shape"]),
             helper.make_node("Reshape", [source.name, "slow_rows"], ["slow_0"])]
    nodes += [helper.make_node("MatMul", [f"slow_{step}", "slow_identity"], [f"slow_{step + 1}"])
              for step in range(products)]
    nodes.append(helper.make_node("Reshape", [f"slow_{products}", "slow_shape"], ["slow_input"]))
    return nodes, constants


def _chain_alone(model: onnx.ModelProto, products: int) -> onnx.ModelProto:
    """A model of the chain only, on the model's input, to time one product."""
    nodes, constants = _identity_chain(model, products)
    output = helper.make_tensor_value_info("slow_input", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "slow_chain", [model.graph.input[0]], [output], constants)
    return helper.make_model(graph, opset_imports=model.opset_import,
                             ir_version=model.ir_version)


def _slowed(model: onnx.ModelProto, products: int) -> onnx.ModelProto:
    slow = onnx.ModelProto()
    slow.CopyFrom(model)
    graph = slow.graph
    source = graph.input[0].name
    for node in graph.node:
        node.input[:] = ["slow_input" if name == source else name for name in node.input]
    chain, constants = _identity_chain(slow, products)
    graph.initializer.extend(constants)
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
