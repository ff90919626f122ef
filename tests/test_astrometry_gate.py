"""Astrometric quality gate: each test can fail a model; analytic fluxes; a published Spearman."""

import dataclasses

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import astrometry_gate as gate
from allsky_camera.stages import photometry, transparency
from tests_helpers import gaussian_image

SHAPE = (1200, 1600)
SIGMA_PX = 1.0


@pytest.fixture(scope="module")
def cfg():
    return config.load_camera("MDM").astrometry


@pytest.fixture(scope="module")
def sky(cfg):
    """Bright stars on a noisy image at the template's positions; their alt/az and V."""
    rng = np.random.default_rng(5)
    n = 150
    alt = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(25.0)), 1.0, n)))
    az = rng.uniform(0.0, 360.0, n)
    vmag = rng.uniform(1.0, 4.5, n)
    x, y = cfg.model.altaz_to_xy(alt, az)
    flux = 3000.0 * 10 ** (-0.4 * (vmag - 1.0))
    img = rng.normal(0.0, 2.0, SHAPE)
    half = 8
    for xs, ys, fs in zip(x, y, flux):      # each star rendered in its own stamp
        xi, yi = round(float(xs)), round(float(ys))
        img[yi - half:yi + half + 1, xi - half:xi + half + 1] += gaussian_image(
            (2 * half + 1, 2 * half + 1), [xs - xi + half], [ys - yi + half], [fs], SIGMA_PX)
    xm = x + rng.normal(0.0, 0.1, n)
    ym = y + rng.normal(0.0, 0.1, n)
    return img, alt, az, vmag, xm, ym


def test_rank_correlation_published_example():
    """Spearman's worked example (Wikipedia, "Spearman's rank correlation
    coefficient": IQ against hours of TV per week): rho = -29/165."""
    iq = [106, 100, 86, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 27, 2, 50, 28, 29, 20, 12, 6, 17]
    assert gate.rank_correlation(iq, tv) == pytest.approx(-29 / 165, abs=1e-12)
    a = np.arange(20.0)
    assert gate.rank_correlation(a, a ** 3) == pytest.approx(1.0)
    assert gate.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(gate.rank_correlation(a[:2], a[:2]))
    assert np.isnan(gate.rank_correlation(a, np.ones_like(a)))


def test_box_flux_of_an_analytic_star():
    """5x5 box of a pixel-integrated Gaussian centred on a pixel: the erf fraction."""
    from scipy.special import erf

    img = gaussian_image((60, 60), [30.0], [25.0], [1000.0], SIGMA_PX, sky=7.0)
    frac = erf(2.5 / (np.sqrt(2) * SIGMA_PX)) ** 2
    got = gate.box_flux(img, np.array([30.2]), np.array([24.9]))
    assert got[0] == pytest.approx(1000.0 * frac, rel=2e-3)
    # off the image or not finite: NaN, never an exception
    assert np.isnan(gate.box_flux(img, np.array([1.0, np.nan]), np.array([30.0, 30.0]))).all()


def test_true_model_passes(sky, cfg):
    img, alt, az, vmag, xm, ym = sky
    g = gate.evaluate(img, cfg.model, xm, ym, alt, az, vmag, cfg)
    assert g.ok, g.message
    assert g.fraction == 1.0 and g.rms_px < 0.3 and g.rank_corr > 0.9


def test_noise_peaks_fail_on_the_matched_fraction(sky, cfg):
    img, alt, az, vmag, xm, ym = sky
    rng = np.random.default_rng(2)
    wrong_x = xm + rng.uniform(-7, 7, xm.size)
    wrong_y = ym + rng.uniform(-7, 7, ym.size)
    g = gate.evaluate(img, cfg.model, wrong_x, wrong_y, alt, az, vmag, cfg)
    assert not g.ok and g.fraction < cfg.gate_min_fraction


def test_fluxes_unrelated_to_the_catalog_fail(sky, cfg):
    img, alt, az, vmag, xm, ym = sky
    g = gate.evaluate(img, cfg.model, xm, ym, alt, az, vmag[::-1].copy(), cfg)
    assert not g.ok and "rank correlation" in g.message


def test_large_residuals_fail(sky, cfg):
    img, alt, az, vmag, xm, ym = sky
    moved = cfg.model.replace(x0=cfg.model.x0 + 1.5)
    g = gate.evaluate(img, moved, xm, ym, alt, az, vmag, cfg)
    assert not g.ok and "RMS" in g.message


@pytest.mark.parametrize("change, word", [({"scale": 1.05}, "scale"),
                                          ({"tilt_n_deg": 2.5}, "tilt")])
def test_insane_models_fail(sky, cfg, change, word):
    img, alt, az, vmag, _, _ = sky
    m = cfg.model.replace(**change)
    x, y = m.altaz_to_xy(alt, az)       # the stars agree with the model: only sanity fails
    g = gate.evaluate(img, m, x, y, alt, az, vmag, dataclasses.replace(
        cfg, gate_min_rank_corr=-1.0))
    assert not g.ok and word in g.message


def test_too_few_stars_fail(sky, cfg):
    img, alt, az, vmag, xm, ym = sky
    k = cfg.min_stars - 1
    g = gate.evaluate(img, cfg.model, xm[:k], ym[:k], alt[:k], az[:k], vmag[:k], cfg)
    assert not g.ok and "min_stars" in g.message


def test_withheld_results_are_nan_and_inputs_unchanged():
    zp = photometry.Zeropoint(5.5, 5.8, 0.01, 0.1, 300, 0.3, 0.1, "measured", 40, 6.0)
    summ = transparency.TransparencySummary(0.9, 0.8, 100, 50)
    tr = transparency.TransparencyResult(np.ones(4), np.ones(4), np.ones(4), np.arange(4),
                                         np.ones(768), summ)
    z2 = gate.withhold_zeropoint(zp, "no stars")
    t2 = gate.withhold_transparency(tr)
    assert np.isnan(z2.zp_total) and np.isnan(z2.zp_aper) and z2.n_stars == 0
    assert "FAILED" in z2.message and "no stars" in z2.message
    assert np.isnan(t2.summary.clear_fraction) and np.isnan(t2.summary.median)
    assert np.isnan(t2.transparency).all() and not t2.weight.any()
    assert zp.zp_total == 5.8 and tr.summary.clear_fraction == 0.8 and tr.weight.all()


def test_clustered_partial_sky_passes_scattered_fails(sky, cfg):
    """A quarter of the stars found: in one clear region, a partly cloudy sky
    (passes); spread at random over the sky, chance matches (fails)."""
    img, alt, az, vmag, xm, ym = sky
    clear = (az % 360.0) < 90.0             # one azimuth quadrant clear, 3/4 clouded
    nan = np.full(xm.shape, np.nan)
    g = gate.evaluate(img, cfg.model, np.where(clear, xm, nan), np.where(clear, ym, nan),
                      alt, az, vmag, dataclasses.replace(cfg, gate_min_clear_stars=20))
    assert g.fraction < cfg.gate_min_fraction and clear.sum() >= 20
    assert g.ok, g.message
    assert "clear sky cells" in g.message
    rng = np.random.default_rng(3)
    scattered = rng.permutation(clear)      # as many found stars, anywhere
    g2 = gate.evaluate(img, cfg.model, np.where(scattered, xm, nan),
                       np.where(scattered, ym, nan), alt, az, vmag,
                       dataclasses.replace(cfg, gate_min_clear_stars=20))
    assert not g2.ok and "gate_min_clear_stars" in g2.message


def test_rank_correlation_within_cells_ignores_cloud():
    """Half the stars dimmed 3 magnitudes by a cloud over their cell: pooled,
    the ranks mix; within cells they keep Spearman's rho of 1."""
    rng = np.random.default_rng(4)
    v = rng.uniform(1.0, 4.5, 200)
    cell = np.repeat([0, 1], 100)
    flux = 10 ** (-0.4 * (v + np.where(cell == 1, 3.0, 0.0)))
    assert gate.rank_correlation(flux, -v) < 0.8
    assert gate.cell_rank_correlation(flux, -v, cell) == pytest.approx(1.0)


def test_sky_cells_index():
    c = gate.sky_cells(np.array([10.0, 10.0, 89.9, 45.0, np.nan]),
                       np.array([0.0, 359.0, 100.0, 725.0, 0.0]), 45.0, 30.0)
    # 8 sectors x 3 rings; 725 deg azimuth is 5 deg
    assert c.tolist() == [0, 7, 2 * 8 + 2, 8 + 0, -1]


def test_cell_rank_correlation_is_scipys_spearman_per_cell():
    # the pooled statistic against scipy.stats.spearmanr on each cell (ties,
    # NaN fluxes, cells of fewer than 3 stars and constant cells included)
    from scipy import stats
    rng = np.random.default_rng(21)
    for _ in range(20):
        n = int(rng.integers(5, 300))
        flux = np.round(rng.normal(0.0, 1.0, n), 1)
        flux[rng.random(n) < 0.1] = np.nan
        minus_v = np.round(rng.normal(0.0, 1.0, n), 1)
        cell = rng.integers(-1, 12, n)
        cell[cell == 5] = 7                       # a gap in the cell numbers
        flux[cell == 3] = 1.0                     # a constant cell: no rho
        num = den = 0.0
        for c in np.unique(cell[cell >= 0]):
            k = (cell == c) & np.isfinite(flux)
            if k.sum() >= 3 and np.ptp(flux[k]) > 0 and np.ptp(minus_v[k]) > 0:
                num += stats.spearmanr(flux[k], minus_v[k]).statistic * k.sum()
                den += k.sum()
        want = num / den if den else np.nan
        got = gate.cell_rank_correlation(flux, minus_v, cell)
        assert got == pytest.approx(want, abs=1e-12, nan_ok=True)
