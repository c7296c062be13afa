"""Stored training scenes: the file keeps frames and grasps exactly; turning and mirroring move
the grasps with the image; reads add the sensor's noise and give the detector's own planes;
the simulator records frames of training objects only, with grasps inside the stored crop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgdn_ros.training.stored_scenes import (
    STORE_MARGIN_PX,
    SceneStore,
    StoredFrame,
    StoredSceneDataset,
    turn_frame,
    write_scene_store,
)

K = 18
SIZE = 320 + 2 * STORE_MARGIN_PX


def bar_frame() -> StoredFrame:
    """A 150 x 12 px bar, 40 mm high, lying along the rows of a floor 650 mm away, dark on a
    light floor, and one grasp across it (class K/2: the finger line vertical on screen)."""
    depth = np.full((SIZE, SIZE), 650, dtype=np.uint16)
    depth[100:112, 60:210] = 610
    bgr = np.full((SIZE, SIZE, 3), 220, dtype=np.uint8)
    bgr[100:112, 60:210] = 30
    return StoredFrame(depth, np.array([[105.5, 130.0, K // 2, 30.0]], dtype=np.float32), bgr)


def _bar_axis(depth_mm: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(depth_mm < 640)
    covariance = np.cov(np.stack([cols, rows]))
    return np.linalg.eigh(covariance)[1][:, -1]  # (dcol, drow) of the long axis


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("quarter_turns", [0, 1, 2, 3])
def test_turned_frames_keep_each_grasp_across_its_bar(quarter_turns, mirror):
    turned = turn_frame(bar_frame(), quarter_turns, mirror, K)
    depth = turned.depth_mm
    row, col, angle_class, width = turned.grasps[0]
    np.testing.assert_array_equal(turned.bgr[:, :, 0] < 100, depth < 640)  # colour turned too
    assert depth[int(round(row)), int(round(col))] == 610  # still on the bar
    angle = angle_class * math.pi / K
    finger_line = np.array([math.cos(angle), -math.sin(angle)])  # (dcol, drow)
    assert abs(finger_line @ _bar_axis(depth)) < 1e-6  # across the bar
    assert width == 30.0


def test_the_store_keeps_frames_and_grasps(tmp_path):
    rng = np.random.default_rng(0)
    frames = [StoredFrame(rng.integers(400, 700, (SIZE, SIZE)).astype(np.uint16),
                          rng.random((count, 4)).astype(np.float32) * 300)
              for count in (3, 0, 5)]
    write_scene_store(tmp_path / "scenes.npz", frames, K)
    store = SceneStore(tmp_path / "scenes.npz")
    assert len(store) == 3 and store.grasp_count == 8 and store.num_angle_classes == K
    assert not store.has_colour and store.frame(0).bgr is None
    with pytest.raises(ValueError, match="sim-data --colour"):
        StoredSceneDataset(store, 3, input_kind="depth_bgr", num_angle_classes=K,
                           width_channels=1)
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(store.frame(index).depth_mm, frame.depth_mm)
        np.testing.assert_array_equal(store.frame(index).grasps, frame.grasps)


def test_reads_give_noisy_planes_and_labels_at_the_grasps(tmp_path):
    write_scene_store(tmp_path / "bar.npz", [bar_frame()], K)
    dataset = StoredSceneDataset(SceneStore(tmp_path / "bar.npz"), 4, num_angle_classes=K,
                                 width_channels=1)
    first, second = dataset[0], dataset[1]
    assert first.images.shape == (1, 1, 320, 320)
    assert not np.array_equal(first.images.numpy(), second.images.numpy())  # fresh noise
    able = first.able[0, 0].numpy()
    planes = first.images[0, 0].numpy()
    assert able.sum() > 0 and (planes[able > 0.5] < planes.mean()).all()  # on the bar: nearer
    assert first.angle.shape[1] == K and (first.angle.sum(axis=1) == 1).all()
    for kind, channels in (("bgr", 3), ("depth_bgr", 4)):
        coloured = StoredSceneDataset(SceneStore(tmp_path / "bar.npz"), 1, input_kind=kind,
                                      num_angle_classes=K, width_channels=1)[0]
        assert coloured.images.shape == (1, channels, 320, 320)
        np.testing.assert_array_equal(coloured.able, first.able)  # same read, same turn
    with pytest.raises(ValueError, match="--classes 18"):
        StoredSceneDataset(SceneStore(tmp_path / "bar.npz"), 4, num_angle_classes=12,
                           width_channels=1)


def test_the_simulator_records_training_frames_with_grasps_in_the_crop():
    pytest.importorskip("pybullet", reason="pybullet is not installed: run through scripts/test.sh")
    from sgdn_ros.sim.training_data import record_scene

    frames = record_scene(3, K, num_objects=2)
    assert 1 <= len(frames) <= 4
    assert all(frame.depth_mm.shape == (SIZE, SIZE) and frame.depth_mm.dtype == np.uint16
               for frame in frames)
    grasps = np.concatenate([frame.grasps for frame in frames])
    assert len(grasps) > 10
    assert (grasps[:, :2] >= 0).all() and (grasps[:, :2] < SIZE).all()
    assert set(np.unique(grasps[:, 2])) <= set(range(K))
    assert (grasps[:, 3] > 5).all()
    first = frames[0]
    on_objects = first.depth_mm[first.grasps[:, 0].astype(int), first.grasps[:, 1].astype(int)]
    floor = np.median(first.depth_mm[first.depth_mm > 0])
    assert (on_objects < floor - 5).all()  # every grasp centre lies on an object
