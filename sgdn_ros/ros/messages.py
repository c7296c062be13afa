"""ROS messages to frames, and grasps, images and counters to ROS messages. Imports message
types only, no rclpy node machinery."""

from __future__ import annotations

import array
import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.frames import (
    bgr_to_image_fields,
    compressed_message_to_bgr,
    raw_image_from_message,
)
from sgdn_ros.msg import GraspPose, GraspPoseArray
from sgdn_ros.pipeline.detector import CameraImage
from sgdn_ros.pipeline.stats import StatsSnapshot

# Image transport (the `image_transport` parameter) -> message type and topic suffix.
CAMERA_MESSAGES: dict[str, tuple[type, str]] = {
    "raw": (Image, ""),
    "compressed": (CompressedImage, "/compressed"),
}


def frame_from_message(message: Image | CompressedImage) -> CameraImage:
    """The detector's input: a checked zero-copy ``RawImage`` of a raw message, a decoded BGR
    array of a compressed one. ValueError (with the reason) for what cannot be a frame."""
    if isinstance(message, CompressedImage):
        return compressed_message_to_bgr(message)
    return raw_image_from_message(message)


def grasp_to_message(grasp: Grasp, header: Header, num_angle_classes: int) -> GraspPose:
    message = GraspPose()
    message.header = header
    message.u = float(grasp.col)
    message.v = float(grasp.row)
    message.angle = float(grasp.angle)
    message.width_px = float(grasp.width_px)
    message.width_m = float(grasp.width_m)
    message.confidence = float(grasp.confidence)
    message.angle_class = int(grasp.angle_class)
    message.num_angle_classes = int(num_angle_classes)
    message.depth_m = math.nan
    message.pose_valid = False
    return message


def grasps_to_array_message(
    grasps: Sequence[Grasp], header: Header, num_angle_classes: int
) -> GraspPoseArray:
    message = GraspPoseArray()
    message.header = header
    message.grasps = [grasp_to_message(grasp, header, num_angle_classes) for grasp in grasps]
    return message


def publish_grasps(best_publisher, array_publisher, grasps: Sequence[Grasp], header: Header,
                   num_angle_classes: int) -> None:
    """One frame's answer: all grasps on the array topic, the best also on its own topic (when
    there is one). The messages are built once; the best one is the array's first."""
    answer = grasps_to_array_message(grasps, header, num_angle_classes)
    if answer.grasps:
        best_publisher.publish(answer.grasps[0])
    array_publisher.publish(answer)


def bgr_to_image_message(bgr: np.ndarray, header: Header) -> Image:
    """A bgr8 Image; the pixel bytes go in as one array.array, which rclpy takes without
    checking each element (element-wise filling costs ~1 s for a full-HD frame)."""
    height, width, encoding, is_bigendian, step, data = bgr_to_image_fields(bgr)
    message = Image()
    message.header = header
    message.height = height
    message.width = width
    message.encoding = encoding
    message.is_bigendian = is_bigendian
    message.step = step
    message.data = array.array("B", data)
    return message


def camera_image_message(bgr: np.ndarray, frame_id: str = "camera") -> Image:
    """An unstamped bgr8 Image as a camera in ``frame_id`` sends it."""
    return bgr_to_image_message(bgr, Header(frame_id=frame_id))


def diagnostics_message(snapshot: StatsSnapshot, name: str, hardware_id: str, running: bool,
                        stamp: Time) -> DiagnosticArray:
    """The counters and latencies as one status: WARN once a frame failed, else OK."""
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = hardware_id
    status.level = DiagnosticStatus.OK if snapshot.failed == 0 else DiagnosticStatus.WARN
    status.message = "running" if running else "inactive"
    status.values = [KeyValue(key=key, value=str(value)) for key, value in vars(snapshot).items()]
    message = DiagnosticArray()
    message.header = Header(stamp=stamp)
    message.status = [status]
    return message


def grasp_from_message(message: GraspPose) -> Grasp:
    """A received grasp, for drawing on the original image; where it lay in the network input
    is not part of the message (crop_row/crop_col -1, crop_width_px NaN)."""
    return Grasp(
        row=message.v, col=message.u, angle=message.angle, width_px=message.width_px,
        width_m=message.width_m, confidence=message.confidence,
        angle_class=message.angle_class, crop_row=-1, crop_col=-1, crop_width_px=math.nan)
