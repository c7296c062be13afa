"""ROS messages to frames, and grasps, images and counters to ROS messages. Imports message
types only, no rclpy node machinery."""

from __future__ import annotations

import array
import math
import struct
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, Quaternion
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from sgdn_ros.core.camera import CameraModel, camera_model_from_message
from sgdn_ros.core.decoding import Grasp
from sgdn_ros.core.depth import depth_to_metres
from sgdn_ros.core.frames import (
    bgr_to_image_fields,
    compressed_message_to_bgr,
    raw_image_from_message,
)
from sgdn_ros.core.grasp3d import Grasp3D
from sgdn_ros.msg import GraspPose, GraspPoseArray
from sgdn_ros.pipeline.detector import CameraImage
from sgdn_ros.pipeline.grasp_poses import DepthFrame, DepthInputError
from sgdn_ros.pipeline.stats import StatsSnapshot

NO_DEPTH_INPUT = "no_depth_input"

# Image transport (the `image_transport` parameter) -> message type and topic suffix.
CAMERA_MESSAGES: dict[str, tuple[type, str]] = {
    "raw": (Image, ""),
    "compressed": (CompressedImage, "/compressed"),
}


def frame_from_message(message: Image | CompressedImage) -> CameraImage:
    """The detector's input: a checked zero-copy ``RawImage`` of a raw message, a decoded BGR
    array of a compressed one. ValueError (with the reason) for what cannot be a frame."""
    if isinstance(message, CompressedImage):
        return compressed_message_to_bgr(message)
    return raw_image_from_message(message)


def depth_metres_from_message(depth: Image, depth_scale: float) -> np.ndarray:
    """A depth Image in metres, NaN in holes; ValueError naming what is wrong with it."""
    return depth_to_metres(depth.data, int(depth.height), int(depth.width), int(depth.step),
                           depth.encoding, bool(depth.is_bigendian), depth_scale)


def depth_frame_with_camera_info(depth_m: np.ndarray, camera_info: CameraInfo | None) -> DepthFrame:
    """The depth in metres with its camera; ValueError when no camera_info has come."""
    if camera_info is None:
        raise DepthInputError(
            "no camera_info has arrived yet on camera_info: 3-D poses need the camera's "
            "intrinsics; remap camera_info to the colour camera's (e.g. "
            "/camera/color/camera_info)")
    return DepthFrame(depth_m, camera_model_from_message(camera_info))


def pose_message(position: Sequence[float], orientation: Sequence[float]) -> Pose:
    pose = Pose()
    pose.position = Point(x=float(position[0]), y=float(position[1]), z=float(position[2]))
    pose.orientation = Quaternion(x=float(orientation[0]), y=float(orientation[1]),
                                  z=float(orientation[2]), w=float(orientation[3]))
    return pose


def grasp_to_message(grasp: Grasp, header: Header, num_angle_classes: int,
                     grasp_3d: Grasp3D | None = None) -> GraspPose:
    """The grasp, and its 3-D pose when ``grasp_3d`` is given (else NaN depths, an invalid
    pose and the reason ``no_depth_input``)."""
    message = GraspPose()
    message.header = header
    message.u = float(grasp.col)
    message.v = float(grasp.row)
    message.angle = float(grasp.angle)
    message.width_px = float(grasp.width_px)
    message.width_m = float(grasp.width_m)
    message.confidence = float(grasp.confidence)
    message.angle_class = int(grasp.angle_class)
    message.num_angle_classes = int(num_angle_classes)
    if grasp_3d is None:
        message.depth_m = message.grasp_depth_m = math.nan
        message.pose_valid = False
        message.pose_invalid_reason = NO_DEPTH_INPUT
        return message
    message.depth_m = float(grasp_3d.surface_depth_m)
    message.grasp_depth_m = float(grasp_3d.grasp_depth_m)
    message.pose_valid = bool(grasp_3d.valid)
    message.pose_invalid_reason = grasp_3d.reason
    if math.isfinite(grasp_3d.width_m):
        message.width_m = float(grasp_3d.width_m)
    message.pose = pose_message(grasp_3d.position, grasp_3d.orientation)
    message.pre_grasp_pose = pose_message(grasp_3d.pre_grasp_position, grasp_3d.orientation)
    return message


def grasps_to_array_message(
    grasps: Sequence[Grasp], header: Header, num_angle_classes: int,
    grasps_3d: Sequence[Grasp3D] | None = None,
) -> GraspPoseArray:
    message = GraspPoseArray()
    message.header = header
    located = grasps_3d if grasps_3d is not None else [None] * len(grasps)
    message.grasps = [grasp_to_message(grasp, header, num_angle_classes, grasp_3d)
                      for grasp, grasp_3d in zip(grasps, located)]
    return message


def publish_grasps(best_publisher, array_publisher, grasps: Sequence[Grasp], header: Header,
                   num_angle_classes: int, grasps_3d: Sequence[Grasp3D] | None = None) -> None:
    """One frame's answer: all grasps on the array topic, the best also on its own topic (when
    there is one), sent as their serialised bytes (``serialized_grasp_messages``): no message
    object is built, the receivers get the messages ``grasps_to_array_message`` builds."""
    best, answer = serialized_grasp_messages(grasps, header, num_angle_classes, grasps_3d)
    if best is not None:
        best_publisher.publish(best)
    array_publisher.publish(answer)


def publish_grasp_messages(best_publisher, array_publisher, grasps: Sequence[Grasp],
                           header: Header, num_angle_classes: int,
                           grasps_3d: Sequence[Grasp3D] | None = None) -> None:
    """``publish_grasps`` through message objects, as it was before the bytes were built
    directly: the baseline ``sgdn-ros bench`` measures beside it."""
    answer = grasps_to_array_message(grasps, header, num_angle_classes, grasps_3d)
    if answer.grasps:
        best_publisher.publish(answer.grasps[0])
    array_publisher.publish(answer)


# CDR, the serialisation of every ROS 2 middleware: a 4-byte encapsulation header (here:
# little-endian), then each field aligned to its size from the end of that header, strings as
# uint32 length (with the NUL) + bytes + NUL, sequences as uint32 count + elements.
_CDR_LITTLE_ENDIAN = b"\x00\x01\x00\x00"
_STAMP = struct.Struct("<iI")
_LENGTH = struct.Struct("<I")
# GraspPose from u to pose_valid: u, v, angle, width_px, width_m, confidence, angle_class,
# num_angle_classes, depth_m, grasp_depth_m, pose_valid (4-byte aligned where it starts).
_GRASP_FIELDS = struct.Struct("<6f2H2f?")
_TWO_POSES = struct.Struct("<14d")  # pose, pre_grasp_pose: position x y z, orientation x y z w
_NO_POSES = _TWO_POSES.pack(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
_NO_DEPTH_REASON = NO_DEPTH_INPUT.encode()


class _CdrWriter:
    """Serialised bytes being put together, aligned as CDR aligns them."""

    def __init__(self) -> None:
        self._parts = [_CDR_LITTLE_ENDIAN]
        self._offset = 0

    def add(self, data: bytes, alignment: int) -> None:
        padding = -self._offset % alignment
        if padding:
            self._parts.append(bytes(padding))
        self._parts.append(data)
        self._offset += padding + len(data)

    def add_grasp(self, header: bytes, fields: bytes, reason: bytes, poses: bytes) -> None:
        self.add(header, 4)
        self.add(fields, 4)
        self.add(_LENGTH.pack(len(reason) + 1) + reason + b"\0", 4)
        self.add(poses, 8)

    def result(self) -> bytes:
        return b"".join(self._parts)


def serialized_grasp_messages(grasps: Sequence[Grasp], header: Header, num_angle_classes: int,
                              grasps_3d: Sequence[Grasp3D] | None = None
                              ) -> tuple[bytes | None, bytes]:
    """The best grasp's ``GraspPose`` (None without grasps) and the frame's ``GraspPoseArray``,
    serialised, with the fields ``grasp_to_message`` gives them: packed straight from the
    grasps, a few ``struct`` calls per grasp instead of building and reading back nested
    message objects. The header is serialised once and shared by every grasp."""
    frame_id = header.frame_id.encode()
    header_bytes = (_STAMP.pack(header.stamp.sec, header.stamp.nanosec)
                    + _LENGTH.pack(len(frame_id) + 1) + frame_id + b"\0")
    located = grasps_3d if grasps_3d is not None else [None] * len(grasps)
    records = [(header_bytes, *_grasp_record(grasp, num_angle_classes, grasp_3d))
               for grasp, grasp_3d in zip(grasps, located)]
    array = _CdrWriter()
    array.add(header_bytes, 4)
    array.add(_LENGTH.pack(len(records)), 4)
    for record in records:
        array.add_grasp(*record)
    if not records:
        return None, array.result()
    best = _CdrWriter()
    best.add_grasp(*records[0])
    return best.result(), array.result()


def _grasp_record(grasp: Grasp, num_angle_classes: int,
                  grasp_3d: Grasp3D | None) -> tuple[bytes, bytes, bytes]:
    """A grasp's fields from u to pose_valid, its pose_invalid_reason and its two poses."""
    width_m, depth_m, grasp_depth_m = float(grasp.width_m), math.nan, math.nan
    valid, reason, poses = False, _NO_DEPTH_REASON, _NO_POSES
    if grasp_3d is not None:
        if math.isfinite(grasp_3d.width_m):
            width_m = float(grasp_3d.width_m)
        depth_m, grasp_depth_m = grasp_3d.surface_depth_m, grasp_3d.grasp_depth_m
        valid, reason = bool(grasp_3d.valid), grasp_3d.reason.encode()
        poses = _TWO_POSES.pack(*grasp_3d.position, *grasp_3d.orientation,
                                *grasp_3d.pre_grasp_position, *grasp_3d.orientation)
    fields = _GRASP_FIELDS.pack(
        grasp.col, grasp.row, grasp.angle, grasp.width_px, width_m, grasp.confidence,
        int(grasp.angle_class), int(num_angle_classes), depth_m, grasp_depth_m, valid)
    return fields, reason, poses


def bgr_to_image_message(bgr: np.ndarray, header: Header) -> Image:
    """A bgr8 Image; the pixel bytes go in as one array.array, which rclpy takes without
    checking each element (element-wise filling costs ~1 s for a full-HD frame)."""
    height, width, encoding, is_bigendian, step, data = bgr_to_image_fields(bgr)
    message = Image()
    message.header = header
    message.height = height
    message.width = width
    message.encoding = encoding
    message.is_bigendian = is_bigendian
    message.step = step
    message.data = array.array("B", data)
    return message


def depth_image_message(depth: np.ndarray, header: Header) -> Image:
    """A depth Image as a driver sends it: 16UC1 (millimetres) from uint16, 32FC1 (metres)
    from float32, little-endian."""
    encodings = {np.dtype(np.uint16): "16UC1", np.dtype(np.float32): "32FC1"}
    if depth.ndim != 2 or depth.dtype not in encodings:
        raise ValueError(f"a depth image is (H, W) uint16 millimetres or float32 metres, got "
                         f"{depth.dtype} {depth.shape}")
    contiguous = np.ascontiguousarray(depth, dtype=depth.dtype.newbyteorder("<"))
    message = Image()
    message.header = header
    message.height, message.width = contiguous.shape
    message.encoding = encodings[depth.dtype]
    message.is_bigendian = False
    message.step = contiguous.shape[1] * contiguous.itemsize
    message.data = array.array("B", contiguous.tobytes())
    return message


def camera_info_message(camera: CameraModel, header: Header) -> CameraInfo:
    """The camera_info of ``camera`` (no rectification: R identity, P = [K | 0])."""
    message = CameraInfo()
    message.header = header
    message.width, message.height = camera.width, camera.height
    message.distortion_model = camera.distortion_model
    message.d = list(camera.d)
    message.k = list(camera.k)
    message.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    message.p = [*camera.k[0:3], 0.0, *camera.k[3:6], 0.0, *camera.k[6:9], 0.0]
    return message


def camera_image_message(bgr: np.ndarray, frame_id: str = "camera") -> Image:
    """An unstamped bgr8 Image as a camera in ``frame_id`` sends it."""
    return bgr_to_image_message(bgr, Header(frame_id=frame_id))


def diagnostics_message(reports: Sequence[tuple[str, StatsSnapshot]], hardware_id: str,
                        running: bool, stamp: Time) -> DiagnosticArray:
    """The counters and latencies as one status per (name, snapshot) of ``reports`` (one per
    camera): WARN once a frame failed, else OK."""
    message = DiagnosticArray()
    message.header = Header(stamp=stamp)
    for name, snapshot in reports:
        status = DiagnosticStatus()
        status.name = name
        status.hardware_id = hardware_id
        status.level = DiagnosticStatus.OK if snapshot.failed == 0 else DiagnosticStatus.WARN
        status.message = "running" if running else "inactive"
        status.values = [KeyValue(key=key, value=str(value))
                         for key, value in vars(snapshot).items()]
        message.status.append(status)
    return message


def grasp_from_message(message: GraspPose) -> Grasp:
    """A received grasp, for drawing on the original image; where it lay in the network input
    is not part of the message (crop_row/crop_col -1, crop_width_px NaN)."""
    return Grasp(
        row=message.v, col=message.u, angle=message.angle, width_px=message.width_px,
        width_m=message.width_m, confidence=message.confidence,
        angle_class=message.angle_class, crop_row=-1, crop_col=-1, crop_width_px=math.nan)
