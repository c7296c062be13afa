"""The bench's RGB-D camera: a RealSense-like colour camera looking straight down at the tray.

pybullet renders through an OpenGL projection; here that projection is built from the camera's
own K (not from a field of view), so that a point the renderer draws at pixel (u, v) is the
point the node's ``CameraModel.project`` puts there: the node and the simulator agree on every
pixel. Depth is the z of the hit point in the optical frame (linearised from the z-buffer), as
an aligned depth image gives it.

Frames: the camera sits at (0, 0, height) in the world looking down -z; its optical frame has
x = world x, y = world -y, z = world -z (REP 103: x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sgdn_ros.core.camera import CameraModel

NEAR_M, FAR_M = 0.05, 3.0
OPTICAL_FROM_WORLD = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class RgbdFrame:
    """One render: colour (H, W, 3) uint8 BGR, true depth (H, W) float32 metres (inf where no
    surface), and the pybullet body id seen at each pixel (-1 for none)."""

    bgr: np.ndarray
    depth_m: np.ndarray
    body_ids: np.ndarray


class TopDownCamera:
    """``model``'s intrinsics, ``height_m`` above the tray floor, looking straight down."""

    def __init__(self, model: CameraModel, height_m: float) -> None:
        if model.d and any(model.d):
            raise ValueError("the simulated camera renders without lens distortion: give a "
                             "CameraModel with all-zero or empty D")
        self.model = model
        self.height_m = float(height_m)
        self.position = np.array([0.0, 0.0, self.height_m])
        self._projection = _opengl_projection(model)
        self._view = _opengl_view(self.position)

    def render(self, p, client: int) -> RgbdFrame:
        """Render the world of pybullet server ``client`` (CPU renderer; headless)."""
        width, height = self.model.width, self.model.height
        _, _, rgba, zbuffer, segmentation = p.getCameraImage(
            width, height, viewMatrix=self._view, projectionMatrix=self._projection,
            renderer=p.ER_TINY_RENDERER, lightDirection=[0.3, -0.5, 1.0], shadow=1,
            physicsClientId=client)
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
        zbuffer = np.asarray(zbuffer, dtype=np.float64).reshape(height, width)
        depth = FAR_M * NEAR_M / (FAR_M - (FAR_M - NEAR_M) * zbuffer)
        depth = np.where(zbuffer >= 1.0, np.inf, depth).astype(np.float32)
        body_ids = np.asarray(segmentation, dtype=np.int64).reshape(height, width)
        body_ids = np.where(body_ids < 0, -1, body_ids & ((1 << 24) - 1)).astype(np.int32)
        return RgbdFrame(np.ascontiguousarray(rgba[:, :, 2::-1]), depth, body_ids)

    def to_world(self, points_optical: np.ndarray) -> np.ndarray:
        """(..., 3) points in the optical frame -> world."""
        return np.asarray(points_optical) @ OPTICAL_FROM_WORLD + self.position

    def to_optical(self, points_world: np.ndarray) -> np.ndarray:
        return (np.asarray(points_world) - self.position) @ OPTICAL_FROM_WORLD

    def rotation_to_world(self, rotation_optical: np.ndarray) -> np.ndarray:
        """A 3x3 orientation given in the optical frame, expressed in the world."""
        return OPTICAL_FROM_WORLD @ rotation_optical


def _opengl_projection(model: CameraModel) -> list[float]:
    """OpenGL's clip-space projection for K: pixel centres at integer (u, v), row 0 on top."""
    width, height = model.width, model.height
    fx, fy, cx, cy = model.fx, model.fy, model.cx, model.cy
    matrix = np.array([
        [2.0 * fx / width, 0.0, 1.0 - 2.0 * (cx + 0.5) / width, 0.0],
        [0.0, 2.0 * fy / height, 2.0 * (cy + 0.5) / height - 1.0, 0.0],
        [0.0, 0.0, -(FAR_M + NEAR_M) / (FAR_M - NEAR_M), -2.0 * FAR_M * NEAR_M / (FAR_M - NEAR_M)],
        [0.0, 0.0, -1.0, 0.0]])
    return matrix.T.reshape(-1).tolist()  # OpenGL reads column-major


def _opengl_view(position: np.ndarray) -> list[float]:
    """World -> OpenGL eye coordinates (x right, y up, z backwards): with the optical frame
    above, only a translation."""
    matrix = np.eye(4)
    matrix[:3, 3] = -position
    return matrix.T.reshape(-1).tolist()
