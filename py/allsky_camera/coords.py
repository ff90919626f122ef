"""Times and sky coordinates without network access.

The transforms call ERFA (the library under astropy's coordinate frames)
directly (``eraApco13`` once, then ``eraAtciqz``/``eraAtioq`` per star, and
back with ``eraAtoiq``/``eraAticq``), taking ICRS positions to observed
(refracted) azimuth and zenith distance in a few milliseconds for thousands
of stars, and never read an IERS table, so a
run can neither download nor stall on a stale table.  UT1-UTC is taken as 0
and the polar motion as 0: by definition ``|UT1-UTC| < 0.9 s``, which turns
the sky by at most 14 arcsec about the pole, 0.03 pixel on an all-sky
camera, and the per-exposure astrometric fit absorbs it.  The tests compare
these positions with astropy's AltAz frame.

Angles in degrees; azimuth from north through east.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import erfa
import numpy as np

from .exceptions import InputFileError

#: Seconds per day.
_DAY_S = 86400.0
#: Mean Earth radius over the mean Earth-Moon distance: the Moon's mean
#: horizontal parallax, 57 arcmin (Meeus, Astronomical Algorithms, ch. 47).
_MOON_HORIZONTAL_PARALLAX_DEG = 0.9507


@dataclass(frozen=True)
class ObsTime:
    """An instant as two-part Julian dates (ERFA convention)."""

    utc1: float
    utc2: float
    tt1: float
    tt2: float
    iso_utc: str

    @property
    def jd_utc(self):
        """UTC Julian date as one float (precision ~20 microseconds)."""
        return self.utc1 + self.utc2

    @property
    def jd_tt(self):
        """TT Julian date as one float."""
        return self.tt1 + self.tt2

    @property
    def mjd_utc(self):
        """UTC modified Julian date."""
        return self.utc1 - 2400000.5 + self.utc2


def parse_time(text, utc_offset_hours=0.0, where="DATE-OBS", fmt=None):
    """Parse a clock time and return the :class:`ObsTime` in UTC.

    Parameters
    ----------
    text : str
        With ``fmt`` None: ISO 8601, ``YYYY-MM-DDThh:mm:ss[.fff]`` (a space
        instead of ``T`` is accepted, so is a date alone); else text in the
        ``fmt`` layout.  The clock runs ``utc_offset_hours`` ahead of UTC.
    utc_offset_hours : float
        Offset of the clock from UTC in hours (MDM: -7).
    where : str
        Named in the error message.
    fmt : str, optional
        A ``datetime.strptime`` format, e.g. ``'%a %b %d %H:%M:%S %Y'`` for
        ``'WED MAR 06 08:30:37 2019'`` (names of days and months match in
        any case).
    """
    if fmt is not None:
        try:
            t = _dt.datetime.strptime(" ".join(str(text).split()), fmt)
        except ValueError as err:
            raise InputFileError(f"{where} = {text!r} does not match the time format "
                                 f"{fmt!r}; check header.time_format") from err
        return _obstime(t, utc_offset_hours, text, where)
    s = str(text).strip().replace(" ", "T").rstrip("Z")
    try:
        t = _dt.datetime.fromisoformat(s)
    except ValueError as err:
        raise InputFileError(f"{where} = {text!r} is not an ISO 8601 time "
                             "(expected YYYY-MM-DDThh:mm:ss)") from err
    return _obstime(t, utc_offset_hours, text, where)


def _obstime(t, utc_offset_hours, text, where):
    """:class:`ObsTime` of a clock reading ``t`` (a datetime) ``utc_offset_hours`` from UTC."""
    if t.tzinfo is not None:
        t = t.replace(tzinfo=None) - t.utcoffset() + _dt.timedelta(hours=utc_offset_hours)
    t = t - _dt.timedelta(hours=utc_offset_hours)
    sec = t.second + t.microsecond * 1e-6
    try:
        u1, u2 = erfa.dtf2d("UTC", t.year, t.month, t.day, t.hour, t.minute, sec)
        a1, a2 = erfa.utctai(u1, u2)
        t1, t2 = erfa.taitt(a1, a2)
    except (erfa.ErfaError, ValueError) as err:
        raise InputFileError(f"{where} = {text!r} is not a valid UTC time") from err
    return ObsTime(float(u1), float(u2), float(t1), float(t2),
                   t.isoformat(timespec="milliseconds"))


@dataclass(frozen=True)
class Site:
    """Observer position and air, as used by the transforms."""

    lon_deg: float
    lat_deg: float
    height_m: float
    pressure_hpa: float = 0.0
    temperature_c: float = 10.0
    humidity: float = 0.2
    wavelength_um: float = 0.55


def _astrom(t, site):
    """ERFA star-independent astrometry parameters for ``t`` and ``site`` (eraApco13)."""
    astrom, _ = erfa.apco13(t.utc1, t.utc2, 0.0, np.radians(site.lon_deg),
                            np.radians(site.lat_deg), site.height_m, 0.0, 0.0,
                            site.pressure_hpa, site.temperature_c, site.humidity,
                            site.wavelength_um)
    return astrom


def radec_to_altaz(ra_deg, dec_deg, t, site):
    """Observed altitude and azimuth of ICRS positions.

    The star-independent part (precession-nutation, Earth rotation, refraction
    constants) is computed once (``eraApco13``), then every star goes through
    ``eraAtciqz`` and ``eraAtioq``: the same chain as ``eraAtco13``, vectorised.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        ICRS right ascension and declination at the epoch of observation (deg).
    t : ObsTime
    site : Site
        Refraction is included when ``site.pressure_hpa > 0``.

    Returns
    -------
    alt_deg, az_deg : ndarray
        Apparent (refracted) altitude and azimuth (north through east), deg.
    """
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    astrom = _astrom(t, site)
    ri, di = erfa.atciqz(ra, dec, astrom)
    aob, zob, _, _, _ = erfa.atioq(ri, di, astrom)
    return 90.0 - np.degrees(zob), np.mod(np.degrees(aob), 360.0)


def altaz_to_radec(alt_deg, az_deg, t, site):
    """ICRS right ascension and declination (deg) of observed alt/az; inverse of
    :func:`radec_to_altaz`."""
    az = np.radians(np.asarray(az_deg, dtype=float))
    zen = np.radians(90.0 - np.asarray(alt_deg, dtype=float))
    astrom = _astrom(t, site)
    ri, di = erfa.atoiq("A", az, zen, astrom)
    ra, dec = erfa.aticq(ri, di, astrom)
    return np.mod(np.degrees(ra), 360.0), np.degrees(dec)


def sun_radec(t):
    """Geocentric ICRS RA, Dec (deg) of the Sun (ERFA ``epv00``; light time ignored)."""
    pvh, _ = erfa.epv00(t.tt1, t.tt2)
    p = -np.asarray(pvh["p"], dtype=float)
    return _vec_to_radec(p)


def moon_radec(t):
    """Geocentric RA, Dec (deg) of the Moon (ERFA ``moon98``, GCRS, ~10 arcsec)."""
    pv = erfa.moon98(t.tt1, t.tt2)
    return _vec_to_radec(np.asarray(pv["p"], dtype=float))


def _vec_to_radec(p):
    ra = np.degrees(np.arctan2(p[1], p[0])) % 360.0
    dec = np.degrees(np.arctan2(p[2], np.hypot(p[0], p[1])))
    return float(ra), float(dec)


def sun_moon_altaz(t, site):
    """Altitudes and azimuths (deg) of the Sun and the Moon, and the Moon's
    illuminated fraction.

    The Moon's topocentric altitude is its geocentric one lowered by the mean
    horizontal parallax times cos(alt) (good to ~0.05 deg).

    Returns
    -------
    dict with keys ``sun_alt``, ``sun_az``, ``moon_alt``, ``moon_az``,
    ``moon_illum`` (0-1).
    """
    sra, sdec = sun_radec(t)
    mra, mdec = moon_radec(t)
    alt, az = radec_to_altaz(np.array([sra, mra]), np.array([sdec, mdec]), t, site)
    moon_alt = alt[1] - _MOON_HORIZONTAL_PARALLAX_DEG * np.cos(np.radians(alt[1]))
    elong = angular_sep(sra, sdec, mra, mdec)
    illum = 0.5 * (1.0 - np.cos(np.radians(elong)))   # phase angle ~ 180 - elongation
    return {"sun_alt": float(alt[0]), "sun_az": float(az[0]),
            "moon_alt": float(moon_alt), "moon_az": float(az[1]),
            "moon_illum": float(illum)}


def angular_sep(lon1, lat1, lon2, lat2):
    """Angular separation (deg) between points given in degrees (Vincenty form)."""
    l1, b1, l2, b2 = (np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2))
    dl = l2 - l1
    num = np.hypot(np.cos(b2) * np.sin(dl),
                   np.cos(b1) * np.sin(b2) - np.sin(b1) * np.cos(b2) * np.cos(dl))
    den = np.sin(b1) * np.sin(b2) + np.cos(b1) * np.cos(b2) * np.cos(dl)
    return np.degrees(np.arctan2(num, den))


def site_from_config(site_cfg, header=None):
    """Build a :class:`Site` from a configuration's site section.

    When ``site_cfg.prefer_header`` is true and the header carries the
    position (OBSLAT/OBSLONG/OBSALT, SITELAT/SITELONG/SITEELEV or
    LATITUDE/LONGITUD/ALTITUDE), the header's values are used.

    Returns
    -------
    site : Site
    source : str
        ``'config'`` or ``'header'``.
    """
    lon, lat, h = site_cfg.lon_deg, site_cfg.lat_deg, site_cfg.height_m
    source = "config"
    if site_cfg.prefer_header and header is not None:
        for klat, klon, kalt in (("OBSLAT", "OBSLONG", "OBSALT"),
                                 ("SITELAT", "SITELONG", "SITEELEV"),
                                 ("LATITUDE", "LONGITUD", "ALTITUDE")):
            if klat in header and klon in header:
                try:
                    lat, lon = float(header[klat]), float(header[klon])
                    h = float(header.get(kalt, h))
                    source = "header"
                    break
                except (TypeError, ValueError):
                    continue
    return Site(lon, lat, h, site_cfg.pressure_bar * 1000.0, site_cfg.temperature_c,
                site_cfg.humidity, site_cfg.wavelength_um), source
