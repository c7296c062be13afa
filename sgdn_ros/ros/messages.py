"""Grasps and images to ROS messages. Imports message types only, no rclpy node machinery."""

from __future__ import annotations

import array
import math
from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.frames import bgr_to_image_fields
from sgdn_ros.msg import GraspPose, GraspPoseArray


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


def grasp_from_message(message: GraspPose) -> Grasp:
    """A received grasp, for drawing on the original image; where it lay in the network input
    is not part of the message (crop_row/crop_col -1, crop_width_px NaN)."""
    return Grasp(
        row=message.v, col=message.u, angle=message.angle, width_px=message.width_px,
        width_m=message.width_m, confidence=message.confidence,
        angle_class=message.angle_class, crop_row=-1, crop_col=-1, crop_width_px=math.nan)
