"""3-D grasps as RViz markers and a PoseArray: what a person checks before a robot moves.

Each valid grasp is drawn as a gripper in the camera's optical frame: two finger plates at the
opening width with their tips at the grasp position, the palm joining them above, and an arrow
along the approach from the pre-grasp position. Colour runs from red (confidence 0) to green
(1). Every message starts with a DELETEALL, so the grasps of the previous frame vanish even
when this frame has fewer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point, PoseArray, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.geometry import rotation_from_quaternion
from sgdn_ros.core.grasp3d import Grasp3D, GripperGeometry
from sgdn_ros.ros.messages import pose_message

MARKER_NAMESPACE = "sgdn_grasps"
MARKERS_PER_GRASP = 4  # two fingers, the palm, the approach arrow
FINGER_LENGTH_M = 0.05  # drawn only: how far the plates reach up from the tips
PALM_THICKNESS_M = 0.01
ARROW_SHAFT_M = 0.004
ALPHA = 0.8


def pose_array_message(grasps_3d: Sequence[Grasp3D], header: Header) -> PoseArray:
    """The valid grasp poses, best first (for RViz's PoseArray display or a planner)."""
    message = PoseArray()
    message.header = header
    message.poses = [pose_message(grasp.position, grasp.orientation)
                     for grasp in grasps_3d if grasp.valid]
    return message


def confidence_colour(confidence: float) -> ColorRGBA:
    clipped = float(np.clip(confidence, 0.0, 1.0))
    return ColorRGBA(r=1.0 - clipped, g=clipped, b=0.1, a=ALPHA)


def gripper_markers(grasps: Sequence[Grasp], grasps_3d: Sequence[Grasp3D],
                    gripper: GripperGeometry, header: Header) -> MarkerArray:
    """DELETEALL, then ``MARKERS_PER_GRASP`` markers per valid grasp, ids ``4 * i + k`` for the
    i-th grasp (its rank, best first), so a grasp keeps its ids while it keeps its rank."""
    clear = Marker(header=header, ns=MARKER_NAMESPACE, action=Marker.DELETEALL)
    markers = [clear]
    for rank, (grasp, grasp_3d) in enumerate(zip(grasps, grasps_3d)):
        if grasp_3d.valid:
            markers += _gripper(rank, grasp.confidence, grasp_3d, gripper, header)
    return MarkerArray(markers=markers)


def _gripper(rank: int, confidence: float, grasp: Grasp3D, gripper: GripperGeometry,
             header: Header) -> list[Marker]:
    closing, _across, approach = _axes(grasp.orientation)
    tips = np.asarray(grasp.position, dtype=np.float64)
    reach = grasp.width_m / 2 + gripper.finger_thickness_m / 2
    up = -approach * FINGER_LENGTH_M / 2
    colour = confidence_colour(confidence)
    finger_size = Vector3(x=gripper.finger_thickness_m, y=gripper.finger_width_m,
                          z=FINGER_LENGTH_M)
    palm_size = Vector3(x=grasp.width_m + 2 * gripper.finger_thickness_m,
                        y=gripper.finger_width_m, z=PALM_THICKNESS_M)
    palm_centre = tips - approach * (FINGER_LENGTH_M + PALM_THICKNESS_M / 2)

    def box(index: int, centre: np.ndarray, size: Vector3) -> Marker:
        return Marker(header=header, ns=MARKER_NAMESPACE, id=MARKERS_PER_GRASP * rank + index,
                      type=Marker.CUBE, action=Marker.ADD,
                      pose=pose_message(centre, grasp.orientation), scale=size, color=colour)

    arrow = Marker(header=header, ns=MARKER_NAMESPACE, id=MARKERS_PER_GRASP * rank + 3,
                   type=Marker.ARROW, action=Marker.ADD, color=colour,
                   scale=Vector3(x=ARROW_SHAFT_M, y=2 * ARROW_SHAFT_M, z=3 * ARROW_SHAFT_M))
    arrow.pose.orientation.w = 1.0
    arrow.points = [_point(grasp.pre_grasp_position), _point(palm_centre)]
    return [box(0, tips + closing * reach + up, finger_size),
            box(1, tips - closing * reach + up, finger_size),
            box(2, palm_centre, palm_size), arrow]


def marker_segments(message: MarkerArray) -> list[tuple[np.ndarray, np.ndarray, tuple[int, ...]]]:
    """The 3-D line segments of a marker message's boxes (their 12 edges) and arrows, each
    with its colour as BGR bytes: what a viewer without RViz draws, from what was published."""
    segments = []
    for marker in message.markers:
        colour = tuple(int(round(255 * channel)) for channel in
                       (marker.color.b, marker.color.g, marker.color.r))
        if marker.type == Marker.ARROW and len(marker.points) == 2:
            start, end = (np.array([point.x, point.y, point.z]) for point in marker.points)
            segments.append((start, end, colour))
        elif marker.type == Marker.CUBE:
            segments += [(start, end, colour) for start, end in _box_edges(marker)]
    return segments


def _box_edges(marker: Marker) -> list[tuple[np.ndarray, np.ndarray]]:
    orientation = marker.pose.orientation
    axes = np.stack(_axes((orientation.x, orientation.y, orientation.z, orientation.w)), axis=1)
    centre = np.array([marker.pose.position.x, marker.pose.position.y, marker.pose.position.z])
    half = np.array([marker.scale.x, marker.scale.y, marker.scale.z]) / 2
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    corners = centre + (signs * half) @ axes.T
    return [(corners[first], corners[second]) for first in range(8) for second in range(8)
            if first < second and np.count_nonzero(signs[first] != signs[second]) == 1]


def _axes(quaternion: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gripper's x (closing), y and z (approach) axes in the camera frame."""
    rotation = rotation_from_quaternion(quaternion)
    return rotation[:, 0], rotation[:, 1], rotation[:, 2]


def _point(xyz: Sequence[float]) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))
