#!/usr/bin/env python
"""Benchmark the pipeline on the demo exposure.

    python benchmarks/bench_pipeline.py [--repeat 5] [--camera MDM] [--dct FILE]
                                        [--reduce-only]

Reports
- ``reduction.reduce_exposure`` alone on an exposure already read (no
  checkplots, no files), per stage: median wall and CPU time (of this
  process) over repeats after one warm-up run (catalog cache filled, masks
  read), on the demo frame and with ``--dct`` on a real DCT frame (e.g.
  ../shared/data/dct/005.fits.bz2);
- each stage's wall time in-process through ``ac_proc.run`` (median over
  repeats, after one warm-up run that also fills the catalog cache);
- the whole run as a separate process, Python start-up and imports included,
  for the default options and with ``--skip_checkplots`` (median of repeats);
- the peak resident memory of those processes.

Figures depend on the machine; the targets in the project's issues are for
a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))

#: Extra option sets timed as whole processes: name -> options.
PROCESS_CASES = {
    "default (3 checkplots)": [],
    "--skip_checkplots": ["--skip_checkplots"],
    "--detect_streaks --skip_checkplots": ["--detect_streaks", "--skip_checkplots"],
    "--write_healpix --skip_checkplots": ["--write_healpix", "--skip_checkplots"],
    "every product, --multiproc 2": ["--detect_streaks", "--write_healpix", "--write_sbmap",
                                     "--oplot_centroids", "--multiproc", "2",
                                     "--force_mp_centroiding"],
}
#: Options of the second in-process timing (every optional product).
ALL_PRODUCTS = ["--detect_streaks", "--write_healpix", "--write_sbmap", "--oplot_centroids"]
#: Options of the third in-process timing: the same products with two workers.
MULTIPROC = ["--multiproc", "2", "--force_mp_centroiding"]


def reduction_times(exposure, camera, repeat):
    """Median wall and CPU seconds of each stage of ``reduce_exposure``, and of
    the whole call, over ``repeat`` warm runs: ``{stage: (wall, cpu)}``."""
    from allsky_camera.output.products import Products
    from allsky_camera.reduction import Timer, reduce_exposure

    products = Products(checkplots=False)
    reduce_exposure(exposure, camera, products)        # warm: catalog cache, masks
    runs = []
    for _ in range(repeat):
        t = Timer()
        w0, c0 = time.perf_counter(), time.process_time()
        reduce_exposure(exposure, camera, products, t)
        total = (time.perf_counter() - w0, time.process_time() - c0)
        runs.append({**{k: (t.times[k], t.cpu[k]) for k in t.times}, "total": total})
    return {k: tuple(statistics.median(r[k][i] for r in runs) for i in (0, 1))
            for k in runs[0]}


def print_reduction(label, times, repeat):
    print(f"\nreduce_exposure in-process, {label} (median of {repeat}, warm):")
    for k, (wall, cpu) in times.items():
        print(f"  {k:12s} wall {wall * 1000:7.1f} ms   CPU {cpu * 1000:7.1f} ms")


def stage_times(frame, outdir, camera, repeat, extra=()):
    """Median in-process time of each stage over ``repeat`` runs."""
    from allsky_camera import ac_proc

    ac_proc.setup_logging(False, True)
    runs = []
    for i in range(repeat + 1):
        opts = ac_proc.build_parser().parse_args(
            [str(frame), "--outdir", str(outdir), "--overwrite", "--camera", camera, *extra])
        t0 = time.perf_counter()
        res = ac_proc.run(opts)
        total = time.perf_counter() - t0
        if i > 0:                      # the first run warms caches and imports
            runs.append(dict(res["times"], total=total))
    keys = runs[0].keys()
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}


#: Runs the pipeline script as __main__ and reports the process's own peak
#: resident memory (KiB) on stderr's last line.
_WRAPPER = (
    "import resource, runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "code = 0\n"
    "try:\n"
    "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
    "except SystemExit as e:\n"
    "    code = e.code or 0\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n")


def process_time(frame, outdir, camera, extra, repeat):
    """Median wall time and peak memory (MiB) of whole-process runs."""
    times, peaks = [], []
    script = str(REPO / "py" / "allsky_camera" / "ac_proc.py")
    args = [str(frame), "--outdir", str(outdir), "--overwrite", "-q", "--camera", camera, *extra]
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, script, *args], check=True)
        times.append(time.perf_counter() - t0)
        r = subprocess.run([sys.executable, "-c", _WRAPPER, script, *args], check=True,
                           capture_output=True, text=True)
        peaks.append(int(r.stderr.strip().splitlines()[-1]))
    return statistics.median(times), max(peaks) / 1024.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement")
    p.add_argument("--camera", default="MDM", help="camera configuration to simulate")
    p.add_argument("--dct", default=None, metavar="FILE",
                   help="also time reduce_exposure on this real DCT frame (camera DCT)")
    p.add_argument("--reduce-only", action="store_true",
                   help="time reduce_exposure only (no whole processes, no ac_proc.run)")
    args = p.parse_args(argv)

    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.sim import simulate
    from allsky_camera.stages import io

    ac_proc.setup_logging(False, True)
    cam = config.load_camera(args.camera)
    sim = simulate.simulate(cam, seed=0)
    exp = io.exposure_from_data(f"bench_{cam.name}.fits", sim.image, sim.header, cam)
    print_reduction(f"simulated {cam.name} frame", reduction_times(exp, cam, args.repeat),
                    args.repeat)
    if args.dct:
        dct = config.load_camera("DCT")
        print_reduction(Path(args.dct).name, reduction_times(io.read_exposure(args.dct, dct),
                                                             dct, args.repeat), args.repeat)
    if args.reduce_only:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame = tmp / f"bench_{cam.name}.fits"
        t0 = time.perf_counter()
        # in a child process, so that this process stays small: a child forked
        # from it starts with its memory counted in the child's peak
        subprocess.run([sys.executable, str(REPO / "py" / "allsky_camera" / "ac_simulate.py"),
                        str(frame), "--camera", args.camera, "--seed", "0"], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"simulated {frame.name} in {time.perf_counter() - t0:.2f} s")
        # whole processes first: a child forked from a parent that has run the
        # pipeline in-process would report the parent's memory as its own peak
        print(f"\nwhole process, start-up included (median of {args.repeat}):")
        for name, extra in PROCESS_CASES.items():
            t, peak = process_time(frame, tmp, args.camera, extra, args.repeat)
            print(f"  {name:28s} {t:6.2f} s   peak RSS {peak:6.0f} MiB")
        for label, extra in (("default options", []),
                             ("every product: " + " ".join(ALL_PRODUCTS), ALL_PRODUCTS),
                             ("every product, " + " ".join(MULTIPROC), ALL_PRODUCTS + MULTIPROC)):
            st = stage_times(frame, tmp, args.camera, args.repeat, extra)
            print(f"\nin-process stage times, {label} (median of {args.repeat}, warm):")
            for k, v in st.items():
                print(f"  {k:12s} {v * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
