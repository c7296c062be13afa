"""What the GPU processing refuses, and the argument check its classes share."""

from __future__ import annotations


class GpuProcessingError(ValueError):
    """Input or settings the GPU processing cannot work with."""


class UnsupportedOnGpuError(GpuProcessingError):
    """A case the GPU path does not implement; use the CPU processing for it."""


def check_positive_ints(**values: object) -> None:
    """Raise ``GpuProcessingError`` naming the first value that is not an int >= 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GpuProcessingError(f"{name} must be a positive integer, got {value!r}")
