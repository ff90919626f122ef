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
import logging
import re
import warnings
from dataclasses import dataclass

import erfa
import numpy as np

from allsky_camera.exceptions import InputFileError

log = logging.getLogger(__name__)

#: Seconds per day.
_DAY_S = 86400.0
#: ERFA ``eraPlan94`` planet numbers of the planets the pipeline predicts
#: (the bright ones that are not in the star catalog).
PLANETS = {"Venus": 2, "Mars": 4, "Jupiter": 5, "Saturn": 6}
#: Light-time iterations for a planet's geocentric place (one already gives
#: < 0.1 arcsec; a second makes it converge).
_LIGHT_TIME_ITER = 2
#: Solar horizontal parallax, deg: an equatorial Earth radius seen from 1 au
#: (8.794143 arcsec, IAU 2009 system of astronomical constants).
_SOLAR_PARALLAX_DEG = 8.794143 / 3600.0
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


#: Years accepted in a DATE-OBS: ERFA's UTC starts in 1960 (eraDat) and its
#: Earth ephemeris (eraEpv00, used for the Sun, aberration) covers 1900-2100
#: AD; a year outside is a typo or a corrupt card, not an exposure taken.
#: After ERFA's last tabulated leap second, UTC-TAI is taken as constant
#: (ERFA calls such years "dubious"; no leap second is scheduled).
MIN_YEAR, MAX_YEAR = 1960, 2099
#: ISO 8601 date-time: date, optional time with fraction, optional zone.
_ISO_RE = re.compile(
    r"^(?P<Y>\d{4})-(?P<M>\d{2})-(?P<D>\d{2})"
    r"(?:T(?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$")


def _iso_fields(text, where):
    """Calendar fields and the zone offset (hours, or None) of an ISO 8601 string."""
    s = str(text).strip()
    if len(s) > 10 and s[10] == " ":
        s = s[:10] + "T" + s[11:]
    m = _ISO_RE.match(s)
    if m is None:
        raise InputFileError(f"{where} = {text!r} is not an ISO 8601 time "
                             "(expected YYYY-MM-DDThh:mm:ss); fix the header card")
    g = m.groupdict()
    sec = int(g["s"] or 0) + (float("0." + g["f"]) if g["f"] else 0.0)
    zone = None
    tz = g["tz"]
    if tz == "Z":
        zone = 0.0
    elif tz:
        sign = -1.0 if tz[0] == "-" else 1.0
        digits = tz[1:].replace(":", "")
        zone = sign * (int(digits[:2]) + (int(digits[2:]) if len(digits) > 2 else 0) / 60.0)
    return (int(g["Y"]), int(g["M"]), int(g["D"]), int(g["h"] or 0), int(g["m"] or 0), sec,
            zone)


def _strptime_fields(text, fmt, where):
    """Calendar fields and zone offset (hours, or None) of ``text`` in layout ``fmt``."""
    try:
        t = _dt.datetime.strptime(" ".join(str(text).split()), fmt)
    except ValueError as err:
        raise InputFileError(f"{where} = {text!r} does not match the time format "
                             f"{fmt!r}; check header.time_format") from err
    zone = None if t.tzinfo is None else t.utcoffset().total_seconds() / 3600.0
    return (t.year, t.month, t.day, t.hour, t.minute, t.second + t.microsecond * 1e-6, zone)


def parse_time(text, utc_offset_hours=0.0, where="DATE-OBS", fmt=None):
    """Parse a clock time and return the :class:`ObsTime` in UTC.

    Parameters
    ----------
    text : str
        With ``fmt`` None: ISO 8601, ``YYYY-MM-DDThh:mm:ss[.fff]`` (a space
        instead of ``T`` is accepted, so is a date alone, any number of
        decimals, and a zone ``Z`` or ``+hh:mm``, which then replaces
        ``utc_offset_hours``); else text in the ``fmt`` layout.  The clock
        runs ``utc_offset_hours`` ahead of UTC.  A leap second
        (``23:59:60`` UTC on a day that has one) is accepted.
    utc_offset_hours : float
        Offset of the clock from UTC in hours (MDM: -7).
    where : str
        Named in the error message.
    fmt : str, optional
        A ``datetime.strptime`` format, e.g. ``'%a %b %d %H:%M:%S %Y'`` for
        ``'WED MAR 06 08:30:37 2019'`` (names of days and months match in
        any case).

    Raises
    ------
    InputFileError
        Not ISO 8601 (or not ``fmt``), a year outside
        ``MIN_YEAR``-``MAX_YEAR``, a field out of range (month 13, second 60
        on a day without a leap second).
    """
    fields = _iso_fields(text, where) if fmt is None else _strptime_fields(text, fmt, where)
    y, mo, d, h, mi, sec, zone = fields
    if not MIN_YEAR <= y <= MAX_YEAR:
        raise InputFileError(f"{where} = {text!r}: year {y} is outside {MIN_YEAR}-{MAX_YEAR}; "
                             "fix the camera clock or the header card")
    offset = utc_offset_hours if zone is None else zone
    try:
        # whole minutes shift with the clock offset; the seconds (up to 60.999
        # in a leap second) are kept apart so that ERFA can judge them in UTC
        local = _dt.datetime(y, mo, d, h, mi)
        if not 0.0 <= sec < 61.0:
            raise ValueError(f"second {sec} out of range")
    except ValueError as err:
        raise InputFileError(f"{where} = {text!r} is not a valid time ({err}); "
                             "fix the header card") from err
    t = local - _dt.timedelta(hours=offset)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", erfa.ErfaWarning)
        try:
            u1, u2 = erfa.dtf2d("UTC", t.year, t.month, t.day, t.hour, t.minute, sec)
            a1, a2 = erfa.utctai(u1, u2)
            t1, t2 = erfa.taitt(a1, a2)
            yy, mm, dd, hmsf = erfa.d2dtf("UTC", 3, u1, u2)
        except (erfa.ErfaError, ValueError) as err:
            raise InputFileError(f"{where} = {text!r} is not a valid UTC time ({err}); "
                                 "fix the header card") from err
    for w in caught:
        if "dubious year" not in str(w.message):   # see MAX_YEAR
            raise InputFileError(f"{where} = {text!r} is not a valid UTC time (a second "
                                 "60 exists only in a leap second); fix the header card")
    hh, mn, ss, ff = (int(v) for v in hmsf.tolist())
    iso = f"{int(yy):04d}-{int(mm):02d}-{int(dd):02d}T{hh:02d}:{mn:02d}:{ss:02d}.{ff:03d}"
    return ObsTime(float(u1), float(u2), float(t1), float(t2), iso)


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
    with warnings.catch_warnings():
        # a year past ERFA's leap-second table is "dubious": see MAX_YEAR
        warnings.filterwarnings("ignore", message=".*dubious year", category=erfa.ErfaWarning)
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
    astrom = _astrom(t, site)
    return _cirs_to_altaz(*_icrs_to_cirs(ra_deg, dec_deg, astrom), astrom)


def _icrs_to_cirs(ra_deg, dec_deg, astrom):
    """CIRS RA, Dec (rad) of ICRS positions (deg): ``eraAtciqz``."""
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    return erfa.atciqz(ra, dec, astrom)


def _cirs_to_altaz(ri, di, astrom):
    """Observed altitude and azimuth (deg) of CIRS RA, Dec (rad): ``eraAtioq``."""
    aob, zob, _, _, _ = erfa.atioq(ri, di, astrom)
    return 90.0 - np.degrees(zob), np.mod(np.degrees(aob), 360.0)


def icrs_to_cirs(ra_deg, dec_deg, t, site):
    """The star-dependent first half of :func:`radec_to_altaz`.

    Light deflection, annual aberration and precession-nutation
    (``eraAtciqz``) change by < 1 arcsec per day (aberration 0.35, precession
    0.14), so CIRS positions may be reused over an hour or so; the second
    half, :func:`cirs_to_altaz` (Earth rotation, refraction), must be taken
    at the exposure's own time.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        ICRS right ascension and declination at the epoch of observation (deg).
    t : ObsTime
    site : Site

    Returns
    -------
    ri, di : ndarray
        CIRS right ascension and declination, radians.
    """
    return _icrs_to_cirs(ra_deg, dec_deg, _astrom(t, site))


def cirs_to_altaz(ri_rad, di_rad, t, site):
    """Observed altitude and azimuth (deg) of CIRS positions (radians, from
    :func:`icrs_to_cirs`) at ``t`` seen from ``site``: ``radec_to_altaz(ra,
    dec, t, site)`` is ``cirs_to_altaz(*icrs_to_cirs(ra, dec, t, site), t,
    site)``."""
    return _cirs_to_altaz(np.asarray(ri_rad, dtype=float), np.asarray(di_rad, dtype=float),
                          _astrom(t, site))


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


def planet_radec(t, name):
    """Geocentric astrometric RA, Dec (deg) and distance (au) of a planet.

    Heliocentric positions from ERFA ``plan94`` (Simon et al. 1994, J2000
    equatorial; a few arcsec for Venus to Saturn in 1800-2200) at the
    light-emission time, minus the Earth's heliocentric position from
    ``epv00``.  The result is an astrometric place: :func:`radec_to_altaz`
    adds aberration and refraction as for a star.  The diurnal parallax
    (< 35 arcsec, Venus at its nearest) is added by :func:`planets_altaz`.

    Parameters
    ----------
    t : ObsTime
    name : str
        One of :data:`PLANETS`.

    Returns
    -------
    ra_deg, dec_deg, dist_au : float
    helio_au : float
        The planet's distance from the Sun (for its magnitude).
    """
    if name not in PLANETS:
        raise ValueError(f"planet {name!r} is not one of {', '.join(PLANETS)}")
    return _planet_radec(t, name, _earth_helio(t))


def _earth_helio(t):
    """Heliocentric position of the Earth (au, ICRS-aligned; ERFA ``epv00``)."""
    pvh, _ = erfa.epv00(t.tt1, t.tt2)
    return np.asarray(pvh["p"], dtype=float)


def _planet_radec(t, name, earth):
    """:func:`planet_radec` given the Earth's heliocentric position ``earth`` (au)."""
    tau = 0.0
    for _ in range(_LIGHT_TIME_ITER):
        pv = erfa.plan94(t.tt1, t.tt2 - tau, PLANETS[name])   # (2, 3): p, v
        helio = np.asarray(pv[0], dtype=float)
        geo = helio - earth
        tau = float(np.linalg.norm(geo)) / erfa.DC
    ra, dec = _vec_to_radec(geo)
    return ra, dec, float(np.linalg.norm(geo)), float(np.linalg.norm(helio))


def planets_altaz(t, site):
    """Observed altitude and azimuth (deg) of Venus, Mars, Jupiter and Saturn.

    The topocentric altitude is the geocentric one lowered by the
    horizontal parallax (solar parallax over the distance in au) times
    cos(alt), as for the Moon in :func:`sun_moon_altaz`.  The tests compare
    the positions with astropy's ``get_body`` (within 10 arcsec).

    Returns
    -------
    dict
        Planet name -> ``(alt_deg, az_deg)``, for every planet of
        :data:`PLANETS`, above the horizon or not.
    """
    earth = _earth_helio(t)
    pos = [_planet_radec(t, n, earth) for n in PLANETS]
    alt, az = radec_to_altaz(np.array([p[0] for p in pos]), np.array([p[1] for p in pos]),
                             t, site)
    dist = np.array([p[2] for p in pos])
    alt = alt - _SOLAR_PARALLAX_DEG / dist * np.cos(np.radians(alt))
    return {n: (float(a), float(z)) for n, a, z in zip(PLANETS, alt, az)}


def planet_separation(alt_deg, az_deg, planets, *, min_alt_deg=0.0):
    """Angular distance (deg) from each position to the nearest planet above ``min_alt_deg``.

    Computed from unit vectors (the arc cosine of the largest dot product),
    good to 1e-6 deg, so that the trigonometry of thousands of stars is done
    once whatever the number of planets.

    Parameters
    ----------
    alt_deg, az_deg : array_like
    planets : dict
        From :func:`planets_altaz`.
    min_alt_deg : float
        Planets lower than this are ignored.

    Returns
    -------
    ndarray
        ``inf`` where no planet is up.
    """
    alt = np.radians(np.asarray(alt_deg, dtype=float))
    up = [(np.radians(a), np.radians(z)) for a, z in planets.values() if a > min_alt_deg]
    if not up:
        return np.full(alt.shape, np.inf)
    az = np.radians(np.asarray(az_deg, dtype=float))
    ca = np.cos(alt)
    star = (ca * np.cos(az), ca * np.sin(az), np.sin(alt))
    dot = np.full(alt.shape, -1.0)
    for pa, pz in up:
        pv = (np.cos(pa) * np.cos(pz), np.cos(pa) * np.sin(pz), np.sin(pa))
        dot = np.maximum(dot, star[0] * pv[0] + star[1] * pv[1] + star[2] * pv[2])
    return np.degrees(np.arccos(np.clip(dot, -1.0, 1.0)))


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


def _header_site(header, keys, default_h):
    """``(lat, lon, h)`` from header cards, or None (with a warning) if invalid or out of range."""
    from allsky_camera.camera.config import RANGES, check_range
    from allsky_camera.exceptions import ConfigError

    out = []
    for key, name, default in zip(keys, ("site.lat_deg", "site.lon_deg", "site.height_m"),
                                  (None, None, default_h)):
        value = header.get(key, default)
        try:
            if isinstance(value, (bool, np.bool_)):
                raise TypeError("a logical value")
            x = float(value)
            check_range(x, f"header card {key}", "site", *RANGES[name])
        except (TypeError, ValueError, ConfigError) as err:
            log.warning("header card %s = %r is not a valid %s (%s); using the camera "
                        "configuration's site: fix the header or set site.prefer_header: false",
                        key, value, name, err)
            return None
        out.append(x)
    return tuple(out)


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
                vals = _header_site(header, (klat, klon, kalt), h)
                if vals is not None:
                    lat, lon, h = vals
                    source = "header"
                    break
    return Site(lon, lat, h, site_cfg.pressure_bar * 1000.0, site_cfg.temperature_c,
                site_cfg.humidity, site_cfg.wavelength_um), source
