"""Several cameras through one model: the camera list, one newest-frame slot per camera, and
the scheduler that hands the inference thread one batch at a time.

Each camera keeps only its newest frame (a frame not yet taken when the next arrives from the
same camera is stale and dropped, as with one camera), so nothing queues. The inference thread
takes the waiting frames of up to ``max_batch`` cameras at once, for one ``detect_batch``: every
waiting camera when the model takes that many frames, else the next ones in round-robin order
after the last camera served, so a camera waits at most ``ceil(cameras / max_batch)`` batches
and none starves. Plain Python, so the node's layer only wires topics to it.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sgdn_ros.pipeline.detector import CameraImage, DepthImage, Detection, GraspDetector
from sgdn_ros.pipeline.settings import DetectorSettings

Frame = TypeVar("Frame")

# The single camera of a node without a camera list: its topics are the node's own
# (image_raw, grasp, ~/heatmap), as before cameras existed.
NODE_CAMERA = ""
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def camera_names(cameras: Sequence[str]) -> tuple[str, ...]:
    """The cameras of a ``cameras`` parameter value: each name a relative ROS namespace
    (``left``, ``arm/wrist``) under which that camera's topics live; an empty list is the one
    camera on the node's own topics (``NODE_CAMERA``). ValueError naming the bad entry."""
    names = tuple(cameras)
    if not names:
        return (NODE_CAMERA,)
    for name in names:
        problem = _name_problem(name)
        if problem is not None:
            raise ValueError(
                f"cameras: {name!r} {problem}; give each camera a relative ROS namespace such "
                "as left or arm/wrist (letters, digits and _, tokens not starting with a "
                "digit, separated by /)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"cameras: {', '.join(duplicates)} listed more than once; each camera "
                         "needs a namespace of its own")
    return names


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "is not a string"
    if not name:
        return "is empty"
    if name.startswith(("/", "~")):
        return "is not relative (it must not start with / or ~)"
    for token in name.split("/"):
        if not _TOKEN.fullmatch(token):
            return f"has an invalid token {token!r}"
    return None


def camera_topic(camera: str, topic: str) -> str:
    """``topic`` under ``camera``'s namespace: ``grasp`` -> ``left/grasp``, ``~/heatmap`` ->
    ``~/left/heatmap``; the node's own camera and absolute topics (``/diagnostics``) as given."""
    if camera == NODE_CAMERA or topic.startswith("/"):
        return topic
    if topic.startswith("~/"):
        return f"~/{camera}/{topic[2:]}"
    return f"{camera}/{topic}"


def batch_size(requested: int, cameras: int) -> int:
    """Frames per inference: ``requested`` (the ``max_batch`` parameter), 0 meaning one per
    camera; never more than the cameras, as a batch holds at most one frame of each."""
    if requested < 0:
        raise ValueError(f"max_batch must be >= 0 (0: one frame per camera), got {requested}")
    return cameras if requested == 0 else min(requested, cameras)


def batched_settings(settings: DetectorSettings, max_batch: int) -> DetectorSettings:
    """``settings`` with the backend loaded for batches of ``max_batch`` frames (a model of
    static batch 1 still takes one: its ``info.max_batch`` says what it takes)."""
    return dataclasses.replace(settings, backend_options=dataclasses.replace(
        settings.backend_options, max_batch=max_batch))


def detect_each(detector: GraspDetector, images: Sequence[CameraImage | None],
                depths: Sequence[DepthImage | None]) -> list[Detection | Exception]:
    """Each frame's detection, all frames in one ``detect_batch``; when that fails, each frame
    alone, so one camera's bad frame costs that camera its answer, not the others theirs. A
    frame's failure comes back as its exception, in its place."""
    try:
        return list(detector.detect_batch(images, depths))
    except Exception as error:  # noqa: BLE001 - retried frame by frame, or handed back
        if len(images) == 1:
            return [error]
    results: list[Detection | Exception] = []
    for image, depth_m in zip(images, depths):
        try:
            results.append(detector.detect_batch([image], [depth_m])[0])
        except Exception as error:  # noqa: BLE001 - handed back as this frame's result
            results.append(error)
    return results


@dataclass(frozen=True)
class CameraFrame(Generic[Frame]):
    """A frame and the index (in the camera list) of the camera it came from."""

    camera: int
    frame: Frame


class CameraScheduler(Generic[Frame]):
    """One newest-frame slot per camera and a fair take of up to ``max_batch`` of them.

    Safe to use from several threads: cameras ``put`` from their callbacks, one inference
    thread ``take``s.
    """

    def __init__(self, cameras: int, max_batch: int) -> None:
        if cameras < 1 or max_batch < 1:
            raise ValueError(f"need at least one camera and a batch of at least one frame, got "
                             f"{cameras} camera(s) and max_batch {max_batch}")
        self.cameras = cameras
        self.max_batch = max_batch
        self._condition = threading.Condition()
        self._slots: list[Frame | None] = [None] * cameras
        self._next = 0  # the camera the next round-robin scan starts from
        self._closed = False

    def put(self, camera: int, frame: Frame) -> bool:
        """Store ``camera``'s newest frame; True when it replaced one not yet taken (dropped)."""
        with self._condition:
            replaced = self._slots[camera] is not None
            self._slots[camera] = frame
            self._condition.notify()
            return replaced

    def limit_batch(self, model_max_batch: int) -> None:
        """Take no more frames at once than the loaded model takes (1 for a static batch)."""
        with self._condition:
            self.max_batch = max(1, min(self.max_batch, model_max_batch))

    def take(self) -> list[CameraFrame[Frame]] | None:
        """Wait until a camera has a frame, then take the frames of up to ``max_batch``
        cameras, in round-robin order from the camera after the last one served; None once
        closed."""
        with self._condition:
            while not self._closed and all(frame is None for frame in self._slots):
                self._condition.wait()
            if self._closed:
                return None
            batch: list[CameraFrame[Frame]] = []
            for step in range(self.cameras):
                camera = (self._next + step) % self.cameras
                frame = self._slots[camera]
                if frame is None:
                    continue
                batch.append(CameraFrame(camera, frame))
                self._slots[camera] = None
                if len(batch) == self.max_batch:
                    break
            self._next = (batch[-1].camera + 1) % self.cameras
            return batch

    def pending(self) -> list[int]:
        """The cameras with a frame waiting."""
        with self._condition:
            return [camera for camera, frame in enumerate(self._slots) if frame is not None]

    def clear(self) -> list[int]:
        """Drop every waiting frame; return the cameras that had one."""
        with self._condition:
            had = [camera for camera, frame in enumerate(self._slots) if frame is not None]
            self._slots = [None] * self.cameras
            return had

    def close(self) -> None:
        """Drop the waiting frames and wake the taker, which then gets None."""
        with self._condition:
            self._closed = True
            self._slots = [None] * self.cameras
            self._condition.notify_all()
