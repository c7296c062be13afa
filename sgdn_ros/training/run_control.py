"""What lets a long training run be stopped and followed: stop signals and the per-step loss log.

Batch systems end jobs with SIGTERM and people with Ctrl-C; either way the run should finish its
step and save (``StopSignals``), and the losses so far should already be on disk (``LossLog``).
"""

from __future__ import annotations

import csv
import pathlib
import signal
import threading
from types import FrameType, TracebackType

import torch

from sgdn_ros.training.losses import LossParts


class StopSignals:
    """SIGINT and SIGTERM ask the loop to stop after the current step; a second one stops at once.

    Handlers can only be installed from the main thread; elsewhere signals keep their handlers.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        print(f"train: {self.received} received, stopping after this step "
              "(send it again to stop at once)", flush=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class LossLog:
    """losses.csv, one row per step. Step losses stay on the device until a log line is due,
    so the GPU is synchronised once per ``log_every`` steps, not every step."""

    COLUMNS = ("step", "loss", "able", "angle", "width", "learning_rate")

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.COLUMNS)
        self._pending: list[tuple[int, float, torch.Tensor]] = []
        self.totals: list[float] = []

    def add(self, step: int, learning_rate: float, parts: LossParts) -> None:
        values = torch.stack([parts.total, parts.able, parts.angle, parts.width]).detach()
        self._pending.append((step, learning_rate, values))

    def flush(self) -> list[float] | None:
        """Write pending rows; return the last step's (loss, able, angle, width), if any."""
        if not self._pending:
            return None
        rows = torch.stack([values for _, _, values in self._pending]).cpu().tolist()
        for (step, learning_rate, _), losses in zip(self._pending, rows):
            self._writer.writerow([step, *(f"{value:.6g}" for value in losses),
                                   f"{learning_rate:.6g}"])
            self.totals.append(losses[0])
        self._pending.clear()
        self._file.flush()
        return rows[-1]

    def close(self) -> None:
        self.flush()
        self._file.close()
