"""sim.psf: the Gaussian PSF integrated over the pixels, its width law and aperture fraction."""

import math

import numpy as np
import pytest

from allsky_camera.sim import psf


def test_fwhm_per_sigma_is_the_published_constant():
    """FWHM = 2 sqrt(2 ln 2) sigma = 2.35482 sigma for a Gaussian."""
    assert psf.FWHM_PER_SIGMA == pytest.approx(2.354820045, rel=1e-9)


def test_render_conserves_flux_and_peak():
    x = np.array([30.3, 70.8, 100.0])
    y = np.array([31.7, 40.2, 90.5])
    flux = np.array([1000.0, 250.0, 4000.0])
    sigma = np.array([1.1, 1.5, 2.2])            # three stamp sizes
    img, peak = psf.render_stars((128, 140), x, y, flux, sigma)
    assert len(np.unique(psf.stamp_half_width(sigma))) == 3
    for xi, yi, f, p in zip(x, y, flux, peak):
        box = img[int(yi) - 15:int(yi) + 16, int(xi) - 15:int(xi) + 16]
        assert box.sum() == pytest.approx(f, rel=1e-5)
        assert box.max() == pytest.approx(p, rel=1e-12)
    assert img.sum() == pytest.approx(flux.sum(), rel=1e-5)
    # the brightest pixel is the one nearest the star
    iy, ix = np.unravel_index(np.argmax(img[:60, :60]), (60, 60))
    assert (ix, iy) == (30, 32)


def test_render_drops_light_off_the_image():
    img, _ = psf.render_stars((50, 50), [-0.5], [25.0], [100.0], [1.2])
    assert img.sum() == pytest.approx(50.0, rel=1e-3)   # the image starts at x = -0.5


def test_render_no_stars():
    img, peak = psf.render_stars((10, 12), [], [], [], [])
    assert img.shape == (10, 12) and not img.any() and peak.size == 0


def test_render_matches_exact_pixel_integral():
    from scipy.special import erf
    x0, y0, s = 20.37, 18.81, 1.3
    img, _ = psf.render_stars((40, 40), [x0], [y0], [1.0], [s])
    c = np.arange(40)
    fx = 0.5 * (erf((c + 0.5 - x0) / (np.sqrt(2) * s)) - erf((c - 0.5 - x0) / (np.sqrt(2) * s)))
    fy = 0.5 * (erf((c + 0.5 - y0) / (np.sqrt(2) * s)) - erf((c - 0.5 - y0) / (np.sqrt(2) * s)))
    inside = (np.abs(c - 20)[None, :] <= 7) & (np.abs(c - 19)[:, None] <= 7)
    np.testing.assert_allclose(img[inside], np.outer(fy, fx)[inside], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("sigma,radius", [(1.1, 2.0), (1.53, 2.0), (2.5, 4.0), (1.2, 4.5)])
@pytest.mark.parametrize("x0,y0", [(32.0, 31.0), (32.3, 31.6), (32.5, 31.5)])
def test_enclosed_fraction_against_the_rendered_stamp(sigma, radius, x0, y0):
    """Sum the rendered stamp over the circle, each pixel weighted by its area inside."""
    img, _ = psf.render_stars((64, 64), [x0], [y0], [1.0], [sigma])
    n = 24
    sub = (np.arange(n) + 0.5) / n - 0.5
    yy, xx = np.indices((64, 64))
    sx = xx[..., None, None] + sub[None, None, None, :]
    sy = yy[..., None, None] + sub[None, None, :, None]
    frac = (((sx - x0) ** 2 + (sy - y0) ** 2) <= radius ** 2).mean(axis=(2, 3))
    measured = (img * frac).sum()
    ef = psf.enclosed_fraction(radius, sigma)
    # the sub-pixel position changes the measured fraction by up to ~0.012 mag
    assert 2.5 * np.log10(ef / measured) == pytest.approx(0.0, abs=0.015)
    # the continuous Gaussian's formula, without the pixel's widening
    assert psf.enclosed_fraction(radius, sigma, pixelated=False) == pytest.approx(
        1 - np.exp(-radius ** 2 / (2 * sigma ** 2)))


@pytest.mark.parametrize("sigma", [1.1, 1.3, 1.53])
def test_enclosed_fraction_on_average_over_positions(sigma):
    """Over random sub-pixel positions (as for the catalog's stars), within 0.003 mag."""
    radius, size = 2.0, 24
    rng = np.random.default_rng(7)
    n = 40
    x0 = 12 + rng.uniform(-0.5, 0.5, n) + 24 * np.arange(n)
    y0 = 12 + rng.uniform(-0.5, 0.5, n)
    img, _ = psf.render_stars((size, size * n), x0, y0, np.ones(n), np.full(n, sigma))
    k = 16
    sub = (np.arange(k) + 0.5) / k - 0.5
    yy, xx = np.indices(img.shape)
    measured = []
    for i in range(n):
        box = (slice(None), slice(24 * i, 24 * i + 24))
        sx = xx[box][..., None, None] + sub[None, None, None, :]
        sy = yy[box][..., None, None] + sub[None, None, :, None]
        frac = (((sx - x0[i]) ** 2 + (sy - y0[i]) ** 2) <= radius ** 2).mean(axis=(2, 3))
        measured.append((img[box] * frac).sum())
    dmag = 2.5 * np.log10(psf.enclosed_fraction(radius, sigma) / np.mean(measured))
    assert dmag == pytest.approx(0.0, abs=0.003)


def test_enclosed_fraction_of_a_continuous_gaussian():
    """Without pixels: integrate the Gaussian numerically over the disc."""
    sigma, radius = 1.3, 2.0
    r = np.linspace(0, radius, 20001)
    ring = r / sigma ** 2 * np.exp(-r ** 2 / (2 * sigma ** 2))
    numeric = np.sum(0.5 * (ring[1:] + ring[:-1]) * np.diff(r))
    assert psf.enclosed_fraction(radius, sigma, pixelated=False) == pytest.approx(
        numeric, rel=1e-7)


def test_fwhm_law():
    f = psf.fwhm_at([0.0, 45.0, 90.0], 2.6, 3.6)
    np.testing.assert_allclose(f, [2.6, 2.85, 3.6])


@pytest.mark.parametrize("sigma", [0.9, 1.5, 2.4])
def test_rendered_star_variance_is_the_gaussian_plus_a_pixel_box(sigma):
    """Integrating over a one-pixel box adds the box's variance, 1/12 pixel^2, per axis
    (variances add under convolution), and leaves the centroid where the star is."""
    x0, y0 = 30.27, 28.64
    img, _ = psf.render_stars((60, 64), [x0], [y0], [1.0], [sigma])
    yy, xx = np.indices(img.shape)
    total = img.sum()
    assert (img * xx).sum() / total == pytest.approx(x0, abs=1e-4)
    assert (img * yy).sum() / total == pytest.approx(y0, abs=1e-4)
    var_x = (img * (xx - x0) ** 2).sum() / total
    var_y = (img * (yy - y0) ** 2).sum() / total
    # the stamp stops at >= 4 sigma + 0.5 px: a truncation below 1e-3 of the variance
    np.testing.assert_allclose([var_x, var_y], sigma ** 2 + 1.0 / 12.0, rtol=2e-3)


def test_render_stars_leaves_its_inputs_alone():
    x = np.array([10.2, 20.7])
    flux = np.array([5.0, 7.0])
    before = (x.copy(), flux.copy())
    psf.render_stars((32, 32), x, x, flux, np.array([1.0, 1.2]))
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(flux, before[1])


def test_pixel_fractions_against_scipy_normal_cdf():
    from scipy.stats import norm

    centre, sigma = np.array([3.3]), np.array([1.7])
    got = psf.pixel_fractions(centre, sigma, np.array([-4]), 16)[0]
    edges = np.arange(-4, 13) - 0.5
    want = np.diff(norm.cdf(edges, loc=3.3, scale=1.7))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-16)
    assert math.isclose(got.sum(), norm.cdf(11.5, 3.3, 1.7) - norm.cdf(-4.5, 3.3, 1.7))
