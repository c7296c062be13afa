"""Where the network's input lies in the camera image, and the mapping back to image pixels.

Decoded grasps live in network-input pixels; everything a user sees (image pixels, and the 3-D
projection that builds on them) starts from this mapping.
"""

from __future__ import annotations

from dataclasses import dataclass


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
