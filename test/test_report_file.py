"""`sgdn-ros bench --write` replaces its own part of docs/performance.md and keeps the sections
other benchmarks and people wrote below the marker line (it used to rewrite the whole page)."""

from __future__ import annotations

import pathlib

from sgdn_ros.tools.report_file import KEEP_BELOW, write_report

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def test_the_part_below_the_marker_is_kept(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nold figures\n\n{KEEP_BELOW}\n\n## Several cameras\n\nkept\n")
    write_report(page, ["# Performance", "", "new figures"])
    assert page.read_text() == (f"# Performance\n\nnew figures\n\n{KEEP_BELOW}\n\n"
                                "## Several cameras\n\nkept\n")


def test_a_new_page_gets_the_marker(tmp_path):
    page = tmp_path / "docs" / "performance.md"
    write_report(page, ["# Performance"])
    write_report(page, ["# Performance", "again"])
    assert page.read_text() == f"# Performance\nagain\n\n{KEEP_BELOW}\n"


def test_the_performance_page_keeps_the_camera_figures():
    text = (DOCS / "performance.md").read_text()
    assert text.count(KEEP_BELOW) == 1
    assert text.index(KEEP_BELOW) < text.index("## Several cameras, one model")
