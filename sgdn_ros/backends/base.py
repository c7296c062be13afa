"""The interface every inference backend shares, and the output-naming rules they all apply.

A backend loads a model once (failing early, with one clear message, on anything the pipeline
cannot feed or decode) and then runs it frame after frame. Loading is separate from running so
that a bad model is reported when the node is configured, not on the first camera frame.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple

import numpy as np

from sgdn_ros.core.channel_maps import channel_maps_fit
from sgdn_ros.core.decoding import WIDTH_UNITS
from sgdn_ros.core.depth_planes import INPUT_KINDS
from sgdn_ros.core.preprocessing import planes_problem
from sgdn_ros.gpu.stream_capture import CapturedGraph
from sgdn_ros.models.errors import ModelLoadError
from sgdn_ros.models.metadata import OUTPUT_ROLES, PUBLISHED_OUTPUT_NAMES, input_kind_problems

PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
# Frames one inference takes when the model's batch axis is dynamic (the backends' default):
# the outputs of a frame at the published K = 120 take 2 x 49 MB (angle, per-class width), so 8
# frames hold under 1 GB, and 8 covers the multi-camera rigs that batch one frame per camera;
# beyond a few frames a CPU gains little, as each convolution already uses every core.
DEFAULT_MAX_BATCH = 8


class BackendUnavailable(ModelLoadError):
    """The backend cannot run on this machine (its libraries, driver or GPU are missing or
    unsupported), whatever the model: ``create_backend('auto', ...)`` then tries the next one.

    A fault of the model itself (missing, unreadable, not SGDN) is a plain ``ModelLoadError``
    and is reported, never skipped over.
    """


class InferenceError(RuntimeError):
    """Running a loaded model failed."""


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model takes and gives.

    ``input_shape`` is one frame's input, (1, C, H, W). ``max_batch`` is how many frames one
    ``infer`` call takes: 1 for a model exported with a static batch, more for a dynamic batch
    axis. Callers with more frames split them (``sgdn_ros.pipeline.detector.batches``).
    ``input_kind`` says what the C planes are (``sgdn_ros.core.depth_planes``: "bgr", "depth"
    or "depth_bgr") and ``width_units`` what the width map measures ("pixels" or "metres"):
    the model's metadata, or the published conventions for a backend or file without it.
    A kind that contradicts C is refused here, so no backend can describe a model it
    cannot be fed.
    """

    input_name: str
    input_shape: tuple[int, int, int, int]
    able_name: str
    angle_name: str
    width_name: str
    num_angle_classes: int
    width_channels: int
    output_height: int
    output_width: int
    max_batch: int = 1
    input_kind: str = INPUT_KINDS[0]
    width_units: str = WIDTH_UNITS[0]

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise ModelLoadError(
                f"input_kind must be one of {', '.join(INPUT_KINDS)}, got {self.input_kind!r}")
        if self.width_units not in WIDTH_UNITS:
            raise ModelLoadError(
                f"width_units must be one of {', '.join(WIDTH_UNITS)}, got {self.width_units!r}")
        problems = input_kind_problems(self.input_kind, self.input_shape[1])
        if problems:
            raise ModelLoadError(
                f"the model's input {self.input_name!r} {self.input_shape}: {problems[0]}; "
                "this backend feeds B, G, R planes only unless it knows the model's input_kind")


@dataclass(frozen=True)
class ModelOutputs:
    """The three logit maps of the N frames of one ``infer`` (N first), float32, always in
    this order whatever the model's; ``maps[i:i + 1]`` is frame i, as decoding takes it. Angle
    and width may be smaller than able (a ``--sampled-channels`` export): decoding samples
    them."""

    able: np.ndarray
    angle: np.ndarray
    width: np.ndarray


class DeviceMaps(NamedTuple):
    """GPU addresses of the three contiguous float32 logit maps of one inference's frames."""

    able: int
    angle: int
    width: int


class InferenceBackend(abc.ABC):
    """A loaded model. Use as a context manager, or call ``close`` when done.

    ``last_inference_seconds`` is the wall time of the latest ``infer`` (None before the first).
    ``selection_reason`` is set by ``create_backend`` to say why this backend was chosen.
    ``cuda_device`` is the CUDA device whose memory ``infer_device`` works in, or None for a
    backend that takes and returns host arrays only. ``device_channel_size`` is the (height,
    width) of the angle and width maps ``infer_device`` returns when they come before the
    network's last upsampling (bilinear, aligned corners), which the GPU decoders then
    evaluate at the chosen pixels only; None: the output size.
    """

    name: str = "abstract"
    selection_reason: str = ""
    last_inference_seconds: float | None = None
    cuda_device: int | None = None
    device_channel_size: tuple[int, int] | None = None
    load_note: str = ""  # what loading did beyond opening the model, for the log line

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo:
        """Input and output description, fixed at load time."""

    @abc.abstractmethod
    def infer(self, planes: np.ndarray) -> ModelOutputs:
        """Run N frames at once: ``planes`` is float32 (N, C, H, W), 1 <= N <= ``max_batch``,
        one frame shaped like ``info.input_shape``; each output map has N as its first axis."""

    def infer_device(self, planes_ptr: int, stream_handle: int, batch: int = 1) -> DeviceMaps:
        """Run ``batch`` frames whose planes are already in GPU memory (contiguous, frame after
        frame), so pre- and post-processing can stay on the GPU. Enqueued on the CUDA stream
        ``stream_handle``: the planes must be written, and the maps are read, in that stream's
        order. Each map holds the frames one after the other. The maps stay valid until the
        next inference. Only for backends whose ``cuda_device`` is not None.
        """
        raise InferenceError(
            f"{self.name} takes and returns host arrays only; it cannot run on GPU memory")

    def graph_capture_refusal(self) -> str | None:
        """Why ``capture_graph`` cannot record this backend, or None when it can."""
        return f"the {self.name} backend cannot be recorded into a CUDA graph"

    def capture_graph(self, stream_handle: int, enqueue: Callable[[], None]) -> CapturedGraph:
        """Record the stream work of ``enqueue`` (which calls ``infer_device`` on
        ``stream_handle`` among other kernels) as one CUDA graph to replay per frame. The
        caller has run the same work once before (the warm-up recording needs). Only where
        ``graph_capture_refusal`` is None."""
        raise InferenceError(self.graph_capture_refusal() or "")

    @abc.abstractmethod
    def close(self) -> None:
        """Release the model; safe to call more than once."""

    def _check_planes(self, planes: np.ndarray, closed: bool) -> None:
        """The checks every backend's ``infer`` starts with, so they fail alike."""
        if closed:
            raise InferenceError("the backend is closed; create a new one to run inference")
        frames = planes.shape[0] if isinstance(planes, np.ndarray) and planes.ndim == 4 else 1
        if not 1 <= frames <= self.info.max_batch:
            raise ValueError(
                f"planes hold {frames} frames; {self.name} takes 1 to {self.info.max_batch} "
                "per inference (ModelInfo.max_batch): split them with "
                "sgdn_ros.pipeline.detector.batches")
        problem = planes_problem(planes, (frames, *self.info.input_shape[1:]))
        if problem is not None:
            raise ValueError(f"{problem}; build them with sgdn_ros.core.preprocessing")

    def __enter__(self) -> InferenceBackend:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def resolve_output_names(
    names: Sequence[str], shapes: Sequence[Sequence[int]],
    expected_names: Sequence[str] = PUBLISHED_OUTPUT_NAMES,
) -> tuple[str, str, str]:
    """Return the (able, angle, width) output names, checked against their shapes.

    Outputs are matched by name, never by position (a reordered export would silently swap
    maps): ``expected_names`` are the published names, or those the model's metadata records
    (``ModelMetadata.output_names``). ``shapes`` are one frame's, in the order of ``names``.
    Raises ``ModelLoadError`` when a name is missing or the shapes cannot be SGDN's:
    (1, 1, H, W), (1, K, H, W) with K >= 2, and (1, 1 or K, H, W).
    """
    if len(names) != 3 or len(shapes) != 3:
        raise ModelLoadError(
            f"the model has {len(names)} outputs ({', '.join(names)}); an SGDN model has 3: "
            "able, angle and width logits")
    by_name = dict(zip(names, (tuple(shape) for shape in shapes)))
    missing = [name for name in expected_names if name not in by_name]
    if missing:
        raise ModelLoadError(
            f"the model's outputs are {', '.join(names)}, but SGDN's are found by name, never "
            f"by position, and it lacks {', '.join(missing)} (able, angle, width expected as "
            f"{', '.join(expected_names)}); rename the outputs to "
            f"{', '.join(PUBLISHED_OUTPUT_NAMES)}, re-export with `sgdn-ros export`, or record "
            "the names in the ONNX metadata_props entry output_names as a JSON list "
            '["able name", "angle name", "width name"]')
    able, angle, width = (by_name[name] for name in expected_names)
    described = ", ".join(f"{role} {name!r} {shape}" for role, name, shape
                          in zip(OUTPUT_ROLES, expected_names, (able, angle, width)))
    problem = _output_shape_problem(able, angle, width)
    if problem:
        raise ModelLoadError(
            f"the model's outputs are not SGDN's: {problem} ({described}); check that each "
            "name is given to the right output (able, angle, width) when exporting")
    return expected_names[0], expected_names[1], expected_names[2]


def smaller_channel_size(able_shape: Sequence[int], angle_shape: Sequence[int]
                         ) -> tuple[int, int] | None:
    """A backend's ``device_channel_size`` from its able and angle outputs' (N, C, H, W)
    shapes: the angle (and width) maps' (H, W) when smaller than the able map's, else None."""
    channel_size = (int(angle_shape[2]), int(angle_shape[3]))
    return None if channel_size == tuple(able_shape[2:]) else channel_size


def _output_shape_problem(able: tuple[int, ...], angle: tuple[int, ...],
                          width: tuple[int, ...]) -> str:
    """What is wrong with the three output shapes, or '' when they fit SGDN's contract."""
    for role, shape in (("able", able), ("angle", angle), ("width", width)):
        if len(shape) != 4 or shape[0] != 1:
            return f"{role} should have shape (1, C, H, W)"
    if able[1] != 1:
        return f"able should have 1 channel, not {able[1]}"
    if angle[1] < 2:
        return f"angle should have one channel per angle class (at least 2), not {angle[1]}"
    if width[1] not in (1, angle[1]):
        return f"width should have 1 or {angle[1]} (one per angle class) channels, not {width[1]}"
    if angle[2:] != width[2:] or not channel_maps_fit(angle[2:], able[2:]):
        return ("angle and width should have the same height and width, the able map's or "
                "smaller (before the network's last upsampling)")
    return ""
