"""What the detector node publishes: grasps and the heatmap per frame (with depth: their 3-D
markers and poses too), per camera; counters per period, for every camera at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from sgdn_ros.core.grasp3d import Grasp3D, GripperGeometry
from sgdn_ros.msg import GraspPose, GraspPoseArray
from sgdn_ros.pipeline.cameras import NODE_CAMERA, camera_topic
from sgdn_ros.pipeline.detector import Detection
from sgdn_ros.pipeline.stats import StatsSnapshot
from sgdn_ros.ros.markers import gripper_markers, pose_array_message
from sgdn_ros.ros.messages import bgr_to_image_message, diagnostics_message, publish_grasps

GRASP_TOPIC = "grasp"
GRASPS_TOPIC = "grasps"
HEATMAP_TOPIC = "~/heatmap"
MARKERS_TOPIC = "~/markers"
GRASP_POSES_TOPIC = "~/grasp_poses"
DIAGNOSTICS_TOPIC = "/diagnostics"
# How long a stop waits for subscribers to acknowledge the last grasps (reliable publishers):
# the frame in inference when a stop comes is published just before its publishers go.
ACKNOWLEDGE_TIMEOUT_S = 1.0


class DetectorOutputs:
    """One camera's publishers, created together at configure and destroyed together at
    cleanup, under the camera's namespace (``camera_topic``; the node's own by default).

    Grasps and heatmaps go out on lifecycle publishers (silent while the node is inactive).
    """

    def __init__(self, node: LifecycleNode, camera: str = NODE_CAMERA) -> None:
        self._node = node
        self._grasp = node.create_lifecycle_publisher(
            GraspPose, camera_topic(camera, GRASP_TOPIC), 10)
        self._grasps = node.create_lifecycle_publisher(
            GraspPoseArray, camera_topic(camera, GRASPS_TOPIC), 10)
        self._heatmap = node.create_lifecycle_publisher(
            Image, camera_topic(camera, HEATMAP_TOPIC), 1)
        self._markers = node.create_lifecycle_publisher(
            MarkerArray, camera_topic(camera, MARKERS_TOPIC), 1)
        self._grasp_poses = node.create_lifecycle_publisher(
            PoseArray, camera_topic(camera, GRASP_POSES_TOPIC), 1)

    def publish_detection(self, detection: Detection, header: Header, num_angle_classes: int,
                          heatmap_mode: str, grasps_3d: Sequence[Grasp3D] | None = None,
                          gripper: GripperGeometry | None = None) -> None:
        """One frame's grasps, with their 3-D poses when ``grasps_3d`` is given (in
        ``header.frame_id``, the camera's optical frame), markers and a PoseArray of them when
        ``gripper`` is (depth on; empty for a frame whose depth failed); its heatmap too when
        `heatmap_mode` (the `heatmap` parameter) asks for it: `always`, or `on_demand` while
        someone subscribes (drawing costs time)."""
        publish_grasps(self._grasp, self._grasps, detection.grasps, header, num_angle_classes,
                       grasps_3d)
        if gripper is not None:  # depth is on: markers follow every frame, none without depth
            located = grasps_3d or []
            self._markers.publish(gripper_markers(detection.grasps, located, gripper, header))
            self._grasp_poses.publish(pose_array_message(located, header))
        self._publish_heatmap(detection, header, heatmap_mode)

    def _publish_heatmap(self, detection: Detection, header: Header, heatmap_mode: str) -> None:
        if heatmap_mode == "always" or (heatmap_mode == "on_demand"
                                        and self._heatmap.get_subscription_count() > 0):
            self._heatmap.publish(bgr_to_image_message(detection.heatmap(), header))

    def destroy(self) -> None:
        """Destroy the publishers once subscribers have the last grasps (or after
        ``ACKNOWLEDGE_TIMEOUT_S``): a writer destroyed at once takes unacknowledged samples
        with it, and the grasps of the frame finished during a stop never arrived (seen in the
        short torture under load)."""
        for publisher in (self._grasp, self._grasps):
            publisher.wait_for_all_acked(Duration(seconds=ACKNOWLEDGE_TIMEOUT_S))
        for publisher in (self._grasp, self._grasps, self._heatmap, self._markers,
                          self._grasp_poses):
            self._node.destroy_lifecycle_publisher(publisher)


class CameraReport(NamedTuple):
    """One camera's counters for `/diagnostics`, under the status name ``name``."""

    name: str
    snapshot: StatsSnapshot


class DiagnosticsOutput:
    """The counters of every camera on `/diagnostics`, one status each, on a plain publisher,
    so an inactive node still reports that it is inactive."""

    def __init__(self, node: LifecycleNode) -> None:
        self._node = node
        self._publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)

    def publish(self, reports: Sequence[CameraReport], hardware_id: str, running: bool) -> None:
        self._publisher.publish(diagnostics_message(
            reports, hardware_id, running, self._node.get_clock().now().to_msg()))

    def destroy(self) -> None:
        self._node.destroy_publisher(self._publisher)
