#!/usr/bin/env python
"""Run the all-sky camera reduction pipeline on one exposure.

    python py/allsky_camera/ac_proc.py RAW.fits --outdir DIR

The stages run in the order written in :func:`process`, each a function of
its own module, passing arrays and tables in memory.  Errors the user can fix
end the run with one line on stderr and exit status 2; a sky that does not
allow a measurement (clouds, twilight) is logged, recorded in the output
header, and the run goes on with what it can produce.  The products are
published together once all are written (:mod:`allsky_camera.output.outputs`): a run
that fails, or is ended by Ctrl-C, SIGTERM or SIGHUP (exit status 128 + the
signal's number), leaves the earlier outputs as they were.  Every log line
and error names the frame.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

if not __package__:   # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allsky_camera import __version__
from allsky_camera.exceptions import AllskyError
from allsky_camera.reduction import Timer

log = logging.getLogger("allsky_camera")

#: The demo's camera is knocked off its template by this much (pixels, deg),
#: to show the per-exposure astrometric fit at work.
DEMO_SHIFT_PX = (2.5, -1.5)
DEMO_ROTATION_DEG = 0.3

#: Products of the optional flags that a later release adds.
NOT_YET = {
}

#: Options that contradict each other: giving both is an error.
CONFLICTS = (("skip_sbmap", "write_sbmap"), ("verbose", "quiet"), ("demo", "fname_in"))


def check_conflicts(opts):
    """One line naming the first contradictory pair of options given, or None."""
    def flag(dest):
        return "a raw file name" if dest == "fname_in" else (
            "-q/--quiet" if dest == "quiet" else
            "-v/--verbose" if dest == "verbose" else "--" + dest)
    for a, b in CONFLICTS:
        if getattr(opts, a) and getattr(opts, b):
            return f"{flag(a)} and {flag(b)} contradict each other; give one of them"
    return None


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
                   help="camera configuration: a camera name or a YAML path (default: the "
                        "configuration whose INSTRUME, else image size, matches the frame; "
                        "else MDM; --demo: MDM)")
    p.add_argument("--camera-dir", action="append", default=[], metavar="DIR",
                   help="folder of your own camera YAMLs, searched before $ALLSKY_CAMERA_PATH "
                        "and the stock cameras (may be repeated)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (otherwise they are refused)")
    p.add_argument("--demo", action="store_true",
                   help="reduce a simulated exposure of the camera (no input file needed)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every stage's details")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("--version", action="version", version=f"allsky_camera {__version__}")
    return p


def output_paths(outdir, stem):
    """Names of every product of an exposure, by kind."""
    from allsky_camera.output.products import output_paths as paths
    return paths(outdir, stem)


def wanted_outputs(opts, paths):
    """The products this run will write, given the options."""
    from allsky_camera.output.products import Products, wanted_paths
    return wanted_paths(Products.from_options(opts), paths)


def process(exposure, camera, opts, timer=None, written=None):
    """Reduce one exposure and write its products.

    The reduction (:func:`allsky_camera.reduction.reduce_exposure`) runs the
    stages in memory; :mod:`allsky_camera.output.writers` writes what ``opts`` ask for.

    Parameters
    ----------
    exposure : Exposure
        From :func:`allsky_camera.stages.io.read_exposure` (or the simulator).
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
        ``zeropoint``, ``skymap`` (or None), ``paths`` written, and the
        whole ``reduction``.
    """
    from allsky_camera.output import writers
    from allsky_camera.output.products import Products
    from allsky_camera.reduction import reduce_exposure

    timer = timer or Timer()
    products = Products.from_options(opts)
    written = [] if written is None else written

    red = reduce_exposure(exposure, camera, products, timer)
    cat = writers.catalog_table(red)
    cards = writers.header_cards(red)
    timer.lap("table")
    writers.write_products(red, products, output_paths(opts.outdir, exposure.stem),
                           written=written, timer=timer, table=cat, cards=cards)
    return {"catalog": cat, "solution": red.solution, "zeropoint": red.zeropoint,
            "skymap": red.skymap, "transparency": red.transparency, "clouds": red.clouds,
            "streaks": red.streaks,
            "detrended": red.detrended, "header_cards": cards, "paths": written,
            "ephem": red.ephem, "reduction": red}


class FrameFormatter(logging.Formatter):
    """Put the frame's name before every message, so a night's log says which
    frame; the record itself is left as it was, for any other handler."""

    def __init__(self, frame):
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.frame = frame

    def formatMessage(self, record):
        message = record.message
        if self.frame and self.frame not in message:
            record.message = f"{self.frame}: {message}"
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


def setup_logging(verbose, quiet, frame=None):
    """Log to stderr: INFO by default, DEBUG with -v, WARNING with -q.

    Every record, and every Python warning (``logging.captureWarnings``),
    names ``frame``.  Returns the handler.
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FrameFormatter(frame))
    for name in ("allsky_camera", "py.warnings"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False
    return handler


def frame_name(opts):
    """The name of the frame a run reduces, printable, for log lines and errors."""
    from allsky_camera.stages.io import fits_text

    if opts.demo:
        return "demo"
    return fits_text(Path(opts.fname_in).name) if opts.fname_in else None


def run(opts):
    """Run the pipeline for parsed options; returns the results of :func:`process`.

    The products are written into the staging directory of an
    :class:`~allsky_camera.output.outputs.OutputSet` and published together at the
    end, so a failed or interrupted run leaves the previous outputs intact.
    """
    from allsky_camera.camera import config
    from allsky_camera.output import outputs
    from allsky_camera.stages import io

    timer = Timer()
    data = header = None
    dirs = config.camera_dirs(getattr(opts, "camera_dir", None) or [])
    if opts.camera is None and not opts.demo:
        # no camera named: pick the configuration that matches the frame
        data, header = io._read_image_hdu(opts.fname_in)
        camera, why = config.select_camera(header, data.shape, dirs)
        log.info("camera %s chosen by %s (give --camera to choose)", camera.name, why)
    else:
        camera = config.load_camera(opts.camera or config.DEFAULT_CAMERA, dirs)
    if opts.multiproc < 1:
        raise AllskyError(f"--multiproc {opts.multiproc}: give a number of processes >= 1")
    for key, what in NOT_YET.items():
        if getattr(opts, key):
            log.warning("%s is not available in this version; continuing without it", what)
    io.check_outdir(opts.outdir)
    if opts.demo:
        from allsky_camera.sim import simulate
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
    log.info("%s: camera %s, exposure %.3g s at %s UTC", exposure.path, camera.name,
             exposure.exptime, exposure.time.iso_utc)
    with outputs.OutputSet(opts.outdir, exposure.stem, wanted_outputs(opts, paths),
                           overwrite=opts.overwrite) as oset:
        staged = argparse.Namespace(**{**vars(opts), "outdir": str(oset.staging)})
        result = process(exposure, camera, staged, timer)
        oset.commit()
    result["paths"] = [oset.final(p) for p in result["paths"]]
    result["times"] = timer.times
    log.info("done in %.2f s (%s)", sum(timer.times.values()),
             ", ".join(f"{k} {v:.2f}" for k, v in timer.times.items()))
    return result


def main(argv=None):
    """Command-line entry point; returns the exit status.

    SIGTERM and SIGHUP end the run like Ctrl-C: its temporaries are removed,
    one line is printed, and the status is 128 + the signal's number.
    """
    from allsky_camera.output import interrupts

    parser = build_parser()
    opts = parser.parse_args(argv)
    conflict = check_conflicts(opts)
    if conflict:
        print(f"ac_proc.py: error: {conflict}", file=sys.stderr)
        return 2
    if opts.fname_in is None and not opts.demo:
        parser.print_usage(sys.stderr)
        print("ac_proc.py: error: give a raw exposure file name, or --demo", file=sys.stderr)
        return 2
    frame = frame_name(opts)
    setup_logging(opts.verbose, opts.quiet, frame)
    _route_warnings(True)
    try:
        with interrupts.handled():
            run(opts)
    except AllskyError as err:
        msg = str(err)
        named = frame and (frame in msg or str(opts.fname_in) in msg)
        print(f"ac_proc.py: error: {msg if named else f'{frame}: {msg}'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        name, status = interrupts.describe(err)
        print(f"ac_proc.py: error: {frame}: interrupted by {name}; no partial output was left",
              file=sys.stderr)
        return status
    finally:
        _route_warnings(False)
    return 0


_SAVED_SHOWWARNING = []


def _log_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` replacement: one log line, ``Category: message``."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else ""
    logging.getLogger("py.warnings").warning("%s: %s (%s:%d)", category.__name__, first,
                                            Path(filename).name, lineno)


def _route_warnings(on):
    """Send Python warnings (astropy's too) through our log, which names the frame."""
    import warnings

    from astropy import log as astropy_log
    from astropy.logger import LoggingError

    if on:
        with contextlib.suppress(LoggingError):   # astropy does not own them: fine
            astropy_log.disable_warnings_logging()
        _SAVED_SHOWWARNING.append(warnings.showwarning)
        warnings.showwarning = _log_warning
    elif _SAVED_SHOWWARNING:
        warnings.showwarning = _SAVED_SHOWWARNING.pop()
        with contextlib.suppress(LoggingError):
            astropy_log.enable_warnings_logging()


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
