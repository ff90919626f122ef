"""Write the products of a :class:`~allsky_camera.reduction.Reduction`.

One function per product; :func:`write_products` writes those asked for by a
:class:`~allsky_camera.output.products.Products`, in a fixed order, each file
atomically (temporary name, then rename; see :mod:`allsky_camera.stages.io`).
Plotting only draws what the reduction measured.
"""

from __future__ import annotations

from pathlib import Path

from allsky_camera import __version__

#: Quiver checkplot: residual arrows are drawn this many times their length,
#: and the key arrow stands for this many pixels.
QUIVER_EXAGGERATION = 40.0
QUIVER_KEY_PX = 0.5


def catalog_table(red):
    """The source catalog: one row per star, every column with unit and description.

    Parameters
    ----------
    red : Reduction

    Returns
    -------
    astropy.table.Table
    """
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

    from allsky_camera.stages.photmodel import airmass

    fl, zp, tr = red.fluxes, red.zeropoint, red.transparency
    for name in ("HIP", "RA", "DEC", "VMAG", "BV"):
        t[name] = red.stars[name]
    col("alt_deg", red.alt, u.deg, "apparent altitude (refracted)")
    col("az_deg", red.az, u.deg, "azimuth, north through east")
    col("x", red.x, u.pix, "predicted x, fitted model (0-based, pixel centres at integers)")
    col("y", red.y, u.pix, "predicted y, fitted model")
    col("x_template", red.x_template, u.pix, "predicted x, static template")
    col("y_template", red.y_template, u.pix, "predicted y, static template")
    col("xcentroid", red.xc, u.pix, "refined centroid x (NaN: failed)")
    col("ycentroid", red.yc, u.pix, "refined centroid y (NaN: failed)")
    col("flux_adu", fl.flux_adu, u.adu, "sky-subtracted flux in the aperture")
    col("flux_err_adu", fl.flux_err_adu, u.adu, "1-sigma error of flux_adu")
    col("flux_total_adu", fl.flux_adu * 10 ** (0.4 * zp.apcor(red.zd)), u.adu,
        "flux_adu corrected to total flux")
    col("sky_adu", fl.sky_adu, u.adu, "sky per pixel, annulus median")
    col("m_inst", red.m_inst, u.mag, "-2.5 log10(flux_adu / exptime)")
    col("airmass", airmass(red.zd), None, "Kasten & Young (1989) airmass")
    col("model_resid", zp.model_fit.residual if zp.model_fit is not None
        else np.full(len(t), np.nan), u.mag, "total-flux mag minus the fitted model")
    col("zp_adu_per_s", red.vmag - red.m_inst, u.mag,
        "VMAG - m_inst, aperture zeropoint of the star")
    col("apcor_mag", np.full(len(t), np.nan) if len(t) == 0 else zp.apcor(red.zd), u.mag,
        "aperture correction at the star's zenith distance")
    col("moon_sep_deg", red.moon_sep, u.deg, "angular distance from the Moon")
    col("nn_sep_deg", red.stars["nn_sep_deg"], u.deg, "nearest catalog neighbour")
    if red.crowding is not None:
        col("contam", red.crowding.contamination, None,
            "other catalog stars' light in aperture + annulus / own")
        col("blend_factor", red.crowding.flux_factor, None,
            "measured flux over the star's own: 1 + c_aper - c_annulus")
    col("transparency", tr.transparency, None, "measured / clear-sky model total flux")
    col("transp_weight", tr.weight, None, "vote weight in the cloud map (0: no vote)")
    col("expected_snr", tr.expected_snr, None, "S/N the star should reach on this sky")
    col("flags", red.flags.astype(np.int32), None, "quality bits, see FLAGBnn cards; 0 = good")
    return t


def header_cards(red):
    """``(keyword, value, comment)`` cards of the catalog header (NaN as text)."""
    import numpy as np

    from allsky_camera.flags import header_cards as flag_cards
    from allsky_camera.stages import astrometry

    exposure, camera, sol, zp = red.exposure, red.camera, red.solution, red.zeropoint
    site, ephem = red.site, red.ephem
    cards = [
        ("PIPELINE", "allsky_camera", "reduction pipeline"),
        ("PIPEVER", __version__, "pipeline version"),
        ("CAMERA", camera.name, "camera configuration"),
        ("RAWFILE", Path(exposure.path).name, "raw exposure"),
        ("DATE-OBS", exposure.time.iso_utc, "UTC start of exposure"),
        ("MJD-OBS", round(exposure.time.mjd_utc, 8), "[d] UTC MJD start of exposure"),
        ("EXPTIME", exposure.exptime, "[s] exposure time"),
        ("SITELAT", site.lat_deg, f"[deg] site latitude (from {red.site_src})"),
        ("SITELONG", site.lon_deg, f"[deg] site east longitude (from {red.site_src})"),
        ("SITEELEV", site.height_m, "[m] site height"),
        ("BIASLVL", round(red.detrended.level, 3), "[adu] dark+bias level subtracted"),
        ("SUNALT", round(ephem["sun_alt"], 3), "[deg] Sun altitude"),
        ("MOONALT", round(ephem["moon_alt"], 3), "[deg] Moon altitude"),
        ("MOONAZ", round(ephem["moon_az"], 3), "[deg] Moon azimuth"),
        ("MOONILL", round(ephem["moon_illum"], 3), "Moon illuminated fraction"),
    ]
    cards += sol.template.header_cards(prefix="T")
    cards += sol.model.header_cards()
    cards += astrometry.offsets_cards(sol.template, sol.model, sol.fit, sol.template_rms_px)
    cards += sol.header_cards()
    cards += zp.header_cards()
    if zp.message:
        cards.append(("ZPMSG", zp.message, "why there is no zeropoint"))
    if red.sky is not None:
        cards += red.sky.header_cards()
    if red.skymap is not None:
        sm = red.skymap
        cards += [("SBZENITH", round(sm.zenith_mag, 3), "[mag/arcsec2] sky at the zenith"),
                  ("SBMEDIAN", round(sm.median_mag, 3), "[mag/arcsec2] median sky"),
                  ("SBKERNEL", sm.kernel_px, "[pix] sky median kernel")]
    cards = [(k, v if not isinstance(v, float) or np.isfinite(v) else "NaN", c)
             for k, v, c in cards]
    return (cards + red.transparency.summary.header_cards() + red.clouds.header_cards()
            + flag_cards())


def _product_cards(red):
    return [("CAMERA", red.camera.name, "camera configuration"),
            ("PIPEVER", __version__, "pipeline version"),
            ("DATE-OBS", red.exposure.time.iso_utc, "UTC start of exposure")]


def detrend_cards(red):
    """Header cards of the detrended image: DATE-OBS in UTC, the camera's clock in CAMDATE."""
    det = red.detrended
    h, exposure = red.camera.header, red.exposure
    clock = ([("CAMDATE", str(exposure.header[h.dateobs_card]),
               f"camera clock {h.dateobs_card}, UTC{h.utc_offset_hours:+g} h")]
             if h.dateobs_card in exposure.header else [])
    return [
        ("DATE-OBS", exposure.time.iso_utc, "UTC start of exposure"),
        *clock,
        ("BUNIT", "adu", "detrended counts"),
        ("DETREND", True, "dark+bias subtracted by allsky_camera"),
        ("PIPEVER", __version__, "pipeline version"),
        ("CAMERA", red.camera.name, "camera configuration"),
        ("BIASLVL", round(det.level, 3), "[adu] dark+bias level subtracted"),
        ("BIASSRC", det.level_source, "where the level was measured"),
        ("NBADPIX", det.n_bad, "bad pixels interpolated over"),
    ]


def write_catalog(red, path, table=None, cards=None):
    """The source catalog as a FITS binary table (extension CATALOG)."""
    from allsky_camera.stages import io
    io.write_table(catalog_table(red) if table is None else table, path,
                   header_cards=header_cards(red) if cards is None else cards)


def write_detrended(red, path):
    """The detrended image (float32) with the raw header and the detrend cards."""
    from allsky_camera.stages import io
    io.write_image(red.detrended.image, path, header=red.exposure.header,
                   header_cards=detrend_cards(red), where=red.exposure.path)


def write_streaks(red, path):
    """The streak table (extension STREAKS)."""
    from allsky_camera.stages import io
    io.write_table(red.streaks, path, extname="STREAKS", header_cards=[
        ("NSTREAK", len(red.streaks), "streaks found"), *_product_cards(red)])


def write_healpix(red, path):
    """HEALPix maps of the per-star total zeropoint and transparency."""
    import numpy as np

    from allsky_camera.stages import healpix

    nside = red.camera.transparency.nside
    zp_star_total = red.vmag - red.m_inst + red.apcor
    maps = healpix.build_maps(nside, red.alt, red.az, red.stars["RA"], red.stars["DEC"],
                              zp_star_total, red.flags == 0, red.transparency.transparency,
                              np.asarray(red.transparency.weight) > 0, red.clouds.state,
                              red.clouds.confidence, red.clouds.evidence_deg)
    healpix.write_maps(maps, nside, path, extra_cards=_product_cards(red))


def write_sbmap_fits(red, path):
    """The sky brightness map, V mag/arcsec2, NaN off the sky."""
    from allsky_camera.stages import io
    sm = red.skymap
    io.write_image(sm.mag, path, header_cards=[
        ("BUNIT", "mag/arcsec2", "V surface brightness of the sky"),
        ("SBKERNEL", sm.kernel_px, "[pix] median filter width"),
        ("SBZP", round(sm.zp, 4), "[mag] zeropoint used, total flux, 1 ADU/s"),
        ("SBRADIUS", red.camera.astrometry.safe_radius_px,
         "[pix] mapped within this radius of the zenith"),
        *_product_cards(red),
        ("COMMENT", "NaN where not sky or outside the mapped radius", "")])


def _title(red):
    """The frame's file name, printable whatever characters it holds."""
    from allsky_camera.stages.io import fits_text
    return fits_text(Path(red.exposure.path).name)


def plot_zeropoint(red, path):
    """Checkplot: instrumental against catalog magnitude, zeropoint stars marked, and
    the residuals about the fitted photometric model against B-V and airmass."""
    from allsky_camera.output import plotting
    from allsky_camera.stages import photmodel
    zp = red.zeropoint
    fig = plotting.new_figure(plotting.ZP_MODEL_FIGSIZE)
    axes = plotting.zp_model_axes(fig)
    plotting.plot_zeropoint(axes[0], red.vmag, red.m_inst, zp.zp_aper,
                            title=f"{_title(red)}  ZPAPER = {zp.zp_aper:.3f}", used=red.zp_sel)
    pm = zp.model_fit
    if pm is not None:
        plotting.plot_model_residuals(axes[1], red.bv, pm.residual, used=pm.used,
                                      xlabel="B-V (mag)",
                                      title=f"colour term c = {pm.model.colour_term:.3f}, "
                                            f"c2 = {pm.model.colour_quad:.3f} (B-V - "
                                            f"{photmodel.COLOUR_PIVOT_BV:g})²")
        plotting.plot_model_residuals(axes[2], photmodel.airmass(red.zd), pm.residual,
                                      used=pm.used, xlabel="airmass (Kasten & Young)",
                                      title=f"k = {pm.model.k:.3f} ({pm.k_source})")
    plotting.save_figure(fig, path)


def plot_quiver(red, path):
    """Checkplot: centroid minus fitted prediction of the good stars."""
    import numpy as np

    from allsky_camera.output import plotting
    sol = red.solution
    ny, nx = red.detrended.image.shape
    fig = plotting.new_figure(plotting.MAP_FIGSIZE)
    used = (red.flags == 0) & np.isfinite(red.xc)
    x, y = red.x[used], red.y[used]
    plotting.plot_quiver(
        fig.add_subplot(), x, y, red.xc[used] - x, red.yc[used] - y,
        title=(f"{_title(red)}: residuals of the fitted model\nrms {sol.fit.rms_px:.2f} px "
               f"(static template: {sol.template_rms_px:.2f} px)"),
        key_px=QUIVER_KEY_PX, nx=nx, ny=ny, exaggerate=QUIVER_EXAGGERATION)
    plotting.save_figure(fig, path)


def plot_sbmap(red, path):
    """Checkplot: the sky brightness map."""
    from allsky_camera.output import plotting
    fig = plotting.new_figure(plotting.MAP_FIGSIZE)
    plotting.plot_sbmap(fig, fig.add_subplot(), red.skymap.mag,
                        title=(f"{_title(red)}; within "
                               f"{red.camera.astrometry.safe_radius_px:g} px of the zenith"))
    plotting.save_figure(fig, path)


def _sky_mask(red):
    """Pixels that are not sky: the obstruction mask and the detrend's bad pixels."""
    det, obs = red.detrended, red.obstruction
    return det.bad if obs is None else (obs if det.bad is None else det.bad | obs)


def plot_transparency(red, path):
    """Checkplot: the cloud states (clear, cloud, unknown, not sky), compass, zenith."""
    from allsky_camera.output import plotting
    from allsky_camera.stages import clouds
    tr, cm, st = red.transparency, red.clouds, plotting.TRANSP_STRIDE
    img, _, _ = clouds.pixel_maps(cm, red.solution.model, red.detrended.image.shape,
                                  mask=_sky_mask(red), stride=st)
    votes = tr.weight > 0
    f = cm.fractions()
    fig = plotting.new_figure(plotting.MAP_FIGSIZE)
    plotting.plot_cloud_states(
        fig.add_subplot(), img[::st, ::st], stride=st, names=clouds.STATE_NAMES,
        compass=clouds.compass(red.solution.model, alt_deg=plotting.COMPASS_ALT_DEG),
        x=red.x[votes], y=red.y[votes], t=tr.transparency[votes],
        title=(f"{_title(red)}: clouds; clear {f['clear']:.2f}, cloud {f['cloud']:.2f}, "
               f"unknown {f['unknown']:.2f} of the visible sky"))
    plotting.save_figure(fig, path)


def write_clouds(red, path):
    """The cloud map on the raw frame's pixel grid (``-clouds.fits``)."""
    from allsky_camera.stages import clouds
    state, transp, conf = clouds.pixel_maps(red.clouds, red.solution.model,
                                            red.exposure.raw.shape, mask=_sky_mask(red),
                                            stride=clouds.PIXEL_MAP_STRIDE)
    clouds.write_cloud_image(path, state, transp, conf,
                             header_cards=[*red.clouds.header_cards(), *_product_cards(red)])


def plot_centroids(red, path):
    """Checkplot: the detrended image with the good centroids."""
    import numpy as np

    from allsky_camera.output import plotting
    from allsky_camera.stages import sbmap
    s = red.camera.sensor
    image = red.detrended.image
    fig = plotting.new_figure((s.nx / plotting.DPI + 1.5, s.ny / plotting.DPI + 1.0))
    okc = (red.flags == 0) & np.isfinite(red.xc)
    plotting.plot_detrended(
        fig.add_subplot(), image,
        sky_mask=sbmap.safe_mask(image.shape, red.solution.model,
                                 red.camera.astrometry.safe_radius_px),
        x=red.xc[okc], y=red.yc[okc], title=f"{_title(red)}; {okc.sum()} good centroids",
        percentiles=plotting.DETRENDED_PERCENTILES, marker_px=plotting.CENTROID_MARKER_PX)
    plotting.save_figure(fig, path)


def write_products(red, products, paths, *, written=None, timer=None, table=None, cards=None):
    """Write every product asked for, checkplots first, then the data files.

    Parameters
    ----------
    red : Reduction
    products : Products
    paths : dict
        From :func:`allsky_camera.output.products.output_paths`.
    written : list, optional
        Each path is appended once written (so a caller can remove them if a
        later step fails).
    timer : Timer, optional
    table, cards : optional
        The catalog table and header cards, if already built.

    Returns
    -------
    list of Path
        The files written.
    """
    written = [] if written is None else written

    def lap(name):
        if timer is not None:
            timer.lap(name)

    def put(kind, writer):
        writer(red, paths[kind])
        written.append(paths[kind])

    if products.checkplots:
        put("zp", plot_zeropoint)
        put("quiver", plot_quiver)
        if red.skymap is not None:
            put("sbmap", plot_sbmap)
        lap("plotting")
    if products.healpix and products.checkplots:
        put("transp", plot_transparency)
        lap("plotting")
    if products.centroid_plot:
        put("detrended_png", plot_centroids)
        lap("plotting")
    if products.catalog:
        write_catalog(red, paths["cat"], table, cards)
        written.append(paths["cat"])
    if products.detrended:
        put("detrended", write_detrended)
    if red.streaks is not None:
        put("streaks", write_streaks)
    if products.clouds:
        put("clouds", write_clouds)
    if products.healpix:
        lap("write")     # the products above are not HEALPix time
        put("healpix", write_healpix)
        lap("healpix")
    if products.sbmap_fits and red.skymap is not None:
        put("sbmap_fits", write_sbmap_fits)
    lap("write")
    return written
