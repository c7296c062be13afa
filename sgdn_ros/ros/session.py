"""Running the installed detector and talking to it: shared by the demo, the benchmark, the
`sgdn-ros play` command and the integration tests, so all of them exercise the node the way a
robot would, and only this layer touches rclpy and the message types."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.msg import GraspPose, GraspPoseArray
from sgdn_ros.ros.messages import publish_grasps
from sgdn_ros.ros.node import NODE_NAME
from sgdn_ros.ros.outputs import GRASP_TOPIC, GRASPS_TOPIC

Stamp = tuple[int, int]

DETECTOR_HEATMAP_TOPIC = f"/{NODE_NAME}/heatmap"
DETECTOR_MARKERS_TOPIC = f"/{NODE_NAME}/markers"


class BackgroundSpin:
    """Spins nodes on a thread of their own until `stop`, which joins it: a thread still
    inside rclpy when the interpreter exits aborts the process ("terminate called ...")."""

    def __init__(self, *nodes: Node, context=None, threads: int = 1) -> None:
        from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

        self.executor = (MultiThreadedExecutor(num_threads=threads, context=context)
                         if threads > 1 else SingleThreadedExecutor(context=context))
        for node in nodes:
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.executor.shutdown()
        self._thread.join(10.0)


def stamp_key(header) -> Stamp:
    return (header.stamp.sec, header.stamp.nanosec)


def stamp_nanoseconds(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def installed_detector() -> tuple[pathlib.Path, pathlib.Path]:
    """The `detector` executable and the default parameters file of the installed package."""
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    executable = pathlib.Path(get_package_prefix("sgdn_ros")) / "lib" / "sgdn_ros" / "detector"
    params = pathlib.Path(get_package_share_directory("sgdn_ros")) / "config" / "detector.yaml"
    return executable, params


class DetectorProcess:
    """The `detector` executable in a child process, as `ros2 launch` would start it."""

    def __init__(self, parameters: dict[str, object], log_path: pathlib.Path) -> None:
        executable, params_file = installed_detector()
        command = [str(executable), "--ros-args", "--params-file", str(params_file)]
        for name, value in parameters.items():
            command += ["-p", f"{name}:={_yaml_value(value)}"]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))

    @property
    def pid(self) -> int:
        return self._process.pid

    def running(self) -> bool:
        return self._process.poll() is None

    def send(self, number: int) -> None:
        """Send signal `number` (SIGINT, SIGTERM) if the process still runs."""
        if self.running():
            self._process.send_signal(number)

    def wait(self, timeout_s: float) -> int | None:
        """The exit code once the process has ended, None if it still runs after `timeout_s`."""
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 10.0, number: int = signal.SIGINT) -> int:
        """Signal `number` (SIGINT: as Ctrl-C or launch does), then SIGKILL if it does not end
        in time; the exit code."""
        self.send(number)
        if self.wait(timeout_s) is None:
            self._process.kill()
            self._process.wait()
        self._log.close()
        return self._process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def _yaml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


class Recorder:
    """Keeps every message of one topic with its arrival time on the node's clock (the clock
    that stamps the player's frames), and wakes waiters."""

    def __init__(self, node: Node, message_type, topic: str, qos=10) -> None:
        self.messages: list = []
        self._received_ns: list[int] = []
        self._clock = node.get_clock()
        self._condition = threading.Condition()
        self.subscription = node.create_subscription(message_type, topic, self._store, qos)

    def _store(self, message) -> None:
        received_ns = self._clock.now().nanoseconds
        with self._condition:
            self.messages.append(message)
            self._received_ns.append(received_ns)
            self._condition.notify_all()

    def count(self) -> int:
        with self._condition:
            return len(self.messages)

    def since(self, start: int) -> list[tuple[Any, int]]:
        """(message, arrival in ns) of every message from the `start`-th on, in arrival order."""
        with self._condition:
            return list(zip(self.messages[start:], self._received_ns[start:]))

    def by_stamp(self, stamp: Stamp):
        with self._condition:
            return next((m for m in self.messages if stamp_key(m.header) == stamp), None)

    def wait_for_stamp(self, stamp: Stamp, timeout_s: float):
        """The message answering the frame stamped `stamp`, or None after `timeout_s`."""
        if self.wait_for(lambda _messages: self.by_stamp(stamp) is not None, timeout_s):
            return self.by_stamp(stamp)
        return None

    def wait_for(self, predicate: Callable[[Sequence], bool], timeout_s: float) -> bool:
        """Wait (while another thread spins the node) until predicate(messages) holds."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True


def publish_until_answered(
    publish: Callable[[], object], answers: Recorder, timeout_s: float, retry_s: float = 1.0
):
    """Publish a frame (`publish` returns the message) until an answer with its stamp arrives.

    Best-effort frames sent right after discovery can precede the reader's side of the match
    and be lost; a camera just sends the next frame, and so does this. Returns the answer and
    the message it answers, or (None, None) after `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = publish()
        answer = answers.wait_for_stamp(stamp_key(message.header), retry_s)
        if answer is not None:
            return answer, message
    return None, None


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


class GraspPublishers:
    """The detector's two grasp topics under `namespace`, with a subscriber matched to them so
    that publishing does all it does in the node (build, serialise, send): for timing it."""

    def __init__(self, node: Node, namespace: str) -> None:
        self._best = node.create_publisher(GraspPose, f"{namespace}/{GRASP_TOPIC}", 10)
        self._all = node.create_publisher(GraspPoseArray, f"{namespace}/{GRASPS_TOPIC}", 10)
        node.create_subscription(GraspPoseArray, f"{namespace}/{GRASPS_TOPIC}",
                                 lambda _message: None, 10)

    def publish(self, grasps: Sequence[Grasp], header: Header, num_angle_classes: int) -> None:
        publish_grasps(self._best, self._all, grasps, header, num_angle_classes)


class RosSession:
    """An rclpy context of its own with one node, spun on a background thread unless `spin` is
    False: how the tools play frames to the detector and record its answers. A context manager;
    leaving it stops the thread and shuts the context down."""

    def __init__(self, node_name: str, spin: bool = True) -> None:
        self._context = Context()
        rclpy.init(context=self._context)
        self.node = rclpy.create_node(node_name, context=self._context)
        self._spin = BackgroundSpin(self.node, context=self._context) if spin else None

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, error_type: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._spin is not None:
            self._spin.stop()
        self.node.destroy_node()
        if self._context.ok():
            self._context.shutdown()

    def record_best_grasps(self, topic: str = GRASP_TOPIC) -> Recorder:
        """The best grasp of each frame (`GraspPose`), keyed by its frame's stamp."""
        return Recorder(self.node, GraspPose, topic)

    def record_grasp_arrays(self, topic: str = GRASPS_TOPIC, depth: int = 10) -> Recorder:
        """Every answered frame's grasps (`GraspPoseArray`), keyed by its frame's stamp."""
        return Recorder(self.node, GraspPoseArray, topic, depth)

    def record_heatmaps(self, topic: str = DETECTOR_HEATMAP_TOPIC) -> Recorder:
        """The detector's heatmaps (bgr8 `Image`); subscribing makes an `on_demand` node draw."""
        return Recorder(self.node, Image, topic)

    def record_markers(self, topic: str = DETECTOR_MARKERS_TOPIC) -> Recorder:
        """The detector's gripper markers (`MarkerArray`, with depth); ``markers_for`` finds
        a frame's."""
        return Recorder(self.node, MarkerArray, topic)
