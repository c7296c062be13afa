"""Compiling the CUDA kernels and the launch grids they run on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycuda.compiler import SourceModule

BLOCK_2D = (16, 16, 1)  # the local-maxima kernel (decode_kernels) takes its side as its TILE


def compile_kernels(source: str) -> SourceModule:
    """Compile CUDA C for the current context (needs nvcc; pycuda caches the binary)."""
    from pycuda.compiler import SourceModule

    return SourceModule(source)


def blocks(size: int, block: int) -> int:
    """How many blocks of ``block`` threads cover ``size`` elements."""
    return (size + block - 1) // block


def grid_2d(height: int, width: int) -> tuple[int, int]:
    """The grid of ``BLOCK_2D`` blocks that covers a height x width image."""
    return blocks(width, BLOCK_2D[0]), blocks(height, BLOCK_2D[1])
