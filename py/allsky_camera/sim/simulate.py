"""Simulated raw exposures of an all-sky camera, with known truth: the simulator's front.

The command line is ``py/allsky_camera/ac_simulate.py``.
:func:`simulate` renders the raw frame a camera would record at a given
time, as a short sequence of the parts of :mod:`allsky_camera.sim`, one
module per thing rendered:

* :mod:`~allsky_camera.sim.geometry`: where each pixel looks (zenith
  distance, solid angle, which pixels see the sky);
* :mod:`~allsky_camera.sim.sky`: the dark sky, brightening smoothly toward
  the horizon, and twilight or moonlight (:class:`SkyLight`);
* :mod:`~allsky_camera.sim.clouds`: a cloud layer (:class:`Clouds`), a
  transmission map over the sky that dims the stars and the sky behind it
  and brightens the sky beneath, as moonlight or city light on cloud
  would; thin structured cloud and haze;
* :mod:`~allsky_camera.sim.stars`: Hipparcos stars placed by a perturbed
  copy of the camera's astrometric template, their fluxes through the
  photometric model (:mod:`allsky_camera.stages.photmodel`: extinction
  ``k (X - 1)`` with the Kasten & Young airmass, colour term ``c (B - V)``,
  lens vignetting ``v(zd)``, all zero unless the ``simulation`` section or
  the arguments set them), rendered with the Gaussian PSF of
  :mod:`~allsky_camera.sim.psf`;
* :mod:`~allsky_camera.sim.streaks`: satellite or aircraft streaks
  (:class:`Streak`);
* :mod:`~allsky_camera.sim.sim_extras`: planets, a dome, burned-in text;
* :mod:`~allsky_camera.sim.detector`: Poisson and read noise, a bias
  pedestal and hot pixels, rounded, clipped and cast to the camera's
  integer type;
* :mod:`~allsky_camera.sim.truth`: everything the frame was made from (the
  true camera model and zeropoint, star positions and fluxes, the sky map,
  the cloud transmission, the streaks, the hot pixels), returned in a
  :class:`Truth`, the raw header, and :func:`write_simulation`, which
  writes the frame and its truth.

The same seed and arguments give the same frame, bit for bit
(``benchmarks/sim_checksums.py`` pins that across changes of structure).
The public names of the parts that callers use are importable from here.

Every physical setting comes from the camera configuration: its
``simulation`` section (exposure time, gain, read noise, bias, sky, PSF,
hot pixels, faintest star, horizon, default time, photometric model) and
the rest of the camera (sensor size and saturation, header cards, site,
template model, photometric aperture and nominal zeropoint).

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`: 0-based,
``x`` is the column (fast axis, ``image[y, x]``), pixel centres at
integers, so pixel ``(i, j)`` covers ``i - 0.5 <= x < i + 0.5``.
Not simulated: flat field.
"""

from __future__ import annotations

import logging
import math
import time as _time

import numpy as np

from allsky_camera.camera.coords import site_from_config
from allsky_camera.exceptions import ConfigError
from allsky_camera.sim import clouds as _clouds
from allsky_camera.sim import detector, geometry, psf
from allsky_camera.sim import sky as _sky
from allsky_camera.sim import stars as _stars
from allsky_camera.sim import truth as _truth
from allsky_camera.sim.clouds import CLOUD_KINDS, Clouds, cloud_transmission
from allsky_camera.sim.detector import raw_dtype
from allsky_camera.sim.geometry import ARCSEC2_PER_SR, HORIZON_ZD_DEG
from allsky_camera.sim.psf import FWHM_PER_SIGMA, enclosed_fraction, fwhm_at, stamp_half_width
from allsky_camera.sim.sky import SKY_LIGHT_KINDS, SkyLight, sky_surface_brightness
from allsky_camera.sim.streaks import Streak, random_streaks, render_streaks
from allsky_camera.sim.truth import (
    SimulatedExposure,
    Truth,
    check_writable,
    truth_path,
    write_simulation,
)
from allsky_camera.stages.photmodel import airmass

__all__ = [
    "ARCSEC2_PER_SR", "CLOUD_KINDS", "FWHM_PER_SIGMA", "HORIZON_ZD_DEG", "SKY_LIGHT_KINDS",
    "Clouds", "SimulatedExposure", "SkyLight", "Streak", "Truth", "check_writable",
    "cloud_transmission", "enclosed_fraction", "fwhm_at", "random_streaks", "raw_dtype",
    "render_streaks", "simulate", "sky_surface_brightness", "stamp_half_width", "truth_path",
    "write_simulation",
]

log = logging.getLogger(__name__)


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
    from allsky_camera.stages import catalog

    t_start = _time.perf_counter()
    sim, streaks, exptime = _checked(camera, clouds, streaks, exptime)
    vmax = float(sim.vmax if star_vmax is None else star_vmax)
    zenith_mag = float(sim.sky_zenith_mag if sky_zenith_mag is None else sky_zenith_mag)
    k = float(sim.ext_coef if ext_coef is None else ext_coef)
    c = float(sim.colour_term if colour_term is None else colour_term)
    vig = tuple(float(v) for v in (sim.vignetting if vignetting is None else vignetting))
    nx, ny = camera.sensor.nx, camera.sensor.ny
    saturation = camera.sensor.saturation_adu
    phot = camera.photometry
    rng = np.random.default_rng(seed)
    # clouds draw from their own stream: the detector's noise does not change
    cloud_rng = rng.spawn(1)[0]

    # time (whole seconds, as the header holds it), the true model, the site
    clock, t = _truth.camera_clock(sim.dateobs if dateobs is None else dateobs,
                                   camera.header.utc_offset_hours)
    template = camera.astrometry.model
    dx, dy = (float(v) for v in zenith_shift)
    drot = float(rotation_deg)
    model = template.replace(x0=template.x0 + dx, y0=template.y0 + dy,
                             rot_deg=template.rot_deg + drot)
    site, _ = site_from_config(camera.site)

    # stars on the sensor, their PSF, the zeropoints (nominal read at the zenith, X = 1)
    cat, alt, az, x, y = _stars.visible_stars(
        catalog.reference_stars(t.jd_tt, vmax), model, t, site,
        horizon_alt_deg=sim.horizon_alt_deg, nx=nx, ny=ny)
    fwhm = fwhm_at(HORIZON_ZD_DEG - alt, sim.fwhm_zenith_px, sim.fwhm_horizon_px)
    sigma = fwhm / FWHM_PER_SIGMA
    zp_true, zp_aper = _stars.zeropoints(
        sim.zp_true if zp_true is None else zp_true, zp_nominal=phot.zp_nominal,
        zp_nominal_scale=phot.zp_nominal_scale, aper_radius_px=phot.aper_radius_px,
        fwhm_zenith_px=sim.fwhm_zenith_px)

    # the sky (dark sky, twilight or moonlight, clouds) and the transmission at the stars
    zd_pix, omega, on_sky = geometry.sky_geometry(model, nx, ny, sim.horizon_alt_deg)
    sky_mag, sky_adu, transmission, star_trans = _sky_and_clouds(
        model, zd_pix, omega, on_sky, (alt, az), zenith_mag=zenith_mag,
        horizon_mag=sim.sky_horizon_mag, zp=zp_true, exptime=exptime, clouds=clouds,
        sky_light=sky_light, time=t, site=site, rng=cloud_rng)

    # starlight through the photometric model and the clouds; streaks; extras
    bv = np.asarray(cat["BV"], dtype=float)
    dmag = _stars.model_dmag(alt, bv, ext_coef=k, colour_term=c, vignetting=vig)
    flux = _stars.star_flux(np.asarray(cat["VMAG"], dtype=float), dmag, zp=zp_true,
                            exptime=exptime, transmission=star_trans)
    star_img, peak = psf.render_stars((ny, nx), x, y, flux, sigma)
    signal = sky_adu + np.where(on_sky, star_img, 0.0)
    if streaks:
        signal += np.where(on_sky, render_streaks((ny, nx), streaks), 0.0)
    if extras is not None:
        from allsky_camera.sim import sim_extras

        signal, planets, dome = sim_extras.add_to_signal(
            signal, extras, model=model, time=t, site=site, zp=zp_true, exptime=exptime,
            sigma_at=lambda zd: fwhm_at(zd, sim.fwhm_zenith_px, sim.fwhm_horizon_px)
            / FWHM_PER_SIGMA, render=psf.render_stars)

    # the detector, then what the camera's software burns in
    raw, hot = detector.expose(signal, gain_e_per_adu=sim.gain_e_per_adu,
                               read_noise_e=sim.read_noise_e, bias_adu=sim.bias_adu,
                               hot_pixel_fraction=sim.hot_pixel_fraction,
                               saturation_adu=saturation, rng=rng)
    extra_truth = None
    if extras is not None:
        raw, text = sim_extras.burn_text(raw, extras, utc_iso=t.iso_utc,
                                         saturation_adu=saturation)
        extra_truth = sim_extras.ExtrasTruth(planets=planets, dome=dome, text=text)

    # the truth and the header
    saturated = _stars.saturated_stars(raw, hot, x, y, phot.aper_radius_px, saturation)
    header = _truth.raw_header(camera, clock=clock, exptime=exptime, seed=seed,
                               zp_true=zp_true, zenith_shift=(dx, dy), rotation_deg=drot,
                               clouds=clouds, n_streaks=len(streaks), ext_coef=k,
                               colour_term=c, vignetting=vig, sky_light=sky_light)
    star_table = _truth.star_table(
        cat, x=x, y=y, alt_deg=alt, az_deg=az, airmass=airmass(HORIZON_ZD_DEG - alt),
        flux_adu=flux, fwhm_px=fwhm,
        ef_aper=enclosed_fraction(phot.aper_radius_px, sigma), peak_adu=peak,
        saturated=saturated, transmission=star_trans)
    truth = Truth(model=model, zp_true=zp_true, exptime=exptime, time=t, stars=star_table,
                  sky_mag=sky_mag, sky_adu=sky_adu.astype(np.float32), hot_pixels=hot,
                  zp_aper_true=zp_aper, transmission=transmission, streaks=streaks,
                  extras=extra_truth, ext_coef=k, colour_term=c, vignetting=vig)
    log.info("simulated %s at %s UTC: %d stars to V=%.1f, zp_true %.3f, zp_aper_true %.3f, "
             "%d saturated, %d hot pixels, clouds %s, %d streaks, %.2f s", camera.name,
             t.iso_utc, len(star_table), vmax, zp_true, zp_aper, int(saturated.sum()),
             int(hot.sum()), header["SIMCLOUD"], len(streaks), _time.perf_counter() - t_start)
    return SimulatedExposure(image=raw, header=header, truth=truth)


def _checked(camera, clouds, streaks, exptime):
    """The camera's simulation settings, the streaks as a tuple and the exposure time (s).

    Raises
    ------
    ConfigError
        See :func:`simulate`.
    """
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
    return sim, streaks, exptime


def _sky_and_clouds(model, zd_deg, omega_sr, on_sky, star_altaz, *, zenith_mag, horizon_mag, zp,
                    exptime, clouds, sky_light, time, site, rng):
    """The true sky of a frame, clouds included, and the clouds' transmission at the stars.

    Parameters
    ----------
    model : CameraModel
        The true camera model.
    zd_deg, omega_sr, on_sky : ndarray, shape (ny, nx)
        From :func:`allsky_camera.sim.geometry.sky_geometry` (deg, sr, bool).
    star_altaz : (ndarray, ndarray)
        The stars' altitudes and azimuths, deg.
    zenith_mag, horizon_mag : float
        The dark sky at the zenith and the horizon, V mag/arcsec^2.
    zp : float
        Total-flux zeropoint, mag for 1 ADU/s.
    exptime : float
        Exposure time, s.
    clouds : Clouds or None
    sky_light : SkyLight or None
    time : ObsTime
    site : allsky_camera.camera.coords.Site
    rng : numpy.random.Generator
        The clouds' own stream.

    Returns
    -------
    sky_mag : ndarray of float32, shape (ny, nx)
        V mag/arcsec^2, NaN off the sky.
    sky_adu : ndarray of float64, shape (ny, nx)
        ADU per pixel in the exposure, 0 off the sky.
    transmission : ndarray of float32, shape (ny, nx), or None
        Cloud transmission, NaN off the sky; None without clouds.
    star_trans : ndarray
        Cloud transmission at the stars (1 without clouds).
    """
    sky_mag, sky_adu = _sky.render_sky(zd_deg, omega_sr, on_sky, zenith_mag, horizon_mag, zp,
                                       exptime)
    cloudy = clouds is not None and clouds.kind != "none"
    if sky_light is None and not cloudy:
        return sky_mag, sky_adu, None, np.ones(np.size(star_altaz[0]))
    ys, xs, p_alt, p_az = geometry.sky_pixels(model, on_sky)
    if sky_light is not None:
        source = _sky.light_source_altaz(sky_light, time, site)
        sky_adu[ys, xs] += _sky.sky_light_adu(sky_light, p_alt, p_az, omega_sr[ys, xs], source,
                                              zenith_mag=zenith_mag, zp=zp, exptime=exptime)
    star_trans = np.ones(np.size(star_altaz[0]))
    transmission = None
    if cloudy:
        # one draw for the sky pixels and the stars, so that they see the same clouds
        sky_t, star_trans = _clouds.sky_and_star_transmission(clouds, (p_alt, p_az), star_altaz,
                                                              rng)
        transmission = np.full(on_sky.shape, np.nan, dtype=np.float32)
        transmission[ys, xs] = sky_t
        sky_adu[on_sky] = _clouds.cloudy_sky(sky_adu[on_sky], sky_t, clouds.brightening)
    return (_sky.sky_mag_map(sky_adu, omega_sr, on_sky, zp, exptime), sky_adu, transmission,
            star_trans)
