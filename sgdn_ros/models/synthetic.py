"""A tiny hand-built ONNX model with SGDN's exact input/output contract.

Tests and the demo need a model now, before trained weights exist, and they need outputs that
can be predicted from the image. This graph has no learned weights: it is a fixed image filter
that finds dark objects on a light table, built from Conv, MatMul, Pad, CumSum, Slice, Clip,
Concat, Reshape, Expand and elementwise operators.

What it computes, for an input of normalised BGR planes (the published SGDN preprocessing):

1. Objectness. The normalisation is undone inside the graph to get the brightness (mean of B,
   G, R in 0..255). Objectness is 0 at or above ``DARK_START_BRIGHTNESS``, rises linearly and
   is 1 at or below ``FULLY_DARK_BRIGHTNESS``. Saturating it hides the table's texture and the
   objects' own shading, so only their outlines matter below. A depth model (``input_kind``
   "depth", or "depth_bgr", whose colour planes it ignores) finds raised objects instead: on
   the depth plane (depth minus its mean over the crop, ``sgdn_ros.core.depth_planes``) the
   objectness is 0 at or above ``-RAISED_START_M``, rises linearly and is 1 at or below
   ``-FULLY_RAISED_M``: objects standing 15 mm or more out of a table that fills most of the
   crop.
2. ``output_able`` (grasp-confidence logits) = ``ABLE_GAIN * (body + CENTRE_WEIGHT * centre)
   + ABLE_BIAS``. ``body`` is the objectness averaged over a ``BODY_WINDOW_PX`` square, divided
   by ``BODY_FULL_FRACTION`` and clipped to 1, so the confidence map follows the object's shape
   (about 0.99 inside objects at least 20 px thick, 0.01 to 0.05 on the table more than
   ``BODY_WINDOW_PX / 2`` px from them) and is exactly flat inside it. ``centre`` is the
   objectness under a tent kernel (``CENTRE_WINDOW_PX`` boxes applied twice) wider than any
   object, so on that flat top a point-symmetric object's confidence peaks at its centre (to
   within a pixel, even beside other objects 60 px away).
3. ``output_angle`` (K angle-class logits) from the structure tensor of the objectness: Sobel
   gradients ``gx`` (along columns) and ``gy`` (up the screen, as rows grow downwards), whose
   products are summed under a nearly round window (``ORIENTATION_PASSES`` boxes of
   ``ORIENTATION_WINDOW_PX``, about 12 px standard deviation; a square window would bias the
   angle of objects lying between its axes and diagonals). At an object's centre the window
   spans its long outline, whose gradients point across the object: along the grasp. Class k,
   at angle ``theta_k = k / K * pi`` counter-clockwise on screen from +x, gets ``ANGLE_GAIN *
   (cos(2 theta_k) (Jxx - Jyy) + sin(2 theta_k) 2 Jxy) / (Jxx + Jyy + TENSOR_EPSILON)``, largest
   for the class nearest the dominant gradient orientation (within 3 degrees on the rendered
   scenes of ``sgdn_ros.training.scenes``). ``Jxy`` comes from the diagonal gradient:
   ``((gx + gy) / sqrt(2))^2 - (gx^2 + gy^2) / 2 = gx gy``, so one Sobel Conv and one squaring
   give all three products. On the bare table all logits are 0 (class 0 wins).
4. ``output_width``: the objectness averaged over a ``WIDTH_WINDOW_PX`` square, times its side,
   is about the thickness of an object longer than the window (exactly so when it lies along
   the image axes; up to about 10 % more when diagonal). The logit is chosen so that decoding
   with ``max_width_px = ASSUMED_MAX_WIDTH_PX`` (the decoder's default) gives that estimate plus
   ``WIDTH_CLEARANCE_PX``: ``logit = log(f / (1 - f))`` with ``f = width_px /
   ASSUMED_MAX_WIDTH_PX``. The bare table decodes to the clearance alone. With one width
   channel per angle class, every channel holds the same map. ``width_units`` "metres" only
   changes the metadata: the same fraction ``f`` is then read as ``f`` x ``max_width_m``.

Box sums use a running sum (CumSum) and two slices, so their cost does not grow with the
window size. Every operator works frame by frame, so ``dynamic_batch`` only has to declare the
first axis symbolic. The file carries the SGDN metadata an export writes
(``sgdn_ros.models.metadata``), with its tensor names as ``output_names``.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from os import PathLike

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import sgdn_ros
from sgdn_ros.core.decoding import WIDTH_UNITS
from sgdn_ros.core.depth_planes import INPUT_KIND_CHANNELS
from sgdn_ros.core.preprocessing import PUBLISHED_MEAN_BGR, PUBLISHED_SCALE
from sgdn_ros.models.metadata import (
    FORMAT_VERSION,
    PUBLISHED_INPUT_NAME,
    PUBLISHED_OUTPUT_NAMES,
    ModelMetadata,
)

PUBLISHED_TENSOR_NAMES: tuple[str, str, str, str] = (PUBLISHED_INPUT_NAME,
                                                     *PUBLISHED_OUTPUT_NAMES)
BATCH_AXIS_NAME = "batch"
MIN_OPSET = 11

DARK_START_BRIGHTNESS = 130.0
FULLY_DARK_BRIGHTNESS = 90.0
RAISED_START_M = 0.005
FULLY_RAISED_M = 0.015
BODY_WINDOW_PX = 15
BODY_FULL_FRACTION = 0.8
CENTRE_WINDOW_PX = 71
CENTRE_WEIGHT = 0.25
ABLE_GAIN = 10.0
ABLE_BIAS = -4.5
ORIENTATION_WINDOW_PX = 25
ORIENTATION_PASSES = 3
WIDTH_WINDOW_PX = 51
ANGLE_GAIN = 8.0
TENSOR_EPSILON = 1.0
WIDTH_CLEARANCE_PX = 20.0
ASSUMED_MAX_WIDTH_PX = 200.0

_ROWS_AXIS, _COLS_AXIS = 2, 3
_INTERNAL_PREFIX = "synthetic/"


class _GraphBuilder:
    """Collects nodes and constant initializers; names every intermediate tensor uniquely."""

    def __init__(self, spatial_size: int) -> None:
        self.spatial_size = spatial_size
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.zero = self.scalar("zero", 0.0)
        self.one = self.scalar("one", 1.0)

    def constant(self, label: str, value: np.ndarray) -> str:
        name = f"{_INTERNAL_PREFIX}const_{len(self.initializers)}_{label}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def scalar(self, label: str, value: float) -> str:
        return self.constant(label, np.array(value, dtype=np.float32))

    def node(self, op_type: str, inputs: Sequence[str], output: str | None = None,
             **attributes: object) -> str:
        output = output or f"{_INTERNAL_PREFIX}{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def conv(self, x: str, weights: np.ndarray) -> str:
        """Conv without bias, zero-padded to keep the size, for odd square kernels."""
        pad = weights.shape[-1] // 2
        inputs = [x, self.constant("weights", weights.astype(np.float32))]
        return self.node("Conv", inputs, pads=[pad] * 4)

    def channel_mix(self, x: str, weights: np.ndarray, bias: np.ndarray | None = None,
                    output: str | None = None) -> str:
        """Per-pixel affine map of channels, ``weights`` (out, in): a 1x1 convolution written
        as a MatMul, which ONNX Runtime runs without reordering to its blocked Conv layout.
        The reshapes keep the batch dimension (0: copied from the input)."""
        size = self.spatial_size
        out_channels, in_channels = weights.shape
        flat = self.node("Reshape", [x, self.constant(
            "shape", np.array([0, in_channels, size * size], dtype=np.int64))])
        mixed = self.node("MatMul", [self.constant("weights", weights.astype(np.float32)), flat])
        if bias is not None:
            mixed = self.node("Add", [mixed, self.constant(
                "bias", bias.astype(np.float32).reshape(out_channels, 1))])
        return self.node("Reshape", [mixed, self.constant(
            "shape", np.array([0, out_channels, size, size], dtype=np.int64))], output)

    def box_sum(self, x: str, window: int, axis: int) -> str:
        """Sum over a centred window of odd length along one spatial axis, zeros beyond edges."""
        half = window // 2
        pads = np.zeros(8, dtype=np.int64)
        pads[axis], pads[4 + axis] = half + 1, half
        padded = self.node("Pad", [x, self.constant("pads", pads)])
        axis_constant = self.constant("axis", np.array(axis, dtype=np.int64))
        running = self.node("CumSum", [padded, axis_constant])
        upper = self._slice(running, window, window + self.spatial_size, axis)
        lower = self._slice(running, 0, self.spatial_size, axis)
        return self.node("Sub", [upper, lower])

    def repeated_square_sum(self, x: str, window: int, passes: int) -> str:
        """Box sums over ``window`` x ``window`` squares, ``passes`` times: more passes give a
        smoother, more nearly round kernel of support ``passes * (window - 1) + 1``."""
        for _ in range(passes):
            x = self.box_sum(self.box_sum(x, window, _COLS_AXIS), window, _ROWS_AXIS)
        return x

    def _slice(self, x: str, start: int, stop: int, axis: int) -> str:
        bounds = [self.constant(label, np.array([value], dtype=np.int64))
                  for label, value in (("start", start), ("stop", stop), ("axis", axis))]
        return self.node("Slice", [x, *bounds])


def build_synthetic_sgdn_model(
    num_angle_classes: int = 120,
    width_channels: int = 1,
    input_size: int = 320,
    tensor_names: tuple[str, str, str, str] = PUBLISHED_TENSOR_NAMES,
    opset: int = 17,
    dynamic_batch: bool = False,
    input_kind: str = "bgr",
    width_units: str = "pixels",
) -> onnx.ModelProto:
    """Build the synthetic model (see the module docstring for what it computes).

    ``tensor_names`` are (input, able, angle, width); the graph's outputs are in that order.
    ``dynamic_batch`` declares the first axis symbolic, so one run may take several frames;
    the default, batch 1, is what runtimes that need static shapes (TensorRT here) take.
    ``input_kind`` "depth" (1 channel) or "depth_bgr" (4) builds a depth model, and
    ``width_units`` "metres" one whose widths are metric, as the author's are.
    """
    _check_arguments(num_angle_classes, width_channels, input_size, tensor_names, opset)
    if input_kind not in INPUT_KIND_CHANNELS:
        raise ValueError(f"input_kind must be one of {', '.join(INPUT_KIND_CHANNELS)}, "
                         f"got {input_kind!r}")
    if width_units not in WIDTH_UNITS:
        raise ValueError(f"width_units must be one of {', '.join(WIDTH_UNITS)}, "
                         f"got {width_units!r}")
    input_channels = INPUT_KIND_CHANNELS[input_kind]
    input_name, able_name, angle_name, width_name = tensor_names
    graph = _GraphBuilder(input_size)
    objectness = (_colour_objectness(graph, input_name) if input_kind == "bgr"
                  else _depth_objectness(graph, input_name, input_channels))
    _able_logits(graph, objectness, able_name)
    tensor = graph.repeated_square_sum(_gradient_products(graph, objectness),
                                       ORIENTATION_WINDOW_PX, ORIENTATION_PASSES)
    _angle_logits(graph, tensor, num_angle_classes, angle_name)
    _width_logits(graph, graph.repeated_square_sum(objectness, WIDTH_WINDOW_PX, 1),
                  width_channels, input_size, width_name)

    batch = BATCH_AXIS_NAME if dynamic_batch else 1

    def tensor_info(name: str, channels: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [batch, channels, input_size, input_size])

    onnx_graph = helper.make_graph(
        graph.nodes, "synthetic_sgdn",
        inputs=[tensor_info(input_name, input_channels)],
        outputs=[tensor_info(able_name, 1), tensor_info(angle_name, num_angle_classes),
                 tensor_info(width_name, width_channels)],
        initializer=graph.initializers)
    opset_imports = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        onnx_graph, opset_imports=opset_imports, producer_name="sgdn_ros",
        producer_version=sgdn_ros.__version__,
        ir_version=helper.find_min_ir_version_for(opset_imports),
        doc_string="Synthetic SGDN-contract model: finds dark (colour) or raised (depth) objects "
                   "on a table; not a trained network.")
    helper.set_model_props(model, ModelMetadata(
        input_size=input_size, input_channels=input_channels, input_kind=input_kind,
        num_angle_classes=num_angle_classes, width_channels=width_channels,
        width_units=width_units, output_names=(able_name, angle_name, width_name),
        format_version=FORMAT_VERSION).properties())
    onnx.checker.check_model(model)
    return model


def save_synthetic_sgdn_model(path: str | PathLike[str], **kwargs: object) -> pathlib.Path:
    """Build the synthetic model with ``kwargs`` and write it to ``path``; return the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_synthetic_sgdn_model(**kwargs), str(path))
    return path


def _check_arguments(num_angle_classes: int, width_channels: int, input_size: int,
                     tensor_names: Sequence[str], opset: int) -> None:
    if num_angle_classes < 2:
        raise ValueError(f"num_angle_classes must be >= 2, got {num_angle_classes}")
    if width_channels not in (1, num_angle_classes):
        raise ValueError(
            f"width_channels must be 1 or num_angle_classes ({num_angle_classes}), "
            f"got {width_channels}")
    if input_size < 3:
        raise ValueError(f"input_size must be >= 3 pixels, got {input_size}")
    if len(tensor_names) != 4 or len(set(tensor_names)) != 4 or not all(tensor_names):
        raise ValueError(
            "tensor_names must be four distinct non-empty names (input, able, angle, width), "
            f"got {tensor_names!r}")
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(
            f"opset must be between {MIN_OPSET} (CumSum) and {onnx.defs.onnx_opset_version()} "
            f"(this onnx package), got {opset}")


def _colour_objectness(graph: _GraphBuilder, input_name: str) -> str:
    """Undo the normalisation, take the brightness, and map it to a clipped 0..1 darkness."""
    ramp = DARK_START_BRIGHTNESS - FULLY_DARK_BRIGHTNESS
    per_plane_gain = 1.0 / (3.0 * PUBLISHED_SCALE)
    weights = np.full((1, 3), -per_plane_gain / ramp)
    bias = np.array([(DARK_START_BRIGHTNESS - float(np.mean(PUBLISHED_MEAN_BGR))) / ramp])
    return graph.node("Clip", [graph.channel_mix(input_name, weights, bias), graph.zero,
                               graph.one])


def _depth_objectness(graph: _GraphBuilder, input_name: str, input_channels: int) -> str:
    """Height above the crop's mean depth on the first (depth) plane, mapped to a clipped 0..1
    raisedness; colour planes, if any, get weight 0."""
    ramp = FULLY_RAISED_M - RAISED_START_M
    weights = np.zeros((1, input_channels))
    weights[0, 0] = -1.0 / ramp
    bias = np.array([-RAISED_START_M / ramp])
    return graph.node("Clip", [graph.channel_mix(input_name, weights, bias), graph.zero,
                               graph.one])


def _able_logits(graph: _GraphBuilder, objectness: str, output: str) -> None:
    body_sum = graph.repeated_square_sum(objectness, BODY_WINDOW_PX, 1)
    body_scale = 1.0 / (BODY_FULL_FRACTION * BODY_WINDOW_PX ** 2)
    body = graph.node("Clip", [graph.node("Mul", [body_sum, graph.scalar("scale", body_scale)]),
                               graph.zero, graph.one])
    centre = graph.repeated_square_sum(objectness, CENTRE_WINDOW_PX, 2)
    mix = np.array([ABLE_GAIN, ABLE_GAIN * CENTRE_WEIGHT / CENTRE_WINDOW_PX ** 4])
    graph.channel_mix(graph.node("Concat", [body, centre], axis=1), mix.reshape(1, 2),
                      np.array([ABLE_BIAS]), output)


def _gradient_products(graph: _GraphBuilder, objectness: str) -> str:
    """Channels gx^2, gy^2 and ((gx + gy) / sqrt(2))^2, gy pointing up the screen."""
    smooth = np.array([1.0, 2.0, 1.0])
    difference = np.array([-1.0, 0.0, 1.0])
    along_cols = np.outer(smooth, difference)
    up_screen = np.outer(-difference, smooth)  # rows grow downwards
    diagonal = (along_cols + up_screen) / math.sqrt(2.0)
    sobel = np.stack([along_cols, up_screen, diagonal])[:, None]
    gradients = graph.conv(objectness, sobel)
    return graph.node("Mul", [gradients, gradients])


def _angle_logits(graph: _GraphBuilder, tensor: str, num_classes: int, output: str) -> None:
    trace = graph.channel_mix(tensor, np.array([[1.0, 1.0, 0.0]]), np.array([TENSOR_EPSILON]))
    normalised = graph.node("Div", [tensor, trace])
    double_angles = 2.0 * math.pi * np.arange(num_classes) / num_classes
    cos2, sin2 = np.cos(double_angles), np.sin(double_angles)
    # score = cos2 (Jxx - Jyy) + sin2 * 2 Jxy, with 2 Jxy = 2 Jdiag - Jxx - Jyy
    weights = ANGLE_GAIN * np.stack([cos2 - sin2, -cos2 - sin2, 2.0 * sin2], axis=1)
    graph.channel_mix(normalised, weights, output=output)


def _width_logits(graph: _GraphBuilder, fill_sum: str, channels: int, input_size: int,
                  output: str) -> None:
    scale = 1.0 / (WIDTH_WINDOW_PX * ASSUMED_MAX_WIDTH_PX)
    fraction = graph.node("Add", [
        graph.node("Mul", [fill_sum, graph.scalar("scale", scale)]),
        graph.scalar("clearance", WIDTH_CLEARANCE_PX / ASSUMED_MAX_WIDTH_PX)])
    rest = graph.node("Sub", [graph.one, fraction])
    odds = graph.node("Div", [fraction, rest])
    if channels == 1:
        graph.node("Log", [odds], output)
        return
    shape = np.array([1, channels, input_size, input_size], dtype=np.int64)
    graph.node("Expand", [graph.node("Log", [odds]), graph.constant("shape", shape)], output)
