"""sim.stars: star selection, zeropoints, fluxes through the photometric model, saturation."""

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from allsky_camera.camera import config, coords
from allsky_camera.sim import psf, stars

SMALL = Path(__file__).resolve().parent / "data" / "SMALL640.yaml"


def test_zeropoints_total_and_aperture():
    kw = dict(zp_nominal=7.0, aper_radius_px=2.0, fwhm_zenith_px=2.6)
    assert stars.zeropoints(None, zp_nominal_scale="total", **kw)[0] == 7.0
    zp, zp_aper = stars.zeropoints(None, zp_nominal_scale="aperture", **kw)
    # the aperture fraction of a pixelated Gaussian, 1 - exp(-R^2 / 2 (s^2 + 1/6))
    s2 = (2.6 / 2.354820045) ** 2 + 2.0 / 12.0
    ef = 1 - math.exp(-4.0 / (2 * s2))
    assert zp_aper == pytest.approx(7.0) and zp == pytest.approx(7.0 - 2.5 * math.log10(ef))
    zp, zp_aper = stars.zeropoints(6.5, zp_nominal_scale="aperture", **kw)
    assert zp == 6.5 and zp_aper == pytest.approx(6.5 + 2.5 * math.log10(ef))


def test_star_flux_is_the_zeropoint_definition():
    """A star of V = ZP gives 1 ADU/s at X = 1; 1 mag is a factor 10^-0.4."""
    f = stars.star_flux(np.array([7.0, 8.0, 7.0, 7.0]), np.array([0.0, 0.0, 1.0, 0.0]), zp=7.0,
                        exptime=30.0, transmission=np.array([1.0, 1.0, 1.0, 0.5]))
    np.testing.assert_allclose(f, [30.0, 30.0 * 10 ** -0.4, 30.0 * 10 ** -0.4, 15.0])


def test_model_dmag_extinction_colour_vignetting():
    alt = np.array([90.0, 60.0, 45.0, 30.0])
    bv = np.array([0.0, 1.0, np.nan, -0.2])
    assert np.all(stars.model_dmag(alt, bv, ext_coef=0.0, colour_term=0.0, vignetting=()) == 0)
    # extinction: the plane-parallel airmass sec z is within 0.3 % of Kasten & Young to zd 60
    k = stars.model_dmag(alt, np.zeros(4), ext_coef=0.2, colour_term=0.0, vignetting=())
    np.testing.assert_allclose(k, 0.2 * (1 / np.cos(np.radians(90.0 - alt)) - 1), atol=0.003)
    c = stars.model_dmag(alt, bv, ext_coef=0.0, colour_term=-0.1, vignetting=())
    np.testing.assert_allclose(c, [0.0, -0.1, 0.0, 0.02])           # NaN colour counts as 0
    v = stars.model_dmag(alt, bv, ext_coef=0.0, colour_term=0.0, vignetting=(0.4, 0.1))
    q = (90.0 - alt) / 90.0
    np.testing.assert_allclose(v, 0.4 * q ** 2 + 0.1 * q ** 4)


def test_visible_stars_keep_the_pole_star_and_drop_the_rest():
    """The celestial pole stands at the site's latitude (plus refraction, and the ~0.3 deg
    the pole moved between ICRS and 2020), due north."""
    cam = config.load_camera(SMALL)
    site, _ = coords.site_from_config(cam.site)
    t = coords.parse_time(cam.simulation.dateobs)
    cat = Table({"HIP": [1, 2, 3], "RA": [0.0, 0.0, 0.0], "DEC": [89.999, -89.999, 89.999],
                 "VMAG": [2.0, 2.0, np.nan], "BV": [0.0, 0.0, 0.0]})
    kept, alt, az, x, y = stars.visible_stars(cat, cam.astrometry.model, t, site,
                                              horizon_alt_deg=2.0, nx=cam.sensor.nx,
                                              ny=cam.sensor.ny)
    assert list(kept["HIP"]) == [1]
    assert alt[0] == pytest.approx(site.lat_deg, abs=0.5)
    assert min(az[0], 360 - az[0]) < 0.6
    x0, y0 = cam.astrometry.model.altaz_to_xy(alt, az)
    np.testing.assert_allclose([x[0], y[0]], [x0[0], y0[0]])


def test_saturated_stars_ignore_hot_pixels_and_far_pixels():
    raw = np.zeros((40, 40), dtype=np.uint16)
    hot = np.zeros((40, 40), dtype=bool)
    raw[10, 11] = 4095                  # within 2 px of star 0
    raw[20, 20] = 4095
    hot[20, 20] = True                  # hot: does not count for star 1
    raw[30, 34] = 4095                  # 4 px from star 2: too far
    got = stars.saturated_stars(raw, hot, [10.0, 20.0, 30.0, 0.2], [10.0, 20.0, 30.0, 39.0],
                                2.0, 4095)
    assert got.tolist() == [True, False, False, False]
    assert stars.saturated_stars(raw, hot, [], [], 2.0, 4095).shape == (0,)


def test_psf_fwhm_law():
    np.testing.assert_allclose(psf.fwhm_at([0.0, 90.0], 1.6, 2.2), [1.6, 2.2])
