"""SHA-256 checksums of simulated frames and their truth, for refactoring the simulator.

A change to the simulator's structure must not change what it renders: run
this before and after (``git stash`` or another checkout) and compare the
printed lines, or save them with ``--out`` and compare with ``--against``::

    python benchmarks/sim_checksums.py --out /tmp/before.json      # old code
    python benchmarks/sim_checksums.py --against /tmp/before.json  # new code

Each configuration renders one frame (the SMALL640 test camera and the
stock MDM camera; clouds of every geometry, thin cloud, haze, twilight and
moonlight, streaks, extras, a perturbed geometry, a photometric model) and
hashes the raw image, the raw header and every truth array and star column.
The checksums hold only for one numpy / scipy / astropy / erfa (a library
may change the last bit of a float); they pin the code, not the science.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
SMALL = REPO / "tests" / "data" / "SMALL640.yaml"


def configurations():
    """``(name, camera, kwargs)`` of the frames to hash."""
    from allsky_camera.camera import config
    from allsky_camera.sim import sim_extras, simulate

    small = config.load_camera(str(SMALL))
    mdm = config.load_camera("MDM")
    streaks = simulate.random_streaks(3, (small.sensor.ny, small.sensor.nx),
                                      np.random.default_rng(5))
    out = [
        ("small-clear", small, dict(seed=1)),
        ("small-patches-streaks", small, dict(seed=2, clouds=simulate.Clouds("patches", 0.3),
                                              streaks=streaks)),
        ("small-band", small, dict(seed=3, clouds=simulate.Clouds("band", 0.1, az_deg=70.0))),
        ("small-half", small, dict(seed=4, clouds=simulate.Clouds("half", 0.4, 2.0))),
        ("small-overcast", small, dict(seed=5, clouds=simulate.Clouds("overcast", 0.05))),
        ("small-thin-moon", small, dict(
            seed=6, clouds=simulate.Clouds("thin", 0.5, 3.0, az_deg=120.0,
                                           transmission_max=0.9),
            sky_light=simulate.SkyLight("moon", 2.0, alt_deg=40.0, az_deg=200.0))),
        ("small-haze-moon-eph", small, dict(seed=7, clouds=simulate.Clouds("haze", 0.8, 1.0),
                                            sky_light=simulate.SkyLight("moon", 1.0))),
        ("small-twilight", small, dict(seed=8, sky_light=simulate.SkyLight("twilight", 30.0))),
        ("small-model-geometry", small, dict(
            seed=9, zenith_shift=(2.5, -1.5), rotation_deg=0.4, ext_coef=0.2,
            colour_term=-0.1, vignetting=(0.1, 0.05), exptime=20.0, sky_zenith_mag=20.0,
            star_vmax=6.0, zp_true=7.3, dateobs="2020-10-12T05:10:00")),
        ("small-extras", small, dict(seed=10, extras=sim_extras.Extras(
            planets=True, dome=sim_extras.Dome(az_deg=150.0, level_adu=40.0),
            text=sim_extras.TextOverlay()))),
        ("mdm-default", mdm, dict(seed=0)),
        ("mdm-quarter-streaks", mdm, dict(seed=11, clouds=simulate.Clouds("quarter", 0.2),
                                          streaks=(simulate.Streak(100, 200, 900, 700, 2.5,
                                                                   30.0),),
                                          star_vmax=5.5)),
    ]
    return out


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"None")
            continue
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def checksums(sim):
    """Dict of checksums of one :class:`SimulatedExposure`."""
    t = sim.truth
    header = "".join(str(card) for card in sim.header.cards).encode()
    out = {
        "image": _digest(sim.image),
        "header": hashlib.sha256(header).hexdigest()[:16],
        "sky": _digest(t.sky_mag, t.sky_adu, t.hot_pixels, t.transmission),
        "stars": _digest(*(np.asarray(t.stars[c]) for c in t.stars.colnames)),
        "scalars": hashlib.sha256(repr((t.zp_true, t.zp_aper_true, t.exptime, t.time.iso_utc,
                                        t.ext_coef, t.colour_term, t.vignetting, t.streaks,
                                        t.model)).encode()).hexdigest()[:16],
    }
    if t.extras is not None:
        e = t.extras
        out["extras"] = _digest(*(np.asarray(e.planets[c]) for c in e.planets.colnames),
                                e.dome, e.text)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the checksums to this JSON file")
    parser.add_argument("--against", help="compare with checksums saved by --out")
    opts = parser.parse_args(argv)
    from allsky_camera.sim import simulate

    result = {}
    for name, camera, kwargs in configurations():
        t0 = time.perf_counter()
        result[name] = checksums(simulate.simulate(camera, **kwargs))
        print(f"{name:24s} {result[name]['image']} {time.perf_counter() - t0:5.2f} s")
    if opts.out:
        Path(opts.out).write_text(json.dumps(result, indent=1))
    status = 0
    if opts.against:
        before = json.loads(Path(opts.against).read_text())
        for name, sums in result.items():
            diff = [k for k in sorted(set(sums) | set(before.get(name, {})))
                    if sums.get(k) != before.get(name, {}).get(k)]
            print(f"{name:24s} {'identical' if not diff else 'DIFFERS in ' + ', '.join(diff)}")
            status |= bool(diff)
        print("all identical" if not status else "some frames differ")
    return status


if __name__ == "__main__":
    sys.exit(main())
