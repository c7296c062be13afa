"""Where the network's input lies in the camera image, the mapping back to image pixels, and
rotations as quaternions (x, y, z, w, as geometry_msgs carries them) and matrices.

Decoded grasps live in network-input pixels; everything a user sees (image pixels, and the 3-D
projection that builds on them) starts from this mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropGeometry:
    """Where the network input lies in the original image."""

    top: int
    left: int
    scale: float
    image_height: int
    image_width: int

    def to_image(self, crop_row: float, crop_col: float) -> tuple[float, float]:
        """Map a pixel (row, col) of the network input to (row, col) in the original image.

        Pixel centres, not corners, are matched, as ``cv2.resize`` does; at scale 1 this is
        just ``crop + origin``.
        """
        return (
            (crop_row + self.top + 0.5) / self.scale - 0.5,
            (crop_col + self.left + 0.5) / self.scale - 0.5,
        )

    def length_to_image(self, crop_length: float) -> float:
        """Map a length in network-input pixels (e.g. a grasp width) to original-image pixels."""
        return crop_length / self.scale


def rotation_from_quaternion(quaternion: Sequence[float]) -> np.ndarray:
    """The 3x3 rotation of a unit quaternion (x, y, z, w); its columns are the rotated axes."""
    x, y, z, w = (float(value) for value in quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def quaternion_from_rotation(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a proper rotation matrix (Shepperd's method: stable at every angle)."""
    m = np.asarray(rotation, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = s / 4
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))
