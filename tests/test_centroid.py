"""Centroids: windowed centroiding on analytic stars, flags, neighbour search."""

import numpy as np
import pytest

from allsky_camera.stages import centroid
from tests_helpers import gaussian_image, grid_positions


def test_refine_recovers_subpixel_positions():
    rng = np.random.default_rng(5)
    xs, ys = grid_positions(rng, 300, 200)
    n = xs.size
    img = gaussian_image((200, 300), xs, ys, np.full(n, 500.0), 1.1, sky=10.0)
    start_x = xs + rng.uniform(-1.5, 1.5, n)
    start_y = ys + rng.uniform(-1.5, 1.5, n)
    before = img.copy()
    xc, yc, conv = centroid.refine(img, start_x, start_y, box_half=4, window_sigma=1.2, n_iter=15)
    np.testing.assert_array_equal(img, before)
    assert conv.all()
    err = np.hypot(xc - xs, yc - ys)
    assert err.max() < 0.02


def test_refine_noise_level():
    rng = np.random.default_rng(6)
    xs, ys = grid_positions(rng, 400, 400)
    n = xs.size
    img = gaussian_image((400, 400), xs, ys, np.full(n, 400.0), 1.1, sky=20.0)
    img = rng.poisson(img).astype(float)
    xc, yc, conv = centroid.refine(img, xs + 0.7, ys - 0.6, box_half=4, window_sigma=1.2,
                                   n_iter=15)
    err = np.hypot(xc - xs, yc - ys)
    # S/N ~ 15: the expected error is ~ sigma / SNR ~ 0.1 px per star
    assert np.sqrt(np.nanmean(err ** 2)) < 0.15


def test_refine_marks_empty_boxes():
    img = np.zeros((50, 50))
    xc, yc, conv = centroid.refine(img, np.array([25.0, -30.0]), np.array([25.0, 10.0]),
                                   box_half=3, window_sigma=1.0, n_iter=5)
    assert np.isnan(xc).all() and not conv.any()


def test_peak_search_finds_offset_star():
    img = gaussian_image((100, 100), [52.3], [47.8], [800.0], 1.2)
    img[44, 44] = 300.0   # a hot pixel: single pixels lose to the smoothed star
    xp, yp = centroid.peak_search(img, np.array([47.0]), np.array([44.0]), search_half=7)
    assert (xp[0], yp[0]) == (52.0, 48.0)


def test_nearest_other_matches_brute_force():
    rng = np.random.default_rng(3)
    xp, yp = rng.uniform(0, 100, 400), rng.uniform(0, 100, 400)
    xq, yq = rng.uniform(0, 100, 300), rng.uniform(0, 100, 300)
    idx, dist = centroid.nearest_other(xq, yq, xp, yp, 3.0)
    d = np.hypot(xq[:, None] - xp[None], yq[:, None] - yp[None])
    j = d.argmin(axis=1)
    within = d.min(axis=1) <= 3.0
    np.testing.assert_array_equal(idx[within], j[within])
    assert (idx[~within] == -1).all()
    np.testing.assert_allclose(dist[within], d.min(axis=1)[within])


def test_run_flags():
    img = gaussian_image((120, 120), [60.0, 63.5, 5.0], [60.0, 60.0, 60.0], [900, 900, 900], 1.0)
    raw = img.copy()
    raw[60, 60] = 255.0

    class Cfg:
        box_half_px, window_sigma_px, n_iter = 3, 1.0, 10
        max_shift_px, edge_margin_px, blend_radius_px, saturation_radius_px = 1.0, 10, 3.0, 1
        min_snr = 5.0

    from allsky_camera.flags import bit
    # star 0 predicted 1.6 px off: it moves too far; star 2 is near the edge
    xc, yc, f = centroid.run(img, raw, np.array([61.6, 63.5, 5.0]), np.array([60.0, 60.0, 60.0]),
                             cfg=Cfg, saturation_adu=255.0)
    assert f[0] & bit("SATURATED") and f[0] & bit("SHIFT")
    assert f[2] & bit("EDGE")
    assert xc[1] == pytest.approx(63.5, abs=0.3)


def test_row_nanmedian_is_numpys():
    """Sorted-row medians equal numpy's nanmedian, NaN rows and ties included."""
    rng = np.random.default_rng(21)
    for k in (1, 2, 7, 32):
        a = np.rint(rng.normal(0.0, 3.0, (200, k)))
        a[rng.random(a.shape) < 0.3] = np.nan
        a[0] = np.nan                                   # an all-NaN row: NaN, no warning
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            want = np.nanmedian(a, axis=1)
        np.testing.assert_array_equal(centroid.row_nanmedian(a), want)


def test_cut_stamps_is_pixel_by_pixel_lookup():
    """Boxes inside the image, across its edges and beyond it: each pixel is
    the image's, NaN off the image."""
    rng = np.random.default_rng(22)
    img = rng.normal(10.0, 2.0, (40, 50)).astype(np.float32)
    h = 4
    xi = np.r_[rng.integers(-6, 56, 60), 0, 49, 4, 45]
    yi = np.r_[rng.integers(-6, 46, 60), 0, 39, 4, 35]
    stamps, dx, dy = centroid.cut_stamps(img, xi, yi, h)
    np.testing.assert_array_equal(dx, np.arange(-h, h + 1))
    assert stamps.dtype == np.float64
    for s, x, y in zip(stamps, xi, yi):
        want = np.full((2 * h + 1, 2 * h + 1), np.nan)
        for i in range(2 * h + 1):
            for j in range(2 * h + 1):
                yy, xx = y - h + i, x - h + j
                if 0 <= yy < img.shape[0] and 0 <= xx < img.shape[1]:
                    want[i, j] = img[yy, xx]
        np.testing.assert_array_equal(s, want)


def test_one_refine_step_is_the_windowed_moment():
    """One iteration moves each estimate by twice the Gaussian-windowed first
    moment of the border-median-subtracted box (SExtractor's XWIN step),
    written here pixel by pixel."""
    rng = np.random.default_rng(23)
    xs, ys = np.array([20.3, 41.7, 13.2]), np.array([15.6, 30.2, 33.9])
    img = gaussian_image((50, 60), xs, ys, np.full(3, 800.0), 1.3, sky=12.0)
    img = img + rng.normal(0.0, 1.0, img.shape)
    x0, y0 = xs + np.array([0.4, -0.7, 0.2]), ys + np.array([-0.3, 0.5, 0.6])
    h, sw = 4, 1.5
    got_x, got_y, _ = centroid.refine(img, x0, y0, box_half=h, window_sigma=sw, n_iter=1)
    for k in range(3):
        xi, yi = int(np.rint(x0[k])), int(np.rint(y0[k]))
        box = img[yi - h:yi + h + 1, xi - h:xi + h + 1].astype(float)
        border = np.r_[box[0], box[-1], box[1:-1, 0], box[1:-1, -1]]
        box = box - np.median(border)
        jj, ii = np.meshgrid(np.arange(xi - h, xi + h + 1), np.arange(yi - h, yi + h + 1))
        w = np.exp(-((jj - x0[k]) ** 2 + (ii - y0[k]) ** 2) / (2 * sw ** 2)) * box
        assert got_x[k] == pytest.approx(x0[k] + 2 * (w * (jj - x0[k])).sum() / w.sum(), abs=1e-9)
        assert got_y[k] == pytest.approx(y0[k] + 2 * (w * (ii - y0[k])).sum() / w.sum(), abs=1e-9)


@pytest.mark.parametrize("exclude_self", [False, True])
def test_nearest_other_is_brute_force(exclude_self):
    """The cell search finds what a full distance matrix finds."""
    rng = np.random.default_rng(24 + exclude_self)
    xp, yp = rng.uniform(-5, 205, 400), rng.uniform(-5, 155, 400)
    xp[::37] = np.nan
    if exclude_self:
        xq, yq = xp, yp
    else:
        xq, yq = rng.uniform(-10, 210, 300), rng.uniform(-10, 160, 300)
        yq[::41] = np.nan
    r = 6.0
    idx, dist = centroid.nearest_other(xq, yq, xp, yp, r, exclude_self=exclude_self)
    with np.errstate(invalid="ignore"):
        d = np.hypot(xq[:, None] - xp[None, :], yq[:, None] - yp[None, :])
    d[~np.isfinite(d)] = np.inf
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    d[d > r] = np.inf
    want = np.where(np.isfinite(d.min(axis=1)), d.argmin(axis=1), -1)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(dist, d.min(axis=1), rtol=0, atol=1e-12)
