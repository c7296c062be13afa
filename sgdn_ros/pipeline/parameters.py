"""The detector's parameters, declared once.

This table is the single source for the node's declarations (type, description, range), for the
validation that rejects a bad value with a reason, and for the README's parameter table, so the
three cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sgdn_ros.backends import BACKEND_CHOICES, PRECISIONS
from sgdn_ros.core.decoding import DECODE_MODES
from sgdn_ros.core.preprocessing import PUBLISHED_MEAN_BGR, PUBLISHED_SCALE, SMALL_IMAGE_POLICIES
from sgdn_ros.pipeline.factory import GPU_PROCESSING_CHOICES

ParameterValue = bool | int | float | str | Sequence[float]

APPLIES_AT_CONFIGURE = "configure"
APPLIES_AT_RUNTIME = "runtime"
APPLIES_AT_START = "start"

HEATMAP_MODES = ("on_demand", "always", "off")
IMAGE_TRANSPORTS = ("raw", "compressed")
QOS_RELIABILITIES = ("best_effort", "reliable")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter: its default fixes its type; `applies` says when a new value takes effect."""

    name: str
    default: ParameterValue
    description: str
    applies: str = APPLIES_AT_CONFIGURE
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None

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
        return "double[]"

    def check(self, value: Any) -> str | None:
        """Return why `value` is not acceptable, or None when it is."""
        if self.type_name == "double[]":
            return self._check_array(value)
        if not _has_type(value, self.type_name):
            return f"{self.name} must be a {self.type_name}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                return f"{self.name} must be finite, got {value!r}"
            if self.minimum is not None and value < self.minimum:
                return f"{self.name} must be >= {self.minimum:g}, got {value!r}"
            if self.maximum is not None and value > self.maximum:
                return f"{self.name} must be <= {self.maximum:g}, got {value!r}"
        return None

    def _check_array(self, value: Any) -> str | None:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return f"{self.name} must be a list of {self.length} numbers, got {value!r}"
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
        "model_path", "",
        "SGDN model: an ONNX file, or a PyTorch checkpoint for the torch backend. Empty: the "
        "trained default model shipped with the package; `synthetic`: the built-in test model."),
    ParameterSpec(
        "backend", "auto",
        "Inference backend; `auto` picks the fastest one that can run the model here (TensorRT, "
        "then ONNX Runtime; checkpoints: torch) and logs why.",
        choices=BACKEND_CHOICES),
    ParameterSpec(
        "inference_threads", 0,
        "CPU threads for inference; 0 lets the runtime decide.",
        minimum=0, maximum=256),
    ParameterSpec(
        "precision", "fp32",
        "`fp16`: TensorRT builds an FP16 engine, torch on CUDA halves the network; ONNX Runtime "
        "runs the precision the file was exported in (`sgdn-ros export --fp16`).",
        choices=PRECISIONS),
    ParameterSpec(
        "cuda_graph", False,
        "torch backend on CUDA: capture the forward pass once and replay it per frame."),
    ParameterSpec(
        "gpu_processing", "auto",
        "Crop, normalisation and grasp decoding on the GPU (needs pycuda and a backend that "
        "runs in GPU memory: tensorrt, torch on CUDA), so only the grasps come back per frame. "
        "`auto`: where possible, else on the CPU; `on`: fail configure if not possible; `off`.",
        choices=GPU_PROCESSING_CHOICES),
    ParameterSpec(
        "cuda_device", 0,
        "Index of the CUDA GPU that the tensorrt and torch backends run on.",
        minimum=0, maximum=63),
    ParameterSpec(
        "engine_cache_dir", "",
        "TensorRT: folder of cached engine plans; empty: `$XDG_CACHE_HOME/sgdn_ros/engines` "
        "(`~/.cache/sgdn_ros/engines`)."),
    ParameterSpec(
        "force_rebuild", False,
        "TensorRT: build the engine at configure even when the cached plan matches."),
    ParameterSpec(
        "engine_workspace_mb", 1024,
        "TensorRT: builder workspace limit in MiB (part of the cache key).",
        minimum=16, maximum=262144),
    ParameterSpec(
        "mean_bgr", list(PUBLISHED_MEAN_BGR),
        "Per-channel mean (B, G, R) subtracted before scaling; the published SGDN values.",
        length=3),
    ParameterSpec(
        "scale", PUBLISHED_SCALE,
        "Factor applied after the mean: input = (pixel - mean) * scale (published: 1/255).",
        minimum=1e-9, maximum=1e3),
    ParameterSpec(
        "small_image_policy", "pad",
        "Images smaller than the model input: `pad` with the mean colour, `resize` up, or "
        "`reject` them (counted, with a message).",
        choices=SMALL_IMAGE_POLICIES),
    ParameterSpec(
        "image_transport", "raw",
        "`raw`: subscribe to sensor_msgs/Image on `image_raw`; `compressed`: to "
        "sensor_msgs/CompressedImage on `image_raw/compressed`.",
        choices=IMAGE_TRANSPORTS),
    ParameterSpec(
        "qos_reliability", "best_effort",
        "Reliability of the image subscription; best effort matches camera drivers and also "
        "receives from reliable publishers.",
        choices=QOS_RELIABILITIES),
    ParameterSpec(
        "qos_depth", 1,
        "History depth of the image subscription; the detector keeps only the newest frame anyway.",
        minimum=1, maximum=100),
    ParameterSpec(
        "decode_mode", "peaks",
        "`max`: the single best pixel (as the published sample); `peaks`: local maxima.",
        applies=APPLIES_AT_RUNTIME, choices=DECODE_MODES),
    ParameterSpec(
        "confidence_threshold", 0.5,
        "Grasps with a lower confidence are not published.",
        applies=APPLIES_AT_RUNTIME, minimum=0.0, maximum=1.0),
    ParameterSpec(
        "min_distance", 10,
        "Peaks mode: minimum distance between two grasps, in model-input pixels.",
        applies=APPLIES_AT_RUNTIME, minimum=1, maximum=320),
    ParameterSpec(
        "max_grasps", 5,
        "At most this many grasps per image on `grasps`, best first.",
        applies=APPLIES_AT_RUNTIME, minimum=1, maximum=100),
    ParameterSpec(
        "max_grasp_width_px", 200.0,
        "Width of a grasp whose width output is 1 (sigmoid), in model-input pixels.",
        applies=APPLIES_AT_RUNTIME, minimum=1.0, maximum=10000.0),
    ParameterSpec(
        "metres_per_pixel", 0.0,
        "Image scale at the table, for `width_m`; 0 means unknown (`width_m` is NaN).",
        applies=APPLIES_AT_RUNTIME, minimum=0.0, maximum=1.0),
    ParameterSpec(
        "heatmap", "on_demand",
        "Debug heatmap on `~/heatmap`: `on_demand` while someone subscribes, `always`, or `off`.",
        applies=APPLIES_AT_RUNTIME, choices=HEATMAP_MODES),
    ParameterSpec(
        "stats_period_s", 5.0,
        "How often counters and latency go to the log and `/diagnostics`; 0 turns it off.",
        minimum=0.0, maximum=3600.0),
    ParameterSpec(
        "autostart", False,
        "Configure and activate at start-up, for use without a lifecycle manager.",
        applies=APPLIES_AT_START),
)

PARAMETERS_BY_NAME: Mapping[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}


def defaults() -> dict[str, ParameterValue]:
    return {spec.name: spec.default for spec in PARAMETERS}


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
