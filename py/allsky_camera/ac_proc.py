#!/usr/bin/env python
"""Run the all-sky camera reduction pipeline on one exposure.

    python py/allsky_camera/ac_proc.py RAW.fits --outdir DIR

The stages run in the order written in :func:`process`, each a function of
its own module, passing arrays and tables in memory.  Errors the user can fix
end the run with one line on stderr and exit status 2; a sky that does not
allow a measurement (clouds, twilight) is logged, recorded in the output
header, and the run goes on with what it can produce.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:   # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allsky_camera import __version__
from allsky_camera.exceptions import AllskyError

log = logging.getLogger("allsky_camera")

#: The demo's camera is knocked off its template by this much (pixels, deg),
#: to show the per-exposure astrometric fit at work.
DEMO_SHIFT_PX = (2.5, -1.5)
DEMO_ROTATION_DEG = 0.3

#: Products of the optional flags that a later release adds.
NOT_YET = {
}


def build_parser():
    """The command-line parser (the original pipeline's options and ours)."""
    p = argparse.ArgumentParser(
        prog="ac_proc.py",
        description="run the all-sky camera reduction pipeline on an exposure")
    p.add_argument("fname_in", nargs="?", help="all-sky camera raw image file name")
    p.add_argument("--outdir", default=".", help="directory to write outputs in (default: .)")
    p.add_argument("--dont_write_detrended", action="store_true",
                   help="don't write detrended image")
    p.add_argument("--multiproc", type=int, default=1, metavar="MULTIPROC",
                   help="number of parallel workers (threads) for the heavy stages: sky median, "
                        "streaks, and centroiding with --force_mp_centroiding (default 1)")
    p.add_argument("--skip_checkplots", action="store_true", help="don't create checkplots")
    p.add_argument("--skip_sbmap", action="store_true", help="don't do sky brightness map")
    p.add_argument("--write_sbmap", action="store_true",
                   help="write sky brightness map as FITS image")
    p.add_argument("--force_mp_centroiding", action="store_true",
                   help="use the --multiproc workers for recentroiding too")
    p.add_argument("--dont_write_catalog", action="store_true",
                   help="don't write source catalog FITS file")
    p.add_argument("--oplot_centroids", action="store_true",
                   help="checkplot overlaying centroids on detrended image")
    p.add_argument("--write_healpix", action="store_true",
                   help="write HEALPix map of photometric zeropoint")
    p.add_argument("--write_clouds", action="store_true",
                   help="write the cloud map (-clouds.fits: state, transparency, confidence)")
    p.add_argument("--detect_streaks", action="store_true",
                   help="run satellite streak detection/cataloging")
    p.add_argument("--camera", default=None,
                   help="camera configuration: a name in etc/ or a YAML path (default MDM)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (otherwise they are refused)")
    p.add_argument("--demo", action="store_true",
                   help="reduce a simulated exposure of the camera (no input file needed)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every stage's details")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("--version", action="version", version=f"allsky_camera {__version__}")
    return p


@dataclass
class Timer:
    """Wall-clock time of each stage, for the log and the benchmark."""

    times: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    def lap(self, name):
        t = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + t - self._t0
        log.debug("%s: %.3f s", name, t - self._t0)
        self._t0 = t


def output_paths(outdir, stem):
    """Names of every product of an exposure, by kind."""
    o = Path(outdir)
    return {k: o / f"{stem}-{k}.{ext}" for k, ext in (
        ("cat", "fits"), ("detrended", "fits"), ("zp", "png"), ("quiver", "png"),
        ("sbmap", "png"))} | {"sbmap_fits": o / f"{stem}-sbmap.fits",
                              "detrended_png": o / f"{stem}-detrended.png",
                              "healpix": o / f"{stem}-healpix.fits",
                              "transp": o / f"{stem}-transp.png",
                              "streaks": o / f"{stem}-streaks.fits",
                              "clouds": o / f"{stem}-clouds.fits"}


def wanted_outputs(opts, paths):
    """The products this run will write, given the options."""
    want = []
    if not opts.dont_write_catalog:
        want.append(paths["cat"])
    if not opts.dont_write_detrended:
        want.append(paths["detrended"])
    if not opts.skip_checkplots:
        want += [paths["zp"], paths["quiver"]]
        if not opts.skip_sbmap:
            want.append(paths["sbmap"])
    if opts.write_sbmap and not opts.skip_sbmap:
        want.append(paths["sbmap_fits"])
    if opts.oplot_centroids:
        want.append(paths["detrended_png"])
    if opts.detect_streaks:
        want.append(paths["streaks"])
    if opts.write_clouds:
        want.append(paths["clouds"])
    if opts.write_healpix:
        want.append(paths["healpix"])
        if not opts.skip_checkplots:
            want.append(paths["transp"])
    return want


def process(exposure, camera, opts, timer=None, written=None):
    """Reduce one exposure and write its products.

    Parameters
    ----------
    exposure : Exposure
        From :func:`allsky_camera.io.read_exposure` (or the simulator).
    camera : Camera
    opts : argparse.Namespace
        The command-line options.
    timer : Timer, optional
    written : list, optional
        Paths are appended as products are written (so a caller can remove
        them if a later step fails).

    Returns
    -------
    dict
        The in-memory results: ``catalog`` (astropy Table), ``solution``,
        ``zeropoint``, ``skymap`` (or None), ``paths`` written.
    """
    import numpy as np

    from allsky_camera import astrometry, catalog, centroid, coords, detrend, io, photometry
    from allsky_camera.flags import bit
    from allsky_camera.flags import header_cards as flag_cards

    timer = timer or Timer()
    paths = output_paths(opts.outdir, exposure.stem)
    written = [] if written is None else written

    # 1. static masks and detrend --------------------------------------------
    bpm = obstruction = None
    if camera.sensor.bad_pixel_mask or camera.sensor.obstruction_mask:
        from allsky_camera import masks
        shape = exposure.raw.shape
        if camera.sensor.bad_pixel_mask:
            bpm = masks.read_mask(camera.resolve(camera.sensor.bad_pixel_mask), shape)
        if camera.sensor.obstruction_mask:
            obstruction = masks.read_mask(camera.resolve(camera.sensor.obstruction_mask), shape)
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
    timer.lap("catalog")

    # 3. astrometry: template -> per-exposure fit on bright stars ---------------
    a = camera.astrometry
    template = a.model
    vmag = np.asarray(stars["VMAG"], dtype=float)
    nn = np.asarray(stars["nn_sep_deg"], dtype=float)
    nn_dv = np.asarray(stars["nn_dv"], dtype=float)
    isolated = ~((nn < ph.isolation_deg) & (nn_dv < ph.neighbour_dv))
    xt, yt = template.altaz_to_xy(alt, az)
    rt = np.hypot(xt - template.x0, yt - template.y0)
    clear_of_moon = moon_sep >= ph.moon_exclusion_deg
    bright = (vmag <= a.fit_vmax) & isolated & clear_of_moon & (rt <= a.safe_radius_px)
    sol = astrometry.solve(det.image, alt, az, bright, camera)
    timer.lap("astrometry")

    # 4. centroids of every star at the fitted prediction, then the final fit --
    x, y = sol.model.altaz_to_xy(alt, az)
    ny, nx = det.image.shape
    on_chip = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    stars, alt, az, x, y, xt, yt, vmag, isolated, clear_of_moon, moon_sep = (
        v[on_chip] for v in (stars, alt, az, x, y, xt, yt, vmag, isolated, clear_of_moon,
                             moon_sep))
    workers = max(opts.multiproc, 1) if opts.force_mp_centroiding else 1
    xc, yc, flags = centroid.run(det.image, exposure.raw, x, y, cfg=camera.centroid,
                                 saturation_adu=camera.sensor.saturation_adu, workers=workers)
    r = np.hypot(x - sol.model.x0, y - sol.model.y0)
    # isolation on the sky (catalog) and in pixels (a neighbour inside the centroid box)
    near, _ = centroid.nearest_other(x, y, x, y, camera.centroid.box_half_px + 1.0,
                                     exclude_self=True)
    crowded = (near >= 0) & (vmag[np.maximum(near, 0)] - vmag < ph.neighbour_dv)
    flags[~isolated | crowded] |= bit("NOT_ISOLATED")
    flags[~clear_of_moon] |= bit("MOON")
    flags[r > a.safe_radius_px] |= bit("OUTSIDE_SAFE")
    good_pos = flags == 0
    if sol.fit.ok and good_pos.sum() >= a.min_stars:
        final = astrometry.solve(det.image, alt, az, good_pos, camera, x_meas=xc, y_meas=yc)
        if final.fit.ok:
            sol = final
            x, y = sol.model.altaz_to_xy(alt, az)
    timer.lap("centroid")

    # 5. photometry and zeropoints --------------------------------------------
    # stars found are measured at their centroid; stars not found (or whose
    # centroid wandered off) at the fitted prediction, so clouds read as ~0 flux
    mask = det.bad if obstruction is None else (
        obstruction if det.bad is None else det.bad | obstruction)
    lost = (flags & (bit("FAINT") | bit("NO_FLUX") | bit("SHIFT") | bit("OTHER_STAR"))) > 0
    found = np.isfinite(xc) & ~lost
    fl = photometry.measure(det.image, np.where(found, xc, x), np.where(found, yc, y), ph,
                            mask=mask,
                            quantum=1.0 if exposure.raw.dtype.kind in "iu" else 0.0,
                            big=vmag <= ph.apcor_vmax)
    flags[~(fl.flux_adu > 0)] |= bit("NO_FLUX")
    flags[fl.n_bad_pix > 0] |= bit("BAD_PIXEL")
    zd = 90.0 - alt
    good = flags == 0
    zpsel = good & (vmag <= (ph.zp_vmax if ph.zp_vmax is not None else ph.vmax))
    if ph.zp_min_snr > 0:
        # on a bright sky (Moon, twilight) faint stars are noise: keep the stars
        # that should be well measured, whatever their own noise did
        from allsky_camera.transparency import expected_snr
        zp_aper_guess = ph.zp_nominal - (ph.apcor_default_mag
                                         if ph.zp_nominal_scale == "total" else 0.0)
        snr_exp = expected_snr(vmag, zp_aper_guess, exposure.exptime,
                               np.nan_to_num(fl.sky_sigma_adu, nan=np.inf),
                               np.pi * ph.aper_radius_px ** 2)
        zpsel &= snr_exp >= ph.zp_min_snr
    apsel = good & (vmag <= ph.apcor_vmax)
    zp = photometry.zeropoint(vmag, zd, fl, zpsel, apsel, ph, exposure.exptime)
    if zp.message:
        log.warning("photometry: %s", zp.message)
    else:
        log.info("photometry: ZPAPER %.3f ZPTOTAL %.3f +- %.3f mag from %d stars "
                 "(aperture correction %s, %d stars)", zp.zp_aper, zp.zp_total, zp.zp_err,
                 zp.n_stars, zp.apcor_source, zp.n_apcor)
    m_inst = photometry.instrumental_mag(fl.flux_adu, exposure.exptime)
    timer.lap("photometry")

    # 6. transparency: clouds ------------------------------------------------------
    from allsky_camera import transparency
    apc = zp.apcor(zd)
    tr = transparency.run(vmag=vmag, alt_deg=alt, az_deg=az, flags=flags,
                          flux_total_adu=fl.flux_adu * 10 ** (0.4 * apc),
                          sky_sigma_adu=fl.sky_sigma_adu, zp_nominal_total=zp.zp_nominal_total,
                          apcor_mag=apc, exptime=exposure.exptime,
                          aper_area_px=np.pi * ph.aper_radius_px ** 2, cfg=camera.transparency)
    timer.lap("transparency")

    # 6b. cloud map: star transparency and sky texture in every sky cell ---------
    from allsky_camera import clouds
    cloud_map = clouds.run(det.image, sol.model, star_cell=tr.cell,
                           star_transp=tr.transparency,
                           star_weight=clouds.star_weights(flags, tr.expected_snr,
                                                           camera.transparency),
                           cfg=camera.transparency, mask=mask,
                           moon_altaz=(ephem["moon_alt"], ephem["moon_az"]),
                           moon_exclusion_deg=ph.moon_exclusion_deg)
    level, msg = clouds.summary_message(cloud_map, tr.summary, ephem["sun_alt"],
                                        camera.transparency)
    log.log(level, "clouds: %s", msg)
    timer.lap("clouds")

    # 7. sky brightness ---------------------------------------------------------
    skymap = None
    if not opts.skip_sbmap:
        from allsky_camera import sbmap
        skymap = sbmap.run(det.image, sol.model, exposure.exptime, zp.zp_nominal_total,
                           camera.sbmap, a.safe_radius_px, mask=obstruction,
                           workers=max(opts.multiproc, 1))
        timer.lap("sbmap")

    # 8. streaks --------------------------------------------------------------------
    streak_table = None
    if opts.detect_streaks:
        from allsky_camera import streaks
        bright = vmag <= camera.streaks.star_mask_vmax
        streak_table = streaks.detect(det.image, sol.model, cfg=camera.streaks,
                                      exptime=exposure.exptime, zp=zp.zp_nominal_total,
                                      time=exposure.time, site=site, mask=obstruction,
                                      star_xy=(x[bright], y[bright]),
                                      workers=max(opts.multiproc, 1))
        timer.lap("streaks")

    # 9. catalog table -----------------------------------------------------------
    cat = _catalog_table(stars, alt, az, x, y, xt, yt, xc, yc, fl, m_inst, vmag, zp, zd,
                         moon_sep, flags, tr)
    cards = _header_cards(exposure, camera, det, site, site_src, ephem, sol, zp, skymap)
    cards += tr.summary.header_cards()
    cards += cloud_map.header_cards()
    cards += flag_cards()
    timer.lap("table")

    # 10. checkplots --------------------------------------------------------------
    title = Path(exposure.path).name
    if not opts.skip_checkplots:
        from allsky_camera import plotting
        fig = plotting.new_figure(plotting.ZP_FIGSIZE)
        plotting.plot_zeropoint(fig.add_subplot(), vmag, m_inst, zp.zp_aper,
                                title=f"{title}  ZPAPER = {zp.zp_aper:.3f}", used=zpsel)
        plotting.save_figure(fig, paths["zp"])
        written.append(paths["zp"])
        fig = plotting.new_figure(plotting.MAP_FIGSIZE)
        used = good & np.isfinite(xc)
        plotting.plot_quiver(
            fig.add_subplot(), x[used], y[used], (xc - x)[used], (yc - y)[used],
            title=(f"{title}: residuals of the fitted model\nrms {sol.fit.rms_px:.2f} px "
                   f"(static template: {sol.template_rms_px:.2f} px)"),
            key_px=_QUIVER_KEY_PX, nx=nx, ny=ny, exaggerate=_QUIVER_EXAGGERATION)
        plotting.save_figure(fig, paths["quiver"])
        written.append(paths["quiver"])
        if skymap is not None:
            fig = plotting.new_figure(plotting.MAP_FIGSIZE)
            plotting.plot_sbmap(fig, fig.add_subplot(), skymap.mag,
                                title=f"{title}; within {a.safe_radius_px:g} px of the zenith")
            plotting.save_figure(fig, paths["sbmap"])
            written.append(paths["sbmap"])
        timer.lap("plotting")
    if opts.write_healpix and not opts.skip_checkplots:
        from allsky_camera import plotting
        st_img, _, _ = clouds.pixel_maps(cloud_map, sol.model, det.image.shape, mask=mask,
                                         stride=plotting.TRANSP_STRIDE)
        fig = plotting.new_figure(plotting.MAP_FIGSIZE)
        fr = cloud_map.fractions()
        plotting.plot_cloud_states(
            fig.add_subplot(), st_img[::plotting.TRANSP_STRIDE, ::plotting.TRANSP_STRIDE],
            stride=plotting.TRANSP_STRIDE, names=clouds.STATE_NAMES,
            compass=clouds.compass(sol.model, alt_deg=plotting.COMPASS_ALT_DEG),
            x=x[tr.weight > 0], y=y[tr.weight > 0], t=tr.transparency[tr.weight > 0],
            title=(f"{title}: clouds; clear {fr['clear']:.2f}, cloud {fr['cloud']:.2f}, "
                   f"unknown {fr['unknown']:.2f} of the sky cells"))
        plotting.save_figure(fig, paths["transp"])
        written.append(paths["transp"])
        timer.lap("plotting")
    if opts.oplot_centroids:
        from allsky_camera import plotting, sbmap
        s_ = camera.sensor
        fig = plotting.new_figure((s_.nx / plotting.DPI + 1.5, s_.ny / plotting.DPI + 1.0))
        okc = (flags == 0) & np.isfinite(xc)
        plotting.plot_detrended(
            fig.add_subplot(), det.image,
            sky_mask=sbmap.safe_mask(det.image.shape, sol.model, a.safe_radius_px),
            x=xc[okc], y=yc[okc], title=f"{title}; {okc.sum()} good centroids",
            percentiles=plotting.DETRENDED_PERCENTILES, marker_px=plotting.CENTROID_MARKER_PX)
        plotting.save_figure(fig, paths["detrended_png"])
        written.append(paths["detrended_png"])
        timer.lap("plotting")

    # 11. outputs -------------------------------------------------------------------
    if not opts.dont_write_catalog:
        io.write_table(cat, paths["cat"], header_cards=cards)
        written.append(paths["cat"])
    if not opts.dont_write_detrended:
        io.write_image(det.image, paths["detrended"], header=exposure.header,
                       header_cards=_detrend_cards(det, camera))
        written.append(paths["detrended"])
    if opts.write_clouds:
        st_img, t_img, c_img = clouds.pixel_maps(cloud_map, sol.model, exposure.raw.shape,
                                                 mask=mask, stride=clouds.PIXEL_MAP_STRIDE)
        clouds.write_cloud_image(paths["clouds"], st_img, t_img, c_img, header_cards=[
            *cloud_map.header_cards(),
            ("CAMERA", camera.name, "camera configuration"),
            ("PIPEVER", __version__, "pipeline version"),
            ("DATE-OBS", exposure.time.iso_utc, "UTC start of exposure")])
        written.append(paths["clouds"])
    if streak_table is not None:
        io.write_table(streak_table, paths["streaks"], extname="STREAKS", header_cards=[
            ("NSTREAK", len(streak_table), "streaks found"),
            ("CAMERA", camera.name, "camera configuration"),
            ("PIPEVER", __version__, "pipeline version"),
            ("DATE-OBS", exposure.time.iso_utc, "UTC start of exposure")])
        written.append(paths["streaks"])
    if opts.write_healpix:
        timer.lap("write")     # the products above are not HEALPix time
        from allsky_camera import healpix
        zp_star_total = vmag - m_inst + apc
        maps = healpix.build_maps(camera.transparency.nside, alt, az, stars["RA"], stars["DEC"],
                                  zp_star_total, flags == 0, tr.transparency, tr.weight > 0,
                                  cloud_map.state, cloud_map.confidence)
        healpix.write_maps(maps, camera.transparency.nside, paths["healpix"], extra_cards=[
            ("CAMERA", camera.name, "camera configuration"),
            ("PIPEVER", __version__, "pipeline version"),
            ("DATE-OBS", exposure.time.iso_utc, "UTC start of exposure")])
        written.append(paths["healpix"])
        timer.lap("healpix")
    if opts.write_sbmap and skymap is not None:
        io.write_image(skymap.mag, paths["sbmap_fits"], header_cards=[
            ("BUNIT", "mag/arcsec2", "V surface brightness of the sky"),
            ("SBKERNEL", skymap.kernel_px, "[pix] median filter width"),
            ("SBZP", round(skymap.zp, 4), "[mag] zeropoint used, total flux, 1 ADU/s"),
            ("SBRADIUS", a.safe_radius_px, "[pix] mapped within this radius of the zenith"),
            ("CAMERA", camera.name, "camera configuration"),
            ("PIPEVER", __version__, "pipeline version"),
            ("DATE-OBS", exposure.time.iso_utc, "UTC start of exposure"),
            ("COMMENT", "NaN where not sky or outside the mapped radius", "")])
        written.append(paths["sbmap_fits"])
    timer.lap("write")
    return {"catalog": cat, "solution": sol, "zeropoint": zp, "skymap": skymap,
            "transparency": tr, "clouds": cloud_map, "streaks": streak_table,
            "detrended": det, "header_cards": cards, "paths": written, "ephem": ephem}


#: Quiver checkplot: residual arrows are drawn this many times their length,
#: and the key arrow stands for this many pixels.
_QUIVER_EXAGGERATION = 40.0
_QUIVER_KEY_PX = 0.5


def _catalog_table(stars, alt, az, x, y, xt, yt, xc, yc, fl, m_inst, vmag, zp, zd,
                   moon_sep, flags, tr):
    import astropy.units as u
    import numpy as np
    from astropy.table import Table

    t = Table()
    t.meta = {}

    def col(name, data, unit=None, desc=""):
        t[name] = data
        if unit is not None:
            t[name].unit = unit
        t[name].description = desc

    for name in ("HIP", "RA", "DEC", "VMAG", "BV"):
        t[name] = stars[name]
    col("alt_deg", alt, u.deg, "apparent altitude (refracted)")
    col("az_deg", az, u.deg, "azimuth, north through east")
    col("x", x, u.pix, "predicted x, fitted model (0-based, pixel centres at integers)")
    col("y", y, u.pix, "predicted y, fitted model")
    col("x_template", xt, u.pix, "predicted x, static template")
    col("y_template", yt, u.pix, "predicted y, static template")
    col("xcentroid", xc, u.pix, "refined centroid x (NaN: failed)")
    col("ycentroid", yc, u.pix, "refined centroid y (NaN: failed)")
    col("flux_adu", fl.flux_adu, u.adu, "sky-subtracted flux in the aperture")
    col("flux_err_adu", fl.flux_err_adu, u.adu, "1-sigma error of flux_adu")
    col("flux_total_adu", fl.flux_adu * 10 ** (0.4 * zp.apcor(zd)), u.adu,
        "flux_adu corrected to total flux")
    col("sky_adu", fl.sky_adu, u.adu, "sky per pixel, annulus median")
    col("m_inst", m_inst, u.mag, "-2.5 log10(flux_adu / exptime)")
    col("zp_adu_per_s", vmag - m_inst, u.mag, "VMAG - m_inst, aperture zeropoint of the star")
    col("apcor_mag", np.full(len(t), np.nan) if len(t) == 0 else zp.apcor(zd), u.mag,
        "aperture correction at the star's zenith distance")
    col("moon_sep_deg", moon_sep, u.deg, "angular distance from the Moon")
    col("nn_sep_deg", stars["nn_sep_deg"], u.deg, "nearest catalog neighbour")
    col("transparency", tr.transparency, None, "measured / nominal-zeropoint total flux")
    col("transp_weight", tr.weight, None, "vote weight in the cloud map (0: no vote)")
    col("expected_snr", tr.expected_snr, None, "S/N the star should reach on this sky")
    col("flags", flags.astype(np.int32), None, "quality bits, see FLAGBnn cards; 0 = good")
    return t


def _header_cards(exposure, camera, det, site, site_src, ephem, sol, zp, skymap):
    import numpy as np

    from allsky_camera import astrometry

    cards = [
        ("PIPELINE", "allsky_camera", "reduction pipeline"),
        ("PIPEVER", __version__, "pipeline version"),
        ("CAMERA", camera.name, "camera configuration"),
        ("RAWFILE", Path(exposure.path).name[:68], "raw exposure"),
        ("DATE-OBS", exposure.time.iso_utc, "UTC start of exposure"),
        ("MJD-OBS", round(exposure.time.mjd_utc, 8), "[d] UTC MJD start of exposure"),
        ("EXPTIME", exposure.exptime, "[s] exposure time"),
        ("SITELAT", site.lat_deg, f"[deg] site latitude (from {site_src})"),
        ("SITELONG", site.lon_deg, f"[deg] site east longitude (from {site_src})"),
        ("SITEELEV", site.height_m, "[m] site height"),
        ("BIASLVL", round(det.level, 3), "[adu] dark+bias level subtracted"),
        ("SUNALT", round(ephem["sun_alt"], 3), "[deg] Sun altitude"),
        ("MOONALT", round(ephem["moon_alt"], 3), "[deg] Moon altitude"),
        ("MOONAZ", round(ephem["moon_az"], 3), "[deg] Moon azimuth"),
        ("MOONILL", round(ephem["moon_illum"], 3), "Moon illuminated fraction"),
    ]
    cards += sol.template.header_cards(prefix="T")
    cards += sol.model.header_cards()
    cards += astrometry.offsets_cards(sol.template, sol.model, sol.fit, sol.template_rms_px)
    if sol.message:
        cards.append(("ASTMSG", sol.message[:68], "why the template was kept"))
    cards += zp.header_cards()
    if zp.message:
        cards.append(("ZPMSG", zp.message[:68], "why there is no zeropoint"))
    if skymap is not None:
        cards += [("SBZENITH", round(skymap.zenith_mag, 3), "[mag/arcsec2] sky at the zenith"),
                  ("SBMEDIAN", round(skymap.median_mag, 3), "[mag/arcsec2] median sky"),
                  ("SBKERNEL", skymap.kernel_px, "[pix] sky median kernel")]
    return [(k, v if not isinstance(v, float) or np.isfinite(v) else "NaN", c)
            for k, v, c in cards]


def _detrend_cards(det, camera):
    return [
        ("BUNIT", "adu", "detrended counts"),
        ("DETREND", True, "dark+bias subtracted by allsky_camera"),
        ("PIPEVER", __version__, "pipeline version"),
        ("CAMERA", camera.name, "camera configuration"),
        ("BIASLVL", round(det.level, 3), "[adu] dark+bias level subtracted"),
        ("BIASSRC", det.level_source, "where the level was measured"),
        ("NBADPIX", det.n_bad, "bad pixels interpolated over"),
    ]


def setup_logging(verbose, quiet):
    """Log to stderr: INFO by default, DEBUG with -v, WARNING with -q."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("allsky_camera")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run(opts):
    """Run the pipeline for parsed options; returns the results of :func:`process`."""
    from allsky_camera import config, io

    timer = Timer()
    data = header = None
    if opts.camera is None and not opts.demo:
        # no camera named: pick the configuration that matches the frame
        if not os.path.exists(opts.fname_in):
            raise AllskyError(f"{opts.fname_in}: no such file; check the path")
        data, header = io._read_image_hdu(opts.fname_in)
        camera, why = config.select_camera(header, data.shape)
        log.info("camera %s chosen by %s (give --camera to choose)", camera.name, why)
    else:
        camera = config.load_camera(opts.camera or config.DEFAULT_CAMERA)
    if opts.multiproc < 1:
        raise AllskyError(f"--multiproc {opts.multiproc}: give a number of processes >= 1")
    for key, what in NOT_YET.items():
        if getattr(opts, key):
            log.warning("%s is not available in this version; continuing without it", what)
    io.check_outdir(opts.outdir)
    if opts.demo:
        from allsky_camera import simulate
        sim = simulate.simulate(camera, seed=0, zenith_shift=DEMO_SHIFT_PX,
                                rotation_deg=DEMO_ROTATION_DEG)
        exposure = io.exposure_from_data(f"demo_{camera.name}.fits", sim.image, sim.header,
                                         camera)
    elif data is not None:
        exposure = io.exposure_from_data(opts.fname_in, data, header, camera)
    else:
        exposure = io.read_exposure(opts.fname_in, camera)
    timer.lap("read")
    paths = output_paths(opts.outdir, exposure.stem)
    io.check_not_existing(wanted_outputs(opts, paths), opts.overwrite)
    log.info("%s: camera %s, exposure %.3g s at %s UTC", exposure.path, camera.name,
             exposure.exptime, exposure.time.iso_utc)
    written = []
    try:
        result = process(exposure, camera, opts, timer, written=written)
    except BaseException:
        for p in written:   # leave nothing of a failed run behind
            Path(p).unlink(missing_ok=True)
        raise
    result["times"] = timer.times
    log.info("done in %.2f s (%s)", sum(timer.times.values()),
             ", ".join(f"{k} {v:.2f}" for k, v in timer.times.items()))
    return result


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = build_parser()
    opts = parser.parse_args(argv)
    setup_logging(opts.verbose, opts.quiet)
    if opts.fname_in is None and not opts.demo:
        parser.print_usage(sys.stderr)
        print("ac_proc.py: error: give a raw exposure file name, or --demo", file=sys.stderr)
        return 2
    try:
        run(opts)
    except AllskyError as err:
        print(f"ac_proc.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ac_proc.py: interrupted; no partial output was left", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
