"""torch_compile: where compiling cannot run (here: the CPU) the eager network runs and the log
note says why; on a CUDA GPU the compiled network gives the eager one's grasps, with and
without the backend's CUDA graph, and its cache sits in the engine cache folder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is an optional dependency (training, torch)")

from sgdn_ros.backends import BackendOptions, ModelLoadError, create_backend  # noqa: E402
from sgdn_ros.backends.torch_backend import TorchBackend  # noqa: E402
from sgdn_ros.backends.torch_compile import INDUCTOR_FOLDER, compile_cache_dir  # noqa: E402
from sgdn_ros.network.checkpoint import save_checkpoint  # noqa: E402
from sgdn_ros.network.network import PRESETS, build_sgdn  # noqa: E402
from sgdn_ros.pipeline.parameters import PARAMETERS_BY_NAME, defaults, detector_settings  # noqa: E402,E501

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason="needs a CUDA GPU visible to PyTorch (and triton)")


@pytest.fixture(scope="module")
def light_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = PRESETS["light"]
    path = tmp_path_factory.mktemp("torch_compile") / "light.pt"
    save_checkpoint(path, build_sgdn(config).eval(), config)
    return path


def test_compile_on_the_cpu_falls_back_to_the_eager_network_with_the_reason(light_checkpoint):
    planes = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 3, 320, 320)).astype(np.float32)
    with TorchBackend(light_checkpoint, device="cpu", compile=True) as compiled, \
            TorchBackend(light_checkpoint, device="cpu") as eager:
        assert "torch_compile fell back to the eager network" in compiled.load_note
        assert "CUDA" in compiled.load_note
        assert compiled.name == eager.name == "torch-cpu-fp32"
        got, want = compiled.infer(planes), eager.infer(planes)
    np.testing.assert_array_equal(got.able, want.able)


def test_the_parameter_reaches_the_backend_options():
    spec = PARAMETERS_BY_NAME["torch_compile"]
    assert spec.default is False and "TorchInductor" in spec.description
    settings = detector_settings({**defaults(), "torch_compile": True, "frame_graph": False})
    assert settings.backend_options.compile is True and settings.frame_graph is False
    assert PARAMETERS_BY_NAME["frame_graph"].default is True


def test_other_backends_refuse_compile():
    from sgdn_ros.models.default import TRAINED_MODEL

    with pytest.raises(ModelLoadError, match="torch_compile"):
        create_backend("onnxruntime", TRAINED_MODEL, BackendOptions(compile=True))


def test_the_cache_lies_in_the_engine_cache_folder(tmp_path):
    assert compile_cache_dir(str(tmp_path)) == tmp_path / INDUCTOR_FOLDER
    assert compile_cache_dir(None).parent.name == "engines"


@requires_cuda
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_compiled_and_eager_give_the_same_grasps(light_checkpoint, tmp_path, cuda_graph):
    from sgdn_ros.core.decoding import DecodeConfig
    from sgdn_ros.core.preprocessing import PreprocessConfig
    from sgdn_ros.pipeline.factory import cpu_detector
    from sgdn_ros.training.scenes import render_tabletop_scene

    compiled = TorchBackend(light_checkpoint, device="cuda", cuda_graph=cuda_graph,
                            compile=True, compile_cache_dir=tmp_path)
    eager = TorchBackend(light_checkpoint, device="cuda", cuda_graph=cuda_graph)
    assert "compiled with TorchInductor in" in compiled.load_note, compiled.load_note
    assert "(cache " in compiled.load_note  # the first compile of the process sets the folder
    assert "compiled" in compiled.name
    with cpu_detector(compiled, PreprocessConfig(), DecodeConfig()) as fast, \
            cpu_detector(eager, PreprocessConfig(), DecodeConfig()) as reference:
        compared = 0
        for seed in range(3):
            image, _ = render_tabletop_scene(200 + seed, 480, 640, num_objects=2)
            threshold = float(np.quantile(reference.detect(image).confidence_map(), 0.999))
            fast.decode_config = reference.decode_config = DecodeConfig(
                confidence_threshold=threshold)
            got, want = fast.detect(image).grasps, reference.detect(image).grasps
            assert [(g.crop_row, g.crop_col, g.angle_class) for g in got] == [
                (g.crop_row, g.crop_col, g.angle_class) for g in want]
            np.testing.assert_allclose([g.confidence for g in got],
                                       [g.confidence for g in want], rtol=0, atol=1e-3)
            compared += len(want)
    assert compared > 0
