#!/usr/bin/env python
"""Astrometric gate and recovery on knocked simulated frames: status, error, time.

    python benchmarks/recovery.py [--camera MDM] [--cases all|capture]

For each case a frame of the camera is simulated with the camera moved from
its template (zenith shift in pixels, rotation in degrees), reduced in
process with ``--skip_checkplots --skip_sbmap``, and the astrometric status
(ASTSTAT), the model's error at the true positions of stars inside the safe
radius, the zenith and rotation errors and the astrometry stage's time are
printed.  ``--cases capture`` steps the shift and the rotation outward to
measure the capture range of the recovery; ``--cases hopeless`` reduces
frames no astrometry should pass (noise, overcast, a clock hours off, a
mirrored image).  The cost of the gate itself on a
normal frame is timed by repeating :func:`allsky_camera.stages.astrometry_gate.evaluate`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))

#: (name, zenith shift px, rotation deg) of the issue's knocked frames.
KNOCKS = (("none", (0.0, 0.0), 0.0), ("5 deg", (0.0, 0.0), 5.0), ("30 deg", (0.0, 0.0), 30.0),
          ("90 deg", (0.0, 0.0), 90.0), ("180 deg", (0.0, 0.0), 180.0),
          ("(20,-15) px", (20.0, -15.0), 0.0), ("(40,30) px + 20 deg", (40.0, 30.0), 20.0))
#: Capture-range steps: shifts along a diagonal (px) and rotations (deg).
CAPTURE = tuple((f"shift {s:g} px", (s / np.sqrt(2), s / np.sqrt(2)), 0.0)
                for s in (10, 30, 50, 60, 65, 70, 80)) + tuple(
    (f"rot {r:g} deg", (0.0, 0.0), r) for r in (1, 2, 3, -45, 135, 270))


#: Frames no astrometry should pass: name -> (image change, clock shift h, cloud
#: transmission or None).
HOPELESS = (("pure noise", "noise", 0.0, None), ("overcast 0.025", None, 0.0, 0.025),
            ("overcast 0.05", None, 0.0, 0.05), ("clock +1 h", None, 1.0, None),
            ("clock +3 h", None, 3.0, None), ("clock -6 h", None, -6.0, None),
            ("clock +12 h", None, 12.0, None), ("mirrored image", "mirror", 0.0, None))


def _hopeless_frame(camera, seed, change, hours, transmission):
    import datetime as dt

    from allsky_camera.sim import simulate

    clouds = None if transmission is None else simulate.Clouds("overcast", transmission)
    sim = simulate.simulate(camera, seed=seed, clouds=clouds)
    image, header = sim.image, sim.header.copy()
    if change == "noise":
        rng = np.random.default_rng(seed)
        image = np.clip(rng.normal(camera.simulation.bias_adu + 5.0, 3.0, image.shape), 0,
                        camera.sensor.saturation_adu).astype(image.dtype)
    elif change == "mirror":
        image = image[:, ::-1].copy()
    if hours:
        card = camera.header.dateobs_card
        header[card] = (dt.datetime.fromisoformat(header[card])
                        + dt.timedelta(hours=hours)).isoformat()
    return sim, image, header


def reduce_case(camera, shift, rot, seed, outdir, hopeless=None):
    from allsky_camera import ac_proc
    from allsky_camera.sim import simulate
    from allsky_camera.stages import io

    if hopeless is None:
        sim = simulate.simulate(camera, seed=seed, zenith_shift=shift, rotation_deg=rot)
        image, header = sim.image, sim.header
    else:
        sim, image, header = _hopeless_frame(camera, seed, *hopeless)
    exp = io.exposure_from_data(str(Path(outdir) / "knock.fits"), image, header, camera)
    opts = ac_proc.build_parser().parse_args(
        ["x", "--outdir", str(outdir), "--skip_checkplots", "--skip_sbmap", "--overwrite"])
    timer = ac_proc.Timer()
    res = ac_proc.process(exp, camera, opts, timer)
    return sim, res, timer.times


def model_error(sol, truth, safe_px):
    t = truth.stars
    r = np.hypot(np.asarray(t["x"]) - truth.model.x0, np.asarray(t["y"]) - truth.model.y0)
    ins = r <= safe_px
    x, y = sol.model.altaz_to_xy(np.asarray(t["alt_deg"])[ins], np.asarray(t["az_deg"])[ins])
    return float(np.sqrt(np.mean((x - np.asarray(t["x"])[ins]) ** 2
                                 + (y - np.asarray(t["y"])[ins]) ** 2)))


def _median_ms(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def gate_cost(camera, seed, outdir, repeat=50):
    """Median time (ms) of the gate on a normal frame: first pass and final refit.

    Returns ``[(ms, n_stars), (ms, n_stars)]``: the gate on the first-pass
    bright stars, and on every star of the final refit (flags == 0).
    """
    from allsky_camera.stages import astrometry, astrometry_gate

    sim, res, _ = reduce_case(camera, (0.0, 0.0), 0.0, seed, outdir)
    det = res["detrended"].image
    cat = res["catalog"]
    a = camera.astrometry
    model = res["solution"].model
    bright = np.asarray(cat["VMAG"]) <= a.fit_vmax
    alt, az, vm = (np.asarray(cat[k])[bright] for k in ("alt_deg", "az_deg", "VMAG"))
    xm, ym, fit = astrometry._first_pass(det, a.model, alt, az, camera)
    first = _median_ms(lambda: astrometry_gate.evaluate(det, fit.model, xm, ym, alt, az, vm, a),
                       repeat)
    good = np.asarray(cat["flags"]) == 0
    cols = [np.asarray(cat[k])[good] for k in ("xcentroid", "ycentroid", "alt_deg", "az_deg",
                                               "VMAG")]
    final = _median_ms(lambda: astrometry_gate.evaluate(det, model, *cols, a), repeat)
    return [(first, int(bright.sum())), (final, int(good.sum()))]


def main(argv=None):
    from allsky_camera import ac_proc
    from allsky_camera.camera import config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camera", default="MDM")
    p.add_argument("--cases", choices=("all", "capture", "hopeless"), default="all")
    p.add_argument("--seed", type=int, default=21)
    args = p.parse_args(argv)
    ac_proc.setup_logging(False, True)
    camera = config.load_camera(args.camera)
    cases = {"all": KNOCKS, "capture": CAPTURE,
             "hopeless": [(h[0], (0.0, 0.0), 0.0, h[1:]) for h in HOPELESS]}[args.cases]
    cases = [c if len(c) == 4 else (*c, None) for c in cases]
    with tempfile.TemporaryDirectory() as tmp:
        (ms1, n1), (ms2, n2) = gate_cost(camera, args.seed, tmp)
        print(f"gate on a normal frame: {ms1:.2f} ms (first pass, {n1} bright stars) + "
              f"{ms2:.2f} ms (final refit, {n2} stars)")
        print(f"{'case':24s} {'ASTSTAT':10s} {'model px':>8s} {'dx0':>7s} {'dy0':>7s} "
              f"{'drot':>8s} {'astrom s':>8s} {'search s':>8s}  ZPTOTAL CLEARFRC")
        for name, shift, rot, hopeless in cases:
            sim, res, times = reduce_case(camera, shift, rot, args.seed, tmp, hopeless)
            sol, t = res["solution"], sim.truth.model
            err = model_error(sol, sim.truth, camera.astrometry.safe_radius_px)
            drot = (sol.model.rot_deg - t.rot_deg + 180.0) % 360.0 - 180.0
            search = sol.seed.seconds if sol.seed is not None else 0.0
            print(f"{name:24s} {sol.status:10s} {err:8.3f} {sol.model.x0 - t.x0:7.2f} "
                  f"{sol.model.y0 - t.y0:7.2f} {drot:8.3f} {times['astrometry']:8.2f} "
                  f"{search:8.2f}  {res['zeropoint'].zp_total:7.3f} "
                  f"{res['transparency'].summary.clear_fraction:8.2f}")
            if sol.status == "FAILED":
                print(f"{'':24s} ASTMSG: {sol.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
