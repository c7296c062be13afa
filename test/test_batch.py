"""Several frames per inference: through real ONNX Runtime, N frames in one call give each frame
exactly what it gets alone, and the CPU path groups frames by the backend's max_batch (one per
inference for a static batch-1 model)."""

from __future__ import annotations

import pathlib

import numpy as np
import onnx
import pytest

from sgdn_ros.backends import BackendOptions, InferenceBackend, create_backend
from sgdn_ros.backends.base import DEFAULT_MAX_BATCH
from sgdn_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
from sgdn_ros.core.decoding import DecodeConfig, decode_grasps
from sgdn_ros.core.frames import bgr_as_raw_image
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor
from sgdn_ros.models.default import TRAINED_MODEL
from sgdn_ros.models.synthetic import save_synthetic_sgdn_model
from sgdn_ros.pipeline.factory import cpu_detector
from sgdn_ros.training.scenes import render_tabletop_scene

# metres_per_pixel > 0 keeps width_m finite, so grasps compare with == (NaN != NaN).
DECODE = DecodeConfig(metres_per_pixel=0.0005)
FRAME_SIZES = [(480, 640), (400, 520), (480, 640), (360, 500)]
FRAME_COUNTS = [1, 2, 4]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Four camera frames of different sizes, so each frame's crop geometry differs."""
    return [render_tabletop_scene(seed, height, width, num_objects=2 + seed % 2)[0]
            for seed, (height, width) in enumerate(FRAME_SIZES)]


def dynamic_copy_of_the_trained_model(directory: pathlib.Path) -> pathlib.Path:
    """The shipped static batch-1 model with its batch dimension made symbolic."""
    model = onnx.load(str(TRAINED_MODEL))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    path = directory / "sgdn_light_k18_dynamic.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module", params=["trained", "synthetic"])
def dynamic_model(request, tmp_path_factory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("dynamic")
    if request.param == "trained":
        return dynamic_copy_of_the_trained_model(directory)
    return save_synthetic_sgdn_model(directory / "synthetic_k18_dynamic.onnx",
                                     num_angle_classes=18, dynamic_batch=True)


def record_batch_sizes(backend: InferenceBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of frames of each ``infer`` call on ``backend`` from now on."""
    sizes: list[int] = []
    run = backend.infer

    def recording_infer(planes: np.ndarray):
        sizes.append(len(planes))
        return run(planes)

    monkeypatch.setattr(backend, "infer", recording_infer)
    return sizes


@pytest.mark.parametrize("frames", FRAME_COUNTS)
def test_n_frames_in_one_inference_give_the_maps_and_grasps_of_n_single_ones(
        dynamic_model, images, frames):
    preprocess = Preprocessor(PreprocessConfig())
    prepared = [preprocess(image) for image in images[:frames]]
    with OnnxRuntimeBackend(dynamic_model, prefer_gpu=False) as backend:
        assert backend.info.max_batch == DEFAULT_MAX_BATCH
        together = backend.infer(np.concatenate([planes for planes, _ in prepared]))
        alone = [backend.infer(planes) for planes, _ in prepared]
    assert together.angle.shape == (frames, *alone[0].angle.shape[1:])
    assert together.angle.shape[1] == 18
    for index, ((_planes, geometry), single) in enumerate(zip(prepared, alone)):
        frame = slice(index, index + 1)
        for batched_maps, single_maps in zip((together.able, together.angle, together.width),
                                             (single.able, single.angle, single.width)):
            np.testing.assert_allclose(batched_maps[frame], single_maps, rtol=0, atol=1e-5)
        grasps = decode_grasps(together.able[frame], together.angle[frame],
                               together.width[frame], geometry, DECODE)
        assert grasps, "each frame must give grasps, or the comparison proves nothing"
        assert grasps == decode_grasps(single.able, single.angle, single.width, geometry,
                                       DECODE)


@pytest.mark.parametrize("frames", FRAME_COUNTS)
def test_detect_batch_gives_each_frame_its_own_detection_in_one_inference(
        dynamic_model, images, frames, monkeypatch):
    frames_in = [bgr_as_raw_image(image) if index % 2 else image
                 for index, image in enumerate(images[:frames])]
    with OnnxRuntimeBackend(dynamic_model, prefer_gpu=False) as backend:
        detector = cpu_detector(backend, PreprocessConfig(), DECODE)
        alone = [detector.detect(image) for image in frames_in]
        batch_sizes = record_batch_sizes(backend, monkeypatch)
        together = detector.detect_batch(frames_in)
    assert batch_sizes == [frames]
    assert len(together) == frames
    for image, batched, single in zip(frames_in, together, alone):
        assert batched.image is image
        assert batched.geometry == single.geometry
        assert batched.grasps and batched.grasps == single.grasps
        np.testing.assert_allclose(batched.confidence_map(), single.confidence_map(), atol=1e-6)
        assert set(batched.stage_seconds) == {"preprocess", "infer", "decode"}
        assert all(seconds >= 0.0 for seconds in batched.stage_seconds.values())
    assert len({detection.stage_seconds["infer"] for detection in together}) == 1


def test_a_static_model_runs_four_frames_in_groups_of_one(images, monkeypatch):
    with create_backend("onnxruntime", TRAINED_MODEL, BackendOptions(max_batch=8)) as backend:
        assert backend.info.max_batch == 1
        detector = cpu_detector(backend, PreprocessConfig(), DECODE)
        batch_sizes = record_batch_sizes(backend, monkeypatch)
        together = detector.detect_batch(images)
        assert batch_sizes == [1, 1, 1, 1]
        alone = [detector.detect(image) for image in images]
    assert [detection.grasps for detection in together] == \
        [detection.grasps for detection in alone]
    assert [detection.geometry for detection in together] == \
        [detection.geometry for detection in alone]


def test_frames_beyond_max_batch_are_split_into_groups(images, monkeypatch, tmp_path):
    model = save_synthetic_sgdn_model(tmp_path / "dynamic.onnx", num_angle_classes=18,
                                      dynamic_batch=True)
    frames_in = [*images, images[0]]
    with create_backend("onnxruntime", model, BackendOptions(max_batch=2)) as backend:
        assert backend.info.max_batch == 2
        detector = cpu_detector(backend, PreprocessConfig(), DECODE)
        batch_sizes = record_batch_sizes(backend, monkeypatch)
        together = detector.detect_batch(frames_in)
        assert batch_sizes == [2, 2, 1]
        alone = [detector.detect(image) for image in frames_in]
        with pytest.raises(ValueError, match="planes hold 3 frames; onnxruntime-cpu takes 1 to "
                                             "2 per inference"):
            backend.infer(np.zeros((3, 3, 320, 320), np.float32))
    assert [detection.grasps for detection in together] == \
        [detection.grasps for detection in alone]
    infer_shares = [detection.stage_seconds["infer"] for detection in together]
    assert infer_shares[0] == infer_shares[1] and infer_shares[2] == infer_shares[3]
