"""A copy of an ONNX model whose batch axis is symbolic, so one run takes several frames (one
per camera: ``sgdn_ros.pipeline.cameras``).

The shipped models were exported with batch 1, as the published ``sgdn.onnx``; every SGDN layer
works frame by frame, so declaring the first axis of the input and outputs symbolic is all a
runtime needs (``test_batch`` checks that N frames in one run give each frame's maps alone).
"""

from __future__ import annotations

import pathlib
from os import PathLike

import onnx

BATCH_AXIS = "batch"


def save_dynamic_batch_copy(source: str | PathLike[str], path: str | PathLike[str]
                            ) -> pathlib.Path:
    """Write ``source`` with a symbolic first axis on every input and output to ``path``."""
    model = onnx.load(str(source))
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            raise ValueError(f"{source}: {value.name!r} has {len(dims)} axes; an SGDN model's "
                             "inputs and outputs have four (N, C, H, W)")
        dims[0].dim_param = BATCH_AXIS
    target = pathlib.Path(path)
    onnx.save(model, str(target))
    return target
