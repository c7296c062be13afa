"""A running detector seen from outside, as a supervisor sees it: its lifecycle state and
transitions (the lifecycle_msgs services every lifecycle node offers), its counters on
/diagnostics, and a camera that sends any image message, well-formed or not. Used by the
reliability suite (`sgdn-ros torture`) and the tests."""

from __future__ import annotations

import array
import threading

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from sgdn_ros.ros.messages import bgr_to_image_message
from sgdn_ros.ros.node import NODE_NAME
from sgdn_ros.ros.player import CAMERA_QOS
from sgdn_ros.ros.session import Recorder

DIAGNOSTICS_TOPIC = "/diagnostics"


class LifecycleClient:
    """`ros2 lifecycle get/set` for one node, from a node spun on another thread."""

    def __init__(self, node: Node, target: str = f"/{NODE_NAME}") -> None:
        self._change = node.create_client(ChangeState, f"{target}/change_state")
        self._get = node.create_client(GetState, f"{target}/get_state")

    def wait_for_services(self, timeout_s: float) -> bool:
        return (self._change.wait_for_service(timeout_sec=timeout_s)
                and self._get.wait_for_service(timeout_sec=timeout_s))

    def state(self, timeout_s: float = 10.0) -> str | None:
        """The node's primary state's label (`active`, ...), None when it did not answer."""
        response = _call(self._get, GetState.Request(), timeout_s)
        return None if response is None else response.current_state.label

    def set(self, transition: str, timeout_s: float = 60.0) -> bool:
        """Trigger a transition by label (`configure`, `activate`, `deactivate`, `cleanup`,
        `shutdown`); True when the node reports it successful."""
        request = ChangeState.Request(transition=Transition(label=transition))
        response = _call(self._change, request, timeout_s)
        return response is not None and response.success


def _call(client, request, timeout_s: float):
    """The response, or None after `timeout_s`."""
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _future: done.set())
    if not done.wait(timeout_s):
        client.remove_pending_request(future)
        return None
    return future.result()


class DiagnosticsWatch:
    """The detector's counters as it last reported them on /diagnostics."""

    def __init__(self, node: Node) -> None:
        self._recorder = Recorder(node, DiagnosticArray, DIAGNOSTICS_TOPIC)

    def latest(self) -> dict[str, float] | None:
        """The last report's numeric values by key (`received`, `latency_p99_ms`, ...)."""
        last = self._recorder.since(max(0, self._recorder.count() - 1))
        return _values(last[0][0]) if last else None

    def wait_for(self, condition, timeout_s: float) -> dict[str, float] | None:
        """The first report (from now on) whose values satisfy `condition`, else None."""
        start = self._recorder.count()
        found = self._recorder.wait_for(
            lambda messages: any(condition(_values(message)) for message in messages[start:]),
            timeout_s)
        return self.latest() if found else None


def _values(message: DiagnosticArray) -> dict[str, float]:
    return {value.key: float(value.value) for value in message.status[0].values}


class Camera:
    """Publishes on `image_raw`: scenes stamped with the node's clock, or raw fields as given
    (any encoding, sizes, step and data, consistent or not)."""

    def __init__(self, node: Node, topic: str = "image_raw", reliable: bool = False,
                 depth: int = 5) -> None:
        qos = CAMERA_QOS if not reliable else QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        self._node = node
        self._publisher = node.create_publisher(Image, topic, qos)

    def subscription_count(self) -> int:
        return self._publisher.get_subscription_count()

    def close(self) -> None:
        self._node.destroy_publisher(self._publisher)

    def publish_bgr(self, bgr) -> Image:
        """A bgr8 frame stamped now; returns the message (its stamp keys the answer)."""
        message = bgr_to_image_message(bgr, self._header())
        self._publisher.publish(message)
        return message

    def publish_fields(self, height: int, width: int, step: int, encoding: str,
                       is_bigendian: bool, data: bytes | memoryview) -> None:
        message = Image(header=self._header(), height=height, width=width, step=step,
                        encoding=encoding, is_bigendian=is_bigendian)
        pixels = array.array("B")
        pixels.frombytes(data)  # one copy; array.array("B", memoryview) goes byte by byte
        message.data = pixels
        self._publisher.publish(message)

    def _header(self) -> Header:
        return Header(stamp=self._node.get_clock().now().to_msg(), frame_id="torture_camera")
