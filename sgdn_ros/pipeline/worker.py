"""The one thread that owns the inference backend.

A GPU backend's CUDA context is current per thread, so the backend is created, used and
released on this thread only. Camera callbacks hand over frames through a one-slot mailbox: a
frame not yet taken when the next arrives is stale and is replaced, so nothing queues and the
latency stays bounded by one inference. Several cameras share the thread through another
mailbox (``sgdn_ros.pipeline.cameras.CameraScheduler``: one slot per camera, a batch per take).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

Resource = TypeVar("Resource")
Frame = TypeVar("Frame")
Taken = TypeVar("Taken", covariant=True)


class Mailbox(Protocol[Taken]):
    """Where the worker waits for work: ``take`` blocks until there is some, None once closed."""

    def take(self) -> Taken | None: ...

    def close(self) -> None: ...


class LatestFrameSlot(Generic[Frame]):
    """Holds at most one frame; putting a new one replaces (drops) the waiting one."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False

    def put(self, frame: Frame) -> bool:
        """Store `frame`; return True when it replaced a frame nobody had taken."""
        with self._condition:
            replaced = self._frame is not None
            self._frame = frame
            self._condition.notify()
            return replaced

    def take(self) -> Frame | None:
        """Wait for a frame; None once the slot is closed."""
        with self._condition:
            while self._frame is None and not self._closed:
                self._condition.wait()
            frame, self._frame = self._frame, None
            return None if self._closed else frame

    def clear(self) -> bool:
        """Drop the waiting frame, if any; return whether there was one."""
        with self._condition:
            had_frame = self._frame is not None
            self._frame = None
            return had_frame

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._frame = None
            self._condition.notify_all()


class InferenceWorker(Generic[Resource, Frame]):
    """Runs `load` on its own thread, then `handle(resource, frame)` for each newest frame.

    `start` blocks until `load` has finished and re-raises its exception, so a lifecycle
    transition can fail with the real reason. `stop` closes the resource on the same thread.
    Frames come through `submit` into a `LatestFrameSlot`, or from the `mailbox` given (whose
    owner puts them in; `submit` and `discard_pending` are then not used).
    """

    def __init__(
        self,
        load: Callable[[], Resource],
        handle: Callable[[Resource, Frame], None],
        close: Callable[[Resource], None],
        name: str = "sgdn-inference",
        mailbox: Mailbox[Frame] | None = None,
    ) -> None:
        self._load = load
        self._handle = handle
        self._close = close
        self._slot: LatestFrameSlot[Frame] = LatestFrameSlot()
        self._mailbox: Mailbox[Frame] = self._slot if mailbox is None else mailbox
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._resource: Resource | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._loaded.wait()
        if self._load_error is not None:
            self._thread.join()
            raise self._load_error

    def submit(self, frame: Frame) -> bool:
        """Hand over the newest frame; return True when a stale frame was dropped for it."""
        return self._slot.put(frame)

    def discard_pending(self) -> bool:
        return self._slot.clear()

    def stop(self) -> None:
        self._mailbox.close()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def resource(self) -> Resource:
        """What `load` returned: for reading its description and swapping settings; only the
        worker thread runs it."""
        if self._resource is None:
            raise RuntimeError("the inference worker has not loaded anything; call start() first")
        return self._resource

    def _run(self) -> None:
        try:
            resource = self._load()
        except BaseException as error:  # handed to start(), which re-raises it
            self._load_error = error
            self._loaded.set()
            return
        self._resource = resource
        self._loaded.set()
        try:
            while (frame := self._mailbox.take()) is not None:
                self._handle(resource, frame)
        finally:
            self._close(resource)
