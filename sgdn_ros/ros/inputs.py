"""The node's camera inputs: a colour image alone, or with an aligned depth image and the
camera's camera_info, paired by stamp (``sgdn_ros.pipeline.pairing``).

Subscriptions run on the executor thread and only hand frames over: the newest colour frame
(or colour + depth pair) goes to the inference thread's one-frame slot, once its header has
passed the cheap checks (so a bad frame is counted as rejected, exactly, and never displaces a
good one waiting in the slot; the full check stays on the inference thread), and camera_info, which
a driver repeats with every frame, is kept as the latest one, read when the frame is processed
(so a camera_info that arrives just after its frame is still used).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sgdn_ros.core.frames import compressed_image_problem, raw_image_problem
from sgdn_ros.pipeline.cameras import NODE_CAMERA, camera_topic
from sgdn_ros.pipeline.pairing import COLOUR, DEPTH, StampPairer
from sgdn_ros.pipeline.stats import DetectorStats
from sgdn_ros.ros.messages import CAMERA_MESSAGES
from sgdn_ros.ros.parameters import NodeOptions

IMAGE_TOPIC = "image_raw"
DEPTH_TOPIC = "depth/image_raw"
CAMERA_INFO_TOPIC = "camera_info"
# Seconds between two log lines about the same kind of bad input.
THROTTLE_S = 5.0


@dataclass(frozen=True)
class ReceivedFrame:
    """What the inference thread gets: the colour message (None from a depth-only camera),
    and with depth on, its depth image."""

    message: Image | CompressedImage | None
    received_at: float
    depth: Image | None = None

    @property
    def header(self):
        """The stamp and frame of the frame (the colour image's, else the depth image's)."""
        return (self.message if self.message is not None else self.depth).header


def stamp_ns(message: Image | CompressedImage) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def colour_message_problem(message: Image | CompressedImage) -> str | None:
    """What makes a colour message unusable judging by its header and data length alone
    (``core.frames``' checks, no pixel read), or None."""
    if isinstance(message, CompressedImage):
        return compressed_image_problem(str(message.format), len(message.data))
    return raw_image_problem(int(message.height), int(message.width), int(message.step),
                             message.encoding, len(message.data))


class CameraInputs:
    """The subscriptions of one activation; ``destroy`` at deactivation.

    ``submit(frame)`` hands a frame to the inference thread and returns whether it replaced
    one not yet taken (counted as dropped here). Without ``colour`` (a depth-only model) each
    depth image is a frame of its own. ``camera`` is the namespace of the camera's topics
    (``sgdn_ros.pipeline.cameras.camera_topic``; the node's own by default).
    """

    def __init__(self, node: Node, options: NodeOptions,
                 submit: Callable[[ReceivedFrame], bool], stats: DetectorStats,
                 colour: bool = True, camera: str = NODE_CAMERA) -> None:
        self.image_topic = camera_topic(camera, IMAGE_TOPIC)
        self.depth_topic = camera_topic(camera, DEPTH_TOPIC)
        self._node = node
        self._submit = submit
        self._stats = stats
        self._latest_info: CameraInfo | None = None
        self._lock = threading.Lock()
        message_type, topic_suffix = CAMERA_MESSAGES[options.image_transport]
        self._subscriptions = []
        self._pairer: StampPairer | None = None
        if colour:
            self._subscriptions.append(node.create_subscription(
                message_type, f"{self.image_topic}{topic_suffix}", self._on_colour,
                options.image_qos()))
            if options.use_depth:
                self._pairer = StampPairer(options.depth_slop_s)
        if options.use_depth:
            self._subscriptions += [
                node.create_subscription(Image, self.depth_topic, self._on_depth,
                                         options.depth_qos()),
                node.create_subscription(CameraInfo, camera_topic(camera, CAMERA_INFO_TOPIC),
                                         self._on_camera_info, options.camera_info_qos())]

    def latest_camera_info(self) -> CameraInfo | None:
        """The newest camera_info, None until one arrived."""
        with self._lock:
            return self._latest_info

    def describe(self) -> str:
        topics = ", ".join(subscription.topic_name for subscription in self._subscriptions)
        pairing = "" if self._pairer is None else " (colour and depth paired by stamp)"
        return f"listening on {topics}{pairing}"

    def destroy(self) -> None:
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []
        if self._pairer is not None:
            self._offer(self._pairer.clear)

    def _on_colour(self, message: Image | CompressedImage) -> None:
        self._stats.count("received")
        problem = colour_message_problem(message)
        if problem is not None:
            self._stats.count("rejected")
            self._node.get_logger().warning(f"rejected an image on {self.image_topic}: {problem}",
                                            throttle_duration_sec=THROTTLE_S)
            return
        if self._pairer is None:
            self._hand_over(ReceivedFrame(message, time.monotonic()))
        else:
            self._offer(lambda: self._pairer.add(COLOUR, stamp_ns(message), message))

    def _on_depth(self, message: Image) -> None:
        if self._pairer is None:
            self._stats.count("received")
            self._hand_over(ReceivedFrame(None, time.monotonic(), message))
        else:
            self._offer(lambda: self._pairer.add(DEPTH, stamp_ns(message), message))

    def _on_camera_info(self, message: CameraInfo) -> None:
        with self._lock:
            self._latest_info = message

    def _offer(self, pair_step: Callable[[], object]) -> None:
        """Run one pairer step, count what it left unmatched, hand over a completed pair."""
        with self._lock:
            before = self._pairer.unmatched
            pair = pair_step()
            self._stats.add("unmatched", self._pairer.unmatched - before)
        if pair is not None:
            self._hand_over(ReceivedFrame(pair.colour, time.monotonic(), pair.depth))

    def _hand_over(self, frame: ReceivedFrame) -> None:
        if self._submit(frame):
            self._stats.count("dropped")
