#!/usr/bin/env python
"""Accuracy of the pipeline against the simulator's truth.

    python benchmarks/accuracy.py [--seeds 4] [--camera MDM]

Reduces seeded simulated frames in-process and prints, per seed and in
total, the figures the project's issues set bars for: zeropoints, centroids,
astrometric recovery, sky brightness, transparency under clear, quarter and
overcast skies, and streak completeness and false positives.  The same
measurements, on fewer frames, are asserted by the tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
sys.path.insert(0, str(REPO / "tests"))

#: Injected geometry, as in the tests.
SHIFT, ROT = (2.5, -1.5), 0.3


def reduce(camera, sim, outdir, *extra):
    from allsky_camera import ac_proc
    from allsky_camera.stages import io

    exp = io.exposure_from_data(str(outdir / "frame.fits"), sim.image, sim.header, camera)
    opts = ac_proc.build_parser().parse_args(["x", "--outdir", str(outdir), "--overwrite",
                                              "--skip_checkplots", "--dont_write_detrended",
                                              *extra])
    return ac_proc.process(exp, camera, opts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4, help="frames per measurement")
    p.add_argument("--camera", default="MDM")
    args = p.parse_args(argv)

    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.sim import simulate
    from test_pipeline import isolated_in_truth, matched_truth
    from test_streaks import count_found, detect_on

    ac_proc.setup_logging(False, True)
    cam = config.load_camera(args.camera)
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for k in range(args.seeds):
        sim = simulate.simulate(cam, seed=11 + k, zenith_shift=SHIFT, rotation_deg=ROT)
        res = reduce(cam, sim, tmp)
        t, cat, zp, sol = sim.truth, res["catalog"], res["zeropoint"], res["solution"]
        tt = matched_truth(cat, t)
        zpap_true = t.zp_aper_true          # both at the zenith (X = 1)
        sel = ((cat["flags"] == 0) & (cat["VMAG"] < 5) & ~tt["saturated"]
               & isolated_in_truth(tt, t, 6, 2.5))
        d = np.hypot(cat["xcentroid"] - tt["x"], cat["ycentroid"] - tt["y"])[sel]
        sb = res["skymap"].mag
        ok = np.isfinite(sb) & np.isfinite(t.sky_mag)
        rows.append({
            "dZPTOTAL": zp.zp_total - t.zp_true, "dZPAPER": zp.zp_aper - zpap_true,
            "dEXTK": zp.model.k - t.ext_coef,
            "centroid_rms": float(np.sqrt(np.mean(d ** 2))), "n_cen": int(sel.sum()),
            "dx0": sol.model.x0 - t.model.x0, "dy0": sol.model.y0 - t.model.y0,
            "drot": sol.model.rot_deg - t.model.rot_deg,
            "rms_ratio": sol.fit.rms_px / sol.template_rms_px,
            "dSB": float(np.median(sb[ok] - t.sky_mag[ok])),
            "transp_med": res["transparency"].summary.median,
            "clear_frac": res["transparency"].summary.clear_fraction})
        print(f"seed {11 + k}: " + ", ".join(f"{key} {v:+.4f}" if isinstance(v, float)
                                              else f"{key} {v}" for key, v in rows[-1].items()))
    print("\nworst over seeds:")
    for key in ("dZPTOTAL", "dZPAPER", "dx0", "dy0", "drot", "dSB"):
        print(f"  |{key}| max {max(abs(r[key]) for r in rows):.4f}")
    print(f"  centroid rms max {max(r['centroid_rms'] for r in rows):.3f} px")
    print(f"  fitted/template rms max {max(r['rms_ratio'] for r in rows):.3f}")
    print(f"  clear sky: |median transparency - 1| max "
          f"{max(abs(r['transp_med'] - 1) for r in rows):.3f}, clear fraction min "
          f"{min(r['clear_frac'] for r in rows):.3f}")

    import healpy as hp
    good_in = good_out = n_in = n_out = 0
    over = []
    for k in range(args.seeds):
        quarter = simulate.Clouds("quarter", 0.2, az_deg=45.0)
        sim = simulate.simulate(cam, seed=31 + k, clouds=quarter)
        res = reduce(cam, sim, tmp, "--write_healpix")
        m = hp.read_map(tmp / "frame-healpix.fits", hdu=5)
        th, ph = hp.pix2ang(hp.get_nside(m), np.arange(m.size))
        daz = (np.degrees(ph) - 45 + 180) % 360 - 180
        s = np.isfinite(m)
        good_in += np.sum(m[s & (np.abs(daz) < 45)] < 0.5)
        n_in += np.sum(s & (np.abs(daz) < 45))
        good_out += np.sum(m[s & (np.abs(daz) >= 45)] > 0.8)
        n_out += np.sum(s & (np.abs(daz) >= 45))
        sim = simulate.simulate(cam, seed=41 + k, clouds=simulate.Clouds("overcast", 0.05))
        over.append(reduce(cam, sim, tmp)["transparency"].summary.clear_fraction)
    print(f"quarter cloud at 0.2: cells inside < 0.5: {good_in}/{n_in} "
          f"({good_in / n_in:.1%}); outside > 0.8: {good_out}/{n_out} ({good_out / n_out:.1%})")
    print(f"overcast at 0.05: clear fraction max {max(over):.3f}")

    found = total = false = 0
    nframes = 4 * args.seeds
    for k in range(nframes):
        rng = np.random.default_rng(500 + k)
        inj = simulate.random_streaks(3, (cam.sensor.ny, cam.sensor.nx), rng)
        sim = simulate.simulate(cam, seed=600 + k, streaks=inj)
        f, t = count_found(cam, inj, sim, detect_on(cam, sim))
        found, total = found + f, total + t
        false += len(detect_on(cam, simulate.simulate(cam, seed=700 + k)))
    print(f"streaks: {found}/{total} found ({found / total:.1%}); false streaks in "
          f"{nframes} clean frames: {false}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
