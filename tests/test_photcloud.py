"""The model fit's cloud test: neighbourhoods against astropy and numpy, and a
cloud that would tilt the extinction left out, on stars whose truth is set
here (the model m = V - ZP + k (X - 1), noise, and a cloud dimming them)."""

import dataclasses

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import photcloud, photmodel

#: Synthetic sky: stars to this zenith distance, deg, uniform in solid angle.
ZD_MAX = 72.0
#: True zeropoint (mag for 1 ADU/s) and extinction (mag/airmass) of the stars.
ZP_TRUE, K_TRUE = 6.0, 0.15
#: Per-star noise, mag (clear frames scatter 0.03-0.04 in the simulator,
#: 0.08-0.09 on the independent MDM frames).
NOISE = 0.06


@pytest.fixture(scope="module")
def phot():
    return config.load_camera("MDM").photometry


def _sky(rng, n):
    zd = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(ZD_MAX)), 1.0, n)))
    return zd, rng.uniform(0.0, 360.0, n)


def test_neighbours_match_astropy_separation():
    from astropy.coordinates import angular_separation

    rng = np.random.default_rng(1)
    zd, az = _sky(rng, 300)
    near = photcloud.neighbours(zd, az, 15.0)
    alt = np.radians(90.0 - zd)
    sep = np.degrees(angular_separation(np.radians(az)[:, None], alt[:, None],
                                        np.radians(az)[None, :], alt[None, :]))
    ok = np.abs(sep - 15.0) > 1e-6                 # leave pairs on the edge alone
    np.testing.assert_array_equal(near[ok], (sep <= 15.0)[ok])
    assert near.diagonal().all()


def test_local_median_matches_numpy():
    rng = np.random.default_rng(2)
    zd, az = _sky(rng, 200)
    v = rng.normal(0.0, 1.0, zd.size)
    before = v.copy()
    near = photcloud.neighbours(zd, az, 20.0)
    med, count = photcloud.local_median(v, near)
    np.testing.assert_array_equal(v, before)
    want = np.array([np.median(v[row]) for row in near])
    np.testing.assert_allclose(med, want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(count, near.sum(axis=1))
    assert (count % 2 == 0).any() and (count % 2 == 1).any()   # both medians tried


def test_clouded_marks_a_faint_patch_and_nothing_on_a_clear_sky():
    rng = np.random.default_rng(3)
    zd, az = _sky(rng, 400)
    r = rng.normal(0.0, NOISE, zd.size)
    near = photcloud.neighbours(zd, az, 15.0)
    kw = dict(n_sigma=3.0, min_mag=0.05, min_stars=5)
    assert not photcloud.clouded(r, near, **kw).any()
    # uniform haze: every residual alike is no cloud (the fit takes it)
    assert not photcloud.clouded(r - np.median(r), near, **kw).any()
    patch = (az > 45.0) & (az < 135.0) & (zd > 40.0)
    out = photcloud.clouded(r + np.where(patch, 0.15, 0.0), near, **kw)
    inner = patch & (az > 60.0) & (az < 120.0) & (zd > 55.0)
    assert out[inner].all()
    far = (az > 180.0) | (zd < 20.0)
    assert not out[far].any()


def _frame(rng, n, *, cloud=None):
    """Stars of the model (camera terms 0) with noise; ``cloud`` = (mask fn, mag)."""
    vmag = rng.uniform(1.0, 5.0, n)
    bv = rng.uniform(-0.2, 1.6, n)
    zd, az = _sky(rng, n)
    m = photmodel.PhotModel(ZP_TRUE, K_TRUE).expected_mag(vmag, bv, zd)
    m = m + rng.normal(0.0, NOISE, n)
    inside = np.zeros(n, bool)
    if cloud is not None:
        inside = cloud[0](zd, az)
        m = m + np.where(inside, cloud[1], 0.0)
    return m, vmag, bv, zd, az, inside


def _low_sector(zd, az):
    # a thin cloud low over the east: it dims high-airmass stars only, which
    # the extinction would take for itself
    return (az > 45.0) & (az < 135.0) & (zd > 45.0)


@pytest.mark.parametrize("dim", [0.12, 0.2])
def test_a_low_cloud_sector_does_not_pull_k(phot, dim):
    # 0.12 and 0.2 mag: within the single-star faint clip (0.3 mag) and the
    # 3-sigma clip (0.18 mag) for most stars
    off = dataclasses.replace(phot, model_cloud_radius_deg=0.0)
    dk_off, dk_on = [], []
    for seed in range(4):
        m, v, bv, zd, az, inside = _frame(np.random.default_rng(10 + seed), 700,
                                          cloud=(_low_sector, dim))
        sel = np.ones(m.size, bool)
        before = m.copy()
        on = photmodel.fit_exposure(m, v, bv, zd, sel, cfg=phot, az_deg=az)
        np.testing.assert_array_equal(m, before)
        dk_on.append(on.model.k - K_TRUE)
        dk_off.append(photmodel.fit_exposure(m, v, bv, zd, sel, cfg=off,
                                             az_deg=az).model.k - K_TRUE)
        assert on.k_source == "fitted" and on.n_clouded >= 0.8 * inside.sum()
        assert on.used[inside].mean() < 0.1
        assert on.model.zp == pytest.approx(ZP_TRUE, abs=0.01)
        cards = dict((c[0], c[1]) for c in on.header_cards())
        assert cards["PMNCLOUD"] == on.n_clouded and cards["PMNSTAR"] == on.n_used
    # without the test the cloud tilts k (the truth is K_TRUE); with it, not
    assert np.mean(dk_off) > 0.015
    assert abs(np.mean(dk_on)) < 0.005 and np.max(np.abs(dk_on)) < 0.01


def test_clear_frame_fit_is_unchanged(phot):
    off = dataclasses.replace(phot, model_cloud_radius_deg=0.0)
    for seed in range(4):
        m, v, bv, zd, az, _ = _frame(np.random.default_rng(20 + seed), 700)
        sel = np.ones(m.size, bool)
        on = photmodel.fit_exposure(m, v, bv, zd, sel, cfg=phot, az_deg=az)
        ref = photmodel.fit_exposure(m, v, bv, zd, sel, cfg=off, az_deg=az)
        assert on.n_clouded == 0
        assert on.model.k == ref.model.k and on.model.zp == ref.model.zp
        assert on.k_err == ref.k_err


def test_fit_is_numpy_polyfit_on_the_stars_kept(phot):
    # outside reference: numpy's weighted polynomial fit on the stars the
    # fit kept gives the same zeropoint and extinction
    m, v, bv, zd, az, _ = _frame(np.random.default_rng(30), 500, cloud=(_low_sector, 0.2))
    err = np.random.default_rng(31).uniform(0.02, 0.08, m.size)
    fit = photmodel.fit_exposure(m, v, bv, zd, np.ones(m.size, bool), cfg=phot,
                                 m_err=err, az_deg=az)
    u = fit.used
    x1 = photmodel.airmass(zd[u]) - 1.0
    slope, icpt = np.polyfit(x1, m[u] - v[u], 1, w=1.0 / np.hypot(err[u], phot.model_floor_mag))
    assert fit.model.k == pytest.approx(slope, abs=1e-9)
    assert fit.model.zp == pytest.approx(-icpt, abs=1e-9)


def test_no_azimuths_no_cloud_test(phot):
    m, v, bv, zd, _, _ = _frame(np.random.default_rng(40), 400, cloud=(_low_sector, 0.2))
    fit = photmodel.fit_exposure(m, v, bv, zd, np.ones(m.size, bool), cfg=phot)
    assert fit.n_clouded == 0 and fit.ok
