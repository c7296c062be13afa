"""Angle and width maps smaller than the able map, read as if upsampled to its size.

A model may hand its angle and width maps over before the network's last upsampling (the torch
backend does on the GPU: ``SGDN.forward_heads``; so may an ONNX model exported from it): the K
planes then need not be upsampled whole for a decoder that reads them at a few chosen pixels.
``sample_channels`` evaluates that upsampling (bilinear, aligned corners) at those pixels with
the arithmetic of PyTorch's ``upsample_bilinear2d`` and of the GPU decoders
(``sgdn_ros.gpu.decode_source``), in float32, so a sampled value is the upsampled map's to
float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def channel_maps_fit(channel_size: Sequence[int], size: Sequence[int]) -> bool:
    """Whether angle and width planes of ``channel_size`` (height, width) can be read for
    maps of ``size``: each side from 1 to the output's (the decoders only upsample)."""
    return all(0 < channel <= full for channel, full in zip(channel_size, size, strict=True))


class PixelSampler:
    """Where n pixels of the output read planes of one smaller size: each pixel's four source
    neighbours and weights, computed once for every map of that size (the angle and the width
    maps share them), as ``sample_channels`` reads them."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, height: int, width: int,
                 channel_size: Sequence[int]) -> None:
        self.rows, self.cols = rows, cols
        self.channel_size = tuple(channel_size)
        self._full_size = self.channel_size == (height, width)
        if not self._full_size:
            self._top, self._bottom, self._down = _neighbours(rows, height, channel_size[0])
            self._left, self._right, self._across = _neighbours(cols, width, channel_size[1])

    def read(self, maps: np.ndarray) -> np.ndarray:
        """(C, n) float32 of ``maps`` (C, h, w), (h, w) being this sampler's channel size."""
        if maps.shape[1:] != self.channel_size:
            raise ValueError(f"maps of {maps.shape[1:]} read with a sampler made for "
                             f"{self.channel_size}")
        if self._full_size:
            return maps[:, self.rows, self.cols]
        planes = maps.astype(np.float32, copy=False)
        top, bottom, left, right = self._top, self._bottom, self._left, self._right
        down, across = self._down, self._across
        return ((1 - down) * ((1 - across) * planes[:, top, left]
                              + across * planes[:, top, right])
                + down * ((1 - across) * planes[:, bottom, left]
                          + across * planes[:, bottom, right]))


def sample_channels(maps: np.ndarray, rows: np.ndarray, cols: np.ndarray, height: int,
                    width: int) -> np.ndarray:
    """(C, n) float32: the planes of ``maps`` (C, h, w), upsampled to ``height`` x ``width``,
    at the n pixels (``rows``, ``cols``); planes of the output's size are read as they are."""
    return PixelSampler(rows, cols, height, width, maps.shape[1:]).read(maps)


def upsampled(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, ``height``, ``width``): every pixel of ``sample_channels`` (``maps`` itself at that
    size already); for reference decoding, which reads whole maps."""
    if maps.shape[1:] == (height, width):
        return maps
    rows, cols = np.divmod(np.arange(height * width), width)
    return sample_channels(maps, rows, cols, height, width).reshape(-1, height, width)


def _neighbours(positions: np.ndarray, size: int, source_size: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For output positions along one axis of ``size``: the source index before each, the one
    after (the same at the last), and the weight of the one after."""
    scale = np.float32(source_size - 1) / np.float32(size - 1) if size > 1 else np.float32(0)
    source = scale * np.asarray(positions).astype(np.float32)
    before = source.astype(np.intp)
    after = before + (before < source_size - 1)
    return before, after, source - before.astype(np.float32)
