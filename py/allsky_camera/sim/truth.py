"""What a simulated frame was made from, its raw header, and the files it is written to.

:class:`Truth` holds everything a frame was rendered from and
:class:`SimulatedExposure` the frame, its header and its truth;
:func:`star_table` is the truth's star table, :func:`raw_header` the raw
frame's header (the camera's cards and the ``SIM*`` cards) and
:func:`write_simulation` writes the frame and ``<stem>-truth.fits``
(:func:`truth_path`) beside it.

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`:
0-based, ``x`` is the column (fast axis, ``image[y, x]``), pixel centres at
integers.  Angles in degrees.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import os
from pathlib import Path

import numpy as np

from allsky_camera.camera.camera_model import CameraModel
from allsky_camera.camera.coords import ObsTime
from allsky_camera.exceptions import OutputError

log = logging.getLogger(__name__)


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
        One row per rendered star (:func:`star_table`): ``HIP``; ``RA``,
        ``DEC`` (deg, ICRS at the epoch); ``VMAG``; ``BV``; ``x``, ``y``
        (true pixel position, 0-based, centres at integers); ``alt_deg``,
        ``az_deg`` (apparent, refracted); ``airmass``; ``flux_adu`` (total
        ADU in the exposure); ``fwhm_px``; ``ef_aper`` (fraction of the flux
        that exact-overlap photometry in a circle of radius
        ``photometry.aper_radius_px`` centred on the star measures on the
        noiseless image, :func:`~allsky_camera.sim.psf.enclosed_fraction`);
        ``peak_adu`` (brightest pixel of the star's own noiseless light,
        ADU, sky and bias excluded); ``saturated`` (a pixel whose centre
        lies within ``aper_radius_px`` of the star is at ``saturation_adu``
        in the raw frame, hot pixels excluded); ``transmission`` (the
        cloud's at the star, 1 on a clear sky: ``flux_adu`` is the flux
        that reached the camera, already multiplied by it).
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
        zenith PSF (:func:`~allsky_camera.sim.psf.enclosed_fraction`): the zenith zeropoint of the
        flux inside the photometric aperture, mag for 1 ADU/s.  Clouds do
        not change it.
    transmission : ndarray of float32, shape (ny, nx), or None
        Cloud transmission per pixel (0-1), NaN off the sky; None for a
        clear sky.
    streaks : tuple of Streak
        The streaks injected (their light falls only on the sky).
    extras : sim_extras.ExtrasTruth or None
        What the extras (planets, dome, text) put in the frame.
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
    extras: object = None
    ext_coef: float = 0.0
    colour_term: float = 0.0
    vignetting: tuple = ()


@dataclasses.dataclass(frozen=True, eq=False)
class SimulatedExposure:
    """A simulated raw frame, its header and its truth.

    Attributes
    ----------
    image : ndarray, shape (ny, nx)
        Raw data (see :func:`allsky_camera.sim.detector.raw_dtype`), indexed ``image[y, x]``.
    header : astropy.io.fits.Header
        Raw header: exposure time and start time in the camera's cards,
        ``INSTRUME`` when the camera names one, and the ``SIM*`` cards.
    truth : Truth
    """

    image: np.ndarray
    header: object
    truth: Truth


#: Units and descriptions of the truth star table's columns.
STAR_COLUMNS = (
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
STREAK_COLUMNS = (
    ("x1", "pix", "first end point x (may lie off the image)"),
    ("y1", "pix", "first end point y"),
    ("x2", "pix", "second end point x"),
    ("y2", "pix", "second end point y"),
    ("width_px", "pix", "Gaussian FWHM across the streak"),
    ("peak_adu", "adu", "signal on the centre line per pixel"),
)


def star_table(cat, *, x, y, alt_deg, az_deg, airmass, flux_adu, fwhm_px, ef_aper, peak_adu,
               saturated, transmission):
    """The truth's star table (:attr:`Truth.stars`), columns described by :data:`STAR_COLUMNS`.

    Parameters
    ----------
    cat : astropy.table.Table
        The rendered reference stars: ``HIP``, ``RA``, ``DEC`` (deg),
        ``VMAG``, ``BV`` (mag).
    x, y, alt_deg, az_deg, airmass, flux_adu, fwhm_px, ef_aper, peak_adu, saturated, \
transmission : ndarray, shape (n,)
        The other columns, one value per star (pixels, deg, ADU).

    Returns
    -------
    astropy.table.Table
    """
    from astropy.table import Table

    stars = Table()
    stars["HIP"] = np.asarray(cat["HIP"])
    stars["RA"] = np.asarray(cat["RA"], dtype=float)
    stars["DEC"] = np.asarray(cat["DEC"], dtype=float)
    stars["VMAG"] = np.asarray(cat["VMAG"], dtype=float)
    stars["BV"] = np.asarray(cat["BV"], dtype=float)
    for name, values in (("x", x), ("y", y), ("alt_deg", alt_deg), ("az_deg", az_deg),
                         ("airmass", airmass), ("flux_adu", flux_adu), ("fwhm_px", fwhm_px),
                         ("ef_aper", ef_aper), ("peak_adu", peak_adu), ("saturated", saturated),
                         ("transmission", transmission)):
        stars[name] = values
    for name, unit, desc in STAR_COLUMNS:
        stars[name].unit = unit
        stars[name].description = desc
    return stars


def camera_clock(dateobs, utc_offset_hours):
    """The exposure's start as the header records it, and as parsed back.

    Parameters
    ----------
    dateobs : str
        ISO 8601 time on a clock ``utc_offset_hours`` ahead of UTC.
    utc_offset_hours : float
        The camera clock's offset from UTC, hours.

    Returns
    -------
    clock : str
        ISO time on the camera's clock, rounded to whole seconds (the
        header's precision).
    time : ObsTime
        ``clock`` parsed back.
    """
    from allsky_camera.camera.coords import parse_time

    t = parse_time(dateobs, utc_offset_hours, where="dateobs")
    utc = _dt.datetime.fromisoformat(t.iso_utc)
    local = utc + _dt.timedelta(hours=utc_offset_hours)
    local = (local + _dt.timedelta(microseconds=500_000)).replace(microsecond=0)
    clock = local.isoformat(timespec="seconds")
    return clock, parse_time(clock, utc_offset_hours, where="dateobs")


def raw_header(camera, *, clock, exptime, seed, zp_true, zenith_shift, rotation_deg, clouds,
               n_streaks, ext_coef, colour_term, vignetting, sky_light):
    """The raw frame's header: the camera's time and exposure cards and the ``SIM*`` cards.

    Parameters
    ----------
    camera : Camera
        Its ``header`` section names the exposure-time and date cards.
    clock : str
        Start of the exposure on the camera's clock (:func:`camera_clock`).
    exptime : float
        Exposure time, s.
    seed : int
    zp_true : float
        True total-flux zeropoint, mag for 1 ADU/s.
    zenith_shift : (float, float)
        Injected zenith shift, pixels.
    rotation_deg : float
        Injected rotation, deg.
    clouds : Clouds or None
    n_streaks : int
    ext_coef, colour_term : float
        mag/airmass, mag per mag of B-V.
    vignetting : tuple of float
        Coefficients of ``(zd/90)^2, (zd/90)^4, ...``, mag.
    sky_light : SkyLight or None

    Returns
    -------
    astropy.io.fits.Header
    """
    from astropy.io import fits

    hc = camera.header
    offset = hc.utc_offset_hours
    dx, dy = zenith_shift
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
    header["SIMDROT"] = (rotation_deg, "[deg] injected rotation added to rot_deg")
    header["SIMCLOUD"] = (clouds.kind if clouds is not None else "none", "cloud layer")
    if clouds is not None:
        header["SIMCLTR"] = (clouds.transmission, "transmission inside the cloud")
    header["SIMNSTRK"] = (n_streaks, "streaks injected")
    header["SIMEXTK"] = (ext_coef, "[mag/airmass] true extinction k")
    header["SIMCOLT"] = (colour_term, "[mag/mag] true colour term c (B-V)")
    for j, a in enumerate(vignetting, start=1):
        header[f"SIMVIG{2 * j}"] = (a, f"[mag] true vignetting coeff of (zd/90)^{2 * j}")
    header["SIMLIGHT"] = (sky_light.kind if sky_light is not None else "none",
                          "twilight or moonlight added to the sky")
    return header


def truth_path(path):
    """Path of the truth file beside raw frame ``path``: ``<stem>-truth.fits``."""
    from allsky_camera.stages.io import output_stem

    path = Path(path)
    return path.with_name(f"{output_stem(path)}-truth.fits")


def check_writable(paths, overwrite):
    """Refuse existing outputs unless ``overwrite``, and directories always.

    Parameters
    ----------
    paths : iterable of str or Path
    overwrite : bool

    Raises
    ------
    OutputError
        A path is a directory, or exists and ``overwrite`` is false.
    """
    for p in paths:
        if os.path.isdir(p):
            raise OutputError(f"{p}: is a directory; give a file name")
        if not overwrite and os.path.exists(p):
            raise OutputError(f"{p}: exists already; remove it or pass --overwrite")


def truth_cards(sim):
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


def table_hdu(table, name):
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
    for key, value, comment in truth_cards(sim):
        if isinstance(value, np.generic):
            value = value.item()
        primary.header[key] = (value, comment)
    stars = table_hdu(sim.truth.stars, "STARS")
    streaks = Table()
    for name, unit, desc in STREAK_COLUMNS:
        streaks[name] = np.array([getattr(s, name) for s in sim.truth.streaks], dtype=float)
        streaks[name].unit = unit
        streaks[name].description = desc
    skymag = fits.ImageHDU(data=sim.truth.sky_mag.astype(np.float32), name="SKYMAG")
    skymag.header["BUNIT"] = ("mag/arcsec2", "V surface brightness, NaN off the sky")
    hy, hx = np.nonzero(sim.truth.hot_pixels)
    hot = fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="J", array=hx), fits.Column(name="y", format="J", array=hy)],
        name="HOTPIX")
    hdus = [primary, stars, skymag, hot, table_hdu(streaks, "STREAKS")]
    if sim.truth.transmission is not None:
        trans = fits.ImageHDU(data=sim.truth.transmission.astype(np.float32), name="TRANSMIS")
        trans.header["BUNIT"] = ("", "cloud transmission 0-1, NaN off the sky")
        hdus.append(trans)
    write_fits_hdus(fits.HDUList(hdus), tpath)
    log.info("wrote %s and %s", path, tpath)
    return path, tpath
