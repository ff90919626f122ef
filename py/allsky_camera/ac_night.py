#!/usr/bin/env python
"""Reduce a night (or an archive) of all-sky camera exposures.

    python py/allsky_camera/ac_night.py INPUT... --outdir OUT [--jobs N]
        [--watch] [--dask ADDRESS] [ac_proc.py product options]

INPUT is any mix of folders and files (``.fits``, ``.fits.gz``,
``.fits.bz2``).  Each frame is reduced by the same function as
``ac_proc.py`` (:func:`allsky_camera.reduction.reduce_exposure`) in a pool
of worker processes (or on a Dask cluster), and its products are written to
OUT.  The night ends as ``night-summary.fits``/``.csv`` (one row per input,
sorted by time), ``night-summary.png``, ``night-keogram.png``,
``night-clouds.png`` and ``index.html``.

Frames are handed out in file-name order (all-sky cameras name frames by
their time).  Each frame's astrometric fit starts from the last good fit
of the frames at least ``--seed-lag`` before it, so a slowly drifting camera
stays within reach and the results do not depend on how many workers ran.

A ledger (``night-ledger.jsonl``) records each frame done, with the
pipeline version and a hash of the options: a re-run skips the frames
whose products are complete and redoes those whose input, options or
pipeline version changed.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path

if not __package__:   # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from allsky_camera import __version__
from allsky_camera.exceptions import AllskyError

log = logging.getLogger("allsky_camera.ac_night")

#: ``ac_proc.py`` options that choose the per-frame products (shared as is).
PRODUCT_OPTIONS = ("dont_write_detrended", "multiproc", "skip_checkplots", "skip_sbmap",
                   "write_sbmap", "force_mp_centroiding", "dont_write_catalog",
                   "oplot_centroids", "write_healpix", "write_clouds", "detect_streaks",
                   "camera", "camera_dir")
#: Inputs skipped unless asked for: the simulator's truth files.
DEFAULT_VETO = ("*-truth.fits",)
#: A frame's astrometric fit starts from the last good fit this many frames
#: (or more) before it: frames closer than that may run at the same time.
DEFAULT_SEED_LAG = 4
#: --night-zp: the clear-sky zeropoint is the median zeropoint of at most
#: this many of the night's dark frames (Sun below nightsum.DARK_SUN_ALT_DEG)
#: with the highest zeropoints (the clearest), among those --seed-lag or
#: more frames before.
NIGHT_ZP_FRAMES = 5
#: --watch: a file is taken once its size has not changed for this long (s);
#: the folders are polled every POLL_MIN_S, backing off (doubling) to
#: POLL_MAX_S while nothing new arrives.
DEFAULT_SETTLE_S = 3.0
POLL_MIN_S = 0.5
POLL_MAX_S = 30.0
#: While frames complete, the summary files are rewritten at most this often (s).
SUMMARY_EVERY_S = 5.0
#: Longest wait (s) for a worker before the signals are looked at again.
WAIT_TICK_S = 0.5
#: Temporary names used by the atomic writers (see io.atomic_path).
TEMP_GLOB = ".part*"


def build_parser():
    """The command-line parser: inputs, night options and ac_proc's product options."""
    from allsky_camera import ac_proc

    p = argparse.ArgumentParser(
        prog="ac_night.py",
        description="reduce a night of all-sky camera exposures, with resume, "
                    "nightly products and a watch mode")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="folders and FITS files (.fits, .fits.gz, .fits.bz2)")
    p.add_argument("--outdir", default=None, help="directory of the night's products")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: the number of cores)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run the frames on this dask.distributed scheduler instead "
                        "(needs the [cluster] extra)")
    p.add_argument("--watch", action="store_true",
                   help="keep running and reduce new frames as they land (stop: Ctrl-C "
                        "or SIGTERM)")
    p.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S, metavar="S",
                   help="--watch: take a file once its size is stable for S seconds "
                        f"(default {DEFAULT_SETTLE_S:g})")
    p.add_argument("--veto", action="append", default=[], metavar="PATTERN",
                   help="skip files whose name matches this pattern (repeatable; "
                        f"always skipped: {', '.join(DEFAULT_VETO)})")
    p.add_argument("--seed-lag", type=int, default=DEFAULT_SEED_LAG, metavar="K",
                   help="seed each frame's astrometric fit with the last good fit at least "
                        f"K frames before it (default {DEFAULT_SEED_LAG})")
    p.add_argument("--night-zp", action="store_true",
                   help="measure transparency against the zeropoint of the night's clearest "
                        "dark frames so far instead of the camera's nominal zeropoint")
    p.add_argument("--demo", action="store_true",
                   help="simulate a short night into OUTDIR/raw and reduce it")
    src = ac_proc.build_parser()
    for a in src._actions:
        if a.dest in PRODUCT_OPTIONS:
            kw = {"help": a.help, "default": a.default, "dest": a.dest}
            if isinstance(a, argparse._StoreTrueAction):
                kw["action"] = "store_true"
            elif isinstance(a, argparse._AppendAction):
                kw.update(action="append", metavar=a.metavar)
            else:
                kw.update(type=a.type, metavar=a.metavar)
            p.add_argument(*a.option_strings, **kw)
    p.add_argument("-v", "--verbose", action="store_true", help="log every stage's details")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("--version", action="version", version=f"allsky_camera {__version__}")
    return p


def find_inputs(inputs, veto=(), exclude_dir=None):
    """The input files: files as given, folders searched (not recursively) for FITS.

    Returns
    -------
    list of str
        Absolute paths, sorted by file name, vetoed names left out.
    """
    from allsky_camera.stages.io import FITS_SUFFIXES

    patterns = (*DEFAULT_VETO, *veto)
    out = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in p.iterdir():
                if f.is_file() and f.name.lower().endswith(FITS_SUFFIXES) \
                        and not f.name.startswith("."):
                    out.add(f.resolve())
        else:
            out.add(p.resolve())
    if exclude_dir is not None:
        ex = Path(exclude_dir).resolve()
        out = {f for f in out if f.parent != ex}
    names = [f for f in out if not any(fnmatch.fnmatch(f.name, pat) for pat in patterns)]
    return [str(f) for f in sorted(names, key=lambda f: (f.name, str(f)))]


def options_hash(products, camera_opt, night_opts=(), dirs=None):
    """Hash of what decides a frame's results: products, camera configuration
    (the named one, or every one the frames may be matched to, in ``dirs``),
    and the night options that change them (``night_opts``)."""
    from allsky_camera.camera import config
    h = hashlib.sha256(products.science_hash().encode())
    h.update(repr(tuple(night_opts)).encode())
    names = [camera_opt] if camera_opt else config.known_cameras(dirs)
    for n in names:
        h.update(str(n).encode())
        h.update(Path(config.camera_path(n, dirs)).read_bytes())
    return h.hexdigest()[:16]


def _worker_init(level):
    """Worker process start: Ctrl-C is the parent's business; log like it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from allsky_camera import ac_proc
    ac_proc.setup_logging(False, True)
    logging.getLogger("allsky_camera").setLevel(max(level, logging.WARNING))


class ProcessBackend:
    """Frames on a local pool of worker processes."""

    def __init__(self, jobs, level):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        self.capacity = jobs
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(
            "forkserver"), initializer=_worker_init, initargs=(level,))

    def submit(self, task):
        from allsky_camera.night import night_frame
        return self.pool.submit(night_frame.run_task, task)

    def wait(self, futures, timeout):
        from concurrent.futures import FIRST_COMPLETED, wait
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return done

    def close(self):
        self.pool.shutdown(wait=True)


class DaskBackend:
    """Frames on an existing dask.distributed scheduler (products written by the workers)."""

    def __init__(self, address):
        try:
            from dask.distributed import Client
        except ImportError as err:
            raise AllskyError("--dask needs dask.distributed: pip install "
                              "'allsky_camera[cluster]'") from err
        try:
            self.client = Client(address, timeout="20s")
        except OSError as err:
            raise AllskyError(f"--dask {address}: cannot reach the scheduler ({err}); "
                              "check the address") from err
        self.capacity = max(2 * sum(self.client.nthreads().values()), 1)
        self._check_workers()

    def _check_workers(self):
        """Warn when the workers run with distributed's malloc trimming."""
        from allsky_camera.night import night_frame
        # os.getenv, not a function of ours: workers may run another version
        trims = {v for v in self.client.run(os.getenv, night_frame.MALLOC_TRIM_ENV).values()
                 if v is not None}
        if trims:
            key = next(iter(night_frame.DASK_WORKER_CONFIG))
            log.warning("the Dask workers run with %s=%s, which costs ~0.3 s of CPU per "
                        "frame in page faults; start them with the dask config %s: null "
                        "(README, 'A cluster')", night_frame.MALLOC_TRIM_ENV,
                        ",".join(sorted(trims)), key)

    def submit(self, task):
        from allsky_camera.night import night_frame
        return self.client.submit(night_frame.run_task, task, pure=False)

    def wait(self, futures, timeout):
        from dask.distributed import wait
        try:
            done, _ = wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return done

    def close(self):
        self.client.close()


class Stop:
    """SIGINT/SIGTERM set a flag: no new frame starts, those running finish."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if not self.requested:
            log.warning("%s: finishing the frames in progress, then stopping",
                        signal.Signals(signum).name)
        self.requested = True

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


class Night:
    """The state of a night: inputs, results, ledger, products."""

    def __init__(self, opts, products, backend, stop):
        from allsky_camera.night import ledger
        self.opts = opts
        self.outdir = Path(opts.outdir)
        self.products = products
        self.backend = backend
        self.stop = stop
        self.dirs = camera_dirs(opts)
        self.options = options_hash(products, opts.camera, (opts.seed_lag, opts.night_zp),
                                    self.dirs)
        self.entries = ledger.read(self.outdir)
        self.paths = []
        self.results = {}
        self.keys = {}          # path -> file key (size, mtime) of the file reduced
        self.t0 = time.perf_counter()
        self.bar = None
        self._last_summary = -math.inf

    # -------------------------------------------------------------- inputs
    def add(self, paths):
        """Take new inputs (kept in file-name order) and pick up those done."""
        from allsky_camera.night import ledger
        known = set(self.paths)
        for p in paths:
            if p in known:
                continue
            self.paths.append(p)
            key = ledger.file_key(p) if os.path.exists(p) else None
            e = self.entries.get(p)
            if ledger.is_done(e, version=__version__, options=self.options, key=key,
                              outdir=self.outdir):
                self.results[p] = e["result"]
                self.keys[p] = e["key"]
        self.paths.sort(key=lambda p: (Path(p).name, p))

    def changed(self, path):
        """Whether a reduced input has been rewritten since (size or time changed)."""
        from allsky_camera.night import ledger
        if path not in self.results:
            return False
        try:
            return ledger.file_key(path) != self.keys.get(path)
        except OSError:
            return False

    def forget(self, path):
        """Drop a reduced input's result, so that the next :meth:`run` redoes it."""
        self.results.pop(path, None)
        self.keys.pop(path, None)

    def _seed(self, i):
        """The last good fitted model at least seed_lag frames before frame i."""
        for j in range(i - self.opts.seed_lag, -1, -1):
            r = self.results[self.paths[j]]
            if r["model"] is not None and r["row"]["status"] != "failed":
                return r["model"]
        return None

    def _clear_zp(self, i):
        """--night-zp: median zeropoint of the clearest dark frames at least
        seed_lag frames before frame i (None: not asked, or none yet)."""
        import statistics

        from allsky_camera.night.nightsum import DARK_SUN_ALT_DEG
        if not self.opts.night_zp:
            return None
        zps = [r["row"]["zp_total"] for r in (self.results[p] for p in
                                               self.paths[:max(i - self.opts.seed_lag + 1, 0)])
               if r["row"]["status"] == "ok" and r["row"]["sun_alt"] < DARK_SUN_ALT_DEG
               and math.isfinite(r["row"]["zp_total"])]
        if not zps:
            return None
        return float(statistics.median(sorted(zps)[-NIGHT_ZP_FRAMES:]))

    def _ready(self, i):
        return all(self.paths[j] in self.results for j in range(i - self.opts.seed_lag + 1))

    # ---------------------------------------------------------------- run
    def run(self):
        """Reduce every input not done yet; returns when done or stopped."""
        from allsky_camera.night import ledger
        from allsky_camera.night.night_frame import Task

        todo = [i for i, p in enumerate(self.paths) if p not in self.results]
        self._progress_start(len(self.paths), len(self.paths) - len(todo))
        pending = {}
        k = 0
        while True:
            while (k < len(todo) and len(pending) < self.backend.capacity
                   and not self.stop.requested and self._ready(todo[k])):
                i = todo[k]
                task = Task(self.paths[i], str(self.outdir), self.opts.camera, self.products,
                            self._seed(i), self._clear_zp(i), tuple(map(str, self.dirs)))
                pending[self.backend.submit(task)] = i
                k += 1
            if not pending:
                break
            for fut in self.backend.wait(pending, WAIT_TICK_S):
                i = pending.pop(fut)
                p = self.paths[i]
                res = fut.result()
                key = ledger.file_key(p) if os.path.exists(p) else None
                ledger.append(self.outdir, {"path": p, "version": __version__,
                                            "options": self.options, "key": key,
                                            "result": res})
                self.results[p] = res
                self.keys[p] = key
                self._progress(res["row"])
                if time.monotonic() - self._last_summary >= SUMMARY_EVERY_S:
                    self.write_summary()
        self._progress_end()

    # ------------------------------------------------------------ progress
    def _progress_start(self, total, done):
        if sys.stderr.isatty() and not self.opts.quiet:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=done, unit="frame", file=sys.stderr,
                            dynamic_ncols=True)
        elif done:
            log.info("%d of %d frames done already (ledger)", done, total)

    def _progress(self, row):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{row['file']} {row['status']}")
        else:
            log.info("[%d/%d] %s: %s%s", len(self.results), len(self.paths), row["file"],
                     row["status"], f" ({row['message']})" if row["message"] else "")

    def _progress_end(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # ------------------------------------------------------------ products
    def rows(self):
        return [self.results[p]["row"] for p in self.paths if p in self.results]

    def write_summary(self):
        from allsky_camera.night import nightsum
        self._last_summary = time.monotonic()
        return nightsum.write(self.rows(), self.outdir, extra_cards=[
            ("PIPEVER", __version__, "pipeline version"),
            ("OPTHASH", self.options, "hash of the product options and camera")])

    def write_products(self):
        """Summary, nightly pictures and the page."""
        from allsky_camera.night import night_html, night_plots
        t = self.write_summary()
        res = [self.results[p] for p in self.paths if p in self.results]
        night_plots.write_all(res, self.outdir)
        night_html.write_index(t, res, self.outdir)

    def final_line(self):
        from allsky_camera.night import nightsum
        rows = self.rows()
        c = nightsum.counts(rows)
        return (f"ac_night: {len(rows)} frames: {c['ok']} ok, {c['degraded']} degraded, "
                f"{c['failed']} failed; {nightsum.clear_hours(rows):.2f} clear hours; "
                f"{time.perf_counter() - self.t0:.1f} s")


def camera_dirs(opts):
    """Where camera configurations are looked for (--camera-dir, then the stock ones)."""
    from allsky_camera.camera import config
    return config.camera_dirs(getattr(opts, "camera_dir", None) or [])


def remove_temporaries(outdir):
    """Remove what a killed run's atomic writers left (hidden temporary names)."""
    for f in Path(outdir).glob(TEMP_GLOB):
        log.info("removing %s, left by an interrupted run", f)
        f.unlink(missing_ok=True)


def watch(night, opts, stop):
    """Poll the inputs, reduce each file once its size is stable; until stopped.

    A file rewritten after it was reduced (a failed transfer copied again, say:
    its size or modification time changed) is taken again once it is stable.
    """
    sizes = {}       # path -> (size, time it was first seen at that size)
    delay = POLL_MIN_S
    while not stop.requested:
        now = time.monotonic()
        ready, waiting = [], False
        for p in find_inputs(opts.inputs, opts.veto, exclude_dir=opts.outdir):
            if p in night.results and not night.changed(p):
                continue
            try:
                size = os.path.getsize(p)
            except OSError:
                continue
            old = sizes.get(p)
            if old is None or old[0] != size:
                sizes[p] = (size, now)
                waiting = True
            elif now - old[1] >= opts.settle and size > 0:
                ready.append(p)
            else:
                waiting = True
        if ready:
            for p in ready:
                night.forget(p)
                sizes.pop(p, None)
            night.add(ready)
            night.run()
            night.write_products()
            log.info("%s", night.final_line())
            delay = POLL_MIN_S
        elif waiting:
            delay = POLL_MIN_S        # files still growing or settling: look again soon
        else:
            delay = min(delay * 2, POLL_MAX_S)
        _sleep(delay, stop)


def _sleep(seconds, stop):
    """Sleep ``seconds``, waking early when a stop is requested."""
    end = time.monotonic() + seconds
    while not stop.requested:
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(WAIT_TICK_S, left))


def run(opts):
    """Run a night for parsed options; returns the :class:`Night`."""
    from allsky_camera.camera import config
    from allsky_camera.output.products import Products
    from allsky_camera.stages import io

    if opts.outdir is None:
        raise AllskyError("give --outdir, the directory of the night's products")
    if opts.jobs < 1:
        raise AllskyError(f"--jobs {opts.jobs}: give a number of processes >= 1")
    if opts.seed_lag < 1:
        raise AllskyError(f"--seed-lag {opts.seed_lag}: give a number of frames >= 1")
    if opts.camera is not None:
        config.load_camera(opts.camera, camera_dirs(opts))   # a bad name fails here, once
    io.check_outdir(opts.outdir)
    remove_temporaries(opts.outdir)
    if opts.demo:
        from allsky_camera.sim import simulate_night
        raw = Path(opts.outdir) / "raw"
        if not any(raw.glob("*.fits")):
            log.info("simulating the demo night into %s", raw)
            simulate_night.demo_night(config.load_camera(opts.camera or "MDM",
                                                         camera_dirs(opts)), raw)
        opts.inputs = [*opts.inputs, str(raw)]
    if not opts.inputs:
        raise AllskyError("give input folders or files, or --demo")
    products = Products.from_options(opts)
    level = logging.getLogger("allsky_camera").level
    backend = DaskBackend(opts.dask) if opts.dask else ProcessBackend(opts.jobs, level)
    try:
        with Stop() as stop:
            night = Night(opts, products, backend, stop)
            if opts.watch:
                # every file, even one there at the start, waits until its size is
                # stable: a copy may be in progress
                watch(night, opts, stop)
            else:
                night.add(find_inputs(opts.inputs, opts.veto, exclude_dir=opts.outdir))
                if not night.paths:
                    raise AllskyError(f"{', '.join(opts.inputs)}: no FITS file found; "
                                      "check the paths")
                night.run()
            night.write_products()
    finally:
        backend.close()
    remove_temporaries(opts.outdir)
    return night


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    from allsky_camera import ac_proc

    opts = build_parser().parse_args(argv)
    ac_proc.setup_logging(opts.verbose, opts.quiet)
    try:
        night = run(opts)
    except AllskyError as err:
        print(f"ac_night.py: error: {err}", file=sys.stderr)
        return 2
    print(night.final_line())
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
