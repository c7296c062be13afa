"""A picture of a 3-D grasp result where RViz cannot run: the depth image as a coloured point
cloud seen from an oblique virtual camera, with the published gripper markers drawn in.

The points come from the depth image and the camera model the node used; the grippers from
the ``~/markers`` message the node published (as 3-D segments), so the picture shows what a
robot would be sent, not a re-computation.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from sgdn_ros.core.camera import CameraModel

VIEW_SIZE = (800, 600)  # width, height
VIEW_FOCAL_PX = 760.0
VIEW_TILT_DEG = -40.0  # the virtual camera swings about the x axis, to look from the front
POINT_STEP = 1  # every pixel becomes a point
BACKGROUND_BGR = (40, 40, 40)

Segment = tuple[np.ndarray, np.ndarray, tuple[int, ...]]


def render_cloud_view(bgr: np.ndarray, depth_m: np.ndarray, camera: CameraModel,
                      segments: Sequence[Segment], tilt_deg: float = VIEW_TILT_DEG) -> np.ndarray:
    """A bgr8 picture of the coloured point cloud with ``segments`` (3-D start, end and BGR
    colour, in the camera's optical frame) drawn over it."""
    rays_x, rays_y = camera.pixel_ray_table()
    rows = slice(0, depth_m.shape[0], POINT_STEP)
    cols = slice(0, depth_m.shape[1], POINT_STEP)
    depth = depth_m[rows, cols]
    valid = np.isfinite(depth) & (depth > 0)
    points = np.stack([rays_x[rows, cols][valid] * depth[valid],
                       rays_y[rows, cols][valid] * depth[valid], depth[valid]], axis=1)
    colours = bgr[rows, cols][valid]
    centre = np.median(points, axis=0)
    angle = np.radians(tilt_deg)
    rotation = np.array([[1.0, 0.0, 0.0],
                         [0.0, np.cos(angle), -np.sin(angle)],
                         [0.0, np.sin(angle), np.cos(angle)]])

    def to_view(xyz: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(xyz) - centre) @ rotation.T + np.array([0.0, 0.0, centre[2]])

    width, height = VIEW_SIZE
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[...] = BACKGROUND_BGR
    viewed = to_view(points)
    far_to_near = np.argsort(-viewed[:, 2])
    cols_px, rows_px = _project(viewed[far_to_near])
    colours = colours[far_to_near]
    for row_shift in (0, 1):
        for col_shift in (0, 1):
            row, col = rows_px + row_shift, cols_px + col_shift
            inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
            canvas[row[inside], col[inside]] = colours[inside]
    for start, end, colour in segments:
        (start_col, end_col), (start_row, end_row) = _project(to_view(np.stack([start, end])))
        cv2.line(canvas, (int(start_col), int(start_row)), (int(end_col), int(end_row)),
                 tuple(int(channel) for channel in colour), 2, cv2.LINE_AA)
    return canvas


def _project(viewed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (cols, rows) of points in the virtual camera's frame."""
    width, height = VIEW_SIZE
    depth = np.maximum(viewed[:, 2], 1e-6)
    cols = np.round(VIEW_FOCAL_PX * viewed[:, 0] / depth + width / 2).astype(np.int64)
    rows = np.round(VIEW_FOCAL_PX * viewed[:, 1] / depth + height / 2).astype(np.int64)
    return cols, rows
