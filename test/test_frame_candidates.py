"""The frame graph's host side (pure host logic, runs anywhere): the crop window it uploads,
and the candidate record -> grasps: the record's best candidates give find_peaks' grasps, and a
record that cannot is reported, not guessed."""

from __future__ import annotations

import numpy as np
import pytest

from sgdn_ros.core.decoding import DecodeConfig, logit
from sgdn_ros.core.frames import RawImage
from sgdn_ros.core.peaks import find_peaks, neighbourhood_max
from sgdn_ros.gpu.candidates import (
    CANDIDATE_INTS,
    TOP_CANDIDATES,
    decoded_candidates,
    record_ints,
)
from sgdn_ros.gpu.preprocess_kernels import CropWindow

CAPACITY = 4096


def _record(able: np.ndarray, config: DecodeConfig, top_n: int = TOP_CANDIDATES,
            capacity: int = CAPACITY) -> np.ndarray:
    """What the kernels write: the local maxima above the threshold, counted, and the best
    top_n ranked (logit descending, then pixel index), angle class = pixel % 7, width bits."""
    threshold = np.float32(logit(config.confidence_threshold))
    candidates = np.flatnonzero((able >= threshold)
                                & (able == neighbourhood_max(able, config.min_distance)))
    order = np.lexsort((candidates, -able.ravel()[candidates]))
    ranked = candidates[order][:top_n]
    record = np.zeros(1 + CANDIDATE_INTS * top_n, np.int32)
    record[0] = candidates.size if candidates.size <= capacity else capacity + 1
    entries = record[1:1 + CANDIDATE_INTS * ranked.size].reshape(-1, CANDIDATE_INTS)
    entries[:, 0] = ranked
    entries[:, 1] = able.ravel()[ranked].view(np.int32)
    entries[:, 2] = ranked % 7
    entries[:, 3] = (able.ravel()[ranked] / 2).astype(np.float32).view(np.int32)
    return record


def _able(seed: int, size: int = 96) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 2.0, (size, size)).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("min_distance", "max_grasps"), [(1, 100), (3, 5), (10, 1)])
def test_record_gives_find_peaks_pixels(seed, min_distance, max_grasps):
    config = DecodeConfig(confidence_threshold=0.6, min_distance=min_distance,
                          max_grasps=max_grasps)
    able = _able(seed)
    record = _record(able, config)
    decoded = decoded_candidates(record, able.shape[1], CAPACITY, config)
    assert decoded is not None
    rows, cols, classes, able_logits, width_logits = decoded
    want_rows, want_cols = find_peaks(able, logit(config.confidence_threshold), min_distance,
                                      max_grasps)
    assert rows.tolist() == want_rows.tolist() and cols.tolist() == want_cols.tolist()
    assert rows.size > 0
    np.testing.assert_array_equal(able_logits, able[rows, cols])
    np.testing.assert_array_equal(classes, (rows * able.shape[1] + cols) % 7)
    np.testing.assert_array_equal(width_logits, able[rows, cols] / 2)


def test_more_candidates_than_the_record_holds_still_exact_when_enough_are_kept():
    config = DecodeConfig(confidence_threshold=0.5, min_distance=1, max_grasps=5)
    able = _able(7)
    record = _record(able, config, top_n=8)
    assert record[0] > 8  # more candidates than the record holds
    rows, cols, *_ = decoded_candidates(record, able.shape[1], CAPACITY, config)
    want = find_peaks(able, 0.0, 1, 5)
    assert (rows.tolist(), cols.tolist()) == (want[0].tolist(), want[1].tolist())


def test_a_plateau_beyond_the_record_falls_back():
    """A flat map: every pixel is a candidate, the record's first ones suppress each other,
    and fewer than max_grasps survive: only the whole list could say which come next."""
    config = DecodeConfig(confidence_threshold=0.5, min_distance=3, max_grasps=20)
    able = np.ones((40, 40), np.float32)
    record = _record(able, config, top_n=16)
    assert decoded_candidates(record, 40, CAPACITY, config) is None


def test_a_full_candidate_buffer_falls_back():
    config = DecodeConfig(confidence_threshold=0.5)
    able = _able(3)
    record = _record(able, config, capacity=4)
    assert record[0] > 4
    assert decoded_candidates(record, able.shape[1], 4, config) is None


def test_an_empty_record_gives_no_grasp():
    config = DecodeConfig(confidence_threshold=0.99)
    record = np.zeros(record_ints(), np.int32)
    rows, *_ = decoded_candidates(record, 320, CAPACITY, config)
    assert rows.size == 0


def test_record_size_is_about_2_kb():
    assert record_ints() * 4 == 2052


@pytest.mark.parametrize(("encoding", "channels"), [("bgr8", 3), ("bgra8", 4), ("mono8", 1)])
def test_the_crop_window_copies_only_the_rows_and_columns_the_crop_reads(encoding, channels):
    """The bytes the frame graph uploads: the crop's rows and, in each, only its columns, packed
    without the row padding of the message (here 5 bytes a row)."""
    height, width, padding = 12, 10, 5
    step = width * channels + padding
    data = np.arange(height * step, dtype=np.int64).astype(np.uint8)
    image = RawImage(data=data, height=height, width=width, encoding=encoding, step=step)
    window = CropWindow(first_row=3, end_row=9, first_col=2, end_col=7, bytes_per_pixel=channels)
    destination = np.full(window.nbytes + 4, 255, np.uint8)
    window.copy(image, destination)
    pixels = data.reshape(height, step)[:, :width * channels].reshape(height, width, channels)
    assert (window.rows, window.row_bytes) == (6, 5 * channels)
    np.testing.assert_array_equal(destination[:window.nbytes],
                                  pixels[3:9, 2:7].reshape(-1))
    assert np.all(destination[window.nbytes:] == 255), "nothing written past the window"
