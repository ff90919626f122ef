"""Fast median against scipy's full median filter on a realistic quantised sky."""

import numpy as np
import pytest
from scipy import ndimage

from allsky_camera.fastmedian import median_filter_fast


@pytest.fixture(scope="module")
def sky():
    rng = np.random.default_rng(4)
    ny, nx = 300, 400
    yy, xx = np.mgrid[:ny, :nx]
    r = np.hypot(xx - 200, yy - 150)
    level = 15 + 25 * (r / 150) ** 3
    img = rng.poisson(level * 4) / 4.0
    for _ in range(300):
        img[rng.integers(ny), rng.integers(nx)] += rng.uniform(10, 200)
    return np.rint(img).astype(np.float32), r <= 150


@pytest.mark.parametrize("step", [4, 6])
def test_agrees_with_scipy(sky, step):
    img, mask = sky
    before = img.copy()
    fast = median_filter_fast(img, 23, step=step, mask=mask)
    np.testing.assert_array_equal(img, before)
    ref = ndimage.median_filter(img, size=23, mode="nearest")
    d = 2.5 * np.log10(fast[mask] / ref[mask])
    assert np.median(np.abs(d)) < 0.01 and abs(np.mean(d)) < 0.01
    assert np.isnan(fast[~mask]).all()


def test_step_one_is_exact(sky):
    img, _ = sky
    sub = img[:60, :80]
    np.testing.assert_allclose(median_filter_fast(sub, 7, step=1),
                               ndimage.median_filter(sub, size=7, mode="nearest"))


def test_workers_identical(sky):
    img, mask = sky
    a = median_filter_fast(img, 23, step=6, mask=mask)
    b = median_filter_fast(img, 23, step=6, mask=mask, workers=2)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kernel,step", [(4, 2), (0, 2), (5, 0)])
def test_bad_arguments(kernel, step):
    with pytest.raises(ValueError):
        median_filter_fast(np.zeros((10, 10)), kernel, step=step)
