#!/usr/bin/env python
"""Time the crowding stage over a night, with its per-process caches.

    python benchmarks/bench_crowding.py [--frames 36] [--every 10] [--camera DCT]

Builds the crowding inputs of a sequence of exposures (every ``--every``
minutes from 03:00 UTC on 2018-08-06 at the camera's site, the DCT frame
005's night; every reference star above 1 deg through the camera's static
model), then times ``crowding.run`` (CPU) on each in turn in one process, as
a night runner's worker would, and the exhaustive search without caches
(``crowding.run_exhaustive``) on a few of them.  Prints the first frame, the
median and mean of the others (the mean holds the hourly apparent places and
the newly risen stars) and the memory the caches hold (their arrays, and the
peak traced by tracemalloc while the night ran).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))

#: Start of the benchmark night (UTC), the night of the DCT frame 005.
_NIGHT_START = "2018-08-06T03:00:00"
#: Seconds per minute and per day.
_MIN_S, _DAY_S = 60.0, 86400.0


def frame_inputs(cam, site, t):
    """The arguments of ``crowding.run`` for an exposure at ``t``."""
    from allsky_camera.camera import coords
    from allsky_camera.stages import catalog

    model = cam.astrometry.model
    stars = catalog.reference_stars(t.jd_tt, cam.photometry.vmax)
    alt, az = coords.radec_to_altaz(np.asarray(stars["RA"]), np.asarray(stars["DEC"]), t,
                                    site)
    up = alt > 1.0
    stars, alt, az = stars[up], alt[up], az[up]
    x, y = model.altaz_to_xy(alt, az)
    apcor = 0.15 + 0.1 * ((90.0 - alt) / 90.0) ** 2
    vmag = np.asarray(stars["VMAG"], dtype=float)
    kw = dict(star_total_adu=2e5 * 10 ** (-0.4 * (vmag - 3.0)),
              sky_sigma_adu=np.full(len(stars), 25.0))
    shape = (1040, 1392)
    return (stars, x, y, model, t, site, apcor, cam.photometry, shape), kw


def main(argv=None):
    import dataclasses

    from allsky_camera.camera import config, coords
    from allsky_camera.stages import _crowd_cache, catalog, crowding

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=36, help="exposures in the night")
    p.add_argument("--every", type=float, default=10.0, help="minutes between exposures")
    p.add_argument("--camera", default="DCT", help="camera configuration")
    o = p.parse_args(argv)
    cam = config.load_camera(o.camera)
    site, _ = coords.site_from_config(cam.site, None)
    t0 = coords.parse_time(_NIGHT_START)
    catalog.load_catalog(catalog.DEEP_VMAX)
    crowding.measure(np.ones(1), np.ones(1), [0], [1.0], np.ones(1), aper_radius_px=2.0,
                     annulus_px=(5.0, 10.0), star_total_adu=np.ones(1),
                     sky_sigma_adu=np.ones(1))          # tables built, as in a warm process
    frames = []
    for k in range(o.frames):
        dt = k * o.every * _MIN_S / _DAY_S
        t = dataclasses.replace(t0, utc2=t0.utc2 + dt, tt2=t0.tt2 + dt)
        frames.append(frame_inputs(cam, site, t))
    _crowd_cache.clear()
    cpu = []
    for args, kw in frames:
        c0 = time.process_time()
        crowding.run(*args, **kw)
        cpu.append(time.process_time() - c0)
    held = sum(v.nbytes for v in _crowd_cache._NEIGHBOURS._data.values()) + sum(
        v.nbytes for v in _crowd_cache._PLACES._data.values())
    # the memory again, traced (tracemalloc slows numpy down: not timed)
    _crowd_cache.clear()
    tracemalloc.start()
    for args, kw in frames:
        crowding.run(*args, **kw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ex = []
    for args, kw in frames[:: max(1, len(frames) // 4)]:
        c0 = time.process_time()
        crowding.run_exhaustive(*args, **kw)
        ex.append(time.process_time() - c0)
    ms = 1e3 * np.asarray(cpu)
    print(f"crowding.run, {o.camera}, {o.frames} frames every {o.every:g} min "
          f"({len(frames[0][0][0])} reference stars in the first), CPU:")
    print(f"  first frame {ms[0]:.1f} ms; the others: median {np.median(ms[1:]):.1f} ms, "
          f"mean {np.mean(ms[1:]):.1f} ms, max {np.max(ms[1:]):.1f} ms")
    print(f"  exhaustive search (no cache), median of {len(ex)}: "
          f"{1e3 * np.median(ex):.1f} ms")
    print(f"  caches hold {held / 1e6:.1f} MB at the end; traced peak while the night ran "
          f"(caches and each frame's arrays) {peak / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
