"""Exact apertures against analytic truth and photutils."""

import numpy as np
import pytest

from allsky_camera import apertures


def test_overlap_analytic_cases():
    r = 2.3
    assert apertures.circle_pixel_overlap(-5, 5, -5, 5, r) == pytest.approx(np.pi * r * r)
    assert apertures.circle_pixel_overlap(-0.2, 0.3, -0.1, 0.4, r) == pytest.approx(0.25)
    assert apertures.circle_pixel_overlap(0, 5, 0, 5, r) == pytest.approx(np.pi * r * r / 4)
    g = np.arange(-4, 4)
    gx, gy = np.meshgrid(g + 0.37, g - 0.21)
    total = apertures.circle_pixel_overlap(gx, gx + 1, gy, gy + 1, r).sum()
    assert total == pytest.approx(np.pi * r * r, abs=1e-10)


def test_overlap_against_fine_grid():
    rng = np.random.default_rng(0)
    r = 2.0
    for _ in range(20):
        x0, y0 = rng.uniform(-3, 2, 2)
        x1, y1 = x0 + rng.uniform(0.1, 2), y0 + rng.uniform(0.1, 2)
        xs = np.linspace(x0, x1, 1201)[:-1] + (x1 - x0) / 2400
        ys = np.linspace(y0, y1, 1201)[:-1] + (y1 - y0) / 2400
        xx, yy = np.meshgrid(xs, ys)
        num = (xx ** 2 + yy ** 2 < r * r).mean() * (x1 - x0) * (y1 - y0)
        assert apertures.circle_pixel_overlap(x0, x1, y0, y1, r) == pytest.approx(num, abs=2e-3)


def test_aperture_sums_match_photutils():
    from photutils.aperture import CircularAperture, aperture_photometry

    rng = np.random.default_rng(1)
    img = rng.normal(10, 3, (120, 150))
    x, y = rng.uniform(8, 140, 300), rng.uniform(8, 110, 300)
    for r in (2.0, 4.5):
        s, area, nbad = apertures.aperture_sums(img, x, y, r)
        ref = aperture_photometry(img, CircularAperture(np.column_stack([x, y]), r),
                                  method="exact")
        np.testing.assert_allclose(s, np.asarray(ref["aperture_sum"]), rtol=1e-10)
        np.testing.assert_allclose(area, np.pi * r * r, rtol=1e-12)
        assert (nbad == 0).all()


def test_aperture_edges_and_mask():
    img = np.ones((20, 20))
    s, area, nbad = apertures.aperture_sums(img, np.array([0.0]), np.array([10.0]), 2.0)
    assert area[0] == pytest.approx(np.pi * 4 / 2 + 2 * 2 * 0.5, rel=0.05)  # ~ half + a strip
    assert s[0] == pytest.approx(area[0]) and nbad[0] > 0
    mask = np.zeros_like(img, bool)
    mask[10, 10] = True
    s, area, nbad = apertures.aperture_sums(img, np.array([10.0]), np.array([10.0]), 2.0,
                                            mask=mask)
    assert area[0] == pytest.approx(np.pi * 4 - 1.0) and nbad[0] == 1


def test_annulus_median_against_loop():
    rng = np.random.default_rng(2)
    img = rng.normal(5, 1, (80, 90))
    x, y = rng.uniform(-2, 92, 50), rng.uniform(-2, 82, 50)
    med, sig, n = apertures.annulus_median(img, x, y, 5.0, 10.0)
    yy, xx = np.mgrid[:80, :90]
    for i in range(50):
        d = np.hypot(xx - x[i], yy - y[i])
        v = img[(d >= 5) & (d < 10)]
        assert n[i] == v.size
        assert med[i] == pytest.approx(np.median(v))
    m, s, n = apertures.annulus_median(img, np.array([-40.0]), np.array([-40.0]), 5.0, 10.0)
    assert np.isnan(m[0]) and n[0] == 0


def test_interpolated_median_removes_quantisation_bias():
    rng = np.random.default_rng(3)
    true = 12.3
    img = np.rint(rng.normal(true, 2.0, (400, 400)))
    x = rng.uniform(20, 380, 500)
    y = rng.uniform(20, 380, 500)
    plain, _, _ = apertures.annulus_median(img, x, y, 5, 10)
    interp, _, _ = apertures.annulus_median(img, x, y, 5, 10, quantum=1.0)
    assert abs(np.mean(plain) - true) > 0.15         # mostly snaps to the integer 12
    assert abs(np.mean(interp) - true) < 0.05
