#!/usr/bin/env python
"""Simulated all-sky exposures with known truth.

    python py/allsky_camera/simulate.py OUT.fits [--camera MDM] [--seed N]
        [--dateobs ISO] [--exptime S] [--shift DX DY] [--rotate DEG]
        [--clouds {none,patches,band,quarter,overcast}] [--streaks N]

A frame is rendered for a camera configuration and a time from the same
Hipparcos catalog the pipeline uses: stars through the camera's model with a
perturbed geometry (zenith shift, rotation), a circular Gaussian PSF that
widens toward the horizon (integrated exactly over pixels), a sky that
brightens toward the horizon, optional clouds (a transmission map that dims
the stars and brightens the sky beneath, as moonlight or city light on cloud
would) and satellite streaks, then the detector: Poisson and read noise,
bias, hot pixels, quantisation to integers and saturation.  There is no
atmospheric extinction.  Every physical setting comes from the camera's
``simulation`` section.  The truth (geometry, zeropoint, per-star fluxes and
positions, sky map, clouds, streaks) is written beside the frame as
``<stem>-truth.fits``.

Pixel convention: 0-based, x = column, pixel centres at integers.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:   # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from allsky_camera.exceptions import AllskyError, OutputError

log = logging.getLogger(__name__)

#: FWHM over Gaussian sigma, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Stamp half-width in PSF sigmas (the Gaussian beyond 4 sigma holds < 1e-3 % of the flux).
_STAMP_SIGMAS = 4.0
#: Square arcseconds per steradian.
_ARCSEC2_PER_SR = (180.0 / np.pi * 3600.0) ** 2
#: Exponent of the sky brightening with zenith distance, flux ~ (zd/90)^p:
#: a smooth stand-in for van Rhijn airglow and light pollution near the horizon.
_SKY_POWER = 3.0
#: Cloud layers the simulator draws (see cloud_transmission).
CLOUD_KINDS = ("none", "patches", "band", "quarter", "overcast")
#: Geometry of the cloud presets (deg): half-width of a band along a great
#: circle through the zenith; number, altitude range, azimuth spread about
#: Clouds.az_deg and radius range of the round patches.
_BAND_HALF_WIDTH_DEG = 10.0
_PATCHES = 4
_PATCH_ALT_DEG = (25.0, 80.0)
_PATCH_AZ_SPREAD_DEG = 120.0
_PATCH_RADIUS_DEG = (10.0, 25.0)


@dataclass(frozen=True)
class Clouds:
    """A cloud layer for :func:`simulate`.

    Attributes
    ----------
    kind : str
        One of ``patches``, ``band``, ``quarter``, ``overcast``.
    transmission : float
        Transmission inside the cloud (0-1).
    brightening : float
        Extra sky surface brightness under full cloud, as a fraction of the
        zenith sky flux per unit of (1 - transmission).
    az_deg : float
        Azimuth the cloud is centred on (quarter, band, patches).
    """

    kind: str
    transmission: float = 0.2
    brightening: float = 1.0
    az_deg: float = 45.0


@dataclass(frozen=True)
class Streak:
    """A straight streak from (x1, y1) to (x2, y2) (pixels, may leave the image)."""

    x1: float
    y1: float
    x2: float
    y2: float
    width_px: float          # Gaussian FWHM across the streak, pixels
    peak_adu: float          # central surface brightness above sky, ADU per pixel


@dataclass(frozen=True)
class Truth:
    """What went into a simulated frame."""

    model: object                 # the true CameraModel
    zp_true: float                # total-flux zeropoint, mag for 1 ADU/s
    zp_aper_true: float           # median over safe-area stars of zp_true + 2.5 log10(EF)
    exptime: float                # s
    time: object                  # ObsTime
    stars: object                 # astropy Table, one row per rendered star
    sky_mag: np.ndarray           # V mag/arcsec^2 per pixel, NaN off-sky
    sky_adu: np.ndarray           # sky per pixel, ADU
    transmission: np.ndarray | None   # cloud transmission per pixel (None: clear)
    hot_pixels: np.ndarray        # bool
    streaks: tuple = field(default_factory=tuple)   # Streak, as rendered


@dataclass(frozen=True)
class SimulatedExposure:
    """A rendered raw frame, its header and its truth."""

    image: np.ndarray
    header: object
    truth: Truth


def psf_fwhm(zd_deg, sim):
    """PSF FWHM (pixels) at zenith distance ``zd_deg``: quadratic in zd/90."""
    return sim.fwhm_zenith_px + (sim.fwhm_horizon_px - sim.fwhm_zenith_px) * (
        np.asarray(zd_deg) / 90.0) ** 2


#: Variance (pixel^2) an aperture sum on a pixelated image adds to the PSF: the
#: pixel response (1/12 per axis) and the exact-overlap weights of the
#: aperture (another 1/12); checked in the tests on noiseless renderings.
PIXEL_VARIANCE = 2.0 / 12.0


def enclosed_fraction(radius_px, fwhm_px, *, pixelated=True):
    """Fraction of a circular Gaussian star's flux an aperture of ``radius_px`` measures.

    With ``pixelated`` (default) this is what exact-overlap aperture
    photometry of the rendered, pixel-integrated image returns: the Gaussian
    widened by :data:`PIXEL_VARIANCE`; without, the continuous Gaussian's.
    """
    var = (np.asarray(fwhm_px) / FWHM_PER_SIGMA) ** 2 + (PIXEL_VARIANCE if pixelated else 0.0)
    return 1.0 - np.exp(-radius_px ** 2 / (2.0 * var))


def render_stars(shape, x, y, flux, fwhm):
    """Image of pixel-integrated circular Gaussian stars.

    Parameters
    ----------
    shape : (ny, nx)
    x, y, flux, fwhm : ndarray
        Positions (pixels), total fluxes (ADU) and FWHM (pixels).
    """
    from scipy.special import erf

    ny, nx = shape
    img = np.zeros(ny * nx, dtype=np.float64)
    sigma = fwhm / FWHM_PER_SIGMA
    half = np.ceil(_STAMP_SIGMAS * sigma).astype(int) + 1
    for h in np.unique(half):                       # a handful of stamp sizes
        sel = np.nonzero(half == h)[0]
        off = np.arange(-h, h + 1)
        xi = np.rint(x[sel]).astype(int)
        yi = np.rint(y[sel]).astype(int)
        s2 = (np.sqrt(2.0) * sigma[sel])[:, None]
        ex = xi[:, None] + off[None, :]
        ey = yi[:, None] + off[None, :]
        px = 0.5 * (erf((ex + 0.5 - x[sel, None]) / s2) - erf((ex - 0.5 - x[sel, None]) / s2))
        py = 0.5 * (erf((ey + 0.5 - y[sel, None]) / s2) - erf((ey - 0.5 - y[sel, None]) / s2))
        vals = flux[sel, None, None] * py[:, :, None] * px[:, None, :]
        xx = np.broadcast_to(ex[:, None, :], vals.shape)
        yy = np.broadcast_to(ey[:, :, None], vals.shape)
        ok = (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
        img += np.bincount((yy[ok] * nx + xx[ok]), weights=vals[ok], minlength=ny * nx)
    return img.reshape(ny, nx)


def sky_surface_brightness(zd_deg, sim, sky_zenith_mag):
    """Clear-sky V mag/arcsec^2 at zenith distance ``zd_deg``.

    Linear in flux between the zenith and the horizon with weight
    ``(zd/90)^3``.
    """
    f_z = 10.0 ** (-0.4 * sky_zenith_mag)
    f_h = 10.0 ** (-0.4 * sim.sky_horizon_mag)
    w = np.clip(np.asarray(zd_deg) / 90.0, 0.0, None) ** _SKY_POWER
    return -2.5 * np.log10(f_z + (f_h - f_z) * w)


def cloud_transmission(clouds, alt_deg, az_deg, rng):
    """Transmission (0-1) of a cloud layer over the sky, per position."""
    if clouds is None or clouds.kind == "none":
        return np.ones_like(alt_deg)
    t = clouds.transmission
    daz = (np.asarray(az_deg) - clouds.az_deg + 180.0) % 360.0 - 180.0
    if clouds.kind == "overcast":
        return np.full_like(alt_deg, t)
    if clouds.kind == "quarter":
        # a quarter of the sky by solid angle: one azimuth quadrant
        inside = np.abs(daz) < 45.0
        return np.where(inside, t, 1.0)
    if clouds.kind == "band":
        # a band 20 deg wide along a great circle through the zenith
        a, z = np.radians(alt_deg), np.radians(az_deg - clouds.az_deg)
        dist = np.degrees(np.arcsin(np.abs(np.cos(a) * np.sin(z))))
        return np.where(dist < _BAND_HALF_WIDTH_DEG, t, 1.0)
    if clouds.kind == "patches":
        # a few round patches 10-25 deg in radius at random places above 20 deg altitude
        out = np.ones_like(alt_deg)
        for _ in range(_PATCHES):
            ca = rng.uniform(*_PATCH_ALT_DEG)
            cz = clouds.az_deg + rng.uniform(-_PATCH_AZ_SPREAD_DEG, _PATCH_AZ_SPREAD_DEG)
            rad = rng.uniform(*_PATCH_RADIUS_DEG)
            from allsky_camera.coords import angular_sep
            out = np.where(angular_sep(az_deg, alt_deg, cz, ca) < rad, t, out)
        return out
    raise AllskyError(f"clouds kind {clouds.kind!r}: choose one of {', '.join(CLOUD_KINDS)}")


def render_streaks(shape, streaks):
    """Image of straight streaks with Gaussian cross-section (ADU per pixel)."""
    ny, nx = shape
    img = np.zeros(shape)
    yy, xx = np.mgrid[:ny, :nx]
    for s in streaks:
        dx, dy = s.x2 - s.x1, s.y2 - s.y1
        length = np.hypot(dx, dy)
        ux, uy = dx / length, dy / length
        # bounding box of the streak, clipped to the image
        pad = 3 * s.width_px
        x0 = int(max(min(s.x1, s.x2) - pad, 0))
        x1 = int(min(max(s.x1, s.x2) + pad + 1, nx))
        y0 = int(max(min(s.y1, s.y2) - pad, 0))
        y1 = int(min(max(s.y1, s.y2) + pad + 1, ny))
        if x1 <= x0 or y1 <= y0:
            continue
        px, py = xx[y0:y1, x0:x1] - s.x1, yy[y0:y1, x0:x1] - s.y1
        along = px * ux + py * uy
        across = -px * uy + py * ux
        sig = s.width_px / FWHM_PER_SIGMA
        inside = (along >= 0) & (along <= length)
        img[y0:y1, x0:x1] += np.where(inside, s.peak_adu * np.exp(-0.5 * (across / sig) ** 2),
                                      0.0)
    return img


def random_streaks(n, shape, rng, *, peak_range=(15.0, 60.0), width_range=(1.5, 4.0)):
    """``n`` random streaks, about a third of them leaving the image."""
    ny, nx = shape
    out = []
    for i in range(n):
        length = rng.uniform(0.25, 0.6) * min(nx, ny)
        ang = rng.uniform(0, np.pi)
        if i % 3 == 0:     # start inside, run off an edge
            cx, cy = rng.uniform(0.15, 0.85) * nx, rng.uniform(0.15, 0.85) * ny
            length = 1.5 * max(nx, ny)
            x1, y1 = cx, cy
        else:      # centred anywhere on the middle of the frame, independent of the others
            cx, cy = rng.uniform(0.2, 0.8) * nx, rng.uniform(0.15, 0.85) * ny
            x1, y1 = cx - 0.5 * length * np.cos(ang), cy - 0.5 * length * np.sin(ang)
        x2, y2 = x1 + length * np.cos(ang), y1 + length * np.sin(ang)
        out.append(Streak(float(x1), float(y1), float(x2), float(y2),
                          float(rng.uniform(*width_range)), float(rng.uniform(*peak_range))))
    return tuple(out)


def simulate(camera, *, seed=0, dateobs=None, exptime=None, zenith_shift=(0.0, 0.0),
             rotation_deg=0.0, zp_true=None, sky_zenith_mag=None, clouds=None, streaks=None,
             star_vmax=None):
    """Render a raw exposure of ``camera`` with known truth.

    Parameters
    ----------
    camera : Camera
        Must have a ``simulation`` section.
    seed : int
        Seed of the random generator; the same seed gives the same frame.
    dateobs : str, optional
        Start time in the camera's clock (default ``simulation.dateobs``).
    exptime : float, optional
        Seconds (default ``simulation.exptime_s``).
    zenith_shift : (float, float)
        Offset of the true zenith pixel from the template's, pixels.
    rotation_deg : float
        Offset of the true rotation from the template's, deg.
    zp_true : float, optional
        True total-flux zeropoint; default: ``simulation.zp_true`` or, when
        that is null, the nominal zeropoint converted to total flux with the
        simulated PSF's median aperture loss inside the safe radius.
    sky_zenith_mag : float, optional
        Override of ``simulation.sky_zenith_mag``.
    clouds : Clouds, optional
    streaks : sequence of Streak, optional
    star_vmax : float, optional
        Faintest star rendered (default ``simulation.vmax``).

    Returns
    -------
    SimulatedExposure
    """
    from astropy.io import fits

    from allsky_camera import catalog, coords

    sim = camera.simulation
    if sim is None:
        raise AllskyError(f"camera {camera.name}: its configuration has no simulation section")
    rng = np.random.default_rng(seed)
    dateobs = dateobs or sim.dateobs
    exptime = float(exptime if exptime is not None else sim.exptime_s)
    t = coords.parse_time(dateobs, camera.header.utc_offset_hours, where="dateobs")
    site, _ = coords.site_from_config(camera.site)
    tmpl = camera.astrometry.model
    model = tmpl.replace(x0=tmpl.x0 + zenith_shift[0], y0=tmpl.y0 + zenith_shift[1],
                         rot_deg=tmpl.rot_deg + rotation_deg)
    ny, nx = camera.sensor.ny, camera.sensor.nx
    ph = camera.photometry

    # stars
    vmax = star_vmax if star_vmax is not None else sim.vmax
    cat = catalog.reference_stars(t.jd_tt, vmax)
    alt, az = coords.radec_to_altaz(cat["RA"], cat["DEC"], t, site)
    up = alt > sim.horizon_alt_deg
    cat, alt, az = cat[up], alt[up], az[up]
    x, y = model.altaz_to_xy(alt, az)
    on = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    cat, alt, az, x, y = cat[on], alt[on], az[on], x[on], y[on]
    zd = 90.0 - alt
    fwhm = psf_fwhm(zd, sim)
    ef = enclosed_fraction(ph.aper_radius_px, fwhm)
    safe = np.hypot(x - model.x0, y - model.y0) <= camera.astrometry.safe_radius_px
    if zp_true is None:
        zp_true = sim.zp_true
    if zp_true is None:
        zp_true = ph.zp_nominal
        if ph.zp_nominal_scale == "aperture" and safe.any():
            zp_true = ph.zp_nominal + float(np.median(-2.5 * np.log10(ef[safe])))
    zp_true = float(zp_true)
    vmag = np.asarray(cat["VMAG"], dtype=float)
    flux = 10.0 ** (-0.4 * (vmag - zp_true)) * exptime

    # sky: every pixel within the horizon
    yy, xx = np.mgrid[:ny, :nx]
    r_h = float(model.radius(90.0 - sim.horizon_alt_deg))
    on_sky = np.hypot(xx - model.x0, yy - model.y0) <= r_h
    ys, xs = np.nonzero(on_sky)
    palt, paz = model.xy_to_altaz(xs, ys)
    mu = sky_surface_brightness(90.0 - palt, sim,
                                sim.sky_zenith_mag if sky_zenith_mag is None else sky_zenith_mag)
    omega = model.pixel_solid_angle(xs, ys) * _ARCSEC2_PER_SR
    sky_pix = 10.0 ** (-0.4 * (mu - zp_true)) * exptime * omega

    transmission = None
    star_trans = np.ones_like(flux)
    if clouds is not None and clouds.kind != "none":
        crng = np.random.default_rng(rng.integers(2 ** 32))
        # one call for the sky pixels and the stars, so they see the same clouds
        both = cloud_transmission(clouds, np.r_[palt, alt], np.r_[paz, az], crng)
        tr_pix, star_trans = both[:palt.size], both[palt.size:]
        transmission = np.full((ny, nx), np.nan, dtype=np.float32)
        transmission[ys, xs] = tr_pix
        # sky brightened under cloud (light from below), dimmed sky light above
        zen_flux = 10.0 ** (-0.4 * (sim.sky_zenith_mag - zp_true)) * exptime * omega
        sky_pix = sky_pix * tr_pix + clouds.brightening * (1.0 - tr_pix) * zen_flux
        mu = zp_true - 2.5 * np.log10(sky_pix / exptime / omega)
    flux_obs = flux * star_trans

    sky_adu = np.zeros((ny, nx), dtype=np.float32)
    sky_adu[ys, xs] = sky_pix
    sky_mag = np.full((ny, nx), np.nan, dtype=np.float32)
    sky_mag[ys, xs] = mu
    signal = render_stars((ny, nx), x, y, flux_obs, fwhm)
    signal[~on_sky] = 0.0
    signal += sky_adu
    streaks = tuple(streaks or ())
    if streaks:
        signal += render_streaks((ny, nx), streaks) * on_sky   # only the sky is lit

    # detector
    g = sim.gain_e_per_adu
    electrons = rng.poisson(np.maximum(signal, 0.0) * g).astype(np.float64)
    electrons += rng.normal(0.0, sim.read_noise_e, size=electrons.shape)
    adu = electrons / g + sim.bias_adu
    sat = camera.sensor.saturation_adu
    hot = rng.random((ny, nx)) < sim.hot_pixel_fraction
    adu[hot] = rng.uniform(0.5 * sat, sat, hot.sum())
    adu = np.clip(np.rint(adu), 0, sat)
    dtype = np.uint8 if sat <= 255 else np.uint16
    image = adu.astype(dtype)

    peak = flux_obs * (1.0 / (2 * np.pi * (fwhm / FWHM_PER_SIGMA) ** 2))
    xi = np.clip(np.rint(x).astype(int), 0, nx - 1)
    yi = np.clip(np.rint(y).astype(int), 0, ny - 1)
    saturated = image[yi, xi] >= sat

    from astropy.table import Table
    stars = Table({"HIP": cat["HIP"], "VMAG": vmag, "x": x, "y": y, "alt_deg": alt,
                   "az_deg": az, "flux_adu": flux_obs, "flux_clear_adu": flux, "fwhm_px": fwhm,
                   "ef_aper": ef, "peak_adu": peak, "saturated": saturated,
                   "transmission": star_trans, "safe": safe})
    zp_aper_true = float(np.median(zp_true + 2.5 * np.log10(ef[safe]))) if safe.any() else np.nan

    hdr = fits.Header()
    hdr[camera.header.exptime_card] = (exptime, "[s] exposure time")
    clock = _clock_string(t, camera.header.utc_offset_hours)
    hdr[camera.header.dateobs_card] = (clock, f"start, UTC{camera.header.utc_offset_hours:+g} h")
    if camera.header.instrume:
        hdr["INSTRUME"] = (camera.header.instrume, "camera")
    hdr["SIMULATE"] = (True, "simulated by allsky_camera.simulate")
    hdr["SIMSEED"] = (int(seed), "random seed")
    hdr["SIMZP"] = (round(zp_true, 6), "[mag] true zeropoint, total flux, 1 ADU/s")
    hdr["SIMDX"] = (float(zenith_shift[0]), "[pix] injected zenith shift x")
    hdr["SIMDY"] = (float(zenith_shift[1]), "[pix] injected zenith shift y")
    hdr["SIMDROT"] = (float(rotation_deg), "[deg] injected rotation")
    if clouds is not None:
        hdr["SIMCLOUD"] = (clouds.kind, "cloud layer")
    hdr["SIMNSTRK"] = (len(streaks), "streaks injected")
    truth = Truth(model, zp_true, zp_aper_true, exptime, t, stars, sky_mag, sky_adu,
                  transmission, hot, streaks)
    log.debug("simulated %d stars, zp %.3f, %d streaks", len(stars), zp_true, len(streaks))
    return SimulatedExposure(image, hdr, truth)


def _clock_string(t, utc_offset_hours):
    import datetime as dt

    utc = dt.datetime.fromisoformat(t.iso_utc)
    return (utc + dt.timedelta(hours=utc_offset_hours)).isoformat(timespec="seconds")


def truth_path(path):
    """``dir/x.fits`` -> ``dir/x-truth.fits``."""
    from allsky_camera.io import output_stem

    p = Path(path)
    return p.with_name(f"{output_stem(p)}-truth.fits")


def write_simulation(sim, path, *, overwrite=False):
    """Write the raw frame to ``path`` and its truth to ``<stem>-truth.fits``."""
    from astropy.io import fits

    from allsky_camera.io import add_cards, write_fits_hdus

    path = Path(path)
    tpath = truth_path(path)
    for p in (path, tpath):
        if p.exists() and not overwrite:
            raise OutputError(f"{p}: exists already; remove it or pass --overwrite")
    write_fits_hdus(fits.HDUList([fits.PrimaryHDU(sim.image, header=sim.header)]), path)
    tr = sim.truth
    prim = fits.PrimaryHDU()
    add_cards(prim.header, [("ZPTRUE", tr.zp_true, "[mag] true zeropoint, total flux"),
                            ("ZPAPTRUE", tr.zp_aper_true, "[mag] true aperture zeropoint"),
                            ("EXPTIME", tr.exptime, "[s]"),
                            ("DATE-OBS", tr.time.iso_utc, "UTC")])
    add_cards(prim.header, tr.model.header_cards())
    hdus = [prim, fits.table_to_hdu(tr.stars), fits.ImageHDU(tr.sky_mag, name="SKYMAG")]
    hdus[1].name = "STARS"
    if tr.transmission is not None:
        hdus.append(fits.ImageHDU(tr.transmission, name="TRANSMIS"))
    if tr.streaks:
        from astropy.table import Table
        st = Table(rows=[(s.x1, s.y1, s.x2, s.y2, s.width_px, s.peak_adu) for s in tr.streaks],
                   names=("x1", "y1", "x2", "y2", "width_px", "peak_adu"))
        h = fits.table_to_hdu(st)
        h.name = "STREAKS"
        hdus.append(h)
    write_fits_hdus(fits.HDUList(hdus), tpath)
    return path, tpath


def build_parser():
    p = argparse.ArgumentParser(prog="simulate.py",
                                description="render a simulated all-sky exposure with truth")
    p.add_argument("out", help="output FITS file (.fits, .fits.gz or .fits.bz2)")
    p.add_argument("--camera", default="MDM", help="camera configuration (name or YAML path)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--dateobs", default=None, help="start time in the camera's clock (ISO)")
    p.add_argument("--exptime", type=float, default=None, help="exposure time, s")
    p.add_argument("--shift", type=float, nargs=2, default=(0.0, 0.0), metavar=("DX", "DY"),
                   help="zenith shift from the template, pixels")
    p.add_argument("--rotate", type=float, default=0.0, help="rotation offset, deg")
    p.add_argument("--clouds", choices=CLOUD_KINDS, default="none", help="cloud layer")
    p.add_argument("--transmission", type=float, default=0.2,
                   help="transmission inside the clouds (0-1)")
    p.add_argument("--streaks", type=int, default=0, help="number of random streaks")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    opts = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if opts.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from allsky_camera import config

    try:
        cam = config.load_camera(opts.camera)
        rng = np.random.default_rng(opts.seed + 1)
        clouds = None if opts.clouds == "none" else Clouds(opts.clouds, opts.transmission)
        streaks = random_streaks(opts.streaks, (cam.sensor.ny, cam.sensor.nx), rng)
        sim = simulate(cam, seed=opts.seed, dateobs=opts.dateobs, exptime=opts.exptime,
                       zenith_shift=tuple(opts.shift), rotation_deg=opts.rotate, clouds=clouds,
                       streaks=streaks)
        out, tpath = write_simulation(sim, opts.out, overwrite=opts.overwrite)
    except AllskyError as err:
        print(f"simulate.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {tpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
