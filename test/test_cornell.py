"""Cornell files written here in the data set's format: rectangles parsed with the right angle,
opening and jaw, NaN groups skipped, samples found, images cropped as the node crops them."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sgdn_ros.training.cornell import (
    CornellFormatError,
    CornellSample,
    find_cornell_samples,
    load_cornell_sample,
    read_cornell_rectangles,
)
from sgdn_ros.training.grasp_rectangles import GraspRectangle

# Two rectangles as (x, y) = (column, row) corners, then a NaN group as the data set has.
CPOS = """\
100 200
140 200
140 220
100 220
300.5 250
300.5 210
320.5 210
320.5 250
NaN NaN
NaN NaN
12 13
14 15
"""


def corner_lines(*corners: tuple[float, float]) -> str:
    return "".join(f"{x:.6f} {y:.6f}\n" for x, y in corners)


@pytest.fixture
def cpos_file(tmp_path):
    """CPOS and a rectangle whose fingers run up and to the right at 45 degrees."""
    step, jaw = 20 / math.sqrt(2), 10 / math.sqrt(2)
    diagonal = corner_lines((200, 300), (200 + step, 300 - step),
                            (200 + step + jaw, 300 - step + jaw), (200 + jaw, 300 + jaw))
    path = tmp_path / "pcd0100cpos.txt"
    path.write_text(CPOS + "\n" + diagonal, encoding="utf-8")
    return path


def test_rectangles_are_read_with_centre_angle_opening_and_jaw(cpos_file):
    first, second, diagonal = read_cornell_rectangles(cpos_file)
    # Edge 0 -> 1 along +x: fingers along the columns, angle 0.
    assert (first.row, first.col, first.angle) == (210.0, 120.0, 0.0)
    assert (first.width, first.height) == (40.0, 20.0)
    # Edge 0 -> 1 up the screen (y falling): a quarter turn counter-clockwise.
    assert (second.row, second.col) == (230.0, 310.5)
    assert second.angle == pytest.approx(math.pi / 2)
    assert (second.width, second.height) == (40.0, 20.0)
    # Up and to the right: 45 degrees on screen.
    assert diagonal.angle == pytest.approx(math.pi / 4)
    assert diagonal.width == pytest.approx(20.0) and diagonal.height == pytest.approx(10.0)


def test_rectangle_corners_survive_a_round_trip_through_the_file_format(tmp_path):
    rng = np.random.default_rng(0)
    originals = [GraspRectangle(row=rng.uniform(50, 400), col=rng.uniform(50, 600),
                                angle=rng.uniform(0, math.pi), width=rng.uniform(10, 90),
                                height=rng.uniform(5, 40)) for _ in range(25)]
    path = tmp_path / "pcd0001cpos.txt"
    path.write_text("".join(corner_lines(*[(col, row) for row, col in r.corners()])
                            for r in originals), encoding="utf-8")
    for original, read in zip(originals, read_cornell_rectangles(path), strict=True):
        assert read.row == pytest.approx(original.row) and read.col == pytest.approx(original.col)
        assert read.angle == pytest.approx(original.angle, abs=1e-6)  # 6 decimals
        assert read.width == pytest.approx(original.width)
        assert read.height == pytest.approx(original.height)


@pytest.mark.parametrize("text, message", [
    ("1 2\n3 4\n5 6\n", "not a multiple of 4"),
    ("1 2\n3 4 5\n5 6\n7 8\n", r":2: expected two numbers"),
    ("1 2\n3 x\n5 6\n7 8\n", r":2: expected two numbers"),
])
def test_malformed_files_are_refused_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "pcd0002cpos.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CornellFormatError, match=message):
        read_cornell_rectangles(path)


def test_rectangles_without_area_are_skipped(tmp_path):
    path = tmp_path / "pcd0003cpos.txt"
    path.write_text("5 5\n5 5\n9 9\n1 1\n" + corner_lines((0, 0), (10, 0), (10, 4), (0, 4)),
                    encoding="utf-8")
    assert [r.width for r in read_cornell_rectangles(path)] == [10.0]


def write_sample(folder, number: int, image: np.ndarray, cpos: str, depth: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / f"pcd{number:04d}r.png"), image)
    (folder / f"pcd{number:04d}cpos.txt").write_text(cpos, encoding="utf-8")
    (folder / f"pcd{number:04d}cneg.txt").write_text("", encoding="utf-8")
    if depth:
        assert cv2.imwrite(str(folder / f"pcd{number:04d}d.tiff"),
                           np.ones((480, 640), np.float32))


def test_samples_are_found_in_the_numbered_folders_sorted(tmp_path):
    image = np.zeros((480, 640, 3), np.uint8)
    write_sample(tmp_path / "02", 200, image, "", depth=False)
    write_sample(tmp_path / "01", 101, image, "", depth=True)
    write_sample(tmp_path / "01", 100, image, "", depth=True)
    samples = find_cornell_samples(tmp_path)
    assert [s.positive_path.name for s in samples] == [
        "pcd0100cpos.txt", "pcd0101cpos.txt", "pcd0200cpos.txt"]
    assert samples[0] == CornellSample(image_path=tmp_path / "01" / "pcd0100r.png",
                                       positive_path=tmp_path / "01" / "pcd0100cpos.txt",
                                       depth_path=tmp_path / "01" / "pcd0100d.tiff")
    assert samples[2].depth_path is None


def test_a_sample_without_its_image_or_a_folder_without_samples_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_cornell_samples(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no Cornell samples"):
        find_cornell_samples(tmp_path)
    (tmp_path / "pcd0300cpos.txt").write_text("", encoding="utf-8")
    with pytest.raises(CornellFormatError, match="pcd0300r.png"):
        find_cornell_samples(tmp_path)


def test_a_sample_is_cropped_as_the_node_crops_and_its_rectangles_follow(tmp_path):
    image = np.zeros((480, 640, 3), np.uint8)
    image[250, 330] = (10, 20, 30)
    image[80, 160] = (1, 2, 3)   # the crop's top-left pixel
    inside = corner_lines((310, 240), (350, 240), (350, 260), (310, 260))   # centre (250, 330)
    outside = corner_lines((10, 10), (50, 10), (50, 30), (10, 30))          # centre (20, 30)
    write_sample(tmp_path, 100, image, inside + outside, depth=False)
    scene = load_cornell_sample(find_cornell_samples(tmp_path)[0])
    assert scene.image.shape == (320, 320, 3)
    assert tuple(scene.image[170, 170]) == (10, 20, 30)
    assert tuple(scene.image[0, 0]) == (1, 2, 3)
    assert scene.objects == ()
    assert scene.rectangles == (
        GraspRectangle(row=170.0, col=170.0, angle=0.0, width=40.0, height=20.0),)


def test_an_unreadable_image_is_reported(tmp_path):
    (tmp_path / "pcd0100r.png").write_bytes(b"not a png")
    (tmp_path / "pcd0100cpos.txt").write_text("", encoding="utf-8")
    with pytest.raises(CornellFormatError, match="cannot read"):
        load_cornell_sample(find_cornell_samples(tmp_path)[0])
