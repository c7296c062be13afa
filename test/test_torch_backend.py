"""The torch backend: a checkpoint run by PyTorch gives the network's own outputs, through the
backend interface and the node's pipeline; settings the CPU cannot run are refused. The CUDA
variants (fp16, CUDA graph) and the benchmark run only where PyTorch sees a GPU."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional dependency (training, torch)")

from sgdn_ros.backends import InferenceError, ModelLoadError, create_backend  # noqa: E402
from sgdn_ros.backends.torch_backend import TorchBackend  # noqa: E402
from sgdn_ros.core.decoding import DecodeConfig  # noqa: E402
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor  # noqa: E402
from sgdn_ros.network.checkpoint import save_checkpoint  # noqa: E402
from sgdn_ros.network.network import PRESETS, build_sgdn  # noqa: E402
from sgdn_ros.pipeline.factory import cpu_detector  # noqa: E402
from sgdn_ros.tools.torch_benchmark import VARIANTS, benchmark_torch_variants  # noqa: E402

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason="needs a CUDA GPU visible to PyTorch")


@pytest.fixture(scope="module")
def light_checkpoint(tmp_path_factory):
    """A light network with random weights, saved as the project's checkpoint."""
    torch.manual_seed(0)
    config = PRESETS["light"]
    model = build_sgdn(config).eval()
    path = tmp_path_factory.mktemp("torch_backend") / "light.pt"
    save_checkpoint(path, model, config)
    return path, model, config


def _planes(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (1, 3, 320, 320)).astype(np.float32)


def _forward(model, planes: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        return [output.numpy() for output in model(torch.from_numpy(planes))]


def test_cpu_fp32_gives_the_networks_own_outputs(light_checkpoint):
    path, model, config = light_checkpoint
    planes = _planes(1)
    with TorchBackend(path, device="cpu") as backend:
        outputs = backend.infer(planes)
        assert backend.name == "torch-cpu-fp32"
        assert "CPU" in backend.selection_reason
        info = backend.info
    assert info.input_shape == (1, 3, 320, 320)
    assert (info.num_angle_classes, info.width_channels) == (config.num_angle_classes, 1)
    assert (info.able_name, info.angle_name, info.width_name) == (
        "output_able", "output_angle", "output_width")
    expected = _forward(model, planes)
    for got, want in zip((outputs.able, outputs.angle, outputs.width), expected):
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_angle_and_width_reach_the_gpu_at_their_heads_size(light_checkpoint):
    """The GPU decoders get the angle and width maps before the last bilinear upsampling (and
    sample them); ``infer`` still gives the network's full-size maps. Nearest-upsampling
    networks hand over every map at full size."""
    path, model, config = light_checkpoint
    planes = torch.from_numpy(_planes(2))
    with TorchBackend(path, device="cpu") as backend:
        able, angle, width = backend.forward_on_device(planes)
        assert backend.device_channel_size == (160, 160)
        assert able.shape == (1, 1, 320, 320)
        assert angle.shape == (1, config.num_angle_classes, 160, 160)
        assert width.shape == (1, 1, 160, 160)
    nearest = dataclasses.replace(config, upsample="nearest")
    with TorchBackend.from_module(build_sgdn(nearest), device="cpu") as backend:
        assert backend.device_channel_size is None
        assert backend.forward_on_device(planes)[1].shape == (
            1, config.num_angle_classes, 320, 320)


def test_each_frame_gets_fresh_output_arrays(light_checkpoint):
    path, _model, _config = light_checkpoint
    with TorchBackend(path, device="cpu") as backend:
        first = backend.infer(_planes(2))
        kept = first.able.copy()
        second = backend.infer(_planes(3))
    assert not np.array_equal(second.able, kept)
    np.testing.assert_array_equal(first.able, kept)


def test_runs_in_the_node_pipeline(light_checkpoint):
    path, model, config = light_checkpoint
    image = np.random.default_rng(4).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with TorchBackend(path, device="cpu") as backend:
        detector = cpu_detector(backend, PreprocessConfig(),
                                 DecodeConfig(mode="max", confidence_threshold=0.0))
        detection = detector.detect(image)
    (grasp,) = detection.grasps
    able = _forward(model, Preprocessor(detector.preprocess_config)(image)[0])[0][0, 0]
    assert (grasp.crop_row, grasp.crop_col) == np.unravel_index(np.argmax(able), able.shape)
    assert (grasp.row, grasp.col) == (grasp.crop_row + 80, grasp.crop_col + 160)
    assert grasp.angle == pytest.approx(grasp.angle_class / config.num_angle_classes * math.pi)


@pytest.mark.parametrize("options, message", [
    ({"precision": "fp16"}, "fp16.*needs a CUDA GPU"),
    ({"cuda_graph": True}, "cuda_graph needs a CUDA GPU"),
    ({"precision": "int8"}, "precision must be one of fp32, fp16"),
    ({"device": "tpu"}, "unknown device|not supported"),
])
def test_settings_the_device_cannot_run_are_refused(light_checkpoint, options, message):
    path, _model, _config = light_checkpoint
    with pytest.raises(ValueError, match=message):
        TorchBackend(path, **{"device": "cpu", **options})


def test_missing_checkpoint_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        TorchBackend(tmp_path / "missing.pt", device="cpu")


def test_bad_input_and_use_after_close_are_refused(light_checkpoint):
    path, _model, _config = light_checkpoint
    backend = TorchBackend(path, device="cpu")
    with pytest.raises(ValueError, match="float32 array of shape"):
        backend.infer(np.zeros((1, 3, 240, 320), dtype=np.float32))
    backend.close()
    backend.close()
    with pytest.raises(InferenceError, match="closed"):
        backend.infer(_planes(5))


def _batch(seeds) -> np.ndarray:
    return np.concatenate([_planes(seed) for seed in seeds])


@pytest.mark.parametrize("frames", [1, 2, 4])
def test_a_batch_gives_what_single_frames_give(light_checkpoint, frames):
    path, _model, _config = light_checkpoint
    seeds = range(10, 10 + frames)
    with TorchBackend(path, device="cpu", max_batch=4) as backend:
        assert backend.info.max_batch == 4 and backend.info.input_shape == (1, 3, 320, 320)
        batched = backend.infer(_batch(seeds))
        singles = [backend.infer(_planes(seed)) for seed in seeds]
    for role in ("able", "angle", "width"):
        got = getattr(batched, role)
        assert got.shape[0] == frames
        want = np.concatenate([getattr(single, role) for single in singles])
        # oneDNN may block a batch's convolutions differently: float32 rounding, not 1e-5.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * float(np.abs(want).max()))


def test_batches_larger_than_max_batch_are_refused(light_checkpoint):
    path, _model, _config = light_checkpoint
    with TorchBackend(path, device="cpu", max_batch=2) as backend:
        with pytest.raises(ValueError, match="takes 1 to 2 per inference"):
            backend.infer(_batch(range(3)))
        with pytest.raises(ValueError, match="hold 0 frames"):
            backend.infer(np.zeros((0, 3, 320, 320), dtype=np.float32))
        with pytest.raises(ValueError, match="1 to 2 per inference"):
            backend.forward_on_device(torch.from_numpy(_batch(range(3))))
    with TorchBackend(path, device="cpu") as backend:
        assert backend.info.max_batch == 1
        with pytest.raises(ValueError, match="takes 1 to 1 per inference"):
            backend.infer(_batch(range(2)))


def test_input_size_is_the_callers_and_from_module_takes_it(light_checkpoint):
    _path, model, config = light_checkpoint
    planes = np.random.default_rng(8).uniform(-0.5, 0.5, (2, 3, 256, 256)).astype(np.float32)
    with TorchBackend.from_module(model, config, device="cpu", max_batch=2,
                                  input_size=256) as backend:
        info = backend.info
        outputs = backend.infer(planes)
    assert info.input_shape == (1, 3, 256, 256) and info.max_batch == 2
    assert (info.output_height, info.output_width) == (256, 256)
    np.testing.assert_allclose(outputs.able, _forward(model, planes)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options, message", [
    ({"max_batch": 0}, "max_batch must be a positive integer"),
    ({"input_size": 300}, "input_size must be a positive multiple of 16"),
])
def test_bad_batch_or_input_size_is_refused(light_checkpoint, options, message):
    path, _model, _config = light_checkpoint
    with pytest.raises(ValueError, match=message):
        TorchBackend(path, device="cpu", **options)


@requires_cuda
def test_cuda_graph_per_batch_size_gives_what_single_frames_give(light_checkpoint):
    path, _model, _config = light_checkpoint
    with TorchBackend(path, device="cuda", precision="fp16", cuda_graph=True,
                      max_batch=4) as backend:
        singles = [backend.infer(_planes(seed)).able for seed in range(20, 24)]
        for frames in (4, 2, 1, 4):
            batched = backend.infer(_batch(range(20, 20 + frames))).able
            want = np.concatenate(singles[:frames])
            np.testing.assert_allclose(batched, want, atol=0.01 * float(np.abs(want).max()))


@requires_cuda
def test_cuda_fp16_and_graph_agree_with_fp32(light_checkpoint):
    path, _model, _config = light_checkpoint
    planes = [_planes(6), _planes(7)]
    results = {}
    for precision, graph in (("fp32", False), ("fp16", False), ("fp16", True)):
        with TorchBackend(path, device="cuda", precision=precision, cuda_graph=graph) as backend:
            assert backend.name == f"torch-cuda-{precision}" + ("-graph" if graph else "")
            results[backend.name] = [backend.infer(p) for p in planes]
    reference = results["torch-cuda-fp32"]
    for name in ("torch-cuda-fp16", "torch-cuda-fp16-graph"):
        for got, want in zip(results[name], reference):
            assert got.angle.dtype == np.float32
            scale = float(np.abs(want.able).max())
            np.testing.assert_allclose(got.able, want.able, atol=0.02 * scale)
    graph_first, graph_second = results["torch-cuda-fp16-graph"]
    assert not np.array_equal(graph_first.able, graph_second.able)


@requires_cuda
def test_benchmark_measures_every_variant():
    lines = benchmark_torch_variants("light", 18, repeats=3)
    rows = [line for line in lines if line.startswith("| ") and "ms" not in line]
    assert [row.split("|")[1].strip() for row in rows] == [label for label, _, _ in VARIANTS]
    assert torch.cuda.get_device_name() in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_benchmark_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        benchmark_torch_variants("light", 18, repeats=1)


def test_auto_runs_a_checkpoint_with_torch(tmp_path):
    path = tmp_path / "light.pt"
    save_checkpoint(path, build_sgdn(PRESETS["light"]), PRESETS["light"])
    with create_backend("auto", path) as backend:
        assert backend.name == f"torch-{'cuda' if torch.cuda.is_available() else 'cpu'}-fp32"
        assert "auto chose torch for this checkpoint" in backend.selection_reason
        assert backend.info.num_angle_classes == PRESETS["light"].num_angle_classes
