"""Colour and depth frames of one camera, paired by their stamps.

A driver publishes the two streams separately, and either may lose a frame (best effort) or
arrive a little later. A colour frame and a depth frame belong together when their stamps lie
within ``slop_s`` of each other (RealSense's aligned depth carries the colour frame's stamp, so
0 would do there; other drivers stamp each sensor on its own clock). Like the detector's
one-frame slot, the pairer never queues: it keeps only the last few frames of each stream,
pairs the newest match, and counts every frame left behind unmatched.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")

COLOUR, DEPTH = "colour", "depth"


@dataclass(frozen=True)
class Pair(Generic[Item]):
    """A colour frame and the depth frame taken with it."""

    colour: Item
    depth: Item
    colour_stamp_ns: int
    depth_stamp_ns: int


class StampPairer(Generic[Item]):
    """Pairs frames of two streams whose stamps differ by at most ``slop_s``.

    ``add`` returns the pair a new frame completes (its closest partner in stamp), or None. A
    pair releases every older frame of both streams: those can no longer pair with anything
    newer, and are counted in ``unmatched``. At most ``keep`` frames per stream wait; older
    ones are counted too. Safe to call from several callback threads.
    """

    def __init__(self, slop_s: float, keep: int = 4) -> None:
        if not slop_s >= 0.0:
            raise ValueError(f"slop_s must be >= 0 seconds, got {slop_s!r}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep!r}")
        self._slop_ns = round(slop_s * 1e9)
        self._waiting: dict[str, collections.deque[tuple[int, Item]]] = {
            COLOUR: collections.deque(), DEPTH: collections.deque()}
        self._keep = keep
        self._lock = threading.Lock()
        self.unmatched = 0

    def add(self, stream: str, stamp_ns: int, item: Item) -> Pair[Item] | None:
        """Offer a frame of ``stream`` (``COLOUR`` or ``DEPTH``) stamped ``stamp_ns``."""
        if stream not in self._waiting:
            raise ValueError(f"stream must be {COLOUR!r} or {DEPTH!r}, got {stream!r}")
        other = DEPTH if stream == COLOUR else COLOUR
        with self._lock:
            partner = self._closest(other, stamp_ns)
            if partner is None:
                self._wait(stream, stamp_ns, item)
                return None
            partner_stamp, partner_item = partner
            self._release_up_to(other, partner_stamp)
            self._release_up_to(stream, stamp_ns)
            if stream == COLOUR:
                return Pair(item, partner_item, stamp_ns, partner_stamp)
            return Pair(partner_item, item, partner_stamp, stamp_ns)

    def clear(self) -> None:
        """Forget the waiting frames (deactivation); they count as unmatched."""
        with self._lock:
            for waiting in self._waiting.values():
                self.unmatched += len(waiting)
                waiting.clear()

    def _closest(self, stream: str, stamp_ns: int) -> tuple[int, Item] | None:
        candidates = [(abs(stamp - stamp_ns), index) for index, (stamp, _item)
                      in enumerate(self._waiting[stream])
                      if abs(stamp - stamp_ns) <= self._slop_ns]
        if not candidates:
            return None
        _gap, index = min(candidates)
        return self._waiting[stream][index]

    def _wait(self, stream: str, stamp_ns: int, item: Item) -> None:
        waiting = self._waiting[stream]
        waiting.append((stamp_ns, item))
        while len(waiting) > self._keep:
            waiting.popleft()
            self.unmatched += 1

    def _release_up_to(self, stream: str, stamp_ns: int) -> None:
        """Drop the frames stamped up to ``stamp_ns``: the paired one, and older ones unmatched."""
        waiting = self._waiting[stream]
        kept = collections.deque((stamp, item) for stamp, item in waiting if stamp > stamp_ns)
        released = len(waiting) - len(kept)
        paired_here = any(stamp == stamp_ns for stamp, _item in waiting)
        self.unmatched += released - (1 if paired_here else 0)
        self._waiting[stream] = kept
