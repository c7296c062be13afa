"""Stand-in cameras: image files as sensor_msgs/Image (or CompressedImage), and RGB-D frames
as colour, aligned depth and camera_info with one stamp, as a RealSense driver sends them."""

from __future__ import annotations

import array
import pathlib
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from sgdn_ros.core.camera import CameraModel
from sgdn_ros.core.image_files import read_bgr
from sgdn_ros.ros.messages import (
    CAMERA_MESSAGES,
    bgr_to_image_message,
    camera_info_message,
    depth_image_message,
)

# Camera drivers publish best effort with a short history (REP-2003's sensor-data profile).
CAMERA_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


class ImagePlayer:
    """Publishes the given images in turn, stamped now, with a frame id, as a camera would."""

    def __init__(
        self,
        node: Node,
        files: Sequence[pathlib.Path],
        topic: str = "image_raw",
        frame_id: str = "camera",
        compressed: bool = False,
        qos: QoSProfile = CAMERA_QOS,
    ) -> None:
        self._node = node
        self._frame_id = frame_id
        self._compressed = compressed
        self.images = [read_bgr(path) for path in files]
        self.files = list(files)
        message_type, topic_suffix = CAMERA_MESSAGES["compressed" if compressed else "raw"]
        self._publisher = node.create_publisher(message_type, f"{topic}{topic_suffix}", qos)
        if compressed:
            self._encoded = [cv2.imencode(".jpg", image)[1].tobytes() for image in self.images]
        self.published = 0

    @property
    def topic_name(self) -> str:
        return self._publisher.topic_name

    def subscription_count(self) -> int:
        return self._publisher.get_subscription_count()

    def indices(self, loop: bool) -> Iterator[int]:
        while True:
            yield from range(len(self.images))
            if not loop:
                return

    def publish(self, index: int) -> Image | CompressedImage:
        header = Header(stamp=self._node.get_clock().now().to_msg(), frame_id=self._frame_id)
        if self._compressed:
            message = CompressedImage(header=header, format="jpeg")
            message.data = array.array("B", self._encoded[index])
        else:
            message = bgr_to_image_message(self.images[index], header)
        self._publisher.publish(message)
        self.published += 1
        return message



class RgbdPlayer:
    """Publishes RGB-D frames (bgr8 colour, 16UC1 depth in millimetres, the camera's
    camera_info) on ``image_raw``, ``depth/image_raw`` and ``camera_info``, all with one
    stamp, in the camera's ``frame_id``."""

    def __init__(self, node: Node, frames: Sequence[tuple[np.ndarray, np.ndarray]],
                 camera: CameraModel, qos: QoSProfile = CAMERA_QOS) -> None:
        """``frames``: (bgr, depth_mm) pairs for ``publish``; empty for ``publish_frame`` only."""
        self._node = node
        self._frames = list(frames)
        self._camera = camera
        self._colour = node.create_publisher(Image, "image_raw", qos)
        self._depth = node.create_publisher(Image, "depth/image_raw", qos)
        self._info = node.create_publisher(CameraInfo, "camera_info", qos)

    def subscription_count(self) -> int:
        """Subscribers on the least-subscribed of the three topics."""
        return min(publisher.get_subscription_count()
                   for publisher in (self._colour, self._depth, self._info))

    def depth_subscription_count(self) -> int:
        """Subscribers on depth and camera_info, all that a depth-only model listens to."""
        return min(publisher.get_subscription_count() for publisher in (self._depth, self._info))

    def publish(self, index: int) -> Image:
        """Camera_info, colour, then depth of frame ``index``; returns the colour message."""
        return self.publish_frame(*self._frames[index])

    def publish_frame(self, bgr: np.ndarray, depth_mm: np.ndarray) -> Image:
        """Camera_info, colour, then depth of a frame given now (a live source, such as the
        simulator); returns the colour message."""
        header = Header(stamp=self._node.get_clock().now().to_msg(),
                        frame_id=self._camera.frame_id)
        self._info.publish(camera_info_message(self._camera, header))
        colour = bgr_to_image_message(bgr, header)
        self._colour.publish(colour)
        self._depth.publish(depth_image_message(depth_mm, header))
        return colour
