"""The simulated sky's own light: the dark-sky gradient, twilight and moonlight.

:func:`render_sky` gives the dark sky (:func:`sky_surface_brightness`, a
smooth brightening toward the horizon) in V mag/arcsec^2 and in ADU per
pixel; :class:`SkyLight` and :func:`sky_light_adu` add twilight or
moonlight; :func:`sky_mag_map` turns the final sky signal back into a
surface-brightness map for the truth.  Clouds dim and light up this sky in
:mod:`allsky_camera.sim.clouds`.

Angles in degrees (azimuth north through east), surface brightness in V
mag/arcsec^2, signal in ADU per pixel in the exposure, solid angles in sr.
Maps are indexed ``image[y, x]`` (0-based, x the fast axis).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from allsky_camera.exceptions import ConfigError
from allsky_camera.sim.geometry import ARCSEC2_PER_SR, HORIZON_ZD_DEG
from allsky_camera.stages.photmodel import airmass

#: Exponent of the sky-brightness law (see :func:`sky_surface_brightness`):
#: the sky flux rises as (zd / 90 deg)^3 from its zenith to its horizon
#: value, flat near the zenith and steep near the horizon as in real
#: all-sky frames.  A shape choice of the simulator; the two end values
#: come from the camera configuration.
SKY_SHAPE_EXPONENT = 3.0
#: Sky light kinds :class:`SkyLight` renders.
SKY_LIGHT_KINDS = ("twilight", "moon")
#: Twilight: the added light falls off exponentially with the angular
#: distance from the (set) Sun, with this scale (deg): bright near the
#: horizon under the Sun, some 10x fainter at the zenith for a Sun 7 deg down.
TWILIGHT_SCALE_DEG = 40.0
#: Moonlight: Rayleigh scattering (1 + cos^2 of the angle from the Moon)
#: times the airmass, plus a halo (aerosol forward scattering) of this
#: e-folding radius (deg) and this weight relative to the Rayleigh part.
MOON_HALO_DEG = 8.0
MOON_HALO_WEIGHT = 5.0


@dataclasses.dataclass(frozen=True)
class SkyLight:
    """Light added to the night sky: twilight or moonlight, for :func:`simulate`.

    Attributes
    ----------
    kind : str
        ``twilight`` (the Sun below the horizon) or ``moon``.
    zenith_ratio : float
        Added surface brightness at the zenith over the dark sky's zenith
        surface brightness (e.g. 20: the zenith is 3.3 mag brighter).
    alt_deg, az_deg : float, optional
        The source's position, deg; None: the Sun's or the Moon's at the
        exposure time (:func:`allsky_camera.camera.coords.sun_moon_altaz`).
    """

    kind: str
    zenith_ratio: float
    alt_deg: float | None = None
    az_deg: float | None = None

    def __post_init__(self):
        if self.kind not in SKY_LIGHT_KINDS:
            raise ConfigError(f"sky light kind {self.kind!r}: choose one of "
                              f"{', '.join(SKY_LIGHT_KINDS)}")
        if not (math.isfinite(self.zenith_ratio) and self.zenith_ratio >= 0.0):
            raise ConfigError(f"sky light zenith_ratio {self.zenith_ratio}: give a number >= 0")


def sky_surface_brightness(zd_deg, zenith_mag, horizon_mag):
    """Sky surface brightness (V mag/arcsec^2) at zenith distance ``zd_deg`` (deg).

    Linear in flux with ``(zd / 90)^3``:
    ``F(zd) = F_zen + (F_hor - F_zen) (zd / 90)^3`` where ``F = 10**(-0.4 mu)``.
    It equals ``zenith_mag`` at the zenith and ``horizon_mag`` at the
    horizon, is flat near the zenith and brightens fastest toward the
    horizon (a smooth stand-in for the van Rhijn airglow law and light
    pollution).  Beyond the horizon (zd > 90, for a camera that sees below
    it) the same law continues.
    """
    q = np.asarray(zd_deg, dtype=float) / HORIZON_ZD_DEG
    f_zen = 10.0 ** (-0.4 * zenith_mag)
    f_hor = 10.0 ** (-0.4 * horizon_mag)
    return -2.5 * np.log10(f_zen + (f_hor - f_zen) * q ** SKY_SHAPE_EXPONENT)


def render_sky(zd_deg, omega_sr, on_sky, zenith_mag, horizon_mag, zp, exptime):
    """True dark sky in V mag/arcsec^2 and in ADU per pixel.

    Parameters
    ----------
    zd_deg, omega_sr, on_sky : ndarray, shape (ny, nx)
        From :func:`allsky_camera.sim.geometry.sky_geometry` (deg, sr, bool).
    zenith_mag, horizon_mag : float
        Sky at the zenith and at the horizon, V mag/arcsec^2.
    zp : float
        Total-flux zeropoint, mag for 1 ADU/s.
    exptime : float
        Exposure time, s.

    Returns
    -------
    sky_mag : ndarray of float32
        :func:`sky_surface_brightness`, NaN off the sky.
    sky_adu : ndarray of float64
        ``10**(-0.4 (mu - zp)) * exptime * omega_arcsec2`` per pixel; 0 off
        the sky.
    """
    mu = np.full(zd_deg.shape, np.nan)
    mu[on_sky] = sky_surface_brightness(zd_deg[on_sky], zenith_mag, horizon_mag)
    adu = np.zeros(zd_deg.shape)
    adu[on_sky] = (10.0 ** (-0.4 * (mu[on_sky] - zp)) * exptime
                   * omega_sr[on_sky] * ARCSEC2_PER_SR)
    return mu.astype(np.float32), adu


def sky_mag_map(sky_adu, omega_sr, on_sky, zp, exptime):
    """Surface brightness of a sky signal: the inverse of :func:`render_sky`'s flux law.

    Parameters
    ----------
    sky_adu, omega_sr, on_sky : ndarray, shape (ny, nx)
        Sky signal (ADU per pixel in the exposure), pixel solid angle (sr)
        and the pixels that see the sky.
    zp : float
        Total-flux zeropoint, mag for 1 ADU/s.
    exptime : float
        Exposure time, s.

    Returns
    -------
    ndarray of float32, shape (ny, nx)
        ``zp - 2.5 log10(sky_adu / exptime / omega_arcsec2)``, V
        mag/arcsec^2; NaN off the sky, +inf where the sky gives no light (an
        opaque cloud that scatters none).
    """
    out = np.full(sky_adu.shape, np.nan, dtype=np.float32)
    lit = on_sky & (sky_adu > 0)
    out[on_sky] = np.inf
    out[lit] = zp - 2.5 * np.log10(sky_adu[lit] / exptime / (omega_sr[lit] * ARCSEC2_PER_SR))
    return out


def sky_light_shape(light, alt_deg, az_deg, src_alt_deg, src_az_deg):
    """Relative surface brightness of twilight or moonlight, 1 at the zenith.

    Twilight falls off as ``exp(-d / TWILIGHT_SCALE_DEG)`` with the angular
    distance ``d`` from the Sun; moonlight is Rayleigh scattering
    ``(1 + cos^2 d)`` times the Kasten & Young airmass of the sky position,
    times ``1 + MOON_HALO_WEIGHT exp(-d / MOON_HALO_DEG)``.

    Parameters
    ----------
    light : SkyLight
    alt_deg, az_deg : ndarray
        Sky positions, deg.
    src_alt_deg, src_az_deg : float
        The Sun's (twilight) or the Moon's position, deg.

    Returns
    -------
    ndarray, the shape of ``alt_deg``
    """
    from allsky_camera.camera.coords import angular_sep

    def shape(alt, az):
        sep = angular_sep(az, alt, src_az_deg, src_alt_deg)
        if light.kind == "twilight":
            return np.exp(-sep / TWILIGHT_SCALE_DEG)
        rayleigh = (1.0 + np.cos(np.radians(sep)) ** 2) * airmass(
            HORIZON_ZD_DEG - np.maximum(alt, 0.0))
        return rayleigh * (1.0 + MOON_HALO_WEIGHT * np.exp(-sep / MOON_HALO_DEG))

    alt = np.asarray(alt_deg, dtype=float)
    return shape(alt, np.asarray(az_deg, dtype=float)) / shape(np.array(90.0), np.array(0.0))


def light_source_altaz(light, time, site):
    """Position of the Sun (twilight) or the Moon lighting the sky, deg.

    Parameters
    ----------
    light : SkyLight
        Its ``alt_deg``, ``az_deg`` when both are given.
    time : ObsTime
        The exposure; used only when the position is not given.
    site : allsky_camera.camera.coords.Site
        Where the camera stands.

    Returns
    -------
    alt_deg, az_deg : float
    """
    if light.alt_deg is not None and light.az_deg is not None:
        return light.alt_deg, light.az_deg
    from allsky_camera.camera.coords import sun_moon_altaz

    eph = sun_moon_altaz(time, site)
    key = "sun" if light.kind == "twilight" else "moon"
    return eph[f"{key}_alt"], eph[f"{key}_az"]


def sky_light_adu(light, alt_deg, az_deg, omega_sr, source_altaz, *, zenith_mag, zp, exptime):
    """Twilight or moonlight at sky positions, ADU per pixel in the exposure.

    Parameters
    ----------
    light : SkyLight
    alt_deg, az_deg, omega_sr : ndarray, one shape
        Where each pixel looks (deg) and its solid angle (sr).
    source_altaz : (float, float)
        The Sun's or the Moon's position, deg (:func:`light_source_altaz`).
    zenith_mag : float
        The dark sky at the zenith, V mag/arcsec^2.
    zp : float
        Total-flux zeropoint, mag for 1 ADU/s.
    exptime : float
        Exposure time, s.

    Returns
    -------
    ndarray, the shape of ``alt_deg``
        ``zenith_ratio`` times the dark zenith sky's flux per pixel, times
        :func:`sky_light_shape`.
    """
    zenith_flux = 10.0 ** (-0.4 * (zenith_mag - zp)) * exptime * ARCSEC2_PER_SR   # ADU per sr
    return (light.zenith_ratio * zenith_flux * omega_sr
            * sky_light_shape(light, alt_deg, az_deg, *source_altaz))
