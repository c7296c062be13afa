"""Decoding: the fast decoder against the whole-map reference, peaks, thresholds and geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgdn_ros.core.decoding import (
    DECODE_MODES,
    DecodeConfig,
    DecodingError,
    Grasp,
    OutputLayout,
    confidence_map,
    decode_grasps,
    decode_grasps_full,
    output_layout,
)
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.peaks import find_peaks, keep_apart, neighbourhood_max, suppress_close_peaks

IDENTITY = CropGeometry(top=0, left=0, scale=1.0, image_height=64, image_width=80)


def random_outputs(
    rng: np.random.Generator, classes: int, width_channels: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unstructured logits shaped like the ONNX outputs, scaled so some pixels pass 0.9."""
    able = rng.normal(0.0, 2.0, (1, 1, height, width)).astype(np.float32)
    angle = rng.normal(size=(1, classes, height, width)).astype(np.float32)
    width_logits = rng.normal(size=(1, width_channels, height, width)).astype(np.float32)
    return able, angle, width_logits


def structured_outputs(
    rng: np.random.Generator, classes: int, width_channels: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blobs, a plateau, quantised (tied) logits and one dominant angle class per blob."""
    rows, cols = np.mgrid[0:height, 0:width]
    able = np.full((height, width), -6.0)
    angle = rng.normal(0.0, 0.3, (classes, height, width))
    for _ in range(6):
        row, col = rng.integers(0, height), rng.integers(0, width)
        sigma, peak = rng.uniform(2.0, 6.0), rng.uniform(-1.0, 6.0)
        blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))
        able = np.maximum(able, -6.0 + (peak + 6.0) * blob)
        angle[rng.integers(0, classes)] += 4.0 * blob
    able[5:10, 7:12] = 4.0
    able = np.round(able * 4) / 4
    width_logits = rng.normal(0.0, 1.5, (1, width_channels, height, width))
    return (able[np.newaxis, np.newaxis].astype(np.float32),
            angle[np.newaxis].astype(np.float32), width_logits.astype(np.float32))


def assert_same_grasps(fast: list[Grasp], full: list[Grasp]) -> None:
    assert [(g.crop_row, g.crop_col, g.angle_class) for g in fast] == [
        (g.crop_row, g.crop_col, g.angle_class) for g in full
    ]
    for quick, reference in zip(fast, full):
        assert quick.row == reference.row and quick.col == reference.col
        assert quick.angle == pytest.approx(reference.angle, rel=1e-12)
        assert quick.confidence == pytest.approx(reference.confidence, rel=1e-12)
        assert quick.crop_width_px == pytest.approx(reference.crop_width_px, rel=1e-12)
        assert quick.width_px == pytest.approx(reference.width_px, rel=1e-12)


CONFIGS = [
    dict(confidence_threshold=0.5, min_distance=10, max_grasps=5),
    dict(confidence_threshold=0.9, min_distance=3, max_grasps=20),
    dict(confidence_threshold=0.0, min_distance=1, max_grasps=50),
    dict(confidence_threshold=0.3, min_distance=2, max_grasps=7),
    dict(confidence_threshold=0.99, min_distance=25, max_grasps=1),
]


@pytest.mark.parametrize("make_outputs", [random_outputs, structured_outputs])
@pytest.mark.parametrize("classes", [18, 120])
@pytest.mark.parametrize("per_class_width", [False, True])
@pytest.mark.parametrize("mode", DECODE_MODES)
def test_fast_decoder_matches_full_reference(make_outputs, classes, per_class_width, mode):
    rng = np.random.default_rng(classes + 7 * per_class_width)
    outputs = make_outputs(rng, classes, classes if per_class_width else 1, 64, 80)
    geometry = CropGeometry(top=80, left=160, scale=1.0, image_height=480, image_width=640)
    found_any = False
    for settings in CONFIGS:
        config = DecodeConfig(mode=mode, max_width_px=150.0, metres_per_pixel=0.001, **settings)
        fast = decode_grasps(*outputs, geometry, config)
        assert_same_grasps(fast, decode_grasps_full(*outputs, geometry, config))
        found_any = found_any or bool(fast)
        if mode == "peaks":
            assert len(fast) <= config.max_grasps
        else:
            assert len(fast) <= 1
    assert found_any


def test_fast_decoder_matches_full_reference_at_network_size():
    rng = np.random.default_rng(320)
    outputs = structured_outputs(rng, 120, 120, 320, 320)
    geometry = CropGeometry(top=80, left=160, scale=1.0, image_height=480, image_width=640)
    fast = decode_grasps(*outputs, geometry, DecodeConfig())
    assert len(fast) >= 2
    assert_same_grasps(fast, decode_grasps_full(*outputs, geometry, DecodeConfig()))


def test_fast_decoder_accepts_outputs_without_batch_dimension_and_float16():
    rng = np.random.default_rng(3)
    able, angle, width = structured_outputs(rng, 18, 18, 40, 50)
    config = DecodeConfig(confidence_threshold=0.2, min_distance=2)
    batched = decode_grasps(able, angle, width, IDENTITY, config)
    assert batched == decode_grasps(able[0, 0], angle[0], width[0], IDENTITY, config)
    assert batched == decode_grasps(able[0], angle[0], width[0], IDENTITY, config)
    half = [array.astype(np.float16) for array in (able, angle, width)]
    assert_same_grasps(decode_grasps(*half, IDENTITY, config),
                       decode_grasps_full(*half, IDENTITY, config))


def test_decoding_leaves_the_outputs_unchanged():
    rng = np.random.default_rng(4)
    outputs = structured_outputs(rng, 18, 1, 40, 50)
    copies = [array.copy() for array in outputs]
    decode_grasps(*outputs, IDENTITY, DecodeConfig(confidence_threshold=0.1))
    decode_grasps_full(*outputs, IDENTITY, DecodeConfig(confidence_threshold=0.1))
    for array, copy in zip(outputs, copies):
        np.testing.assert_array_equal(array, copy)


def brute_force_peaks(
    score: np.ndarray, threshold: float, min_distance: int, max_peaks: int
) -> list[tuple[int, int]]:
    """The peak definition written out pixel by pixel."""
    candidates = []
    for row in range(score.shape[0]):
        for col in range(score.shape[1]):
            window = score[max(row - min_distance, 0):row + min_distance + 1,
                           max(col - min_distance, 0):col + min_distance + 1]
            if score[row, col] >= threshold and score[row, col] == window.max():
                candidates.append((-score[row, col], row, col))
    kept: list[tuple[int, int]] = []
    for _, row, col in sorted(candidates):
        if len(kept) < max_peaks and all(
            max(abs(row - kept_row), abs(col - kept_col)) > min_distance
            for kept_row, kept_col in kept
        ):
            kept.append((row, col))
    return kept


@pytest.mark.parametrize("seed", range(40))
def test_find_peaks_matches_brute_force_definition(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 24, size=2))
    levels = rng.integers(2, 12)
    score = rng.integers(0, levels, size=shape).astype(rng.choice([np.float32, np.float64]))
    threshold = float(rng.integers(0, levels))
    min_distance = int(rng.integers(0, 5))
    max_peaks = int(rng.integers(1, 12))
    rows, cols = find_peaks(score, threshold, min_distance, max_peaks)
    expected = brute_force_peaks(score, threshold, min_distance, max_peaks)
    assert list(zip(rows.tolist(), cols.tolist())) == expected


@pytest.mark.parametrize("seed", range(40))
def test_find_peaks_matches_brute_force_definition_on_continuous_scores(seed):
    """No two scores equal (as a network's float32 logits): no candidate is suppressed."""
    rng = np.random.default_rng(1000 + seed)
    score = rng.normal(size=tuple(rng.integers(1, 30, size=2))).astype(np.float32)
    threshold = float(rng.normal())
    min_distance, max_peaks = int(rng.integers(0, 6)), int(rng.integers(1, 12))
    rows, cols = find_peaks(score, threshold, min_distance, max_peaks)
    expected = brute_force_peaks(score, threshold, min_distance, max_peaks)
    assert list(zip(rows.tolist(), cols.tolist())) == expected


@pytest.mark.parametrize("levels", [None, 3, 6])
def test_keep_apart_keeps_what_the_greedy_pass_keeps(levels):
    """Local maxima sorted best first, continuous scores (the shortcut) and quantised ones
    (ties on plateaus: the greedy pass): the same indices as ``suppress_close_peaks``."""
    rng = np.random.default_rng(7 if levels is None else levels)
    suppressed = 0
    for _ in range(30):
        score = rng.normal(size=(40, 50)).astype(np.float32)
        if levels is not None:
            score = np.round(score * levels / 3).astype(np.float32)
        min_distance, max_peaks = int(rng.integers(0, 5)), int(rng.integers(1, 200))
        maxima = np.flatnonzero(score == neighbourhood_max(score, min_distance))
        order = np.argsort(-score.ravel()[maxima], kind="stable")
        rows, cols = np.divmod(maxima[order], score.shape[1])
        ordered = score.ravel()[maxima[order]]
        kept = keep_apart(rows, cols, ordered, min_distance, max_peaks)
        assert kept.tolist() == suppress_close_peaks(rows, cols, min_distance, max_peaks)
        suppressed += kept.size < min(rows.size, max_peaks)
    assert (suppressed > 0) == (levels is not None)


def test_find_peaks_reduces_a_plateau_to_its_first_pixel():
    score = np.zeros((30, 30), np.float32)
    score[10:15, 12:17] = 5.0
    rows, cols = find_peaks(score, 1.0, 4, 10)
    assert (rows.tolist(), cols.tolist()) == ([10], [12])
    rows, cols = find_peaks(score, 1.0, 2, 10)
    assert list(zip(rows.tolist(), cols.tolist())) == [(10, 12), (10, 15), (13, 12), (13, 15)]


def test_find_peaks_orders_by_score_then_row_major_and_respects_min_distance():
    score = np.zeros((40, 40), np.float32)
    score[30, 5] = score[2, 30] = 7.0
    score[20, 20] = 9.0
    score[22, 22] = 8.0
    rows, cols = find_peaks(score, 0.5, 3, 10)
    assert list(zip(rows.tolist(), cols.tolist())) == [(20, 20), (2, 30), (30, 5)]
    rows, cols = find_peaks(score, 0.5, 1, 10)
    assert list(zip(rows.tolist(), cols.tolist())) == [(20, 20), (22, 22), (2, 30), (30, 5)]
    rows, _ = find_peaks(score, 0.5, 1, 2)
    assert rows.tolist() == [20, 22]


def test_find_peaks_includes_border_pixels():
    score = np.zeros((10, 12), np.float32)
    score[0, 0], score[9, 11] = 3.0, 2.0
    rows, cols = find_peaks(score, 1.0, 5, 5)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0), (9, 11)]


def test_find_peaks_threshold_is_inclusive_and_infinite_thresholds_work():
    score = np.array([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    assert find_peaks(score, 2.0, 1, 5)[0].tolist() == [1]
    assert find_peaks(score, np.nextafter(np.float32(2.0), np.float32(3.0)), 1, 5)[0].size == 0
    assert find_peaks(score, 2.0000000001, 1, 5)[0].size == 0
    assert find_peaks(score, -math.inf, 1, 5)[0].tolist() == [1]
    assert find_peaks(score, math.inf, 1, 5)[0].size == 0


@pytest.mark.parametrize("mode", DECODE_MODES)
def test_threshold_zero_keeps_even_very_unlikely_grasps(mode):
    able = np.full((1, 1, 20, 20), -60.0, np.float32)
    able[0, 0, 8, 9] = -50.0
    angle, width = np.zeros((1, 18, 20, 20), np.float32), np.zeros((1, 1, 20, 20), np.float32)
    config = DecodeConfig(mode=mode, confidence_threshold=0.0, max_grasps=1)
    grasps = decode_grasps(able, angle, width, IDENTITY, config)
    assert [(g.crop_row, g.crop_col) for g in grasps] == [(8, 9)]
    assert 0.0 < grasps[0].confidence < 1e-20
    assert_same_grasps(grasps, decode_grasps_full(able, angle, width, IDENTITY, config))


@pytest.mark.parametrize("mode", DECODE_MODES)
def test_threshold_one_keeps_nothing_and_threshold_is_inclusive(mode):
    able = np.full((1, 1, 20, 20), -3.0, np.float32)
    able[0, 0, 4, 4] = 30.0
    angle, width = np.zeros((1, 18, 20, 20), np.float32), np.zeros((1, 1, 20, 20), np.float32)
    certain = DecodeConfig(mode=mode, confidence_threshold=1.0)
    assert decode_grasps(able, angle, width, IDENTITY, certain) == []
    assert decode_grasps_full(able, angle, width, IDENTITY, certain) == []
    able[0, 0, 4, 4] = 0.0
    half = DecodeConfig(mode=mode, confidence_threshold=0.5)
    grasps = decode_grasps(able, angle, width, IDENTITY, half)
    assert [(g.crop_row, g.crop_col, g.confidence) for g in grasps] == [(4, 4, 0.5)]
    just_above = DecodeConfig(mode=mode, confidence_threshold=0.5 + 1e-9)
    assert decode_grasps(able, angle, width, IDENTITY, just_above) == []


def test_max_mode_returns_the_global_maximum_which_is_also_the_best_peak():
    rng = np.random.default_rng(11)
    able, angle, width = random_outputs(rng, 18, 1, 30, 40)
    able[0, 0, 17, 23] = 20.0
    grasps = decode_grasps(able, angle, width, IDENTITY, DecodeConfig(mode="max"))
    assert [(g.crop_row, g.crop_col) for g in grasps] == [(17, 23)]
    peaks = decode_grasps(able, angle, width, IDENTITY, DecodeConfig(mode="peaks", min_distance=2))
    assert peaks[0] == grasps[0] and len(peaks) == 5


@pytest.mark.parametrize("classes", [18, 120])
def test_angle_class_k_decodes_to_k_over_classes_times_pi(classes):
    able = np.full((1, 1, 12, 12), -5.0, np.float32)
    able[0, 0, 6, 6] = 5.0
    for angle_class in (0, 1, classes // 3, classes - 1):
        angle = np.zeros((1, classes, 12, 12), np.float32)
        angle[0, angle_class, 6, 6] = 1.0
        width = np.zeros((1, 1, 12, 12), np.float32)
        (grasp,) = decode_grasps(able, angle, width, IDENTITY, DecodeConfig())
        assert grasp.angle_class == angle_class
        assert grasp.angle == pytest.approx(angle_class / classes * math.pi, abs=1e-15)
        assert 0.0 <= grasp.angle < math.pi


@pytest.mark.parametrize("per_class_width", [False, True])
def test_width_is_sigmoid_of_the_chosen_class_channel_times_max_width(per_class_width):
    classes = 18
    able = np.full((1, 1, 12, 12), -5.0, np.float32)
    able[0, 0, 3, 8] = 5.0
    angle = np.zeros((1, classes, 12, 12), np.float32)
    angle[0, 7, 3, 8] = 2.0
    width = np.full((1, classes if per_class_width else 1, 12, 12), -4.0, np.float32)
    width[0, 7 if per_class_width else 0, 3, 8] = math.log(3.0)
    (grasp,) = decode_grasps(able, angle, width, IDENTITY, DecodeConfig(max_width_px=120.0))
    assert grasp.crop_width_px == pytest.approx(0.75 * 120.0)
    assert grasp.width_px == pytest.approx(90.0)


def single_grasp_outputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    able = np.full((1, 1, 50, 60), -5.0, np.float32)
    able[0, 0, 21, 34] = 3.0
    angle = np.zeros((1, 18, 50, 60), np.float32)
    angle[0, 9, 21, 34] = 1.0
    return able, angle, np.zeros((1, 1, 50, 60), np.float32)


def test_position_and_width_map_through_crop_offset_and_scale():
    config = DecodeConfig(max_width_px=100.0, metres_per_pixel=0.002)
    shifted = CropGeometry(top=80, left=160, scale=1.0, image_height=480, image_width=640)
    (grasp,) = decode_grasps(*single_grasp_outputs(), shifted, config)
    assert (grasp.crop_row, grasp.crop_col) == (21, 34)
    assert (grasp.row, grasp.col) == (101.0, 194.0)
    assert grasp.crop_width_px == pytest.approx(50.0) and grasp.width_px == pytest.approx(50.0)
    assert grasp.width_m == pytest.approx(0.1)

    resized = CropGeometry(top=-10, left=30, scale=2.0, image_height=200, image_width=240)
    (grasp,) = decode_grasps(*single_grasp_outputs(), resized, config)
    assert (grasp.row, grasp.col) == resized.to_image(21, 34)
    assert 5.0 < grasp.row < 6.0 and 31.5 < grasp.col < 32.5
    assert grasp.crop_width_px == pytest.approx(50.0)
    assert grasp.width_px == pytest.approx(resized.length_to_image(50.0)) == pytest.approx(25.0)
    assert grasp.width_m == pytest.approx(0.05)


@pytest.mark.parametrize("decode", [decode_grasps, decode_grasps_full])
def test_a_metric_width_map_gives_metres_and_pixels_only_with_a_known_scale(decode):
    """The author's width map is sigmoid x max_width_m (0.1 m); sigmoid(0) = 0.5 here."""
    resized = CropGeometry(top=-10, left=30, scale=2.0, image_height=200, image_width=240)
    (grasp,) = decode(*single_grasp_outputs(), resized, DecodeConfig(width_units="metres"))
    assert grasp.width_m == pytest.approx(0.05, rel=1e-12)
    assert math.isnan(grasp.width_px) and math.isnan(grasp.crop_width_px)
    known = DecodeConfig(width_units="metres", max_width_m=0.2, metres_per_pixel=0.002)
    (grasp,) = decode(*single_grasp_outputs(), resized, known)
    assert grasp.width_m == pytest.approx(0.1, rel=1e-12)
    assert grasp.width_px == pytest.approx(50.0) and grasp.crop_width_px == pytest.approx(100.0)


def test_width_in_metres_is_nan_when_the_scale_is_unknown():
    (grasp,) = decode_grasps(*single_grasp_outputs(), IDENTITY, DecodeConfig(max_width_px=80.0))
    assert math.isnan(grasp.width_m)
    assert grasp.width_px == pytest.approx(40.0)


def test_output_layout_reports_classes_and_width_channels():
    able = np.zeros((1, 1, 8, 9), np.float32)
    assert output_layout(able, np.zeros((1, 120, 8, 9), np.float32),
                         np.zeros((1, 1, 8, 9), np.float32)) == OutputLayout(120, 1)
    assert output_layout(able[0, 0], np.zeros((18, 8, 9), np.float32),
                         np.zeros((18, 8, 9), np.float32)) == OutputLayout(18, 18)


def good_outputs() -> dict[str, np.ndarray]:
    return dict(able=np.zeros((1, 1, 8, 9), np.float32), angle=np.zeros((1, 18, 8, 9), np.float32),
                width=np.zeros((1, 1, 8, 9), np.float32))


@pytest.mark.parametrize("name, bad, message", [
    ("angle", np.zeros((1, 18, 8, 10), np.float32),
     "angle maps are (8, 10), width maps (8, 9) and the able map (8, 9) (H, W); angle and width "
     "must share H and W, the able map's or smaller"),
    ("width", np.zeros((1, 1, 7, 9), np.float32),
     "angle maps are (8, 9), width maps (7, 9) and the able map (8, 9)"),
    ("width", np.zeros((1, 5, 8, 9), np.float32), "width has 5 channels; expected 1 or one per"),
    ("able", np.zeros((1, 2, 8, 9), np.float32), "able must have one channel, got 2"),
    ("able", np.zeros((2, 1, 8, 9), np.float32), "able has a batch of 2 images"),
    ("angle", np.zeros((1, 1, 18, 8, 9), np.float32), "angle must have shape (1, C, H, W)"),
    ("angle", np.zeros((1, 0, 8, 9), np.float32), "angle is empty"),
    ("able", np.zeros((1, 1, 8, 9), np.int32), "able must hold floating-point logits"),
    ("width", [[[0.0]]], "width must be a numpy array, got list"),
])
def test_bad_output_shapes_raise_decoding_error_naming_the_problem(name, bad, message):
    outputs = good_outputs() | {name: bad}
    for decode in (output_layout, lambda *maps: decode_grasps(*maps, IDENTITY, DecodeConfig()),
                   lambda *maps: decode_grasps_full(*maps, IDENTITY, DecodeConfig())):
        with pytest.raises(DecodingError, match=message.replace("(", r"\(").replace(")", r"\)")):
            decode(outputs["able"], outputs["angle"], outputs["width"])


@pytest.mark.parametrize("settings, message", [
    (dict(mode="argmax"), "mode must be one of"),
    (dict(confidence_threshold=1.5), "confidence_threshold must be in"),
    (dict(confidence_threshold=float("nan")), "confidence_threshold must be in"),
    (dict(min_distance=0), "min_distance must be an integer >= 1"),
    (dict(min_distance=2.5), "min_distance must be an integer >= 1"),
    (dict(max_grasps=0), "max_grasps must be an integer >= 1"),
    (dict(max_grasps=True), "max_grasps must be an integer >= 1"),
    (dict(max_width_px=0.0), "max_width_px must be positive and finite"),
    (dict(max_width_px=float("inf")), "max_width_px must be positive and finite"),
    (dict(metres_per_pixel=-0.001), "metres_per_pixel must be finite and >= 0"),
    (dict(metres_per_pixel="0.001"), "metres_per_pixel must be finite and >= 0"),
    (dict(max_width_m=0.0), "max_width_m must be positive and finite"),
    (dict(width_units="mm"), "width_units must be one of"),
])
def test_bad_settings_raise_decoding_error_naming_the_setting(settings, message):
    with pytest.raises(DecodingError, match=message):
        DecodeConfig(**settings)


def test_find_peaks_rejects_bad_arguments():
    score = np.zeros((5, 5), np.float32)
    with pytest.raises(DecodingError, match="score must be a non-empty 2-D numpy array"):
        find_peaks(np.zeros((1, 5, 5), np.float32), 0.0, 1, 1)
    with pytest.raises(DecodingError, match="threshold must be a number"):
        find_peaks(score, float("nan"), 1, 1)
    with pytest.raises(DecodingError, match="max_peaks must be an integer >= 1"):
        find_peaks(score, 0.0, 1, 0)


def test_confidence_map_is_float32_sigmoid_of_the_able_map():
    able = np.array([[[[-100.0, 0.0, math.log(3.0), 100.0]]]], np.float32)
    confidence = confidence_map(able)
    assert confidence.shape == (1, 4) and confidence.dtype == np.float32
    np.testing.assert_allclose(confidence, [[0.0, 0.5, 0.75, 1.0]], atol=1e-7)
    np.testing.assert_array_equal(confidence_map(able[0, 0]), confidence)
