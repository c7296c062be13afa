"""The command line without ROS: detect, txt, make-test-model, make-scenes."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import cv2
import pytest

from sgdn_ros.core.preprocessing import read_sample_txt
from sgdn_ros.pipeline.parameters import PARAMETERS_BY_NAME, defaults
from sgdn_ros.tools.cli import build_parser, main
from sgdn_ros.training.scenes import write_demo_scenes


def test_detect_prints_grasps_on_the_objects_and_writes_annotated_images(
        tmp_path, capsys, model_k120):
    scenes = write_demo_scenes(tmp_path / "scenes", count=2, seed=4)
    exit_code = main(["detect", str(tmp_path / "scenes"), "--model", str(model_k120),
                      "--out", str(tmp_path / "out")])
    assert exit_code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["image"] for record in records] == [str(path) for path, _ in scenes]
    for record, (path, objects) in zip(records, scenes):
        assert len(record["grasps"]) == len(objects)
        for grasp in record["grasps"]:
            nearest = min(math.hypot(grasp["u"] - obj.col, grasp["v"] - obj.row)
                          for obj in objects)
            assert nearest < 4.0
            assert grasp["width_m"] is None
        assert set(record["stage_ms"]) == {"preprocess", "infer", "decode"}
        assert cv2.imread(str(tmp_path / "out" / f"{path.stem}_grasps.png")) is not None


def test_detect_options_are_the_parameter_tables_with_its_defaults():
    args = build_parser().parse_args(["detect", "image.png"])
    options = {name: value for name, value in vars(args).items() if name in PARAMETERS_BY_NAME}
    assert set(options) == {"model_path", "backend", "small_image_policy", "decode_mode",
                            "confidence_threshold", "min_distance", "max_grasps",
                            "max_grasp_width_px", "metres_per_pixel"}
    assert options == {name: defaults()[name] for name in options}


def test_detect_options_reach_the_decoder(tmp_path, capsys, model_k120):
    path, objects = max(write_demo_scenes(tmp_path / "scenes", count=3),
                        key=lambda scene: len(scene[1]))
    assert len(objects) > 1
    assert main(["detect", str(path), "--model", str(model_k120),
                 "--max-grasps", "1", "--metres-per-pixel", "0.001"]) == 0
    grasps = json.loads(capsys.readouterr().out)["grasps"]
    assert len(grasps) == 1 and grasps[0]["width_m"] is not None


def test_detect_reports_a_missing_model_in_one_line(tmp_path, capsys):
    scenes = write_demo_scenes(tmp_path, count=1)
    exit_code = main(["detect", str(scenes[0][0]), "--model", str(tmp_path / "none.onnx")])
    error = capsys.readouterr().err
    assert exit_code == 2
    assert "none.onnx" in error and "Traceback" not in error


def test_txt_writes_the_published_sample_layout(tmp_path):
    scenes = write_demo_scenes(tmp_path, count=1)
    image = cv2.imread(str(scenes[0][0]))
    assert main(["txt", str(scenes[0][0]), "-o", str(tmp_path / "input.txt")]) == 0
    crop = read_sample_txt(tmp_path / "input.txt")
    assert (crop == image[80:400, 160:480]).all()


def test_make_test_model_and_make_scenes(tmp_path):
    assert main(["make-test-model", str(tmp_path / "m.onnx"), "--classes", "18",
                 "--width-per-class"]) == 0
    import onnx

    model = onnx.load(str(tmp_path / "m.onnx"))
    channels = [output.type.tensor_type.shape.dim[1].dim_value for output in model.graph.output]
    assert channels == [1, 18, 18]
    assert main(["make-scenes", str(tmp_path / "s"), "--count", "3"]) == 0
    assert len(list((tmp_path / "s").glob("*.png"))) == 3


def test_detect_needs_no_ros(tmp_path, model_k120):
    """`pip install .` users have no rclpy: detect must not import it."""
    scenes = write_demo_scenes(tmp_path, count=1)
    script = ("import sys; sys.modules['rclpy'] = None; from sgdn_ros.tools.cli import main; "
              f"sys.exit(main(['detect', {str(scenes[0][0])!r}, '--model', {str(model_k120)!r}]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["grasps"]) == len(scenes[0][1])


def test_export_writes_onnx_and_fp16_copies_with_a_parity_report(tmp_path, capsys):
    """`sgdn-ros export` on a light checkpoint (random weights: parity, not accuracy)."""
    torch = pytest.importorskip("torch", reason="sgdn-ros export needs PyTorch")
    from sgdn_ros.network.checkpoint import save_checkpoint
    from sgdn_ros.network.network import PRESETS, build_sgdn

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "light.pt", build_sgdn(PRESETS["light"]), PRESETS["light"])
    assert main(["export", str(tmp_path / "light.pt"), "-o", str(tmp_path / "light.onnx"),
                 "--fp16"]) == 0
    report = capsys.readouterr().out
    assert (tmp_path / "light.onnx").is_file() and (tmp_path / "light_fp16.onnx").is_file()
    assert report.count("max |torch - onnx| of the logits") == 2
    assert "same in every image" in report


def test_export_with_sampled_channels_says_so_and_passes_its_parity_check(tmp_path, capsys):
    pytest.importorskip("torch", reason="sgdn-ros export needs PyTorch")
    from sgdn_ros.network.checkpoint import save_checkpoint
    from sgdn_ros.network.network import PRESETS, build_sgdn

    save_checkpoint(tmp_path / "light.pt", build_sgdn(PRESETS["light"]), PRESETS["light"])
    assert main(["export", str(tmp_path / "light.pt"), "-o", str(tmp_path / "light.onnx"),
                 "--sampled-channels"]) == 0
    report = capsys.readouterr().out
    assert "angle and width at the heads size" in report
    assert "same in every image" in report
