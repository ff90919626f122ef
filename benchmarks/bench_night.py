#!/usr/bin/env python
"""Benchmark a night: ac_night against the ac_proc.py shell loop.

    python benchmarks/bench_night.py [--frames 100] [--workdir DIR] [--dask]

Simulates ``--frames`` MDM frames of a night once (kept in WORKDIR/raw for
the next run), then times, without per-frame checkplots:

- the equivalent ``ac_proc.py`` shell loop (one process per frame);
- ``ac_night.py --jobs 1`` and ``--jobs 2`` (frames per second);
- with ``--dask``, ``ac_night.py --dask`` on a LocalCluster of 2 worker
  processes (started before the timing; the workers' MALLOC_TRIM_THRESHOLD_
  unset, see night_frame.DASK_WORKER_CONFIG), and its overhead per frame
  over ``--jobs 2``;
- the peak resident memory of a worker (from the ledger);
- the reduction in-process, per frame (median of the frames' stage sums,
  wall and CPU time).

Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
NIGHT = REPO / "py" / "allsky_camera" / "ac_night.py"
PROC = REPO / "py" / "allsky_camera" / "ac_proc.py"
#: Per-frame options of every timed run: no checkplots.
OPTS = ["--skip_checkplots", "--camera", "MDM", "-q"]
#: Minutes between simulated frames.
STEP_MIN = 6.0


def make_frames(raw, n):
    """Simulate the night's frames once (reused when already there)."""
    from allsky_camera.camera import config
    from allsky_camera.sim import simulate_night
    have = sorted(p for p in raw.glob("2020*.fits") if not p.name.endswith("-truth.fits"))
    if len(have) >= n:
        return have[:n]
    shutil.rmtree(raw, ignore_errors=True)
    cam = config.load_camera("MDM")
    frames = simulate_night.plan_night(cam, start_utc="2020-10-10T03:00:00", n_frames=n,
                                       step_min=STEP_MIN)
    return simulate_night.write_night(cam, raw, frames)


def timed(cmd, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[:3]}...: failed\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def shell_loop(frames, out):
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for f in frames:
        subprocess.run([sys.executable, str(PROC), str(f), "--outdir", str(out), "--overwrite",
                        *OPTS], check=True, capture_output=True)
    return time.perf_counter() - t0


def worker_peak_mib(out):
    vals = []
    for line in (out / "night-ledger.jsonl").read_text().splitlines():
        r = json.loads(line)["result"]
        if r.get("peak_rss_kib"):
            vals.append(r["peak_rss_kib"] / 1024.0)
    return max(vals) if vals else float("nan")


def in_process(frames, k):
    """Median in-process reduction time per frame (s) over the first k frames."""
    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.output.products import Products
    from allsky_camera.reduction import Timer, reduce_exposure
    from allsky_camera.stages import io
    ac_proc.setup_logging(False, True)
    cam = config.load_camera("MDM")
    products = Products(checkplots=False)
    times, cpu = [], []
    for i, f in enumerate(frames[:k + 1]):
        exp = io.read_exposure(str(f), cam)
        t = Timer()
        reduce_exposure(exp, cam, products, t)
        if i:                        # the first warms the caches
            times.append(sum(t.times.values()))
            cpu.append(sum(t.cpu.values()))
    return statistics.median(times), statistics.median(cpu), t.times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--workdir", default=None, help="keeps the simulated frames")
    p.add_argument("--dask", action="store_true", help="time a LocalCluster too")
    p.add_argument("--skip-loop", action="store_true", help="don't time the shell loop")
    o = p.parse_args()
    work = Path(o.workdir or tempfile.mkdtemp(prefix="bench_night"))
    frames = make_frames(work / "raw", o.frames)
    n = len(frames)
    env = dict(os.environ, PYTHONPATH=str(REPO / "py"))
    res = {}
    per, per_cpu, stages = in_process(frames, min(5, n - 1))
    print(f"in-process reduction: {per:.3f} s wall, {per_cpu:.3f} s CPU per frame (median of "
          f"{min(5, n - 1)}); last: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    if not o.skip_loop:
        res["loop"] = shell_loop(frames, work / "loop")
        print(f"ac_proc.py shell loop: {res['loop']:.1f} s, {n / res['loop']:.2f} frames/s")
    for jobs in (1, 2):
        out = work / f"jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        res[jobs] = timed([sys.executable, str(NIGHT), *map(str, frames), "--outdir", str(out),
                           "--jobs", str(jobs), *OPTS], env)
        print(f"ac_night --jobs {jobs}: {res[jobs]:.1f} s, {n / res[jobs]:.2f} frames/s, "
              f"worker peak memory {worker_peak_mib(out):.0f} MiB")
    if "loop" in res:
        print(f"--jobs 2 / shell loop: {res[2] / res['loop']:.2f}")
    if o.dask:
        import dask
        from dask.distributed import LocalCluster

        from allsky_camera.night.night_frame import DASK_WORKER_CONFIG
        # distributed's default MALLOC_TRIM_THRESHOLD_ costs the workers ~0.3 s of
        # page faults per frame (README, "A night"): unset, as a user's cluster should
        with dask.config.set(DASK_WORKER_CONFIG), \
                LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                             dashboard_address=None) as cl:
            out = work / "dask"
            shutil.rmtree(out, ignore_errors=True)
            td = timed([sys.executable, str(NIGHT), *map(str, frames), "--outdir", str(out),
                        "--dask", cl.scheduler_address, *OPTS], env)
        print(f"ac_night --dask (LocalCluster, 2 workers): {td:.1f} s, {n / td:.2f} frames/s; "
              f"overhead over --jobs 2: {(td - res[2]) / n * 1000:.0f} ms per frame")


if __name__ == "__main__":
    main()
