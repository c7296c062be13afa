"""Random camera messages for the fuzz: well-formed raw frames of every supported encoding,
size and row padding, and broken ones, each broken in one known way. Which is which is decided
here, from the encodings' documented layouts, not by asking the code under test; so the node's
rejected count can be checked against the number of broken messages sent."""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

# Bytes per pixel of each raw colour encoding the node documents (README, Topics).
BYTES_PER_PIXEL = {"bgr8": 3, "rgb8": 3, "bgra8": 4, "rgba8": 4, "mono8": 1,
                   "bgr16": 6, "rgb16": 6, "bgra16": 8, "rgba16": 8, "mono16": 2}
FOREIGN_ENCODINGS = ("32FC1", "16UC1", "yuv422", "bayer_rggb8", "", "BGR8", "rgb8 ", "8UC3")
DEFECTS = ("unknown encoding", "no pixels", "step too small", "truncated")


@dataclass(frozen=True)
class FuzzFrame:
    """The fields of one Image message; `defect` names how it is broken (None: well-formed)."""

    height: int
    width: int
    step: int
    encoding: str
    is_bigendian: bool
    size: int
    defect: str | None


class FuzzFrames:
    """An endless seeded stream of frames: `broken_fraction` of them broken, sides up to
    `max_height` x `max_width` (a third of the frames no larger than the model's 320 x 320)."""

    def __init__(self, seed: int, max_height: int = 960, max_width: int = 1280,
                 broken_fraction: float = 0.6) -> None:
        self._random = np.random.default_rng(seed)
        self._max = (max_height, max_width)
        self._broken_fraction = broken_fraction
        self.largest_size = max_height * (max_width * max(BYTES_PER_PIXEL.values()) + 64) + 128

    def next(self) -> FuzzFrame:
        random = self._random
        if random.random() >= self._broken_fraction:
            return self._well_formed(str(random.choice(list(BYTES_PER_PIXEL))))
        defect = str(random.choice(DEFECTS))
        if defect == "unknown encoding":
            frame = self._well_formed("bgr8")
            encoding = (str(random.choice(FOREIGN_ENCODINGS)) if random.random() < 0.7
                        else "".join(random.choice(list(string.ascii_letters + string.digits),
                                                   size=int(random.integers(1, 12)))))
            return FuzzFrame(frame.height, frame.width, frame.step, encoding,
                             frame.is_bigendian, frame.size, defect)
        frame = self._well_formed(str(random.choice(list(BYTES_PER_PIXEL))))
        bytes_per_pixel = BYTES_PER_PIXEL[frame.encoding]
        height, width, step, size = frame.height, frame.width, frame.step, frame.size
        if defect == "no pixels":
            if random.random() < 0.5:
                height = 0
            else:
                width = 0
            size = int(random.integers(0, 4096))
        elif defect == "step too small":
            step = int(random.integers(0, width * bytes_per_pixel))
        else:
            size = int(random.integers(0, height * step))
        return FuzzFrame(height, width, step, frame.encoding, frame.is_bigendian, size, defect)

    def _well_formed(self, encoding: str) -> FuzzFrame:
        random = self._random
        limit = (320, 320) if random.random() < 1 / 3 else self._max
        height, width = (int(random.integers(1, side + 1)) for side in limit)
        step = width * BYTES_PER_PIXEL[encoding]
        if random.random() < 0.3:
            step += int(random.integers(1, 65))
        size = height * step + (int(random.integers(1, 129)) if random.random() < 0.2 else 0)
        return FuzzFrame(height, width, step, encoding, bool(random.random() < 0.2), size, None)
