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
