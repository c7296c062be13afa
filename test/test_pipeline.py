"""GraspDetector on the shipped trained model: a raw frame as received gives the grasps of its
BGR image, the lazy confidence map is the backend's own, and create_detector picks the CPU path
for host-only backends and says why (or refuses, for gpu_processing 'on')."""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sgdn_ros.backends import InferenceError, create_backend
from sgdn_ros.core.decoding import DecodeConfig, confidence_map
from sgdn_ros.core.frames import bgr_as_raw_image, raw_image_from_message
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.pipeline.detector import GraspDetector
from sgdn_ros.pipeline.factory import cpu_detector, create_detector
from sgdn_ros.training.scenes import render_tabletop_scene

# metres_per_pixel > 0 keeps width_m finite, so grasps compare with == (NaN != NaN).
DECODE = DecodeConfig(metres_per_pixel=0.0005)
PADDING_BYTE = 0xEE


def _grey(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


# encoding -> (the pixels a camera would send, the BGR image the detector should see)
ENCODED = {
    "bgr8": (lambda bgr: bgr, lambda bgr: bgr),
    "rgb8": (lambda bgr: bgr[..., ::-1], lambda bgr: bgr),
    "bgra8": (lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)]),
              lambda bgr: bgr),
    "mono8": (lambda bgr: _grey(bgr)[..., np.newaxis],
              lambda bgr: cv2.cvtColor(_grey(bgr), cv2.COLOR_GRAY2BGR)),
}


def _image_message(pixels: np.ndarray, encoding: str, row_padding: int) -> SimpleNamespace:
    """A sensor_msgs/Image as rclpy hands it over: rows of `step` bytes in an array('B')."""
    height, width, channels = pixels.shape
    step = width * channels + row_padding
    rows = np.full((height, step), PADDING_BYTE, np.uint8)
    rows[:, : width * channels] = np.ascontiguousarray(pixels).reshape(height, -1)
    return SimpleNamespace(height=height, width=width, step=step, encoding=encoding,
                           is_bigendian=0, data=array.array("B", rows.tobytes()))


@pytest.fixture(scope="module")
def backend():
    with create_backend("onnxruntime", TRAINED_MODEL) as loaded:
        yield loaded


@pytest.fixture
def detector(backend) -> GraspDetector:
    return cpu_detector(backend, PreprocessConfig(), DECODE)


@pytest.mark.parametrize(("encoding", "row_padding", "height", "width"), [
    ("bgr8", 0, 480, 640),
    ("rgb8", 0, 480, 640),
    ("bgra8", 0, 480, 640),
    ("mono8", 0, 480, 640),
    ("bgr8", 7, 480, 640),
    ("rgb8", 3, 400, 520),
    ("mono8", 5, 360, 500),
])
def test_a_raw_frame_gives_the_grasps_of_its_bgr_image(detector, encoding, row_padding,
                                                       height, width):
    scene, _objects = render_tabletop_scene(height + row_padding, height, width, num_objects=3)
    to_pixels, to_bgr = ENCODED[encoding]
    message = _image_message(to_pixels(scene), encoding, row_padding)
    raw = raw_image_from_message(message)
    assert (raw.encoding, raw.step) == (encoding, message.step)

    from_raw = detector.detect(raw)
    from_bgr = detector.detect(np.ascontiguousarray(to_bgr(scene)))
    assert from_bgr.grasps, "the scene must give grasps, or the comparison proves nothing"
    assert from_raw.grasps == from_bgr.grasps
    assert from_raw.geometry == from_bgr.geometry
    np.testing.assert_array_equal(from_raw.confidence_map(), from_bgr.confidence_map())
    assert set(from_raw.stage_seconds) == {"preprocess", "infer", "decode"}
    assert all(seconds >= 0.0 for seconds in from_raw.stage_seconds.values())


def test_a_bgr_array_wrapped_as_a_raw_image_gives_the_same_grasps(detector):
    scene, _objects = render_tabletop_scene(11, num_objects=2)
    from_raw = detector.detect(bgr_as_raw_image(scene))
    from_bgr = detector.detect(scene)
    assert from_bgr.grasps and from_raw.grasps == from_bgr.grasps


def test_confidence_map_is_the_sigmoid_of_the_backends_able_map(detector, backend):
    scene, _objects = render_tabletop_scene(21, num_objects=3)
    detection = detector.detect(scene)
    planes, geometry = Preprocessor(detector.preprocess_config)(scene)
    assert geometry == detection.geometry
    expected = confidence_map(backend.infer(planes).able)

    heatmap = detection.confidence_map()
    assert heatmap.dtype == np.float32
    assert heatmap.shape == (backend.info.output_height, backend.info.output_width)
    np.testing.assert_array_equal(heatmap, expected)
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    # The best grasp sits where the map is confident.
    best = detection.grasps[0]
    assert heatmap[best.crop_row, best.crop_col] == pytest.approx(best.confidence, abs=1e-6)


def test_gpu_processing_off_gives_the_cpu_detector_saying_so(backend):
    detector = create_detector(backend, PreprocessConfig(), DECODE, gpu_processing="off")
    assert type(detector) is GraspDetector and detector.processing == "cpu"
    assert "gpu_processing is off" in detector.processing_reason
    scene, _objects = render_tabletop_scene(4, num_objects=2)
    assert detector.detect(scene).grasps == cpu_detector(
        backend, PreprocessConfig(), DECODE).detect(scene).grasps


def test_auto_with_a_host_only_backend_runs_on_the_cpu_naming_the_backend(backend):
    assert backend.name.startswith("onnxruntime")
    detector = create_detector(backend, PreprocessConfig(), DECODE, gpu_processing="auto")
    assert type(detector) is GraspDetector and detector.processing == "cpu"
    reason = detector.processing_reason
    assert reason.startswith("CPU pre- and post-processing")
    assert f"the {backend.name} backend takes and returns host arrays" in reason
    assert "tensorrt" in reason  # what would run on the GPU


def test_gpu_processing_on_with_a_host_only_backend_is_refused(backend):
    with pytest.raises(ValueError) as raised:
        create_detector(backend, PreprocessConfig(), DECODE, gpu_processing="on")
    message = str(raised.value)
    assert "gpu_processing is 'on'" in message
    assert backend.name in message
    assert "set gpu_processing to 'auto' or 'off'" in message


@pytest.mark.parametrize("choice", ["yes", "ON", "", "gpu"])
def test_an_unknown_gpu_processing_choice_lists_the_choices(backend, choice):
    with pytest.raises(ValueError) as raised:
        create_detector(backend, PreprocessConfig(), DECODE, gpu_processing=choice)
    message = str(raised.value)
    assert repr(choice) in message
    assert "one of auto, on, off" in message


def test_onnxruntime_on_the_cpu_has_no_cuda_device_and_refuses_device_memory(backend):
    if backend.name != "onnxruntime-cpu":
        pytest.skip(f"checks the CPU build of ONNX Runtime; this one is {backend.name}")
    assert backend.cuda_device is None
    with pytest.raises(InferenceError) as raised:
        backend.infer_device(0, 0)
    assert str(raised.value) == (
        "onnxruntime-cpu takes and returns host arrays only; it cannot run on GPU memory")


def test_torch_on_the_cpu_has_no_cuda_device_and_refuses_device_memory():
    pytest.importorskip("torch", reason="torch is an optional dependency (training, torch)")
    from sgdn_ros.backends.torch_backend import TorchBackend
    from sgdn_ros.network.network import PRESETS, build_sgdn

    with TorchBackend.from_module(build_sgdn(PRESETS["light"]), device="cpu") as torch_backend:
        assert torch_backend.name == "torch-cpu-fp32"
        assert torch_backend.cuda_device is None
        with pytest.raises(InferenceError, match="torch-cpu-fp32 takes and returns host arrays "
                                                 "only; it cannot run on GPU memory"):
            torch_backend.infer_device(0, 0)
        detector = create_detector(torch_backend, PreprocessConfig(), DECODE)
        assert detector.processing == "cpu"
        assert "the torch-cpu-fp32 backend takes and returns host arrays" in \
            detector.processing_reason
