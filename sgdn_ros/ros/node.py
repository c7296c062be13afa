"""The SGDN grasp detector as a ROS 2 lifecycle node (executable `detector`).

Thin by design: parameters come from `sgdn_ros.pipeline.parameters`, the work from
`sgdn_ros.pipeline.detector`; this module wires topics, lifecycle transitions and the inference thread.

Transitions: configure loads the model (on the inference thread) and creates publishers;
activate subscribes to images; deactivate unsubscribes but keeps the model; cleanup releases
everything. Any failure is logged with its reason and the transition returns FAILURE.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sgdn_ros.backends import BackendOptions, create_backend
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.drawing import render_heatmap
from sgdn_ros.core.frames import (
    RawImage,
    compressed_message_to_bgr,
    raw_image_from_message,
    raw_image_to_bgr,
)
from sgdn_ros.core.preprocessing import PreprocessConfig, crop_bgr
from sgdn_ros.models.default import resolve_model_path
from sgdn_ros.msg import GraspPose, GraspPoseArray
from sgdn_ros.pipeline.detector import GraspDetector
from sgdn_ros.pipeline.factory import create_detector
from sgdn_ros.pipeline.parameters import (
    APPLIES_AT_RUNTIME,
    PARAMETERS,
    PARAMETERS_BY_NAME,
    ParameterSpec,
)
from sgdn_ros.pipeline.stats import DetectorStats
from sgdn_ros.pipeline.worker import InferenceWorker
from sgdn_ros.ros.messages import bgr_to_image_message, publish_grasps

NODE_NAME = "sgdn_detector"
IMAGE_TOPIC = "image_raw"
GRASP_TOPIC = "grasp"
GRASPS_TOPIC = "grasps"
HEATMAP_TOPIC = "~/heatmap"
DIAGNOSTICS_TOPIC = "/diagnostics"
THROTTLE_S = 5.0


@dataclass(frozen=True)
class ReceivedFrame:
    message: Image | CompressedImage
    received_at: float


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(
        description=spec.description,
        additional_constraints=(
            f"one of: {', '.join(spec.choices)}" if spec.choices
            else f"takes effect at {spec.applies}"))
    if spec.type_name == "double" and spec.minimum is not None and spec.maximum is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
    if spec.type_name == "int" and spec.minimum is not None and spec.maximum is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.minimum), to_value=int(spec.maximum), step=0)]
    return descriptor


def _close_detector(detector: GraspDetector) -> None:
    """The worker's close callback; the detector's own ``close`` (a GPU detector's frees its
    buffers and pops its CUDA context, on the inference thread)."""
    detector.close()


def decode_config_from(values: dict[str, Any]) -> DecodeConfig:
    return DecodeConfig(
        mode=values["decode_mode"],
        confidence_threshold=values["confidence_threshold"],
        min_distance=values["min_distance"],
        max_grasps=values["max_grasps"],
        max_width_px=values["max_grasp_width_px"],
        metres_per_pixel=values["metres_per_pixel"])


class GraspDetectorNode(LifecycleNode):
    """Camera images in; `grasp`, `grasps`, `~/heatmap` and `/diagnostics` out."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for spec in PARAMETERS:
            self._declare(spec)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = DetectorStats()
        self._worker: InferenceWorker[GraspDetector, ReceivedFrame] | None = None
        self._detector: GraspDetector | None = None
        self._grasp_publisher = None
        self._grasps_publisher = None
        self._heatmap_publisher = None
        self._diagnostics_publisher = None
        self._stats_timer = None
        self._subscription = None
        self._heatmap_mode = "off"
        self._backend_name = ""

    # Parameters -------------------------------------------------------------------------------

    def _declare(self, spec: ParameterSpec) -> None:
        """Declare one parameter; a bad override is reported and replaced by the default,
        so a typo in a YAML file costs one log line, not the node."""
        descriptor = _descriptor(spec)
        try:
            self.declare_parameter(spec.name, spec.default, descriptor)
        except (rclpy.exceptions.InvalidParameterValueException,
                rclpy.exceptions.InvalidParameterTypeException) as error:
            self.get_logger().error(
                f"parameter {spec.name}: {error}; using the default {spec.default!r}")
            self.declare_parameter(spec.name, spec.default, descriptor, ignore_override=True)
            return
        reason = spec.check(self.get_parameter(spec.name).value)
        if reason is not None:
            self.get_logger().error(f"{reason}; using the default {spec.default!r}")
            self.set_parameters([Parameter(spec.name, value=spec.default)])

    def parameter_values(self) -> dict[str, Any]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            spec = PARAMETERS_BY_NAME.get(parameter.name)
            if spec is None:
                continue
            reason = spec.check(parameter.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        values = self.parameter_values()
        values.update({parameter.name: parameter.value for parameter in parameters})
        try:
            decode_config = decode_config_from(values)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        if self._detector is not None:
            self._detector.decode_config = decode_config
        self._heatmap_mode = values["heatmap"]
        later = [parameter.name for parameter in parameters
                 if parameter.name in PARAMETERS_BY_NAME
                 and PARAMETERS_BY_NAME[parameter.name].applies != APPLIES_AT_RUNTIME]
        if later and self._detector is not None:
            self.get_logger().info(
                f"{', '.join(later)} changed: takes effect at the next cleanup + configure")
        return SetParametersResult(successful=True)

    # Lifecycle --------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model on the inference thread; SUCCESS -> inactive, FAILURE -> unconfigured."""
        return self._transition("configure", self._configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to images; lifecycle publishers switch on in the base class."""
        result = self._transition("activate", self._activate)
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking frames; the model stays loaded for a quick re-activation."""
        result = self._transition("deactivate", self._deactivate)
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model, the thread and the publishers; back to unconfigured."""
        return self._transition("cleanup", self._release)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("shutdown", self._release)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in state {state.label}: releasing everything")
        return self._transition("error recovery", self._release)

    def _transition(self, name: str, step: Callable[[], None]) -> TransitionCallbackReturn:
        """rclpy turns an exception in a transition into ERROR without a word: say why here."""
        try:
            step()
        except Exception as error:  # noqa: BLE001 - the boundary where errors become log lines
            self.get_logger().error(f"{name} failed: {error}")
            if name == "configure":
                self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        values = self.parameter_values()
        preprocess_config = PreprocessConfig(
            mean_bgr=tuple(values["mean_bgr"]), scale=values["scale"],
            small_image_policy=values["small_image_policy"])
        decode_config = decode_config_from(values)
        model_path, model_description = resolve_model_path(values["model_path"])

        options = BackendOptions(
            threads=values["inference_threads"], precision=values["precision"],
            cuda_graph=values["cuda_graph"], cuda_device=values["cuda_device"],
            engine_cache_dir=values["engine_cache_dir"], force_rebuild=values["force_rebuild"],
            workspace_mb=values["engine_workspace_mb"])

        def load() -> GraspDetector:
            backend = create_backend(values["backend"], model_path, options)
            try:
                return create_detector(backend, preprocess_config, decode_config,
                                       values["gpu_processing"])
            except Exception:
                backend.close()
                raise

        started = time.perf_counter()
        self.stats = DetectorStats()
        self._worker = InferenceWorker(load, self._process, _close_detector)
        self._worker.start()
        self._detector = self._worker.resource
        info = self._detector.backend.info
        self._backend_name = self._detector.backend.name
        self.get_logger().info(
            f"loaded {model_description} on {self._backend_name} "
            f"({getattr(self._detector.backend, 'selection_reason', '')}) in "
            f"{time.perf_counter() - started:.2f} s: input {info.input_shape}, "
            f"{info.num_angle_classes} angle classes, width channels {info.width_channels}; "
            f"{self._detector.processing_reason}")

        self._heatmap_mode = values["heatmap"]
        self._grasp_publisher = self.create_lifecycle_publisher(GraspPose, GRASP_TOPIC, 10)
        self._grasps_publisher = self.create_lifecycle_publisher(
            GraspPoseArray, GRASPS_TOPIC, 10)
        self._heatmap_publisher = self.create_lifecycle_publisher(Image, HEATMAP_TOPIC, 1)
        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        if values["stats_period_s"] > 0:
            self._stats_timer = self.create_timer(values["stats_period_s"], self._report_stats)

    def _activate(self) -> None:
        values = self.parameter_values()
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=values["qos_depth"],
            reliability=(ReliabilityPolicy.BEST_EFFORT
                         if values["qos_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE))
        if values["image_transport"] == "compressed":
            self._subscription = self.create_subscription(
                CompressedImage, f"{IMAGE_TOPIC}/compressed", self._on_image, qos)
        else:
            self._subscription = self.create_subscription(
                Image, IMAGE_TOPIC, self._on_image, qos)
        self.get_logger().info(
            f"active: listening on {self._subscription.topic_name} "
            f"({values['qos_reliability']}, depth {values['qos_depth']})")

    def _deactivate(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        if self._worker is not None and self._worker.discard_pending():
            self.stats.count("dropped")

    def _release(self) -> None:
        """Undo configure (and activate); safe to call in any state, and twice."""
        self._deactivate()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._detector = None
        for name in ("_grasp_publisher", "_grasps_publisher", "_heatmap_publisher"):
            publisher = getattr(self, name)
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
                setattr(self, name, None)
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_publisher = None
        if self._stats_timer is not None:
            self.destroy_timer(self._stats_timer)
            self._stats_timer = None

    # Frames -----------------------------------------------------------------------------------

    def _on_image(self, message: Image | CompressedImage) -> None:
        """Executor thread: hand the frame over and return; the inference thread does the rest."""
        self.stats.count("received")
        worker = self._worker
        if worker is not None and worker.submit(ReceivedFrame(message, time.monotonic())):
            self.stats.count("dropped")

    def _process(self, detector: GraspDetector, frame: ReceivedFrame) -> None:
        """Inference thread: one frame from message to published grasps. Never raises."""
        try:
            if isinstance(frame.message, CompressedImage):
                image = compressed_message_to_bgr(frame.message)
            else:
                image = raw_image_from_message(frame.message)
        except ValueError as error:
            self.stats.count("rejected")
            self.get_logger().warning(
                f"rejected an image on {IMAGE_TOPIC}: {error}", throttle_duration_sec=THROTTLE_S)
            return
        try:
            detection = detector.detect(image)
            header = frame.message.header
            publish_grasps(self._grasp_publisher, self._grasps_publisher, detection.grasps,
                           header, detector.backend.info.num_angle_classes)
            if self._heatmap_wanted():
                bgr = raw_image_to_bgr(image) if isinstance(image, RawImage) else image
                crop, _geometry = crop_bgr(bgr, detector.preprocess_config)
                heatmap = render_heatmap(crop, detection.confidence_map(), detection.grasps)
                self._heatmap_publisher.publish(bgr_to_image_message(heatmap, header))
        except ValueError as error:
            self.stats.count("rejected")
            self.get_logger().warning(
                f"rejected an image: {error}", throttle_duration_sec=THROTTLE_S)
            return
        except Exception as error:  # noqa: BLE001 - keep the inference thread alive
            self.stats.count("failed")
            self.get_logger().error(
                f"processing a frame failed: {error!r}", throttle_duration_sec=THROTTLE_S)
            return
        self.stats.count("processed")
        self.stats.record_latency(time.monotonic() - frame.received_at)

    def _heatmap_wanted(self) -> bool:
        if self._heatmap_mode == "always":
            return True
        return (self._heatmap_mode == "on_demand"
                and self._heatmap_publisher.get_subscription_count() > 0)

    # Reporting --------------------------------------------------------------------------------

    def _report_stats(self) -> None:
        snapshot = self.stats.snapshot()
        self.get_logger().info(snapshot.summary())
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: grasp detector"
        status.hardware_id = self._backend_name
        status.level = DiagnosticStatus.OK if snapshot.failed == 0 else DiagnosticStatus.WARN
        status.message = "running" if self._subscription is not None else "inactive"
        status.values = [KeyValue(key=key, value=str(value))
                         for key, value in vars(snapshot).items()]
        array_message = DiagnosticArray()
        array_message.header = Header(stamp=self.get_clock().now().to_msg())
        array_message.status = [status]
        self._diagnostics_publisher.publish(array_message)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = GraspDetectorNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # A failed configure was logged with its reason; the node stays up, unconfigured, so
        # a lifecycle manager (or `ros2 lifecycle set`) can retry after a fix.
        if (node.get_parameter("autostart").value
                and node.trigger_configure() == TransitionCallbackReturn.SUCCESS):
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # The node's logger would also publish to /rosout, whose context Ctrl-C already closed.
        rclpy.logging.get_logger(node.get_name()).info(
            f"stopping: {node.stats.snapshot().summary()}")
        node.on_shutdown(None)
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
