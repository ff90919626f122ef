"""sim.sky: the dark-sky law, twilight and moonlight, and the sky's surface brightness map."""

import numpy as np
import pytest

from allsky_camera.sim import geometry, sky
from allsky_camera.stages.photmodel import airmass


def test_sky_law_end_points_and_shape():
    mu = sky.sky_surface_brightness([0, 20, 45, 70, 90], 21.0, 19.3)
    assert mu[0] == pytest.approx(21.0) and mu[-1] == pytest.approx(19.3)
    assert np.all(np.diff(mu) < 0)
    assert mu[1] > 20.95                                 # flat near the zenith
    f = 10 ** (-0.4 * mu)
    zd = np.array([0, 20, 45, 70, 90])
    np.testing.assert_allclose((f - f[0]) / (f[-1] - f[0]), (zd / 90) ** 3)


def test_render_sky_noiseless():
    zd = np.full((2, 3), 45.0)
    omega = np.full((2, 3), 1e-5)
    on = np.array([[True, True, False], [True, True, True]])
    mag, adu = sky.render_sky(zd, omega, on, 21.0, 19.0, 6.0, 10.0)
    mu = sky.sky_surface_brightness(45.0, 21.0, 19.0)
    assert np.isnan(mag[0, 2]) and adu[0, 2] == 0.0
    np.testing.assert_allclose(adu[on], 10 ** (-0.4 * (mu - 6.0)) * 10.0 * 1e-5
                               * geometry.ARCSEC2_PER_SR)
    assert mag.dtype == np.float32


def test_sky_mag_map_inverts_the_flux_law():
    rng = np.random.default_rng(3)
    zd = rng.uniform(0.0, 85.0, (20, 30))
    omega = rng.uniform(1e-6, 3e-6, zd.shape)
    on = rng.uniform(size=zd.shape) < 0.8
    mag, adu = sky.render_sky(zd, omega, on, 21.2, 19.1, 7.0, 30.0)
    back = sky.sky_mag_map(adu, omega, on, 7.0, 30.0)
    assert back.dtype == np.float32 and np.all(np.isnan(back[~on]))
    np.testing.assert_allclose(back[on], mag[on], atol=1e-5)
    # the input maps are not changed
    mag2, adu2 = sky.render_sky(zd, omega, on, 21.2, 19.1, 7.0, 30.0)
    np.testing.assert_array_equal(adu, adu2)


def test_sky_mag_map_of_a_sky_that_gives_no_light():
    omega = np.full((1, 3), 2e-6)
    on = np.array([[True, True, False]])
    back = sky.sky_mag_map(np.array([[0.0, 100.0, 0.0]]), omega, on, 7.0, 30.0)
    assert back[0, 0] == np.inf and np.isfinite(back[0, 1]) and np.isnan(back[0, 2])


def test_twilight_falls_off_with_the_distance_from_the_sun():
    """Against astropy's angular separation: exp(-(d - d_zenith) / scale)."""
    from astropy.coordinates import angular_separation

    light = sky.SkyLight("twilight", 10.0)
    sun = (-7.0, 250.0)
    rng = np.random.default_rng(4)
    alt = rng.uniform(0.0, 90.0, 200)
    az = rng.uniform(0.0, 360.0, 200)
    d = np.degrees(angular_separation(np.radians(az), np.radians(alt), np.radians(sun[1]),
                                      np.radians(sun[0])))
    want = np.exp(-(d - (90.0 - sun[0])) / sky.TWILIGHT_SCALE_DEG)
    np.testing.assert_allclose(sky.sky_light_shape(light, alt, az, *sun), want, rtol=1e-9)
    # brightest toward the Sun, 1 at the zenith
    assert sky.sky_light_shape(light, np.array(90.0), np.array(0.0), *sun) == pytest.approx(1.0)


def test_moonlight_rayleigh_and_halo():
    """(1 + cos^2 d) X(zd) (1 + w exp(-d / h)), relative to the zenith."""
    light = sky.SkyLight("moon", 2.0)
    moon = (40.0, 120.0)

    def law(d, zd):
        return ((1 + np.cos(np.radians(d)) ** 2) * airmass(zd)
                * (1 + sky.MOON_HALO_WEIGHT * np.exp(-d / sky.MOON_HALO_DEG)))

    # at the Moon (d = 0, zd = 50) and opposite it on the horizon's side (d = 90, zd = 40)
    got = sky.sky_light_shape(light, np.array([40.0, 50.0]), np.array([120.0, 300.0]), *moon)
    np.testing.assert_allclose(got, [law(0.0, 50.0) / law(50.0, 0.0),
                                     law(90.0, 40.0) / law(50.0, 0.0)], rtol=1e-9)


def test_sky_light_at_the_zenith_is_the_ratio_times_the_dark_zenith_sky():
    omega = np.array([2e-6, 3e-6])
    _, dark = sky.render_sky(np.zeros(2), omega, np.ones(2, dtype=bool), 21.0, 19.0, 7.0, 20.0)
    light = sky.SkyLight("moon", 3.0)
    added = sky.sky_light_adu(light, np.full(2, 90.0), np.zeros(2), omega, (35.0, 10.0),
                              zenith_mag=21.0, zp=7.0, exptime=20.0)
    np.testing.assert_allclose(added, 3.0 * dark, rtol=1e-12)


def test_light_source_given_or_from_the_ephemeris():
    from allsky_camera.camera import config, coords

    light = sky.SkyLight("moon", 1.0, alt_deg=33.0, az_deg=210.0)
    assert sky.light_source_altaz(light, None, None) == (33.0, 210.0)
    site = coords.site_from_config(config.load_camera("MDM").site)[0]
    t = coords.parse_time("2020-10-12T04:38:23")
    eph = coords.sun_moon_altaz(t, site)
    assert sky.light_source_altaz(sky.SkyLight("twilight", 1.0), t, site) == (
        eph["sun_alt"], eph["sun_az"])
    assert sky.light_source_altaz(sky.SkyLight("moon", 1.0, alt_deg=20.0), t, site) == (
        eph["moon_alt"], eph["moon_az"])


def test_sky_light_kinds_are_checked():
    from allsky_camera.exceptions import ConfigError

    with pytest.raises(ConfigError, match="choose one of"):
        sky.SkyLight("aurora", 1.0)
    with pytest.raises(ConfigError, match=">= 0"):
        sky.SkyLight("moon", -1.0)
