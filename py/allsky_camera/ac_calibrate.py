#!/usr/bin/env python
"""Calibrate a new all-sky camera from one clear frame.

    python py/allsky_camera/ac_calibrate.py FRAME --name NAME --output etc/NAME.yaml
        [--lat DEG --lon DEG --elev M] [--masks FRAME ...]
    python py/allsky_camera/ac_calibrate.py --build-masks FRAME ... --output etc/NAME.yaml

The first form solves the camera's geometry blind (see
:mod:`allsky_camera.calibrate`), builds the bad-pixel and obstruction masks
from FRAME (and the --masks frames), measures the nominal zeropoint on FRAME
with the new model, and writes a ready-to-use camera configuration, its masks
beside it, and a diagnostic PNG.  The second form rebuilds only the masks of
an existing configuration from several frames.  A frame that cannot be
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
#: A mask frame with the Moon above this altitude (deg) gets a warning: its
#: halo and glare are transient light (the frames' vote keeps them out of the
#: masks when most frames are moonless).
MOON_WARN_ALT_DEG = 0.0


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
    p.add_argument("--exptime", type=float, default=None, metavar="SECONDS",
                   help="exposure time when the header has no such card (overrides "
                        "--exptime-card)")
    p.add_argument("--dateobs-card", default="DATE-OBS",
                   help="header card of start time (or of its date, with --timeobs-card)")
    p.add_argument("--timeobs-card", default=None,
                   help="header card of the time of day when the date card holds only the date")
    p.add_argument("--time-format", default=None, metavar="STRPTIME",
                   help="strptime format of the start time, e.g. '%%a %%b %%d %%H:%%M:%%S %%Y' "
                        "(with --timeobs-card: of date and time joined by a space; "
                        "default ISO 8601)")
    p.add_argument("--utc-offset", type=float, default=0.0,
                   help="hours the DATE-OBS clock runs ahead of UTC (default 0)")
    p.add_argument("--masks", nargs="*", default=[],
                   help="more frames for the bad-pixel and obstruction masks")
    p.add_argument("--build-masks", action="store_true",
                   help="only rebuild the masks of the configuration at --output from FRAMES")
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
        "header": dict(header_section(opts), instrume=header.get("INSTRUME") or None),
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


def warn_moon(paths, headers, header_cards, site):
    """Log a warning for every mask frame taken with the Moon up.

    Parameters
    ----------
    paths, headers : sequence
        The mask frames' file names and FITS headers.
    header_cards : config.HeaderCards
        Where the start time is in the headers.
    site : coords.Site
    """
    from allsky_camera import coords, io

    n_up = 0
    for path, header in zip(paths, headers):
        try:
            t = io.start_time(header, header_cards, path)
        except AllskyError as err:
            log.warning("%s: cannot tell whether the Moon was up (%s)", path, err)
            continue
        moon = coords.sun_moon_altaz(t, site)["moon_alt"]
        if moon > MOON_WARN_ALT_DEG:
            n_up += 1
            log.warning("%s: the Moon is up (altitude %.1f deg): its halo and glare are "
                        "transient; the masks keep only what most frames agree on", path, moon)
    if n_up > len(paths) / 2:
        log.warning("%d of %d mask frames have the Moon up: add moonless frames to keep its "
                    "light out of the masks", n_up, len(paths))


def header_section(opts):
    """The ``header:`` section of the new YAML from the command line (validated).

    Raises
    ------
    ConfigError
        Inconsistent header options.
    """
    from allsky_camera import config

    d = {"exptime_card": None if opts.exptime is not None else opts.exptime_card,
         "dateobs_card": opts.dateobs_card, "timeobs_card": opts.timeobs_card,
         "time_format": opts.time_format, "utc_offset_hours": opts.utc_offset,
         "exptime_s": opts.exptime}
    config.check_header_cards(config.HeaderCards(**d), "ac_calibrate.py options")
    return d


def _start_time(header, opts):
    from allsky_camera import config, io

    return io.start_time(header, config.HeaderCards(**header_section(opts)), opts.frames[0])


def sol_time_iso(header, opts):
    return _start_time(header, opts).iso_utc


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

    from allsky_camera import calibrate, config, io, masks

    out = Path(opts.output)
    if out.exists() and not opts.overwrite:
        raise OutputError(f"{out}: exists already; remove it or pass --overwrite")
    io.check_outdir(out.parent)
    data, header = _read(opts.frames[0])
    t = _start_time(header, opts)
    site, site_vals = _site(opts, header)
    sol = calibrate.solve(data, t, site)
    log.info("calibrate: %s projection, %d stars, rms %.3f px", sol.model.projection,
             sol.n_matched, sol.rms_px)
    name = opts.name or out.stem
    more = [_read(f) for f in opts.masks]
    stack = [data] + [m[0] for m in more]
    warn_moon([opts.frames[0], *opts.masks], [header] + [m[1] for m in more],
              config.HeaderCards(**header_section(opts)), site)
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


def build_masks_only(opts):
    import yaml

    from allsky_camera import calibrate, config, coords, masks

    cam = config.load_camera(opts.output)
    frames = [_read(f) for f in opts.frames]
    stack = np.stack([f[0] for f in frames])
    site = coords.site_from_config(cam.site)[0]
    warn_moon(opts.frames, [f[1] for f in frames], cam.header, site)
    # the lens circle of the first frame, as the first form of the command does
    circle = calibrate.lens_circle(stack[0])
    names = (cam.sensor.bad_pixel_mask or f"{cam.name}_bpm.fits",
             cam.sensor.obstruction_mask or f"{cam.name}_obstruction.fits")
    masks.write_mask(masks.bad_pixels(stack), cam.resolve(names[0]))
    masks.write_mask(masks.obstructions(stack, circle), cam.resolve(names[1]))
    if cam.sensor.bad_pixel_mask is None or cam.sensor.obstruction_mask is None:
        d = yaml.safe_load(Path(opts.output).read_text())
        d["sensor"]["bad_pixel_mask"], d["sensor"]["obstruction_mask"] = names
        Path(opts.output).write_text(yaml.safe_dump(d, sort_keys=False))
    print(f"wrote {names[0]} and {names[1]} beside {opts.output}")


def main(argv=None):
    opts = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if opts.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if opts.build_masks:
            build_masks_only(opts)
        else:
            calibrate_frame(opts)
    except AllskyError as err:
        print(f"ac_calibrate.py: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
