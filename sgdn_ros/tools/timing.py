"""Wall-clock timing shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_wall_ms(work: Callable[[], object], repeats: int, warmups: int = 1) -> float:
    """Median milliseconds of ``repeats`` calls of ``work`` after ``warmups`` untimed ones
    (first-call allocations and lazy loading stay out of the timing); for work that returns
    only when its results are on the host."""
    for _ in range(warmups):
        work()
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        durations.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(durations)
