"""The objects the bench drops into the tray: pybullet_data's procedurally generated shapes,
split once and for all into training and held-out ids.

A model's success on held-out objects means something only if it never saw them: every place
that loads an object names its split, and asking the wrong split for an id is an error.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

SPLITS = {"train": range(0, 800), "held_out": range(800, 1000)}
# The shapes are 2-19 cm across as shipped; scaled so that most fit an 85 mm gripper one way.
OBJECT_SCALE = 0.6


class ObjectSplitError(ValueError):
    """An object asked for from the split that does not hold it."""


def data_path() -> pathlib.Path:
    """Where pybullet_data lies (imported here only: the node never needs pybullet)."""
    import pybullet_data

    return pathlib.Path(pybullet_data.getDataPath())


def object_ids(split: str) -> range:
    if split not in SPLITS:
        raise ObjectSplitError(f"unknown object split {split!r}; choose one of {sorted(SPLITS)}")
    return SPLITS[split]


def object_urdf(object_id: int, split: str) -> pathlib.Path:
    """The URDF of ``object_id``, which must belong to ``split``."""
    if object_id not in object_ids(split):
        first, last = object_ids(split)[0], object_ids(split)[-1]
        raise ObjectSplitError(
            f"object {object_id:03d} is not in the {split!r} split ({first:03d}-{last:03d}); "
            "held-out objects must never be used for training")
    return data_path() / "random_urdfs" / f"{object_id:03d}" / f"{object_id:03d}.urdf"


def draw_objects(rng: np.random.Generator, split: str, count: int) -> Sequence[int]:
    """``count`` distinct object ids of ``split``."""
    ids = object_ids(split)
    if not 1 <= count <= len(ids):
        raise ValueError(f"object count must be in 1..{len(ids)}, got {count}")
    return [int(ids[index]) for index in rng.choice(len(ids), size=count, replace=False)]
