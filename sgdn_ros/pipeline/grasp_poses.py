"""The 3-D stage of a frame: its grasps located in the depth image taken with it.

After decoding, a grasp is a pixel, an angle and a width in pixels; with the aligned depth
image and the camera's intrinsics it becomes a pose in metres in the camera's optical frame
(``sgdn_ros.core.grasp3d`` says how). This module checks that the three inputs belong together
(one image size for colour, depth and camera_info) and times the stage like the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from sgdn_ros.core.camera import CameraModel
from sgdn_ros.core.grasp3d import Grasp3D, GripperGeometry, grasps_in_3d
from sgdn_ros.pipeline.detector import Detection

ALIGNMENT_ADVICE = (
    "publish depth aligned to the colour image, with the colour camera's camera_info "
    "(RealSense: align_depth.enable:=true and aligned_depth_to_color/image_raw)")


class DepthInputError(ValueError):
    """A depth image or camera model that does not belong to the colour frame."""


@dataclass(frozen=True)
class DepthFrame:
    """A depth image in metres (NaN where the sensor saw nothing) and the camera it was
    taken with, aligned to the colour image."""

    metres: np.ndarray
    camera: CameraModel


def locate_grasps(detection: Detection, depth: DepthFrame,
                  gripper: GripperGeometry) -> list[Grasp3D]:
    """One ``Grasp3D`` per grasp of ``detection``, in its order; the stage's time goes into
    ``detection.stage_seconds["locate"]``. ``DepthInputError`` when the sizes disagree."""
    started = time.perf_counter()
    geometry, camera = detection.geometry, depth.camera
    colour_size = (geometry.image_width, geometry.image_height)
    depth_size = (depth.metres.shape[1], depth.metres.shape[0]) if depth.metres.ndim == 2 \
        else None
    if depth_size != colour_size:
        shape = "x".join(str(size) for size in depth.metres.shape)
        raise DepthInputError(
            f"the depth image is {shape} but the colour image is {colour_size[0]}x"
            f"{colour_size[1]} (width x height); {ALIGNMENT_ADVICE}")
    if (camera.width, camera.height) != colour_size:
        raise DepthInputError(
            f"camera_info describes a {camera.width}x{camera.height} image but the colour image "
            f"is {colour_size[0]}x{colour_size[1]}; {ALIGNMENT_ADVICE}")
    located = grasps_in_3d(detection.grasps, depth.metres, camera, gripper)
    detection.stage_seconds["locate"] = time.perf_counter() - started
    return located
