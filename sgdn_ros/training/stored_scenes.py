"""Simulated scenes stored for training, and the dataset that trains on them.

The bench's simulator (``sgdn_ros.sim``) needs pybullet, which the GPU machine that trains has
not got; so scenes are rendered and labelled where pybullet runs and carried as one file. What
is stored is what cannot be recomputed cheaply: the NOISELESS depth of a square crop a little
larger than the network input (16-bit millimetres, PNG: about 6 KB a frame), optionally the
colour of the same crop (JPEG, about 30 KB: for colour and RGB-D models, kept off the GPU
machine's 64 MiB when not needed) and the true grasps in it (row, col, angle class, opening in
pixels). The sensor's noise and holes are applied when
a frame is read (a fresh draw every time it is used), then the node's own preprocessing
(``core.depth_planes``) makes the planes; the margin lets hole filling see past the crop's
edge, as it does in the full image. Each read also turns the frame by a random multiple of 90
degrees and may mirror it (a top-down camera has no preferred direction), moving the grasps'
positions and angle classes with it.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from torch.utils.data import Dataset

from sgdn_ros.core.depth_planes import depth_bgr_planes, depth_planes
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.training.dataset import GraspBatch, check_scene_labels, sparse_grasp_batch
from sgdn_ros.training.depth_sensor import measure_depth
from sgdn_ros.training.grasp_rectangles import GraspRectangle

FORMAT_VERSION = 1
STORE_MARGIN_PX = 16
GRASP_COLUMNS = ("frame", "row", "col", "angle_class", "width_px")
LABEL_RADIUS_PX = 3.0  # stored grasps lie on a 4-pixel grid: discs of 3 px leave no gap


@dataclass(frozen=True)
class StoredFrame:
    """One frame: noiseless depth (S, S) uint16 millimetres (0: no surface), its grasps,
    (n, 4) float32 rows of (row, col, angle class, opening px) in the stored crop, and the
    colour (S, S, 3) uint8 BGR when the store keeps it."""

    depth_mm: np.ndarray
    grasps: np.ndarray
    bgr: np.ndarray | None = None


class SceneStore:
    """Frames in one file (``write_scene_store`` writes it); frames decode on demand."""

    def __init__(self, path: str | pathlib.Path) -> None:
        with np.load(path) as archive:
            version = int(archive["format_version"])
            if version != FORMAT_VERSION:
                raise ValueError(f"{path}: scene store format {version}, this version reads "
                                 f"{FORMAT_VERSION}; write it again with `sgdn-ros sim-data`")
            self.num_angle_classes = int(archive["num_angle_classes"])
            self.crop_size = int(archive["crop_size"])
            self._png = archive["depth_png"]
            self._offsets = archive["depth_offsets"]
            self._jpeg = archive.get("colour_jpeg")
            self._jpeg_offsets = archive.get("colour_offsets")
            grasps = archive["grasps"]
        frames = grasps[:, 0].astype(np.int64)
        order = np.argsort(frames, kind="stable")
        self._grasps = grasps[order, 1:]
        self._starts = np.searchsorted(frames[order], np.arange(len(self) + 1))

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @property
    def grasp_count(self) -> int:
        return len(self._grasps)

    @property
    def has_colour(self) -> bool:
        return self._jpeg is not None

    def frame(self, index: int) -> StoredFrame:
        encoded = self._png[self._offsets[index]:self._offsets[index + 1]]
        depth_mm = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        bgr = None
        if self._jpeg is not None:
            jpeg = self._jpeg[self._jpeg_offsets[index]:self._jpeg_offsets[index + 1]]
            bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        return StoredFrame(depth_mm, self._grasps[self._starts[index]:self._starts[index + 1]],
                           bgr)


def write_scene_store(path: str | pathlib.Path, frames: Sequence[StoredFrame],
                      num_angle_classes: int) -> None:
    """One file of ``frames``; colour is kept when every frame has it."""
    if not frames:
        raise ValueError("no frames to store")
    size = frames[0].depth_mm.shape[0]
    for frame in frames:
        if frame.depth_mm.shape != (size, size) or frame.depth_mm.dtype != np.uint16:
            raise ValueError(f"every stored frame must be ({size}, {size}) uint16 millimetres")
    depth_png, depth_offsets = _encoded([frame.depth_mm for frame in frames], ".png",
                                        [cv2.IMWRITE_PNG_COMPRESSION, 9])
    colour = {}
    if all(frame.bgr is not None for frame in frames):
        colour["colour_jpeg"], colour["colour_offsets"] = _encoded(
            [frame.bgr for frame in frames], ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90])
    grasps = np.concatenate([np.column_stack([np.full(len(frame.grasps), index),
                                              frame.grasps]).reshape(-1, len(GRASP_COLUMNS))
                             for index, frame in enumerate(frames)]).astype(np.float32)
    np.savez_compressed(path, format_version=FORMAT_VERSION, num_angle_classes=num_angle_classes,
                        crop_size=size, depth_png=depth_png, depth_offsets=depth_offsets,
                        grasps=grasps, **colour)


def _encoded(images: Sequence[np.ndarray], extension: str, options: list[int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """The images encoded one after another in one byte array, and where each starts."""
    encoded = []
    for image in images:
        ok, data = cv2.imencode(extension, image, options)
        if not ok:
            raise ValueError(f"a stored frame could not be encoded as {extension}")
        encoded.append(data.reshape(-1))
    offsets = np.concatenate([[0], np.cumsum([len(data) for data in encoded])])
    return np.concatenate(encoded), offsets


def turn_frame(frame: StoredFrame, quarter_turns: int, mirror: bool,
               num_angle_classes: int) -> StoredFrame:
    """The frame turned counter-clockwise (as shown) by ``quarter_turns`` x 90 degrees after
    an optional left-right mirror, with its grasps moved along (class k: angle k * pi / K)."""
    images = [image for image in (frame.depth_mm, frame.bgr) if image is not None]
    size = frame.depth_mm.shape[0]
    grasps = frame.grasps
    rows, cols, classes = grasps[:, 0].copy(), grasps[:, 1].copy(), grasps[:, 2].astype(int)
    if mirror:
        images = [image[:, ::-1] for image in images]
        cols = size - 1 - cols
        classes = (num_angle_classes - classes) % num_angle_classes
    for _ in range(quarter_turns % 4):
        images = [np.rot90(image) for image in images]
        rows, cols = size - 1 - cols, rows
        classes = (classes + num_angle_classes // 2) % num_angle_classes
    turned = np.column_stack([rows, cols, classes, grasps[:, 3]]).astype(np.float32)
    images = [np.ascontiguousarray(image) for image in images]
    return StoredFrame(images[0], turned, images[1] if len(images) > 1 else None)


class StoredSceneDataset(Dataset):
    """``num_scenes`` reads of the store's frames (in turn), each with its own sensor noise and
    turn drawn from ``(seed_start, index)``; the input of ``input_kind`` and sparse labels."""

    def __init__(self, store: SceneStore, num_scenes: int, *, seed_start: int = 0,
                 input_kind: str = "depth", num_angle_classes: int, width_channels: int,
                 max_width_px: float = 200.0) -> None:
        check_scene_labels(num_scenes, num_angle_classes, width_channels)
        if input_kind not in ("bgr", "depth", "depth_bgr"):
            raise ValueError(f"unknown input kind {input_kind!r}")
        if input_kind != "depth" and not store.has_colour:
            raise ValueError(f"a {input_kind} model needs colour, and this scene store has "
                             "depth only; write it with `sgdn-ros sim-data --colour`")
        if num_angle_classes != store.num_angle_classes or num_angle_classes % 2:
            raise ValueError(
                f"the scene store is labelled with {store.num_angle_classes} angle classes; "
                f"train with --classes {store.num_angle_classes} (an even K: quarter turns "
                "move classes by K/2)")
        self.store = store
        self.num_scenes = num_scenes
        self.seed_start = seed_start
        self.num_angle_classes = num_angle_classes
        self.width_channels = width_channels
        self.max_width_px = max_width_px
        self.input_kind = input_kind
        self._config = PreprocessConfig()

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> GraspBatch:
        if not 0 <= index < self.num_scenes:
            raise IndexError(f"scene index {index} outside 0..{self.num_scenes - 1}")
        rng = np.random.default_rng([self.seed_start, index])
        frame = turn_frame(self.store.frame(index % len(self.store)), int(rng.integers(4)),
                           bool(rng.random() < 0.5), self.num_angle_classes)
        measured = measure_depth(rng, frame.depth_mm.astype(np.float64) / 1000.0)
        depth_m = np.where(measured > 0, measured / 1000.0, np.nan).astype(np.float32)
        if self.input_kind == "depth":
            planes, geometry = depth_planes(depth_m, self._config)
        elif self.input_kind == "depth_bgr":
            planes, geometry = depth_bgr_planes(depth_m, frame.bgr, self._config)
        else:
            planes, geometry = Preprocessor(self._config)(frame.bgr)
        rectangles = [GraspRectangle(row=float(row) - geometry.top,
                                     col=float(col) - geometry.left,
                                     angle=float(k) * math.pi / self.num_angle_classes,
                                     width=float(width), height=float(width) / 2)
                      for row, col, k, width in frame.grasps]
        return sparse_grasp_batch(planes, rectangles, self.num_angle_classes,
                                  self.width_channels, self.max_width_px,
                                  centre_radius_px=LABEL_RADIUS_PX)
