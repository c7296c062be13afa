"""What identifies an ONNX model in the engine cache key: the sha256 of its bytes (external
weight files included) and its input signature, static except perhaps the batch axis. onnx is
imported only when a model is read, so importing this module stays cheap."""

from __future__ import annotations

import hashlib
import pathlib

from sgdn_ros.backends.tensorrt.errors import EngineBuildError

# How a dynamic batch axis reads in the input signature (``input:float32[batch,3,320,320]``).
DYNAMIC_BATCH = "batch"


def onnx_identity(path: pathlib.Path) -> tuple[str, str]:
    """sha256 of the model (its external data files included) and its inputs, checked static
    but for the batch axis (see ``has_dynamic_batch``).

    Reads the file once: the bytes hashed are the bytes parsed.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise EngineBuildError(f"ONNX model not found: {path}") from None
    except OSError as error:
        raise EngineBuildError(f"cannot read the ONNX model {path}: {error}") from error
    try:
        model = onnx.load_model_from_string(content)
    except DecodeError as error:
        raise EngineBuildError(f"{path} is not an ONNX model: {error}") from error
    digest = hashlib.sha256(content)
    for location in _external_data_files(model):
        external = path.parent / location
        try:
            digest.update(location.encode())
            digest.update(external.read_bytes())
        except OSError as error:
            raise EngineBuildError(
                f"cannot read {external}, the external weights of {path}: {error}") from error
    return digest.hexdigest(), _describe_inputs(model, path)


def _external_data_files(model) -> list[str]:
    import onnx

    locations = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            if "location" in entries:  # the parser reports a model without one
                locations.add(entries["location"])
    return sorted(locations)


def has_dynamic_batch(inputs: str) -> bool:
    """Whether the input signature ``onnx_identity`` gave has a dynamic batch axis, so the
    engine needs an optimization profile."""
    return f"[{DYNAMIC_BATCH}," in inputs


def _describe_inputs(model, path: pathlib.Path) -> str:
    """``name:dtype[d0,d1,...]`` per graph input; a dynamic batch axis reads ``batch``, any
    other dynamic dimension is refused (one optimization profile covers the batch only)."""
    import onnx

    weights = {tensor.name for tensor in model.graph.initializer}
    described = []
    for value in model.graph.input:
        if value.name in weights:
            continue
        tensor_type = value.type.tensor_type
        dims = [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?")
                for dim in tensor_type.shape.dim]
        if dims and not (isinstance(dims[0], int) and dims[0] > 0):
            dims[0] = DYNAMIC_BATCH
        if not all(isinstance(dim, int) and dim > 0 for dim in dims[1:]):
            raise EngineBuildError(
                f"input {value.name!r} of {path} has a dynamic shape {dims}; export the model "
                "with a static input size (only the batch axis may be dynamic, as "
                "`sgdn-ros export` writes it)")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        described.append(f"{value.name}:{dtype}[{','.join(str(dim) for dim in dims)}]")
    return ";".join(described)
