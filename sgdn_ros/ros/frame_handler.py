"""A batch of frames (the newest of each waiting camera) on the inference thread: messages ->
frames -> one batched detection -> 3-D poses (with depth) -> published on each frame's camera.
Every failure is counted (on the camera it came from) and logged (throttled); nothing escapes,
so the inference thread keeps running whatever arrives."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from rclpy.impl.rcutils_logger import RcutilsLogger
from sensor_msgs.msg import CameraInfo

from sgdn_ros.core.depth_planes import DEPTH_KINDS
from sgdn_ros.core.grasp3d import Grasp3D, GripperGeometry
from sgdn_ros.pipeline.cameras import CameraFrame, detect_each
from sgdn_ros.pipeline.detector import CameraImage, Detection
from sgdn_ros.pipeline.grasp_poses import locate_grasps
from sgdn_ros.pipeline.loading import LoadedDetector
from sgdn_ros.pipeline.stats import DetectorStats
from sgdn_ros.ros.inputs import THROTTLE_S, ReceivedFrame
from sgdn_ros.ros.messages import (
    depth_frame_with_camera_info,
    depth_metres_from_message,
    frame_from_message,
)
from sgdn_ros.ros.outputs import DetectorOutputs
from sgdn_ros.ros.parameters import NodeOptions


@dataclass
class CameraOutlet:
    """Where one camera's results go: its publishers, its counters, its latest camera_info,
    and the names of its input topics (for the log)."""

    outputs: DetectorOutputs
    stats: DetectorStats
    camera_info: Callable[[], CameraInfo | None]
    image_topic: str
    depth_topic: str


@dataclass
class _Work:
    """One frame of the batch on its way: its camera, message and converted inputs."""

    outlet: CameraOutlet
    frame: ReceivedFrame
    image: CameraImage | None
    depth_m: np.ndarray | None


class FrameHandler:
    """The worker's batch callback for one configuration: publishes through each camera's
    ``outlets[camera]``, counts in its stats, reads the node's current options (runtime
    parameters)."""

    def __init__(self, outlets: Sequence[CameraOutlet], logger: RcutilsLogger,
                 options: Callable[[], NodeOptions], gripper: GripperGeometry) -> None:
        self._outlets = outlets
        self._logger = logger
        self._options = options
        self._gripper = gripper

    def __call__(self, loaded: LoadedDetector, batch: Sequence[CameraFrame[ReceivedFrame]]
                 ) -> None:
        started = time.monotonic()
        options = self._options()
        work = [item for item in (self._prepare(loaded, self._outlets[frame.camera],
                                                frame.frame, options) for frame in batch)
                if item is not None]
        if not work:
            return
        takes_depth = loaded.detector.input_kind in DEPTH_KINDS
        results = detect_each(loaded.detector, [item.image for item in work],
                              [item.depth_m if takes_depth else None for item in work])
        published = [item for item, result in zip(work, results)
                     if self._publish(loaded, item, result, options)]
        batch_s = time.monotonic() - started
        for item in published:
            item.outlet.stats.record_batch(batch_s)

    def _prepare(self, loaded: LoadedDetector, outlet: CameraOutlet, frame: ReceivedFrame,
                 options: NodeOptions) -> _Work | None:
        """The frame's inputs, or None (counted, logged) when it cannot be run."""
        try:
            image = None if frame.message is None else frame_from_message(frame.message)
        except ValueError as error:
            self._refuse(outlet, "rejected", f"rejected an image on {outlet.image_topic}: "
                         f"{error}")
            return None
        depth_m = self._depth_metres(outlet, frame, options)
        if loaded.detector.input_kind in DEPTH_KINDS and depth_m is None:
            return None  # refused and counted: this model cannot run without the depth
        return _Work(outlet, frame, image, depth_m)

    def _publish(self, loaded: LoadedDetector, item: _Work, result: Detection | Exception,
                 options: NodeOptions) -> bool:
        """Whether the frame's results went out (otherwise counted and logged)."""
        outlet = item.outlet
        try:
            if isinstance(result, Exception):
                raise result
            grasps_3d = None if item.depth_m is None else self._locate(outlet, result,
                                                                       item.depth_m)
            outlet.outputs.publish_detection(
                result, item.frame.header, loaded.num_angle_classes, options.heatmap,
                grasps_3d, self._gripper if options.use_depth else None)
        except ValueError as error:
            self._refuse(outlet, "rejected", f"rejected an image: {error}")
            return False
        except Exception as error:  # noqa: BLE001 - keep the inference thread alive
            outlet.stats.count("failed")
            self._logger.error(f"processing a frame failed: {error!r}",
                               throttle_duration_sec=THROTTLE_S)
            return False
        outlet.stats.count("processed")
        outlet.stats.record_latency(time.monotonic() - item.frame.received_at)
        return True

    def _depth_metres(self, outlet: CameraOutlet, frame: ReceivedFrame,
                      options: NodeOptions) -> np.ndarray | None:
        """The frame's depth in metres, or None (counted, logged) when it has none usable."""
        if frame.depth is None:
            return None
        try:
            return depth_metres_from_message(frame.depth, options.depth_scale)
        except ValueError as error:
            self._refuse(outlet, "depth_rejected",
                         f"rejected a depth image on {outlet.depth_topic}: {error}")
            return None

    def _locate(self, outlet: CameraOutlet, detection: Detection,
                depth_m: np.ndarray) -> list[Grasp3D] | None:
        """The grasps' 3-D poses, or None (counted, logged) when this frame's depth or
        camera_info cannot give any: its grasps still go out, without poses."""
        try:
            depth = depth_frame_with_camera_info(depth_m, outlet.camera_info())
            located = locate_grasps(detection, depth, self._gripper)
        except ValueError as error:
            self._refuse(outlet, "depth_rejected", f"grasps published without 3-D poses: {error}")
            return None
        for grasp in located:
            if not grasp.valid:
                outlet.stats.count(f"pose_{grasp.reason}")
        return located

    def _refuse(self, outlet: CameraOutlet, counter: str, message: str) -> None:
        outlet.stats.count(counter)
        self._logger.warning(message, throttle_duration_sec=THROTTLE_S)
