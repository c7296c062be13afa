"""`sgdn-ros torture`: the reliability suite, against the INSTALLED detector over DDS.

Phases: the fuzz (broken and well-formed frames of every kind; counters must sum and the
rejected count equal the broken frames sent), lifecycle cycles (memory and threads sampled),
a flood (latency of every answer, memory and threads every second), and stop races (SIGINT and
SIGTERM in each state, the lifecycle shutdown transition). One table of figures at the end; exit
code 1 when any figure misses its bound (a crash, a non-zero exit, a traceback or ERROR on a
normal stop, counters not summing, memory growth after warm-up, latency p99).

The defaults are the long form (docs/reliability.md); `--short` is the form the test command
runs (about two minutes). Logs of every detector process stay in the work folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import platform
import sys
import tempfile
import time
from dataclasses import dataclass

from sgdn_ros.ros.dds_isolation import isolate_dds


@dataclass(frozen=True)
class TortureOptions:
    fuzz: int = 10_000
    cycles: int = 100
    flood_s: float = 600.0
    rate_hz: float = 30.0
    stops: int = 50
    stops_other: int = 10
    inference_s: float = 1.0
    max_rss_growth_mb: float = 20.0
    max_p99_ms: float = 750.0
    seed: int = 0


SHORT = TortureOptions(fuzz=300, cycles=5, flood_s=20.0, stops=2, stops_other=1)


def add_torture_command(commands) -> None:
    """The `torture` subcommand of `sgdn-ros`."""
    parser = commands.add_parser("torture", help="the reliability suite against the installed "
                                 "detector (ROS); fails on any crash, bad stop or leak")
    parser.add_argument("--short", action="store_true",
                        help="the CI form (about two minutes); options below override it")
    help_texts = {
        "fuzz": "fuzzed image messages", "cycles": "lifecycle cycles",
        "flood_s": "seconds of the flood", "rate_hz": "frames per second of the flood",
        "stops": "stops per signal, idle and flooded",
        "stops_other": "stops per signal while loading and during a long inference, and "
                       "lifecycle shutdown transitions",
        "inference_s": "inference time of the slow model for the long-inference stops",
        "max_rss_growth_mb": "bound on the growth of resident memory after warm-up",
        "max_p99_ms": "bound on the flood's camera-to-grasps latency p99", "seed": "seed"}
    for field in dataclasses.fields(TortureOptions):
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                            help=f"{help_texts[field.name]} (long form: {field.default})")
    parser.add_argument("--work-dir", type=pathlib.Path,
                        help="where the detector logs go (default: a new temporary folder)")
    parser.set_defaults(run=command_torture)


def command_torture(args: argparse.Namespace) -> int:
    base = SHORT if args.short else TortureOptions()
    given = {field.name: getattr(args, field.name) for field in dataclasses.fields(base)
             if getattr(args, field.name) is not None}
    options = dataclasses.replace(base, **given)
    folder = args.work_dir or pathlib.Path(tempfile.mkdtemp(prefix="sgdn-torture-"))
    return run_torture(options, folder)


def run_torture(options: TortureOptions, folder: pathlib.Path) -> int:
    """Run every phase; print the table; 0 when every figure held its bound, else 1."""
    domain = isolate_dds()
    from sgdn_ros.ros.session import RosSession
    from sgdn_ros.tools.torture_phases import Bounds, flood, fuzz_and_cycles
    from sgdn_ros.tools.torture_report import Report
    from sgdn_ros.tools.torture_stops import stop_races

    folder.mkdir(parents=True, exist_ok=True)
    print(f"torture: {options}; ROS_DOMAIN_ID {domain}; logs in {folder}", flush=True)
    bounds = Bounds(options.max_rss_growth_mb, options.max_p99_ms)
    report = Report()
    started = time.monotonic()
    with RosSession("sgdn_torture") as session:
        if options.fuzz or options.cycles:
            fuzz_and_cycles(session, report, folder, options.fuzz, options.cycles,
                            options.seed, bounds)
        if options.flood_s > 0:
            flood(session, report, folder, options.flood_s, options.rate_hz, bounds)
        if options.stops or options.stops_other:
            stop_races(session, report, folder, options.stops, options.stops_other,
                       options.inference_s, options.seed)
    minutes = (time.monotonic() - started) / 60
    print(f"\n{report.table()}\n")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"torture: {minutes:.1f} min on {platform.node()} ({_machine()}, Python "
          f"{platform.python_version()}; load average at the end {load}); logs in {folder}")
    failures = report.failures
    for figure in failures:
        print(f"torture: FAILED: {figure.phase}: {figure.name} = {figure.value} "
              f"(bound {figure.bound})", file=sys.stderr)
    print(f"torture: {'FAILED' if failures else 'passed'}: {len(report.figures)} figures, "
          f"{len(failures)} missed their bounds")
    return 1 if failures else 0


def _machine() -> str:
    """The CPU model and core count (Linux), for the record."""
    try:
        cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]
    return f"{models[0] if models else platform.machine()}, {len(models)} cores"
