"""Export SGDN to ONNX for ONNX Runtime and TensorRT, and check the export on real images.

The ONNX file keeps the published I/O contract: one ``(N, C, S, S)`` input named ``input`` and
the outputs ``output_able``, ``output_angle``, ``output_width``, with a dynamic batch axis N
(``dynamic_batch=False``: N = 1, as the published ``sgdn.onnx``). What a runtime needs to use it
travels in its ``metadata_props`` (``sgdn_ros.models.metadata``: format version, input size,
channels and kind, normalisation, K, width channels and units, output names; backbone,
upsampling, precision and opset besides). The input kind follows the network's input channels:
1 is depth, 3 colour (B, G, R), 4 depth then colour (``sgdn_ros.core.depth_planes``).

Opset 17 parses on TensorRT 8.5 to 11. Older TensorRT needs an older opset: bilinear
``align_corners`` upsampling needs opset 11 or later, and TensorRT 7 cannot parse it at all,
so export with ``upsample="nearest"`` for TensorRT 7 (as the published ``sgdn.onnx`` was).

The TorchScript exporter is used (``dynamo=False`` where the argument exists): for a
control-flow-free network it gives a plain, predictable graph.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import numbers
import pathlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from os import PathLike

import numpy as np
import onnx
import onnxruntime as ort
import torch

from sgdn_ros.core.atomic_files import atomic_output
from sgdn_ros.core.channel_maps import sample_channels
from sgdn_ros.core.depth_planes import input_kind_of_channels
from sgdn_ros.core.preprocessing import (
    PUBLISHED_MEAN_BGR,
    PUBLISHED_SCALE,
    PreprocessConfig,
    Preprocessor,
)
from sgdn_ros.models.fp16 import Fp16ConversionError, convert_to_fp16
from sgdn_ros.models.metadata import (
    FORMAT_VERSION,
    PUBLISHED_INPUT_NAME,
    PUBLISHED_OUTPUT_NAMES,
    ModelMetadata,
)
from sgdn_ros.network.network import (
    OUTPUT_STRIDE,
    SGDN,
    UPSAMPLE_MODES,
    HeadSizeChannelMaps,
    SGDNConfig,
)

INPUT_NAME = PUBLISHED_INPUT_NAME
OUTPUT_NAMES = PUBLISHED_OUTPUT_NAMES
BATCH_AXIS_NAME = "batch"
DEFAULT_OPSET = 17
MIN_BILINEAR_OPSET = 11  # Resize with coordinate_transformation_mode="align_corners"
MIN_OPSET = 9


class ExportError(RuntimeError):
    """An export or parity check that cannot be done as asked."""


TopGrasp = tuple[int, int, int]  # (row, col, angle class) in the network input


@dataclass(frozen=True)
class ParityReport:
    """How closely an ONNX model reproduces the PyTorch model on the same images.

    Differences are the largest absolute logit differences over all images; top grasps are
    per image: the arg-max of ``able`` and the arg-max angle class at that pixel.
    """

    able_max_abs_diff: float
    angle_max_abs_diff: float
    width_max_abs_diff: float
    same_top_grasp: bool
    torch_top_grasps: tuple[TopGrasp, ...]
    onnx_top_grasps: tuple[TopGrasp, ...]

    def lines(self) -> list[str]:
        lines = [
            f"images compared: {len(self.torch_top_grasps)}",
            f"max |torch - onnx| of the logits: able {self.able_max_abs_diff:.3g}, "
            f"angle {self.angle_max_abs_diff:.3g}, width {self.width_max_abs_diff:.3g}",
            "top grasp (row, col, angle class): "
            + ("same in every image" if self.same_top_grasp else "DIFFERS"),
        ]
        for index, (ours, theirs) in enumerate(zip(self.torch_top_grasps,
                                                   self.onnx_top_grasps)):
            lines.append(f"  image {index}: torch {ours}, onnx {theirs}")
        return lines


def export_onnx(model: SGDN, config: SGDNConfig, output_path: str | PathLike[str], *,
                opset: int = DEFAULT_OPSET, input_size: int = 320, fp16: bool = False,
                dynamic_batch: bool = True, sampled_channels: bool = False,
                metadata: Mapping[str, str] | None = None) -> pathlib.Path:
    """Write ``model`` as ONNX to ``output_path`` (replaced atomically) and return the path.

    ``config`` must describe ``model``; it may differ in ``upsample`` only, to export the same
    weights with nearest upsampling for TensorRT 7. ``fp16`` writes an FP16 model that keeps
    float32 input and outputs. ``dynamic_batch`` makes the first axis of the input and outputs
    symbolic, so one inference may take several frames; False fixes it to 1, for runtimes that
    need static shapes. ``sampled_channels`` leaves the angle and width maps before the
    network's last upsampling (``SGDN.forward_heads``, half the input's size), for decoders
    that sample them at the chosen pixels (every decoder here does; the light model ran 1.07x
    as fast on ONNX Runtime, 2 CPU cores). ``metadata`` adds string entries to the file's
    metadata.
    """
    _check_export_arguments(model, config, opset, input_size)
    properties = _metadata(config, opset, input_size, fp16, metadata or {})
    exported = _exportable(model, config)
    if sampled_channels:
        if config.upsample != "bilinear":
            raise ExportError(
                "sampled_channels needs the bilinear upsampling: the decoders sample the angle "
                f"and width maps bilinearly, and this export upsamples {config.upsample!r}; "
                "export full-size maps for TensorRT 7")
        exported = HeadSizeChannelMaps(exported)
    proto = _traced_onnx(exported, config.input_channels, input_size, opset, dynamic_batch)
    if fp16:
        proto = _to_fp16(proto)
    onnx.helper.set_model_props(proto, properties)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"the exported ONNX model is invalid: {error}") from error
    path = pathlib.Path(output_path).expanduser()
    with atomic_output(path) as partial:
        onnx.save(proto, partial)
    return path


def check_parity(model: SGDN, onnx_path: str | PathLike[str],
                 images_bgr: Sequence[np.ndarray]) -> ParityReport:
    """Run ``model`` (FP32) and the ONNX file (ONNX Runtime, CPU) on the same real images.

    Images are BGR uint8 camera frames, preprocessed as the published network expects (centre
    crop, mean subtraction, 1/255). When the file's metadata names another upsampling than the
    model's (a TensorRT 7 export), the PyTorch side uses that upsampling too.
    """
    if model.config.input_channels != 3:
        raise ExportError(
            f"the parity check feeds BGR images; this model takes "
            f"{model.config.input_channels} input channel(s): build its planes and use "
            "check_parity_on_planes")
    if len(images_bgr) == 0:
        raise ExportError("pass at least one BGR image to compare on")
    session = _cpu_session(pathlib.Path(onnx_path).expanduser())
    _, _, height, width = session.get_inputs()[0].shape
    if not (_is_int(height) and _is_int(width)):
        raise ExportError(
            f"{onnx_path} has a dynamic input size ({height} x {width}); the parity check "
            "needs the static size the images are cropped to")
    preprocess = Preprocessor(PreprocessConfig(input_height=height, input_width=width))
    return check_parity_on_planes(model, onnx_path,
                                  [preprocess(image)[0] for image in images_bgr])


def check_parity_on_planes(model: SGDN, onnx_path: str | PathLike[str],
                           planes_list: Sequence[np.ndarray]) -> ParityReport:
    """``check_parity`` on network inputs already built (any input kind: depth and RGB-D
    models get theirs from ``sgdn_ros.core.depth_planes``), each (1, C, H, W) float32."""
    if len(planes_list) == 0:
        raise ExportError("pass at least one input to compare on")
    session = _cpu_session(pathlib.Path(onnx_path).expanduser())
    upsample = session.get_modelmeta().custom_metadata_map.get("upsample")
    if upsample in UPSAMPLE_MODES:
        model = _exportable(model, replace(model.config, upsample=upsample))
    forward = model.forward_heads if _samples_channels(session) else model
    device = next(model.parameters()).device
    largest = np.zeros(3)
    torch_tops, onnx_tops = [], []
    with _eval_mode(model), _strict_fp32(), torch.no_grad():
        for planes in planes_list:
            ours = [t.float().cpu().numpy()
                    for t in forward(torch.from_numpy(planes).to(device))]
            theirs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: planes})
            largest = np.maximum(largest, [float(np.abs(a - b).max())
                                           for a, b in zip(ours, theirs)])
            torch_tops.append(_top_grasp(ours[0], ours[1]))
            onnx_tops.append(_top_grasp(theirs[0], theirs[1]))
    return ParityReport(
        able_max_abs_diff=float(largest[0]),
        angle_max_abs_diff=float(largest[1]),
        width_max_abs_diff=float(largest[2]),
        same_top_grasp=torch_tops == onnx_tops,
        torch_top_grasps=tuple(torch_tops),
        onnx_top_grasps=tuple(onnx_tops),
    )


def _check_export_arguments(model: SGDN, config: SGDNConfig, opset: int,
                            input_size: int) -> None:
    if not isinstance(model, SGDN):
        raise ExportError(f"model must be an SGDN, got {type(model).__name__}")
    if not isinstance(config, SGDNConfig):
        raise ExportError(f"config must be an SGDNConfig, got {type(config).__name__}")
    if replace(config, upsample=model.config.upsample) != model.config:
        raise ExportError(
            f"config {config} does not describe the model ({model.config}); only upsample "
            "may differ")
    if not _is_int(opset) or opset < MIN_OPSET:
        raise ExportError(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    if config.upsample == "bilinear" and opset < MIN_BILINEAR_OPSET:
        raise ExportError(
            f"bilinear upsampling with align_corners needs opset >= {MIN_BILINEAR_OPSET}, got "
            f"{opset}; use a newer opset, or upsample='nearest' (what TensorRT 7 can parse)")
    if input_kind_of_channels(config.input_channels) is None:
        raise ExportError(
            f"input_channels is {config.input_channels}; the detector feeds 1 (depth), 3 "
            "(B, G, R) or 4 (depth, B, G, R) planes, so only those export")
    if not _is_int(input_size) or input_size < OUTPUT_STRIDE or input_size % OUTPUT_STRIDE:
        raise ExportError(
            f"input_size must be a positive multiple of {OUTPUT_STRIDE} (the network's output "
            f"stride; published: 320), got {input_size!r}")


def _metadata(config: SGDNConfig, opset: int, input_size: int, fp16: bool,
              extra: Mapping[str, str]) -> dict[str, str]:
    """The ``metadata_props`` a runtime reads to use the model without guessing: SGDN's record
    (``sgdn_ros.models.metadata``; the network learns widths in pixels) and how it was built."""
    properties = ModelMetadata(
        input_size=input_size,
        input_channels=config.input_channels,
        input_kind=input_kind_of_channels(config.input_channels),
        num_angle_classes=config.num_angle_classes,
        width_channels=config.width_channels,
        mean_bgr=PUBLISHED_MEAN_BGR,
        scale=PUBLISHED_SCALE,
        width_units="pixels",
        output_names=OUTPUT_NAMES,
        format_version=FORMAT_VERSION,
        extra={
            "backbone": config.backbone,
            "upsample": config.upsample,
            "precision": "fp16" if fp16 else "fp32",
            "opset": str(opset),
        },
    ).properties()
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ExportError(f"metadata must map strings to strings, got {key!r}: {value!r}")
        if key in properties:
            raise ExportError(
                f"metadata key {key!r} is written by the exporter itself; choose another name")
    return {**properties, **extra}


def _exportable(model: SGDN, config: SGDNConfig) -> SGDN:
    """``model`` itself, or a copy with ``config``'s upsampling when that differs."""
    if config == model.config:
        return model
    device = next(model.parameters()).device
    copy = SGDN(config).to(device)
    copy.load_state_dict(model.state_dict(), strict=True)
    return copy


def _traced_onnx(model: torch.nn.Module, input_channels: int, input_size: int, opset: int,
                 dynamic_batch: bool) -> onnx.ModelProto:
    device = next(model.parameters()).device
    example = torch.zeros(1, input_channels, input_size, input_size, device=device)
    options = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters \
        else {}
    if dynamic_batch:
        options["dynamic_axes"] = {name: {0: BATCH_AXIS_NAME}
                                   for name in (INPUT_NAME, *OUTPUT_NAMES)}
    buffer = io.BytesIO()
    with _eval_mode(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*TorchScript-based ONNX export")
        try:
            torch.onnx.export(model, (example,), buffer, input_names=[INPUT_NAME],
                              output_names=list(OUTPUT_NAMES), opset_version=opset,
                              do_constant_folding=True, **options)
        except Exception as error:  # the exporter raises many unrelated types
            raise ExportError(f"torch.onnx.export failed at opset {opset}: {error}") from error
        with torch.no_grad():
            frame_shapes = [tuple(output.shape) for output in model(example)]
    proto = onnx.load_from_string(buffer.getvalue())
    _declare_output_sizes(proto, frame_shapes)
    return proto


def _declare_output_sizes(proto: onnx.ModelProto, frame_shapes: Sequence[Sequence[int]]) -> None:
    """Declare each output's channels and size, which the exporter leaves symbolic beside a
    dynamic batch (they come from Shape ops), so that runtimes see SGDN's static maps."""
    for value, shape in zip(proto.graph.output, frame_shapes):
        for dim, size in zip(value.type.tensor_type.shape.dim[1:], shape[1:]):
            dim.dim_value = size


def _to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return convert_to_fp16(proto)
    except Fp16ConversionError as error:
        raise ExportError(f"{error}; export in FP32 instead") from error


def _cpu_session(path: pathlib.Path) -> ort.InferenceSession:
    if not path.is_file():
        raise ExportError(f"ONNX file not found: {path}")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime's errors share no base class but Exception
        raise ExportError(f"ONNX Runtime cannot load {path}: {error}") from error


def _samples_channels(session: ort.InferenceSession) -> bool:
    """Whether the file's angle maps are smaller than its able maps (``sampled_channels``)."""
    shape_of = {output.name: output.shape for output in session.get_outputs()}
    return shape_of[OUTPUT_NAMES[1]][2:] != shape_of[OUTPUT_NAMES[0]][2:]


def _top_grasp(able: np.ndarray, angle: np.ndarray) -> TopGrasp:
    row, col = np.unravel_index(int(np.argmax(able[0, 0])), able.shape[-2:])
    logits = sample_channels(angle[0], np.array([row]), np.array([col]), *able.shape[-2:])
    return int(row), int(col), int(np.argmax(logits))


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (batch statistics frozen, dropout off) for the block; the old mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _strict_fp32() -> Iterator[None]:
    """No TF32 on CUDA for the block: the reference must be true FP32."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
