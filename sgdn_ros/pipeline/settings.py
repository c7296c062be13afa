"""Everything that decides which detector is built, as typed configs in one value.

The parameter table (``sgdn_ros.pipeline.parameters``) maps each of its parameters to one
setting here by a dotted path ("decode.min_distance", "backend"), and takes its default from
the field that path names, so a default is written once: in the config dataclass it configures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sgdn_ros.backends import BackendOptions
from sgdn_ros.core.decoding import DecodeConfig
from sgdn_ros.core.grasp3d import GripperGeometry
from sgdn_ros.core.preprocessing import PreprocessConfig


@dataclass(frozen=True)
class DetectorSettings:
    """Which model on which backend, where the stages around it run, and their configs.

    ``model_path`` is what ``sgdn_ros.models.default.resolve_model_path`` takes ("" is the
    trained default); ``backend``, ``gpu_processing`` and ``frame_graph`` are the choices of
    ``create_backend`` and ``create_detector``; ``gripper`` measures grasps in 3-D (with depth).
    """

    model_path: str = ""
    backend: str = "auto"
    gpu_processing: str = "auto"
    frame_graph: bool = True
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    backend_options: BackendOptions = field(default_factory=BackendOptions)
    gripper: GripperGeometry = field(default_factory=GripperGeometry)

    @classmethod
    def with_values(cls, assignments: Mapping[str, Any]) -> DetectorSettings:
        """The defaults with each dotted path set to its value.

        Each config is made once from its new values, so its own checks see them together and
        a bad value raises ``ValueError`` with the config's reason.
        """
        top_level: dict[str, Any] = {}
        by_config: dict[str, dict[str, Any]] = {}
        for path, value in assignments.items():
            config, _, attribute = path.rpartition(".")
            if config:
                by_config.setdefault(config, {})[attribute] = value
            else:
                top_level[attribute] = value
        defaults = cls()
        configs = {config: dataclasses.replace(getattr(defaults, config), **values)
                   for config, values in by_config.items()}
        return dataclasses.replace(defaults, **top_level, **configs)

    def value_at(self, path: str) -> Any:
        """The setting a dotted path names; AttributeError for a path that names none."""
        value: Any = self
        for attribute in path.split("."):
            value = getattr(value, attribute)
        return value
