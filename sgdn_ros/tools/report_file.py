"""A benchmark's report written into a page that also holds sections it does not write."""

from __future__ import annotations

import pathlib
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
