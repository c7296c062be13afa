"""The frame graph's fixed-size candidate record -> grasps, on the host (no CUDA here).

Per frame the graph copies back one record of ``record_ints(top_n)`` int32: the number of
candidate pixels the kernel found (local maxima above the threshold in "peaks" mode, the best
pixel in "max" mode), then the best ``top_n`` of them, best first (logit descending, ties in
row-major order, as ``find_peaks`` orders them), each as (pixel index, able logit bits, angle
class, width logit bits). What remains here is the greedy suppression over at most ``top_n``
candidates (skipped when no two of their logits are equal: ``keep_apart``), then the grasps
built by the code every path shares.

When is the record enough? Greedy suppression walks the candidates best first and its choice
of each depends only on those before it, so the first ``top_n`` give the whole list's result
as long as ``max_grasps`` are kept among them, or there were no more than ``top_n``. Otherwise
(more than ``top_n`` candidates and fewer kept, or more candidates than the kernel's buffer
holds) ``decoded_candidates`` returns None and the caller decodes that frame step by step.
Local maxima at least ``min_distance`` apart all survive suppression (only ties on a plateau
suppress each other), so with ``top_n`` above the largest ``max_grasps`` (100) that takes a
plateau of over ``top_n - 100`` equal pixels.
"""

from __future__ import annotations

import numpy as np

from sgdn_ros.core.decoding import DecodeConfig, Grasp, grasps_at_pixels, sigmoid64
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.peaks import keep_apart

CANDIDATE_INTS = 4  # pixel index, able logit bits, angle class, width logit bits
TOP_CANDIDATES = 128  # above the largest max_grasps (100): a 2,052-byte record per frame

Decoded = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def record_ints(top_n: int = TOP_CANDIDATES) -> int:
    """int32 values in one frame's record: the count, then ``top_n`` candidates."""
    return 1 + CANDIDATE_INTS * top_n


def decoded_candidates(record: np.ndarray, width: int, capacity: int, config: DecodeConfig
                       ) -> Decoded | None:
    """(rows, cols, angle classes, able logits, width logits) of the kept grasps, best first,
    or None when the record cannot give the step-by-step result (module docstring).

    ``record`` is one frame's int32 record, ``width`` the map's width, ``capacity`` how many
    candidates the kernel could store."""
    count = int(record[0])
    if count > capacity:
        return None
    top_n = (record.size - 1) // CANDIDATE_INTS
    stored = min(count, top_n)
    entries = record[1:1 + CANDIDATE_INTS * stored].reshape(stored, CANDIDATE_INTS)
    rows, cols = np.divmod(entries[:, 0], width)
    kept = keep_apart(rows, cols, entries[:, 1].view(np.float32), config.min_distance,
                      config.max_grasps)
    if count > top_n and len(kept) < config.max_grasps:
        return None
    chosen = entries[kept]
    return (rows[kept], cols[kept], chosen[:, 2], chosen[:, 1].view(np.float32),
            chosen[:, 3].view(np.float32))


def grasps_from_decoded(decoded: Decoded, num_angle_classes: int, geometry: CropGeometry,
                        config: DecodeConfig) -> list[Grasp]:
    """Grasps from decoded pixels and logits, as every GPU decoding builds them."""
    rows, cols, classes, able_logits, width_logits = decoded
    crop_widths = sigmoid64(width_logits) * config.max_width_px
    return grasps_at_pixels(rows, cols, classes, sigmoid64(able_logits), crop_widths,
                            num_angle_classes, geometry, config)
