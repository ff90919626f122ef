#!/usr/bin/env python
"""Time the photometric model's share of a reduction: the model fit, the
clear-sky prediction, transparency and SKYSTAT, on the stars of a real frame.

    python benchmarks/bench_photmodel.py RAW.fits [--camera DCT] [--repeat 50]

The frame is reduced once (not timed); then the steps this work added run
``--repeat`` times on its catalog and the median wall time of each is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("raw")
    p.add_argument("--camera", default=None)
    p.add_argument("--repeat", type=int, default=50)
    opts = p.parse_args(argv)

    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.stages import io, photmodel, photometry, skystat, transparency

    cam = config.load_camera(opts.camera) if opts.camera else None
    if cam is None:
        data, header = io._read_image_hdu(opts.raw)
        cam, _ = config.select_camera(header, data.shape)
    exp = io.read_exposure(opts.raw, cam)
    with tempfile.TemporaryDirectory() as tmp:
        o = ac_proc.build_parser().parse_args(["x", "--outdir", tmp, "--skip_checkplots",
                                               "--skip_sbmap", "--dont_write_detrended",
                                               "--dont_write_catalog"])
        res = ac_proc.process(exp, cam, o)
    cat, sol, ph = res["catalog"], res["solution"], cam.photometry
    vmag, bv = np.asarray(cat["VMAG"], float), np.asarray(cat["BV"], float)
    zd = 90.0 - np.asarray(cat["alt_deg"], float)
    flux = np.asarray(cat["flux_adu"], float)
    fl = photometry.Fluxes(flux, np.asarray(cat["flux_err_adu"], float),
                           flux * 10 ** (0.4 * np.asarray(cat["apcor_mag"], float)),
                           np.asarray(cat["sky_adu"], float), np.zeros(len(cat), int),
                           np.full(len(cat), 5.0))
    good = np.asarray(cat["flags"]) == 0
    t = exp.exptime
    x, y = np.asarray(cat["x"], float), np.asarray(cat["y"], float)
    az = np.asarray(cat["az_deg"], float)

    def step_fit():
        return photometry.zeropoint(vmag, zd, fl, good, good & (vmag <= ph.apcor_vmax), ph, t,
                                    bv=bv, az_deg=az)

    zp = step_fit()

    def step_transp():
        sky = skystat.classify(res["ephem"], skystat.zenith_sky_mag(
            fl.sky_adu, zd, sol.model.pixel_solid_angle(x, y), t, zp.zp_nominal_total,
            cam.skystat.zenith_zd_deg), cam.skystat)
        clear = photmodel.clear_sky_model(zp.zp_nominal_total, zp.model_fit, ph)
        apc = zp.apcor(zd)
        tr = transparency.run(
            vmag=vmag, alt_deg=90.0 - zd, az_deg=np.asarray(cat["az_deg"], float),
            flags=np.asarray(cat["flags"]), flux_total_adu=fl.flux_adu * 10 ** (0.4 * apc),
            sky_sigma_adu=fl.sky_sigma_adu,
            expected_total_adu=clear.expected_flux(
                vmag, photmodel.colour_or_mean(bv, ph.missing_bv), zd, t, az),
            apcor_mag=apc, exptime=t, aper_area_px=np.pi * ph.aper_radius_px ** 2,
            cfg=cam.transparency,
            grey=photmodel.grey_transmission(zp.zp_total, zp.zp_nominal_total))
        return sky, tr

    m_tot = photometry.instrumental_mag(fl.flux_big_adu, t)
    sel = good & (vmag <= ph.model_vmax)

    def step_model_only():
        return photmodel.fit_exposure(m_tot, vmag, bv, zd, sel, cfg=ph,
                                      m_err=1.0857 * fl.flux_err_adu / np.abs(fl.flux_adu),
                                      az_deg=az)

    def step_new_only():
        sky = skystat.classify(res["ephem"], skystat.zenith_sky_mag(
            fl.sky_adu, zd, sol.model.pixel_solid_angle(x, y), t, zp.zp_nominal_total,
            cam.skystat.zenith_zd_deg), cam.skystat)
        clear = photmodel.clear_sky_model(zp.zp_nominal_total, zp.model_fit, ph)
        return sky, clear.expected_flux(vmag, photmodel.colour_or_mean(bv, ph.missing_bv), zd, t,
                                        az)

    for name, fn in (("photmodel.fit_exposure alone", step_model_only),
                     ("skystat + clear-sky prediction alone", step_new_only),
                     ("zeropoint (aperture correction + model fit)", step_fit),
                     ("skystat + clear-sky model + transparency", step_transp)):
        times = []
        for _ in range(opts.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(f"{name}: median {1e3 * np.median(times):.1f} ms over {opts.repeat} runs "
              f"({len(cat)} stars, {int(good.sum())} good)")
    print(f"ZPTOTAL {zp.zp_total:.3f}, k {zp.model.k:.3f} +- {zp.model_fit.k_err:.3f} "
          f"({zp.model_fit.k_source}), c {zp.model.colour_term:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
