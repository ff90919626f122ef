#!/usr/bin/env python
"""Compare the in-memory products of two checkouts of the pipeline.

    python benchmarks/compare_reductions.py OTHER_CHECKOUT [--dct FILE ...]

Reduces the demo frame (simulated MDM, seed 0) and each ``--dct`` frame with
this checkout and with OTHER_CHECKOUT (for instance one made with
``git worktree add /tmp/before COMMIT``), each in its own process, and prints
the largest differences of the products: centroids (px), flags, fluxes (mag),
sky levels, ZPTOTAL, transparency, the sky-brightness map (mag) and the
crowding fractions.  Used to check that a speed-up left the science
unchanged.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: Run in the checkout under test: reduce one frame, save the products.
_REDUCE = r"""
import sys
import numpy as np
from allsky_camera.camera import config
from allsky_camera.output.products import Products
from allsky_camera.reduction import reduce_exposure
from allsky_camera.sim import simulate
from allsky_camera.stages import io
frame, out = sys.argv[1], sys.argv[2]
if frame == "demo":
    cam = config.load_camera("MDM")
    sim = simulate.simulate(cam, seed=0)
    exp = io.exposure_from_data("demo.fits", sim.image, sim.header, cam)
else:
    cam = config.load_camera("DCT")
    exp = io.read_exposure(frame, cam)
r = reduce_exposure(exp, cam, Products(checkplots=False))
f = r.fluxes
c = r.crowding
np.savez(out, xc=r.xc, yc=r.yc, flags=r.flags, flux=f.flux_adu, flux_err=f.flux_err_adu,
         flux_big=f.flux_big_adu, sky=f.sky_adu, sky_sigma=f.sky_sigma_adu,
         zp_total=r.zeropoint.zp_total, transp=r.transparency.transparency,
         clear=r.transparency.summary.clear_fraction, sbmap=r.skymap.mag,
         c_aper=c.c_aper, c_annulus=c.c_annulus, c_annulus_max=c.c_annulus_max,
         n_neighbours=c.n_neighbours)
"""


def reduce_with(checkout, frame, out):
    env = dict(os.environ, PYTHONPATH=str(Path(checkout) / "py"))
    subprocess.run([sys.executable, "-c", _REDUCE, frame, str(out)], check=True, env=env,
                   cwd=checkout)
    return np.load(out)


def _mag(f):
    with np.errstate(all="ignore"):
        return np.where(f > 0, -2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def report(a, b):
    def maxdiff(u, v):
        d = np.abs(np.asarray(u, float) - np.asarray(v, float))
        return float(np.nanmax(d)) if np.isfinite(d).any() else 0.0

    same_nan = all(np.array_equal(np.isnan(a[k]), np.isnan(b[k]))
                   for k in ("xc", "flux", "sky", "sbmap"))
    print(f"  NaN patterns identical: {same_nan}; flags identical: "
          f"{np.array_equal(a['flags'], b['flags'])}")
    print(f"  centroids: max |dx| {maxdiff(a['xc'], b['xc']):.2e} px, "
          f"|dy| {maxdiff(a['yc'], b['yc']):.2e} px")
    for k in ("flux", "flux_big", "flux_err"):
        print(f"  {k}: max |dmag| {maxdiff(_mag(a[k]), _mag(b[k])):.2e} mag")
    print(f"  sky: max |d| {maxdiff(a['sky'], b['sky']):.2e} ADU, sky sigma "
          f"{maxdiff(a['sky_sigma'], b['sky_sigma']):.2e} ADU")
    print(f"  ZPTOTAL {float(a['zp_total']):.6f} vs {float(b['zp_total']):.6f}: "
          f"diff {abs(float(a['zp_total']) - float(b['zp_total'])):.2e} mag")
    print(f"  transparency: max |d| {maxdiff(a['transp'], b['transp']):.2e}; clear fraction "
          f"{float(a['clear']):.4f} vs {float(b['clear']):.4f}")
    print(f"  sky-brightness map: max |d| {maxdiff(a['sbmap'], b['sbmap']):.2e} mag/arcsec2")
    if "c_aper" in a and "c_aper" in b:
        print(f"  crowding: neighbour counts identical: "
              f"{np.array_equal(a['n_neighbours'], b['n_neighbours'])}")
        for k in ("c_aper", "c_annulus", "c_annulus_max"):
            u, v = np.asarray(a[k], float), np.asarray(b[k], float)
            big = np.abs(u) > 1e-6
            rel = float(np.max(np.abs(u - v)[big] / np.abs(u[big]))) if big.any() else 0.0
            print(f"  {k}: max |d| {maxdiff(u, v):.2e}, relative {rel:.2e}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("other", help="the other checkout (repository root)")
    p.add_argument("--dct", nargs="*", default=[], help="real DCT frames to compare too")
    o = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for frame in ["demo", *o.dct]:
            a = reduce_with(o.other, frame, Path(tmp) / "a.npz")
            b = reduce_with(REPO, frame, Path(tmp) / "b.npz")
            print(f"{Path(frame).name}: {o.other} vs this checkout")
            report(a, b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
