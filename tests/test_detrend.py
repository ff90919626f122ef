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


def test_hot_pixels_are_the_8_neighbour_definition():
    """The candidate search finds exactly the pixels that beat all 8
    neighbours (edge-replicated) by nsigma noise and ratio times their spread."""
    rng = np.random.default_rng(41)
    img = rng.normal(100.0, 5.0, (80, 90)).astype(np.float32)
    ys, xs = rng.integers(0, 80, 60), rng.integers(0, 90, 60)
    img[ys, xs] += rng.uniform(0.0, 400.0, 60).astype(np.float32)
    img[0, 7] += 500.0
    img[79, 89] += 500.0
    for nsigma, ratio in ((10.0, 3.0), (2.0, 0.5)):
        got = detrend.find_hot_pixels(img, nsigma=nsigma, ratio=ratio)
        pad = np.pad(img, 1, mode="edge")
        nb = np.stack([pad[1 + dy:81 + dy, 1 + dx:91 + dx] for dy in (-1, 0, 1)
                       for dx in (-1, 0, 1) if dx or dy])
        diff = np.diff(img[:: max(80 // 200, 1)], axis=1)
        noise = max(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2.0), 1e-6)
        want = (((img - nb.max(axis=0)) > nsigma * noise)
                & ((img - nb.min(axis=0)) > ratio * (nb.max(axis=0) - nb.min(axis=0))))
        np.testing.assert_array_equal(got, want)
        assert got.any()


def _fill_by_definition(image, bad, passes):
    """The repair written out pixel by pixel: each pass gives every bad pixel
    with a good 8-neighbour the mean of those (all from the start of the
    pass); after ``passes`` passes the rest take the median of the good."""
    out = image.astype(float).copy()
    bad = bad.copy()
    ny, nx = out.shape
    for _ in range(passes):
        new = {}
        for y, x in zip(*np.nonzero(bad)):
            vals = [out[y + dy, x + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                    if (dy or dx) and 0 <= y + dy < ny and 0 <= x + dx < nx
                    and not bad[y + dy, x + dx]]
            if vals:
                new[y, x] = np.mean(vals)
        for (y, x), v in new.items():
            out[y, x] = v
            bad[y, x] = False
    if bad.any():
        out[bad] = np.median(out[~bad])
    return out


def test_fill_bad_clusters_follow_the_definition():
    # single pixels, a line on the edge, a 5x5 block (filled from its edge in
    # 3 passes) and a 12x12 block (too big: its core takes the median)
    rng = np.random.default_rng(8)
    image = rng.normal(50.0, 5.0, (60, 70)).astype(np.float32)
    bad = np.zeros(image.shape, bool)
    bad[rng.integers(0, 60, 30), rng.integers(0, 70, 30)] = True
    bad[0, 10:20] = True
    bad[20:25, 30:35] = True
    bad[40:52, 50:62] = True
    before = (image.copy(), bad.copy())
    got = detrend.fill_bad(image, bad)
    np.testing.assert_array_equal(image, before[0])      # inputs untouched
    np.testing.assert_array_equal(bad, before[1])
    want = _fill_by_definition(image, bad, detrend._FILL_PASSES)
    np.testing.assert_allclose(got, want, rtol=1e-6)
