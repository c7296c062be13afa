"""The colour camera's intrinsics, as ``sensor_msgs/CameraInfo`` gives them, without ROS.

Pixels become metres only through the camera: the author hard-coded one camera's focal length
and centre; here every frame's camera_info is used, with its lens distortion, so the same code
serves any calibrated camera. Rays are undistorted only when the lens is distorted, so a
rectified or distortion-free camera pays nothing for it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import cv2
import numpy as np

DISTORTION_MODELS = ("", "plumb_bob", "rational_polynomial", "equidistant")
# Coefficients each model takes in camera_info's D; an empty D means no distortion in any.
_DISTORTION_LENGTHS = {"": (0,), "plumb_bob": (0, 5), "rational_polynomial": (0, 8),
                       "equidistant": (0, 4)}
# Iterating undistortion to convergence keeps project() and normalized_rays() inverse to
# well below 0.01 px; OpenCV's default (5 iterations) can leave tenths of a pixel.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


class CameraModelError(ValueError):
    """Camera intrinsics that cannot describe a calibrated camera."""


@dataclass(frozen=True)
class CameraModel:
    """A camera's image size, 3x3 matrix K (row-major), distortion and frame, as in
    ``sensor_msgs/CameraInfo``; ``k`` and ``d`` are stored as tuples of floats."""

    width: int
    height: int
    k: tuple[float, ...]
    distortion_model: str = ""
    d: tuple[float, ...] = ()
    frame_id: str = ""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
                raise CameraModelError(
                    f"camera {name} must be a positive integer, got {value!r}; camera_info "
                    "must describe the image it comes with")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "k", _finite_floats("K", self.k))
        object.__setattr__(self, "d", _finite_floats("D", self.d))
        if len(self.k) != 9:
            raise CameraModelError(f"K must have 9 values (3x3, row-major), got {len(self.k)}")
        if not (self.fx > 0 and self.fy > 0):
            raise CameraModelError(
                f"focal lengths must be positive, got fx {self.fx}, fy {self.fy}; a K of zeros "
                "means the camera is not calibrated: calibrate it (camera_calibration) or use "
                "a driver that publishes its factory intrinsics")
        if (self.k[1], self.k[3], self.k[6], self.k[7], self.k[8]) != (0.0, 0.0, 0.0, 0.0, 1.0):
            raise CameraModelError(
                f"K must be [fx 0 cx, 0 fy cy, 0 0 1] (no skew), got {list(self.k)}")
        lengths = _DISTORTION_LENGTHS.get(self.distortion_model)
        if lengths is None:
            raise CameraModelError(
                f"unknown distortion model {self.distortion_model!r}; supported: "
                f"{', '.join(repr(model) for model in DISTORTION_MODELS)} (rectify the image "
                "with image_proc for other models)")
        if len(self.d) not in lengths:
            raise CameraModelError(
                f"distortion model {self.distortion_model!r} takes {lengths[-1]} coefficients "
                f"in D (or none), got {len(self.d)}")

    @property
    def fx(self) -> float:
        return self.k[0]

    @property
    def fy(self) -> float:
        return self.k[4]

    @property
    def cx(self) -> float:
        return self.k[2]

    @property
    def cy(self) -> float:
        return self.k[5]

    @property
    def is_distorted(self) -> bool:
        return any(coefficient != 0.0 for coefficient in self.d)

    def normalized_rays(self, cols: np.ndarray, rows: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Undistorted normalized coordinates (x = X/Z, y = Y/Z) of pixel positions, as float64
        arrays of the inputs' shape: the point at depth Z seen there is (x Z, y Z, Z)."""
        cols = np.asarray(cols, dtype=np.float64)
        rows = np.asarray(rows, dtype=np.float64)
        if not self.is_distorted:
            return (cols - self.cx) / self.fx, (rows - self.cy) / self.fy
        pixels = np.stack(np.broadcast_arrays(cols, rows), axis=-1)
        shape = pixels.shape[:-1]
        if pixels.size == 0:
            return np.zeros(shape), np.zeros(shape)
        distorted = pixels.reshape(-1, 1, 2)
        matrix, coefficients = self.matrix(), np.asarray(self.d)
        if self.distortion_model == "equidistant":
            undistorted = cv2.fisheye.undistortPoints(distorted, matrix, coefficients,
                                                      criteria=_UNDISTORT_CRITERIA)
        else:
            undistorted = cv2.undistortPoints(distorted, matrix, coefficients,
                                              criteria=_UNDISTORT_CRITERIA)
        return undistorted[:, 0, 0].reshape(shape), undistorted[:, 0, 1].reshape(shape)

    def pixel_ray_table(self) -> tuple[np.ndarray, np.ndarray]:
        """``normalized_rays`` of every pixel centre, as read-only (height, width) float32
        arrays (x, y): made once per camera (by value) and shared, so a pixel's ray costs a
        lookup, distorted or not."""
        return _ray_table(self)

    def project(self, points_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (cols, rows) of 3-D points (..., 3) in the optical frame, with the lens
        distortion applied; points must lie in front of the camera (z > 0)."""
        points = np.asarray(points_xyz, dtype=np.float64)
        if points.shape[-1:] != (3,):
            raise ValueError(f"expected points of shape (..., 3), got {points.shape}")
        shape = points.shape[:-1]
        if not self.is_distorted or points.size == 0:
            x, y = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
            return self.fx * x + self.cx, self.fy * y + self.cy
        objects = points.reshape(-1, 1, 3)
        no_motion = np.zeros(3)
        matrix, coefficients = self.matrix(), np.asarray(self.d)
        if self.distortion_model == "equidistant":
            pixels, _ = cv2.fisheye.projectPoints(objects, no_motion, no_motion, matrix,
                                                  coefficients)
        else:
            pixels, _ = cv2.projectPoints(objects, no_motion, no_motion, matrix, coefficients)
        return pixels[:, 0, 0].reshape(shape), pixels[:, 0, 1].reshape(shape)

    def matrix(self) -> np.ndarray:
        """K as a (3, 3) float64 array, as OpenCV takes it."""
        return np.asarray(self.k, dtype=np.float64).reshape(3, 3)


def camera_model_from_message(message) -> CameraModel:
    """A ``sensor_msgs/CameraInfo`` (or anything with its fields) as a ``CameraModel``."""
    return CameraModel(width=int(message.width), height=int(message.height),
                       k=tuple(message.k), distortion_model=str(message.distortion_model),
                       d=tuple(message.d), frame_id=str(message.header.frame_id))


def _finite_floats(name: str, values: Sequence[float]) -> tuple[float, ...]:
    try:
        floats = tuple(float(value) for value in values)
    except (TypeError, ValueError) as error:
        raise CameraModelError(f"{name} must be a sequence of numbers, got {values!r}") from error
    if not all(math.isfinite(value) for value in floats):
        raise CameraModelError(f"{name} must hold finite numbers, got {list(floats)}")
    return floats


@functools.lru_cache(maxsize=4)
def _ray_table(camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:camera.height, 0:camera.width]
    tables = tuple(ray.astype(np.float32) for ray in camera.normalized_rays(cols, rows))
    for table in tables:
        table.flags.writeable = False
    return tables
