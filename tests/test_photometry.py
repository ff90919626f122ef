"""Photometry: fluxes of analytic stars, aperture correction, robust zeropoints."""

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import photometry
from tests_helpers import gaussian_image, grid_positions


@pytest.fixture(scope="module")
def phot():
    return config.load_camera("MDM").photometry


def test_measure_recovers_flux_and_sky(phot):
    rng = np.random.default_rng(1)
    xs, ys = grid_positions(rng, 400, 300, spacing=25)
    flux = rng.uniform(200, 2000, xs.size)
    sigma = 1.2
    img = gaussian_image((300, 400), xs, ys, flux, sigma, sky=15.0)
    before = img.copy()
    f = photometry.measure(img, xs, ys, phot)
    np.testing.assert_array_equal(img, before)
    # an exact aperture on a pixel-integrated Gaussian sees the Gaussian widened
    # by 1/12 px^2 twice (pixel response and aperture overlap weights)
    var = sigma ** 2 + 2 / 12
    ef = 1 - np.exp(-phot.aper_radius_px ** 2 / (2 * var))
    ef_big = 1 - np.exp(-phot.apcor_radius_px ** 2 / (2 * var))
    # annulus at 5-10 px holds a little of the star: allow 0.5 %
    # the widening is a Gaussian approximation of the two boxes: good to ~1 %
    np.testing.assert_allclose(f.flux_adu, flux * ef, rtol=1.5e-2)
    assert np.mean(f.flux_adu / (flux * ef)) == pytest.approx(1.0, abs=3e-3)
    np.testing.assert_allclose(f.flux_big_adu, flux * ef_big, rtol=5e-3)
    np.testing.assert_allclose(f.sky_adu, 15.0, atol=0.05)


def test_zeropoint_recovers_truth(phot):
    rng = np.random.default_rng(2)
    n = 400
    vmag = rng.uniform(2, 6.5, n)
    zd = rng.uniform(0, 70, n)
    zp_true, t = 6.1, 60.0
    a_true, b_true = 0.3, 0.2
    total = 10 ** (-0.4 * (vmag - zp_true)) * t
    apc = a_true + b_true * (zd / 90) ** 2
    aper = total * 10 ** (-0.4 * apc)
    noise = 3.0
    f_aper = aper + rng.normal(0, noise, n)
    f_big = total + rng.normal(0, noise, n)
    fl = photometry.Fluxes(f_aper, np.full(n, noise), f_big, np.zeros(n), np.zeros(n, int))
    good = np.ones(n, bool)
    good[:10] = False
    f_aper[:10] *= 0.01                      # flagged stars must not count
    zp = photometry.zeropoint(vmag, zd, fl, good, good & (vmag < 4.5), phot, t)
    assert zp.apcor_source == "measured"
    assert zp.apcor_a == pytest.approx(a_true, abs=0.02)
    assert zp.apcor_b == pytest.approx(b_true, abs=0.05)
    assert zp.zp_total == pytest.approx(zp_true, abs=0.02)
    # both at the zenith: the aperture zeropoint is less the zenith correction
    assert zp.zp_aper == pytest.approx(zp_true - a_true, abs=0.03)
    assert zp.zp_nominal_total == pytest.approx(phot.zp_nominal + zp.apcor_a)
    assert zp.model_fit.k_source == "fitted" and abs(zp.model.k) < 0.02   # no extinction


def test_noisy_stars_do_not_bias_zeropoint(phot):
    # stars at S/N 10 (the DCT's zp_min_snr): a fit in magnitudes is biased
    # by ~ 1.086 sigma^2 / 2 = 0.005 mag, well inside the budget
    rng = np.random.default_rng(3)
    n = 3000
    vmag = np.full(n, 4.5)
    t, zp_true = 1.0, 5.0
    f0 = 10 ** (-0.4 * (vmag - zp_true)) * t
    f = f0 + rng.normal(0, 0.1 * f0[0], n)
    fl = photometry.Fluxes(f, np.full(n, 0.1 * f0[0]), f, np.zeros(n), np.zeros(n, int))
    zp = photometry.zeropoint(vmag, np.zeros(n), fl, np.ones(n, bool), np.zeros(n, bool),
                              phot, t)
    assert zp.zp_aper == pytest.approx(zp_true, abs=0.01)
    assert zp.apcor_source == "default" and zp.apcor_a == phot.apcor_default_mag
    assert zp.model_fit.k_source == "default"         # no airmass span at the zenith


def test_too_few_stars(phot):
    fl = photometry.Fluxes(np.ones(3), np.ones(3), np.ones(3), np.zeros(3), np.zeros(3, int))
    zp = photometry.zeropoint(np.ones(3), np.zeros(3), fl, np.ones(3, bool), np.zeros(3, bool),
                              phot, 1.0)
    assert not zp.ok and "fewer than" in zp.message
    assert np.isnan(zp.zp_total)


def test_instrumental_mag():
    m = photometry.instrumental_mag(np.array([100.0, 0.0, -5.0]), 10.0)
    assert m[0] == pytest.approx(-2.5)
    assert np.isnan(m[1:]).all()
