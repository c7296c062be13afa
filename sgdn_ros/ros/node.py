"""The SGDN grasp detector as a ROS 2 lifecycle node (executable `detector`).

Thin by design: the parameters and the configs built from them come from
`sgdn_ros.pipeline.parameters` (declared through `sgdn_ros.ros.parameters`), the load step from
`sgdn_ros.pipeline.loading`, the work from `sgdn_ros.pipeline.detector`, the publishing from
`sgdn_ros.ros.outputs`; this module wires parameters, topics, lifecycle transitions and the
inference thread.

Transitions: configure loads the model (on the inference thread) and creates publishers;
activate subscribes to images; deactivate unsubscribes but keeps the model; cleanup releases
everything. Any failure is logged with its reason and the transition returns FAILURE.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo

from sgdn_ros.core.depth_planes import DEPTH_KINDS
from sgdn_ros.pipeline.loading import LoadedDetector, load_detector
from sgdn_ros.pipeline.parameters import detector_settings
from sgdn_ros.pipeline.stats import DetectorStats
from sgdn_ros.pipeline.worker import InferenceWorker
from sgdn_ros.ros.frame_handler import FrameHandler
from sgdn_ros.ros.inputs import CameraInputs, ReceivedFrame
from sgdn_ros.ros.outputs import DetectorOutputs
from sgdn_ros.ros.parameters import (
    NodeOptions,
    applied_later,
    declare_parameters,
    parameter_values,
    values_after,
)
from sgdn_ros.ros.stopping import StopRequest, spin_until

NODE_NAME = "sgdn_detector"


class GraspDetectorNode(LifecycleNode):
    """Camera images in; `grasp`, `grasps`, `~/heatmap` and `/diagnostics` out."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        # The node's own parameters as last accepted; replaced whole, so threads read one set.
        self.options = NodeOptions.from_values(parameter_values(self))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = DetectorStats()
        self._worker: InferenceWorker[LoadedDetector, ReceivedFrame] | None = None
        self._loaded: LoadedDetector | None = None
        self._outputs: DetectorOutputs | None = None
        self._stats_timer = None
        self._inputs: CameraInputs | None = None
        self.finalized = False

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse a value the table or a config refuses; apply runtime ones to the next frame."""
        try:
            values = values_after(parameter_values(self), parameters)
            settings = detector_settings(values)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.options = NodeOptions.from_values(values)
        if self._loaded is not None:
            self._loaded.detector.decode_config = settings.decode
            later = applied_later(parameters)
            if later:
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
        """Release everything; the process then ends (`main` watches `finalized`)."""
        self.finalized = True
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
        settings = detector_settings(parameter_values(self))
        # A TensorRT engine build takes minutes, and a stop waits for the load: say it started.
        self.get_logger().info(
            f"configuring: loading {settings.model_path or 'the default model'} "
            f"(backend {settings.backend})")
        self.stats = DetectorStats()
        self._outputs = DetectorOutputs(self)
        handler = FrameHandler(self._outputs, self.stats, self.get_logger(),
                               lambda: self.options, settings.gripper, self._camera_info)
        self._worker = InferenceWorker(
            functools.partial(load_detector, settings), handler, LoadedDetector.close)
        self._worker.start()
        self._loaded = self._worker.resource
        self.get_logger().info(self._loaded.summary())
        input_kind = self._loaded.detector.input_kind
        if input_kind in DEPTH_KINDS and not self.options.use_depth:
            raise ValueError(
                f"the model takes depth (input_kind {input_kind}); set use_depth true and "
                "publish depth/image_raw and camera_info")
        if self.options.stats_period_s > 0:
            self._stats_timer = self.create_timer(
                self.options.stats_period_s,
                functools.partial(self._report_stats, self._loaded.backend_name))

    def _camera_info(self) -> CameraInfo | None:
        inputs = self._inputs
        return None if inputs is None else inputs.latest_camera_info()

    def _activate(self) -> None:
        self._inputs = CameraInputs(self, self.options, self._worker.submit, self.stats,
                                    colour=self._loaded.detector.input_kind != "depth")
        self.get_logger().info(f"active: {self._inputs.describe()}")

    def _deactivate(self) -> None:
        if self._inputs is not None:
            self._inputs.destroy()
            self._inputs = None
        if self._worker is not None and self._worker.discard_pending():
            self.stats.count("dropped")

    def _release(self) -> None:
        """Undo configure (and activate); safe to call in any state, and twice."""
        self._deactivate()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._loaded = None
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        if self._stats_timer is not None:
            self.destroy_timer(self._stats_timer)
            self._stats_timer = None

    def finish(self, reason: str) -> None:
        """The last words of the process: the shutdown transition unless it has run, then the
        final counts (through the node's logger, while /rosout can still carry them)."""
        if not self.finalized:
            self.trigger_shutdown()
        self.get_logger().info(f"stopping ({reason}): {self.stats.snapshot().summary()}")

    def _report_stats(self, backend_name: str) -> None:
        snapshot = self.stats.snapshot()
        self.get_logger().info(snapshot.summary())
        self._outputs.publish_diagnostics(snapshot, backend_name,
                                          running=self._inputs is not None)


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT, SIGTERM or its lifecycle shutdown transition, then stop in
    order while the context is still valid: the shutdown transition (inputs, then the inference
    thread, which finishes and publishes the frame in progress, then timers and publishers), the
    final counts, the node, the context. Exit code 0."""
    stop = StopRequest()
    stop.install()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = GraspDetectorNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # A failed configure was logged with its reason; the node stays up, unconfigured, so
        # a lifecycle manager (or `ros2 lifecycle set`) can retry after a fix.
        if (node.options.autostart and not stop.reason
                and node.trigger_configure() == TransitionCallbackReturn.SUCCESS
                and not stop.reason):
            node.trigger_activate()
        spin_until(executor, lambda: stop.reason is not None or node.finalized)
    finally:
        node.finish(stop.reason or "lifecycle shutdown")
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
    return 0
