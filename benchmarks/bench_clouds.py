#!/usr/bin/env python
"""Time the cloud map: the sky-texture measure and the combination of evidence.

    python benchmarks/bench_clouds.py [--repeat 20] [--frame ../shared/data/dct/006.fits.bz2]

The frame is reduced once with its camera (DCT when it is a DCT frame, else
the simulated MDM demo); then, in-process and warm, the script times
:func:`allsky_camera.stages.clouds.block_texture` (block medians, noise, smooth
model), the whole :func:`allsky_camera.stages.clouds.run` (texture, per-cell
grouping, combination, borrowed evidence), the borrowing alone
(:func:`allsky_camera.stages.cloud_reach.reach_cells`, from the cells' own
states) and :func:`allsky_camera.stages.clouds.pixel_maps` (the
-clouds.fits image, written only with --write_clouds), with and without its
borrowing on the fine grid.  Medians over the
repeats, milliseconds, wall-clock and CPU time of this process (on a
shared machine the CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))


def _time(fn, repeat):
    """Median wall and CPU (this process) time of ``fn()``, ms: "wall / cpu"."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return f"{1e3 * statistics.median(wall):7.1f} / {1e3 * statistics.median(cpu):6.1f}"


def main(argv=None):
    import numpy as np

    from allsky_camera.camera import config
    from allsky_camera.output.products import Products
    from allsky_camera.reduction import reduce_exposure
    from allsky_camera.sim import simulate
    from allsky_camera.stages import cloud_reach, clouds, io

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--frame", default=None, help="raw frame (default: the MDM demo)")
    opts = p.parse_args(argv)
    if opts.frame:
        data, header = io._read_image_hdu(opts.frame)
        camera, _ = config.select_camera(header, data.shape)
        exp = io.exposure_from_data(opts.frame, data, header, camera)
    else:
        camera = config.load_camera("MDM")
        sim = simulate.simulate(camera, seed=0)
        exp = io.exposure_from_data("demo_MDM.fits", sim.image, sim.header, camera)
    red = reduce_exposure(exp, camera, Products(sbmap=False, checkplots=False))
    cfg, tr, det = camera.transparency, red.transparency, red.detrended
    mask = red.obstruction if det.bad is None else (
        det.bad if red.obstruction is None else det.bad | red.obstruction)
    weights = clouds.star_weights(red.flags, tr.expected_snr, cfg)

    model = red.solution.model

    def texture():
        clouds.block_texture(det.image, mask, block_px=cfg.texture_block_px,
                             stride_px=cfg.texture_stride_px,
                             model_blocks=cfg.texture_model_blocks,
                             grow_blocks=cfg.texture_mask_grow_blocks,
                             sky_circle=(model.x0, model.y0, float(model.radius(90.0))))

    def whole():
        clouds.run(det.image, red.solution.model, star_cell=tr.cell,
                   star_transp=tr.transparency, star_weight=weights, cfg=cfg, mask=mask,
                   moon_altaz=(red.ephem["moon_alt"], red.ephem["moon_az"]),
                   moon_exclusion_deg=camera.photometry.moon_exclusion_deg,
                   stars_known=red.solution.stars_known)

    cm = red.clouds
    own = cloud_reach.own_evidence(cm.state, cm.evidence_deg)
    own_state = np.where(own | (cm.state == clouds.NOT_SKY), cm.state, clouds.UNKNOWN)
    own_conf = np.where(own, cm.confidence, 0.0)

    def reach():
        cloud_reach.reach_cells(own_state, own_conf, cm.nside, corr_deg=cfg.cloud_corr_deg,
                                min_confidence=cfg.min_confidence)

    def pixels(cmap=cm):
        clouds.pixel_maps(cmap, red.solution.model, exp.raw.shape, mask=mask,
                          stride=clouds.PIXEL_MAP_STRIDE)

    def pixels_no_reach():
        pixels(dataclasses.replace(cm, corr_deg=0.0))

    ny, nx = exp.raw.shape
    print(f"{Path(exp.path).name} ({camera.name}, {nx}x{ny}), median of {opts.repeat}, "
          "wall / CPU ms:")
    print(f"  texture (block_texture)         {_time(texture, opts.repeat)}")
    print(f"  cloud map (clouds.run, all)     {_time(whole, opts.repeat)}")
    print(f"  borrowing (reach_cells)         {_time(reach, opts.repeat)}")
    print(f"  -clouds.fits image (pixel_maps) {_time(pixels, max(opts.repeat // 4, 1))}")
    print(f"  ... without borrowing on pixels {_time(pixels_no_reach, max(opts.repeat // 4, 1))}")
    f = red.clouds.fractions()
    print("  states: " + ", ".join(f"{k} {v:.2f}" for k, v in f.items())
          + f"; {int(np.sum(red.clouds.state != clouds.NOT_SKY))} sky cells, "
          f"{int(np.sum(cm.evidence_deg > 0))} of them with borrowed evidence")
    return 0


if __name__ == "__main__":
    sys.exit(main())
