"""What benchmark reports share: the machine they name, and their page, written into one that
also holds sections the benchmark does not write."""

from __future__ import annotations

import os
import pathlib
import platform
from collections.abc import Sequence

KEEP_BELOW = ("<!-- `sgdn-ros bench --write` rewrites the page above this line and keeps "
              "everything below it (figures of other benchmarks, notes written by hand). -->")


def write_report(path: pathlib.Path, lines: Sequence[str]) -> None:
    """Replace the page's generated part with `lines`; what lies from ``KEEP_BELOW`` on stays
    (a new page gets the line, so that sections added later under it are kept too)."""
    kept = KEEP_BELOW + "\n"
    if path.exists():
        text = path.read_text()
        if KEEP_BELOW in text:
            kept = text[text.index(KEEP_BELOW):]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n\n" + kept)


def processor_and_cores() -> str:
    """The processor a report names (from /proc/cpuinfo where there is one) and its cores:
    figures mean something only beside the machine they came from."""
    name = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"
