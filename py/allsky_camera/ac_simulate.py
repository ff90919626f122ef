#!/usr/bin/env python
"""Render a simulated raw all-sky exposure and its truth.

    python py/allsky_camera/ac_simulate.py OUT.fits [--camera MDM] [--seed N]
        [--dateobs ISO] [--exptime S] [--shift DX DY] [--rotate DEG]
        [--clouds {none,patches,band,quarter,half,three-quarter,overcast,thin,haze}]
        [--transmission T]
        [--streaks N] [--planets] [--dome AZ HALF TOP] [--text] [--overwrite] [-v]

The frame is written to OUT and its truth beside it as ``<stem>-truth.fits``
(:func:`allsky_camera.sim.simulate.write_simulation`).  Errors end the run
with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if not __package__:   # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from allsky_camera import __version__
from allsky_camera.exceptions import AllskyError, ConfigError
from allsky_camera.sim.simulate import (
    CLOUD_KINDS,
    Clouds,
    check_writable,
    random_streaks,
    simulate,
    truth_path,
    write_simulation,
)


def build_parser():
    """The command-line parser."""
    from allsky_camera.camera.config import DEFAULT_CAMERA

    p = argparse.ArgumentParser(
        prog="ac_simulate.py",
        description="Render a simulated raw all-sky exposure, and its truth beside it "
                    "as <stem>-truth.fits.")
    p.add_argument("out", help="raw frame to write (.fits, .fits.gz or .fits.bz2)")
    p.add_argument("--camera", default=DEFAULT_CAMERA,
                   help=f"camera name or a YAML path (default {DEFAULT_CAMERA})")
    p.add_argument("--camera-dir", action="append", default=[], metavar="DIR",
                   help="folder of your own camera YAMLs, searched before $ALLSKY_CAMERA_PATH "
                        "and the stock cameras (may be repeated)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--dateobs", default=None,
                   help="start time, ISO 8601 on the camera's clock (default: the camera's)")
    p.add_argument("--exptime", type=float, default=None,
                   help="exposure time, s (default: the camera's)")
    p.add_argument("--shift", type=float, nargs=2, default=(0.0, 0.0), metavar=("DX", "DY"),
                   help="shift of the zenith pixel from the template, pixels")
    p.add_argument("--rotate", type=float, default=0.0, metavar="DEG",
                   help="rotation added to the template's rot_deg, deg")
    p.add_argument("--clouds", choices=CLOUD_KINDS, default="none",
                   help="cloud layer (default none)")
    p.add_argument("--transmission", type=float, default=Clouds.transmission, metavar="T",
                   help=f"transmission inside the clouds, 0-1 (default {Clouds.transmission})")
    p.add_argument("--streaks", type=int, default=0, metavar="N",
                   help="number of random streaks (default 0); a third of them leave the image")
    from allsky_camera.sim import sim_extras
    sim_extras.add_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress on stderr")
    p.add_argument("--version", action="version", version=f"allsky_camera {__version__}")
    return p


def _setup_logging(verbose):
    """Log to stderr: warnings only, everything with ``-v``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("allsky_camera")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.propagate = False


def main(argv=None):
    """Command-line entry point; returns the exit status (0, or 2 after an error)."""
    from allsky_camera.camera.config import camera_dirs, load_camera
    from allsky_camera.sim import sim_extras

    opts = build_parser().parse_args(argv)
    _setup_logging(opts.verbose)
    try:
        camera = load_camera(opts.camera, camera_dirs(opts.camera_dir))
        check_writable([opts.out, truth_path(opts.out)], opts.overwrite)
        if opts.streaks < 0:
            raise ConfigError(f"--streaks {opts.streaks}: give a number of streaks >= 0")
        clouds = (None if opts.clouds == "none"
                  else Clouds(opts.clouds, transmission=opts.transmission))
        # streak places from their own stream of the seed
        streaks = random_streaks(opts.streaks, (camera.sensor.ny, camera.sensor.nx),
                                 np.random.default_rng(opts.seed).spawn(2)[1])
        sim = simulate(camera, seed=opts.seed, dateobs=opts.dateobs, exptime=opts.exptime,
                       zenith_shift=tuple(opts.shift), rotation_deg=opts.rotate,
                       clouds=clouds, streaks=streaks, extras=sim_extras.from_options(opts))
        raw_path, tpath = write_simulation(sim, opts.out, overwrite=opts.overwrite)
    except AllskyError as err:
        print(f"ac_simulate.py: error: {err}", file=sys.stderr)
        return 2
    t = sim.truth
    print(f"{raw_path}: {camera.name} {t.time.iso_utc} UTC, {len(t.stars)} stars, "
          f"zp_true {t.zp_true:.3f}, zp_aper_true {t.zp_aper_true:.3f}; truth {tpath}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
