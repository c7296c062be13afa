"""The Cornell Grasping Dataset's files, for users who have a copy.

Each sample is ``pcdNNNNr.png`` (the colour image, 640 x 480), ``pcdNNNNcpos.txt`` (the
positive grasp rectangles), ``pcdNNNNcneg.txt`` (negatives, not used here) and optionally
``pcdNNNNd.tiff`` (depth). A rectangle file holds four lines per rectangle, each ``x y``
(column, row) of one corner. A few rectangles have ``NaN`` coordinates; they are skipped, as
are rectangles without area.

Which edge is the finger line: corners 0 -> 1 (and 2 -> 3) run along the gripper's opening
direction, 1 -> 2 along the jaw. This is how GG-CNN's and GR-ConvNet's readers take the data
set (their grasp angle and opening come from edge 0 -> 1, the rectangle's "length"), and their
published Cornell accuracies are measured against rectangles read that way. So ``angle`` =
direction of 0 -> 1 (project convention: counter-clockwise on screen from +x, modulo pi),
``width`` = |p1 - p0|, ``height`` = |p2 - p1|, centre = mean of the four corners.
``GraspRectangle.corners`` writes corners in this same order.

``load_cornell_sample`` cuts the image as the node does before inference (the published
centre crop, ``sgdn_ros.core.preprocessing``), so a network evaluated on these samples sees what it
sees when deployed.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from os import PathLike

import cv2
import numpy as np

from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.preprocessing import PreprocessConfig, crop_bgr
from sgdn_ros.training.grasp_rectangles import GraspRectangle
from sgdn_ros.training.grasp_scenes import GraspScene

POSITIVE_SUFFIX = "cpos.txt"
IMAGE_SUFFIX = "r.png"
DEPTH_SUFFIX = "d.tiff"


class CornellFormatError(ValueError):
    """A Cornell file that cannot be read as the data set's format."""


@dataclass(frozen=True)
class CornellSample:
    """The files of one Cornell sample."""

    image_path: pathlib.Path
    positive_path: pathlib.Path
    depth_path: pathlib.Path | None


def read_cornell_rectangles(path: str | PathLike[str]) -> list[GraspRectangle]:
    """The rectangles of a ``cpos.txt`` or ``cneg.txt`` file, in image pixels (module
    docstring: corner order and angle)."""
    path = pathlib.Path(path)
    corners = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            x, y = float(fields[0]), float(fields[1])
        except ValueError:
            raise CornellFormatError(
                f"{path}:{number}: expected two numbers 'x y' (a rectangle corner), got "
                f"{line.strip()!r}") from None
        corners.append((y, x))
    if len(corners) % 4:
        raise CornellFormatError(
            f"{path} has {len(corners)} corner lines, not a multiple of 4 (four per rectangle); "
            "the file is truncated or not a Cornell rectangle file")
    rectangles = []
    for first in range(0, len(corners), 4):
        rectangle = _rectangle_from_corners(np.array(corners[first:first + 4]))
        if rectangle is not None:
            rectangles.append(rectangle)
    return rectangles


def find_cornell_samples(root: str | PathLike[str]) -> list[CornellSample]:
    """Every sample under ``root`` (searched recursively: the data set comes in folders 01 to
    10), sorted by path."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Cornell data set folder {root} does not exist")
    samples = []
    for positive in sorted(root.rglob(f"pcd*{POSITIVE_SUFFIX}")):
        stem = positive.name[:-len(POSITIVE_SUFFIX)]
        image = positive.with_name(stem + IMAGE_SUFFIX)
        if not image.is_file():
            raise CornellFormatError(
                f"{positive} has no image {image.name} beside it; restore the missing file or "
                "remove the sample")
        depth = positive.with_name(stem + DEPTH_SUFFIX)
        samples.append(CornellSample(image_path=image, positive_path=positive,
                                     depth_path=depth if depth.is_file() else None))
    if not samples:
        raise FileNotFoundError(
            f"no Cornell samples (pcd*{POSITIVE_SUFFIX} files) under {root}; point to the "
            "folder that holds the extracted data set")
    return samples


def load_cornell_sample(sample: CornellSample, output_size: int = 320) -> GraspScene:
    """The sample's centre crop (``output_size`` square) and its positive rectangles moved into
    it; rectangles whose centre falls outside the crop are left out. ``objects`` is empty."""
    image = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise CornellFormatError(f"cannot read {sample.image_path} as an image")
    config = PreprocessConfig(input_height=output_size, input_width=output_size)
    crop, geometry = crop_bgr(image, config)
    rectangles = []
    for rectangle in read_cornell_rectangles(sample.positive_path):
        moved = _into_crop(rectangle, geometry)
        if 0 <= moved.row <= output_size - 1 and 0 <= moved.col <= output_size - 1:
            rectangles.append(moved)
    return GraspScene(image=crop, objects=(), rectangles=tuple(rectangles))


def _rectangle_from_corners(corners: np.ndarray) -> GraspRectangle | None:
    """A rectangle from (4, 2) (row, col) corners in Cornell's order; None for NaN corners or
    a rectangle without area."""
    if not np.isfinite(corners).all():
        return None
    finger_line = corners[1] - corners[0]
    width = float(np.hypot(*finger_line))
    height = float(np.hypot(*(corners[2] - corners[1])))
    if width == 0.0 or height == 0.0:
        return None
    angle = math.atan2(-finger_line[0], finger_line[1]) % math.pi
    if angle >= math.pi:  # a tiny negative angle rounds up to pi
        angle = 0.0
    row, col = corners.mean(axis=0)
    return GraspRectangle(row=float(row), col=float(col), angle=angle, width=width, height=height)


def _into_crop(rectangle: GraspRectangle, geometry: CropGeometry) -> GraspRectangle:
    """The rectangle in crop pixels: the inverse of ``CropGeometry.to_image``."""
    scale = geometry.scale
    return GraspRectangle(
        row=(rectangle.row + 0.5) * scale - 0.5 - geometry.top,
        col=(rectangle.col + 0.5) * scale - 0.5 - geometry.left,
        angle=rectangle.angle, width=rectangle.width * scale, height=rectangle.height * scale)
