"""The node's cameras at one configuration: per camera its publishers, counters and (while
active) subscriptions, all feeding one ``CameraScheduler`` (``sgdn_ros.pipeline.cameras``),
which batches the newest frame of each camera for the inference thread."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.lifecycle import LifecycleNode
from sensor_msgs.msg import CameraInfo

from sgdn_ros.pipeline.cameras import NODE_CAMERA, CameraScheduler, camera_topic
from sgdn_ros.pipeline.stats import CameraStats
from sgdn_ros.ros.frame_handler import CameraOutlet
from sgdn_ros.ros.inputs import DEPTH_TOPIC, IMAGE_TOPIC, CameraInputs, ReceivedFrame
from sgdn_ros.ros.outputs import CameraReport, DetectorOutputs, DiagnosticsOutput
from sgdn_ros.ros.parameters import NodeOptions


class CameraChannels:
    """Created at configure (publishers), activated and deactivated with the node
    (subscriptions), destroyed at cleanup. ``stats`` counts per camera; its ``snapshot`` is
    the node's totals."""

    def __init__(self, node: LifecycleNode, names: Sequence[str], stats: CameraStats,
                 scheduler: CameraScheduler[ReceivedFrame]) -> None:
        self._node = node
        self.names = tuple(names)
        self.stats = stats
        self.scheduler = scheduler
        self._inputs: list[CameraInputs] = []
        self._outputs = [DetectorOutputs(node, name) for name in self.names]
        self._diagnostics = DiagnosticsOutput(node)
        self.outlets = [
            CameraOutlet(outputs, stats.camera(index),
                         functools.partial(self._camera_info, index),
                         camera_topic(name, IMAGE_TOPIC), camera_topic(name, DEPTH_TOPIC))
            for index, (name, outputs) in enumerate(zip(self.names, self._outputs))]

    @property
    def active(self) -> bool:
        return bool(self._inputs)

    def activate(self, options: NodeOptions, colour: bool) -> str:
        """Subscribe every camera; return what it listens on, for the log."""
        self._inputs = [
            CameraInputs(self._node, options, functools.partial(self._submit, index),
                         self.stats.camera(index), colour=colour, camera=name)
            for index, name in enumerate(self.names)]
        return "; ".join(inputs.describe() for inputs in self._inputs)

    def deactivate(self) -> None:
        """Unsubscribe; a frame still waiting for inference is dropped, counted on its camera."""
        for inputs in self._inputs:
            inputs.destroy()
        self._inputs = []
        for camera in self.scheduler.clear():
            self.stats.camera(camera).count("dropped")

    def destroy(self) -> None:
        self.deactivate()
        for outputs in self._outputs:
            outputs.destroy()
        self._outputs = []
        self._diagnostics.destroy()

    def describe_batching(self) -> str:
        """How the cameras share the model, for the log."""
        if self.names == (NODE_CAMERA,):
            return "one camera on the node's own topics"
        if len(self.names) == 1:
            return f"one camera, {self.names[0]}"
        return (f"{len(self.names)} cameras ({', '.join(self.names)}): the newest frame of up "
                f"to {self.scheduler.max_batch} per inference, in turn")

    def report(self, logger: RcutilsLogger, hardware_id: str) -> None:
        """The totals (and with several cameras each camera's counts) to the log, and each
        camera's counts to `/diagnostics`."""
        logger.info(self.stats.snapshot().summary())
        node_name = self._node.get_name()
        reports = []
        for index, name in enumerate(self.names):
            snapshot = self.stats.camera(index).snapshot()
            if name == NODE_CAMERA:
                reports.append(CameraReport(f"{node_name}: grasp detector", snapshot))
                continue
            logger.info(f"camera {name}: {snapshot.summary()}")
            reports.append(CameraReport(f"{node_name}: grasp detector, camera {name}", snapshot))
        self._diagnostics.publish(reports, hardware_id, running=self.active)

    def _submit(self, camera: int, frame: ReceivedFrame) -> bool:
        return self.scheduler.put(camera, frame)

    def _camera_info(self, camera: int) -> CameraInfo | None:
        inputs = self._inputs
        return inputs[camera].latest_camera_info() if camera < len(inputs) else None

