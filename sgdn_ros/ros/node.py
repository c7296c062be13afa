"""The SGDN grasp detector as a ROS 2 lifecycle node (executable `detector`).

Thin by design: the parameters and the configs built from them come from
`sgdn_ros.pipeline.parameters` (declared through `sgdn_ros.ros.parameters`), the load step from
`sgdn_ros.pipeline.loading`, the work from `sgdn_ros.pipeline.detector`, the cameras' slots and
batches from `sgdn_ros.pipeline.cameras`, each camera's topics from `sgdn_ros.ros.cameras`; this
module wires parameters, cameras, lifecycle transitions and the inference thread.

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

from sgdn_ros.core.depth_planes import DEPTH_KINDS
from sgdn_ros.pipeline.cameras import (
    CameraFrame,
    CameraScheduler,
    batch_size,
    batched_settings,
    camera_names,
)
from sgdn_ros.pipeline.loading import LoadedDetector, load_detector
from sgdn_ros.pipeline.parameters import detector_settings
from sgdn_ros.pipeline.stats import CameraStats
from sgdn_ros.pipeline.worker import InferenceWorker
from sgdn_ros.ros.cameras import CameraChannels
from sgdn_ros.ros.frame_handler import FrameHandler
from sgdn_ros.ros.inputs import ReceivedFrame
from sgdn_ros.ros.parameters import (
    NodeOptions,
    applied_later,
    declare_parameters,
    parameter_values,
    values_after,
)
from sgdn_ros.ros.stopping import StopRequest, spin_until

NODE_NAME = "sgdn_detector"
Batch = list[CameraFrame[ReceivedFrame]]


class GraspDetectorNode(LifecycleNode):
    """Camera images in; `grasp`, `grasps`, `~/heatmap` (per camera of `cameras`: under its
    namespace) and `/diagnostics` out."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        # The node's own parameters as last accepted; replaced whole, so threads read one set.
        self.options = NodeOptions.from_values(parameter_values(self))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = CameraStats()
        self._worker: InferenceWorker[LoadedDetector, Batch] | None = None
        self._loaded: LoadedDetector | None = None
        self._channels: CameraChannels | None = None
        self._stats_timer = None
        self.finalized = False

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse a value the table or a config refuses; apply runtime ones to the next frame."""
        try:
            values = values_after(parameter_values(self), parameters)
            settings = detector_settings(values)
            camera_names(values["cameras"])
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
        names = camera_names(self.options.cameras)
        batch = batch_size(self.options.max_batch, len(names))
        settings = batched_settings(detector_settings(parameter_values(self)), batch)
        # A TensorRT engine build takes minutes, and a stop waits for the load: say it started.
        self.get_logger().info(
            f"configuring: loading {settings.model_path or 'the default model'} "
            f"(backend {settings.backend})")
        self.stats = CameraStats(len(names))
        scheduler: CameraScheduler[ReceivedFrame] = CameraScheduler(len(names), batch)
        self._channels = CameraChannels(self, names, self.stats, scheduler)
        handler = FrameHandler(self._channels.outlets, self.get_logger(), lambda: self.options,
                               settings.gripper)
        self._worker = InferenceWorker(
            functools.partial(load_detector, settings), handler, LoadedDetector.close,
            mailbox=scheduler)
        self._worker.start()
        self._loaded = self._worker.resource
        scheduler.limit_batch(self._loaded.detector.backend.info.max_batch)
        self.get_logger().info(f"{self._loaded.summary()}; {self._channels.describe_batching()}")
        input_kind = self._loaded.detector.input_kind
        if input_kind in DEPTH_KINDS and not self.options.use_depth:
            raise ValueError(
                f"the model takes depth (input_kind {input_kind}); set use_depth true and "
                "publish depth/image_raw and camera_info")
        if self.options.stats_period_s > 0:
            self._stats_timer = self.create_timer(
                self.options.stats_period_s,
                functools.partial(self._channels.report, self.get_logger(),
                                  self._loaded.backend_name))

    def _activate(self) -> None:
        listening = self._channels.activate(
            self.options, colour=self._loaded.detector.input_kind != "depth")
        self.get_logger().info(f"active: {listening}")

    def _deactivate(self) -> None:
        if self._channels is not None:
            self._channels.deactivate()

    def _release(self) -> None:
        """Undo configure (and activate); safe to call in any state, and twice."""
        self._deactivate()
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._loaded = None
        if self._channels is not None:
            self._channels.destroy()
            self._channels = None
        if self._stats_timer is not None:
            self.destroy_timer(self._stats_timer)
            self._stats_timer = None

    def destroy_node(self) -> None:
        """Release the inference thread, the model and the publishers first, in any state: a
        node destroyed while active (by a process that embeds it, or a test) otherwise left its
        inference thread waiting for frames, and the model loaded, until the process ended."""
        self._release()
        super().destroy_node()

    def finish(self, reason: str) -> None:
        """The last words of the process: the shutdown transition unless it has run, then the
        final counts (through the node's logger, while /rosout can still carry them)."""
        if not self.finalized:
            self.trigger_shutdown()
        self.get_logger().info(f"stopping ({reason}): {self.stats.snapshot().summary()}")


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
