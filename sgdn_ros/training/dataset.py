"""Generated grasp scenes as a PyTorch data set: network input and sparse grasp labels.

Item ``i`` is the scene of seed ``seed_start + i``, so every item is independent and the same on
any machine and in any DataLoader worker. The image goes through the published preprocessing
(the node feeds the network exactly this), and the labels travel sparsely: the grasp-centre
pixels are a few hundred of the 102,400, and the dense angle and width maps (K x 320 x 320, 49 MB
each at K = 120) would dominate the traffic between workers and the GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.training.grasp_rectangles import GraspRectangle
from sgdn_ros.training.grasp_scenes import generate_grasp_scene
from sgdn_ros.training.labels import label_maps

SCENE_SIZE = 320


@dataclass
class GraspBatch:
    """Network inputs and labels of N scenes.

    ``positive_index`` are the grasp-centre pixels, as flat indices into (N, H, W); ``angle``,
    ``width`` and ``width_mask`` hold one row per such pixel: the multi-hot angle classes, the
    width target (width / max width, per width channel) and where that target exists.
    """

    images: torch.Tensor
    able: torch.Tensor
    positive_index: torch.Tensor
    angle: torch.Tensor
    width: torch.Tensor
    width_mask: torch.Tensor

    def _map(self, convert: Callable[[torch.Tensor], torch.Tensor]) -> GraspBatch:
        return GraspBatch(*(convert(tensor) for tensor in (
            self.images, self.able, self.positive_index, self.angle, self.width,
            self.width_mask)))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> GraspBatch:
        return self._map(lambda tensor: tensor.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> GraspBatch:
        """Called by DataLoader(pin_memory=True), so host-to-GPU copies can run asynchronously."""
        return self._map(torch.Tensor.pin_memory)


def sparse_grasp_batch(planes: np.ndarray, rectangles: Sequence[GraspRectangle],
                       num_angle_classes: int, width_channels: int,
                       max_width_px: float, centre_radius_px: float = 2.0) -> GraspBatch:
    """One image's input and its labels, sparse at the grasp-centre pixels (``GraspBatch``).

    ``width_channels`` 1 keeps the widest valid opening per pixel (a wider opening still
    closes on the object); K keeps one per valid class.
    """
    height, width = planes.shape[-2:]
    labels = label_maps(rectangles, height, width, num_angle_classes, max_width_px=max_width_px,
                        centre_radius_px=centre_radius_px)
    rows, cols = np.nonzero(labels.able > 0.5)
    angle = np.ascontiguousarray(labels.angle[:, rows, cols].T)
    class_widths = np.ascontiguousarray(labels.width[:, rows, cols].T)
    if width_channels == 1:
        target = class_widths.max(axis=1, keepdims=True)
        mask = np.ones_like(target)
    else:
        target = class_widths
        mask = (angle > 0).astype(np.float32)
    return GraspBatch(
        images=torch.from_numpy(planes),
        able=torch.from_numpy(labels.able[np.newaxis, np.newaxis]),
        positive_index=torch.from_numpy((rows * width + cols).astype(np.int64)),
        angle=torch.from_numpy(angle),
        width=torch.from_numpy(target),
        width_mask=torch.from_numpy(mask))



def check_scene_labels(num_scenes: int, num_angle_classes: int, width_channels: int) -> None:
    """The checks every scene dataset starts with: some scenes, and a width target per pixel
    (1) or per angle class (K)."""
    if num_scenes < 1:
        raise ValueError(f"num_scenes must be at least 1, got {num_scenes}")
    if width_channels not in (1, num_angle_classes):
        raise ValueError(
            f"width_channels must be 1 or num_angle_classes ({num_angle_classes}), "
            f"got {width_channels}")


class GraspSceneDataset(Dataset):
    """``num_scenes`` generated scenes, seeds ``seed_start`` .. ``seed_start + num_scenes - 1``.

    ``width_channels`` is the model's: K (a width per angle class, the target at each valid
    class) or 1 (one width per pixel: the widest valid grasp there, since a wider opening
    still closes on the object).
    """

    def __init__(self, num_scenes: int, *, seed_start: int = 0, num_angle_classes: int,
                 width_channels: int, max_width_px: float = 200.0) -> None:
        check_scene_labels(num_scenes, num_angle_classes, width_channels)
        self.num_scenes = num_scenes
        self.seed_start = seed_start
        self.num_angle_classes = num_angle_classes
        self.width_channels = width_channels
        self.max_width_px = max_width_px
        self._preprocess = Preprocessor(PreprocessConfig())

    def __len__(self) -> int:
        return self.num_scenes

    def __getitem__(self, index: int) -> GraspBatch:
        """One scene as a batch of one; ``collate_scenes`` joins them."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(f"scene index {index} outside 0..{self.num_scenes - 1}")
        scene = generate_grasp_scene(self.seed_start + index, height=SCENE_SIZE, width=SCENE_SIZE)
        planes, _geometry = self._preprocess(scene.image)
        return sparse_grasp_batch(planes, scene.rectangles, self.num_angle_classes,
                                  self.width_channels, self.max_width_px)


def collate_scenes(items: list[GraspBatch]) -> GraspBatch:
    """Join single-scene batches, shifting each scene's pixel indices to its place in the batch."""
    pixels_per_scene = items[0].able[0, 0].numel()
    return GraspBatch(
        images=torch.cat([item.images for item in items]),
        able=torch.cat([item.able for item in items]),
        positive_index=torch.cat([item.positive_index.to(torch.int64) + n * pixels_per_scene
                                  for n, item in enumerate(items)]),
        angle=torch.cat([item.angle for item in items]),
        width=torch.cat([item.width for item in items]),
        width_mask=torch.cat([item.width_mask for item in items]))
