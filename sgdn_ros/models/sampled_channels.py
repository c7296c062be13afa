"""A copy of a full-size SGDN ONNX model whose angle and width outputs stop before the network's
last upsampling, as ``sgdn-ros export --sampled-channels`` writes them, for models exported
before that option existed (the shipped defaults among them).

The decoders read those maps at a few chosen pixels and evaluate the bilinear upsampling there
(``sgdn_ros.core.channel_maps``), so the K planes need not be upsampled whole: the light model
ran 1.07x as fast on ONNX Runtime on 2 CPU cores. Only an aligned-corners bilinear ``Resize``
can be left out this way; nearest-upsampling models (TensorRT 7 exports) are refused.
"""

from __future__ import annotations

import pathlib
from os import PathLike

import onnx

from sgdn_ros.core.atomic_files import atomic_output
from sgdn_ros.models.metadata import read_model_metadata


def save_sampled_channels_copy(source: str | PathLike[str], path: str | PathLike[str]
                               ) -> pathlib.Path:
    """Write ``source`` to ``path`` with the ``Resize`` before its angle and width outputs
    removed (and what only it used); raise ``ValueError`` for a model without that upsampling."""
    source = pathlib.Path(source)
    model = onnx.load(str(source))
    _, angle_name, width_name = read_model_metadata(source).output_names
    shapes = {value.name: value for value in
              onnx.shape_inference.infer_shapes(model).graph.value_info}
    produced_by = {output: node for node in model.graph.node for output in node.output}
    outputs = {value.name: value for value in model.graph.output}
    for name in (angle_name, width_name):
        resize = produced_by.get(name)
        if resize is None or not _is_aligned_bilinear_resize(resize):
            raise ValueError(
                f"{source}: output {name!r} does not come from a bilinear Resize with aligned "
                "corners, so the decoders cannot sample it in its place; export the checkpoint "
                "with sgdn-ros export --sampled-channels instead")
        head = resize.input[0]
        if head not in shapes or head not in produced_by:
            raise ValueError(f"{source}: the map before {name!r}'s Resize has no known shape "
                             "or producer; it cannot become the output")
        model.graph.node.remove(resize)
        for node in model.graph.node:  # the head's map takes the output's name everywhere
            for names in (node.input, node.output):
                names[:] = [name if tensor == head else tensor for tensor in names]
        dims = outputs[name].type.tensor_type.shape.dim
        for dim, size in zip(dims[2:], shapes[head].type.tensor_type.shape.dim[2:]):
            dim.dim_value = size.dim_value
    _remove_unused_nodes(model.graph)
    onnx.checker.check_model(model)
    target = pathlib.Path(path)
    with atomic_output(target) as partial:
        onnx.save(model, partial)
    return target


def _is_aligned_bilinear_resize(node: onnx.NodeProto) -> bool:
    attributes = {attribute.name: onnx.helper.get_attribute_value(attribute)
                  for attribute in node.attribute}
    return (node.op_type == "Resize" and attributes.get("mode") == b"linear"
            and attributes.get("coordinate_transformation_mode") == b"align_corners")


def _remove_unused_nodes(graph: onnx.GraphProto) -> None:
    """Drop the nodes and initializers no graph output depends on (the removed Resizes' size
    computations)."""
    needed = {value.name for value in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
