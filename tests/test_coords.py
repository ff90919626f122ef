"""Coordinates: ERFA-based alt/az against astropy's AltAz frame, times, ephemerides."""

import numpy as np
import pytest

from allsky_camera.camera import coords
from allsky_camera.exceptions import InputFileError


@pytest.fixture(scope="module")
def site():
    return coords.Site(-111.5997, 31.9599, 2100.0, 1013.0, 10.0, 0.2, 0.55)


def test_parse_time_applies_utc_offset():
    t = coords.parse_time("2020-10-11T21:38:23", -7)
    assert t.iso_utc == "2020-10-12T04:38:23.000"
    # MJD of 2020-10-12 04:38:23 UTC
    assert t.mjd_utc == pytest.approx(59134 + (4 * 3600 + 38 * 60 + 23) / 86400, abs=1e-9)
    # TT - UTC = 32.184 + 37 leap seconds in 2020
    assert (t.jd_tt - t.jd_utc) * 86400 == pytest.approx(69.184, abs=1e-3)


@pytest.mark.parametrize("bad", ["", "yesterday", "2020-13-01T00:00:00", "2020-10-11T25:00:00"])
def test_parse_time_rejects_garbage(bad):
    with pytest.raises(InputFileError, match="DATE-OBS"):
        coords.parse_time(bad)


def test_altaz_matches_astropy(site):
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    t = coords.parse_time("2020-10-12T04:38:23")
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, 200)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 200)))
    alt, az = coords.radec_to_altaz(ra, dec, t, site)
    loc = EarthLocation(lon=site.lon_deg * u.deg, lat=site.lat_deg * u.deg,
                        height=site.height_m * u.m)
    frame = AltAz(obstime=Time(t.utc1, t.utc2, format="jd", scale="utc"), location=loc,
                  pressure=site.pressure_hpa * u.hPa, temperature=site.temperature_c * u.deg_C,
                  relative_humidity=site.humidity, obswl=site.wavelength_um * u.um)
    ref = SkyCoord(ra * u.deg, dec * u.deg).transform_to(frame)
    up = ref.alt.deg > 5
    sep = coords.angular_sep(az[up], alt[up], ref.az.deg[up], ref.alt.deg[up]) * 3600
    # only UT1-UTC (< 0.9 s, < 14 arcsec) separates the two
    assert sep.max() < 15.0


def test_altaz_round_trip(site):
    t = coords.parse_time("2020-10-12T04:38:23")
    rng = np.random.default_rng(4)
    ra, dec = rng.uniform(0, 360, 300), rng.uniform(-30, 89, 300)
    alt, az = coords.radec_to_altaz(ra, dec, t, site)
    up = alt > 10
    ra, dec, alt, az = ra[up], dec[up], alt[up], az[up]
    assert up.sum() > 50
    ra2, dec2 = coords.altaz_to_radec(alt, az, t, site)
    assert coords.angular_sep(ra, dec, ra2, dec2).max() * 3600 < 0.5


def test_moon_and_sun(site):
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    t = coords.parse_time("2018-06-29T10:34:17")   # DCT frame 010: bright Moon low
    e = coords.sun_moon_altaz(t, site)
    loc = EarthLocation(lon=site.lon_deg * u.deg, lat=site.lat_deg * u.deg,
                        height=site.height_m * u.m)
    tt = Time(t.utc1, t.utc2, format="jd", scale="utc")
    frame = AltAz(obstime=tt, location=loc)
    moon = get_body("moon", tt, loc).transform_to(frame)
    sun = get_body("sun", tt, loc).transform_to(frame)
    # refraction is on in ours and off in the reference: allow 0.6 deg near the horizon
    assert coords.angular_sep(e["moon_az"], e["moon_alt"], moon.az.deg, moon.alt.deg) < 0.6
    assert coords.angular_sep(e["sun_az"], e["sun_alt"], sun.az.deg, sun.alt.deg) < 0.6
    assert 0.9 < e["moon_illum"] <= 1.0      # full Moon on 2018-06-28


def test_angular_sep():
    assert coords.angular_sep(0, 0, 90, 0) == pytest.approx(90.0)
    assert coords.angular_sep(10, 89.9, 190, 89.9) == pytest.approx(0.2, abs=1e-9)
    assert coords.angular_sep(0, 0, 0, 0) == 0.0
