"""What the reliability suite (`sgdn-ros torture`) measures and how it judges: one table of
figures, each with its bound and whether it held; the detector process's memory and threads
from /proc; the lines a normal stop must never print; the counts of its last log line."""

from __future__ import annotations

import pathlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# Lines that must not appear in the log of a detector stopped normally.
FORBIDDEN_ON_STOP = ("Traceback", "[ERROR]", "Failed to publish", "terminate called",
                     "Segmentation fault", "core dumped", "Fatal Python error")
_COUNTS = (r"received (?P<received>\d+), processed (?P<processed>\d+), dropped "
           r"(?P<dropped>\d+) \(stale\), rejected (?P<rejected>\d+) \(bad image\), failed "
           r"(?P<failed>\d+)")
_SUMMARY = re.compile(r"stopping \((?P<reason>[^)]*)\): " + _COUNTS)
_STATS_LINE = re.compile(r"\]: " + _COUNTS)


@dataclass(frozen=True)
class Figure:
    phase: str
    name: str
    value: str
    bound: str
    held: bool


class Report:
    """The figures of a run, in the order measured; a figure with a bound fails the run when
    it does not hold."""

    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def add(self, phase: str, name: str, value: object, bound: str = "",
            held: bool = True) -> None:
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        self.figures.append(Figure(phase, name, text, bound, bool(held)))
        print(f"torture: {phase}: {name} = {text}{'' if held else f'  FAILED ({bound})'}",
              flush=True)

    def at_most(self, phase: str, name: str, value: float, bound: float, unit: str = "") -> None:
        self.add(phase, name, value, f"<= {bound:g}{unit}", value <= bound)

    def equal(self, phase: str, name: str, value: object, expected: object) -> None:
        self.add(phase, name, value, f"= {expected}", value == expected)

    @property
    def failures(self) -> list[Figure]:
        return [figure for figure in self.figures if not figure.held]

    def table(self) -> str:
        """The figures as one Markdown table."""
        rows = ["| phase | figure | value | bound | held |", "|---|---|---|---|---|"]
        rows += [f"| {f.phase} | {f.name} | {f.value} | {f.bound} | "
                 f"{'yes' if f.held else '**NO**'} |" for f in self.figures]
        return "\n".join(rows)


class ProcessSample(NamedTuple):
    """A process's resident memory and its threads, by name (Linux thread names: `comm`)."""

    rss_mb: float
    threads: int
    thread_names: Counter[str]


NO_SAMPLE = ProcessSample(float("nan"), -1, Counter())


def process_sample(pid: int) -> ProcessSample | None:
    """Memory and threads of process `pid` from /proc, None once it has gone."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        names = Counter(_thread_name(task) for task in pathlib.Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcessSample(int(fields["VmRSS"].split()[0]) / 1024.0, int(fields["Threads"]), names)


def _thread_name(task: pathlib.Path) -> str:
    try:
        return (task / "comm").read_text().strip()
    except OSError:  # the thread ended between the listing and the read
        return "(ended)"


def new_threads(before: Counter[str], after: Counter[str]) -> str:
    """The threads `after` has beyond `before`, by name (e.g. "2 x dds.udp.7412"): what a
    thread-count failure needs to be diagnosed."""
    extra = after - before
    return ", ".join(f"{count} x {name}" for name, count in sorted(extra.items())) or "none"


def stop_problems(log: str) -> list[str]:
    """The forbidden lines of a stopped detector's log (at most three), and a missing or
    unbalanced final count."""
    problems = [line.strip() for line in log.splitlines()
                if any(word in line for word in FORBIDDEN_ON_STOP)][:3]
    counts = final_counts(log)
    if counts is None:
        problems.append("no final 'stopping (...)' line")
    elif not all_accounted(counts):
        problems.append(f"final counts do not sum: {counts}")
    return problems


def final_counts(log: str) -> dict[str, int] | None:
    """The counters of the detector's last line (`stopping (REASON): received ...`)."""
    return _last_counts(_SUMMARY, log)


def latest_counts(log: str) -> dict[str, int] | None:
    """The counters of the detector's latest periodic stats line (`stats_period_s`)."""
    return _last_counts(_STATS_LINE, log)


def all_accounted(counts: dict[str, int]) -> bool:
    """Every frame received was processed, dropped, rejected or failed: none waits or runs."""
    return counts["received"] == sum(counts[key] for key in
                                     ("processed", "dropped", "rejected", "failed"))


def _last_counts(pattern: re.Pattern[str], log: str) -> dict[str, int] | None:
    matches = list(pattern.finditer(log))
    if not matches:
        return None
    return {key: int(value) for key, value in matches[-1].groupdict().items() if key != "reason"}


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.array(seconds) * 1e3, q)) if seconds else float("nan")

