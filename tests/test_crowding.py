"""Crowding (stages/crowding.py) against references the project did not make:
the closed-form Gaussian encircled energy, scipy's Rice distribution,
numpy's median of rendered pixels, and the Hipparcos catalogue itself."""

import numpy as np
import pytest

from allsky_camera.stages import crowding


def test_enclosed_on_axis_is_the_gaussian_closed_form():
    # a centred circular Gaussian puts 1 - exp(-r^2 / 2 s^2) inside r
    r = np.array([0.5, 1.0, 2.0, 3.5])
    for s in (0.8, 1.3):
        want = 1 - np.exp(-r ** 2 / (2 * s ** 2))
        np.testing.assert_allclose(crowding.enclosed(r, 0.0, s), want, atol=1e-5)
        np.testing.assert_allclose(crowding.enclosed_fast(r, 0.0, s), want, atol=1e-3)


def test_enclosed_off_axis_by_monte_carlo():
    """Off axis, against points drawn from the PSF (numpy's generator)."""
    rng = np.random.default_rng(1)
    s, r = 1.1, 2.0
    pts = rng.normal(0.0, s, size=(400_000, 2))
    for d in (0.0, 1.5, 3.0, 6.0):
        frac = np.mean(np.hypot(pts[:, 0] + d, pts[:, 1]) < r)
        assert crowding.enclosed_fast(r, d, s) == pytest.approx(frac, abs=3e-3)
    # beyond the table: nothing of a PSF 50 sigma away, all of it within 50 sigma
    assert crowding.enclosed_fast(r, 50 * s, s) == 0.0
    assert crowding.enclosed_fast(50 * s, 0.0, s) == 1.0


def test_enclosed_is_the_rice_cdf():
    """Against scipy's Rice distribution (the pipeline integrates it itself,
    scipy staying out of a default run)."""
    from scipy.stats import rice

    rng = np.random.default_rng(2)
    u, v = rng.uniform(0, 12, 3000), rng.uniform(0, 22, 3000)
    np.testing.assert_allclose(crowding.enclosed_fast(u, v, 1.0), rice.cdf(u, v), atol=1e-3)
    np.testing.assert_allclose(crowding.enclosed(u[:30] * 1.7, v[:30] * 1.7, 1.7),
                               rice.cdf(u[:30], v[:30]), atol=1e-5)


def test_pairs_within_is_the_brute_force_search():
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 300, 200), rng.uniform(0, 200, 200)
    xn, yn = rng.uniform(-20, 320, 3000), rng.uniform(-20, 220, 3000)
    reach = rng.uniform(3, 15, 200)
    i, j = crowding.pairs_within(x, y, xn, yn, reach)
    d = np.hypot(xn[None, :] - x[:, None], yn[None, :] - y[:, None])
    bi, bj = np.nonzero(d < reach[:, None])
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(bi.tolist(), bj.tolist()))
    assert np.all(np.diff(i) >= 0)


def test_psf_sigma_inverts_the_aperture_correction():
    s = crowding.psf_sigma_px(np.array([0.1, 0.3, 0.6]), 2.0)
    inside = 1 - np.exp(-4.0 / (2 * s ** 2))
    np.testing.assert_allclose(-2.5 * np.log10(inside), [0.1, 0.3, 0.6], rtol=1e-9)


def test_measure_twin_far_star_and_annulus_mean():
    s = np.full(3, 1.0)
    # star 0: an equal twin on top of it; star 1: a star 40 px away; star 2: a
    # star 100x brighter at the annulus' middle radius
    cr = crowding.measure(np.ones(3), np.array([1.0, 1.0, 100.0]), np.array([0, 1, 2]),
                          np.array([0.0, 40.0, 7.5]), s, aper_radius_px=2.0,
                          annulus_px=(5.0, 10.0))
    assert cr.c_aper[0] == pytest.approx(1.0, abs=1e-3)
    assert cr.c_aper[1] == 0.0 and cr.c_annulus[1] == 0.0
    # mean sky: 99 % of its light in the annulus, spread over pi (100 - 25)
    # pixels, times the aperture's pi 4, over the star's own 1 - exp(-2)
    own = 1 - np.exp(-2.0)
    assert cr.c_annulus[2] == pytest.approx(100 * 4 / 75 / own, rel=0.02)
    assert cr.contamination[2] == pytest.approx(cr.c_annulus_max[2] - cr.c_aper[2])
    np.testing.assert_array_equal(cr.c_annulus, cr.c_annulus_max)   # no noise given
    np.testing.assert_array_equal(cr.n_neighbours, [1, 1, 1])


def test_annulus_median_shift_against_rendered_pixels():
    """The median term against numpy's median of an annulus with a rendered
    neighbour and normal noise: bright neighbours hit the median far less
    than the mean; faint ones as much."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[-12:13, -12:13].astype(float)
    rr = np.hypot(xx, yy)
    ring = (rr >= 5) & (rr <= 10)
    s, noise, star_total = 1.0, 10.0, 1000.0
    for ratio in (0.3, 3.0):                      # neighbour 0.3x, 3x the star
        psf = np.exp(-((xx - 7.5) ** 2 + yy ** 2) / (2 * s * s)) / (2 * np.pi * s * s)
        shifts = [np.median((psf * ratio * star_total + rng.normal(0, noise, psf.shape))[ring])
                  - np.median(rng.normal(0, noise, ring.sum())) for _ in range(400)]
        measured = np.mean(shifts) * np.pi * 4 / (star_total * (1 - np.exp(-2.0)))
        cr = crowding.measure(np.ones(1), np.array([ratio]), np.array([0]), np.array([7.5]),
                              np.array([s]), aper_radius_px=2.0, annulus_px=(5.0, 10.0),
                              star_total_adu=np.array([star_total]),
                              sky_sigma_adu=np.array([noise]))
        mean = crowding.measure(np.ones(1), np.array([ratio]), np.array([0]),
                                np.array([7.5]), np.array([s]), aper_radius_px=2.0,
                                annulus_px=(5.0, 10.0))
        # within a third of the rendered median's shift, and the bright
        # neighbour well below the mean's
        assert cr.c_annulus[0] == pytest.approx(measured, rel=0.35), ratio
        if ratio > 1:
            assert cr.c_annulus[0] < 0.5 * mean.c_annulus[0]
        assert cr.c_annulus_max[0] == pytest.approx(mean.c_annulus[0])


def test_measure_does_not_change_its_inputs():
    args = [np.ones(2), np.array([0.5, 0.2]), np.array([0, 1]), np.array([1.0, 6.0]),
            np.ones(2)]
    copies = [a.copy() for a in args]
    crowding.measure(*args, aper_radius_px=2.0, annulus_px=(5.0, 10.0))
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


def test_trapezoid_against_a_closed_form():
    from allsky_camera.stages import crowding
    x = np.linspace(0.0, np.pi, 2001)
    assert crowding._trapezoid(np.sin(x), x) == pytest.approx(2.0, abs=1e-6)
    rows = np.vstack([x, x ** 2])
    np.testing.assert_allclose(crowding._trapezoid(rows, x), [np.pi ** 2 / 2, np.pi ** 3 / 3],
                               rtol=1e-6)
