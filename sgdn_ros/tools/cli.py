"""The `sgdn-ros` command line.

`detect` and `txt` need no ROS; `play`, `demo` and `bench` use the ROS layer when they run.
Options that set a detector parameter take its type, choices and default from the parameter
table, and reach the configs the way the node's parameters do (`detector_settings`).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
from collections.abc import Sequence

from sgdn_ros.core.decoding import Grasp
from sgdn_ros.pipeline.parameters import PARAMETERS_BY_NAME, defaults, detector_settings
from sgdn_ros.pipeline.settings import DetectorSettings

_ARGUMENT_TYPES = {"int": int, "double": float, "string": str}


def _grasp_record(grasp: Grasp) -> dict[str, float | int | None]:
    return {
        "u": round(grasp.col, 2), "v": round(grasp.row, 2),
        "angle": round(grasp.angle, 5), "angle_deg": round(math.degrees(grasp.angle), 2),
        "width_px": round(grasp.width_px, 2),
        "width_m": None if math.isnan(grasp.width_m) else round(grasp.width_m, 5),
        "confidence": round(grasp.confidence, 5), "angle_class": grasp.angle_class,
    }


def _settings(args: argparse.Namespace, **fixed: object) -> DetectorSettings:
    """The table's defaults, with this command's parameter options and then `fixed` (what the
    command does not let change) applied."""
    given = {name: value for name, value in vars(args).items() if name in PARAMETERS_BY_NAME}
    return detector_settings({**defaults(), **given, **fixed})


def command_detect(args: argparse.Namespace) -> int:
    import cv2

    from sgdn_ros.core.drawing import draw_grasps
    from sgdn_ros.core.image_files import image_files, read_bgr
    from sgdn_ros.pipeline.loading import load_detector

    # The stages run on the CPU whatever the backend: the stage times printed are the CPU's.
    loaded = load_detector(_settings(args, gpu_processing="off"))
    print(f"sgdn-ros detect: {loaded.model_description}", file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    try:
        for path in image_files(args.images):
            image = read_bgr(path)
            detection = loaded.detector.detect(image)
            record = {
                "image": str(path),
                "grasps": [_grasp_record(grasp) for grasp in detection.grasps],
                "stage_ms": {stage: round(seconds * 1e3, 3)
                             for stage, seconds in detection.stage_seconds.items()},
            }
            print(json.dumps(record), flush=True)
            if args.out:
                annotated = draw_grasps(image, detection.grasps)
                cv2.imwrite(str(args.out / f"{path.stem}_grasps.png"), annotated)
    finally:
        loaded.close()
    return 0


def command_txt(args: argparse.Namespace) -> int:
    from sgdn_ros.core.image_files import read_bgr
    from sgdn_ros.core.preprocessing import crop_bgr, write_sample_txt

    crop, geometry = crop_bgr(read_bgr(args.image), _settings(args).preprocess)
    write_sample_txt(crop, args.output)
    print(f"wrote {args.output}: the {crop.shape[0]}x{crop.shape[1]} crop at (row {geometry.top},"
          f" col {geometry.left}) of {args.image}, 3 x {crop.shape[0]} lines (B, G, R)")
    return 0


def command_play(args: argparse.Namespace) -> int:
    from sgdn_ros.core.image_files import image_files
    from sgdn_ros.ros.player import ImagePlayer
    from sgdn_ros.ros.session import RosSession

    try:
        with RosSession("sgdn_player") as session:
            player = ImagePlayer(session.node, image_files(args.paths), topic=args.topic,
                                 frame_id=args.frame_id, compressed=args.compressed)
            print(f"playing {len(player.images)} image(s) on {player.topic_name} at "
                  f"{args.rate} Hz{' (looping)' if args.loop else ''}")
            period = 1.0 / args.rate
            next_time = time.monotonic()
            for count, index in enumerate(player.indices(args.loop)):
                if args.count and count >= args.count:
                    break
                player.publish(index)
                next_time += period
                time.sleep(max(0.0, next_time - time.monotonic()))
    except KeyboardInterrupt:
        pass
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from sgdn_ros.tools.demo import run_demo

    return run_demo(args.out, count=args.count, seed=args.seed, sim=args.sim)


def command_bench(args: argparse.Namespace) -> int:
    from sgdn_ros.tools.bench import run_benchmark

    return run_benchmark(frames=args.frames, write=args.write)


def command_sim_eval(args: argparse.Namespace) -> int:
    from sgdn_ros.tools.sim_eval import run_sim_eval

    return run_sim_eval(scenes=args.scenes, objects=args.objects, seed=args.seed,
                        split=args.split, planner=args.planner, model_path=args.model,
                        out_dir=args.out)


def command_sim_data(args: argparse.Namespace) -> int:
    from sgdn_ros.sim.training_data import write_training_scenes

    started = time.monotonic()
    seeds = range(args.seed, args.seed + args.scenes)
    count = write_training_scenes(args.output, seeds, args.classes, workers=args.workers,
                                  colour=args.colour)
    print(f"sgdn-ros sim-data: {count} frames of {args.scenes} scenes (seeds {seeds[0]}.."
          f"{seeds[-1]}, training objects) in {args.output} ({args.output.stat().st_size / 1e6:.1f}"
          f" MB, {time.monotonic() - started:.0f} s)")
    return 0


def command_export(args: argparse.Namespace) -> int:
    import dataclasses

    from sgdn_ros.network.checkpoint import load_checkpoint
    from sgdn_ros.network.export import check_parity_on_planes, export_onnx
    from sgdn_ros.training.rgbd_dataset import parity_planes

    model, config = load_checkpoint(args.checkpoint)
    if args.upsample:
        config = dataclasses.replace(config, upsample=args.upsample)
    planes = parity_planes(config.input_channels)
    outputs = [(args.output, False)]
    if args.fp16:
        outputs.append((args.output.with_name(f"{args.output.stem}_fp16.onnx"), True))
    for path, fp16 in outputs:
        export_onnx(model, config, path, opset=args.opset, fp16=fp16,
                    sampled_channels=args.sampled_channels)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {path} ({size_mb:.1f} MB, opset {args.opset}, {config.backbone}, "
              f"K = {config.num_angle_classes}, upsample {config.upsample}"
              f"{', FP16 with float32 inputs/outputs' if fp16 else ''}"
              f"{', angle and width at the heads size' if args.sampled_channels else ''})")
        print("\n".join(check_parity_on_planes(model, path, planes).lines()))
    return 0


def command_make_test_model(args: argparse.Namespace) -> int:
    from sgdn_ros.models.synthetic import save_synthetic_sgdn_model

    path = save_synthetic_sgdn_model(
        args.output, num_angle_classes=args.classes,
        width_channels=args.classes if args.width_per_class else 1)
    print(f"wrote {path}: synthetic SGDN-contract model, K = {args.classes}")
    return 0


def command_make_scenes(args: argparse.Namespace) -> int:
    from sgdn_ros.training.scenes import write_demo_scenes

    scenes = write_demo_scenes(args.folder, count=args.count, seed=args.seed)
    print(f"wrote {len(scenes)} tabletop scenes (PNG + scenes.json) to {args.folder}")
    return 0


def _delegate_to(module_name: str):
    """`train` and `evaluate` keep their own argument parsers (torch is imported only there)."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        module = importlib.import_module(f"sgdn_ros.training.{module_name}")
        return module.main(args.arguments)

    return run


def _add_parameter_option(parser: argparse.ArgumentParser, flag: str, name: str,
                          help_text: str = "") -> None:
    """An option for the table's parameter `name`: its type, choices, default and description;
    the value is stored under the parameter's name, where `_settings` finds it."""
    spec = PARAMETERS_BY_NAME[name]
    parser.add_argument(flag, dest=name, type=_ARGUMENT_TYPES[spec.type_name],
                        default=spec.default, choices=spec.choices or None,
                        help=f"{help_text or spec.description} (default: %(default)r)")


def _add_decode_options(parser: argparse.ArgumentParser) -> None:
    for flag, name in (("--mode", "decode_mode"), ("--threshold", "confidence_threshold"),
                       ("--min-distance", "min_distance"), ("--max-grasps", "max_grasps"),
                       ("--max-width-px", "max_grasp_width_px"),
                       ("--metres-per-pixel", "metres_per_pixel")):
        _add_parameter_option(parser, flag, name)


def build_parser() -> argparse.ArgumentParser:
    from sgdn_ros.tools.engine_commands import add_engine_commands
    from sgdn_ros.tools.torture import add_torture_command

    parser = argparse.ArgumentParser(prog="sgdn-ros", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    detect = commands.add_parser("detect", help="grasps in image files, as JSON lines (no ROS)")
    detect.add_argument("images", nargs="+", help="image files or folders")
    _add_parameter_option(detect, "--model", "model_path",
                          "SGDN ONNX model or checkpoint; empty: the trained default")
    _add_parameter_option(detect, "--backend", "backend")
    detect.add_argument("--out", type=pathlib.Path, help="folder for annotated PNGs")
    _add_parameter_option(detect, "--small-image-policy", "small_image_policy")
    _add_decode_options(detect)
    detect.set_defaults(run=command_detect)

    txt = commands.add_parser("txt", help="an image as the published C++ sample's txt input")
    txt.add_argument("image", type=pathlib.Path)
    txt.add_argument("-o", "--output", type=pathlib.Path, required=True)
    _add_parameter_option(txt, "--small-image-policy", "small_image_policy")
    txt.set_defaults(run=command_txt)

    play = commands.add_parser("play", help="publish images as a camera would (ROS)")
    play.add_argument("paths", nargs="+", help="image files or folders")
    play.add_argument("--topic", default="image_raw")
    play.add_argument("--rate", type=float, default=5.0, help="frames per second")
    play.add_argument("--frame-id", default="camera")
    play.add_argument("--compressed", action="store_true", help="publish JPEG CompressedImage")
    play.add_argument("--once", dest="loop", action="store_false", help="do not loop")
    play.add_argument("--count", type=int, default=0, help="stop after N frames (0: never)")
    play.set_defaults(run=command_play)

    demo = commands.add_parser("demo", help="the detector end to end on sample scenes (ROS)")
    demo.add_argument("--out", type=pathlib.Path, default=pathlib.Path("demo_output"))
    demo.add_argument("--count", type=int, default=6, help="number of scenes")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--sim", action="store_true",
                      help="also the bin-picking bench on a few held-out scenes (pybullet)")
    demo.set_defaults(run=command_demo)

    bench = commands.add_parser("bench", help="per-stage and end-to-end timings (CPU, ROS)")
    bench.add_argument("--frames", type=int, default=60)
    bench.add_argument("--write", type=pathlib.Path, help="write the figures to this Markdown file")
    bench.set_defaults(run=command_bench)

    sim_eval = commands.add_parser(
        "sim-eval", help="grasp success in simulated clutter, through the node (pybullet, ROS)")
    sim_eval.add_argument("--model", default="", help="model for the node; empty: the default")
    sim_eval.add_argument("--scenes", type=int, default=20)
    sim_eval.add_argument("--objects", type=int, default=5, help="objects per scene")
    sim_eval.add_argument("--seed", type=int, default=100000, help="seed of the first scene")
    sim_eval.add_argument("--split", choices=("held_out", "train"), default="held_out")
    sim_eval.add_argument("--planner", choices=("node", "truth"), default="node",
                          help="truth: the simulator's own grasps (model-free check, no ROS)")
    sim_eval.add_argument("--out", type=pathlib.Path, default=pathlib.Path("sim_output"))
    sim_eval.set_defaults(run=command_sim_eval)

    sim_data = commands.add_parser(
        "sim-data", help="simulated depth scenes with true grasps, for `train --scenes`")
    sim_data.add_argument("output", type=pathlib.Path, help="the scene store to write (.npz)")
    sim_data.add_argument("--scenes", type=int, default=200)
    sim_data.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    sim_data.add_argument("--classes", type=int, default=18, help="angle classes K (even)")
    sim_data.add_argument("--workers", type=int, default=1, help="processes")
    sim_data.add_argument("--colour", action="store_true",
                          help="keep colour too (JPEG, ~30 KB a frame) for bgr/depth_bgr models")
    sim_data.set_defaults(run=command_sim_data)

    export = commands.add_parser(
        "export", help="PyTorch checkpoint -> ONNX (published tensor names), with a parity check")
    export.add_argument("checkpoint", type=pathlib.Path,
                        help="state_dict (published AFFGA-Net) or sgdn_ros checkpoint")
    export.add_argument("-o", "--output", type=pathlib.Path, required=True)
    export.add_argument("--opset", type=int, default=17,
                        help="17 parses on TensorRT 8.5 to 11; for TensorRT 7: 11, nearest")
    export.add_argument("--upsample", choices=("bilinear", "nearest"),
                        help="override the checkpoint's upsampling (nearest for TensorRT 7)")
    export.add_argument("--fp16", action="store_true",
                        help="also write <output>_fp16.onnx (FP16 weights, float32 I/O)")
    export.add_argument("--sampled-channels", action="store_true",
                        help="angle and width maps before the last upsampling (half the input "
                             "size), sampled by the decoders at the chosen pixels: faster "
                             "inference, the same grasps")
    export.set_defaults(run=command_export)

    add_engine_commands(commands)
    add_torture_command(commands)

    for name, module, text in (("train", "train", "train SGDN on synthetic grasp scenes"),
                               ("evaluate", "evaluate", "Cornell rectangle metric, held-out")):
        delegated = commands.add_parser(name, help=text, add_help=False)
        delegated.add_argument("arguments", nargs=argparse.REMAINDER)
        delegated.set_defaults(run=_delegate_to(module))

    model = commands.add_parser("make-test-model", help="write the synthetic SGDN-contract model")
    model.add_argument("output", type=pathlib.Path)
    model.add_argument("--classes", type=int, default=120, help="angle classes K")
    model.add_argument("--width-per-class", action="store_true", help="width with K channels")
    model.set_defaults(run=command_make_test_model)

    scenes = commands.add_parser("make-scenes", help="write sample tabletop scenes")
    scenes.add_argument("folder", type=pathlib.Path)
    scenes.add_argument("--count", type=int, default=8)
    scenes.add_argument("--seed", type=int, default=0)
    scenes.set_defaults(run=command_make_scenes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown and getattr(args, "arguments", None) is None:
        build_parser().error(f"unrecognized arguments: {' '.join(unknown)}")
    if unknown:
        args.arguments = unknown + args.arguments
    try:
        return args.run(args)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"sgdn-ros {args.command}: {error}", file=sys.stderr)
        return 2
