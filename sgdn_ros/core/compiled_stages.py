"""The CPU path's per-pixel stages compiled (``src/cpu_stages.c``), where the package was
built with them: the network input through the lookup tables, the peak search, and the angle
class and width logit at the peaks.

colcon builds the library beside this module. ``pip install .`` and a source checkout have
none: the stages then run in NumPy and OpenCV (``write_through_tables``' split and lookups,
``box_find_peaks``, ``PixelSampler``), which give the same planes and grasps in a few dozen
calls; right after inference on a 2-core machine each of those calls costs tens of
microseconds on cold caches, which three calls into C avoid.
"""

from __future__ import annotations

import ctypes
import pathlib

import numpy as np

LIBRARY = pathlib.Path(__file__).with_name("_cpu_stages.so")
_NOT_A_NUMBER = -2  # sgdn_find_peaks' answer for a map holding a NaN

_INT = ctypes.c_int64
_POINTER = ctypes.c_void_p


class CompiledStages:
    """Each stage one call, on arrays it reads and writes in place."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._planes = library.sgdn_planes_through_tables
        self._planes.restype = None
        self._planes.argtypes = [_POINTER, _INT, _INT, _INT, _INT, _INT, _INT, _INT, _POINTER,
                                 _POINTER, _INT, _INT]
        self._find_peaks = library.sgdn_find_peaks
        self._find_peaks.restype = _INT
        self._find_peaks.argtypes = [_POINTER, _INT, _INT, _INT, ctypes.c_float, _INT, _INT,
                                     _POINTER, _POINTER]
        self._sample = library.sgdn_sample_at_pixels
        self._sample.restype = None
        self._sample.argtypes = [_POINTER, _INT, _POINTER, _INT, _INT, _INT, _INT, _INT,
                                 _POINTER, _POINTER, _INT, _POINTER, _POINTER]

    def planes_through_tables(self, window: np.ndarray, channels: tuple[int, int, int],
                              tables: np.ndarray, planes: np.ndarray,
                              target: tuple[slice, slice]) -> None:
        """``write_through_tables``' lookups: ``planes[k][target]`` = ``tables[k]`` of channel
        ``channels[k]`` of the (h, w, C) or (h, w) uint8 ``window`` (positive strides), for
        contiguous (3, H, W) float32 ``planes`` and contiguous (3, 256) float32 ``tables``."""
        row, col = target[0].start or 0, target[1].start or 0
        first = planes.ctypes.data + (row * planes.shape[2] + col) * planes.itemsize
        self._planes(window.ctypes.data, window.shape[0], window.shape[1], window.strides[0],
                     window.strides[1], *channels, tables.ctypes.data, first,
                     planes.shape[1] * planes.shape[2], planes.shape[2])

    def find_peaks(self, score: np.ndarray, threshold: np.float32, min_distance: int,
                   max_peaks: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``peaks.find_peaks`` of a contiguous float32 map, ``threshold`` compared in
        float32; None when the map holds a NaN."""
        found = np.empty((2, max_peaks), np.int64)
        count = self._find_peaks(score.ctypes.data, score.shape[0], score.shape[1],
                                 score.shape[1], threshold, min_distance, max_peaks,
                                 found.ctypes.data, found[1].ctypes.data)
        if count == _NOT_A_NUMBER:
            return None
        if count < 0:
            raise MemoryError("the peak search could not allocate its buffers")
        return found[0, :count], found[1, :count]

    def sample_at_pixels(self, angle_maps: np.ndarray, width_maps: np.ndarray,
                         rows: np.ndarray, cols: np.ndarray, height: int, width: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """The angle class (argmax) and the width logit (float32) at each pixel of the
        ``height`` x ``width`` output, from contiguous float32 (C, h, w) maps of one size,
        upsampled as ``PixelSampler`` reads them."""
        rows, cols = (np.ascontiguousarray(pixels, np.int64) for pixels in (rows, cols))
        classes = np.empty(rows.size, np.int64)
        width_logits = np.empty(rows.size, np.float32)
        self._sample(angle_maps.ctypes.data, angle_maps.shape[0], width_maps.ctypes.data,
                     width_maps.shape[0], angle_maps.shape[1], angle_maps.shape[2], height,
                     width, rows.ctypes.data, cols.ctypes.data, rows.size, classes.ctypes.data,
                     width_logits.ctypes.data)
        return classes, width_logits


def contiguous_float32(*arrays: np.ndarray) -> bool:
    """Whether the compiled stages read (or write) these arrays in place."""
    return all(array.dtype == np.float32 and array.flags.c_contiguous for array in arrays)


def _load() -> tuple[CompiledStages | None, str]:
    if not LIBRARY.is_file():
        return None, (f"{LIBRARY.name} is not built here (a colcon build of the package builds "
                      "it; pip installs and source checkouts run these stages in NumPy and OpenCV)")
    try:
        return CompiledStages(ctypes.CDLL(str(LIBRARY))), f"compiled ({LIBRARY})"
    except (OSError, AttributeError) as error:
        return None, (f"{LIBRARY.name} did not load ({error}); these stages run in NumPy and "
                      "OpenCV")


COMPILED_STAGES, COMPILED_NOTE = _load()
