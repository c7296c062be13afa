"""The lean CPU stages against the stages they replaced (``sgdn_ros.core.reference_stages``):
the same planes bit for bit for every encoding the node takes (row padding, byte order, small
images, the depth kinds), the same peaks and grasps, and through the detector, one frame or a
batch, the grasps the previous stages give around the same real ONNX Runtime session."""

from __future__ import annotations

import numpy as np
import pytest

from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from sgdn_ros.core.decoding import DecodeConfig, decode_grasps
from sgdn_ros.core.depth import depth_to_metres
from sgdn_ros.core.depth_planes import depth_bgr_planes, depth_planes
from sgdn_ros.core.frames import SUPPORTED_ENCODINGS, RawImage, pixel_layout, raw_image_to_bgr
from sgdn_ros.core.peaks import find_peaks
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor, locate_input
from sgdn_ros.core.reference_stages import (
    reference_decode_grasps,
    reference_find_peaks,
    reference_planes,
)
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.models.synthetic import save_synthetic_sgdn_model
from sgdn_ros.pipeline.factory import cpu_detector
from sgdn_ros.training.rgbd_scenes import render_rgbd_scene
from sgdn_ros.training.scenes import render_tabletop_scene

# metres_per_pixel > 0 keeps width_m finite, so grasps compare with == (NaN != NaN).
DECODE = DecodeConfig(metres_per_pixel=0.0005)
# (height, width, small_image_policy): a camera frame, odd sizes, smaller than the input on
# both or one axis (padded), and resized up.
FRAME_CASES = [(480, 640, "pad"), (481, 643, "pad"), (150, 200, "pad"), (200, 701, "pad"),
               (150, 200, "resize"), (333, 1001, "reject")]


def raw_frame(rng: np.random.Generator, encoding: str, height: int, width: int,
              padding: int = 0, big_endian: bool = False) -> RawImage:
    """Random pixels in ``encoding``, each row followed by ``padding`` bytes of junk."""
    layout = pixel_layout(encoding)
    step = width * layout.channels * layout.bytes_per_channel + padding
    data = rng.integers(0, 256, height * step, dtype=np.uint8)
    return RawImage(data, height, width, step, encoding, big_endian)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261201)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("padding", [0, 6])
@pytest.mark.parametrize("height, width, policy", FRAME_CASES)
def test_planes_of_every_encoding_are_the_reference_planes_bit_for_bit(
        encoding, padding, height, width, policy, rng):
    config = PreprocessConfig(small_image_policy=policy)
    for big_endian in ((False, True) if encoding.endswith("16") else (False,)):
        frame = raw_frame(rng, encoding, height, width, padding, big_endian)
        expected, expected_geometry = reference_planes(raw_image_to_bgr(frame), config)
        for image in (frame, raw_image_to_bgr(frame)):  # the raw frame, and a BGR view of it
            planes, geometry = Preprocessor(config)(image)
            assert geometry == expected_geometry
            assert planes.dtype == np.float32 and planes.flags.c_contiguous
            assert planes.tobytes() == expected.tobytes()


def test_other_means_scales_sizes_and_array_layouts_give_the_reference_planes(rng):
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    config = PreprocessConfig(input_height=256, input_width=384, mean_bgr=(1.0, 128.0, 254.5),
                              scale=0.37)
    for view in (image, image[:, ::-1], image[::2], np.asfortranarray(image)):
        planes, _ = Preprocessor(config)(view)
        assert planes.tobytes() == reference_planes(view, config)[0].tobytes()


def test_write_fills_one_slot_of_a_batch_and_nothing_else(rng):
    preprocess = Preprocessor(PreprocessConfig())
    frames = [raw_frame(rng, "rgba8", 480, 640, 4), raw_frame(rng, "mono8", 150, 200)]
    batch = np.full((3, 3, 320, 320), 7.0, np.float32)
    geometries = [preprocess.write(frame, slot) for frame, slot in zip(frames, batch)]
    for frame, planes, geometry in zip(frames, batch, geometries):
        alone, alone_geometry = preprocess(frame)
        assert geometry == alone_geometry
        np.testing.assert_array_equal(planes, alone[0])
    assert np.all(batch[2] == 7.0)


def previous_depth_bgr_colour(bgr: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """The RGB-D colour planes as depth_bgr_planes wrote them before it used the tables."""
    window, target, _geometry = locate_input(bgr, config)
    colour = np.zeros((3, config.input_height, config.input_width), np.float32)
    region = colour[(slice(None),) + target]
    np.multiply(window.transpose(2, 0, 1), np.float32(1 / 255), out=region, dtype=np.float32)
    region -= np.float32(region.mean(dtype=np.float64))
    return colour


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8", "rgb16"])
@pytest.mark.parametrize("height, width, policy", FRAME_CASES[:3] + FRAME_CASES[4:5])
def test_rgbd_colour_planes_of_every_encoding_are_the_previous_ones(encoding, height, width,
                                                                    policy, rng):
    config = PreprocessConfig(small_image_policy=policy)
    frame = raw_frame(rng, encoding, height, width, padding=2)
    depth = rng.uniform(0.3, 1.2, (height, width)).astype(np.float32)
    planes, geometry = depth_bgr_planes(depth, frame, config)
    depth_only, depth_geometry = depth_planes(depth, config)
    assert geometry == depth_geometry
    assert planes[0, :1].tobytes() == depth_only[0].tobytes()
    expected = previous_depth_bgr_colour(raw_image_to_bgr(frame), config)
    assert planes[0, 1:].tobytes() == expected.tobytes()
    assert depth_bgr_planes(depth, raw_image_to_bgr(frame), config)[0].tobytes() \
        == planes.tobytes()


def peak_maps(rng: np.random.Generator, count: int):
    """Maps of each shape the search meets: a few blobs anywhere (edges included) on a low
    floor, noise, ties and plateaus, in float16/32/64."""
    for index in range(count):
        height, width = (int(size) for size in rng.integers(1, 90, 2))
        kind = index % 3
        if kind == 0:
            score = np.full((height, width), -8.0)
            rows, cols = np.mgrid[0:height, 0:width]
            for _ in range(int(rng.integers(0, 5))):
                row, col, sigma = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(1, 6)
                blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma ** 2))
                score = np.maximum(score, -8.0 + rng.uniform(5, 14) * blob)
        elif kind == 1:
            score = rng.normal(size=(height, width))
        else:
            score = rng.integers(0, 4, (height, width)).astype(np.float64)
        yield score.astype(rng.choice([np.float16, np.float32, np.float64]))


def test_find_peaks_equals_the_whole_map_search(rng):
    found = 0
    for score in peak_maps(rng, 600):
        threshold = float(rng.choice([-np.inf, -1.0, 0.0, 0.5, 2.0, np.inf]))
        min_distance, max_peaks = int(rng.integers(0, 13)), int(rng.integers(1, 12))
        rows, cols = find_peaks(score, threshold, min_distance, max_peaks)
        expected_rows, expected_cols = reference_find_peaks(score, threshold, min_distance,
                                                            max_peaks)
        assert rows.tolist() == expected_rows.tolist()
        assert cols.tolist() == expected_cols.tolist()
        found += rows.size
    assert found > 600


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, object]:
    """The trained default (K = 18) and the synthetic model with the published K = 120."""
    folder = tmp_path_factory.mktemp("models")
    return {"trained": TRAINED_MODEL,
            "synthetic": save_synthetic_sgdn_model(folder / "k120.onnx", num_angle_classes=120)}


@pytest.mark.parametrize("model", ["trained", "synthetic"])
@pytest.mark.parametrize("mode", ["peaks", "max"])
def test_decode_grasps_equals_the_reference_on_real_outputs(models, model, mode):
    config = DecodeConfig(mode=mode, metres_per_pixel=0.0005, confidence_threshold=0.3)
    preprocess = Preprocessor(PreprocessConfig())
    found = 0
    with OnnxRuntimeBackend(models[model], prefer_gpu=False) as backend:
        for seed in range(6):
            image, _objects = render_tabletop_scene(seed, 480, 640, num_objects=1 + seed % 3)
            planes, geometry = preprocess(image)
            outputs = backend.infer(planes)
            grasps = decode_grasps(outputs.able, outputs.angle, outputs.width, geometry, config)
            assert grasps == reference_decode_grasps(outputs.able, outputs.angle, outputs.width,
                                                     geometry, config)
            found += len(grasps)
    assert found >= 6


def previous_detect(detector, image) -> list:
    """A frame through the previous stages around the detector's backend."""
    planes, geometry = reference_planes(raw_image_to_bgr(image), detector.preprocess_config)
    outputs = detector.backend.infer(planes)
    return reference_decode_grasps(outputs.able, outputs.angle, outputs.width, geometry, DECODE)


def test_the_detector_gives_the_previous_stages_grasps_for_every_encoding_alone_and_batched(
        rng, tmp_path):
    """Camera frames in each encoding (rgb bytes reversed, grey, alpha, 16-bit, padded rows)
    through a dynamic-batch model: one by one and in one batch, the grasps of the previous
    preprocessing and decoding."""
    path = save_synthetic_sgdn_model(tmp_path / "k18.onnx", num_angle_classes=18,
                                     dynamic_batch=True)
    frames = []
    for index, encoding in enumerate(SUPPORTED_ENCODINGS):
        bgr, _objects = render_tabletop_scene(index, 480, 640, num_objects=1 + index % 3)
        frames.append(as_raw_frame(bgr, encoding, padding=index % 3 * 2))
    with OnnxRuntimeBackend(path, prefer_gpu=False, max_batch=4) as backend:
        detector = cpu_detector(backend, PreprocessConfig(), DECODE)
        alone = [detector.detect(frame).grasps for frame in frames]
        batched = [detection.grasps for detection in detector.detect_batch(frames)]
        previous = [previous_detect(detector, frame) for frame in frames]
    assert all(alone), "every frame must give grasps, or the comparison proves nothing"
    assert alone == previous
    assert batched == previous


def as_raw_frame(bgr: np.ndarray, encoding: str, padding: int) -> RawImage:
    """A BGR image as a camera would send it in ``encoding`` (16-bit: value * 257)."""
    layout = pixel_layout(encoding)
    grey = np.round(bgr @ np.array([0.114, 0.587, 0.299])).astype(np.uint8)[..., np.newaxis]
    pixels = {3: bgr, 4: np.concatenate([bgr, np.full_like(bgr[..., :1], 255)], axis=2),
              1: grey}[layout.channels]
    if layout.bgr_channels.step == -1:
        pixels = np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=2)
    if layout.bytes_per_channel == 2:
        pixels = pixels.astype("<u2") * 257
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    data = np.zeros((rows.shape[0], rows.shape[1] + padding), np.uint8)
    data[:, :rows.shape[1]] = rows
    return RawImage(data.reshape(-1), bgr.shape[0], bgr.shape[1], data.shape[1], encoding)


def test_a_16uc1_depth_frame_gives_the_depth_plane_of_its_metres(rng):
    """The depth kinds take depth in metres (``depth_to_metres``), whatever the colour path."""
    scene = render_rgbd_scene(1)
    height, width = scene.depth_mm.shape
    depth = depth_to_metres(scene.depth_mm.tobytes(), height, width, 2 * width, "16UC1")
    planes, _geometry = depth_planes(depth, PreprocessConfig())
    raw = as_raw_frame(scene.bgr, "bgr8", padding=0)
    rgbd, _geometry = depth_bgr_planes(depth, raw, PreprocessConfig())
    assert rgbd[0, :1].tobytes() == planes[0].tobytes()
    assert rgbd[0, 1:].tobytes() == previous_depth_bgr_colour(scene.bgr,
                                                              PreprocessConfig()).tobytes()
