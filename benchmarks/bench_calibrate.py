#!/usr/bin/env python
"""Blind calibration of small, noisy cameras: accuracy and time.

    python benchmarks/bench_calibrate.py [--seeds 5 6] [--old]

For each lens law (equidistant, equisolid, stereographic, orthographic) and
seed, a 640x480 8-bit frame of the test camera ``tests/data/SMALL640.yaml``
is simulated with planets, a dome and a burned-in time stamp, its lens law
put on a 252 px horizon circle, and solved blind by
:func:`allsky_camera.camera.calibrate.solve`.  Printed per frame: the bright stars
the hypothesis verified, the zenith and rotation errors against the truth,
the residual RMS, and the time of the search and of the whole solve (CPU
seconds of this process, and wall-clock seconds).
With ``--old`` the equidistant-only exhaustive scan
(:func:`allsky_camera.camera.calibrate.search`) is also scored and timed on the
same detections.  Times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))

import numpy as np  # noqa: E402

#: Lens laws simulated, with (parity, rotation deg) of each.
CASES = {"equidistant": (1, 27.3), "equisolid": (-1, 118.0), "stereographic": (1, 301.5),
         "orthographic": (-1, 203.0)}
#: Radius (px) of the horizon circle, at this altitude (deg).
HORIZON_PX, HORIZON_ALT = 252.0, 2.0


def camera(projection, parity, rot):
    from allsky_camera.camera import config
    from allsky_camera.camera.camera_model import _G

    cam = config.load_camera(REPO / "tests" / "data" / "SMALL640.yaml")
    f = HORIZON_PX / float(_G[projection](np.radians(90.0 - HORIZON_ALT)))
    m = cam.astrometry.model.replace(projection=projection, coeffs=(f,), parity=parity,
                                     rot_deg=rot)
    return dataclasses.replace(cam, astrometry=dataclasses.replace(cam.astrometry, model=m))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[5])
    p.add_argument("--old", action="store_true", help="also time the equidistant-only scan")
    opts = p.parse_args(argv)
    from allsky_camera.camera import blind_search, calibrate, coords
    from allsky_camera.sim import sim_extras, simulate
    from allsky_camera.stages import catalog

    ex = sim_extras.Extras(planets=True, text=sim_extras.TextOverlay(),
                           dome=sim_extras.Dome(az_deg=150.0, half_width_deg=30.0,
                                                top_alt_deg=30.0))
    print(f"{'lens':14s} seed  verified  dzen_px  drot_deg  rms_px  search_cpu/wall_s  "
          "solve_cpu/wall_s" + ("  old_verified  old_cpu/wall_s" if opts.old else ""))
    for proj, (parity, rot) in CASES.items():
        cam = camera(proj, parity, rot)
        site, _ = coords.site_from_config(cam.site)
        for seed in opts.seeds:
            sim = simulate.simulate(cam, seed=seed, extras=ex)
            img = sim.image.astype(np.float32) - cam.simulation.bias_adu
            t = sim.truth.time
            circle = calibrate.lens_circle(img)
            xd, yd, _, _ = calibrate.detect(img, circle)
            stars = catalog.reference_stars(t.jd_tt, calibrate.SEARCH_VMAX)
            alt, az = coords.radec_to_altaz(stars["RA"], stars["DEC"], t, site)
            b = alt > calibrate.SEARCH_MIN_ALT
            c0, t0 = time.process_time(), time.perf_counter()
            score, _ = blind_search.search((xd, yd), img.shape, alt[b], az[b], circle)
            t_search = f"{time.process_time() - c0:.2f}/{time.perf_counter() - t0:.2f}"
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                sol = calibrate.solve(img, t, site)
                m, tm = sol.model, sim.truth.model
                dzen = float(np.hypot(m.x0 - tm.x0, m.y0 - tm.y0))
                drot = float((m.rot_deg - tm.rot_deg + 180.0) % 360.0 - 180.0)
                row = f"{dzen:7.3f}  {drot:8.4f}  {sol.rms_px:6.3f}"
            except Exception as err:       # a benchmark reports failures, it does not stop
                row = f"FAILED: {err}"
            t_solve = f"{time.process_time() - c0:.2f}/{time.perf_counter() - t0:.2f}"
            line = (f"{proj:14s} {seed:4d}  {score:4d}/{int(b.sum()):<3d}  {row}  "
                    f"{t_search:>17s}  {t_solve:>16s}")
            if opts.old:
                c0, t0 = time.process_time(), time.perf_counter()
                old, _ = calibrate.search((xd, yd), img.shape, alt[b], az[b], circle)
                line += (f"  {old:6d}/{int(b.sum()):<3d}  "
                         f"{time.process_time() - c0:.2f}/{time.perf_counter() - t0:.2f}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
