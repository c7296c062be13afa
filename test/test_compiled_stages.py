"""The compiled CPU stages (src/cpu_stages.c, built by colcon) write the planes OpenCV's
lookups write, find the peaks the NumPy and OpenCV search finds, on every kind of map, and read
the angle classes and width logits PixelSampler reads, all bit for bit; maps holding NaN are
refused."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from sgdn_ros.core import compiled_stages
from sgdn_ros.core.compiled_stages import COMPILED_NOTE, COMPILED_STAGES
from sgdn_ros.core.decoding import (
    DecodeConfig,
    DecodingError,
    classes_and_width_logits,
    decode_grasps,
)
from sgdn_ros.core.depth_planes import depth_bgr_planes
from sgdn_ros.core.frames import RawImage, pixel_layout
from sgdn_ros.core.geometry import CropGeometry
from sgdn_ros.core.peaks import box_find_peaks, checked_peak_score, find_peaks
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.core.reference_stages import reference_find_peaks

needs_compiled = pytest.mark.skipif(COMPILED_STAGES is None, reason=COMPILED_NOTE)


def test_a_colcon_build_has_the_compiled_search():
    """The messages exist only in a colcon build, which also compiles the search."""
    if importlib.util.find_spec("sgdn_ros.msg") is None:
        pytest.skip(f"not a colcon build of the package (no generated messages): {COMPILED_NOTE}")
    assert COMPILED_STAGES is not None, COMPILED_NOTE


def random_map(rng: np.random.Generator, kind: str) -> np.ndarray:
    shape = tuple(int(side) for side in rng.integers(1, 48, size=2))
    if kind == "continuous":
        return rng.normal(size=shape).astype(np.float32)
    if kind == "quantised":  # ties and plateaus everywhere
        return rng.integers(0, 4, size=shape).astype(np.float32)
    if kind == "constant":
        return np.full(shape, 1.5, np.float32)
    sparse = rng.normal(size=shape) * (rng.random(shape) > 0.8)  # mostly zero, a few blobs
    return sparse.astype(np.float32)


@needs_compiled
@pytest.mark.parametrize("kind", ["continuous", "quantised", "constant", "sparse"])
@pytest.mark.parametrize("seed", range(25))
def test_compiled_and_numpy_searches_find_the_same_peaks(kind, seed):
    rng = np.random.default_rng(seed)
    for _ in range(8):
        score = random_map(rng, kind)
        threshold = float(rng.choice([-math.inf, -0.5, 0.0, 1.0, 1.5, 3.0, math.inf]))
        min_distance, max_peaks = int(rng.integers(0, 12)), int(rng.integers(1, 30))
        compiled = find_peaks(score, threshold, min_distance, max_peaks)
        numpy_box = box_find_peaks(checked_peak_score(score, threshold, min_distance, max_peaks),
                                   threshold, min_distance, max_peaks)
        whole_map = reference_find_peaks(score, threshold, min_distance, max_peaks)
        for other in (numpy_box, whole_map):
            np.testing.assert_array_equal(compiled[0], other[0])
            np.testing.assert_array_equal(compiled[1], other[1])


@needs_compiled
def test_the_compiled_search_takes_views_and_leaves_the_map_unchanged():
    rng = np.random.default_rng(3)
    frame = rng.normal(size=(2, 1, 64, 80)).astype(np.float32)
    copy = frame.copy()
    view = frame[1, 0, 5:50, 7:70]  # rows 80 floats apart, not the view's width
    want = box_find_peaks(np.ascontiguousarray(view), 1.0, 4, 10)
    got = find_peaks(view, 1.0, 4, 10)
    assert [array.tolist() for array in got] == [array.tolist() for array in want]
    assert len(got[0]) > 0
    np.testing.assert_array_equal(frame, copy)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_a_map_holding_nan_is_refused_with_the_reason(compiled, monkeypatch):
    if compiled and COMPILED_STAGES is None:
        pytest.skip(COMPILED_NOTE)
    if not compiled:
        monkeypatch.setattr(compiled_stages, "COMPILED_STAGES", None)
    score = np.zeros((30, 40), np.float32)
    score[12, 20] = 4.0
    assert find_peaks(score, 1.0, 3, 5)[0].tolist() == [12]
    score[29, 39] = np.nan  # far from the peak: refused all the same
    with pytest.raises(DecodingError, match="confidence map holds NaN.*overflowed"):
        find_peaks(score, 1.0, 3, 5)


def compiled_and_python(monkeypatch, compute):
    """What ``compute`` gives with the compiled stages, then with the Python forms."""
    compiled = compute()
    with monkeypatch.context() as patch:
        patch.setattr(compiled_stages, "COMPILED_STAGES", None)
        python = compute()
    return compiled, python


@needs_compiled
@pytest.mark.parametrize("channel_size", [(160, 160), (97, 131), (1, 1), (320, 320)])
@pytest.mark.parametrize(("classes", "width_planes"), [(120, 1), (18, 18), (1, 1)])
def test_compiled_sampling_reads_what_the_pixel_sampler_reads(channel_size, classes,
                                                              width_planes, monkeypatch):
    rng = np.random.default_rng(classes + sum(channel_size))
    angle_maps = rng.normal(0, 2, (classes, *channel_size)).astype(np.float32)
    width_maps = rng.normal(0, 2, (width_planes, *channel_size)).astype(np.float32)
    angle_maps[:, :3, :3] = 1.0  # ties: the first largest class wins, as numpy.argmax's
    rows = np.concatenate([[0, 319, 1, 2], rng.integers(0, 320, 60)])
    cols = np.concatenate([[319, 0, 1, 2], rng.integers(0, 320, 60)])
    got, want = compiled_and_python(monkeypatch, lambda: classes_and_width_logits(
        angle_maps, width_maps, rows, cols, 320, 320))
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1].dtype == want[1].dtype == np.float32
    np.testing.assert_array_equal(got[1].view(np.int32), want[1].view(np.int32))  # to the bit


@needs_compiled
def test_compiled_sampling_takes_the_first_nan_class_as_numpy_argmax_does(monkeypatch):
    angle_maps = np.zeros((6, 4, 4), np.float32)
    angle_maps[1] = 5.0
    angle_maps[3, 2, 2] = angle_maps[4, 2, 2] = np.nan
    rows, cols = np.array([0, 2]), np.array([0, 2])
    width_maps = np.ones((1, 4, 4), np.float32)
    got, want = compiled_and_python(monkeypatch, lambda: classes_and_width_logits(
        angle_maps, width_maps, rows, cols, 4, 4))
    assert got[0].tolist() == want[0].tolist() == [1, 3]


@needs_compiled
@pytest.mark.parametrize("seed", range(6))
def test_compiled_and_numpy_decoding_give_the_same_grasps(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    able = rng.normal(0, 2, (1, 1, 320, 320)).astype(np.float32)
    angle = rng.normal(0, 2, (1, 18, 160, 160)).astype(np.float32)
    width = rng.normal(0, 2, (1, 1, 160, 160)).astype(np.float32)
    geometry = CropGeometry(top=80, left=160, scale=1.0, image_height=480, image_width=640)
    config = DecodeConfig(confidence_threshold=0.9, max_grasps=int(rng.integers(1, 40)),
                          min_distance=int(rng.integers(1, 12)))
    compiled, python = compiled_and_python(
        monkeypatch, lambda: decode_grasps(able, angle, width, geometry, config))
    assert compiled == python
    assert len(compiled) == config.max_grasps


ENCODINGS = ["bgr8", "rgb8", "bgra8", "rgba8", "mono8", "bgr16", "rgb16", "rgba16", "mono16"]


def raw_frame(rng: np.random.Generator, encoding: str, height: int, width: int) -> RawImage:
    layout = pixel_layout(encoding)
    step = width * layout.channels * layout.bytes_per_channel + 5  # padded rows
    return RawImage(rng.integers(0, 256, height * step, dtype=np.uint8), height, width, step,
                    encoding)


@needs_compiled
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("height", "width"), [(480, 640), (300, 500), (321, 333)])
def test_compiled_planes_are_opencvs_for_every_encoding(encoding, height, width, monkeypatch):
    """Frames larger and smaller than the crop (padded with zeros), rows with padding bytes."""
    frame = raw_frame(np.random.default_rng(len(encoding) + height), encoding, height, width)
    preprocess = Preprocessor(PreprocessConfig(mean_bgr=(104.0, 117.0, 123.0), scale=0.017))
    compiled, opencv = compiled_and_python(monkeypatch, lambda: preprocess(frame)[0])
    np.testing.assert_array_equal(compiled.view(np.int32), opencv.view(np.int32))


@needs_compiled
def test_compiled_colour_planes_of_an_rgbd_model_are_opencvs(monkeypatch):
    rng = np.random.default_rng(11)
    frame = raw_frame(rng, "rgb8", 480, 640)
    depth_m = rng.uniform(0.3, 1.2, (480, 640)).astype(np.float32)
    compiled, opencv = compiled_and_python(
        monkeypatch, lambda: depth_bgr_planes(depth_m, frame, PreprocessConfig())[0])
    np.testing.assert_array_equal(compiled.view(np.int32), opencv.view(np.int32))
