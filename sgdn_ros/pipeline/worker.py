"""The one thread that owns the inference backend.

A GPU backend's CUDA context is current per thread, so the backend is created, used and
released on this thread only. Camera callbacks hand over frames through a mailbox, the
node's being ``sgdn_ros.pipeline.cameras.CameraScheduler``: one slot per camera, where a frame
not yet taken when the next arrives is stale and is replaced, so nothing queues and the latency
stays bounded by one inference; the thread takes a batch at a time.
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


class InferenceWorker(Generic[Resource, Frame]):
    """Runs `load` on its own thread, then `handle(resource, frame)` for each newest frame.

    `start` blocks until `load` has finished and re-raises its exception, so a lifecycle
    transition can fail with the real reason. `stop` closes the resource on the same thread.
    Frames come from `mailbox`, whose owner puts them in.
    """

    def __init__(
        self,
        load: Callable[[], Resource],
        handle: Callable[[Resource, Frame], None],
        close: Callable[[Resource], None],
        mailbox: Mailbox[Frame],
        name: str = "sgdn-inference",
    ) -> None:
        self._load = load
        self._handle = handle
        self._close = close
        self._mailbox = mailbox
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
