"""Reduce one exposure in memory: the stages in order, no files written.

:func:`reduce_exposure` is the pipeline.  ``ac_proc.py`` (one frame) and
``ac_night.py`` (a night) both call it, then hand the :class:`Reduction` to
:mod:`allsky_camera.output.writers`, so a frame gives the same products either way.
The science decisions live in the stage modules; this module only passes
their results on.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Timer:
    """Wall-clock time (``times``) and CPU time of this process (``cpu``) of
    each stage, seconds, for the log and the benchmarks (on a shared machine
    the CPU time is the steadier figure)."""

    times: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)
    _c0: float = field(default_factory=time.process_time)

    def lap(self, name):
        """Add the time since the last lap to stage ``name`` (seconds)."""
        t, c = time.perf_counter(), time.process_time()
        self.times[name] = self.times.get(name, 0.0) + t - self._t0
        self.cpu[name] = self.cpu.get(name, 0.0) + c - self._c0
        log.debug("%s: %.3f s (CPU %.3f s)", name, t - self._t0, c - self._c0)
        self._t0, self._c0 = t, c


@dataclass(frozen=True)
class Reduction:
    """Everything measured on one exposure.

    Per-star arrays share one order: the catalog stars above the horizon
    whose fitted prediction falls on the chip.  Pixels are 0-based with
    pixel centres at integers, x = column (fast axis); angles in degrees.

    Attributes
    ----------
    exposure : Exposure
        The input (not modified).
    camera : Camera
    detrended : Detrended
        From :func:`allsky_camera.stages.detrend.run`.
    obstruction : ndarray of bool or None
        Static obstruction mask (True = not sky).
    site, site_src : Site, str
        Observatory position and where it was read from.
    ephem : dict
        Sun and Moon altitude/azimuth (deg) and Moon illumination.
    stars : Table
        Catalog rows (HIP, RA, DEC, VMAG, BV, nn_sep_deg, ...).
    alt, az : ndarray
        Apparent (refracted) altitude and azimuth (north through east), deg.
    x, y : ndarray
        Predicted positions, fitted model.
    x_template, y_template : ndarray
        Predicted positions, static template.
    xc, yc : ndarray
        Refined centroids (NaN: failed).
    fluxes : Fluxes
        Aperture photometry (at the centroid if found, else the prediction).
    m_inst : ndarray
        ``-2.5 log10(flux_adu / exptime)``, mag.
    moon_sep : ndarray
        Distance from the Moon, deg.
    flags : ndarray of int32
        Quality bits (:mod:`allsky_camera.flags`).
    zp_sel : ndarray of bool
        Stars that voted in the zeropoint.
    zeropoint : Zeropoint
    apcor : ndarray
        Aperture correction at each star (total minus aperture zp), mag.
    transparency : TransparencyResult
        Transparency against the clear-sky photometric model.
    clouds : CloudMap
        Cloud state, evidence and confidence per sky cell
        (:func:`allsky_camera.stages.clouds.run`).
    sky : SkyState
        SKYSTAT: what lights the sky (:mod:`allsky_camera.stages.skystat`).
    solution : Solution
        The astrometric solution.
    skymap : SkyMap or None
        Sky brightness map, when asked for.
    streaks : Table or None
        Streak table, when asked for.
    sky : SkyState or None
    crowding : Crowding or None
        Other catalogue stars' light in each star's aperture and annulus
        (:mod:`allsky_camera.stages.crowding`).
    """

    exposure: object
    camera: object
    detrended: object
    obstruction: object
    site: object
    site_src: str
    ephem: dict
    stars: object
    alt: object
    az: object
    x: object
    y: object
    x_template: object
    y_template: object
    xc: object
    yc: object
    fluxes: object
    m_inst: object
    moon_sep: object
    flags: object
    zp_sel: object
    zeropoint: object
    apcor: object
    transparency: object
    clouds: object
    solution: object
    skymap: object = None
    streaks: object = None
    sky: object = None
    crowding: object = None

    @property
    def vmag(self):
        """Catalog V of each star, mag."""
        import numpy as np
        return np.asarray(self.stars["VMAG"], dtype=float)

    @property
    def bv(self):
        """Catalog B-V of each star (NaN: none), mag."""
        import numpy as np
        return np.asarray(self.stars["BV"], dtype=float)

    @property
    def zd(self):
        """Zenith distance of each star, deg."""
        return 90.0 - self.alt


#: Static mask files kept in memory (a night reads each camera's masks once;
#: reading the DCT camera's two FITS masks took 80 ms a frame).
_MASK_CACHE_SIZE = 8


@functools.lru_cache(maxsize=_MASK_CACHE_SIZE)
def _cached_mask(path, mtime_ns, size, shape):
    """:func:`allsky_camera.camera.masks.read_mask`, read-only, cached by file
    version: a rewritten file (new time or size) is read again."""
    from allsky_camera.camera import masks
    mask = masks.read_mask(path, shape)
    mask.flags.writeable = False
    return mask


def _read_static_mask(path, shape):
    try:
        st = os.stat(path)
    except OSError:
        from allsky_camera.camera import masks
        return masks.read_mask(path, shape)     # raises the ConfigError that names the file
    return _cached_mask(str(path), st.st_mtime_ns, st.st_size, tuple(shape))


def _static_masks(camera, shape):
    """The camera's bad-pixel and obstruction masks (None where not configured),
    read-only arrays shared between frames."""
    bpm = obstruction = None
    s = camera.sensor
    if s.bad_pixel_mask:
        bpm = _read_static_mask(camera.resolve(s.bad_pixel_mask), shape)
    if s.obstruction_mask:
        obstruction = _read_static_mask(camera.resolve(s.obstruction_mask), shape)
    return bpm, obstruction


def _log_zeropoint(zp):
    if zp.message:
        log.warning("photometry: %s", zp.message)
    else:
        pm = zp.model_fit
        log.info("photometry: ZPTOTAL %.3f +- %.3f mag at the zenith, k %.3f (%s), from %d "
                 "stars, scatter %.3f mag (aperture correction %s, %d stars)", zp.zp_total,
                 zp.zp_err, pm.model.k, pm.k_source, zp.n_stars, pm.rms_mag, zp.apcor_source,
                 zp.n_apcor)


def _log_transparency(s, cfg):
    if s.message:
        log.warning("transparency: %s: %d stars vote", s.message, s.n_voting)
    elif s.n_cells == 0:
        log.warning("transparency: no star bright enough to judge the sky on this frame")
    elif s.clear_fraction < cfg.cloudy_warning:
        log.warning("transparency: mostly cloudy: clear fraction %.2f, median transparency %.2f "
                    "(%d stars in %d cells)", s.clear_fraction, s.median, s.n_voting,
                    s.n_cells)
    else:
        log.info("transparency: clear fraction %.2f, median transparency %.2f, grey %.3f "
                 "(%d stars)", s.clear_fraction, s.median, s.grey, s.n_voting)


def _seeded(camera, start_model):
    """``camera`` whose astrometric fit starts from ``start_model``."""
    import dataclasses
    return dataclasses.replace(
        camera, astrometry=dataclasses.replace(camera.astrometry, model=start_model))


def _against_template(sol, template, alt, az, x_meas, y_meas):
    """A seeded solution reported against the static ``template``.

    The offsets (DZENX, DZENY, DROT) and the template RMS (on the stars of
    the final fit, given by ``alt, az, x_meas, y_meas``; NaN when the fit
    did not use measured centroids) then describe the camera's drift from
    its configuration, whatever the fit started from.
    """
    import dataclasses

    from allsky_camera.stages import astrometry
    if sol.template is template:
        return sol
    if x_meas is None or len(sol.fit.used) != len(x_meas):
        trms = float("nan")
    else:
        u = sol.fit.used
        dx, dy = astrometry.residuals(template, x_meas[u], y_meas[u], alt[u], az[u])
        trms = astrometry.rms(dx, dy)
    return dataclasses.replace(sol, template=template, template_rms_px=trms)


def reduce_exposure(exposure, camera, products, timer=None, *, start_model=None,
                    clear_zp_total=None):
    """Reduce one exposure in memory.

    Parameters
    ----------
    exposure : Exposure
        From :func:`allsky_camera.stages.io.read_exposure` (or the simulator); not
        modified.
    camera : Camera
    products : Products
        What is wanted (the sky map and streaks are computed only if asked).
    timer : Timer, optional
        Stage times are added to it.
    start_model : CameraModel, optional
        Where the astrometric fit starts (for a night: the last good fit
        before this frame); default the camera's static template.  Offsets
        are always reported against the static template.
    clear_zp_total : float, optional
        Clear-sky total-flux zeropoint (mag, 1 ADU/s) that transparency is
        measured against (for a night: from its clearest dark frames);
        default the camera's nominal zeropoint.

    Returns
    -------
    Reduction
    """
    import numpy as np

    from allsky_camera.camera import coords
    from allsky_camera.flags import bit
    from allsky_camera.stages import (
        astrometry,
        catalog,
        centroid,
        detrend,
        photmodel,
        photometry,
        skystat,
        transparency,
    )

    timer = timer or Timer()

    # 1. static masks and detrend --------------------------------------------
    bpm, obstruction = _static_masks(camera, exposure.raw.shape)
    det = detrend.run(exposure.raw, camera, bad_pixel_mask=bpm, path=exposure.path)
    timer.lap("detrend")

    # 2. catalog: reference stars at this time and place ------------------------
    site, site_src = coords.site_from_config(camera.site, exposure.header)
    ph = camera.photometry
    stars = catalog.reference_stars(exposure.time.jd_tt, ph.vmax)
    alt, az = coords.radec_to_altaz(stars["RA"], stars["DEC"], exposure.time, site)
    above = alt > 0
    stars, alt, az = stars[above], alt[above], az[above]
    ephem = coords.sun_moon_altaz(exposure.time, site)
    moon_sep = coords.angular_sep(az, alt, ephem["moon_az"], ephem["moon_alt"])
    planet_sep = coords.planet_separation(alt, az, coords.planets_altaz(exposure.time, site))
    timer.lap("catalog")

    # 3. astrometry: template -> per-exposure fit on bright stars ---------------
    a = camera.astrometry
    template = a.model
    start = template if start_model is None else start_model
    fit_camera = camera if start_model is None else _seeded(camera, start_model)
    vmag = np.asarray(stars["VMAG"], dtype=float)
    isolated = catalog.isolated(stars, ph.isolation_deg, ph.neighbour_dv)
    xt, yt = template.altaz_to_xy(alt, az)
    xs, ys = (xt, yt) if start is template else start.altaz_to_xy(alt, az)
    clear_of_moon = moon_sep >= ph.moon_exclusion_deg
    clear_of_planets = planet_sep >= ph.planet_exclusion_deg
    candidates = astrometry.fit_candidates(
        vmag, isolated, clear_of_moon, np.hypot(xs - start.x0, ys - start.y0),
        a) & clear_of_planets
    sol = astrometry.solve(det.image, alt, az, candidates, fit_camera, vmag=vmag,
                           where=exposure.path)
    timer.lap("astrometry")

    # 4. centroids of every star at the fitted prediction, then the final fit --
    x, y = sol.model.altaz_to_xy(alt, az)
    ny, nx = det.image.shape
    on_chip = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    stars, alt, az, x, y, xt, yt, vmag, isolated, clear_of_moon, moon_sep, clear_of_planets = (
        v[on_chip] for v in (stars, alt, az, x, y, xt, yt, vmag, isolated, clear_of_moon,
                             moon_sep, clear_of_planets))
    xc, yc, flags = centroid.run(det.image, exposure.raw, x, y, cfg=camera.centroid,
                                 saturation_adu=camera.sensor.saturation_adu,
                                 workers=products.centroid_workers)
    flags |= centroid.position_flags(
        x, y, vmag, np.hypot(x - sol.model.x0, y - sol.model.y0), isolated, clear_of_moon,
        box_half_px=camera.centroid.box_half_px, neighbour_dv=ph.neighbour_dv,
        safe_radius_px=a.safe_radius_px)
    flags[~clear_of_planets] |= bit("PLANET")
    good_pos = flags == 0
    first = sol
    sol = astrometry.refit(sol, det.image, alt, az, good_pos, fit_camera, xc, yc, vmag=vmag)
    x, y = sol.model.altaz_to_xy(alt, az)
    refitted = sol is not first
    sol = _against_template(sol, template, alt[good_pos], az[good_pos],
                            xc[good_pos] if refitted else None,
                            yc[good_pos] if refitted else None)
    timer.lap("centroid")

    # 5. photometry and zeropoints --------------------------------------------
    mask = det.bad if obstruction is None else (
        obstruction if det.bad is None else det.bad | obstruction)
    xm, ym = photometry.measured_positions(xc, yc, x, y, flags, forced=ph.forced and sol.fit.ok)
    fl = photometry.measure(det.image, xm, ym, ph, mask=mask,
                            quantum=1.0 if exposure.raw.dtype.kind in "iu" else 0.0,
                            big=vmag <= ph.apcor_vmax)
    flags |= photometry.flux_flags(fl)
    zd = 90.0 - alt
    zpsel, apsel = photometry.zeropoint_stars(vmag, flags, fl, ph, exposure.exptime)
    bv = np.asarray(stars["BV"], dtype=float)
    zp = photometry.zeropoint(vmag, zd, fl, zpsel, apsel, ph, exposure.exptime, bv=bv,
                              az_deg=az)
    timer.lap("photometry")

    # 5b. crowding: every catalogue star's light in each aperture and annulus;
    # blended stars leave the zeropoint (refitted without them) but still vote
    # for clouds, their prediction holding their neighbours' light
    from allsky_camera.stages import crowding
    bv_model = photmodel.colour_or_mean(bv, ph.missing_bv)
    crowd = crowding.run(stars, x, y, sol.model, exposure.time, site, zp.apcor(zd), ph,
                         det.image.shape,
                         star_total_adu=photmodel.clear_sky_model(
                             zp.zp_nominal_total, zp.model_fit, ph).expected_flux(
                             vmag, bv_model, zd, exposure.exptime, az),
                         sky_sigma_adu=fl.sky_sigma_adu)
    blended = crowd.contamination > ph.max_contamination
    refit = bool(np.any(blended & (flags == 0)))
    flags[blended] |= bit("BLENDED")
    timer.lap("crowding")
    if refit:
        zpsel, apsel = photometry.zeropoint_stars(vmag, flags, fl, ph, exposure.exptime)
        zp = photometry.zeropoint(vmag, zd, fl, zpsel, apsel, ph, exposure.exptime, bv=bv,
                                  az_deg=az)
    if not sol.stars_known:    # where the stars are is unknown: measure nothing on them
        from allsky_camera.stages.astrometry_gate import withhold_zeropoint
        zp = dataclasses.replace(withhold_zeropoint(zp, sol.message), model_fit=None)
    _log_zeropoint(zp)
    m_inst = photometry.instrumental_mag(fl.flux_adu, exposure.exptime)
    timer.lap("photometry")

    # 6. what lights the sky, and transparency against the clear-sky model ----------
    sky = skystat.classify(ephem, skystat.zenith_sky_mag(
        fl.sky_adu, zd, sol.model.pixel_solid_angle(x, y), exposure.exptime,
        zp.zp_nominal_total, camera.skystat.zenith_zd_deg), camera.skystat)
    log.info("sky: %s (%s)", sky.status, sky.why)
    daylight = skystat.daylight_reason(sky)
    if daylight and sol.stars_known:
        from allsky_camera.stages.astrometry_gate import withhold_zeropoint
        zp = dataclasses.replace(withhold_zeropoint(zp, daylight, cause="no zeropoint"),
                                 model_fit=None)
        log.warning("%s: %s", exposure.path, daylight)
    apc = zp.apcor(zd)
    zp_clear = zp.zp_nominal_total if clear_zp_total is None else clear_zp_total
    clear = photmodel.clear_sky_model(zp_clear, zp.model_fit, ph)
    tr = transparency.run(vmag=vmag, alt_deg=alt, az_deg=az, flags=flags,
                          flux_total_adu=fl.flux_adu * 10 ** (0.4 * apc),
                          sky_sigma_adu=fl.sky_sigma_adu,
                          expected_total_adu=clear.expected_flux(
                              vmag, bv_model, zd, exposure.exptime, az) * crowd.flux_factor,
                          apcor_mag=apc, exptime=exposure.exptime,
                          aper_area_px=np.pi * ph.aper_radius_px ** 2, cfg=camera.transparency,
                          grey=photmodel.grey_transmission(zp.zp_total, zp_clear))
    if not sol.stars_known or daylight:
        from allsky_camera.stages.astrometry_gate import withhold_transparency
        tr = withhold_transparency(tr)
        log.warning("%s: transparency not measured: %s", exposure.path,
                    "daylight" if sol.stars_known else "astrometry FAILED")
    else:
        if skystat.too_bright(sky.status, tr.summary.n_voting,
                              camera.transparency.min_voting_stars):
            tr = transparency.sky_too_bright(tr, sky.status)
        _log_transparency(tr.summary, camera.transparency)
    timer.lap("transparency")

    # 6b. cloud map: star transparency and sky texture in every sky cell -------
    from allsky_camera.stages import clouds
    cloud_map = clouds.run(det.image, sol.model, star_cell=tr.cell, star_transp=tr.transparency,
                           star_weight=clouds.star_weights(flags, tr.expected_snr,
                                                           camera.transparency),
                           stars_known=sol.stars_known,
                           night=sky.status not in ("twilight", "day"),
                           cfg=camera.transparency, mask=mask,
                           moon_altaz=(ephem["moon_alt"], ephem["moon_az"]),
                           moon_exclusion_deg=ph.moon_exclusion_deg)
    level, msg = clouds.summary_message(cloud_map, tr.summary, ephem["sun_alt"],
                                        camera.transparency)
    log.log(level, "clouds: %s", msg)
    timer.lap("clouds")

    # 7. sky brightness ---------------------------------------------------------
    skymap = None
    if products.sbmap:
        from allsky_camera.stages import sbmap
        skymap = sbmap.run(det.image, sol.model, exposure.exptime, zp.zp_nominal_total,
                           camera.sbmap, a.safe_radius_px, mask=obstruction,
                           workers=products.workers)
        timer.lap("sbmap")

    # 8. streaks --------------------------------------------------------------------
    streak_table = None
    if products.streaks:
        from allsky_camera.stages import streaks
        bright = vmag <= camera.streaks.star_mask_vmax
        streak_table = streaks.detect(det.image, sol.model, cfg=camera.streaks,
                                      exptime=exposure.exptime, zp=zp.zp_nominal_total,
                                      time=exposure.time, site=site, mask=obstruction,
                                      star_xy=(x[bright], y[bright]),
                                      saturated=exposure.raw >= camera.sensor.saturation_adu,
                                      moon_altaz=(ephem["moon_alt"], ephem["moon_az"]),
                                      workers=products.workers)
        timer.lap("streaks")

    return Reduction(
        exposure=exposure, camera=camera, detrended=det, obstruction=obstruction, site=site,
        site_src=site_src, ephem=ephem, stars=stars, alt=alt, az=az, x=x, y=y,
        x_template=xt, y_template=yt, xc=xc, yc=yc, fluxes=fl, m_inst=m_inst,
        moon_sep=moon_sep, flags=flags, zp_sel=zpsel, zeropoint=zp, apcor=apc,
        transparency=tr, clouds=cloud_map, solution=sol, skymap=skymap, streaks=streak_table,
        sky=sky, crowding=crowd)
