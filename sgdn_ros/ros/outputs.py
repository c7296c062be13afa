"""What the detector node publishes: grasps and the heatmap per frame, counters per period."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sgdn_ros.msg import GraspPose, GraspPoseArray
from sgdn_ros.pipeline.detector import Detection
from sgdn_ros.pipeline.stats import StatsSnapshot
from sgdn_ros.ros.messages import bgr_to_image_message, diagnostics_message, publish_grasps

GRASP_TOPIC = "grasp"
GRASPS_TOPIC = "grasps"
HEATMAP_TOPIC = "~/heatmap"
DIAGNOSTICS_TOPIC = "/diagnostics"


class DetectorOutputs:
    """The node's publishers, created together at configure and destroyed together at cleanup.

    Grasps and heatmaps go out on lifecycle publishers (silent while the node is inactive);
    diagnostics on a plain one, so an inactive node still reports that it is inactive.
    """

    def __init__(self, node: LifecycleNode) -> None:
        self._node = node
        self._grasp = node.create_lifecycle_publisher(GraspPose, GRASP_TOPIC, 10)
        self._grasps = node.create_lifecycle_publisher(GraspPoseArray, GRASPS_TOPIC, 10)
        self._heatmap = node.create_lifecycle_publisher(Image, HEATMAP_TOPIC, 1)
        self._diagnostics = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)

    def publish_detection(self, detection: Detection, header: Header, num_angle_classes: int,
                          heatmap_mode: str) -> None:
        """One frame's grasps; its heatmap too when `heatmap_mode` (the `heatmap` parameter)
        asks for it: `always`, or `on_demand` while someone subscribes (drawing costs time)."""
        publish_grasps(self._grasp, self._grasps, detection.grasps, header, num_angle_classes)
        if heatmap_mode == "always" or (heatmap_mode == "on_demand"
                                        and self._heatmap.get_subscription_count() > 0):
            self._heatmap.publish(bgr_to_image_message(detection.heatmap(), header))

    def publish_diagnostics(self, snapshot: StatsSnapshot, hardware_id: str,
                            running: bool) -> None:
        self._diagnostics.publish(diagnostics_message(
            snapshot, f"{self._node.get_name()}: grasp detector", hardware_id, running,
            self._node.get_clock().now().to_msg()))

    def destroy(self) -> None:
        for publisher in (self._grasp, self._grasps, self._heatmap):
            self._node.destroy_lifecycle_publisher(publisher)
        self._node.destroy_publisher(self._diagnostics)
