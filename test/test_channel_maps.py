"""Angle and width maps smaller than the able map: sampled at chosen pixels as PyTorch's
bilinear upsampling (aligned corners) gives them, decoded into the grasps of the upsampled maps,
and accepted as model outputs."""

from __future__ import annotations

import numpy as np
import pytest

from sgdn_ros.backends.base import (
    PUBLISHED_OUTPUT_NAMES,
    ModelLoadError,
    resolve_output_names,
    smaller_channel_size,
)
from sgdn_ros.core.channel_maps import PixelSampler, sample_channels, upsampled
from sgdn_ros.core.decoding import (
    DecodeConfig,
    DecodingError,
    decode_grasps,
    decode_grasps_full,
)
from sgdn_ros.core.preprocessing import PreprocessConfig, Preprocessor

torch = pytest.importorskip("torch", reason="PyTorch's upsampling is the reference")

GEOMETRY = Preprocessor(PreprocessConfig())(np.zeros((480, 640, 3), np.uint8))[1]


def _torch_upsampled(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return torch.nn.functional.interpolate(torch.from_numpy(maps[np.newaxis]), size=size,
                                           mode="bilinear", align_corners=True)[0].numpy()


@pytest.mark.parametrize(("channel_size", "size"), [((160, 160), (320, 320)),
                                                    ((97, 131), (320, 320)),
                                                    ((1, 1), (320, 320)), ((5, 7), (5, 7))])
def test_sampled_and_upsampled_maps_are_pytorchs(channel_size, size):
    maps = np.random.default_rng(sum(channel_size)).normal(0, 2, (6, *channel_size))
    maps = maps.astype(np.float32)
    expected = _torch_upsampled(maps, size)
    np.testing.assert_allclose(upsampled(maps, *size), expected, rtol=1e-6, atol=1e-6)
    rows, cols = np.array([0, size[0] - 1, size[0] // 3]), np.array([size[1] - 1, 0, 2])
    np.testing.assert_allclose(sample_channels(maps, rows, cols, *size),
                               expected[:, rows, cols], rtol=1e-6, atol=1e-6)


def test_one_sampler_reads_every_map_of_its_size_and_refuses_others():
    rng = np.random.default_rng(7)
    angle, width = (rng.normal(0, 2, (channels, 160, 160)).astype(np.float32)
                    for channels in (18, 1))
    rows, cols = np.array([0, 319, 101]), np.array([319, 0, 57])
    sampler = PixelSampler(rows, cols, 320, 320, (160, 160))
    for maps in (angle, width):
        np.testing.assert_array_equal(sampler.read(maps), sample_channels(maps, rows, cols,
                                                                          320, 320))
        np.testing.assert_allclose(sampler.read(maps),
                                   _torch_upsampled(maps, (320, 320))[:, rows, cols],
                                   rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"maps of \(80, 80\) read with a sampler made for"):
        sampler.read(np.zeros((1, 80, 80), np.float32))

@pytest.mark.parametrize("width_channels", [1, 120])
@pytest.mark.parametrize("mode", ["peaks", "max"])
def test_small_channel_maps_decode_as_their_upsampled_maps(width_channels, mode):
    rng = np.random.default_rng(width_channels)
    able = rng.normal(0, 2, (1, 1, 320, 320)).astype(np.float32)
    angle, width = (rng.normal(0, 2, (1, channels, 160, 160)).astype(np.float32)
                    for channels in (120, width_channels))
    config = DecodeConfig(mode=mode, confidence_threshold=0.6, max_grasps=20)
    want = decode_grasps(able, _torch_upsampled(angle[0], (320, 320)),
                         _torch_upsampled(width[0], (320, 320)), GEOMETRY, config)
    assert len(want) == (20 if mode == "peaks" else 1)
    for decode in (decode_grasps, decode_grasps_full):
        got = decode(able, angle, width, GEOMETRY, config)
        assert [(g.crop_row, g.crop_col, g.angle_class) for g in got] == [
            (g.crop_row, g.crop_col, g.angle_class) for g in want]
        np.testing.assert_allclose([g.crop_width_px for g in got],
                                   [g.crop_width_px for g in want], rtol=0, atol=1e-4)


def test_channel_maps_of_other_sizes_are_refused():
    able = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(DecodingError, match="angle and width must share H and W"):
        decode_grasps(able, np.zeros((1, 4, 4, 4), np.float32), np.zeros((1, 1, 8, 8),
                      np.float32), GEOMETRY, DecodeConfig())
    with pytest.raises(DecodingError, match="the able map's or smaller"):
        decode_grasps(able, np.zeros((1, 4, 16, 16), np.float32),
                      np.zeros((1, 1, 16, 16), np.float32), GEOMETRY, DecodeConfig())


def test_outputs_with_smaller_channel_maps_are_sgdns():
    shapes = [(1, 1, 320, 320), (1, 120, 160, 160), (1, 120, 160, 160)]
    assert resolve_output_names(PUBLISHED_OUTPUT_NAMES, shapes) == PUBLISHED_OUTPUT_NAMES
    assert smaller_channel_size(shapes[0], shapes[1]) == (160, 160)
    assert smaller_channel_size(shapes[0], (1, 120, 320, 320)) is None
    with pytest.raises(ModelLoadError, match="the able map's or smaller"):
        resolve_output_names(PUBLISHED_OUTPUT_NAMES,
                             [(1, 1, 160, 160), (1, 120, 320, 320), (1, 120, 320, 320)])
