"""ac_night: a simulated night with two bad files, resume after SIGKILL, Dask, watch, page.

The expensive pieces are shared: the night is simulated once and reduced
once with ``--jobs 2`` (the reference); the other runs compare with it.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from allsky_camera.camera import config
from allsky_camera.night import ledger, night_frame, nightsum
from allsky_camera.sim import simulate_night

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "py" / "allsky_camera" / "ac_night.py"
AC_PROC = REPO / "py" / "allsky_camera" / "ac_proc.py"
#: Per-frame products of the test runs: the catalog only (fast).
OPTS = ["--skip_checkplots", "--dont_write_detrended", "--skip_sbmap", "--camera", "MDM", "-q"]
N_FRAMES = 24
CLOUDY = (9, 10, 11, 12)
#: Bad inputs, named to sort among the frames (after the first six).
CORRUPT = "2020_10_09__22_00_01.fits"
TRUNCATED = "2020_10_10__01_00_01.fits"
CHROMIUM = Path("/usr/bin/chromium")


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO / "py"), MPLBACKEND="Agg")


def read_summary(outdir):
    """The night summary, NaN kept as NaN (not masked)."""
    return Table.read(Path(outdir) / nightsum.FITS_NAME, mask_invalid=False)


def night_cmd(inputs, outdir, *extra):
    return [sys.executable, str(SCRIPT), *map(str, inputs), "--outdir", str(outdir), *extra]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """The simulated night on disk: (folder, frames, truth table)."""
    cam = config.load_camera("MDM")
    d = tmp_path_factory.mktemp("night")
    frames = simulate_night.plan_night(
        cam, start_utc=simulate_night.DEMO_START_UTC, n_frames=N_FRAMES, step_min=27.0,
        cloud_frames=CLOUDY, cloud_az_deg=(20.0, 45.0, 70.0, 95.0))
    paths = simulate_night.write_night(cam, d, frames)
    (d / CORRUPT).write_bytes(b"SIMPLE  =   this is not a FITS file" * 200)
    (d / TRUNCATED).write_bytes(paths[5].read_bytes()[:200000])
    return d, frames, Table.read(d / "night-truth.csv")


@pytest.fixture(scope="module")
def reference(night, tmp_path_factory):
    """The night reduced with --jobs 2: (outdir, summary table, stdout)."""
    d, _, _ = night
    out = tmp_path_factory.mktemp("ref")
    r = subprocess.run(night_cmd([d], out, "--jobs", "2", *OPTS), capture_output=True,
                       text=True, env=_env(), timeout=1200)
    assert r.returncode == 0, r.stderr
    return out, read_summary(out), r.stdout


@pytest.mark.slow
def test_one_row_per_input_sorted_bad_files_failed_with_ac_proc_reason(night, reference):
    d, _, _ = night
    out, t, stdout = reference
    assert len(t) == N_FRAMES + 2
    assert sorted(t["file"]) == sorted(p.name for p in d.glob("2020*.fits")
                                       if not p.name.endswith("-truth.fits"))
    failed = t[t["status"] == "failed"]
    assert sorted(failed["file"]) == sorted([CORRUPT, TRUNCATED])
    for row in failed:       # the reason is the line ac_proc.py prints
        r = subprocess.run([sys.executable, str(AC_PROC), str(d / row["file"]), "--outdir",
                            str(out / "proc"), "--camera", "MDM", "-q"],
                           capture_output=True, text=True)
        assert r.returncode == 2
        assert r.stderr.strip() == f"ac_proc.py: error: {row['message']}"
    ok = t[t["status"] != "failed"]
    assert np.all(np.diff(ok["mjd"]) > 0)                 # sorted by time
    csv = Table.read(out / nightsum.CSV_NAME)
    assert list(csv["file"]) == list(t["file"])
    for col in ("file", "date_obs", "mjd", "status", "message", "exptime", "sun_alt",
                "moon_alt", "zp_total", "ext_coef", "transparency", "clear_fraction",
                "sb_zenith", "n_stars", "ast_stat", "ast_rms", "dzenx", "dzeny", "drot",
                "n_streaks"):
        assert col in t.colnames
    assert stdout.strip().splitlines()[-1].startswith(f"ac_night: {N_FRAMES + 2} frames: ")
    assert "2 failed" in stdout and "clear hours" in stdout
    for name in ("night-summary.png", "night-keogram.png", "night-clouds.png", "index.html"):
        assert (out / name).stat().st_size > 1000, name


@pytest.mark.slow
def test_clouds_and_drift_against_truth(night, reference):
    _, frames, truth = night
    _, t, _ = reference
    by_file = {r["file"]: r for r in t}
    rows = [by_file[f] for f in truth["file"]]
    dark = np.array([r["sun_alt"] < -18 for r in rows])
    cloudy = np.isin(np.arange(N_FRAMES), CLOUDY)
    cf = np.array([r["clear_fraction"] for r in rows])
    assert cf[cloudy].max() < cf[dark & ~cloudy].min()
    # the drift reaches 9 px, beyond the 7 px first-pass search of the static
    # template: the night's seeded fits track it
    assert truth["dx"].max() > 1.2 * config.load_camera("MDM").astrometry.search_half_px
    good = np.array([r["status"] == "ok" for r in rows])
    assert good.sum() >= N_FRAMES - 2
    for k, key in (("dx", "dzenx"), ("dy", "dzeny")):
        err = np.array([r[key] for r in rows]) - truth[k]
        assert np.abs(err[good]).max() < 0.2, key
    err = np.array([r["drot"] for r in rows]) - truth["drot"]
    assert np.abs(err[good]).max() < 0.02


@pytest.mark.slow
def test_keogram_follows_the_true_meridian(night, reference):
    """The keogram samples lie on the meridian: where astropy puts stars at
    hour angle 0, north and south of the zenith, in the true camera model."""
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    d, _, truth = night
    out, _, _ = reference
    cam = config.load_camera("MDM")
    entries = ledger.read(out)
    site = cam.site
    loc = EarthLocation(lon=site.lon_deg * u.deg, lat=site.lat_deg * u.deg)
    alt_s, az_s = night_frame.meridian_altaz()
    fitted_rows = [r for r in truth
                   if entries[str((d / r["file"]).resolve())]["result"]["model"] is not None]
    assert len(fitted_rows) >= N_FRAMES - 2
    for row in fitted_rows[::6]:
        res = entries[str((d / row["file"]).resolve())]["result"]
        fitted = type(cam.astrometry.model).from_dict(res["model"])
        true = cam.astrometry.model.replace(x0=row["x0"], y0=row["y0"], rot_deg=row["rot_deg"])
        xk, yk = fitted.altaz_to_xy(alt_s, az_s)
        xt, yt = true.altaz_to_xy(alt_s, az_s)
        assert np.hypot(xk - xt, yk - yt).max() < 0.5
        t = Time(row["dateobs_utc"], scale="utc")
        lst = t.sidereal_time("apparent", longitude=loc.lon).deg
        stars = SkyCoord(ra=[lst] * 4 * u.deg, dec=[80, 55, 10, -20] * u.deg)
        aa = stars.transform_to(AltAz(obstime=t, location=loc))
        xs, ys = true.altaz_to_xy(aa.alt.deg, aa.az.deg)
        for x, y in zip(xs, ys):        # distance to the keogram's polyline
            assert np.hypot(xk - x, yk - y).min() < 3.0
        assert len(res["keogram"]) == len(alt_s)


@pytest.mark.slow
def test_sigkill_three_times_then_resume_gives_the_same_summary(night, reference, tmp_path):
    d, _, _ = night
    ref_out, _, _ = reference
    out = tmp_path / "killed"
    led = out / ledger.LEDGER_NAME

    def lines():
        return led.read_bytes().count(b"\n") if led.exists() else 0

    # kill: as the first frames run, mid-night, and while the pictures are drawn
    for n_done, delay in ((0, 4.0), (9, 0.0), (N_FRAMES + 2, 0.0)):
        p = subprocess.Popen(night_cmd([d], out, "--jobs", "2", *OPTS), env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        t0 = time.monotonic()
        while p.poll() is None and lines() < n_done and time.monotonic() - t0 < 600:
            time.sleep(0.02)
        time.sleep(delay)
        assert p.poll() is None, "the run ended before it could be killed"
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    r = subprocess.run(night_cmd([d], out, "--jobs", "2", *OPTS), capture_output=True,
                       text=True, env=_env(), timeout=1200)
    assert r.returncode == 0, r.stderr
    assert (out / nightsum.CSV_NAME).read_text() == (ref_out / nightsum.CSV_NAME).read_text()
    assert not list(out.glob(".*")), "temporary files left"
    # what the ledger holds decides what a later run redoes
    e = json.loads(led.read_text().splitlines()[-1])
    args = dict(version=e["version"], key=e["key"], outdir=out)
    assert ledger.is_done(e, options=e["options"], **args)
    assert not ledger.is_done(e, options="another", **args)
    assert not ledger.is_done(e, options=e["options"], **dict(args, version="0.0.0"))


@contextlib.contextmanager
def _local_cluster(unset_trim):
    """The address of a LocalCluster of 2 worker processes in a child process;
    ``unset_trim``: started as the README says (MALLOC_TRIM_THRESHOLD_ unset),
    else with distributed's defaults."""
    setup = ("dask.config.set(DASK_WORKER_CONFIG)\n" if unset_trim else "")
    code = ("import dask, time\nfrom dask.distributed import LocalCluster\n"
            "from allsky_camera.night.night_frame import DASK_WORKER_CONFIG\n" + setup +
            "c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, "
            "dashboard_address=None)\nprint(c.scheduler_address, flush=True)\n"
            "time.sleep(900)\n")
    env = _env()
    env.pop(night_frame.MALLOC_TRIM_ENV, None)
    cl = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, env=env,
                          start_new_session=True)
    try:
        address = cl.stdout.readline().strip()
        assert address.startswith("tcp://"), address
        yield address
    finally:
        os.killpg(cl.pid, signal.SIGTERM)
        cl.wait(timeout=60)


def _workers_trim(address):
    """MALLOC_TRIM_THRESHOLD_ of each worker, as distributed itself reports it."""
    from dask.distributed import Client
    with Client(address, timeout="20s") as c:
        return sorted(map(str, c.run(os.getenv, night_frame.MALLOC_TRIM_ENV).values()))


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_summary(night, reference, tmp_path):
    pytest.importorskip("dask.distributed", reason="the [cluster] extra is not installed")
    d, _, _ = night
    ref_out, _, _ = reference
    with _local_cluster(unset_trim=True) as address:
        # the config key of the README does reach the workers
        assert _workers_trim(address) == ["None", "None"]
        out = tmp_path / "dask"
        r = subprocess.run(night_cmd([d], out, "--dask", address, *OPTS),
                           capture_output=True, text=True, env=_env(), timeout=900)
        assert r.returncode == 0, r.stderr
        assert night_frame.MALLOC_TRIM_ENV not in r.stderr, r.stderr
    # the whole night, bad files and drift seeding included, as --jobs 2 gave it
    assert (out / nightsum.CSV_NAME).read_text() == (ref_out / nightsum.CSV_NAME).read_text()
    assert not list(out.glob(".*")), "temporary files left"


@pytest.mark.slow
def test_dask_workers_with_distributeds_malloc_trim_are_warned_about(night, tmp_path):
    pytest.importorskip("dask.distributed", reason="the [cluster] extra is not installed")
    d, _, _ = night
    with _local_cluster(unset_trim=False) as address:
        # distributed's own default (its Nanny's pre-spawn-environ)
        assert _workers_trim(address) == ["65536", "65536"]
        r = subprocess.run(night_cmd([d / CORRUPT], tmp_path / "out", "--dask", address,
                                     *OPTS), capture_output=True, text=True, env=_env(),
                           timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{night_frame.MALLOC_TRIM_ENV}=65536" in r.stderr, r.stderr
    assert "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null" in r.stderr


@pytest.fixture(scope="module")
def watched(night, tmp_path_factory):
    """Three frames copied slowly into a watched folder, then a fourth that first
    lands truncated and is copied again whole; returns (outdir, rc, stdout,
    stderr, names)."""
    d, _, _ = night
    src = sorted(p for p in d.glob("2020*.fits") if not p.name.endswith("-truth.fits")
                 and p.name not in (CORRUPT, TRUNCATED))[14:18]
    inbox = tmp_path_factory.mktemp("inbox")
    out = tmp_path_factory.mktemp("watch_out")
    led = out / ledger.LEDGER_NAME

    def wait_for(n_lines):
        t0 = time.monotonic()
        while time.monotonic() - t0 < 600:
            if led.exists() and led.read_text().count("\n") >= n_lines:
                return
            time.sleep(0.5)
        raise AssertionError(f"the ledger never reached {n_lines} lines")

    (inbox / "skipme.fits").write_bytes(b"vetoed")
    p = subprocess.Popen(night_cmd([inbox], out, "--watch", "--settle", "4", "--jobs", "1",
                                   "--dont_write_detrended", "--camera", "MDM",
                                   "--veto", "skip*"),
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for f in src[:3]:                      # each frame written in 4 pieces, slowly
        data = f.read_bytes()
        part = inbox / f.name
        for k in range(4):
            with open(part, "ab") as fh:
                fh.write(data[k * len(data) // 4:(k + 1) * len(data) // 4])
            time.sleep(0.6)
    wait_for(3)
    data = src[3].read_bytes()             # a transfer that broke off: the frame fails
    (inbox / src[3].name).write_bytes(data[:len(data) // 3])
    wait_for(4)
    time.sleep(1.0)
    (inbox / src[3].name).write_bytes(data)   # copied again whole: taken again
    wait_for(5)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300 and not (out / "index.html").exists():
        time.sleep(0.5)
    time.sleep(2.0)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=300)
    return out, p.returncode, stdout, stderr, [f.name for f in src]


@pytest.mark.slow
def test_watch_takes_frames_once_complete_and_stops_on_sigterm(watched):
    out, rc, stdout, stderr, names = watched
    assert rc == 0, stderr
    t = read_summary(out)
    assert sorted(t["file"]) == sorted(names)             # the vetoed file is not there
    assert list(t["status"]) == ["ok"] * 4, list(t["message"])   # never taken half-written
    assert len(ledger.read(out)) == 4
    entries = [json.loads(ln) for ln in (out / ledger.LEDGER_NAME).read_text().splitlines()]
    assert len(entries) == 5        # each frame reduced once, the rewritten one twice:
    assert [e["result"]["row"]["status"] for e in entries
            if e["path"].endswith(names[3])] == ["failed", "ok"]
    assert not list(out.glob(".part*"))
    assert stdout.strip().splitlines()[-1].startswith("ac_night: 4 frames: 4 ok")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="no /usr/bin/chromium (apt-get install chromium) for the page test")
def test_index_page_in_headless_chromium(watched, tmp_path):
    from html.parser import HTMLParser

    out, rc, *_ = watched
    assert rc == 0
    r = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                        "--allow-file-access-from-files", f"--user-data-dir={tmp_path}",
                        "--virtual-time-budget=5000", "--dump-dom",
                        (out / "index.html").as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.text, self.body, self.links = [], {}, []

        def handle_data(self, data):
            self.text.append(data)

        def handle_starttag(self, tag, attrs):
            if tag == "body":
                self.body = dict(attrs)
            if tag == "a":
                self.links.append(dict(attrs)["href"])

    p = Text()
    p.feed(dom)
    text = " ".join(p.text)
    assert p.body.get("data-pictures") == "3/3", p.body      # every picture loaded
    assert "4 frames: 4 ok, 0 degraded, 0 failed" in text
    t = read_summary(out)
    for f in t["file"]:
        assert f in text
    for href in p.links:                                      # links work from disk
        assert (out / href).exists(), href
    assert sum(h.endswith("-zp.png") for h in p.links) == 4


def test_clear_hours_and_counts():
    rows = [dict(file=f"f{i}", mjd=59000.0 + i / 24.0, status="ok", sun_alt=-30.0,
                 clear_fraction=c) for i, c in enumerate([1.0, 1.0, 0.5, 0.0])]
    # frames 1 h apart: the ends stand for one hour, the middle ones too
    assert nightsum.clear_hours(rows) == pytest.approx(2.5)
    rows[0]["sun_alt"] = -10.0                            # twilight does not count
    assert nightsum.clear_hours(rows) == pytest.approx(1.5)
    rows.append(dict(file="bad", mjd=float("nan"), status="failed", sun_alt=float("nan"),
                     clear_fraction=float("nan")))
    assert nightsum.counts(rows) == {"ok": 4, "degraded": 0, "failed": 1}
    assert nightsum.sort_rows(rows)[-1]["file"] == "bad"


def test_cloud_cells_by_quadrant_and_band():
    alt = np.array([30.0, 30.0, 70.0, 70.0, 30.0])
    az = np.array([10.0, 95.0, 180.0, 260.0, 350.0])
    t = np.array([1.0, 0.1, 1.0, 0.9, 0.0])
    w = np.array([1.0, 1.0, 1.0, 1.0, 3.0])
    c = night_frame.cloud_cells(alt, az, t, w, 0.7)
    names = night_frame.cloud_cell_names()
    got = dict(zip(names, c))
    assert got["N 20-50"] == pytest.approx(0.25)          # weights 1 clear, 3 cloudy
    assert got["E 20-50"] == 0.0 and got["S 50-90"] == 1.0 and got["W 50-90"] == 1.0
    assert np.isnan(got["S 20-50"])


def test_ledger_ignores_a_torn_last_line(tmp_path):
    ledger.append(tmp_path, {"path": "/a", "x": 1})
    with open(tmp_path / ledger.LEDGER_NAME, "a") as fh:
        fh.write('{"path": "/b", "x"')                     # killed mid-write
    assert list(ledger.read(tmp_path)) == ["/a"]
    ledger.append(tmp_path, {"path": "/b", "x": 2})
    assert ledger.read(tmp_path)["/b"]["x"] == 2


def test_inputs_folders_files_and_veto(tmp_path):
    from allsky_camera import ac_night
    for n in ("b.fits", "a.fits.gz", "c.fits.bz2", "a-truth.fits", "notes.txt", "skip1.fits"):
        (tmp_path / n).write_bytes(b"")
    got = [Path(p).name for p in ac_night.find_inputs([tmp_path], veto=["skip*"])]
    assert got == ["a.fits.gz", "b.fits", "c.fits.bz2"]
    assert [Path(p).name for p in ac_night.find_inputs([tmp_path / "notes.txt"])] == [
        "notes.txt"]                                      # a file given is always taken


@pytest.mark.slow
def test_a_night_without_dask_or_terminal_imports_neither(tmp_path):
    bad = tmp_path / "in" / "2020_10_10__00_00_00.fits"
    bad.parent.mkdir()
    bad.write_bytes(b"not FITS")
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(SCRIPT)!r}, {str(bad.parent)!r}, '--outdir', "
        f"{str(tmp_path / 'out')!r}, '--jobs', '1', '-q', '--camera', 'MDM']\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(' '.join(m for m in ('dask', 'distributed', 'tqdm') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "ac_night: 1 frames: 0 ok, 0 degraded, 1 failed; 0.00 clear hours; " \
        + lines[0].split("; ")[-1]
    assert len(lines) == 1                      # no heavy optional module was imported
    t = Table.read(tmp_path / "out" / nightsum.CSV_NAME)
    assert list(t["status"]) == ["failed"] and "not a readable FITS file" in t["message"][0]


@pytest.mark.slow
def test_night_zeropoint_corrects_a_wrong_nominal_zeropoint(night, tmp_path):
    """A camera file whose nominal zeropoint is 0.5 mag too bright makes clear
    frames look 37 % opaque; --night-zp measures transparency against the
    night's clearest dark frames instead, and the clear frames (transmission
    1 in the simulation's truth) read 1."""
    d, _, truth = night
    yaml = (REPO / "etc" / "MDM.yaml").read_text()
    assert "zp_nominal: 5.66 " in yaml
    cam = tmp_path / "MDM_wrong_zp.yaml"
    cam.write_text(yaml.replace("zp_nominal: 5.66 ", "zp_nominal: 6.16 "))
    frames = [d / f for f in truth["file"][:8]]
    assert not any(str(c) == "True" for c in truth["cloudy"][:8])
    med = {}
    for flag in ([], ["--night-zp"]):
        out = tmp_path / f"out{len(flag)}"
        opts = [*OPTS[:-3], "--camera", str(cam), "-q"]
        r = subprocess.run(night_cmd(frames, out, "--jobs", "2", *opts, *flag),
                           capture_output=True, text=True, env=_env(), timeout=900)
        assert r.returncode == 0, r.stderr
        med[bool(flag)] = np.array(read_summary(out)["transparency"])
    expected = 10 ** (-0.4 * 0.5)
    assert np.abs(med[False][1:] - expected).max() < 0.06       # dark frames, nominal zp
    # frames 5-7 have dark frames 4 or more before them (frame 0 is in twilight)
    assert np.abs(med[True][5:] - 1.0).max() < 0.05
    np.testing.assert_array_equal(med[True][:5], med[False][:5])
