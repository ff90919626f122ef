"""Simulated raw exposures of an all-sky camera, with known truth.

The command line is ``py/allsky_camera/ac_simulate.py``.
:func:`simulate` renders the raw frame a camera would record at a given
time: Hipparcos stars placed by a perturbed copy of the camera's
astrometric template, a sky whose surface brightness brightens smoothly
toward the horizon, optional clouds (a transmission map over the sky that
dims the stars and brightens the sky beneath, as moonlight or city light
on cloud would, :class:`Clouds`) and satellite or aircraft streaks
(:class:`Streak`), Poisson and read noise, a bias pedestal and hot pixels,
rounded, clipped and cast to the camera's integer type.  Everything the
frame was made from (the true camera model and zeropoint, star positions
and fluxes, the sky map, the cloud transmission, the streaks, the hot
pixels) is returned in a :class:`Truth`
and written beside the frame by :func:`write_simulation`.  The same seed
and arguments give the same frame, bit for bit.

Every physical setting comes from the camera configuration: its
``simulation`` section (exposure time, gain, read noise, bias, sky, PSF,
hot pixels, faintest star, horizon, default time) and the rest of the
camera (sensor size and saturation, header cards, site, template model,
photometric aperture and nominal zeropoint).

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`: 0-based,
``x`` is the column (fast axis, ``image[y, x]``), pixel centres at
integers, so pixel ``(i, j)`` covers ``i - 0.5 <= x < i + 0.5``.

Stars follow the camera's photometric model (:mod:`allsky_camera.stages.photmodel`):
extinction ``k (X - 1)`` with the Kasten & Young airmass, a colour term
``c (B - V)`` and lens vignetting ``v(zd)``, all zero unless the
``simulation`` section or the arguments set them.  Not simulated: the Moon
and twilight, flat field.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import os
import time as _time
from pathlib import Path

import numpy as np

from allsky_camera.camera.camera_model import CameraModel
from allsky_camera.camera.coords import ObsTime, parse_time, radec_to_altaz, site_from_config
from allsky_camera.exceptions import ConfigError, OutputError
from allsky_camera.stages.photmodel import airmass, vignetting_mag

log = logging.getLogger(__name__)

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2) (exact for a Gaussian profile).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Stamps reach ``ceil(STAMP_SIGMAS * sigma) + 1`` pixels from the star's
#: nearest pixel; beyond that a Gaussian holds < 1e-4 of its flux per axis
#: (the project's specification of the simulator).
STAMP_SIGMAS = 4.0
#: Exponent of the sky-brightness law (see :func:`sky_surface_brightness`):
#: the sky flux rises as (zd / 90 deg)^3 from its zenith to its horizon
#: value, flat near the zenith and steep near the horizon as in real
#: all-sky frames.  A shape choice of the simulator; the two end values
#: come from the camera configuration.
SKY_SHAPE_EXPONENT = 3.0
#: Zenith distance of the horizon, deg (definition).
HORIZON_ZD_DEG = 90.0
#: Square arcseconds per steradian, (180 / pi * 3600)^2 (unit conversion).
ARCSEC2_PER_SR = (180.0 / math.pi * 3600.0) ** 2
#: Variance (pixel^2) by which an aperture sum on the rendered image sees a
#: Gaussian star widened: the pixel integration of the PSF (a one-pixel box,
#: variance 1/12) and the aperture's exact-overlap weights, which treat each
#: pixel's light as spread uniformly over the pixel (another 1/12).  Derived
#: from the rendering, checked against numeric sums of rendered stamps in
#: tests/test_simulate.py (0.002 mag on average, 0.007 at worst, for the MDM
#: PSF in a 2-pixel aperture; the unwidened formula is 0.05 mag off).
PIXEL_VARIANCE_PX2 = 2.0 / 12.0
#: Step (pixels) of the radial tables of zenith distance and pixel solid
#: angle interpolated over the image: both are smooth in the radius, and
#: linear interpolation on this step agrees with the model to ~1e-7.
_RADIAL_STEP_PX = 0.25

#: Cloud layers :func:`cloud_transmission` draws; ``none`` is a clear sky.
CLOUD_KINDS = ("none", "patches", "band", "quarter", "half", "three-quarter", "overcast",
               "thin", "haze")
#: Cloud geometry: shape choices of the simulator, sized so that each kind
#: covers a distinct, substantial part of an all-sky frame (deg).
#: ``quarter``: the azimuth quadrant within this of ``Clouds.az_deg``, a
#: quarter of the sky by solid angle at every altitude.
QUARTER_HALF_WIDTH_DEG = 45.0
#: ``half`` and ``three-quarter``: the same, azimuths within 90 and 135 deg of
#: ``Clouds.az_deg`` (half and three quarters of the sky).
SECTOR_HALF_WIDTH_DEG = {"quarter": QUARTER_HALF_WIDTH_DEG, "half": 90.0,
                         "three-quarter": 135.0}
#: ``band``: within this angular distance of the great circle through the
#: zenith at azimuth ``Clouds.az_deg`` (a band 20 deg wide, ~17 % of the sky).
BAND_HALF_WIDTH_DEG = 10.0
#: ``patches``: this many round clouds ...
N_CLOUD_PATCHES = 4
#: ... centred at altitudes drawn uniformly in this range (deg) ...
PATCH_ALT_RANGE_DEG = (25.0, 80.0)
#: ... at azimuths within this of ``Clouds.az_deg`` (deg) ...
PATCH_AZ_SPREAD_DEG = 120.0
#: ... with radii drawn uniformly in this range (deg).
PATCH_RADIUS_RANGE_DEG = (10.0, 25.0)
#: ``thin``: a structured thin cloud over the ``quarter`` footprint, its
#: transmission varying between ``transmission`` and ``transmission_max``
#: as a sum of this many random plane waves on the sky ...
THIN_N_WAVES = 6
#: ... of this wavelength (deg): cloud structure of ~10 deg, as in real
#: moonlit cirrus and altocumulus seen by all-sky cameras.
THIN_WAVELENGTH_DEG = 20.0
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


# ---------------------------------------------------------------- inputs
@dataclasses.dataclass(frozen=True)
class Clouds:
    """A cloud layer for :func:`simulate`.

    Attributes
    ----------
    kind : str
        One of :data:`CLOUD_KINDS`: ``patches`` (:data:`N_CLOUD_PATCHES`
        round clouds at random places), ``band`` (a strip along a great
        circle through the zenith), ``quarter`` (one azimuth quadrant, a
        quarter of the sky), ``half`` and ``three-quarter`` (azimuth sectors
        of half and three quarters of the sky), ``overcast`` (the whole
        sky), ``none``.
    transmission : float
        Fraction of the light (stars and sky above the cloud) that passes
        through the cloud, 0-1; 1 outside it.
    brightening : float
        Surface brightness of the cloud itself (moonlight, city light
        scattered toward the camera) over that of the clear sky it hides:
        a pixel's sky becomes ``sky * (t + brightening * (1 - t))``, so a
        cloud with ``brightening > 1`` brightens the sky beneath it
        everywhere, most where it is thickest.  The default, 1.25, is a
        modest brightening (0.24 mag under thick cloud); moonlit or city-lit
        clouds are brighter (2 and more), clouds at a dark site darker (< 1).
    az_deg : float
        Azimuth the cloud is centred on (``quarter``, ``band``, ``patches``,
        ``thin``), deg, north through east.
    transmission_max : float, optional
        ``thin`` only: the transmission varies with structure between
        ``transmission`` (thickest) and this (thinnest), e.g. 0.5 and 0.9.
        ``haze`` is a uniform ``transmission`` over the whole sky, without
        structure (give ``brightening`` 1: haze does not light up).
    """

    kind: str
    transmission: float = 0.2
    brightening: float = 1.25
    az_deg: float = 45.0
    transmission_max: float | None = None

    def __post_init__(self):
        if self.kind not in CLOUD_KINDS:
            raise ConfigError(f"clouds kind {self.kind!r}: choose one of "
                              f"{', '.join(CLOUD_KINDS)}")
        if not 0.0 <= self.transmission <= 1.0:
            raise ConfigError(f"clouds transmission {self.transmission}: give a fraction "
                              "between 0 and 1")
        if not (math.isfinite(self.brightening) and self.brightening >= 0.0):
            raise ConfigError(f"clouds brightening {self.brightening}: give a number >= 0")
        if self.kind == "thin" and not (self.transmission_max is not None
                                        and self.transmission <= self.transmission_max <= 1.0):
            raise ConfigError(f"thin clouds need transmission_max between the transmission "
                              f"{self.transmission} and 1, not {self.transmission_max}")


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


#: Kasten & Young (1989, Applied Optics 28, 4735) airmass formula constants.
_KY_A, _KY_B, _KY_C = 0.50572, 96.07995, 1.6364


def _airmass(zd_deg):
    """Kasten & Young (1989) relative airmass at zenith distance ``zd_deg`` (deg)."""
    z = np.asarray(zd_deg, dtype=float)
    return 1.0 / (np.cos(np.radians(z)) + _KY_A * (_KY_B - z) ** -_KY_C)


def sky_light_shape(light, alt_deg, az_deg, src_alt_deg, src_az_deg):
    """Relative surface brightness of twilight or moonlight, 1 at the zenith.

    Parameters
    ----------
    light : SkyLight
    alt_deg, az_deg : ndarray
        Sky positions, deg.
    src_alt_deg, src_az_deg : float
        The Sun's (twilight) or the Moon's position, deg.
    """
    from allsky_camera.camera.coords import angular_sep

    def shape(alt, az):
        sep = angular_sep(az, alt, src_az_deg, src_alt_deg)
        if light.kind == "twilight":
            return np.exp(-sep / TWILIGHT_SCALE_DEG)
        rayleigh = (1.0 + np.cos(np.radians(sep)) ** 2) * _airmass(90.0 - np.maximum(alt, 0.0))
        return rayleigh * (1.0 + MOON_HALO_WEIGHT * np.exp(-sep / MOON_HALO_DEG))

    alt = np.asarray(alt_deg, dtype=float)
    return shape(alt, np.asarray(az_deg, dtype=float)) / shape(np.array(90.0), np.array(0.0))


@dataclasses.dataclass(frozen=True)
class Streak:
    """A straight satellite or aircraft streak for :func:`simulate`.

    Attributes
    ----------
    x1, y1, x2, y2 : float
        End points, pixels (0-based, pixel centres at integers); they may lie
        off the image, so that the streak leaves it.
    width_px : float
        FWHM of the Gaussian profile across the streak, pixels.
    peak_adu : float
        Signal on the streak's centre line, ADU per pixel in the exposure.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    width_px: float
    peak_adu: float

    def __post_init__(self):
        if not (self.width_px > 0 and self.peak_adu >= 0):
            raise ConfigError(f"streak {self}: width_px must be > 0 and peak_adu >= 0")


# ---------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True, eq=False)
class Truth:
    """What a simulated exposure was made from.

    Attributes
    ----------
    model : CameraModel
        The true camera model: the template with the injected zenith shift
        and rotation.
    zp_true : float
        True total-flux zeropoint, mag for 1 ADU/s: a star of magnitude V
        gives ``10**(-0.4 (V - zp_true)) * exptime`` ADU in total.
    exptime : float
        Exposure time, s.
    time : ObsTime
        Start of the exposure (UTC), as parsed back from the header's date
        card (whole seconds).
    stars : astropy.table.Table
        One row per rendered star: ``HIP``; ``RA``, ``DEC`` (deg, ICRS at
        the epoch); ``VMAG``; ``x``, ``y`` (true pixel position, 0-based,
        centres at integers); ``alt_deg``, ``az_deg`` (apparent, refracted);
        ``flux_adu`` (total ADU in the exposure); ``fwhm_px``; ``ef_aper``
        (fraction of the flux that exact-overlap photometry in a circle of
        radius ``photometry.aper_radius_px`` centred on the star measures on
        the noiseless image, :func:`enclosed_fraction`); ``peak_adu``
        (brightest pixel of the star's own noiseless light, ADU, sky and
        bias excluded); ``saturated`` (a pixel whose centre lies within
        ``aper_radius_px`` of the star is at ``saturation_adu`` in the raw
        frame, hot pixels excluded); ``transmission`` (the cloud's at the
        star, 1 on a clear sky: ``flux_adu`` is the flux that reached the
        camera, already multiplied by it).
    sky_mag : ndarray of float32, shape (ny, nx)
        True sky surface brightness, V mag/arcsec^2, clouds included; NaN
        off the sky.
    sky_adu : ndarray of float32, shape (ny, nx)
        True sky signal, ADU per pixel in the exposure, bias excluded; 0 off
        the sky.
    hot_pixels : ndarray of bool, shape (ny, nx)
        Pixels set to a hot value.
    zp_aper_true : float
        ``zp_true + 2.5 log10(EF)`` with EF the aperture fraction of the
        zenith PSF (:func:`enclosed_fraction`): the zenith zeropoint of the
        flux inside the photometric aperture, mag for 1 ADU/s.  Clouds do
        not change it.
    transmission : ndarray of float32, shape (ny, nx), or None
        Cloud transmission per pixel (0-1), NaN off the sky; None for a
        clear sky.
    streaks : tuple of Streak
        The streaks injected (their light falls only on the sky).
    ext_coef, colour_term, vignetting : float, float, tuple of float
        The photometric model rendered: extinction k (mag/airmass), colour
        term c (mag per mag B-V) and the v(zd) coefficients of
        ``(zd/90)^2, (zd/90)^4, ...`` (mag); ``zp_true`` is the model's
        zenith zeropoint, so a star gives
        ``10**(-0.4 (V - zp_true + k (X - 1) + c (B - V) + v(zd))) * exptime``
        ADU (B-V missing: 0).
    """

    model: CameraModel
    zp_true: float
    exptime: float
    time: ObsTime
    stars: object
    sky_mag: np.ndarray
    sky_adu: np.ndarray
    hot_pixels: np.ndarray
    zp_aper_true: float
    transmission: np.ndarray | None = None
    streaks: tuple = ()
    extras: object = None      # sim_extras.ExtrasTruth when extras were rendered
    ext_coef: float = 0.0
    colour_term: float = 0.0
    vignetting: tuple = ()


@dataclasses.dataclass(frozen=True, eq=False)
class SimulatedExposure:
    """A simulated raw frame, its header and its truth.

    Attributes
    ----------
    image : ndarray, shape (ny, nx)
        Raw data (see :func:`raw_dtype`), indexed ``image[y, x]``.
    header : astropy.io.fits.Header
        Raw header: exposure time and start time in the camera's cards,
        ``INSTRUME`` when the camera names one, and the ``SIM*`` cards.
    truth : Truth
    """

    image: np.ndarray
    header: object
    truth: Truth


# ---------------------------------------------------------------- small laws
def raw_dtype(saturation_adu):
    """Integer type of a raw frame saturating at ``saturation_adu`` ADU.

    ``uint8`` up to 255, ``uint16`` up to 65535, else ``int32``.
    """
    if saturation_adu <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if saturation_adu <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


def fwhm_at(zd_deg, fwhm_zenith_px, fwhm_horizon_px):
    """PSF FWHM in pixels at zenith distance ``zd_deg`` (deg).

    ``fwhm_zenith + (fwhm_horizon - fwhm_zenith) * (zd / 90)^2``.
    """
    q = np.asarray(zd_deg, dtype=float) / HORIZON_ZD_DEG
    return fwhm_zenith_px + (fwhm_horizon_px - fwhm_zenith_px) * q * q


def enclosed_fraction(radius_px, sigma_px, *, pixelated=True):
    """Fraction of a circular Gaussian star's flux inside a circular aperture.

    ``1 - exp(-R^2 / (2 s^2))`` with the aperture centred on the star.
    With ``pixelated`` (the default, used for the truth and the zeropoint)
    ``s^2 = sigma^2 + PIXEL_VARIANCE_PX2``: the fraction that exact-overlap
    aperture photometry measures on the rendered, pixel-integrated image;
    without, ``s = sigma``: the continuous Gaussian's.

    Parameters
    ----------
    radius_px : float
        Aperture radius, pixels.
    sigma_px : array_like
        Gaussian sigma of the PSF, pixels.
    pixelated : bool
        See above.
    """
    var = np.asarray(sigma_px, dtype=float) ** 2
    if pixelated:
        var = var + PIXEL_VARIANCE_PX2
    return 1.0 - np.exp(-(radius_px ** 2) / (2.0 * var))


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


def truth_path(path):
    """Path of the truth file beside raw frame ``path``: ``<stem>-truth.fits``."""
    from allsky_camera.stages.io import output_stem

    path = Path(path)
    return path.with_name(f"{output_stem(path)}-truth.fits")


def _camera_clock_string(t, utc_offset_hours):
    """ISO time, rounded to whole seconds, of ``t`` on a clock ``utc_offset_hours`` ahead of UTC."""
    utc = _dt.datetime.fromisoformat(t.iso_utc)
    local = utc + _dt.timedelta(hours=utc_offset_hours)
    local = (local + _dt.timedelta(microseconds=500_000)).replace(microsecond=0)
    return local.isoformat(timespec="seconds")


# ---------------------------------------------------------------- geometry
def _sky_geometry(model, nx, ny, horizon_alt_deg):
    """Zenith distance and solid angle of every pixel, and which pixels see the sky.

    Returns
    -------
    zd_deg : ndarray, shape (ny, nx)
        Zenith distance of each pixel centre, deg.
    omega_sr : ndarray, shape (ny, nx)
        Solid angle of each pixel, sr: the model's ``pixel_solid_angle``,
        which depends only on the radius from the optical axis, tabulated
        every ``_RADIAL_STEP_PX`` and interpolated.
    on_sky : ndarray of bool, shape (ny, nx)
        Pixels above ``horizon_alt_deg``; for an untilted model, those
        within the radius of zenith distance ``90 - horizon_alt_deg``.
    """
    yy, xx = np.indices((ny, nx), dtype=float)
    r = np.hypot(xx - model.x0, yy - model.y0)
    r_grid = np.arange(0.0, r.max() + 2 * _RADIAL_STEP_PX, _RADIAL_STEP_PX)
    omega_grid = model.pixel_solid_angle(model.x0 + r_grid, np.full_like(r_grid, model.y0))
    omega = np.interp(r, r_grid, omega_grid)
    if model.tilted:
        alt, _ = model.xy_to_altaz(xx, yy)
        zd = HORIZON_ZD_DEG - alt
        with np.errstate(invalid="ignore"):
            on_sky = alt >= horizon_alt_deg
    else:
        zd = np.interp(r, r_grid, model.theta(r_grid))
        on_sky = r <= float(model.radius(HORIZON_ZD_DEG - horizon_alt_deg))
    on_sky &= np.isfinite(zd) & np.isfinite(omega)
    return zd, omega, on_sky


# ---------------------------------------------------------------- rendering
def stamp_half_width(sigma_px):
    """Half-width in pixels of the square stamp a star of Gaussian ``sigma_px`` is rendered in."""
    return np.ceil(STAMP_SIGMAS * np.asarray(sigma_px, dtype=float)).astype(int) + 1


def _pixel_fractions(centre, sigma, first, npix):
    """Fraction of 1-D Gaussians' flux in pixels ``first, first + 1, ...``.

    ``centre``, ``sigma`` and ``first`` (integer) have shape (n,); returns
    (n, npix): exact integrals over ``[p - 0.5, p + 0.5)`` from differences
    of ``erf`` at the pixel edges.
    """
    from scipy.special import erf

    edges = first[:, None] + np.arange(npix + 1) - 0.5
    cdf = erf((edges - centre[:, None]) / (math.sqrt(2.0) * sigma[:, None]))
    return 0.5 * np.diff(cdf, axis=1)


def _render_stars(shape, x, y, flux, sigma):
    """Noiseless image of circular Gaussian stars, integrated exactly over the pixels.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    x, y : array_like, shape (n,)
        Star positions, pixels (0-based, pixel centres at integers).
    flux : array_like, shape (n,)
        Total flux of each star, ADU (a cloud transmission would multiply
        it before this call).
    sigma : array_like, shape (n,)
        Gaussian sigma of each star, pixels.

    Returns
    -------
    image : ndarray of float64, shape ``shape``
        Sum of the stars, ADU per pixel.  Each star fills a square stamp of
        half-width :func:`stamp_half_width` around its nearest pixel; stamp
        pixels off the image are dropped.  Vectorised over the stars of each
        stamp size and accumulated with ``np.bincount``.
    peak : ndarray, shape (n,)
        Brightest pixel of each star's own stamp, ADU.
    """
    ny, nx = shape
    x, y, flux, sigma = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, y, flux, sigma))
    image = np.zeros(ny * nx)
    peak = np.zeros(x.size)
    if x.size == 0:
        return image.reshape(shape), peak
    ix = np.rint(x).astype(int)
    iy = np.rint(y).astype(int)
    half = stamp_half_width(sigma)
    for h in np.unique(half):            # a handful of stamp sizes
        sel = np.flatnonzero(half == h)
        offs = np.arange(-h, h + 1)
        px = _pixel_fractions(x[sel], sigma[sel], ix[sel] - h, offs.size)    # (n, m)
        py = _pixel_fractions(y[sel], sigma[sel], iy[sel] - h, offs.size)    # (n, m)
        stamps = flux[sel, None, None] * py[:, :, None] * px[:, None, :]    # (n, m, m)
        peak[sel] = stamps.max(axis=(1, 2))
        cols = ix[sel, None, None] + offs[None, None, :]
        rows = iy[sel, None, None] + offs[None, :, None]
        inside = (cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny)
        image += np.bincount((rows * nx + cols)[inside], weights=stamps[inside],
                             minlength=ny * nx)
    return image.reshape(shape), peak


def _render_sky(zd_deg, omega_sr, on_sky, zenith_mag, horizon_mag, zp, exptime):
    """True sky in V mag/arcsec^2 and in ADU per pixel.

    Parameters
    ----------
    zd_deg, omega_sr, on_sky : ndarray, shape (ny, nx)
        From :func:`_sky_geometry` (deg, sr, bool).
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
        the sky.  A cloud's sky brightening would be added to it.
    """
    mu = np.full(zd_deg.shape, np.nan)
    mu[on_sky] = sky_surface_brightness(zd_deg[on_sky], zenith_mag, horizon_mag)
    adu = np.zeros(zd_deg.shape)
    adu[on_sky] = (10.0 ** (-0.4 * (mu[on_sky] - zp)) * exptime
                   * omega_sr[on_sky] * ARCSEC2_PER_SR)
    return mu.astype(np.float32), adu


def cloud_transmission(clouds, alt_deg, az_deg, rng):
    """Transmission (0-1) of a cloud layer at sky positions.

    Parameters
    ----------
    clouds : Clouds or None
        None or kind ``none``: 1 everywhere.
    alt_deg, az_deg : ndarray
        Positions, deg (azimuth north through east).
    rng : numpy.random.Generator
        Draws the ``patches``' places and sizes; evaluate every position that
        must see the same clouds (sky pixels and stars) in one call.

    Returns
    -------
    ndarray of float, the shape of ``alt_deg``
        ``clouds.transmission`` inside the cloud, 1 outside.
    """
    alt = np.asarray(alt_deg, dtype=float)
    az = np.asarray(az_deg, dtype=float)
    if clouds is None or clouds.kind == "none":
        return np.ones_like(alt)
    if clouds.kind in ("overcast", "haze"):
        inside = np.ones(alt.shape, dtype=bool)
    elif clouds.kind == "thin":
        daz = (az - clouds.az_deg + 180.0) % 360.0 - 180.0
        inside = np.abs(daz) < QUARTER_HALF_WIDTH_DEG
        # structure: random plane waves in the direction vector, squashed to [0, 1]
        a, z = np.radians(alt), np.radians(az)
        v = np.stack([np.cos(a) * np.sin(z), np.cos(a) * np.cos(z), np.sin(a)], axis=-1)
        k = 360.0 / THIN_WAVELENGTH_DEG
        field = np.zeros(alt.shape)
        for _ in range(THIN_N_WAVES):
            d = rng.normal(size=3)
            field += np.cos(k * (v @ (d / np.linalg.norm(d))) + rng.uniform(0, 2 * np.pi))
        f = 0.5 + 0.5 * np.tanh(field / np.sqrt(THIN_N_WAVES / 2.0))
        t = clouds.transmission + (clouds.transmission_max - clouds.transmission) * f
        return np.where(inside, t, 1.0)
    elif clouds.kind in SECTOR_HALF_WIDTH_DEG:
        daz = (az - clouds.az_deg + 180.0) % 360.0 - 180.0
        inside = np.abs(daz) < SECTOR_HALF_WIDTH_DEG[clouds.kind]
    elif clouds.kind == "band":
        # angular distance from the great circle through the zenith at az_deg
        a, z = np.radians(alt), np.radians(az - clouds.az_deg)
        dist = np.degrees(np.arcsin(np.abs(np.cos(a) * np.sin(z))))
        inside = dist < BAND_HALF_WIDTH_DEG
    else:       # patches (Clouds validated the kind)
        from allsky_camera.camera.coords import angular_sep

        inside = np.zeros(alt.shape, dtype=bool)
        for _ in range(N_CLOUD_PATCHES):
            c_alt = rng.uniform(*PATCH_ALT_RANGE_DEG)
            c_az = clouds.az_deg + rng.uniform(-PATCH_AZ_SPREAD_DEG, PATCH_AZ_SPREAD_DEG)
            radius = rng.uniform(*PATCH_RADIUS_RANGE_DEG)
            inside |= angular_sep(az, alt, c_az, c_alt) < radius
    return np.where(inside, clouds.transmission, 1.0)


def _sky_light_adu(light, model, on_sky, omega, zenith_mag, zp, exptime, t, camera):
    """Twilight or moonlight per pixel, ADU (0 off the sky)."""
    if light.alt_deg is None or light.az_deg is None:
        from allsky_camera.camera.coords import sun_moon_altaz

        eph = sun_moon_altaz(t, site_from_config(camera.site)[0])
        key = "sun" if light.kind == "twilight" else "moon"
        src = (eph[f"{key}_alt"], eph[f"{key}_az"])
    else:
        src = (light.alt_deg, light.az_deg)
    ys, xs = np.nonzero(on_sky)
    alt, az = model.xy_to_altaz(xs, ys)
    zenith_flux = 10.0 ** (-0.4 * (zenith_mag - zp)) * exptime * ARCSEC2_PER_SR   # ADU per sr
    out = np.zeros(on_sky.shape)
    out[ys, xs] = (light.zenith_ratio * zenith_flux * omega[ys, xs]
                   * sky_light_shape(light, alt, az, *src))
    return out


def _cloudy_sky(sky_adu, trans, brightening):
    """Sky under a cloud, ADU per pixel: the clear sky ``sky_adu`` dimmed by
    the transmission ``trans`` plus the cloud's own light, ``brightening``
    times the clear sky times the cloud's opacity ``1 - trans``."""
    return sky_adu * (trans + brightening * (1.0 - trans))


def render_streaks(shape, streaks):
    """Noiseless image of straight streaks, ADU per pixel.

    Each streak has a Gaussian profile of FWHM ``width_px`` across it and
    ``peak_adu`` on its centre line, uniform along it and cut square at its
    end points (pixel centres sampled, no integration over the pixel).
    Parts off the image are dropped.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    streaks : sequence of Streak

    Returns
    -------
    ndarray of float64, shape ``shape``
    """
    ny, nx = shape
    img = np.zeros(shape)
    for s in streaks:
        dx, dy = s.x2 - s.x1, s.y2 - s.y1
        length = math.hypot(dx, dy)
        if length == 0:
            continue
        ux, uy = dx / length, dy / length
        sigma = s.width_px / FWHM_PER_SIGMA
        pad = STAMP_SIGMAS * sigma + 1.0
        x0 = max(math.floor(min(s.x1, s.x2) - pad), 0)
        x1 = min(math.ceil(max(s.x1, s.x2) + pad) + 1, nx)
        y0 = max(math.floor(min(s.y1, s.y2) - pad), 0)
        y1 = min(math.ceil(max(s.y1, s.y2) + pad) + 1, ny)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        px, py = xx - s.x1, yy - s.y1
        along = px * ux + py * uy
        across = py * ux - px * uy
        near = (along >= 0) & (along <= length) & (np.abs(across) <= pad)
        img[y0:y1, x0:x1][near] += s.peak_adu * np.exp(-0.5 * (across[near] / sigma) ** 2)
    return img


def random_streaks(n, shape, rng, *, peak_range=(15.0, 60.0), width_range=(1.5, 4.0)):
    """``n`` random straight streaks on an image of ``shape`` ``(ny, nx)``.

    Every third streak (the first, fourth, ...) starts inside the middle of
    the frame and runs 1.5 frame widths, off an edge; the others are 0.25-0.6
    of the short side long, centred in the middle of the frame.  Position
    angles are uniform; widths (FWHM, pixels) and peaks (ADU per pixel)
    uniform in ``width_range`` and ``peak_range``.

    Returns
    -------
    tuple of Streak
    """
    ny, nx = shape
    out = []
    for i in range(n):
        length = rng.uniform(0.25, 0.6) * min(nx, ny)
        ang = rng.uniform(0, np.pi)
        if i % 3 == 0:     # starts inside, runs off an edge
            cx, cy = rng.uniform(0.15, 0.85) * nx, rng.uniform(0.15, 0.85) * ny
            length = 1.5 * max(nx, ny)
            x1, y1 = cx, cy
        else:
            cx, cy = rng.uniform(0.2, 0.8) * nx, rng.uniform(0.15, 0.85) * ny
            x1, y1 = cx - 0.5 * length * np.cos(ang), cy - 0.5 * length * np.sin(ang)
        x2, y2 = x1 + length * np.cos(ang), y1 + length * np.sin(ang)
        out.append(Streak(float(x1), float(y1), float(x2), float(y2),
                          float(rng.uniform(*width_range)), float(rng.uniform(*peak_range))))
    return tuple(out)


def _detector(signal_adu, sim, saturation_adu, rng):
    """Turn an expected signal (ADU per pixel, bias excluded) into a raw frame.

    Electrons ``signal * gain`` are drawn from a Poisson law, Gaussian read
    noise of ``read_noise_e`` electrons is added, the sum is divided by the
    gain and the pedestal ``bias_adu`` added to every pixel; then
    ``round(hot_pixel_fraction * npix)`` distinct pixels drawn at random are
    set to values uniform between half the saturation level and the
    saturation level; the frame is rounded to integers, clipped to
    ``[0, saturation_adu]`` and cast to :func:`raw_dtype`.

    Parameters
    ----------
    signal_adu : ndarray, shape (ny, nx)
    sim : Simulation
        The camera's simulation settings (gain, read noise, bias, hot pixels).
    saturation_adu : float
    rng : numpy.random.Generator

    Returns
    -------
    raw : ndarray of :func:`raw_dtype`
    hot : ndarray of bool
        The hot pixels.
    """
    gain = sim.gain_e_per_adu
    electrons = rng.poisson(np.maximum(signal_adu, 0.0) * gain).astype(float)
    electrons += rng.normal(0.0, sim.read_noise_e, size=signal_adu.shape)
    adu = electrons / gain + sim.bias_adu
    n_hot = round(sim.hot_pixel_fraction * adu.size)
    hot = np.zeros(adu.size, dtype=bool)
    if n_hot > 0:
        idx = rng.choice(adu.size, size=n_hot, replace=False)
        hot[idx] = True
        adu.flat[idx] = rng.uniform(0.5 * saturation_adu, saturation_adu, size=n_hot)
    raw = np.clip(np.rint(adu), 0, saturation_adu).astype(raw_dtype(saturation_adu))
    return raw, hot.reshape(adu.shape)


def _saturated_stars(raw, hot, x, y, radius_px, saturation_adu):
    """Stars with a non-hot saturated pixel whose centre is within ``radius_px`` (pixels)."""
    ny, nx = raw.shape
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    reach = math.ceil(radius_px) + 1
    offs = np.arange(-reach, reach + 1)
    ix = np.rint(x).astype(int)[:, None, None] + offs[None, None, :]
    iy = np.rint(y).astype(int)[:, None, None] + offs[None, :, None]
    near = (ix - x[:, None, None]) ** 2 + (iy - y[:, None, None]) ** 2 <= radius_px ** 2
    near &= (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ixc = np.clip(ix, 0, nx - 1)
    iyc = np.clip(iy, 0, ny - 1)
    return (near & (raw[iyc, ixc] >= saturation_adu) & ~hot[iyc, ixc]).any(axis=(1, 2))


# ---------------------------------------------------------------- simulate
def simulate(camera, *, seed=0, dateobs=None, exptime=None, zenith_shift=(0.0, 0.0),
             rotation_deg=0.0, zp_true=None, sky_zenith_mag=None, clouds=None, streaks=None,
             star_vmax=None, extras=None, ext_coef=None, colour_term=None,
             vignetting=None, sky_light=None):
    """Render a raw exposure of ``camera`` with known truth.

    Parameters
    ----------
    camera : Camera
        A configuration with a ``simulation`` section.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed and arguments
        give an identical frame.
    dateobs : str, optional
        Start of the exposure, ISO 8601 on the camera's clock
        (``header.utc_offset_hours`` from UTC); default
        ``simulation.dateobs``.  Rounded to whole seconds, the header's
        precision.
    exptime : float, optional
        Exposure time, s; default ``simulation.exptime_s``.
    zenith_shift : (float, float)
        Added to the template's zenith pixel ``(x0, y0)``, pixels.
    rotation_deg : float
        Added to the template's ``rot_deg``, deg.
    zp_true : float, optional
        True total-flux zeropoint, mag for 1 ADU/s.  Default
        ``simulation.zp_true``; when that is null, derived from
        ``photometry.zp_nominal``: unchanged when ``zp_nominal_scale`` is
        ``'total'``; when it is ``'aperture'``, ``zp_nominal`` plus
        ``-2.5 log10 EF``, EF being the fraction of the zenith PSF's flux
        that aperture photometry of radius ``photometry.aper_radius_px``
        measures (:func:`enclosed_fraction`, pixelated), so the nominal
        aperture zeropoint is right at the zenith for the simulated PSF.
    sky_zenith_mag : float, optional
        Sky at the zenith, V mag/arcsec^2; default ``simulation.sky_zenith_mag``.
    clouds : Clouds, optional
        A cloud layer; None (the default) for a clear sky.
    sky_light : SkyLight, optional
        Twilight or moonlight added to the sky (under a cloud it is part of
        the sky the cloud dims and, with ``brightening``, lights up).
    streaks : sequence of Streak, optional
        Streaks added to the signal on the sky (not dimmed by the clouds).
    star_vmax : float, optional
        Faintest star rendered, V mag; default ``simulation.vmax``.
    extras : sim_extras.Extras, optional
        Planets, a dome and a text overlay (:mod:`allsky_camera.sim.sim_extras`).
    ext_coef, colour_term : float, optional
        Extinction k (mag/airmass) and colour term c (mag per mag B-V) of
        the stars' light; defaults ``simulation.ext_coef``, ``.colour_term``.
    vignetting : sequence of float, optional
        Coefficients of ``(zd/90)^2, (zd/90)^4, ...`` (mag) of the lens
        throughput; default ``simulation.vignetting``.

    Returns
    -------
    SimulatedExposure

    Raises
    ------
    ConfigError
        The camera has no ``simulation`` section, the exposure time is not
        positive, or ``clouds`` is not a :class:`Clouds` or ``streaks`` not
        a sequence of :class:`Streak`.

    Notes
    -----
    Stars come from :func:`allsky_camera.stages.catalog.reference_stars` at the
    epoch, are placed by :func:`allsky_camera.camera.coords.radec_to_altaz`
    (refraction included) and the true model, and are kept when above
    ``simulation.horizon_alt_deg`` and on the sensor.  **No extinction**: a
    star's total flux is ``10**(-0.4 (V - zp_true)) * exptime`` ADU at any
    altitude unless an extinction, colour term or vignetting is set (see
    :class:`Truth`).  The PSF is a circular Gaussian whose FWHM follows
    :func:`fwhm_at`; the sky follows :func:`sky_surface_brightness` times
    the true model's pixel solid angle.  Clouds multiply the stars' flux
    and the sky by :func:`cloud_transmission` and add their own light
    (:class:`Clouds`); their random places come from a generator spawned
    from the seed, so a clear frame is the same with or without this
    feature.  Pixels beyond the horizon receive neither sky, starlight nor
    streaks, only the bias, noise and hot pixels.
    """
    from astropy.io import fits
    from astropy.table import Table

    from allsky_camera.stages import catalog

    t_start = _time.perf_counter()
    sim = camera.simulation
    if sim is None:
        raise ConfigError(f"camera {camera.name}: the configuration has no simulation "
                          "section; add one (see etc/MDM.yaml)")
    if clouds is not None and not isinstance(clouds, Clouds):
        raise ConfigError(f"simulate: clouds = {clouds!r}; give a simulate.Clouds or None")
    streaks = tuple(streaks or ())
    if not all(isinstance(s, Streak) for s in streaks):
        raise ConfigError("simulate: streaks must be simulate.Streak objects")
    exptime = float(sim.exptime_s if exptime is None else exptime)
    if not (math.isfinite(exptime) and exptime > 0):
        raise ConfigError(f"simulate: exptime = {exptime} s must be a positive number of "
                          "seconds; change it")
    vmax = float(sim.vmax if star_vmax is None else star_vmax)
    zenith_mag = float(sim.sky_zenith_mag if sky_zenith_mag is None else sky_zenith_mag)
    nx, ny = camera.sensor.nx, camera.sensor.ny
    saturation = camera.sensor.saturation_adu
    phot = camera.photometry
    rng = np.random.default_rng(seed)
    # clouds draw from their own stream: the detector's noise does not change
    cloud_rng = rng.spawn(1)[0]

    # time: parse, round to the header's whole seconds, parse that back
    offset = camera.header.utc_offset_hours
    dateobs = sim.dateobs if dateobs is None else dateobs
    clock = _camera_clock_string(parse_time(dateobs, offset, where="dateobs"), offset)
    t = parse_time(clock, offset, where="dateobs")

    template = camera.astrometry.model
    dx, dy = (float(v) for v in zenith_shift)
    drot = float(rotation_deg)
    model = template.replace(x0=template.x0 + dx, y0=template.y0 + dy,
                             rot_deg=template.rot_deg + drot)

    # stars: catalog -> apparent alt/az -> pixels; above the horizon, on the sensor
    cat = catalog.reference_stars(t.jd_tt, vmax)
    site, _ = site_from_config(camera.site)
    alt, az = radec_to_altaz(np.asarray(cat["RA"], dtype=float),
                             np.asarray(cat["DEC"], dtype=float), t, site)
    vmag = np.asarray(cat["VMAG"], dtype=float)
    x, y = model.altaz_to_xy(alt, az)
    keep = ((alt > sim.horizon_alt_deg) & np.isfinite(vmag)
            & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5))
    cat, alt, az, x, y, vmag = cat[keep], alt[keep], az[keep], x[keep], y[keep], vmag[keep]

    fwhm = fwhm_at(HORIZON_ZD_DEG - alt, sim.fwhm_zenith_px, sim.fwhm_horizon_px)
    sigma = fwhm / FWHM_PER_SIGMA
    ef = enclosed_fraction(phot.aper_radius_px, sigma)

    # zeropoint: the nominal aperture zeropoint is read at the zenith (X = 1)
    ef_zen = float(enclosed_fraction(phot.aper_radius_px, sim.fwhm_zenith_px / FWHM_PER_SIGMA))
    if zp_true is None:
        zp_true = sim.zp_true
    if zp_true is None:
        zp_true = phot.zp_nominal
        if phot.zp_nominal_scale == "aperture":
            zp_true = phot.zp_nominal - 2.5 * math.log10(ef_zen)
    zp_true = float(zp_true)
    zp_aper = zp_true + 2.5 * math.log10(ef_zen)

    # expected signal: sky + stars, nothing beyond the horizon
    zd_pix, omega, on_sky = _sky_geometry(model, nx, ny, sim.horizon_alt_deg)
    sky_mag, sky_adu = _render_sky(zd_pix, omega, on_sky, zenith_mag, sim.sky_horizon_mag,
                                   zp_true, exptime)
    if sky_light is not None:
        sky_adu = sky_adu + _sky_light_adu(sky_light, model, on_sky, omega, zenith_mag, zp_true,
                                           exptime, t, camera)
        sky_mag[on_sky] = zp_true - 2.5 * np.log10(
            sky_adu[on_sky] / exptime / (omega[on_sky] * ARCSEC2_PER_SR))
    star_trans = np.ones(x.size)
    transmission = None
    if clouds is not None and clouds.kind != "none":
        ys, xs = np.nonzero(on_sky)
        p_alt, p_az = model.xy_to_altaz(xs, ys)
        # one call for the sky pixels and the stars, so that they see the same clouds
        both = cloud_transmission(clouds, np.r_[p_alt, alt], np.r_[p_az, az], cloud_rng)
        star_trans = both[p_alt.size:]
        transmission = np.full((ny, nx), np.nan, dtype=np.float32)
        transmission[ys, xs] = both[:p_alt.size]
        sky_adu[on_sky] = _cloudy_sky(sky_adu[on_sky], both[:p_alt.size], clouds.brightening)
        sky_mag[on_sky] = zp_true - 2.5 * np.log10(
            sky_adu[on_sky] / exptime / (omega[on_sky] * ARCSEC2_PER_SR))
    k = float(sim.ext_coef if ext_coef is None else ext_coef)
    c = float(sim.colour_term if colour_term is None else colour_term)
    vig = tuple(float(v) for v in (sim.vignetting if vignetting is None else vignetting))
    bv = np.asarray(cat["BV"], dtype=float)
    xair = airmass(HORIZON_ZD_DEG - alt)
    dmag = k * (xair - 1.0) + c * np.nan_to_num(bv, nan=0.0) + vignetting_mag(
        HORIZON_ZD_DEG - alt, vig)
    flux = 10.0 ** (-0.4 * (vmag - zp_true + dmag)) * exptime * star_trans
    star_img, peak = _render_stars((ny, nx), x, y, flux, sigma)
    signal = sky_adu + np.where(on_sky, star_img, 0.0)
    if streaks:
        signal += np.where(on_sky, render_streaks((ny, nx), streaks), 0.0)

    extra_truth = None
    if extras is not None:
        from allsky_camera.sim import sim_extras
        signal, planets, dome = sim_extras.add_to_signal(
            signal, extras, model=model, time=t, site=site, zp=zp_true, exptime=exptime,
            sigma_at=lambda zd: fwhm_at(zd, sim.fwhm_zenith_px, sim.fwhm_horizon_px)
            / FWHM_PER_SIGMA, render=_render_stars)

    raw, hot = _detector(signal, sim, saturation, rng)
    if extras is not None:
        raw, text = sim_extras.burn_text(raw, extras, utc_iso=t.iso_utc,
                                         saturation_adu=saturation)
        extra_truth = sim_extras.ExtrasTruth(planets=planets, dome=dome, text=text)
    saturated = _saturated_stars(raw, hot, x, y, phot.aper_radius_px, saturation)

    hc = camera.header
    header = fits.Header()
    if hc.exptime_card is not None:     # else the exposure time is the YAML's exptime_s
        header[hc.exptime_card] = (exptime, "[s] exposure time")
    header[hc.dateobs_card] = (clock, f"start of exposure, clock UTC{offset:+g} h")
    if hc.instrume:
        header["INSTRUME"] = (hc.instrume, "instrument")
    header["SIMULATE"] = (True, "simulated by allsky_camera.sim.simulate")
    header["SIMCAM"] = (camera.name, "camera configuration simulated")
    header["SIMSEED"] = (int(seed), "random seed of the simulation")
    header["SIMZP"] = (zp_true, "[mag] true total-flux ZP for 1 ADU/s")
    header["SIMDX"] = (dx, "[pix] injected zenith shift in x")
    header["SIMDY"] = (dy, "[pix] injected zenith shift in y")
    header["SIMDROT"] = (drot, "[deg] injected rotation added to rot_deg")
    header["SIMCLOUD"] = (clouds.kind if clouds is not None else "none", "cloud layer")
    if clouds is not None:
        header["SIMCLTR"] = (clouds.transmission, "transmission inside the cloud")
    header["SIMNSTRK"] = (len(streaks), "streaks injected")
    header["SIMEXTK"] = (k, "[mag/airmass] true extinction k")
    header["SIMCOLT"] = (c, "[mag/mag] true colour term c (B-V)")
    for j, a in enumerate(vig, start=1):
        header[f"SIMVIG{2 * j}"] = (a, f"[mag] true vignetting coeff of (zd/90)^{2 * j}")
    header["SIMLIGHT"] = (sky_light.kind if sky_light is not None else "none",
                          "twilight or moonlight added to the sky")

    stars = Table()
    stars["HIP"] = np.asarray(cat["HIP"])
    stars["RA"] = np.asarray(cat["RA"], dtype=float)
    stars["DEC"] = np.asarray(cat["DEC"], dtype=float)
    stars["VMAG"] = vmag
    stars["BV"] = bv
    stars["x"] = x
    stars["y"] = y
    stars["alt_deg"] = alt
    stars["az_deg"] = az
    stars["airmass"] = xair
    stars["flux_adu"] = flux
    stars["fwhm_px"] = fwhm
    stars["ef_aper"] = ef
    stars["peak_adu"] = peak
    stars["saturated"] = saturated
    stars["transmission"] = star_trans
    for name, unit, desc in _STAR_COLUMNS:
        stars[name].unit = unit
        stars[name].description = desc

    truth = Truth(model=model, zp_true=zp_true, exptime=exptime, time=t, stars=stars,
                  sky_mag=sky_mag, sky_adu=sky_adu.astype(np.float32), hot_pixels=hot,
                  zp_aper_true=zp_aper, transmission=transmission, streaks=streaks,
                  extras=extra_truth, ext_coef=k, colour_term=c, vignetting=vig)
    log.info("simulated %s at %s UTC: %d stars to V=%.1f, zp_true %.3f, zp_aper_true %.3f, "
             "%d saturated, %d hot pixels, clouds %s, %d streaks, %.2f s", camera.name,
             t.iso_utc, len(stars), vmax, zp_true, zp_aper, int(saturated.sum()),
             int(hot.sum()), header["SIMCLOUD"], len(streaks), _time.perf_counter() - t_start)
    return SimulatedExposure(image=raw, header=header, truth=truth)


#: Units and descriptions of the truth star table's columns.
_STAR_COLUMNS = (
    ("HIP", None, "Hipparcos number"),
    ("RA", "deg", "ICRS right ascension at the epoch"),
    ("DEC", "deg", "ICRS declination at the epoch"),
    ("VMAG", "mag", "V magnitude"),
    ("BV", "mag", "B-V colour (NaN: none; rendered as 0)"),
    ("x", "pix", "true x, 0-based, pixel centres at integers"),
    ("y", "pix", "true y, 0-based, pixel centres at integers"),
    ("alt_deg", "deg", "apparent (refracted) altitude"),
    ("az_deg", "deg", "azimuth, north through east"),
    ("airmass", None, "Kasten & Young (1989) airmass"),
    ("flux_adu", "adu", "total flux in the exposure"),
    ("fwhm_px", "pix", "Gaussian PSF FWHM"),
    ("ef_aper", None, "PSF fraction inside the photometric aperture"),
    ("peak_adu", "adu", "brightest pixel of the noiseless star"),
    ("saturated", None, "saturated pixel within the aperture radius"),
    ("transmission", None, "cloud transmission at the star (1: clear)"),
)

#: Units and descriptions of the truth streak table's columns.
_STREAK_COLUMNS = (
    ("x1", "pix", "first end point x (may lie off the image)"),
    ("y1", "pix", "first end point y"),
    ("x2", "pix", "second end point x"),
    ("y2", "pix", "second end point y"),
    ("width_px", "pix", "Gaussian FWHM across the streak"),
    ("peak_adu", "adu", "signal on the centre line per pixel"),
)


# ---------------------------------------------------------------- writing
def check_writable(paths, overwrite):
    """Refuse existing outputs unless ``overwrite``, and directories always."""
    for p in paths:
        if os.path.isdir(p):
            raise OutputError(f"{p}: is a directory; give a file name")
        if not overwrite and os.path.exists(p):
            raise OutputError(f"{p}: exists already; remove it or pass --overwrite")


def _truth_cards(sim):
    """``(keyword, value, comment)`` cards of the truth file's primary header."""
    t = sim.truth
    zp_aper = t.zp_aper_true if math.isfinite(t.zp_aper_true) else "NaN"
    cards = [
        ("ZPTRUE", t.zp_true, "[mag] true total-flux zenith ZP for 1 ADU/s"),
        ("ZPAPTRUE", zp_aper, "[mag] true aperture ZP at the zenith"),
        ("EXPTIME", t.exptime, "[s] exposure time"),
        ("TIMEUTC", t.time.iso_utc, "start of exposure, UTC"),
        ("JDTT", t.time.jd_tt, "[d] start of exposure, TT Julian date"),
        ("NSTARS", len(t.stars), "stars rendered"),
        ("NHOTPIX", int(t.hot_pixels.sum()), "hot pixels"),
        ("EXTK", t.ext_coef, "[mag/airmass] true extinction k"),
        ("COLTERM", t.colour_term, "[mag/mag] true colour term c (B-V)"),
    ] + [(f"VIGN{2 * j}", a, f"[mag] true vignetting coeff of (zd/90)^{2 * j}")
         for j, a in enumerate(t.vignetting, start=1)]
    for key in ("SIMCAM", "SIMSEED", "SIMZP", "SIMDX", "SIMDY", "SIMDROT", "SIMCLOUD",
                "SIMCLTR", "SIMNSTRK"):
        if key in sim.header:
            cards.append((key, sim.header[key], sim.header.comments[key]))
    return cards + list(t.model.header_cards())


def _table_hdu(table, name):
    """A binary-table HDU named ``name`` with the columns' descriptions as TCOMMn."""
    from astropy.io import fits

    hdu = fits.table_to_hdu(table)
    hdu.name = name
    for i, col in enumerate(table.colnames, start=1):
        if table[col].description:
            hdu.header[f"TCOMM{i}"] = table[col].description
    return hdu


def write_simulation(sim, path, *, overwrite=False):
    """Write a simulated frame and its truth.

    Parameters
    ----------
    sim : SimulatedExposure
    path : str or Path
        Raw frame, ``.fits``, ``.fits.gz`` or ``.fits.bz2`` (compressed as the
        name says).  A missing directory is created.
    overwrite : bool
        Replace existing files; otherwise they are refused.

    Returns
    -------
    raw_path, truth_path : Path
        The frame (primary HDU: ``sim.header`` and the data in the camera's
        type) and ``<stem>-truth.fits`` beside it: primary header with the
        truth scalars, the ``SIM*`` cards and the true model's
        ``header_cards()``; extension ``STARS``, the truth star table;
        ``SKYMAG``, the sky map (float32, V mag/arcsec^2, NaN off the sky);
        ``HOTPIX``, a table of the hot pixels' ``x``, ``y``; ``STREAKS``,
        the injected streaks (zero rows when none); ``TRANSMIS``, the cloud
        transmission map (float32, NaN off the sky), only when there are
        clouds.  Each file is written to a temporary name in the same
        directory and renamed (:func:`allsky_camera.stages.io.write_fits_hdus`).

    Raises
    ------
    OutputError
        A file exists and ``overwrite`` is false, or it cannot be written.
    """
    from astropy.io import fits
    from astropy.table import Table

    from allsky_camera.stages.io import write_fits_hdus

    path = Path(path)
    tpath = truth_path(path)
    check_writable([path, tpath], overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path.parent}: cannot create the directory ({err.strerror}); "
                          "choose another output path") from err

    write_fits_hdus(fits.HDUList([fits.PrimaryHDU(data=sim.image, header=sim.header.copy())]),
                    path)

    primary = fits.PrimaryHDU()
    for key, value, comment in _truth_cards(sim):
        if isinstance(value, np.generic):
            value = value.item()
        primary.header[key] = (value, comment)
    stars = _table_hdu(sim.truth.stars, "STARS")
    streaks = Table()
    for name, unit, desc in _STREAK_COLUMNS:
        streaks[name] = np.array([getattr(s, name) for s in sim.truth.streaks], dtype=float)
        streaks[name].unit = unit
        streaks[name].description = desc
    skymag = fits.ImageHDU(data=sim.truth.sky_mag.astype(np.float32), name="SKYMAG")
    skymag.header["BUNIT"] = ("mag/arcsec2", "V surface brightness, NaN off the sky")
    hy, hx = np.nonzero(sim.truth.hot_pixels)
    hot = fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="J", array=hx), fits.Column(name="y", format="J", array=hy)],
        name="HOTPIX")
    hdus = [primary, stars, skymag, hot, _table_hdu(streaks, "STREAKS")]
    if sim.truth.transmission is not None:
        trans = fits.ImageHDU(data=sim.truth.transmission.astype(np.float32), name="TRANSMIS")
        trans.header["BUNIT"] = ("", "cloud transmission 0-1, NaN off the sky")
        hdus.append(trans)
    write_fits_hdus(fits.HDUList(hdus), tpath)
    log.info("wrote %s and %s", path, tpath)
    return path, tpath
