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


def output_paths(outdir, stem):
    """Names of every product of an exposure, by kind."""
    from allsky_camera.products import output_paths as paths
    return paths(outdir, stem)


def wanted_outputs(opts, paths):
    """The products this run will write, given the options."""
    from allsky_camera.products import Products, wanted_paths
    return wanted_paths(Products.from_options(opts), paths)


def process(exposure, camera, opts, timer=None, written=None):
    """Reduce one exposure and write its products.

    The reduction (:func:`allsky_camera.reduction.reduce_exposure`) runs the
    stages in memory; :mod:`allsky_camera.writers` writes what ``opts`` ask for.

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
        ``zeropoint``, ``skymap`` (or None), ``paths`` written, and the
        whole ``reduction``.
    """
    from allsky_camera import writers
    from allsky_camera.products import Products
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
