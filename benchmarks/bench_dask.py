#!/usr/bin/env python
"""Where the Dask overhead per frame goes: ac_night --dask against --jobs 2.

    python benchmarks/bench_dask.py --raw DIR [--frames 24] [--repeat 2]
        [--out DIR] [--variants jobs2,default,...]

Reads the first ``--frames`` simulated frames of DIR (as made by
``bench_night.py``: WORKDIR/raw; read only) and times, without checkplots,
each variant ``--repeat`` times, printing wall time, the overhead per frame
over ``--jobs 2``, and the CPU time of the client (ac_night) and of the
workers:

- ``jobs2``: ``ac_night --jobs 2`` (the reference);
- ``default``: ``ac_night --dask`` on a LocalCluster of 2 worker processes
  (1 thread each) with distributed's default settings; the cluster is started
  (and timed) before, and the workers' first import of the pipeline is
  included, as in ``bench_night.py``;
- ``warm``: the same, the pipeline imported on the workers before timing;
- ``direct``: with ``notrim``'s setting, the frames submitted straight to the
  warm cluster from this process (no ac_night feeding, no seeding);
- ``noprof``: ``distributed.worker.profile.enabled: False``;
- ``notrim``: ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_``
  unset (glibc's default, adaptive, malloc thresholds);
- ``both``: ``noprof`` and ``notrim``;
- ``directnp``: ``direct`` with ``noprof``'s setting too.

Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
NIGHT = REPO / "py" / "allsky_camera" / "ac_night.py"
#: Per-frame options of every timed run: no checkplots (as bench_night.py).
OPTS = ["--skip_checkplots", "--camera", "MDM", "-q"]
#: dask config overrides of each Dask variant (None unsets a pre-spawn variable).
NO_PROFILE = {"distributed.worker.profile.enabled": False}
NO_TRIM = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}  # as
# allsky_camera.night.night_frame.DASK_WORKER_CONFIG
VARIANTS = {"default": {}, "warm": {}, "direct": NO_TRIM, "noprof": NO_PROFILE,
            "notrim": NO_TRIM, "both": {**NO_PROFILE, **NO_TRIM},
            "directnp": {**NO_PROFILE, **NO_TRIM}}


def _cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def _trim_env():
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def _import_pipeline():
    from allsky_camera.night import night_frame  # noqa: F401
    from allsky_camera.reduction import reduce_exposure  # noqa: F401
    return True


def run_night(frames, out, extra, env):
    """Wall time of one ac_night run, and its (user, sys) CPU (s) with its pool."""
    shutil.rmtree(out, ignore_errors=True)
    u0, s0 = _children_cpu()
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(NIGHT), *map(str, frames), "--outdir", str(out),
                        *extra, *OPTS], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"ac_night {extra}: failed\n{r.stderr[-2000:]}")
    u1, s1 = _children_cpu()
    return wall, u1 - u0, s1 - s0


def run_direct(client, frames, out):
    """Wall time of the frames submitted straight to the workers (no seeding)."""
    from dask.distributed import wait

    from allsky_camera.night import night_frame
    from allsky_camera.output.products import Products
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    products = Products(checkplots=False)
    t0 = time.perf_counter()
    futs = [client.submit(night_frame.run_task,
                          night_frame.Task(str(f), str(out), "MDM", products, None, None, ()),
                          pure=False) for f in frames]
    wait(futs)
    for f in futs:
        f.result()
    return time.perf_counter() - t0


def dask_variant(name, frames, out, env, repeat, ref, env0):
    import dask
    from dask.distributed import Client, LocalCluster
    # a Nanny writes its pre-spawn variables into this process's environment too,
    # and later clusters would inherit them: each variant starts from the original
    os.environ.clear()
    os.environ.update(env0)
    with dask.config.set(VARIANTS[name]):
        t0 = time.perf_counter()
        cl = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None)
        start = time.perf_counter() - t0
    with cl, Client(cl) as client:
        trim = sorted(set(client.run(_trim_env).values()), key=str)
        print(f"  {name}: the workers' MALLOC_TRIM_THRESHOLD_: {trim}")
        if name != "default":
            t0 = time.perf_counter()
            client.run(_import_pipeline)
            print(f"  {name}: cluster start {start:.1f} s, workers' import "
                  f"{time.perf_counter() - t0:.1f} s (not timed below)")
        else:
            print(f"  {name}: cluster start {start:.1f} s (not timed below)")
        for k in range(repeat):
            w0 = client.run(_cpu_self)
            sch0 = client.run_on_scheduler(_cpu_self)
            if name.startswith("direct"):
                wall, cu, cs = run_direct(client, frames, out), 0.0, 0.0
            else:
                wall, cu, cs = run_night(frames, out, ["--dask", cl.scheduler_address],
                                         env)
            w1 = client.run(_cpu_self)
            sch1 = client.run_on_scheduler(_cpu_self)
            wu = sum(w1[a][0] - w0[a][0] for a in w1)
            ws = sum(w1[a][1] - w0[a][1] for a in w1)
            su = sch1[0] - sch0[0] + sch1[1] - sch0[1]
            report(f"{name} #{k + 1}", wall, len(frames), ref,
                   f"client CPU {cu + cs:.1f} s; workers user {wu:.1f} + sys {ws:.1f} s; "
                   f"scheduler {su:.1f} s")


def report(label, wall, n, ref, cpu):
    over = "" if ref is None else f", {(wall - ref) / n * 1000:+.0f} ms/frame over --jobs 2"
    print(f"{label}: {wall:.1f} s ({n / wall:.2f} frames/s{over}); {cpu}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raw", required=True, help="folder of simulated frames (read only)")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--out", default="/tmp/bench_dask", help="scratch folder for products")
    p.add_argument("--variants",
                   default="jobs2,default,warm,direct,noprof,notrim,both,directnp")
    o = p.parse_args()
    frames = sorted(p for p in Path(o.raw).glob("*.fits")
                    if not p.name.endswith("-truth.fits"))[:o.frames]
    out = Path(o.out)
    env = dict(os.environ, PYTHONPATH=str(REPO / "py"))
    env0 = dict(os.environ)
    ref = None
    for name in o.variants.split(","):
        if name == "jobs2":
            walls = []
            for k in range(o.repeat):
                wall, cu, cs = run_night(frames, out / "jobs2", ["--jobs", "2"], env)
                walls.append(wall)
                report(f"jobs2 #{k + 1}", wall, len(frames), None,
                       f"ac_night and its pool: user {cu:.1f} + sys {cs:.1f} s")
            ref = min(walls)
        else:
            dask_variant(name, frames, out / name, env, o.repeat, ref, env0)


if __name__ == "__main__":
    main()
