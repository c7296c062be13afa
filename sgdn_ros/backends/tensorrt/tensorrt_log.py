"""The process's TensorRT logger. TensorRT expects a single logger per process, yet each build
or deserialization wants its own errors, to explain a failure in one line, and its messages
forwarded to the caller's log: ``capture`` gives a call both for its duration.

Outside a capture (an engine running frame after frame) errors and warnings still reach a log:
stderr, since no caller is waiting on them; the errors are also kept, a bounded number, so that
a failed call can name TensorRT's reason (``take_errors``)."""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence

from sgdn_ros.backends.tensorrt.module import TensorRTModule

Logger = Callable[[str], None]

KEPT_ERRORS = 32          # per capture, or between two take_errors calls; the first ones explain
_ERROR_TEXT_LIMIT = 400
_TENSORRT_LOGS: dict[types.ModuleType, object] = {}  # the process's logger per imported module


def tensorrt_log(trt: TensorRTModule):
    """The process's one TensorRT logger for this module (TensorRT expects a single logger)."""
    if trt.module not in _TENSORRT_LOGS:
        _TENSORRT_LOGS[trt.module] = _make_tensorrt_log(trt.module)
    return _TENSORRT_LOGS[trt.module]


def print_to_stderr(line: str) -> None:
    """Where TensorRT's messages go when no call captures them."""
    print(line, file=sys.stderr, flush=True)


def _make_tensorrt_log(module: types.ModuleType):
    severity = module.ILogger.Severity
    labels = {int(severity.INTERNAL_ERROR): "internal error", int(severity.ERROR): "error",
              int(severity.WARNING): "warning"}
    errors_at_most = int(severity.ERROR)

    class CollectingLog(module.ILogger):
        """Keeps errors to explain a failure; forwards errors and warnings to a log."""

        def __init__(self) -> None:
            module.ILogger.__init__(self)
            self._lock = threading.Lock()
            self._errors: list[str] = []
            self._forward: Logger = print_to_stderr

        def log(self, level, message: str) -> None:
            label = labels.get(int(level))
            with self._lock:
                if int(level) <= errors_at_most and len(self._errors) < KEPT_ERRORS:
                    self._errors.append(message)
                forward = self._forward
            if label is not None:
                forward(f"TensorRT {label}: {message}")

        def take_errors(self) -> list[str]:
            """The errors kept since the last capture or take, which this call forgets."""
            with self._lock:
                errors, self._errors = self._errors, []
            return errors

        @contextlib.contextmanager
        def capture(self, forward: Logger) -> Iterator[list[str]]:
            with self._lock:
                self._errors, self._forward = [], forward
            try:
                yield self._errors
            finally:
                with self._lock:
                    self._errors, self._forward = [], print_to_stderr

    return CollectingLog()


def explained(errors: Sequence[str]) -> str:
    """TensorRT's first error message, shortened for one log line."""
    text = errors[0] if errors else "TensorRT gave no reason"
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "..."
