"""Detrend: dark level from the dark region, bad-pixel repair, input untouched."""

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import detrend


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


def test_level_from_dark_region_and_input_untouched(camera):
    rng = np.random.default_rng(2)
    raw = rng.normal(20.0, 1.5, (1200, 1600)).round().astype(np.uint8)
    raw[1100, 1500] = 255          # a hot pixel in the dark region is clipped away
    before = raw.copy()
    d = detrend.run(raw, camera)
    np.testing.assert_array_equal(raw, before)
    assert d.level == pytest.approx(20.0, abs=0.05)
    assert d.level_source == "dark_region"
    assert d.image.dtype == np.float32
    assert np.nanmean(d.image) == pytest.approx(0.0, abs=0.05)


def test_bad_pixels_interpolated(camera):
    raw = np.full((1200, 1600), 30, dtype=np.uint8)
    raw[100:200, 100:200] = 40
    bpm = np.zeros(raw.shape, bool)
    bpm[150, 150] = True
    bpm[10, 10:13] = True
    raw[150, 150] = 255
    raw[10, 10:13] = 0
    d = detrend.run(raw, camera, bad_pixel_mask=bpm)
    assert d.n_bad == 4
    assert d.image[150, 150] == pytest.approx(10.0)
    np.testing.assert_allclose(d.image[10, 10:13], 0.0)


def test_nan_pixels_repaired(camera):
    raw = np.full((1200, 1600), 25.0)
    raw[500, 600] = np.nan
    d = detrend.run(raw, camera)
    assert np.isfinite(d.image).all()
    assert d.image[500, 600] == pytest.approx(0.0)


def test_clipped_mean_rejects_outliers():
    v = np.r_[np.full(1000, 10.0) + np.random.default_rng(0).normal(0, 1, 1000), [1e4] * 5]
    m, s = detrend.clipped_mean(v)
    assert m == pytest.approx(10.0, abs=0.1)
    assert s == pytest.approx(1.0, abs=0.1)
