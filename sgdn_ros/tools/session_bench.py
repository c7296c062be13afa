"""ONNX Runtime's session settings measured on this machine, for `sgdn-ros bench`.

The settings the backend uses (``SessionTuning()``) against each alternative: threads,
spinning, execution mode, graph optimisation level, memory arena and pattern. Every setting runs
the trained default model in short blocks, the blocks of all settings taking turns, so slow
drifts of a shared machine fall on all of them alike; once as the machine is, and once beside a
process of ours that keeps one core busy, as a camera driver or the rest of a robot would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend, SessionTuning
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.training.scenes import render_tabletop_scene

SETTINGS: dict[str, SessionTuning] = {
    "chosen: threads one per core, spinning (ONNX Runtime's default), sequential, all "
    "optimisations, arena and pattern": SessionTuning(),
    "spinning off": SessionTuning(spinning=False),
    "1 intra-op thread": SessionTuning(intra_op_threads=1),
    "parallel execution, 2 inter-op threads": SessionTuning(parallel=True),
    "graph optimisation extended": SessionTuning(optimization="extended"),
    "graph optimisation basic": SessionTuning(optimization="basic"),
    "memory arena off": SessionTuning(memory_arena=False),
    "memory pattern off": SessionTuning(memory_pattern=False),
}
ROUNDS = 6
BLOCK = 8  # runs per setting per round; the first two, just after the switch, are not counted
# One core kept busy by plain arithmetic (one BLAS thread), as another process would.
_BUSY_NEIGHBOUR = "import numpy as np\nmatrix = np.ones((600, 600))\nwhile True: matrix @ matrix"
_ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                      "MKL_NUM_THREADS")}


def measure_session_settings() -> dict[str, dict[str, float]]:
    """Median inference ms of each setting, {"alone": ..., "busy neighbour": ...}."""
    image, _objects = render_tabletop_scene(3, 480, 640, num_objects=2)
    planes, _geometry = Preprocessor(PreprocessConfig())(image)
    backends = {name: OnnxRuntimeBackend(TRAINED_MODEL, prefer_gpu=False, tuning=tuning,
                                         intra_op_threads=tuning.intra_op_threads)
                for name, tuning in SETTINGS.items()}
    try:
        results = {"alone": _median_ms(backends, planes)}
        neighbour = subprocess.Popen([sys.executable, "-c", _BUSY_NEIGHBOUR],
                                     env={**os.environ, **_ONE_THREAD})
        try:
            results["busy neighbour"] = _median_ms(backends, planes)
        finally:
            neighbour.kill()
            neighbour.wait()
    finally:
        for backend in backends.values():
            backend.close()
    return results


def _median_ms(backends: dict[str, OnnxRuntimeBackend], planes: np.ndarray) -> dict[str, float]:
    seconds: dict[str, list[float]] = {name: [] for name in backends}
    order = np.random.default_rng(13)
    for _round in range(ROUNDS):
        # A new order each round, so no setting always runs just after the same other one.
        for name in order.permutation(list(backends)).tolist():
            backend = backends[name]
            for run in range(BLOCK):
                started = time.perf_counter()
                backend.infer(planes)
                if run >= 2:
                    seconds[name].append(time.perf_counter() - started)
            time.sleep(0.05)  # a spinning pool stops spinning before the next setting runs
    return {name: float(np.median(values)) * 1e3 for name, values in seconds.items()}


def session_report(results: dict[str, dict[str, float]]) -> list[str]:
    chosen = next(iter(SETTINGS))
    alone, busy = results["alone"], results["busy neighbour"]
    lines = [
        "## ONNX Runtime session settings (`SessionTuning`)",
        "",
        f"Inference of the trained model on one frame, {ROUNDS} rounds of {BLOCK - 2} timed "
        "runs per setting, the settings taking turns in a new order each round; as the "
        "machine is (`alone`), and beside a process of ours keeping one core busy. Ratios: the "
        "setting's time over the chosen one's (above 1: slower).",
        "",
        "| setting | alone median ms | alone / chosen | busy neighbour median ms | "
        "busy / chosen |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {alone[name]:.1f} | {alone[name] / alone[chosen]:.2f} | "
              f"{busy[name]:.1f} | {busy[name] / busy[chosen]:.2f} |" for name in SETTINGS]
    return lines
