#!/usr/bin/env python
"""Calibrate a new all-sky camera from one clear frame.

    python py/allsky_camera/ac_calibrate.py FRAME --name NAME --output etc/NAME.yaml
        [--lat DEG --lon DEG --elev M] [--masks FRAME ...]
    python py/allsky_camera/ac_calibrate.py --build-masks FRAME ... --output etc/NAME.yaml
    python py/allsky_camera/ac_calibrate.py --photometry FRAME ... --output etc/NAME.yaml

The first form solves the camera's geometry blind (see
:mod:`allsky_camera.camera.calibrate`), builds the bad-pixel and obstruction masks
from FRAME (and the --masks frames), measures the nominal zeropoint on FRAME
with the new model, and writes a ready-to-use camera configuration, its masks
beside it, and a diagnostic PNG.  The second form rebuilds only the masks of
an existing configuration from several frames.  The third measures the
camera's photometric terms (colour term, vignetting, clear-sky zeropoint;
:func:`allsky_camera.stages.photmodel.calibrate_terms`) on one or more clear frames
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
from allsky_camera.camera.config import CAMERA_PATH_ENV
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
#: A mask frame with the Moon above this altitude (deg) gets a warning: its
#: halo and glare are transient light (the frames' vote keeps them out of the
#: masks when most frames are moonless).
MOON_WARN_ALT_DEG = 0.0


def build_parser():
    p = argparse.ArgumentParser(prog="ac_calibrate.py", description=(
        "blind calibration of an all-sky camera from one clear frame"))
    p.add_argument("frames", nargs="+", help="clear raw frame (with --build-masks: frames)")
    p.add_argument("--output", default=None,
                   help="camera YAML to write, masks beside it (default: NAME.yaml in "
                        "--camera-dir); with --build-masks, the configuration to update: a "
                        "YAML path or a camera name")
    p.add_argument("--camera-dir", default=None, metavar="DIR",
                   help="folder of your own camera YAMLs: the new configuration is written "
                        "there as NAME.yaml; with --build-masks, a camera name is looked for "
                        f"there first (then in ${CAMERA_PATH_ENV} and the stock cameras)")
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
    p.add_argument("--photometry", action="store_true",
                   help="only measure the photometric terms (colour term, vignetting, "
                        "clear-sky zeropoint) of the configuration at --output on FRAMES")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing YAML (with --build-masks: existing masks)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress on stderr")
    p.add_argument("--version", action="version", version=f"allsky_camera {__version__}")
    return p


def output_path(opts):
    """The YAML a calibration writes: ``--output``, else NAME.yaml in ``--camera-dir``."""
    if opts.output:
        return Path(opts.output)
    if opts.camera_dir and opts.name:
        return Path(opts.camera_dir) / f"{opts.name}.yaml"
    raise AllskyError("give --output PATH.yaml, or --camera-dir DIR and --name NAME")


#: Saturation of a frame without DATAMAX whose data type says nothing (floats).
UINT16_MAX = 65535.0


def _read(path):
    """The frame as float32, its header, and the largest value of its data type.

    The last is the saturation level of a camera whose header has no DATAMAX
    (255 for 8-bit video cameras); 65535 for floating-point data.
    """
    from allsky_camera.stages.io import _read_image_hdu

    if not Path(path).exists():
        raise InputFileError(f"{path}: no such file; check the path")
    data, header = _read_image_hdu(str(path))
    if not np.any(data):
        raise InputFileError(f"{path}: every pixel is zero; nothing to calibrate on")
    kind_max = float(np.iinfo(data.dtype).max) if data.dtype.kind in "iu" else UINT16_MAX
    return data.astype(np.float32), header, kind_max


def _header_number(header, key, path, default=None):
    """A numeric header card, or InputFileError naming the file, card and value."""
    if key not in header:
        return default
    from allsky_camera.stages.io import card_number

    x = card_number(header, key, path, "is not a number; fix the header or give the value "
                                       "on the command line")
    if not np.isfinite(x):
        raise InputFileError(f"{path}: header card {key} = {header[key]!r} is not finite; fix "
                             "the header or give the value on the command line")
    return x


def _check_site(lat, lon, h, where):
    """Site values within the ranges of :data:`allsky_camera.camera.config.RANGES`."""
    from allsky_camera.camera.config import RANGES, check_range

    for key, value in (("site.lat_deg", lat), ("site.lon_deg", lon), ("site.height_m", h)):
        if value is not None:
            check_range(value, key, where, *RANGES[key])


def _site(opts, header, path):
    from allsky_camera.camera import coords

    lat, lon, h = opts.lat, opts.lon, opts.elev
    _check_site(lat, lon, h, "--lat/--lon/--elev")
    for klat, klon, kalt in (("OBSLAT", "OBSLONG", "OBSALT"), ("SITELAT", "SITELONG", "SITEELEV"),
                             ("LATITUDE", "LONGITUD", "ALTITUDE")):
        if lat is None and klat in header and klon in header:
            lat, lon = _header_number(header, klat, path), _header_number(header, klon, path)
            h = _header_number(header, kalt, path, 0.0) if h is None else h
            _check_site(lat, lon, h, f"{path}: header cards {klat}/{klon}/{kalt}")
    if lat is None or lon is None:
        raise InputFileError("the site is unknown: give --lat, --lon and --elev (the header "
                             "has no OBSLAT/OBSLONG)")
    h = 0.0 if h is None else h
    pressure = SEA_LEVEL_BAR * np.exp(-h / SCALE_HEIGHT_M)
    return coords.Site(lon, lat, h, pressure * 1000.0), (lat, lon, h, pressure)


def _camera_dict(name, data, header, opts, sol, site_vals, bias, masks_names,
                 type_max=UINT16_MAX):
    lat, lon, h, pressure = site_vals
    m = sol.model
    ny, nx = data.shape
    return {
        "name": name,
        "description": f"{header.get('INSTRUME', name)} all-sky camera, calibrated by "
                       f"ac_calibrate.py from {Path(opts.frames[0]).name}",
        "sensor": {"nx": nx, "ny": ny,
                   "saturation_adu": _header_number(header, "DATAMAX", opts.frames[0],
                                                    type_max),
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
    from allsky_camera.camera import coords
    from allsky_camera.stages import io

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
    from allsky_camera.camera import config

    d = {"exptime_card": None if opts.exptime is not None else opts.exptime_card,
         "dateobs_card": opts.dateobs_card, "timeobs_card": opts.timeobs_card,
         "time_format": opts.time_format, "utc_offset_hours": opts.utc_offset,
         "exptime_s": opts.exptime}
    config.check_header_cards(config.HeaderCards(**d), "ac_calibrate.py options")
    return d


def _start_time(header, opts):
    from allsky_camera.camera import config
    from allsky_camera.stages import io

    return io.start_time(header, config.HeaderCards(**header_section(opts)), opts.frames[0])


def sol_time_iso(header, opts):
    return _start_time(header, opts).iso_utc


def _measure_zeropoint(cam_dict, data, header, out_dir, frame):
    """Reduce the calibration frame with the new configuration; ZPTOTAL."""
    import tempfile

    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.stages import io

    cam = config.camera_from_dict(cam_dict, source=str(out_dir / "x.yaml"))
    exp = io.exposure_from_data(frame, data, header, cam)
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
    from allsky_camera.output import plotting

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
    """Solve, build the masks, measure the zeropoint; publish everything only on success.

    The YAML, both masks and the diagnostic PNG are staged in an
    :class:`~allsky_camera.output.outputs.OutputSet` and renamed into place together
    once the calibration has worked, so a failure leaves no file and an
    existing camera's files are replaced only with ``--overwrite``.
    """
    from allsky_camera.camera import calibrate, camera_yaml, config, masks
    from allsky_camera.camera.config import RANGES, check_range
    from allsky_camera.output import outputs
    from allsky_camera.stages import io

    out = output_path(opts)
    name = opts.name or out.stem
    names = (f"{name}_bpm.fits", f"{name}_obstruction.fits")
    targets = [out, out.parent / names[0], out.parent / names[1], out.with_suffix(".png")]
    _check_site(opts.lat, opts.lon, opts.elev, "--lat/--lon/--elev")
    check_range(opts.utc_offset, "header.utc_offset_hours", "--utc-offset",
                *RANGES["header.utc_offset_hours"])
    io.check_outdir(out.parent)
    frame = opts.frames[0]
    data, header, type_max = _read(frame)
    stack, headers = [data], [header]
    for f in opts.masks:
        d_, h_, _ = _read(f)
        headers.append(h_)
        if d_.shape != data.shape:
            raise InputFileError(f"{f}: --masks frame is {d_.shape[1]}x{d_.shape[0]} pixels but "
                                 f"{frame} is {data.shape[1]}x{data.shape[0]}; give frames of "
                                 "the same camera")
        stack.append(d_)
    _header_number(header, "DATAMAX", frame)     # checked now, used by _camera_dict
    t = _start_time(header, opts)
    site, site_vals = _site(opts, header, frame)
    with outputs.OutputSet(out.parent, out.stem, targets, overwrite=opts.overwrite) as oset:
        stage = oset.staging
        sol = calibrate.solve(data, t, site)
        log.info("calibrate: %s projection, %d stars, rms %.3f px", sol.model.projection,
                 sol.n_matched, sol.rms_px)
        # said once the frame is solved, so that a refusal stays one line
        warn_moon([frame, *opts.masks], headers, config.HeaderCards(**header_section(opts)),
                  site)
        bpm = masks.bad_pixels(np.stack(stack))
        obs = masks.obstructions(np.stack(stack), sol.circle)
        cx, cy, rad = sol.circle
        yy, xx = np.ogrid[:data.shape[0], :data.shape[1]]
        ring = ((xx - cx) ** 2 + (yy - cy) ** 2 > (rad + 10) ** 2)
        bias = (float(np.percentile(data[ring], 1)) if ring.any()
                else float(np.percentile(data, 0.5)))
        d = _camera_dict(name, data, header, opts, sol, site_vals, bias, names, type_max)
        # the masks go to the staging directory: the zeropoint run reads them there
        masks.write_mask(bpm, stage / names[0])
        masks.write_mask(obs, stage / names[1])
        zp = _measure_zeropoint(d, data, header, stage, frame)
        if zp.ok:
            # again with the S/N selection, which needs a nominal zeropoint
            d["photometry"]["zp_nominal"] = round(float(zp.zp_total), 4)
            d["photometry"]["zp_min_snr"] = ZP_MIN_SNR
            zp = _measure_zeropoint(d, data, header, stage, frame)
        if not zp.ok:
            raise AllskyError(f"{frame}: no zeropoint could be measured ({zp.message}); "
                              "calibrate on a clear frame")
        d["photometry"]["zp_nominal"] = round(float(zp.zp_total), 4)
        d["calibration"]["zp_stars"] = int(zp.n_stars)
        (stage / out.name).write_text(camera_yaml.dump(d, preamble=yaml_preamble(name)))
        _diagnostic_png(stage / out.with_suffix(".png").name, data, sol)
        oset.commit()
    print(f"wrote {out} ({sol.model.projection}, {sol.n_matched} stars, rms {sol.rms_px:.3f} px, "
          f"zeropoint {zp.zp_total:.3f})")
    # the camera's photometric terms on the same frame, with the new geometry
    calibrate_photometry(argparse.Namespace(frames=opts.frames[:1], output=str(out)))


def yaml_preamble(name):
    """Comment lines that open a YAML written by this tool."""
    return (f"Camera {name}: written by ac_calibrate.py {__version__} on "
            f"{dt.date.today().isoformat()}; see the calibration block.",
            "Pixels 0-based, x = column, pixel centres at integers; angles in degrees.")


def set_mask_names(text, names, docs):
    """YAML text with ``sensor.bad_pixel_mask`` and ``obstruction_mask`` set.

    The two lines are replaced in place, so the file's other lines and their
    comments stay as they were.

    Parameters
    ----------
    text : str
        The configuration's YAML.
    names : tuple of str
        Bad-pixel and obstruction mask file names, relative to the YAML.
    docs : dict
        Key descriptions (:data:`allsky_camera.camera.config.KEY_DOCS`) for the comments.

    Returns
    -------
    str, or None when the keys are not each on one line of their own.
    """
    import re

    from allsky_camera.camera import camera_yaml

    for key, value in zip(("bad_pixel_mask", "obstruction_mask"), names):
        pat = re.compile(rf"^(?P<ind>[ \t]+){key}:.*$", re.MULTILINE)
        found = pat.findall(text)
        if len(found) != 1:
            return None
        ind = found[0]
        line = camera_yaml.key_line(key, value, docs[f"sensor.{key}"])
        text = pat.sub(lambda m, ln=line, ind=ind: ind + ln, text)
    return text


def build_masks_only(opts):
    import yaml

    from allsky_camera.camera import calibrate, camera_yaml, config, coords, masks
    from allsky_camera.stages import io

    if opts.output is None:
        raise AllskyError("--build-masks: give --output, the configuration (a YAML path or a "
                          "camera name) whose masks to rebuild")
    dirs = config.camera_dirs([opts.camera_dir] if opts.camera_dir else [])
    cam = config.load_camera(opts.output, dirs)
    names = (cam.sensor.bad_pixel_mask or f"{cam.name}_bpm.fits",
             cam.sensor.obstruction_mask or f"{cam.name}_obstruction.fits")
    paths = [cam.resolve(n) for n in names]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not opts.overwrite:
        raise OutputError(f"{', '.join(existing)}: exists already; pass --overwrite to "
                          "replace the masks")
    frames = [_read(f) for f in opts.frames]
    stack = np.stack([f[0] for f in frames])
    warn_moon(opts.frames, [f[1] for f in frames], cam.header,
              coords.site_from_config(cam.site)[0])
    if stack.shape[1:] != (cam.sensor.ny, cam.sensor.nx):
        raise InputFileError(f"{opts.frames[0]}: frames are {stack.shape[2]}x{stack.shape[1]}, "
                             f"camera {cam.name} is {cam.sensor.nx}x{cam.sensor.ny}; give "
                             "frames of that camera")
    circle = calibrate.lens_circle(np.median(stack, axis=0))
    bpm, obs = masks.bad_pixels(stack), masks.obstructions(stack, circle)
    masks.write_mask(bpm, paths[0])
    masks.write_mask(obs, paths[1])
    if cam.sensor.bad_pixel_mask is None or cam.sensor.obstruction_mask is None:
        yaml_path = Path(cam.source)
        old = yaml_path.read_text()
        text = set_mask_names(old, names, config.KEY_DOCS)
        if text is None:   # keys not one per line: write the whole file anew
            d = yaml.safe_load(old)
            d["sensor"]["bad_pixel_mask"], d["sensor"]["obstruction_mask"] = names
            text = camera_yaml.dump(d, preamble=yaml_preamble(cam.name))
        with io.atomic_path(yaml_path) as tmp:
            tmp.write_text(text)
    print(f"wrote {names[0]} and {names[1]} beside {cam.source}")


def _reduce_for_photometry(cam, path):
    """Reduce one clear frame with ``cam``; the catalog table and exposure time (s)."""
    import tempfile

    from allsky_camera import ac_proc
    from allsky_camera.stages import io

    exp = io.read_exposure(str(path), cam)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ac_proc.build_parser().parse_args(["x", "--outdir", tmp, "--skip_checkplots",
                                                  "--skip_sbmap", "--dont_write_detrended",
                                                  "--dont_write_catalog"])
        return ac_proc.process(exp, cam, opts)["catalog"], exp.exptime


def _photometric_stars(cat, m_tot, vmag, ph, path):
    """Stars that measure the camera's photometric terms, and their magnitudes.

    Unflagged stars (beyond the safe radius too) to ``photometry.model_vmax``.
    On a coarse camera (large pixels on the sky) nearly every star has other
    catalog stars' light in its aperture and is flagged BLENDED; when fewer
    than ``photometry.ext_min_stars`` unflagged stars remain, the blended
    ones join with their own light (total-flux magnitude plus 2.5 log10 of
    the catalog's ``blend_factor``, the crowding measure's best estimate),
    and a warning says so.

    Returns
    -------
    sel : ndarray of bool
    m_tot : ndarray
        Total-flux instrumental magnitudes, blend-corrected where used so.
    """
    from allsky_camera.flags import bit

    flags = np.asarray(cat["flags"]) & ~np.int32(bit("OUTSIDE_SAFE"))
    bright = vmag <= ph.model_vmax
    sel = (flags == 0) & bright
    if sel.sum() >= ph.ext_min_stars or "blend_factor" not in cat.colnames:
        return sel, m_tot
    blended = ((flags & ~np.int32(bit("BLENDED"))) == 0) & bright
    log.warning("%s: only %d unblended stars; using %d blended ones too, with their "
                "blend-corrected fluxes (a coarse pixel scale puts other stars' light in "
                "most apertures)", path, int(sel.sum()), int((blended & ~sel).sum()))
    return blended, m_tot + 2.5 * np.log10(np.asarray(cat["blend_factor"], dtype=float))


def calibrate_photometry(opts):
    """Measure c, v(zd) and the clear-sky zeropoint; update only those keys."""
    import dataclasses

    import yaml

    from allsky_camera.camera import config
    from allsky_camera.exceptions import ConfigError
    from allsky_camera.stages import photmodel

    cam = config.load_camera(opts.output)
    ph = cam.photometry
    if ph.zp_nominal_scale != "total":
        raise ConfigError(f"{opts.output}: photometry.zp_nominal_scale is "
                          f"{ph.zp_nominal_scale!r}; --photometry writes a total-flux "
                          "zeropoint: set it to 'total' first")
    # reduce without the old terms, so that nothing of them leaks into the new ones
    bare = dataclasses.replace(cam, photometry=dataclasses.replace(
        ph, colour_term=0.0, colour_term_err=0.0, vignetting=(), colour_quad=0.0,
        vignetting_tilt=(), vignetting_ellipse=()))
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
        # unflagged stars, those beyond the safe radius included: the
        # clear-sky model must hold down to the horizon, where the cloud map
        # uses them (on the DCT 005 that takes the V < 5 residuals beyond
        # zd 70 from 0.30 to 0.19 mag and those inside from 0.096 to 0.093)
        sel, m_tot = _photometric_stars(cat, m_tot, vmag, ph, f)
        frames.append((m_tot, vmag, np.asarray(cat["BV"]), 90.0 - np.asarray(cat["alt_deg"]),
                       sel, np.where(m_err > 0, m_err, np.nan), np.asarray(cat["az_deg"])))
    try:
        terms = photmodel.calibrate_terms(frames, k=ph.ext_coef, n_vignetting=VIGNETTING_TERMS,
                                          clip_sigma=ph.model_clip_sigma,
                                          faint_clip_mag=ph.model_faint_clip_mag,
                                          min_stars=ph.ext_min_stars,
                                          floor_mag=ph.model_floor_mag,
                                          colour_quad=True, tilt=True, ellipse=True)
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
    p["colour_quad"] = round(terms.colour_quad, 4)
    p["vignetting_tilt"] = [round(v, 4) for v in terms.vignetting_tilt]
    p["vignetting_ellipse"] = [round(v, 4) for v in terms.vignetting_ellipse]
    c = d.setdefault("calibration", {})
    c["phot_frames"] = [Path(f).name for f in opts.frames]
    c["phot_zp_frames"] = [round(z, 4) for z in terms.zp_frames]
    c["phot_k_held"] = ph.ext_coef
    c["phot_n_stars"] = terms.n_used
    c["phot_rms_mag"] = round(terms.rms_mag, 4)
    c["phot_made"] = dt.date.today().isoformat()
    from allsky_camera.camera import camera_yaml
    from allsky_camera.stages import io

    with io.atomic_path(path) as tmp:
        tmp.write_text(camera_yaml.dump(d, preamble=yaml_preamble(cam.name)))
    print(f"updated {path}: zeropoint {terms.zp:.3f}, colour term {terms.colour_term:.3f} "
          f"+- {terms.colour_term_err:.3f}, curvature {terms.colour_quad:.3f}, "
          f"vignetting {list(p['vignetting'])} tilt {list(p['vignetting_tilt'])} "
          f"ellipse {list(p['vignetting_ellipse'])} "
          f"(k held at {ph.ext_coef:g}; {terms.n_used} stars, rms {terms.rms_mag:.3f} mag)")


def main(argv=None):
    """Command-line entry point; returns the exit status.

    Ctrl-C, SIGTERM and SIGHUP end the run with one line, status 128 + the
    signal's number, and no file written.
    """
    from allsky_camera.output import interrupts

    opts = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if opts.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        with interrupts.handled():
            if opts.build_masks:
                build_masks_only(opts)
            elif opts.photometry:
                calibrate_photometry(opts)
            else:
                calibrate_frame(opts)
    except AllskyError as err:
        print(f"ac_calibrate.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        name, status = interrupts.describe(err)
        print(f"ac_calibrate.py: error: interrupted by {name}; no file was written",
              file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
