"""A stand-in camera: publishes image files as sensor_msgs/Image (or CompressedImage)."""

from __future__ import annotations

import array
import pathlib
from collections.abc import Iterator, Sequence

import cv2
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sgdn_ros.core.image_files import read_bgr
from sgdn_ros.ros.messages import CAMERA_MESSAGES, bgr_to_image_message

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

