"""The process's TensorRT logger. TensorRT expects a single logger per process, yet each build
or deserialization wants its own errors, to explain a failure in one line, and its warnings
forwarded to the caller's log: ``capture`` gives a call both for its duration."""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Callable, Iterator, Sequence

from sgdn_ros.backends.tensorrt.module import TensorRTModule

Logger = Callable[[str], None]

_ERROR_TEXT_LIMIT = 400
_TENSORRT_LOGS: dict[str, object] = {}  # module name -> the process's TensorRT logger


def tensorrt_log(trt: TensorRTModule):
    """The process's one TensorRT logger for this module (TensorRT expects a single logger)."""
    if trt.name not in _TENSORRT_LOGS:
        _TENSORRT_LOGS[trt.name] = _make_tensorrt_log(trt.module)
    return _TENSORRT_LOGS[trt.name]


def _make_tensorrt_log(module: types.ModuleType):
    severity = module.ILogger.Severity
    errors_at_most = int(severity.ERROR)
    warning = int(severity.WARNING)

    class CollectingLog(module.ILogger):
        """Collects errors for the exception that explains a failure; forwards warnings."""

        def __init__(self) -> None:
            module.ILogger.__init__(self)
            self._lock = threading.Lock()
            self._errors: list[str] = []
            self._forward: Logger | None = None

        def log(self, level, message: str) -> None:
            with self._lock:
                if int(level) <= errors_at_most:
                    self._errors.append(message)
                forward = self._forward if int(level) == warning else None
            if forward is not None:
                forward(f"TensorRT warning: {message}")

        @contextlib.contextmanager
        def capture(self, forward: Logger) -> Iterator[list[str]]:
            with self._lock:
                self._errors, self._forward = [], forward
            try:
                yield self._errors
            finally:
                with self._lock:
                    self._forward = None

    return CollectingLog()


def explained(errors: Sequence[str]) -> str:
    """TensorRT's first error message, shortened for one log line."""
    text = errors[0] if errors else "TensorRT gave no reason"
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "..."
