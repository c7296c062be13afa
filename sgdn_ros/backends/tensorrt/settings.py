"""How to build an engine (``EngineSettings``), checked when made so a bad value fails before
any TensorRT work.

INT8 is refused: it needs calibration data (a deprecated API, gone in 11) or Q/DQ nodes in the
ONNX, neither of which this project produces.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgdn_ros.backends.base import PRECISIONS

MAX_OPTIMIZATION_LEVEL = 5


@dataclass(frozen=True)
class EngineSettings:
    """How to build: precision, workspace limit, builder optimization level (None: TensorRT's
    default), whether to keep a timing cache where TensorRT has one, and the most frames one
    run takes when the model's batch axis is dynamic (a static model runs one)."""

    precision: str = "fp32"
    workspace_mb: int = 1024
    optimization_level: int | None = None
    timing_cache: bool = True
    max_batch: int = 1

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if not _is_int(self.workspace_mb) or self.workspace_mb < 1:
            raise ValueError(f"workspace_mb must be a positive integer, got {self.workspace_mb!r}")
        if not _is_int(self.max_batch) or self.max_batch < 1:
            raise ValueError(f"max_batch must be a positive integer, got {self.max_batch!r}")
        level = self.optimization_level
        if level is not None and (not _is_int(level) or not 0 <= level <= MAX_OPTIMIZATION_LEVEL):
            raise ValueError(
                f"optimization_level must be None (TensorRT's default) or 0 to "
                f"{MAX_OPTIMIZATION_LEVEL}, got {level!r}")


def check_precision(precision: str) -> None:
    """Raise ``ValueError`` for a precision no backend runs; INT8 with its own reason, which the
    backend factory and the command line give too."""
    if precision == "int8":
        raise ValueError(
            "precision 'int8' is not supported: TensorRT needs calibration data (an API "
            "deprecated in 10.x and removed in 11) or an ONNX model with Q/DQ nodes for "
            f"INT8; use one of {', '.join(PRECISIONS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
