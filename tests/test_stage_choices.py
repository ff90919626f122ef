"""The science choices moved out of ac_proc.py into their stages, one by one."""

import numpy as np
import pytest
from astropy.table import Table

from allsky_camera.camera import config
from allsky_camera.flags import bit
from allsky_camera.stages import astrometry, catalog, centroid, photometry


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


def test_row_nanmedian_is_numpys_nanmedian():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(500, 32))
    a[rng.random(a.shape) < 0.01] = np.nan
    a[7] = 1.0                                   # constant rows, even count
    np.testing.assert_array_equal(centroid.row_nanmedian(a), np.nanmedian(a, axis=1))
    b = a[~np.isnan(a).any(axis=1)]
    np.testing.assert_array_equal(centroid.row_nanmedian(b), np.median(b, axis=1))


def test_isolation_on_the_sky():
    stars = Table({"nn_sep_deg": [0.1, 0.1, 5.0], "nn_dv": [1.0, 3.0, 0.0]})
    assert list(catalog.isolated(stars, isolation_deg=0.5, neighbour_dv=2.5)) == [
        False, True, True]


def test_position_flags():
    x = np.array([100.0, 103.0, 300.0, 500.0, 900.0])
    y = np.array([100.0, 100.0, 300.0, 500.0, 900.0])
    vmag = np.array([4.0, 4.5, 3.0, 8.0, 3.0])
    r = np.array([10.0, 10.0, 10.0, 10.0, 600.0])
    iso = np.array([True, True, True, False, True])
    moon = np.array([True, True, False, True, True])
    f = centroid.position_flags(x, y, vmag, r, iso, moon, box_half_px=4, neighbour_dv=2.5,
                                safe_radius_px=500)
    assert f[0] & bit("NOT_ISOLATED") and f[1] & bit("NOT_ISOLATED")   # 3 px apart
    assert f[2] == bit("MOON")
    assert f[3] == bit("NOT_ISOLATED")
    assert f[4] == bit("OUTSIDE_SAFE")


def test_position_flags_ignore_a_much_fainter_neighbour():
    x, y = np.array([100.0, 103.0]), np.array([100.0, 100.0])
    f = centroid.position_flags(x, y, np.array([3.0, 6.0]), np.zeros(2), np.ones(2, bool),
                                np.ones(2, bool), box_half_px=4, neighbour_dv=2.5,
                                safe_radius_px=500)
    assert f[0] == 0 and f[1] & bit("NOT_ISOLATED")   # only the faint one is spoilt


def test_fit_candidates(camera):
    a = camera.astrometry
    vmag = np.array([a.fit_vmax - 1, a.fit_vmax + 1, a.fit_vmax - 1, a.fit_vmax - 1])
    r = np.array([0.0, 0.0, a.safe_radius_px + 1, 0.0])
    ok = np.array([True, True, True, False])
    got = astrometry.fit_candidates(vmag, ok, np.ones(4, bool), r, a)
    assert list(got) == [True, False, False, False]


def test_lost_stars_measured_at_the_prediction():
    xc, yc = np.array([10.2, 20.3, np.nan]), np.array([5.1, 6.1, np.nan])
    xp, yp = np.array([10.0, 20.0, 30.0]), np.array([5.0, 6.0, 7.0])
    flags = np.array([0, bit("FAINT"), bit("NO_FLUX")])
    x, y = photometry.measured_positions(xc, yc, xp, yp, flags)
    assert list(x) == [10.2, 20.0, 30.0] and list(y) == [5.1, 6.0, 7.0]


def test_zeropoint_and_apcor_stars(camera):
    ph = camera.photometry
    vmag = np.array([ph.apcor_vmax - 0.5, ph.apcor_vmax + 0.5, 1.0])
    fl = photometry.Fluxes(np.ones(3), np.ones(3), np.ones(3), np.zeros(3), np.zeros(3),
                           np.full(3, 0.1))
    zp, ap = photometry.zeropoint_stars(vmag, np.array([0, 0, bit("EDGE")]), fl, ph, 60.0)
    assert list(ap) == [True, False, False]
    assert not zp[2] and zp[0]
    f = photometry.flux_flags(photometry.Fluxes(np.array([1.0, -1.0, np.nan]), np.ones(3),
                                                np.ones(3), np.zeros(3), np.array([0, 0, 2])))
    assert list(f) == [0, bit("NO_FLUX"), bit("NO_FLUX") | bit("BAD_PIXEL")]
