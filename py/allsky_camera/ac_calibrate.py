#!/usr/bin/env python
"""Calibrate a new all-sky camera from one clear frame.

    python py/allsky_camera/ac_calibrate.py FRAME --name NAME --output etc/NAME.yaml
        [--lat DEG --lon DEG --elev M] [--masks FRAME ...]
    python py/allsky_camera/ac_calibrate.py --build-masks FRAME ... --output etc/NAME.yaml
    python py/allsky_camera/ac_calibrate.py --photometry FRAME ... --output etc/NAME.yaml

The first form solves the camera's geometry blind (see
:mod:`allsky_camera.calibrate`), builds the bad-pixel and obstruction masks
from FRAME (and the --masks frames), measures the nominal zeropoint on FRAME
with the new model, and writes a ready-to-use camera configuration, its masks
beside it, and a diagnostic PNG.  The second form rebuilds only the masks of
an existing configuration from several frames.  The third measures the
camera's photometric terms (colour term, vignetting, clear-sky zeropoint;
:func:`allsky_camera.photmodel.calibrate_terms`) on one or more clear frames
with the existing geometry, the extinction held at the configuration's site
default, and updates only those keys.  A frame that cannot be
solved (cloudy, twilight, empty) ends with one line on stderr, exit status 2,
and no YAML.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

if not __package__:   # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from allsky_camera import __version__
from allsky_camera.exceptions import AllskyError, InputFileError, OutputError

log = logging.getLogger("allsky_camera")

#: Scale height of the atmosphere's pressure (m) and sea-level pressure
#: (bar), for the refraction pressure at the site's height (isothermal
#: barometric formula).
SCALE_HEIGHT_M = 8434.0
SEA_LEVEL_BAR = 1.01325
#: The safe area ends at this altitude (deg), as for MDM.
SAFE_ALT_DEG = 20.0
#: V limits of the aperture-correction and zeropoint stars of a new camera:
#: a 16-bit camera's brightest stars saturate, so the correction needs the
#: stars to V = 5.5 to be measured on every frame (checked on the DCT frames,
#: where V <= 3.5 left no star and the frames' corrections differ by 0.2 mag).
APCOR_VMAX = 5.5
#: Streaks are searched above this altitude (deg) on a new camera: trees and
#: buildings crowd the horizon of real sites.
STREAK_MIN_ALT_DEG = 15.0
ZP_VMAX = 5.5
#: Zeropoint stars of a new camera must be expected to reach this S/N on the
#: frame's sky: on the moonlit DCT frame 010 stars to V = 5.5 reach S/N 4,
#: and their fluxes, lifted by the bright sky, pull its zeropoint up.
ZP_MIN_SNR = 10.0
#: Even-polynomial terms of the vignetting v(zd) fitted by --photometry:
#: (zd/90)^2 and (zd/90)^4, enough for a smooth fall-off to 70 deg.
VIGNETTING_TERMS = 2


def build_parser():
    p = argparse.ArgumentParser(prog="ac_calibrate.py", description=(
        "blind calibration of an all-sky camera from one clear frame"))
    p.add_argument("frames", nargs="+", help="clear raw frame (with --build-masks: frames)")
    p.add_argument("--output", required=True, help="camera YAML to write (masks go beside it)")
    p.add_argument("--name", default=None, help="camera name (default: the YAML's stem)")
    p.add_argument("--lat", type=float, default=None, help="site latitude, deg")
    p.add_argument("--lon", type=float, default=None, help="site east longitude, deg")
    p.add_argument("--elev", type=float, default=None, help="site height, m")
    p.add_argument("--exptime-card", default="EXPTIME", help="header card of exposure time")
    p.add_argument("--dateobs-card", default="DATE-OBS", help="header card of start time")
    p.add_argument("--utc-offset", type=float, default=0.0,
                   help="hours the DATE-OBS clock runs ahead of UTC (default 0)")
    p.add_argument("--masks", nargs="*", default=[],
                   help="more frames for the bad-pixel and obstruction masks")
    p.add_argument("--build-masks", action="store_true",
                   help="only rebuild the masks of the configuration at --output from FRAMES")
    p.add_argument("--photometry", action="store_true",
                   help="only measure the photometric terms (colour term, vignetting, "
                        "clear-sky zeropoint) of the configuration at --output on FRAMES")
    p.add_argument("--overwrite", action="store_true", help="replace an existing YAML")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _read(path):
    from allsky_camera.io import _read_image_hdu

    if not Path(path).exists():
        raise InputFileError(f"{path}: no such file; check the path")
    data, header = _read_image_hdu(str(path))
    if not np.any(data):
        raise InputFileError(f"{path}: every pixel is zero; nothing to calibrate on")
    return data.astype(np.float32), header


def _site(opts, header):
    from allsky_camera import coords

    lat, lon, h = opts.lat, opts.lon, opts.elev
    for klat, klon, kalt in (("OBSLAT", "OBSLONG", "OBSALT"), ("SITELAT", "SITELONG", "SITEELEV"),
                             ("LATITUDE", "LONGITUD", "ALTITUDE")):
        if lat is None and klat in header and klon in header:
            lat, lon = float(header[klat]), float(header[klon])
            h = float(header.get(kalt, 0.0)) if h is None else h
    if lat is None or lon is None:
        raise InputFileError("the site is unknown: give --lat, --lon and --elev (the header "
                             "has no OBSLAT/OBSLONG)")
    h = 0.0 if h is None else h
    pressure = SEA_LEVEL_BAR * np.exp(-h / SCALE_HEIGHT_M)
    return coords.Site(lon, lat, h, pressure * 1000.0), (lat, lon, h, pressure)


def _camera_dict(name, data, header, opts, sol, site_vals, bias, masks_names):
    lat, lon, h, pressure = site_vals
    m = sol.model
    ny, nx = data.shape
    return {
        "name": name,
        "description": f"{header.get('INSTRUME', name)} all-sky camera, calibrated by "
                       f"ac_calibrate.py from {Path(opts.frames[0]).name}",
        "sensor": {"nx": nx, "ny": ny,
                   "saturation_adu": float(header.get("DATAMAX", np.iinfo(np.uint16).max)),
                   "dark_region": None, "bias_adu": round(float(bias), 1),
                   "bad_pixel_mask": masks_names[0], "obstruction_mask": masks_names[1]},
        "header": {"exptime_card": opts.exptime_card, "dateobs_card": opts.dateobs_card,
                   "utc_offset_hours": opts.utc_offset,
                   "instrume": header.get("INSTRUME") or None},
        "site": {"lon_deg": lon, "lat_deg": lat, "height_m": h,
                 "pressure_bar": round(float(pressure), 4), "prefer_header": False},
        "astrometry": {"model": m.to_dict(),
                       "safe_radius_px": round(float(m.radius(90.0 - SAFE_ALT_DEG)), 1),
                       "fit_params": ["x0", "y0", "rot_deg", "scale"]},
        "photometry": {"aper_radius_px": 2.0, "annulus_px": [5.0, 10.0], "zp_nominal": 0.0,
                       "zp_nominal_scale": "total", "vmax": 6.5, "isolation_deg": 0.3,
                       "moon_exclusion_deg": 15.0, "apcor_vmax": APCOR_VMAX, "zp_vmax": ZP_VMAX},
        "sbmap": {"kernel_px": 23, "step_px": 8},
        "streaks": {"horizon_margin_px": round(float(m.radius(90.0) - m.radius(
            90.0 - STREAK_MIN_ALT_DEG)), 1)},
        "calibration": {"frame": Path(opts.frames[0]).name, "time": sol_time_iso(header, opts),
                        "n_matched": int(sol.n_matched), "rms_px": round(float(sol.rms_px), 4),
                        "projection": m.projection, "tool": f"ac_calibrate.py {__version__}",
                        "made": dt.date.today().isoformat()},
    }


def sol_time_iso(header, opts):
    from allsky_camera import coords

    return coords.parse_time(header[opts.dateobs_card], opts.utc_offset).iso_utc


def _measure_zeropoint(cam_dict, data, header, out_dir):
    """Reduce the calibration frame with the new configuration; ZPTOTAL."""
    import tempfile

    from allsky_camera import ac_proc, config, io

    cam = config.camera_from_dict(cam_dict, source=str(out_dir / "x.yaml"))
    exp = io.exposure_from_data("calibration.fits", data, header, cam)
    quiet = logging.getLogger("allsky_camera")
    level = quiet.level
    quiet.setLevel(logging.ERROR)     # the placeholder zeropoint makes the cloud map moot
    try:
        with tempfile.TemporaryDirectory() as tmp:
            opts = ac_proc.build_parser().parse_args(["x", "--outdir", tmp, "--skip_checkplots",
                                                      "--skip_sbmap", "--dont_write_detrended",
                                                      "--dont_write_catalog"])
            res = ac_proc.process(exp, cam, opts)
    finally:
        quiet.setLevel(level)
    return res["zeropoint"]


def _diagnostic_png(path, data, sol):
    from allsky_camera import plotting

    fig = plotting.new_figure((15.0, 5.0))
    lo, hi = np.percentile(data[::4, ::4], [5, 99.5])
    ax = fig.add_axes((0.04, 0.1, 0.3, 0.8))
    ax.imshow(data[::2, ::2], origin="lower", cmap="gray", vmin=lo, vmax=hi,
              extent=(-0.5, data.shape[1] - 0.5, -0.5, data.shape[0] - 0.5))
    ax.scatter(sol.x, sol.y, s=6, facecolors="none", edgecolors="tab:orange", lw=0.5)
    ax.set_title(f"{sol.n_matched} matched stars")
    ax = fig.add_axes((0.39, 0.1, 0.27, 0.8))
    ax.quiver(sol.x, sol.y, sol.dx, sol.dy, angles="xy", scale_units="xy", scale=1 / 50.0,
              width=0.002)
    ax.set_aspect("equal")
    ax.set_xlim(0, data.shape[1])
    ax.set_ylim(0, data.shape[0])
    ax.set_title(f"residuals x50, rms {sol.rms_px:.2f} px")
    ax = fig.add_axes((0.72, 0.1, 0.26, 0.8))
    r = np.hypot(sol.x - sol.model.x0, sol.y - sol.model.y0)
    ax.plot(r, np.hypot(sol.dx, sol.dy), ".", ms=2)
    ax.set_xlabel("radius from the zenith, px")
    ax.set_ylabel("residual, px")
    ax.set_title(f"{sol.model.projection} projection")
    plotting.save_figure(fig, path)


def calibrate_frame(opts):
    import yaml

    from allsky_camera import calibrate, coords, io, masks

    out = Path(opts.output)
    if out.exists() and not opts.overwrite:
        raise OutputError(f"{out}: exists already; remove it or pass --overwrite")
    io.check_outdir(out.parent)
    data, header = _read(opts.frames[0])
    if opts.dateobs_card not in header:
        raise InputFileError(f"{opts.frames[0]}: header card {opts.dateobs_card} is missing")
    t = coords.parse_time(header[opts.dateobs_card], opts.utc_offset)
    site, site_vals = _site(opts, header)
    sol = calibrate.solve(data, t, site)
    log.info("calibrate: %s projection, %d stars, rms %.3f px", sol.model.projection,
             sol.n_matched, sol.rms_px)
    name = opts.name or out.stem
    stack = [data] + [_read(f)[0] for f in opts.masks]
    bpm = masks.bad_pixels(np.stack(stack))
    obs = masks.obstructions(np.stack(stack), sol.circle)
    cx, cy, rad = sol.circle
    yy, xx = np.ogrid[:data.shape[0], :data.shape[1]]
    ring = ((xx - cx) ** 2 + (yy - cy) ** 2 > (rad + 10) ** 2)
    bias = float(np.percentile(data[ring], 1)) if ring.any() else float(np.percentile(data, 0.5))
    names = (f"{name}_bpm.fits", f"{name}_obstruction.fits")
    d = _camera_dict(name, data, header, opts, sol, site_vals, bias, names)
    masks.write_mask(bpm, out.parent / names[0])
    masks.write_mask(obs, out.parent / names[1])
    zp = _measure_zeropoint(d, data, header, out.parent)
    if zp.ok:
        # again with the S/N selection, which needs a nominal zeropoint
        d["photometry"]["zp_nominal"] = round(float(zp.zp_total), 4)
        d["photometry"]["zp_min_snr"] = ZP_MIN_SNR
        zp = _measure_zeropoint(d, data, header, out.parent)
    if not zp.ok:
        raise AllskyError(f"{opts.frames[0]}: no zeropoint could be measured ({zp.message}); "
                          "calibrate on a clear frame")
    d["photometry"]["zp_nominal"] = round(float(zp.zp_total), 4)
    d["calibration"]["zp_stars"] = int(zp.n_stars)
    text = (f"# Camera {name}: written by ac_calibrate.py {__version__} on "
            f"{dt.date.today().isoformat()}; see the calibration block.\n"
            "# Pixels 0-based, x = column, pixel centres at integers; angles in degrees.\n"
            + yaml.safe_dump(d, sort_keys=False))
    with io.atomic_path(out) as tmp:
        tmp.write_text(text)
    _diagnostic_png(out.with_suffix(".png"), data, sol)
    print(f"wrote {out} ({sol.model.projection}, {sol.n_matched} stars, rms {sol.rms_px:.3f} px, "
          f"zeropoint {zp.zp_total:.3f})")
    # the camera's photometric terms on the same frame, with the new geometry
    calibrate_photometry(argparse.Namespace(frames=opts.frames[:1], output=str(out)))


def build_masks_only(opts):
    import yaml

    from allsky_camera import calibrate, config, masks

    cam = config.load_camera(opts.output)
    stack = np.stack([_read(f)[0] for f in opts.frames])
    circle = calibrate.lens_circle(np.median(stack, axis=0))
    names = (cam.sensor.bad_pixel_mask or f"{cam.name}_bpm.fits",
             cam.sensor.obstruction_mask or f"{cam.name}_obstruction.fits")
    masks.write_mask(masks.bad_pixels(stack), cam.resolve(names[0]))
    masks.write_mask(masks.obstructions(stack, circle), cam.resolve(names[1]))
    if cam.sensor.bad_pixel_mask is None or cam.sensor.obstruction_mask is None:
        d = yaml.safe_load(Path(opts.output).read_text())
        d["sensor"]["bad_pixel_mask"], d["sensor"]["obstruction_mask"] = names
        Path(opts.output).write_text(yaml.safe_dump(d, sort_keys=False))
    print(f"wrote {names[0]} and {names[1]} beside {opts.output}")


def _reduce_for_photometry(cam, path):
    """Reduce one clear frame with ``cam``; the catalog table and exposure time (s)."""
    import tempfile

    from allsky_camera import ac_proc, io

    exp = io.read_exposure(str(path), cam)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ac_proc.build_parser().parse_args(["x", "--outdir", tmp, "--skip_checkplots",
                                                  "--skip_sbmap", "--dont_write_detrended",
                                                  "--dont_write_catalog"])
        return ac_proc.process(exp, cam, opts)["catalog"], exp.exptime


def calibrate_photometry(opts):
    """Measure c, v(zd) and the clear-sky zeropoint; update only those keys."""
    import dataclasses

    import yaml

    from allsky_camera import config, photmodel
    from allsky_camera.exceptions import ConfigError

    cam = config.load_camera(opts.output)
    ph = cam.photometry
    if ph.zp_nominal_scale != "total":
        raise ConfigError(f"{opts.output}: photometry.zp_nominal_scale is "
                          f"{ph.zp_nominal_scale!r}; --photometry writes a total-flux "
                          "zeropoint: set it to 'total' first")
    # reduce without the old terms, so that nothing of them leaks into the new ones
    bare = dataclasses.replace(cam, photometry=dataclasses.replace(
        ph, colour_term=0.0, colour_term_err=0.0, vignetting=()))
    frames = []
    for f in opts.frames:
        cat, exptime = _reduce_for_photometry(bare, f)
        m_tot = -2.5 * np.log10(np.where(cat["flux_total_adu"] > 0, cat["flux_total_adu"],
                                         np.nan) / exptime)
        vmag = np.asarray(cat["VMAG"])
        # weights from the flux the star should have (the bare clear-sky
        # model), not its measured flux, which would favour upward noise
        zd = 90.0 - np.asarray(cat["alt_deg"])
        f_exp = (photmodel.PhotModel(ph.zp_nominal, ph.ext_coef).expected_flux(vmag, 0.0, zd,
                                                                               exptime)
                 * 10.0 ** (-0.4 * np.asarray(cat["apcor_mag"])))
        with np.errstate(invalid="ignore", divide="ignore"):
            m_err = 2.5 / np.log(10.0) * np.asarray(cat["flux_err_adu"]) / f_exp
        frames.append((m_tot, vmag, np.asarray(cat["BV"]), 90.0 - np.asarray(cat["alt_deg"]),
                       (np.asarray(cat["flags"]) == 0) & (vmag <= ph.model_vmax),
                       np.where(m_err > 0, m_err, np.nan)))
    try:
        terms = photmodel.calibrate_terms(frames, k=ph.ext_coef, n_vignetting=VIGNETTING_TERMS,
                                          clip_sigma=ph.model_clip_sigma,
                                          faint_clip_mag=ph.model_faint_clip_mag,
                                          min_stars=ph.ext_min_stars,
                                          floor_mag=ph.model_floor_mag)
    except ConfigError as err:
        raise AllskyError(f"{', '.join(map(str, opts.frames))}: {err}") from err
    path = Path(opts.output)
    d = yaml.safe_load(path.read_text())
    p = d["photometry"]
    p["zp_nominal"] = round(terms.zp, 4)
    p["ext_coef"] = ph.ext_coef
    p["colour_term"] = round(terms.colour_term, 4)
    p["colour_term_err"] = round(terms.colour_term_err, 4)
    p["vignetting"] = [round(v, 4) for v in terms.vignetting]
    d.setdefault("calibration", {})["photometry"] = {
        "frames": [Path(f).name for f in opts.frames],
        "zp_frames": [round(z, 4) for z in terms.zp_frames],
        "k_held": ph.ext_coef, "n_stars": terms.n_used, "rms_mag": round(terms.rms_mag, 4),
        "note": "zp_nominal: clear-sky total-flux zeropoint at the zenith (X = 1); "
                "vignetting absorbs any difference of the true extinction from k_held",
        "tool": f"ac_calibrate.py {__version__} --photometry",
        "made": dt.date.today().isoformat()}
    header = "".join(line + "\n" for line in path.read_text().splitlines()
                     if line.startswith("#"))
    from allsky_camera import io

    with io.atomic_path(path) as tmp:
        tmp.write_text(header + yaml.safe_dump(d, sort_keys=False))
    print(f"updated {path}: zeropoint {terms.zp:.3f}, colour term {terms.colour_term:.3f} "
          f"+- {terms.colour_term_err:.3f}, vignetting {list(p['vignetting'])} "
          f"(k held at {ph.ext_coef:g}; {terms.n_used} stars, rms {terms.rms_mag:.3f} mag)")


def main(argv=None):
    opts = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if opts.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if opts.build_masks:
            build_masks_only(opts)
        elif opts.photometry:
            calibrate_photometry(opts)
        else:
            calibrate_frame(opts)
    except AllskyError as err:
        print(f"ac_calibrate.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
