"""The maps SGDN trains on, drawn from grasp rectangles (as AFFGA-Net's labels).

Decoding takes the peaks of the able map and reads the angle class and width there, so the
labels say, per pixel: is a grasp centred here (able), at which angles (angle: multi-hot over
the K classes), with which opening (width, per class, as a fraction of ``max_width_px``).

What is positive: every pixel within ``centre_radius_px`` of a rectangle's centre, and of the
segment between two rectangles that continue each other: the same angle, centres offset along
the jaw direction (not along the finger line, to within half a pixel) by no more than the
smaller jaw size. Such rectangles overlap, so sliding the gripper from one to the other stays a
valid grasp; the generated scenes place their rectangles this way along each object's axis,
which makes the positives a thin band along it. Along the band the width is interpolated
between the two rectangles. Where grasps of one class overlap the widest opening is kept, since
a wider opening still closes on the object; openings beyond ``max_width_px`` are stored as 1
(the network's sigmoid cannot say more).
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sgdn_ros.core.checks import require_int
from sgdn_ros.training.grasp_rectangles import GraspRectangle

_SAME_LINE_TOLERANCE_PX = 0.5


@dataclass(frozen=True, eq=False)
class LabelMaps:
    """Training targets for one image: ``able`` (H, W), ``angle`` and ``width`` (K, H, W),
    all float32; ``width`` is non-zero only at (valid class, positive pixel)."""

    able: np.ndarray
    angle: np.ndarray
    width: np.ndarray


def angle_class(angle: float, num_angle_classes: int) -> int:
    """The class whose angle ``k / K * pi`` is nearest (halves round up), modulo K."""
    require_int("num_angle_classes", num_angle_classes, 1)
    if not _is_finite(angle):
        raise ValueError(f"angle must be a finite number of radians, got {angle!r}")
    return int(math.floor(angle / math.pi * num_angle_classes + 0.5)) % num_angle_classes


def label_maps(
    rectangles: Sequence[GraspRectangle],
    height: int,
    width: int,
    num_angle_classes: int,
    max_width_px: float = 200.0,
    centre_radius_px: float = 2.0,
) -> LabelMaps:
    """Draw the able, angle and width maps of an image of ``height`` x ``width`` pixels.

    Pixel (row, col) has its centre at integer coordinates, as in ``sgdn_ros.training.scenes``.
    ``centre_radius_px`` must be at least 1 so that every grasp centre marks a pixel.
    """
    require_int("height", height, 1)
    require_int("width", width, 1)
    require_int("num_angle_classes", num_angle_classes, 1)
    if not _is_finite(max_width_px) or max_width_px <= 0:
        raise ValueError(f"max_width_px must be a finite number > 0, got {max_width_px!r}")
    if not _is_finite(centre_radius_px) or centre_radius_px < 1:
        raise ValueError(f"centre_radius_px must be a finite number >= 1, so that every grasp "
                         f"centre marks a pixel; got {centre_radius_px!r}")
    able = np.zeros((height, width), dtype=np.float32)
    angle = np.zeros((num_angle_classes, height, width), dtype=np.float32)
    opening = np.zeros((num_angle_classes, height, width), dtype=np.float32)
    if not rectangles:
        return LabelMaps(able=able, angle=angle, width=opening)
    centres, angles, widths = _grasp_centres(rectangles)
    classes = np.floor(angles / math.pi * num_angle_classes + 0.5).astype(np.intp)
    classes %= num_angle_classes
    rows, cols, owner = _pixels_near(centres, centre_radius_px, height, width)
    pixel = rows * width + cols
    able.ravel()[pixel] = 1.0
    cell = classes[owner] * (height * width) + pixel
    angle.ravel()[cell] = 1.0
    values = np.minimum(widths[owner] / max_width_px, 1.0).astype(np.float32)
    order = np.lexsort((values, cell))
    cell, values = cell[order], values[order]
    widest = np.append(cell[1:] != cell[:-1], True)
    opening.ravel()[cell[widest]] = values[widest]
    return LabelMaps(able=able, angle=angle, width=opening)


def _is_finite(value: object) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _grasp_centres(rectangles: Sequence[GraspRectangle]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every rectangle's centre, plus points at most 1 px apart on the segments between
    rectangles that continue each other: (N, 2) (row, col), angles (N,), widths (N,)."""
    centres = [(r.row, r.col) for r in rectangles]
    angles = [r.angle for r in rectangles]
    widths = [r.width for r in rectangles]
    for first, second in _continuing_pairs(rectangles):
        offset = math.hypot(second.row - first.row, second.col - first.col)
        steps = math.ceil(offset)
        for step in range(1, steps):
            t = step / steps
            centres.append((first.row + t * (second.row - first.row),
                            first.col + t * (second.col - first.col)))
            angles.append(first.angle)
            widths.append(first.width + t * (second.width - first.width))
    return np.array(centres), np.array(angles), np.array(widths)


def _continuing_pairs(rectangles: Sequence[GraspRectangle]
                      ) -> list[tuple[GraspRectangle, GraspRectangle]]:
    """Neighbours along the jaw direction among rectangles of one angle (module docstring)."""
    by_angle: dict[float, list[GraspRectangle]] = defaultdict(list)
    for rectangle in rectangles:
        by_angle[rectangle.angle].append(rectangle)
    pairs = []
    for angle, group in by_angle.items():
        jaw_row, jaw_col = math.cos(angle), math.sin(angle)
        finger_row, finger_col = -math.sin(angle), math.cos(angle)
        group.sort(key=lambda r: r.row * jaw_row + r.col * jaw_col)
        for first, second in zip(group, group[1:]):
            drow, dcol = second.row - first.row, second.col - first.col
            sideways = abs(drow * finger_row + dcol * finger_col)
            if (sideways <= _SAME_LINE_TOLERANCE_PX
                    and math.hypot(drow, dcol) <= min(first.height, second.height)):
                pairs.append((first, second))
    return pairs


def _pixels_near(centres: np.ndarray, radius: float, height: int, width: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels within ``radius`` of any centre, inside the image: rows, cols and the index of
    the centre each belongs to (a pixel near several centres appears once per centre)."""
    reach = int(math.floor(radius + 0.5))
    offsets = np.arange(-reach, reach + 1)
    base = np.rint(centres).astype(np.intp)
    rows = base[:, 0, None, None] + offsets[None, :, None]
    cols = base[:, 1, None, None] + offsets[None, None, :]
    near = ((rows - centres[:, 0, None, None]) ** 2 + (cols - centres[:, 1, None, None]) ** 2
            <= radius * radius)
    near &= (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    owner = np.broadcast_to(np.arange(len(centres))[:, None, None], near.shape)
    return (np.broadcast_to(rows, near.shape)[near], np.broadcast_to(cols, near.shape)[near],
            owner[near])
