"""median_filter_fast against scipy's full median filter."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from allsky_camera.stages import fastmedian
from allsky_camera.stages.fastmedian import median_filter_fast

KERNEL = 23
STEP = 4


def _sky(rng, ny=300, nx=400, radius=150.0):
    """An 8-bit-like all-sky frame: radial gradient from 15 ADU at the zenith
    to 40 ADU at the horizon, Gaussian stars, Poisson noise, integer ADU."""
    yy, xx = np.mgrid[:ny, :nx]
    r = np.hypot(xx - nx / 2, yy - ny / 2)
    level = 15.0 + 25.0 * np.clip(r / radius, 0.0, 1.1) ** 2
    sigma_psf = 1.2
    for _ in range(150):
        x0, y0 = rng.uniform(0, nx), rng.uniform(0, ny)
        flux = 10 ** rng.uniform(1.5, 3.3)
        level = level + flux / (2 * np.pi * sigma_psf**2) * np.exp(
            -((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma_psf**2))
    img = np.clip(np.rint(rng.poisson(level)), 0, 255).astype(np.float32)
    return img, r <= radius


@pytest.fixture(scope="module")
def sky():
    img, mask = _sky(np.random.default_rng(4))
    ref = ndimage.median_filter(img, size=KERNEL, mode="nearest")
    return img, mask, ref


def _mag(a, b):
    return 2.5 * np.log10(a / b)


def test_agrees_with_scipy_over_the_sky(sky):
    img, mask, ref = sky
    before = img.copy()
    fast = median_filter_fast(img, KERNEL, step=STEP, mask=mask)
    np.testing.assert_array_equal(img, before)                 # input untouched
    assert fast.dtype == np.float32 and fast.shape == img.shape
    assert np.isnan(fast[~mask]).all() and np.isfinite(fast[mask]).all()
    d = _mag(fast[mask], ref[mask])
    # scipy's median of integer data moves in whole ADU (0.07 mag at 15 ADU),
    # the interpolation does not: pixel by pixel they differ by up to ~1 ADU,
    # on average they agree
    assert np.median(np.abs(d)) < 0.01
    assert abs(np.mean(d)) < 0.01
    assert np.abs(fast - ref)[mask].max() <= 2.0
    # averaged over 8 x 8 px blocks inside the sky the two are the same to 1 %
    b = 8
    inner = mask[:296, :400].reshape(37, b, 50, b).all(axis=(1, 3))
    fb = fast[:296, :400].reshape(37, b, 50, b).mean(axis=(1, 3))
    rb = ref[:296, :400].reshape(37, b, 50, b).mean(axis=(1, 3))
    assert np.median(np.abs(_mag(fb[inner], rb[inner]))) < 0.005


def test_nodes_are_scipy_exactly(sky):
    img, mask, ref = sky
    fast = median_filter_fast(img, KERNEL, step=STEP)
    gy = np.r_[np.arange(0, img.shape[0], STEP), img.shape[0] - 1]
    gx = np.r_[np.arange(0, img.shape[1], STEP), img.shape[1] - 1]
    np.testing.assert_array_equal(fast[np.ix_(gy, gx)], ref[np.ix_(gy, gx)])


def test_detrended_frame_with_filled_pixels(sky):
    """Raw minus a non-integer level, plus a few bad pixels replaced by a
    neighbour mean (off the lattice): nodes still exact."""
    img = sky[0][50:200, 100:300]
    rng = np.random.default_rng(9)
    det = img - np.float32(2.37)
    by, bx = rng.integers(0, img.shape[0], 20), rng.integers(0, img.shape[1], 20)
    det[by, bx] += np.float32(0.375)
    want = ndimage.median_filter(det, size=KERNEL, mode="nearest")
    fast = median_filter_fast(det, KERNEL, step=STEP)
    gy = np.r_[np.arange(0, det.shape[0], STEP), det.shape[0] - 1]
    gx = np.r_[np.arange(0, det.shape[1], STEP), det.shape[1] - 1]
    np.testing.assert_array_equal(fast[np.ix_(gy, gx)], want[np.ix_(gy, gx)])


@pytest.mark.parametrize("continuous", [False, True])
def test_workers_identical(sky, continuous):
    img, mask, _ = sky
    if continuous:      # not on a lattice: the general (partition) path
        img = img + np.random.default_rng(1).random(img.shape, dtype=np.float32)
    a = median_filter_fast(img, KERNEL, step=STEP, mask=mask)
    b = median_filter_fast(img, KERNEL, step=STEP, mask=mask, workers=2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["uint8", "float64", "continuous", "offlattice", "wide"])
@pytest.mark.parametrize("kernel", [1, 3, 7, 41])
def test_step_one_is_scipy(kind, kernel):
    rng = np.random.default_rng(kernel)
    img = rng.poisson(20, (37, 29))
    if kind == "uint8":
        img = img.astype(np.uint8)
    elif kind == "float64":
        img = img - 0.25
    elif kind == "continuous":
        img = img + rng.random(img.shape)
    elif kind == "wide":                        # 16-bit lattice codes
        img = (img * 300 + rng.integers(0, 300, img.shape)).astype(np.uint16)
    else:
        img = img.astype(np.float32)
        img[5, 7] += 0.5
        img[30, 0] -= 0.125
    got = median_filter_fast(img, kernel, step=1)
    want = ndimage.median_filter(img, size=kernel, mode="nearest")
    assert got.dtype == np.result_type(img.dtype, np.float32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(6))
def test_mask_skips_nodes_but_keeps_values(seed):
    """With a mask the wanted pixels get the same values as without one,
    including next to the last row and column (a shorter last grid cell)."""
    rng = np.random.default_rng(seed)
    ny, nx = rng.integers(20, 70, 2)
    step = int(rng.integers(2, 7))
    img = rng.poisson(30, (ny, nx)).astype(np.float32)
    mask = rng.random((ny, nx)) < 0.02
    mask[ny - 2, rng.integers(nx)] = True       # wanted pixels just inside the
    mask[rng.integers(ny), nx - 2] = True       # last row / column of nodes
    full = median_filter_fast(img, 9, step=step)
    part = median_filter_fast(img, 9, step=step, mask=mask)
    np.testing.assert_array_equal(part[mask], full[mask])
    assert np.isnan(part[~mask]).all()


def test_constant_image():
    img = np.full((11, 13), 7.5)
    np.testing.assert_array_equal(median_filter_fast(img, 5, step=3), img)


@pytest.mark.parametrize("kwargs", [
    {"kernel": 4, "step": 2}, {"kernel": 0, "step": 2}, {"kernel": 5, "step": 0},
    {"kernel": 5.0, "step": 2}, {"kernel": 5, "step": 2, "workers": 0},
    {"kernel": 5, "step": 2, "mask": np.ones((3, 3), bool)},
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        median_filter_fast(np.zeros((10, 10)), **kwargs)


@pytest.mark.parametrize("image", [np.zeros(10), np.zeros((0, 5)),
                                   np.array([[1.0, np.nan], [2.0, 3.0]])])
def test_bad_images(image):
    with pytest.raises(ValueError, match="image"):
        median_filter_fast(image, 3, step=1)


@pytest.fixture(params=[True, False], ids=["lattice", "general"])
def path(request, monkeypatch):
    """Force one of the two exact paths (normally chosen by timing)."""
    monkeypatch.setattr(fastmedian, "_lattice_pays", lambda kernel, dtype: request.param)
    return request.param


@pytest.mark.parametrize("kind", ["uint8", "offlattice", "wide", "continuous"])
def test_both_paths_are_scipy(path, kind):
    """Each path alone gives scipy's medians, on and off the lattice."""
    rng = np.random.default_rng(11)
    img = rng.poisson(20, (41, 33))
    if kind == "uint8":
        img = img.astype(np.uint8)
    elif kind == "wide":
        img = (img * 300 + rng.integers(0, 300, img.shape)).astype(np.uint16)
    elif kind == "continuous":
        img = img + rng.random(img.shape)
    else:
        img = img.astype(np.float32) - np.float32(2.37)
        img[3, 4] += np.float32(0.375)
    for kernel in (3, 9):
        want = ndimage.median_filter(img, size=kernel, mode="nearest")
        np.testing.assert_array_equal(median_filter_fast(img, kernel, step=1), want)


def test_path_choice_is_cached_and_boolean():
    a = fastmedian._lattice_pays(5, np.dtype(np.float32))
    assert isinstance(a, bool)
    assert fastmedian._lattice_pays(5, np.dtype(np.float32)) is a


def test_lattice_detection():
    rng = np.random.default_rng(0)
    raw = rng.poisson(25, (50, 50)).astype(np.float32)
    codes, values, off = fastmedian._lattice_codes(raw - np.float32(3.1))
    assert codes.dtype == np.uint8 and not off.any()
    np.testing.assert_array_equal(values[codes], raw - np.float32(3.1))
    assert fastmedian._lattice_codes(raw + rng.random(raw.shape, dtype=np.float32)) is None
    wide = raw * 300                                  # 16-bit-like range
    assert fastmedian._lattice_codes(wide)[0].dtype == np.uint16


def test_imports_only_numpy():
    code = ("import sys; import allsky_camera.stages.fastmedian, allsky_camera.stages.apertures; "
            "print(sorted(m for m in ('scipy', 'photutils', 'astropy') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(Path(fastmedian.__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 11, 1000, 1001])
def test_median_is_numpys(dtype, n):
    # the same number in the same dtype as np.median, ties included
    rng = np.random.default_rng(n)
    for v in (rng.integers(0, 9, n), rng.normal(30.0, 4.0, n)):
        v = v.astype(dtype)
        want = np.median(v)
        got = fastmedian.median(v)
        assert got == want and np.asarray(got).dtype == np.asarray(want).dtype


def test_median_of_an_image_nan_and_empty():
    img = np.random.default_rng(5).normal(0.0, 1.0, (40, 51)).astype(np.float32)
    assert fastmedian.median(img) == np.median(img)
    img[3, 7] = np.nan
    assert np.isnan(fastmedian.median(img)) and np.isnan(np.median(img))
    assert np.isnan(fastmedian.median(np.zeros(0)))
