#!/usr/bin/env python
"""The cloud map of the shared DCT frames against the human labels, subregion by subregion.

    python benchmarks/cloud_labels.py [--frames 002 005 010 006 019 007] [--all]

Each frame is reduced with its camera; its cloud map on the pixel grid (as
``-clouds.fits`` holds it) calls each of the 33 subregions of
``../shared/data/dct/labels.md`` by the majority of its sky pixels, scored as
``tests/dct_labels.py`` scores them (a subregion mostly 'unknown' has no call
and counts as wrong).  Printed: the agreement per frame and in all, and for
every wrong subregion (every one with ``--all``) its pixel counts and the
evidence of the cells that cover most of it: state, confidence, voting stars
and their transparency, texture amplitude, the confidence of each kind, and
the part of the cell the obstruction mask leaves open.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
sys.path.insert(0, str(REPO / "tests"))

#: Cells listed per subregion (those covering most of its pixels).
TOP_CELLS = 3


def _cell_of_pixels(model, shape, nside, step):
    """HEALPix cell of every ``step``-th pixel (-1 below the horizon), and the sampled grid."""
    import numpy as np

    from allsky_camera.stages.healpix import ang2pix_ring

    ys, xs = np.mgrid[0:shape[0]:step, 0:shape[1]:step]
    alt, az = model.xy_to_altaz(xs.ravel().astype(float), ys.ravel().astype(float))
    ok = np.isfinite(alt) & (alt > 0)
    cell = np.full(alt.shape, -1)
    cell[ok] = ang2pix_ring(nside, 90.0 - alt[ok], az[ok])
    return cell, ys.ravel(), xs.ravel()


def main(argv=None):
    import numpy as np

    import dct_labels
    from allsky_camera.camera import config
    from allsky_camera.output.products import Products
    from allsky_camera.reduction import reduce_exposure
    from allsky_camera.stages import clouds, io

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", nargs="+", default=list(dct_labels.CLOUDY))
    p.add_argument("--all", action="store_true", help="list every subregion, not only the wrong")
    opts = p.parse_args(argv)
    d = dct_labels.dct_dir()
    if d is None:
        print("the shared DCT frames (../shared/data/dct) are not here")
        return 1
    camera = config.load_camera("DCT")
    shape = (camera.sensor.ny, camera.sensor.nx)
    regions = dct_labels.subregions(shape)
    total = 0
    for f in opts.frames:
        exp = io.read_exposure(str(d / f"{f}.fits.bz2"), camera)
        red = reduce_exposure(exp, camera, Products(sbmap=False, checkplots=False))
        det, cm = red.detrended, red.clouds
        mask = red.obstruction if det.bad is None else (
            det.bad if red.obstruction is None else det.bad | red.obstruction)
        state, _, _ = clouds.pixel_maps(cm, red.solution.model, exp.raw.shape, mask=mask,
                                        stride=clouds.PIXEL_MAP_STRIDE)
        calls = dct_labels.call_subregions(state, regions)
        n, wrong = dct_labels.score(f, calls)
        total += n
        print(f"{f}: {n}/{dct_labels.N_SUBREGIONS} right, wrong {wrong}")
        cell, ys, xs = _cell_of_pixels(red.solution.model, shape, cm.nside, 4)
        reg = regions[ys, xs]
        for k in range(dct_labels.N_SUBREGIONS):
            if k not in wrong and not opts.all:
                continue
            s = state[regions == k]
            counts = [int(np.sum(s == v)) for v in
                      (clouds.CLEAR, clouds.CLOUD, clouds.UNKNOWN, clouds.NOT_SKY)]
            label = int(k in dct_labels.CLOUDY[f])
            print(f"  sr{k:2d} label {label} call {calls[k]}  clear/cloud/unknown/not-sky "
                  f"pixels {counts}")
            ids, n_px = np.unique(cell[(reg == k) & (cell >= 0)], return_counts=True)
            for c in ids[np.argsort(-n_px)][:TOP_CELLS]:
                print(f"     cell {c:3d} {clouds.STATE_NAMES[int(cm.state[c])]:7s} "
                      f"conf {cm.confidence[c]:.2f}; stars {int(cm.star_n[c]):2d} "
                      f"T {cm.star_transp[c]:.2f} conf {cm.star_conf[c]:.2f}; texture "
                      f"{cm.texture_amp[c]:.3f} conf {cm.texture_conf[c]:.2f}; "
                      f"open {cm.sky_fraction[c]:.2f}")
    n_all = dct_labels.N_SUBREGIONS * len(opts.frames)
    print(f"total {total}/{n_all} = {100.0 * total / n_all:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
