"""The bench's figures: grasp success and clearance rates with confidence intervals, per object
and overall, and a picture strip of the attempts."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.drawing import draw_grasp
from sgdn_ros.sim.clearance import Attempt, SceneResult

SUCCESS_BGR = (0, 200, 0)
FAILURE_BGR = (0, 0, 230)
_Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """k of n, with the Wilson score interval (95 %): sound for small n and rates near 1."""

    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else math.nan

    def interval(self) -> tuple[float, float]:
        if self.total == 0:
            return math.nan, math.nan
        p, n, z = self.value, self.total, _Z_95
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def __str__(self) -> str:
        low, high = self.interval()
        return (f"{100 * self.value:5.1f} % ({self.hits}/{self.total}; 95 % CI "
                f"{100 * low:.1f}-{100 * high:.1f} %)")


@dataclass(frozen=True)
class BenchFigures:
    grasp_success: Rate
    clearance: Rate
    scenes: int
    fell_out: int
    no_grasp: int  # attempts where the planner had nothing to offer (counted as failures)
    per_object: dict[int, Rate]


def figures(results: Sequence[SceneResult]) -> BenchFigures:
    attempts = [attempt for result in results for attempt in result.attempts]
    per_object: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for attempt in attempts:
        if attempt.target_object >= 0:
            per_object[attempt.target_object][0] += attempt.success
            per_object[attempt.target_object][1] += 1
    return BenchFigures(
        grasp_success=Rate(sum(attempt.success for attempt in attempts), len(attempts)),
        clearance=Rate(sum(result.cleared for result in results),
                       sum(len(result.object_ids) for result in results)),
        scenes=len(results),
        fell_out=sum(result.fell_out for result in results),
        no_grasp=sum(attempt.grasp is None for attempt in attempts),
        per_object={key: Rate(*value) for key, value in sorted(per_object.items())})


def format_figures(found: BenchFigures, per_object_lines: int = 10) -> str:
    lines = [f"grasp success: {found.grasp_success}",
             f"clearance:     {found.clearance}",
             f"scenes {found.scenes}, attempts without a grasp {found.no_grasp}, objects "
             f"knocked out of the tray {found.fell_out}"]
    hardest = sorted(found.per_object.items(), key=lambda item: (item[1].value, -item[1].total))
    if hardest:
        lines.append("hardest objects: " + ", ".join(
            f"{object_id:03d} {rate.hits}/{rate.total}"
            for object_id, rate in hardest[:per_object_lines]))
    return "\n".join(lines)


def attempt_strip(attempts: Sequence[Attempt], columns: int = 8, tile_px: int = 200
                  ) -> np.ndarray:
    """The attempts in order, one tile each (the camera's centre crop, the grasp drawn green
    for a success, red for a failure), ``columns`` per row."""
    tiles = [_tile(attempt, tile_px) for attempt in attempts]
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[start:start + columns]) for start in range(0, len(tiles), columns)]
    return np.vstack(rows)


def _tile(attempt: Attempt, tile_px: int) -> np.ndarray:
    image = attempt.frame.bgr
    grasp = attempt.grasp
    if grasp is not None and math.isfinite(grasp.width_px):
        drawn = Grasp(row=grasp.row, col=grasp.col, angle=grasp.angle, width_px=grasp.width_px,
                      width_m=grasp.width_m, confidence=grasp.confidence, angle_class=0,
                      crop_row=0, crop_col=0, crop_width_px=math.nan)
        image = draw_grasp(image, drawn, SUCCESS_BGR if attempt.success else FAILURE_BGR)
    height, width = image.shape[:2]
    side = min(height, width, 320)
    top, left = (height - side) // 2, (width - side) // 2
    tile = cv2.resize(image[top:top + side, left:left + side], (tile_px, tile_px),
                      interpolation=cv2.INTER_AREA)
    border = SUCCESS_BGR if attempt.success else FAILURE_BGR
    cv2.rectangle(tile, (0, 0), (tile_px - 1, tile_px - 1), border, 3)
    if grasp is None:
        cv2.putText(tile, "no grasp", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, FAILURE_BGR, 2)
    return tile
