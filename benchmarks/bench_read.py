#!/usr/bin/env python
"""Time of reading a raw frame: astropy alone against the checked read of io.py.

    python benchmarks/bench_read.py [--repeat 5]

``io._read_image_hdu`` decompresses a ``.gz``/``.bz2`` frame completely (so
that its CRC is verified) before astropy parses it from memory; this prints
the median wall-clock time of that and of ``astropy.io.fits.getdata`` on the
same files: a real DCT ``.fits.bz2`` (if ``../shared`` is present) and a
simulated MDM frame written as ``.fits`` and ``.fits.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))


def median_time(func, path, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    from astropy.io import fits

    from allsky_camera.camera import config
    from allsky_camera.sim import simulate
    from allsky_camera.stages import io

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timings per case (median printed)")
    opts = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate.simulate(config.load_camera("MDM"), seed=0)
        plain = Path(tmp) / "sim.fits"
        fits.PrimaryHDU(data=sim.image, header=sim.header).writeto(plain)
        gz = Path(tmp) / "sim.fits.gz"
        gz.write_bytes(gzip.compress(plain.read_bytes()))
        files = [plain, gz]
        for shared in (REPO.parent / "shared", REPO.parents[1] / "shared"):
            dct = shared / "data" / "dct" / "005.fits.bz2"
            if dct.is_file():
                files.insert(0, dct)
                break
        for f in files:
            a = median_time(lambda x: fits.getdata(x, memmap=False), f, opts.repeat)
            b = median_time(io._read_image_hdu, f, opts.repeat)
            print(f"{f.name:14s} astropy getdata {a * 1e3:7.1f} ms   "
                  f"io._read_image_hdu (checked) {b * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
