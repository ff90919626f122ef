#!/usr/bin/env python
"""Streak recall against peak S/N and length, false streaks, detection time.

    python benchmarks/streak_recall.py [--frames 5] [--camera MDM]

On seeded simulated frames (the project's simulator), injects straight
streaks of FWHM 2.5 px wholly on the searched sky, whose peak is a given
multiple of the per-pixel noise at their middle, and counts those found
with both ends within the tests' tolerance (10 px), by the tests' own
helper.  Prints a table of the recall per (peak S/N, length), the recall on
the tests' mix of injected streaks (``simulate.random_streaks``), the false
streaks on clean frames and the time of :func:`streaks.detect` per frame
(median wall-clock and CPU time, the sky median included).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
sys.path.insert(0, str(REPO / "tests"))

PEAKS = (2.0, 2.5, 3.0, 4.0)               # peak over per-pixel noise
LENGTHS = (100.0, 150.0, 200.0, 300.0, 450.0)   # pixels
PER_FRAME = 2                              # streaks per frame


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=5, help="frames per (peak, length) cell")
    p.add_argument("--mix_frames", type=int, default=12, help="frames of the tests' mix")
    p.add_argument("--clean_frames", type=int, default=20, help="clean frames")
    p.add_argument("--camera", default="MDM")
    args = p.parse_args(argv)

    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.sim import simulate
    from test_streaks import count_found, detect_on, faint_streaks, noise_map

    ac_proc.setup_logging(False, True)
    cam = config.load_camera(args.camera)
    model, cfg = cam.astrometry.model, cam.streaks
    noise = noise_map(cam, simulate.simulate(cam, seed=1))
    times, cpu = [], []

    def timed(sim):
        t0, c0 = time.perf_counter(), time.process_time()
        table = detect_on(cam, sim)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        return table

    recall = {}
    seed = 3000
    for peak in PEAKS:
        for length in LENGTHS:
            found = total = 0
            for _ in range(args.frames):
                seed += 1
                rng = np.random.default_rng(seed)
                inj = faint_streaks(rng, PER_FRAME, model, cfg, noise, peak_sigma=peak,
                                    length_px=length)
                sim = simulate.simulate(cam, seed=seed, streaks=inj)
                f, t = count_found(cam, inj, sim, timed(sim))
                found, total = found + f, total + t
            recall[peak, length] = (found, total)
    found = total = 0
    for k in range(args.mix_frames):
        rng = np.random.default_rng(500 + k)
        inj = simulate.random_streaks(3, (cam.sensor.ny, cam.sensor.nx), rng)
        sim = simulate.simulate(cam, seed=600 + k, streaks=inj)
        f, t = count_found(cam, inj, sim, timed(sim))
        found, total = found + f, total + t
    false = sum(len(timed(simulate.simulate(cam, seed=700 + k)))
                for k in range(args.clean_frames))

    print(f"recall (found/injected), camera {cam.name}, FWHM 2.5 px, "
          f"{args.frames * PER_FRAME} streaks per cell")
    print("| peak S/N per pixel | " + " | ".join(f"{x:.0f} px" for x in LENGTHS) + " |")
    print("|---" * (len(LENGTHS) + 1) + "|")
    for peak in PEAKS:
        cells = [recall[peak, x] for x in LENGTHS]
        print(f"| {peak:.1f} | " + " | ".join(f"{f}/{t} ({f / t:.0%})" if t else "-"
                                                for f, t in cells) + " |")
    print(f"tests' mix (random_streaks, {args.mix_frames} frames): {found}/{total} "
          f"({found / max(total, 1):.1%})")
    print(f"false streaks on {args.clean_frames} clean frames: {false}")
    print(f"streaks.detect per frame: median {np.median(times):.2f} s wall, "
          f"{np.median(cpu):.2f} s CPU, max {np.max(times):.2f} s wall over {len(times)} frames")


if __name__ == "__main__":
    main()
