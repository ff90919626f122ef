"""What lights the sky of an exposure: SKYSTAT 'dark', 'moon', 'twilight', 'day'.

The status comes from the Sun's and the Moon's altitudes (the ephemeris of
:func:`allsky_camera.camera.coords.sun_moon_altaz`) and is refined by the measured
sky level near the zenith: a frame whose Sun is just below the twilight limit
or whose Moon is a thin crescent but whose sky is as dark as a moonless
night's is 'dark'.  On a 'twilight' or 'day' frame too few stars mean that the
sky is too bright, not that it is cloudy (:func:`too_bright`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Square arcseconds per steradian.
ARCSEC2_PER_SR = (180.0 / np.pi * 3600.0) ** 2
#: The statuses, brightest last.
STATUSES = ("dark", "moon", "twilight", "day")


@dataclass(frozen=True)
class SkyState:
    """The sky's status and what it was decided from.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES`.
    sun_alt, moon_alt, moon_illum : float
        Sun and Moon altitude (deg) and the Moon's illuminated fraction.
    zenith_mag : float
        Measured sky near the zenith, V mag/arcsec^2 (NaN: not measured).
    why : str
        One line saying what decided it.
    """

    status: str
    sun_alt: float
    moon_alt: float
    moon_illum: float
    zenith_mag: float
    why: str

    def header_cards(self):
        """``(keyword, value, comment)`` cards for the catalog header."""
        zm = round(float(self.zenith_mag), 3) if np.isfinite(self.zenith_mag) else "NaN"
        return [("SKYSTAT", self.status, "sky: dark, moon, twilight or day"),
                ("SKYZENMG", zm, "[mag/arcsec2] sky near the zenith (star annuli)"),
                ("SKYWHY", self.why[:68], "what decided SKYSTAT")]


def zenith_sky_mag(sky_adu, zd_deg, omega_sr, exptime, zp_total, max_zd_deg):
    """Sky surface brightness near the zenith from the stars' sky annuli.

    Parameters
    ----------
    sky_adu : ndarray
        Sky per pixel around each star (annulus median), ADU.
    zd_deg : ndarray
        The stars' zenith distances, deg.
    omega_sr : ndarray
        Solid angle of a pixel at each star, sr.
    exptime : float
        Seconds.
    zp_total : float
        Total-flux zeropoint at the zenith, mag for 1 ADU/s.
    max_zd_deg : float
        Stars within this zenith distance are used.

    Returns
    -------
    float
        V mag/arcsec^2 of the median sky rate; NaN when no star qualifies
        or the sky is not positive.
    """
    sky, zd, om = (np.asarray(a, dtype=float) for a in (sky_adu, zd_deg, omega_sr))
    ok = np.isfinite(sky) & (zd <= max_zd_deg) & (om > 0)
    if not ok.any():
        return float("nan")
    rate = float(np.median(sky[ok] / exptime / (om[ok] * ARCSEC2_PER_SR)))
    return float(zp_total - 2.5 * np.log10(rate)) if rate > 0 else float("nan")


def classify(ephem, zenith_mag, cfg):
    """The sky's status.

    Parameters
    ----------
    ephem : dict
        ``sun_alt``, ``moon_alt`` (deg) and ``moon_illum`` (0-1).
    zenith_mag : float
        Measured sky near the zenith, V mag/arcsec^2 (NaN: unknown).
    cfg : config.SkyStatus

    Returns
    -------
    SkyState
    """
    sun, moon, ill = (float(ephem[k]) for k in ("sun_alt", "moon_alt", "moon_illum"))
    dark_sky = bool(np.isfinite(zenith_mag) and zenith_mag > cfg.dark_sky_mag)
    if sun > cfg.sun_day_alt_deg:
        status, why = "day", f"Sun at {sun:.1f} deg"
    elif sun > cfg.sun_twilight_alt_deg:
        status, why = "twilight", f"Sun at {sun:.1f} deg"
    elif moon > cfg.moon_min_alt_deg and ill > cfg.moon_min_illum:
        status, why = "moon", f"Moon at {moon:.1f} deg, {100 * ill:.0f} % lit"
    else:
        status, why = "dark", f"Sun at {sun:.1f} deg, Moon at {moon:.1f} deg"
    if status in ("twilight", "moon") and dark_sky:
        status, why = "dark", f"{why} but the sky is dark ({zenith_mag:.2f} mag/arcsec2)"
    return SkyState(status, sun, moon, ill, float(zenith_mag), why)


def daylight_reason(state):
    """Why nothing is measured on the stars of a 'day' frame ('' otherwise).

    Stars cannot be measured in daylight: a 'day' frame whose stars seem to
    match the catalog has a clock or site that is wrong, so its zeropoint
    and transparency are not claimed.

    Parameters
    ----------
    state : SkyState

    Returns
    -------
    str
    """
    if state.status != "day":
        return ""
    return (f"daylight ({state.why}): no star photometry; if the frame shows stars, "
            "check DATE-OBS, the camera clock and header.utc_offset_hours")


def too_bright(status, n_voting, min_voting):
    """True when a twilight or day sky leaves too few stars to judge clouds."""
    return status in ("twilight", "day") and n_voting < min_voting
