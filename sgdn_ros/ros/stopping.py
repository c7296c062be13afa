"""How the detector process learns that it should stop: SIGINT (Ctrl-C, `ros2 launch`), SIGTERM
(`kill`, systemd, docker) or the node's lifecycle shutdown transition.

rclpy's own signal handlers shut the context down at once, from the signal, while the inference
thread may still be publishing and a timer may still fire: the publish then fails ("publisher's
context is invalid") and the spin raises. So rclpy installs none here (`SignalHandlerOptions.NO`,
in rclpy since Humble) and a signal only records the request; the spin loop sees it within
`POLL_S`, and the node is brought down in order while the context is still valid.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

from rclpy.executors import Executor

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Python runs a signal handler only between bytecodes of the main thread, so the spin must come
# back from its wait this often to notice one.
POLL_S = 0.1


class StopRequest:
    """The first reason to stop (a signal's name, or a word from the node), or None.

    The handler only assigns an attribute: it runs inside whatever the main thread was doing,
    so it must not take a lock that code may hold.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (call before rclpy.init)."""
        for number in STOP_SIGNALS:
            signal.signal(number, self._on_signal)

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def _on_signal(self, number: int, _frame: FrameType | None) -> None:
        self.request(signal.Signals(number).name)


def spin_until(executor: Executor, stopped: Callable[[], bool], poll_s: float = POLL_S) -> None:
    """Run callbacks until `stopped()`; checked at least every `poll_s` seconds."""
    while not stopped():
        executor.spin_once(timeout_sec=poll_s)
