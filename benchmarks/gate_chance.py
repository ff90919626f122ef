#!/usr/bin/env python
"""What the astrometric gate measures for wrong models and for right ones under cloud.

    python benchmarks/gate_chance.py [--camera MDM] [--seeds 21 22 23]

For each seed a clear frame and a frame with three quarters of the sky under
thick cloud (transmission 0.01) are simulated and reduced in process.  On
the clear frame's bright stars, wrong models (the true model turned by
3-180 deg, as a clock hours off does; shifted beyond the recovery's capture;
and the image mirrored) seed the gate's first pass, and the gate's numbers
are printed for the model the fit reaches from each: matched stars, found
fraction, stars found in clear sky cells, RMS and rank correlation
(``nan``: fewer than 3 matched stars in every cell).  The
same numbers for the right model on the cloudy frame show the other side of
the criterion (``astrometry_gate`` module docstring), for the first-pass fit
(pulled by the noise peaks found under the cloud) and for the refit on the
stars found within ``gate_match_px`` (what ``astrometry.solve`` accepts).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))

#: Rotations (deg) and zenith shifts (px) of the wrong models.
ROTATIONS = (3.0, 5.0, 10.0, 15.0, 30.0, 45.0, 90.0, 180.0)
SHIFTS = ((60.0, 60.0), (100.0, 0.0))


def _reduce(camera, seed, clouds, outdir):
    from allsky_camera import ac_proc
    from allsky_camera.sim import simulate
    from allsky_camera.stages import io

    sim = simulate.simulate(camera, seed=seed, clouds=clouds)
    exp = io.exposure_from_data(str(Path(outdir) / "g.fits"), sim.image, sim.header, camera)
    opts = ac_proc.build_parser().parse_args(
        ["x", "--outdir", str(outdir), "--skip_checkplots", "--skip_sbmap", "--overwrite",
         "--dont_write_detrended"])
    return sim, ac_proc.process(exp, camera, opts)


def _gate_row(name, image, start, alt, az, vm, camera, refit=False):
    from allsky_camera.stages import astrometry, astrometry_gate

    a = camera.astrometry
    xm, ym, fit = astrometry._first_pass(image, start, alt, az, camera)
    if refit:       # as astrometry.solve does when the template passes: the found stars only
        fit = astrometry._fit_matched(start, xm, ym, alt, az, a)
    g = astrometry_gate.evaluate(image, fit.model, xm, ym, alt, az, vm, a)
    xp, yp = fit.model.altaz_to_xy(alt, az)
    matched = np.hypot(xm - xp, ym - yp) <= a.gate_match_px
    cell = astrometry_gate.sky_cells(alt, az, a.gate_cell_az_deg, a.gate_cell_alt_deg)
    n_clear, _ = astrometry_gate.clear_cells(cell, matched, a.gate_clear_cell_fraction,
                                             a.gate_cell_min_pred)
    print(f"{name:28s} {g.n_matched:5d} {g.n_predicted:5d} {g.fraction:6.3f} {n_clear:6d} "
          f"{g.rms_px:6.2f} {g.rank_corr:6.2f}  {'PASS' if g.ok else 'fail'}")


def main(argv=None):
    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.sim import simulate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camera", default="MDM")
    p.add_argument("--seeds", type=int, nargs="+", default=[21, 22, 23])
    args = p.parse_args(argv)
    ac_proc.setup_logging(False, True)
    camera = config.load_camera(args.camera)
    a = camera.astrometry
    print(f"{'model (first pass from)':28s} {'nmat':>5s} {'npred':>5s} {'frac':>6s} "
          f"{'nclear':>6s} {'rms':>6s} {'rcorr':>6s}  gate")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for clouds in (None, simulate.Clouds("three-quarter", 0.01)):
                sim, res = _reduce(camera, seed, clouds, tmp)
                image = res["detrended"].image
                cat = res["catalog"]
                bright = np.asarray(cat["VMAG"]) <= a.fit_vmax
                alt, az, vm = (np.asarray(cat[k])[bright] for k in ("alt_deg", "az_deg",
                                                                     "VMAG"))
                true = sim.truth.model
                if clouds is not None:
                    _gate_row(f"seed {seed} 3/4 cloud, true", image, true, alt, az, vm, camera)
                    _gate_row(f"seed {seed} 3/4 cloud, refit found", image, true, alt, az, vm,
                              camera, refit=True)
                    continue
                _gate_row(f"seed {seed} clear, true", image, true, alt, az, vm, camera)
                for r in ROTATIONS:
                    _gate_row(f"seed {seed} turned {r:g} deg", image,
                              true.replace(rot_deg=true.rot_deg + r), alt, az, vm, camera)
                for dx, dy in SHIFTS:
                    _gate_row(f"seed {seed} shifted ({dx:g},{dy:g})", image,
                              true.replace(x0=true.x0 + dx, y0=true.y0 + dy), alt, az, vm,
                              camera)
                _gate_row(f"seed {seed} mirrored image", image[:, ::-1].copy(), true, alt, az,
                          vm, camera)
    return 0


if __name__ == "__main__":
    sys.exit(main())
