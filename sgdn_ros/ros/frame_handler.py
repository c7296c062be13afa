"""One frame on the inference thread: messages -> frame -> detection -> 3-D poses (with
depth) -> published. Every failure is counted and logged (throttled); nothing escapes, so the
inference thread keeps running whatever arrives."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from rclpy.impl.rcutils_logger import RcutilsLogger
from sensor_msgs.msg import CameraInfo

from sgdn_ros.core.depth_planes import DEPTH_KINDS
from sgdn_ros.core.grasp3d import Grasp3D, GripperGeometry
from sgdn_ros.pipeline.detector import Detection
from sgdn_ros.pipeline.grasp_poses import locate_grasps
from sgdn_ros.pipeline.loading import LoadedDetector
from sgdn_ros.pipeline.stats import DetectorStats
from sgdn_ros.ros.inputs import DEPTH_TOPIC, IMAGE_TOPIC, THROTTLE_S, ReceivedFrame
from sgdn_ros.ros.messages import (
    depth_frame_with_camera_info,
    depth_metres_from_message,
    frame_from_message,
)
from sgdn_ros.ros.outputs import DetectorOutputs
from sgdn_ros.ros.parameters import NodeOptions


class FrameHandler:
    """The worker's frame callback for one configuration: publishes through ``outputs``,
    counts in ``stats``, reads the node's current options (runtime parameters) and the latest
    camera_info per frame."""

    def __init__(self, outputs: DetectorOutputs, stats: DetectorStats, logger: RcutilsLogger,
                 options: Callable[[], NodeOptions], gripper: GripperGeometry,
                 camera_info: Callable[[], CameraInfo | None]) -> None:
        self._camera_info = camera_info
        self._outputs = outputs
        self._stats = stats
        self._logger = logger
        self._options = options
        self._gripper = gripper

    def __call__(self, loaded: LoadedDetector, frame: ReceivedFrame) -> None:
        options = self._options()
        try:
            image = None if frame.message is None else frame_from_message(frame.message)
        except ValueError as error:
            self._refuse("rejected", f"rejected an image on {IMAGE_TOPIC}: {error}")
            return
        depth_m = self._depth_metres(frame, options)
        detector = loaded.detector
        if detector.input_kind in DEPTH_KINDS and depth_m is None:
            return  # refused and counted: this model cannot run without the depth
        try:
            detection = detector.detect(
                image, depth_m if detector.input_kind in DEPTH_KINDS else None)
            grasps_3d = None if depth_m is None else self._locate(detection, depth_m)
            self._outputs.publish_detection(
                detection, frame.header, loaded.num_angle_classes, options.heatmap,
                grasps_3d, self._gripper if options.use_depth else None)
        except ValueError as error:
            self._refuse("rejected", f"rejected an image: {error}")
            return
        except Exception as error:  # noqa: BLE001 - keep the inference thread alive
            self._stats.count("failed")
            self._logger.error(f"processing a frame failed: {error!r}",
                               throttle_duration_sec=THROTTLE_S)
            return
        self._stats.count("processed")
        self._stats.record_latency(time.monotonic() - frame.received_at)

    def _depth_metres(self, frame: ReceivedFrame, options: NodeOptions) -> np.ndarray | None:
        """The frame's depth in metres, or None (counted, logged) when it has none usable."""
        if frame.depth is None:
            return None
        try:
            return depth_metres_from_message(frame.depth, options.depth_scale)
        except ValueError as error:
            self._refuse("depth_rejected", f"rejected a depth image on {DEPTH_TOPIC}: {error}")
            return None

    def _locate(self, detection: Detection, depth_m: np.ndarray) -> list[Grasp3D] | None:
        """The grasps' 3-D poses, or None (counted, logged) when this frame's depth or
        camera_info cannot give any: its grasps still go out, without poses."""
        try:
            depth = depth_frame_with_camera_info(depth_m, self._camera_info())
            located = locate_grasps(detection, depth, self._gripper)
        except ValueError as error:
            self._refuse("depth_rejected", f"grasps published without 3-D poses: {error}")
            return None
        for grasp in located:
            if not grasp.valid:
                self._stats.count(f"pose_{grasp.reason}")
        return located

    def _refuse(self, counter: str, message: str) -> None:
        self._stats.count(counter)
        self._logger.warning(message, throttle_duration_sec=THROTTLE_S)
