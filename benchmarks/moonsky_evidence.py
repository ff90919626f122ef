#!/usr/bin/env python
"""What a moonlit DCT frame holds as cloud evidence, subregion by subregion.

    python benchmarks/moonsky_evidence.py [--frames 005 010 006] [--dark 005] [--sim]

Three kinds of evidence beyond today's cloud map are measured in each of the
33 subregions of ``../shared/data/dct/labels.md`` (the person's label shown
beside), on clear frames and on the moonlit 006:

* **moonlit excess**: the sky's surface brightness (block medians of 8 px,
  through the frame's zeropoint, corrected for the lens's vignetting as the
  stars are) less the moonless sky of the ``--dark`` frame in the same
  subregion, over the clear-sky scattered moonlight of Krisciunas & Schaefer
  (1991; :mod:`allsky_camera.stages.moonlight`, with the frame's fitted k).
  On a clear sky the ratio is the camera's response to moonlight relative
  to K&S's V band; thin cloud lit by the Moon raises it.
* **multi-scale texture**: the cloud map's texture amplitude (block
  residual RMS over the sky level, in excess of the noise) with the smooth
  model taken at 5 (today's), 9 and 15 blocks, so that structure larger
  than today's model counts; the median over the subregion's cells.
* **stars**: voting stars and their median transparency per subregion, and
  per altitude band, with the fitted k and with the site's default k.

The dark frame is a moonless frame of the same camera (005 was taken 12 days
before 006 at nearly the same sidereal time: its Milky Way is where 006's
is); it serves this diagnosis only.  Printed: one line per subregion per
frame, then the figures that decide whether the frame holds evidence a
clear-frame threshold can use.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
sys.path.insert(0, str(REPO / "tests"))

#: Block side of the sky-brightness measure, pixels (stars drop out of an 8x8
#: median; a subregion holds hundreds of blocks).
SB_BLOCK_PX = 8
#: Model scales of the multi-scale texture, blocks (5: the configured one).
MODEL_BLOCKS = (5, 9, 15)
#: Subregions nearer the Moon than this (median separation, deg) are listed
#: apart: the lens's halo and ghost dominate there.
NEAR_MOON_DEG = 30.0
#: Altitude bands of the star summary, deg.
ALT_BANDS = ((8.0, 20.0), (20.0, 40.0), (40.0, 90.0))
#: An 8 px block must be this far above the horizon to count, deg.
MIN_ALT_DEG = 3.0
#: A subregion's star median needs this many voting stars.
MIN_SUB_STARS = 3
#: MAD to Gaussian sigma; the median's error is sqrt(pi / 2) sigma / sqrt(n).
MAD_TO_SIGMA = 1.4826
MEDIAN_EFF = 1.2533


def _blocks(image, mask, b):
    """Median of each b x b block, blocks touching the mask, and block centres (pixels)."""
    import numpy as np
    ny, nx = image.shape[0] // b, image.shape[1] // b
    sub = np.asarray(image, dtype=np.float32)[:ny * b, :nx * b]
    level = np.median(sub.reshape(ny, b, nx, b).transpose(0, 2, 1, 3).reshape(ny, nx, b * b),
                      axis=2)
    hidden = np.asarray(mask, dtype=bool)[:ny * b, :nx * b].reshape(ny, b, nx, b).any(axis=(1, 3))
    yc, xc = np.mgrid[0:ny, 0:nx] * b + (b - 1) / 2.0
    return level, hidden, xc, yc


def _reduce(frame, camera):
    import numpy as np

    import dct_labels
    from allsky_camera.output.products import Products
    from allsky_camera.reduction import reduce_exposure
    from allsky_camera.stages import clouds, io

    exp = io.read_exposure(str(dct_labels.dct_dir() / f"{frame}.fits.bz2"), camera)
    red = reduce_exposure(exp, camera, Products(sbmap=False, checkplots=False))
    det = red.detrended
    mask = red.obstruction if det.bad is None else (
        det.bad if red.obstruction is None else det.bad | red.obstruction)
    tr = red.transparency
    w = clouds.star_weights(red.flags, tr.expected_snr, camera.transparency)
    fit = red.zeropoint.model_fit
    if fit is None or not np.isfinite(red.zeropoint.zp_total):
        raise SystemExit(f"{frame}: no zeropoint on this frame ({red.zeropoint.message}); "
                         "choose frames whose astrometry and photometry succeed")
    return dict(exp=exp, red=red, mask=mask, model=red.solution.model, ephem=red.ephem,
                k=fit.model.k, zp=red.zeropoint.zp_total,
                star_alt=np.asarray(red.alt), star_x=np.asarray(red.x),
                star_y=np.asarray(red.y), star_t=np.asarray(tr.transparency), star_w=w)


def sky_flux(r, camera):
    """Vignetting-corrected sky per 8 px block, nL-equivalent (via V mag/arcsec^2)."""
    import numpy as np

    from allsky_camera.stages import moonlight, photmodel, sbmap

    ph = camera.photometry
    level, hidden, xc, yc = _blocks(r["red"].detrended.image, r["mask"], SB_BLOCK_PX)
    alt, az = r["model"].xy_to_altaz(xc.ravel(), yc.ravel())
    alt, az = alt.reshape(xc.shape), az.reshape(xc.shape)
    zd = 90.0 - alt
    v = (photmodel.vignetting_mag(zd, ph.vignetting) + photmodel.tilt_mag(zd, az,
         ph.vignetting_tilt) + photmodel.ellipse_mag(zd, az, ph.vignetting_ellipse))
    omega = sbmap.solid_angle_map(r["model"], xc, yc)
    mu = sbmap.surface_brightness(level, r["exp"].exptime, omega, r["zp"]) - v
    ok = ~hidden & np.isfinite(alt) & (alt > MIN_ALT_DEG) & np.isfinite(mu)
    return moonlight.mag_to_nl(mu), alt, az, ok, xc, yc


def moon_ratio(r, dark, camera, regions):
    """Per subregion: (sky - dark sky) / K&S moonlight, and the median separation."""
    import numpy as np

    from allsky_camera.camera.coords import angular_sep
    from allsky_camera.stages import moonlight

    t0 = time.perf_counter()
    f_obs, alt, az, ok, xc, yc = sky_flux(r, camera)
    f_dark, _, _, ok_d, _, _ = sky_flux(dark, camera)
    e = r["ephem"]
    sep = angular_sep(az, alt, e["moon_az"], e["moon_alt"])
    ks = moonlight.scattered_moonlight_nl(
        zd_deg=90.0 - alt, moon_zd_deg=90.0 - e["moon_alt"], sep_deg=sep,
        phase_deg=moonlight.phase_angle_deg(e["moon_illum"]), k_v=r["k"])
    cost = time.perf_counter() - t0
    reg = regions[yc.astype(int), xc.astype(int)]
    out = []
    for k in range(33):
        s, sd = ok & (reg == k), ok_d & (reg == k)
        if s.sum() < 10 or sd.sum() < 10 or not np.median(ks[s]) > 0:
            out.append((np.nan, np.nan))
            continue
        out.append(((np.median(f_obs[s]) - np.median(f_dark[sd])) / np.median(ks[s]),
                    float(np.median(sep[s]))))
    return out, cost


def multiscale_texture(r, camera, regions):
    """Per subregion and model scale: median texture amplitude of its cells (NaN: none)."""
    import numpy as np
    from cloud_labels import _cell_of_pixels

    from allsky_camera.stages import clouds

    cfg0 = camera.transparency
    shape = regions.shape
    cell, ys, xs = _cell_of_pixels(r["model"], shape, cfg0.nside, 4)
    reg = regions[ys, xs]
    e = r["ephem"]
    out, costs = {}, {}
    for mb in MODEL_BLOCKS:
        cfg = dataclasses.replace(cfg0, texture_model_blocks=mb)
        t0 = time.perf_counter()
        cm = clouds.run(r["red"].detrended.image, r["model"], star_cell=np.array([-1]),
                        star_transp=np.array([np.nan]), star_weight=np.array([0.0]), cfg=cfg,
                        mask=r["mask"], moon_altaz=(e["moon_alt"], e["moon_az"]),
                        moon_exclusion_deg=camera.photometry.moon_exclusion_deg)
        costs[mb] = time.perf_counter() - t0
        vals = []
        for k in range(33):
            c = cell[(reg == k) & (cell >= 0)]
            a = cm.texture_amp[c]
            a = a[np.isfinite(a)]
            vals.append(float(np.median(a)) if a.size > len(c) // 3 else np.nan)
        out[mb] = vals
    return out, costs


def star_tables(r, regions, k_ref):
    """Per subregion (n, median T); per altitude band (n, T, T at k_ref, error mag);
    the subregions' medians against each other (scatter, what the per-star scatter
    explains, the systematic floor beyond it, each one's deficit and error, mag)."""
    import numpy as np

    from allsky_camera.stages.photmodel import airmass

    ok = (r["star_w"] > 0) & np.isfinite(r["star_t"]) & np.isfinite(r["star_x"])
    x = np.round(r["star_x"][ok]).astype(int)
    y = np.round(r["star_y"][ok]).astype(int)
    inb = (x >= 0) & (x < regions.shape[1]) & (y >= 0) & (y < regions.shape[0])
    reg = np.full(x.size, -1)
    reg[inb] = regions[y[inb], x[inb]]
    t, alt = r["star_t"][ok], r["star_alt"][ok]
    per = [(int(np.sum(reg == k)), float(np.median(t[reg == k])) if np.any(reg == k)
            else np.nan) for k in range(33)]
    # each subregion's median in mag, against the frame's median of them; its
    # error from the per-star scatter (sqrt(pi/2) sigma / sqrt(n) for a median)
    m = -2.5 * np.log10(np.clip(t, 1e-3, None))
    sig = MAD_TO_SIGMA * np.median(np.abs(m - np.median(m)))
    med = np.array([np.median(m[reg == k]) if np.sum(reg == k) >= MIN_SUB_STARS else np.nan
                    for k in range(33)])
    err = np.array([MEDIAN_EFF * sig / np.sqrt(max(np.sum(reg == k), 1)) for k in range(33)])
    g = np.isfinite(med)
    deficit = med - np.median(med[g])
    scatter = MAD_TO_SIGMA * np.median(np.abs(deficit[g]))
    floor = float(np.sqrt(max(scatter ** 2 - np.median(err[g]) ** 2, 0.0)))
    subs = dict(sigma_star=float(sig), scatter=float(scatter), expected=float(np.median(err[g])),
                floor=floor, deficit=deficit, err=err)
    t_ref = t * 10 ** (-0.4 * (r["k"] - k_ref) * (airmass(90.0 - alt) - 1.0))
    bands = []
    for lo, hi in ALT_BANDS:
        b = (alt >= lo) & (alt < hi)
        mb = m[b]
        e = MEDIAN_EFF * MAD_TO_SIGMA * np.median(np.abs(mb - np.median(mb))) / np.sqrt(
            max(b.sum(), 1))
        bands.append((int(b.sum()), float(np.median(t[b])), float(np.median(t_ref[b])), e))
    return per, bands, subs


def simulated_thin_cloud():
    """The simulator's moonlit thin cloud (as tests/test_clouds_skies.py renders it) and the
    same sky clear: texture and star transparency in the cloud's azimuths and elsewhere."""
    import healpy
    import numpy as np

    from allsky_camera.camera import config
    from allsky_camera.output.products import Products
    from allsky_camera.reduction import reduce_exposure
    from allsky_camera.sim import simulate
    from allsky_camera.stages import io

    cam = config.load_camera("MDM")
    thin = simulate.Clouds("thin", 0.5, transmission_max=0.9, brightening=3.0, az_deg=90.0)
    for name, kw in (("thin cloud (T 0.5-0.9)", dict(clouds=thin)), ("clear", {})):
        sim = simulate.simulate(cam, seed=11, sky_light=simulate.SkyLight(
            "moon", 2.0, alt_deg=40.0, az_deg=200.0), **kw)
        exp = io.exposure_from_data("sim.fits", sim.image, sim.header, cam)
        cm = reduce_exposure(exp, cam, Products(sbmap=False, checkplots=False)).clouds
        theta, phi = healpy.pix2ang(cm.nside, np.arange(cm.state.size))
        alt, az = 90.0 - np.degrees(theta), np.degrees(phi)
        daz = (az - 90.0 + 180.0) % 360.0 - 180.0
        high = (alt > 25) & (alt < 80) & np.isfinite(cm.texture_amp)
        inside, outside = high & (np.abs(daz) < 35), high & (np.abs(daz) > 60)
        print(f"  simulated {name}: texture in the cloud's azimuths median "
              f"{100 * np.median(cm.texture_amp[inside]):.1f}% ({inside.sum()} cells), elsewhere "
              f"{100 * np.median(cm.texture_amp[outside]):.1f}% (95th percentile "
              f"{100 * np.percentile(cm.texture_amp[outside], 95):.1f}%); star transparency "
              f"in the cloud {np.nanmedian(cm.star_transp[inside]):.2f}")


def main(argv=None):
    import numpy as np

    import dct_labels
    from allsky_camera.camera import config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", nargs="+", default=["005", "010", "006"])
    p.add_argument("--dark", default="005", help="moonless frame of the same camera")
    p.add_argument("--sim", action="store_true",
                   help="also the simulator's moonlit thin cloud, for comparison (needs healpy)")
    opts = p.parse_args(argv)
    if dct_labels.dct_dir() is None:
        print("the shared DCT frames (../shared/data/dct) are not here")
        return 1
    camera = config.load_camera("DCT")
    regions = dct_labels.subregions((camera.sensor.ny, camera.sensor.nx))
    k_ref = camera.photometry.ext_coef
    dark = _reduce(opts.dark, camera)
    summary, summary_subs = {}, {}
    for f in opts.frames:
        r = dark if f == opts.dark else _reduce(f, camera)
        e = r["ephem"]
        print(f"{f}: Sun {e['sun_alt']:.1f} deg, Moon {e['moon_alt']:.1f} deg alt "
              f"{e['moon_az']:.0f} az, illuminated {e['moon_illum']:.2f}; fitted k "
              f"{r['k']:.3f}")
        ratio, cost_ks = (moon_ratio(r, dark, camera, regions) if e["moon_alt"] > 0
                          else ([(np.nan, np.nan)] * 33, 0.0))
        tex, cost_tex = multiscale_texture(r, camera, regions)
        per, bands, subs = star_tables(r, regions, k_ref)
        cloudy = dct_labels.CLOUDY[f]
        print("  sr lab   R(moon) sep  " + " ".join(f"tex{mb:<3d}" for mb in MODEL_BLOCKS)
              + "  stars   T")
        for k in range(33):
            rr, sep = ratio[k]
            print(f"  {k:2d}  {int(k in cloudy)}   {rr:6.2f} {sep:4.0f}  "
                  + " ".join(f"{100 * tex[mb][k]:5.1f}%" for mb in MODEL_BLOCKS)
                  + f"  {per[k][0]:4d} {per[k][1]:5.2f}")
        for (lo, hi), (n, t, tr, err) in zip(ALT_BANDS, bands):
            print(f"  stars at alt {lo:.0f}-{hi:.0f} deg: {n:4d}, median T {t:.3f} (fitted k), "
                  f"{tr:.3f} (k {k_ref}); error of the median {err:.3f} mag")
        print(f"  stars per subregion: per-star scatter {subs['sigma_star']:.3f} mag; the "
              f"subregions' medians scatter {subs['scatter']:.3f} mag, {subs['expected']:.3f} "
              f"expected from the stars: systematic floor {subs['floor']:.3f} mag")
        summary_subs[f] = subs
        print(f"  cost: K&S ratio {1e3 * cost_ks:.0f} ms (both frames' blocks), texture "
              + ", ".join(f"{mb} blocks {1e3 * c:.0f} ms" for mb, c in cost_tex.items()))
        summary[f] = (ratio, tex, cloudy)
    print(f"summary (subregions farther than {NEAR_MOON_DEG:.0f} deg from the Moon; clear and "
          "cloudy as labels.md):")
    for f, (ratio, tex, cloudy) in summary.items():
        far = [k for k in range(33) if not ratio[k][1] < NEAR_MOON_DEG]
        for lab, name in ((0, "clear"), (1, "cloudy")):
            ks = [k for k in far if int(k in cloudy) == lab]
            if not ks:
                continue
            rr = np.array([ratio[k][0] for k in ks])
            line = f"  {f} {name:6s} n {len(ks):2d}"
            if np.isfinite(rr).any():
                line += (f"  R {np.nanmin(rr):.2f}-{np.nanmax(rr):.2f} "
                         f"(median {np.nanmedian(rr):.2f})")
            for mb in MODEL_BLOCKS:
                tv = np.array([tex[mb][k] for k in ks])
                line += f"  tex{mb} max {100 * np.nanmax(tv):.1f}%"
            print(line)
    floor = max(summary_subs[f]["floor"] for f in summary_subs if not dct_labels.CLOUDY[f])
    for f, (_, _, cloudy) in summary.items():
        if not cloudy or len(cloudy) == dct_labels.N_SUBREGIONS:
            continue
        subs = summary_subs[f]
        parts = []
        for k in sorted(cloudy):
            if np.isfinite(subs["deficit"][k]):
                z = subs["deficit"][k] / np.hypot(subs["err"][k], floor)
                parts.append(f"sr{k} {subs['deficit'][k]:+.3f} ({z:+.1f} sigma)")
        print(f"  {f} labelled-cloudy subregions' star deficit vs the frame (floor {floor:.3f} "
              f"mag from the clear frames): " + ", ".join(parts))
    # the subregions' pattern on the moonless frame, which the clear frames
    # share (a static residual of the camera model), taken off each frame's
    base = summary_subs[opts.dark]["deficit"]
    for f, (_, _, cloudy) in summary.items():
        if f == opts.dark or len(cloudy) == dct_labels.N_SUBREGIONS:
            continue
        d = summary_subs[f]["deficit"]
        g = np.isfinite(d) & np.isfinite(base)
        diff = d - base
        clear = [k for k in range(33) if g[k] and k not in cloudy]
        sc = MAD_TO_SIGMA * np.median(np.abs(diff[clear])) if clear else np.nan
        line = (f"  {f} against {opts.dark}'s subregion pattern: correlation "
                f"{np.corrcoef(d[g], base[g])[0, 1]:.2f} over {g.sum()} subregions; "
                f"the difference scatters {sc:.3f} mag over the labelled-clear ones")
        if cloudy:
            line += "; labelled-cloudy: " + ", ".join(
                f"sr{k} {diff[k]:+.3f}" for k in sorted(cloudy) if g[k])
        print(line)
    if opts.sim:
        simulated_thin_cloud()
    return 0


if __name__ == "__main__":
    sys.exit(main())
