"""The SGDN metadata an ONNX file carries (``metadata_props``), read into one typed record and
checked against the graph, so a runtime uses the model without guessing.

``sgdn_ros.network.export`` writes it (through ``ModelMetadata.properties``); the synthetic test
model too. A file without it, such as the author's published ``sgdn.onnx``, is fine: the graph's
own shapes are then the only facts, and the published conventions apply (colour input,
``input_kind`` "bgr", normalised ``(pixel - PUBLISHED_MEAN_BGR) * PUBLISHED_SCALE``; widths in
pixels; outputs named ``output_able``, ``output_angle``, ``output_width``). Depth and RGB-D
models record ``input_kind`` "depth" or "depth_bgr" (``sgdn_ros.core.depth_planes``: their
normalisation is the author's, ``mean_bgr`` and ``scale`` do not apply to them).

Outputs are matched by name, never by position: the published names, or those recorded under
``output_names`` (a JSON list: able, angle, width) for a model exported with other names.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike

from sgdn_ros.core.decoding import WIDTH_UNITS
from sgdn_ros.core.depth_planes import INPUT_KIND_CHANNELS, INPUT_KINDS
from sgdn_ros.core.preprocessing import PUBLISHED_MEAN_BGR, PUBLISHED_SCALE
from sgdn_ros.models.errors import ModelLoadError

FORMAT_KEY = "sgdn_ros_format"
FORMAT_VERSION = "sgdn_ros.onnx.v1"
PUBLISHED_INPUT_NAME = "input"
PUBLISHED_OUTPUT_NAMES: tuple[str, str, str] = ("output_able", "output_angle", "output_width")
OUTPUT_ROLES: tuple[str, str, str] = ("able", "angle", "width")
FIX_ADVICE = ("re-export the model with `sgdn-ros export`, or correct the metadata_props entry "
              "(onnx.helper.set_model_props)")

Dim = int | str | None  # a graph dimension: a size, or symbolic / unknown


@dataclass(frozen=True)
class ModelMetadata:
    """What the file says about itself.

    Facts about the graph (``input_size``, ``input_channels``, ``num_angle_classes``,
    ``width_channels``) are None when not written: the graph's shapes then decide alone.
    Conventions (input kind, normalisation, width units, output names) hold the published ones
    when not written. ``format_version`` is None for a file without SGDN metadata. ``extra``
    keeps the other entries (backbone, upsample, precision, opset, the user's own).
    """

    input_size: int | None = None
    input_channels: int | None = None
    num_angle_classes: int | None = None
    width_channels: int | None = None
    input_kind: str = INPUT_KINDS[0]
    mean_bgr: tuple[float, float, float] = PUBLISHED_MEAN_BGR
    scale: float = PUBLISHED_SCALE
    width_units: str = WIDTH_UNITS[0]
    output_names: tuple[str, str, str] = PUBLISHED_OUTPUT_NAMES
    format_version: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def properties(self) -> dict[str, str]:
        """The ``metadata_props`` entries that ``parse_metadata`` reads back into this record;
        facts left None are not written."""
        facts = {"input_size": self.input_size, "input_channels": self.input_channels,
                 "num_angle_classes": self.num_angle_classes,
                 "width_channels": self.width_channels}
        return {
            FORMAT_KEY: self.format_version or FORMAT_VERSION,
            **{key: str(value) for key, value in facts.items() if value is not None},
            "input_kind": self.input_kind,
            "mean_bgr": json.dumps(list(self.mean_bgr)),
            "scale": repr(self.scale),
            "width_units": self.width_units,
            "output_names": json.dumps(list(self.output_names)),
            **self.extra,
        }


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("not a positive integer")
    return value


def _mean_bgr(text: str) -> tuple[float, float, float]:
    values = json.loads(text)
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError("not a JSON list of three numbers (B, G, R)")
    means = tuple(float(value) for value in values)
    if not all(math.isfinite(mean) for mean in means):
        raise ValueError("not finite")
    return means[0], means[1], means[2]


def _scale(text: str) -> float:
    value = float(text)
    if not 0.0 < value < math.inf:
        raise ValueError("not a finite number > 0")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"not one of {', '.join(choices)}")
        return text
    return parse


def _output_names(text: str) -> tuple[str, str, str]:
    names = json.loads(text)
    if not isinstance(names, list) or len(names) != 3 or len(set(names)) != 3 \
            or not all(isinstance(name, str) and name for name in names):
        raise ValueError("not a JSON list of three distinct names (able, angle, width)")
    return names[0], names[1], names[2]


_PARSERS: dict[str, Callable[[str], object]] = {
    "input_size": _positive_int,
    "input_channels": _positive_int,
    "num_angle_classes": _positive_int,
    "width_channels": _positive_int,
    "input_kind": _one_of(INPUT_KINDS),
    "mean_bgr": _mean_bgr,
    "scale": _scale,
    "width_units": _one_of(WIDTH_UNITS),
    "output_names": _output_names,
}


def parse_metadata(properties: Mapping[str, str], source: str) -> ModelMetadata:
    """The record of a file's ``metadata_props``; ``source`` names the file in errors.

    Raises one ``ModelLoadError`` listing every entry that cannot be read.
    """
    version = properties.get(FORMAT_KEY)
    problems = []
    if version is not None and version != FORMAT_VERSION:
        problems.append(f"{FORMAT_KEY} is {version!r}, a format this sgdn_ros does not read "
                        f"(it reads {FORMAT_VERSION!r})")
    values = {}
    for key, parse in _PARSERS.items():
        if key in properties:
            try:
                values[key] = parse(properties[key])
            except (ValueError, TypeError) as error:
                problems.append(f"{key} is {properties[key]!r}: {error}")
    if problems:
        raise ModelLoadError(
            f"{source}: unreadable SGDN metadata: {'; '.join(problems)}; {FIX_ADVICE}")
    extra = {key: value for key, value in properties.items()
             if key not in _PARSERS and key != FORMAT_KEY}
    return ModelMetadata(format_version=version, extra=extra, **values)


def check_against_graph(metadata: ModelMetadata, input_shape: Sequence[Dim],
                        output_shapes: Mapping[str, Sequence[Dim]], source: str) -> None:
    """Raise one ``ModelLoadError`` naming every way ``metadata`` contradicts the graph.

    ``input_shape`` is (N, C, H, W); ``output_shapes`` maps each output's name to its shape.
    Symbolic or unknown dimensions are not compared. Published output names the graph lacks
    are left to the name matching (``sgdn_ros.backends.base.resolve_output_names``).
    """
    problems = []

    def compare(what: str, written: int | None, actual: Dim) -> None:
        if written is not None and isinstance(actual, int) and written != actual:
            problems.append(f"{what} is {written} in the metadata but {actual} in the graph")

    if len(input_shape) == 4:
        compare("input_channels", metadata.input_channels, input_shape[1])
        problems.extend(input_kind_problems(metadata.input_kind, input_shape[1]))
        compare("input_size (height)", metadata.input_size, input_shape[2])
        compare("input_size (width)", metadata.input_size, input_shape[3])
    missing = [name for name in metadata.output_names if name not in output_shapes]
    if missing and metadata.output_names != PUBLISHED_OUTPUT_NAMES:
        problems.append(
            f"output_names {list(metadata.output_names)} name {', '.join(missing)}, which the "
            f"graph lacks (its outputs: {', '.join(output_shapes)})")
    elif not missing:
        shape_of = dict(zip(OUTPUT_ROLES, (output_shapes[name] for name in metadata.output_names)))
        for role, key, written in (("angle", "num_angle_classes", metadata.num_angle_classes),
                                   ("width", "width_channels", metadata.width_channels)):
            if len(shape_of[role]) > 1:
                compare(f"{key} (channels of {role} output)", written, shape_of[role][1])
    if problems:
        raise ModelLoadError(
            f"{source}: its SGDN metadata does not match the graph: {'; '.join(problems)}; "
            f"{FIX_ADVICE}")


def input_kind_problems(input_kind: str, channels: Dim) -> list[str]:
    """How ``input_kind`` contradicts an input of ``channels`` channels (none, or one line)."""
    expected = INPUT_KIND_CHANNELS[input_kind]
    if not isinstance(channels, int) or channels == expected:
        return []
    kinds = ", ".join(f"{kind!r} {count}" for kind, count in INPUT_KIND_CHANNELS.items())
    return [f"input_kind {input_kind!r} takes {expected} input channel(s) but the graph's input "
            f"has {channels} (channels per input_kind: {kinds}; a file without input_kind is "
            f"{INPUT_KINDS[0]!r})"]


def _declared_shape(value) -> tuple[Dim, ...]:
    """An ``onnx.ValueInfoProto``'s shape; symbolic dimensions by name, unknown ones None."""
    return tuple(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
                 for dim in value.type.tensor_type.shape.dim)


def read_model_metadata(model_path: str | PathLike[str]) -> ModelMetadata:
    """Read and check the metadata of an ONNX file, against the shapes its graph declares.

    Parses the file (not its external weight files, if any); a runtime that already holds the
    model should use ``parse_metadata`` and ``check_against_graph`` with the shapes it runs.
    """
    # onnx is imported here only: the backends import this module, and a TensorRT engine that
    # is already cached must load without it.
    import onnx
    from google.protobuf.message import DecodeError

    path = pathlib.Path(model_path).expanduser()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (OSError, DecodeError) as error:
        raise ModelLoadError(f"cannot read {path} as an ONNX model: {error}") from error
    metadata = parse_metadata({entry.key: entry.value for entry in model.metadata_props},
                              str(path))
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    input_shape = _declared_shape(inputs[0]) if len(inputs) == 1 else ()
    check_against_graph(metadata, input_shape,
                        {value.name: _declared_shape(value) for value in model.graph.output},
                        str(path))
    return metadata
