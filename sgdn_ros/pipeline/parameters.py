"""The detector's parameters, declared once.

This table is the single source for the node's declarations (type, description, range), for the
validation that rejects a bad value with a reason, for the README's parameter table, and for the
typed configs the detector is built from: a parameter that configures the detector names the
setting it sets (``sets``, a path in ``DetectorSettings``) and takes its default from there, so
no default is written twice. The others (``sets`` empty) are the ROS node's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sgdn_ros.backends import BACKEND_CHOICES, PRECISIONS
from sgdn_ros.backends.tensorrt.settings import check_precision
from sgdn_ros.core.decoding import DECODE_MODES
from sgdn_ros.core.preprocessing import SMALL_IMAGE_POLICIES
from sgdn_ros.pipeline.factory import GPU_PROCESSING_CHOICES
from sgdn_ros.pipeline.settings import DetectorSettings

ParameterValue = bool | int | float | str | Sequence[float] | Sequence[str]

APPLIES_AT_CONFIGURE = "configure"
APPLIES_AT_RUNTIME = "runtime"
APPLIES_AT_START = "start"

HEATMAP_MODES = ("on_demand", "always", "off")
IMAGE_TRANSPORTS = ("raw", "compressed")
QOS_RELIABILITIES = ("best_effort", "reliable")

DEFAULT_SETTINGS = DetectorSettings()


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: its default fixes its type; `applies` says when a new value takes effect.

    Give either ``sets`` (the ``DetectorSettings`` path it sets, whose default becomes the
    parameter's) or ``default`` (a parameter of the node's own), not both.
    """

    name: str
    description: str
    sets: str | None = None
    default: ParameterValue | None = None
    applies: str = APPLIES_AT_CONFIGURE
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None
    # What an array holds: "double" (the default) or "string".
    item_type: str = "double"
    # Explains a refused value better than the generic check (raises ValueError with why).
    explain_refusal: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        if (self.sets is None) == (self.default is None):
            raise ValueError(f"parameter {self.name}: give `sets` or `default`, exactly one")
        if self.sets is not None:
            default = DEFAULT_SETTINGS.value_at(self.sets)
            # ROS declares arrays from lists; the configs keep them as tuples.
            object.__setattr__(
                self, "default", list(default) if isinstance(default, tuple) else default)

    @property
    def type_name(self) -> str:
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "double"
        if isinstance(self.default, str):
            return "string"
        return f"{self.item_type}[]"

    def check(self, value: Any) -> str | None:
        """Return why `value` is not acceptable, or None when it is."""
        if self.type_name.endswith("[]"):
            return self._check_array(value)
        if not _has_type(value, self.type_name):
            return f"{self.name} must be a {self.type_name}, got {value!r}"
        if self.choices and value not in self.choices:
            return self._explained(value) or (
                f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                return f"{self.name} must be finite, got {value!r}"
            if self.minimum is not None and value < self.minimum:
                return f"{self.name} must be >= {self.minimum:g}, got {value!r}"
            if self.maximum is not None and value > self.maximum:
                return f"{self.name} must be <= {self.maximum:g}, got {value!r}"
        return None

    def _explained(self, value: Any) -> str | None:
        if self.explain_refusal is None:
            return None
        try:
            self.explain_refusal(value)
        except ValueError as error:
            return f"{self.name}: {error}"
        return None

    def _check_array(self, value: Any) -> str | None:
        items = "strings" if self.item_type == "string" else f"{self.length} numbers"
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return f"{self.name} must be a list of {items}, got {value!r}"
        if self.item_type == "string":
            if not all(isinstance(item, str) for item in value):
                return f"{self.name} must hold strings, got {list(value)!r}"
            return None
        if self.length is not None and len(value) != self.length:
            return f"{self.name} must have {self.length} values, got {len(value)}"
        if not all(_has_type(item, "double") and math.isfinite(item) for item in value):
            return f"{self.name} must hold finite numbers, got {list(value)!r}"
        return None

    def range_text(self) -> str:
        if self.choices:
            return ", ".join(f"`{choice}`" for choice in self.choices)
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else f"{self.minimum:g}"
            high = "" if self.maximum is None else f"{self.maximum:g}"
            return f"{low} .. {high}"
        if self.length is not None:
            return f"{self.length} values"
        return ""


def _has_type(value: Any, type_name: str) -> bool:
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "model_path",
        "SGDN model: an ONNX file, or a PyTorch checkpoint for the torch backend. Empty: the "
        "trained default model shipped with the package; `depth`: the shipped depth model "
        "trained on the bin-picking simulator (needs use_depth); `synthetic`: the built-in "
        "test model.",
        sets="model_path"),
    ParameterSpec(
        "backend",
        "Inference backend; `auto` picks the fastest one that can run the model here (TensorRT, "
        "then ONNX Runtime; checkpoints: torch) and logs why.",
        sets="backend", choices=BACKEND_CHOICES),
    ParameterSpec(
        "inference_threads",
        "CPU threads for inference; 0 lets the runtime decide.",
        sets="backend_options.threads", minimum=0, maximum=256),
    ParameterSpec(
        "precision",
        "`fp16`: TensorRT builds an FP16 engine, torch on CUDA halves the network; ONNX Runtime "
        "runs the precision the file was exported in (`sgdn-ros export --fp16`).",
        sets="backend_options.precision", choices=PRECISIONS, explain_refusal=check_precision),
    ParameterSpec(
        "cuda_graph",
        "torch backend on CUDA: capture the forward pass once and replay it per frame.",
        sets="backend_options.cuda_graph"),
    ParameterSpec(
        "gpu_processing",
        "Crop, normalisation and grasp decoding on the GPU (needs pycuda and a backend that "
        "runs in GPU memory: tensorrt, torch on CUDA), so only the grasps come back per frame. "
        "`auto`: where possible, else on the CPU; `on`: fail configure if not possible; `off`.",
        sets="gpu_processing", choices=GPU_PROCESSING_CHOICES),
    ParameterSpec(
        "frame_graph",
        "GPU processing: record the upload of the raw bytes, the preprocessing, the network and "
        "the decoding once per encoding, frame size and batch as one CUDA graph and replay it "
        "per frame (one launch, 2 KB back); the same grasps as step by step. Where the backend "
        "cannot be recorded, for depth models, 16-bit and resized frames: step by step (the "
        "log says why).",
        sets="frame_graph"),
    ParameterSpec(
        "torch_compile",
        "torch backend on CUDA: compile the network with TorchInductor at configure (the log "
        "says how long it took: 24 s for ResNet-101 on an H200, 12 s on a restart from the "
        "cache in `engine_cache_dir`/torch_inductor); its kernels are replayed in our CUDA "
        "graphs (`cuda_graph`, `frame_graph`). Falls back to the eager network, with the "
        "reason, where compiling fails.",
        sets="backend_options.compile"),
    ParameterSpec(
        "cuda_device",
        "Index of the CUDA GPU that the tensorrt and torch backends run on.",
        sets="backend_options.cuda_device", minimum=0, maximum=63),
    ParameterSpec(
        "engine_cache_dir",
        "TensorRT: folder of cached engine plans, torch_compile: its compile cache in "
        "`torch_inductor` inside it; empty: `$XDG_CACHE_HOME/sgdn_ros/engines` "
        "(`~/.cache/sgdn_ros/engines`).",
        sets="backend_options.engine_cache_dir"),
    ParameterSpec(
        "force_rebuild",
        "TensorRT: build the engine at configure even when the cached plan matches.",
        sets="backend_options.force_rebuild"),
    ParameterSpec(
        "engine_workspace_mb",
        "TensorRT: builder workspace limit in MiB (part of the cache key).",
        sets="backend_options.workspace_mb", minimum=16, maximum=262144),
    ParameterSpec(
        "mean_bgr",
        "Per-channel mean (B, G, R) subtracted before scaling; the published SGDN values.",
        sets="preprocess.mean_bgr", length=3),
    ParameterSpec(
        "scale",
        "Factor applied after the mean: input = (pixel - mean) * scale (published: 1/255).",
        sets="preprocess.scale", minimum=1e-9, maximum=1e3),
    ParameterSpec(
        "small_image_policy",
        "Images smaller than the model input: `pad` with the mean colour, `resize` up, or "
        "`reject` them (counted, with a message).",
        sets="preprocess.small_image_policy", choices=SMALL_IMAGE_POLICIES),
    ParameterSpec(
        "image_transport",
        "`raw`: subscribe to sensor_msgs/Image on `image_raw`; `compressed`: to "
        "sensor_msgs/CompressedImage on `image_raw/compressed`.",
        default="raw", choices=IMAGE_TRANSPORTS),
    ParameterSpec(
        "qos_reliability",
        "Reliability of the image subscription; best effort matches camera drivers and also "
        "receives from reliable publishers.",
        default="best_effort", choices=QOS_RELIABILITIES),
    ParameterSpec(
        "qos_depth",
        "History depth of the image subscription; the detector keeps only the newest frame anyway.",
        default=1, minimum=1, maximum=100),
    ParameterSpec(
        "use_depth",
        "Also subscribe to `depth/image_raw` (aligned to the colour image: 16UC1 millimetres or "
        "32FC1 metres) and `camera_info`, and publish 3-D grasp poses, markers and a PoseArray.",
        default=False),
    ParameterSpec(
        "depth_scale",
        "Metres per depth unit for cameras with other units; 0: the encoding's own (16UC1 "
        "millimetres, 32FC1 metres).",
        default=0.0, minimum=0.0, maximum=10.0),
    ParameterSpec(
        "depth_slop_s",
        "Colour and depth frames pair when their stamps differ by at most this (aligned depth "
        "carries the colour stamp: 0 would do).",
        default=0.02, minimum=0.0, maximum=1.0),
    ParameterSpec(
        "depth_qos_reliability",
        "Reliability of the depth subscription (history depth: `qos_depth`).",
        default="best_effort", choices=QOS_RELIABILITIES),
    ParameterSpec(
        "camera_info_qos_reliability",
        "Reliability of the camera_info subscription (history depth 1: the latest is used).",
        default="best_effort", choices=QOS_RELIABILITIES),
    # Several cameras through one model (sgdn_ros.pipeline.cameras).
    ParameterSpec(
        "cameras",
        "Camera namespaces, one per camera (e.g. [left, right]): camera `left` is read from "
        "`left/image_raw` (with depth: `left/depth/image_raw`, `left/camera_info`) and answered "
        "on `left/grasp`, `left/grasps`, `~/left/heatmap`, ... with counters of its own; the "
        "newest frame of each camera goes through one batched inference. Empty: one camera on "
        "the node's own topics. Names must be unique relative ROS namespaces.",
        default=[], item_type="string"),
    ParameterSpec(
        "max_batch",
        "Most frames (one per camera) in one inference, for a model with a dynamic batch axis; "
        "0: one per camera. Fewer than the cameras: they take turns (round robin); a model of "
        "static batch 1 serves one camera per inference, in turn.",
        default=0, minimum=0, maximum=64),
    ParameterSpec(
        "decode_mode",
        "`max`: the single best pixel (as the published sample); `peaks`: local maxima.",
        sets="decode.mode", applies=APPLIES_AT_RUNTIME, choices=DECODE_MODES),
    ParameterSpec(
        "confidence_threshold",
        "Grasps with a lower confidence are not published.",
        sets="decode.confidence_threshold", applies=APPLIES_AT_RUNTIME, minimum=0.0, maximum=1.0),
    ParameterSpec(
        "min_distance",
        "Peaks mode: minimum distance between two grasps, in model-input pixels.",
        sets="decode.min_distance", applies=APPLIES_AT_RUNTIME, minimum=1, maximum=320),
    ParameterSpec(
        "max_grasps",
        "At most this many grasps per image on `grasps`, best first.",
        sets="decode.max_grasps", applies=APPLIES_AT_RUNTIME, minimum=1, maximum=100),
    ParameterSpec(
        "max_grasp_width_px",
        "Width of a grasp whose width output is 1 (sigmoid), in model-input pixels.",
        sets="decode.max_width_px", applies=APPLIES_AT_RUNTIME, minimum=1.0, maximum=10000.0),
    ParameterSpec(
        "max_grasp_width_m",
        "Models whose width output is in metres (metadata `width_units`, the author's depth "
        "models): the width of a width output of 1 (sigmoid).",
        sets="decode.max_width_m", applies=APPLIES_AT_RUNTIME, minimum=0.001, maximum=2.0),
    ParameterSpec(
        "metres_per_pixel",
        "Image scale at the table, for `width_m`; 0 means unknown (`width_m` is NaN).",
        sets="decode.metres_per_pixel", applies=APPLIES_AT_RUNTIME, minimum=0.0, maximum=1.0),
    ParameterSpec(
        "finger_width_m",
        "With depth: the gripper finger's extent across the closing direction, for the "
        "collision test of the grasp depth.",
        sets="gripper.finger_width_m", minimum=0.001, maximum=0.5),
    ParameterSpec(
        "finger_thickness_m",
        "With depth: the finger's extent along the closing direction.",
        sets="gripper.finger_thickness_m", minimum=0.001, maximum=0.5),
    ParameterSpec(
        "max_grasp_depth_m",
        "With depth: the deepest the finger tips go below the top surface.",
        sets="gripper.max_grasp_depth_m", minimum=0.001, maximum=0.5),
    ParameterSpec(
        "grasp_depth_step_m",
        "With depth: the step in which the fingers are lowered until one would collide.",
        sets="gripper.grasp_depth_step_m", minimum=0.0005, maximum=0.1),
    ParameterSpec(
        "min_grasp_depth_m",
        "With depth: grasps whose fingers cannot go this deep are invalid (`collision`).",
        sets="gripper.min_grasp_depth_m", minimum=0.0, maximum=0.5),
    ParameterSpec(
        "pre_grasp_offset_m",
        "With depth: how far back along the approach the pre-grasp pose lies.",
        sets="gripper.pre_grasp_offset_m", minimum=0.0, maximum=1.0),
    ParameterSpec(
        "heatmap",
        "Debug heatmap on `~/heatmap`: `on_demand` while someone subscribes, `always`, or `off`.",
        default="on_demand", applies=APPLIES_AT_RUNTIME, choices=HEATMAP_MODES),
    ParameterSpec(
        "stats_period_s",
        "How often counters and latency go to the log and `/diagnostics`; 0 turns it off.",
        default=5.0, minimum=0.0, maximum=3600.0),
    ParameterSpec(
        "autostart",
        "Configure and activate at start-up, for use without a lifecycle manager.",
        default=False, applies=APPLIES_AT_START),
)

PARAMETERS_BY_NAME: Mapping[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}


def defaults() -> dict[str, ParameterValue]:
    return {spec.name: spec.default for spec in PARAMETERS}


def detector_settings(values: Mapping[str, ParameterValue]) -> DetectorSettings:
    """The typed configs from parameter values (the node's, or ``defaults()`` updated with a
    tool's options): each parameter with ``sets`` sets that setting. ValueError (the config's
    reason) when a config refuses a value."""
    return DetectorSettings.with_values(
        {spec.sets: values[spec.name] for spec in PARAMETERS if spec.sets is not None})


def markdown_table() -> str:
    """The README's parameter table, generated from PARAMETERS."""
    rows = [
        "| name | type | default | range | applies | description |",
        "|---|---|---|---|---|---|",
    ]
    for spec in PARAMETERS:
        default = spec.default if not isinstance(spec.default, str) else f'"{spec.default}"'
        rows.append(
            f"| `{spec.name}` | {spec.type_name} | `{default}` | {spec.range_text()} | "
            f"{spec.applies} | {spec.description} |")
    return "\n".join(rows)
