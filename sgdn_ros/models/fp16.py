"""An FP16 copy of an ONNX model that keeps float32 inputs and outputs (no torch needed).

TensorRT 11 and TensorRT-RTX have no FP16 builder flag: they run the precision written in the
ONNX file, so an FP16 engine is built from an FP16 copy. Callers keep feeding and reading
float32, hence float32 I/O. onnxconverter-common does the conversion; its default block list
keeps ops such as Resize in FP32 (ONNX Runtime's CPU Resize takes no FP16 scales), wrapped in
casts. When such an op produces a graph output, the converter still casts that output to FP16
despite ``keep_io_types``; those final casts are turned back to float32 here. The converter
names its casts after the nodes they wrap, so nodes without a name (hand-built graphs such as
``sgdn_ros.models.synthetic``) get one first, or their casts would share a name.

FP16 overflows where activations exceed 65504: a network with untrained batch-norm statistics
(random weights) gives NaN. Check a copy against its FP32 original on real images before
trusting it (trained SGDN weights: logits within about 0.01, same top grasp).
"""

from __future__ import annotations

import importlib.metadata
import warnings

import onnx

CONVERSION_FORMAT = "sgdn_ros.models.fp16.v1"


class Fp16ConversionError(RuntimeError):
    """The model cannot be converted to FP16 with float32 inputs and outputs."""


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return an FP16 copy of ``model`` (weights and arithmetic) with float32 inputs/outputs.

    ``model`` itself is left unchanged. Raises ``Fp16ConversionError`` when onnxconverter-common
    is missing or an output cannot be kept float32.
    """
    float16 = _converter()
    named = onnx.ModelProto()
    named.CopyFrom(model)
    _name_unnamed_nodes(named.graph)
    with warnings.catch_warnings():
        # One warning per weight clipped to FP16's range: expected, and thousands of them.
        warnings.filterwarnings("ignore", module=r"onnxconverter_common")
        converted = float16.convert_float_to_float16(named, keep_io_types=True)
    _restore_float32_outputs(converted, model)
    return converted


def converter_identity() -> str:
    """What produced an FP16 copy (this module's format and the converter's version); a cache
    of engines built from FP16 copies keys on it, since another converter gives another copy."""
    return f"{CONVERSION_FORMAT}, onnxconverter-common {_converter_version()}"


def _converter():
    try:
        from onnxconverter_common import float16
    except ImportError as error:
        raise Fp16ConversionError(
            "an FP16 copy of the ONNX model needs onnxconverter-common: "
            "pip install onnxconverter-common") from error
    return float16


def _converter_version() -> str:
    try:
        return importlib.metadata.version("onnxconverter-common")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _name_unnamed_nodes(graph: onnx.GraphProto) -> None:
    taken = {node.name for node in graph.node}
    for index, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _restore_float32_outputs(converted: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Retarget the casts that make float32 outputs FP16 (see the module docstring)."""
    float32_outputs = {output.name for output in original.graph.output
                       if output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    producers = {name: node for node in converted.graph.node for name in node.output}
    for output in converted.graph.output:
        tensor_type = output.type.tensor_type
        if output.name not in float32_outputs or tensor_type.elem_type == onnx.TensorProto.FLOAT:
            continue
        producer = producers.get(output.name)
        if producer is None or producer.op_type != "Cast":
            made_by = "no node" if producer is None else f"a {producer.op_type} node"
            raise Fp16ConversionError(
                f"the FP16 conversion left output {output.name!r} as FP16, made by {made_by}; "
                "build the engine in FP32 instead")
        next(attribute for attribute in producer.attribute if attribute.name == "to").i = (
            onnx.TensorProto.FLOAT)
        tensor_type.elem_type = onnx.TensorProto.FLOAT
