"""Hostile inputs and faults: each ends with exit 0 or one line and exit 2, no traceback.

Every case checks the exit status, that a refusal is one line on stderr with no
traceback, that no temporary or lock file is left, and (where a set existed)
that the earlier complete outputs are unchanged.  The references are outside
the project: gzip/bzip2 CRCs (Python's zlib/bz2), FITS checksums (astropy),
the leap-second table (ERFA), the FITS standard's 80-character cards.
"""

import bz2
import errno
import functools
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera import ac_calibrate, ac_proc
from allsky_camera.camera import config
from allsky_camera.flags import FLAGS
from allsky_camera.output import outputs
from allsky_camera.sim import simulate
from allsky_camera.stages import io
from tests_helpers import shared_data

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "py" / "allsky_camera" / "ac_proc.py"
FAST = ["--skip_checkplots", "--skip_sbmap", "-q", "--camera", "MDM"]


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A simulated MDM raw frame on disk (seeded), and its bytes."""
    d = tmp_path_factory.mktemp("base")
    sim = simulate.simulate(config.load_camera("MDM"), seed=3)
    path = d / "base.fits"
    fits.PrimaryHDU(data=sim.image, header=sim.header.copy()).writeto(path, checksum=True)
    return path


def variant(tmp_path, base, name, data=None, cards=(), raw_cards=()):
    """A copy of the base frame named ``name``, with new data and/or cards.

    ``raw_cards`` are 80-character card images written as they are (invalid
    FITS allowed), over blank space before END.
    """
    with fits.open(base) as hl:
        hdr = hl[0].header.copy()
        img = hl[0].data.copy() if data is None else data
    for k, v in cards:
        hdr[k] = v
    path = tmp_path / name
    fits.PrimaryHDU(data=img, header=hdr).writeto(path)
    if raw_cards:
        b = bytearray(path.read_bytes())
        text = b[:2880].decode("ascii")
        end = text.index("END     ")
        new = "".join(c.ljust(80)[:80] for c in raw_cards)
        assert end + len(new) + 80 <= 2880
        b[end:end + len(new) + 80] = (new + "END".ljust(80)).encode("latin-1")
        path.write_bytes(bytes(b))
    return path


def run(argv, capsys):
    rc = ac_proc.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def leftovers(d):
    """Hidden files a run may create: temporaries, staging directories, locks."""
    return sorted(p.name for p in Path(d).iterdir() if p.name.startswith((".part", ".lock")))


def assert_refused(rc, err, match, outdir=None):
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("ac_proc.py: error: ") or lines[0].startswith(
        "ac_calibrate.py: error: ")
    import re
    assert re.search(match, lines[0]), lines[0]
    if outdir is not None and Path(outdir).exists():
        assert leftovers(outdir) == []


def snapshot(d):
    return {p.name: p.read_bytes() for p in Path(d).iterdir() if p.is_file()}


# -------------------------------------------------------- input refusals
@functools.lru_cache(maxsize=2)
def _gz(path):
    """The base frame gzipped (fast level: the CRC is the same at any level)."""
    return gzip.compress(Path(path).read_bytes(), compresslevel=1)


def _corrupt_gz(tmp_path, base):
    b = bytearray(_gz(base))
    b[-8] ^= 0xFF                # the CRC32 of the trailer (RFC 1952)
    p = tmp_path / "crc.fits.gz"
    p.write_bytes(bytes(b))
    return p


def _flipped_gz(tmp_path, base):
    b = bytearray(_gz(base))
    b[len(b) * 2 // 3] ^= 0x55   # a byte of the deflate stream near the end
    p = tmp_path / "flip.fits.gz"
    p.write_bytes(bytes(b))
    return p


def _cut_gz(tmp_path, base):
    p = tmp_path / "cut.fits.gz"
    p.write_bytes(_gz(base)[:-20])
    return p


def _corrupt_bz2(tmp_path, base):
    b = bytearray(bz2.compress(base.read_bytes(), compresslevel=1))
    b[len(b) // 2] ^= 0x55
    p = tmp_path / "bad.fits.bz2"
    p.write_bytes(bytes(b))
    return p


def _huge_header(tmp_path, base):
    p = variant(tmp_path, base, "huge.fits")
    b = bytearray(p.read_bytes())
    text = b[:2880].decode("ascii")
    for key, val in (("NAXIS1", 4_000_000), ("NAXIS2", 3_000_000)):
        i = text.index(f"{key:8s}=")
        b[i:i + 80] = f"{key:8s}= {val:20d}".ljust(80).encode()
    p.write_bytes(bytes(b))
    return p


INPUT_CASES = {
    "gzip CRC": (_corrupt_gz, "corrupt gzip"),
    "gzip stream": (_flipped_gz, "corrupt gzip"),
    "gzip cut": (_cut_gz, "corrupt gzip"),
    "bzip2": (_corrupt_bz2, "corrupt bzip2"),
    "declares more data": (_huge_header, "declares .* bytes of data but the file holds"),
    "directory": (lambda t, b: t, "is a directory"),
    "dev zero": (lambda t, b: Path("/dev/zero"), "not a regular file"),
    "missing": (lambda t, b: t / "nope.fits", "no such file"),
    "year 9999": (lambda t, b: variant(t, b, "y.fits", cards=[("DATE-OBS", "9999-01-01T00:00:00")]),
                  "year 9999 is outside"),
    "not a leap second": (lambda t, b: variant(t, b, "l.fits", cards=[
        ("DATE-OBS", "2017-12-31T16:59:60")]), "leap second"),
    "EXPOSURE = T": (lambda t, b: variant(t, b, "t.fits", cards=[("EXPOSURE", True)]),
                     "EXPOSURE = True is not a number"),
    "EXPOSURE 1e300": (lambda t, b: variant(t, b, "e.fits", cards=[("EXPOSURE", 1e300)]),
                       "exposure time EXPOSURE = 1e.300 s is outside"),
    "all zeros": (lambda t, b: variant(t, b, "z.fits", data=np.zeros((1200, 1600), np.uint8)),
                  "every pixel is zero"),
    "all NaN": (lambda t, b: variant(t, b, "n.fits", data=np.full((1200, 1600), np.nan,
                                                                  np.float32)),
                "every pixel is NaN"),
}


@pytest.mark.parametrize("case", INPUT_CASES)
def test_bad_input_refused_with_one_line(case, base, tmp_path, capsys):
    make, match = INPUT_CASES[case]
    src = tmp_path / "in"
    src.mkdir()
    path = make(src, base)
    out = tmp_path / "out"
    rc, err = run([path, "--outdir", out, *FAST], capsys)
    assert_refused(rc, err, match, out)
    assert not out.exists() or list(out.iterdir()) == []


def test_good_gzip_and_bzip2_are_read(base, tmp_path):
    cam = config.load_camera("MDM")
    ref = io.read_exposure(base, cam).raw
    for name, data in (("a.fits.gz", _gz(base)),
                       ("a.fits.bz2", bz2.compress(base.read_bytes(), compresslevel=1))):
        (tmp_path / name).write_bytes(data)
        np.testing.assert_array_equal(io.read_exposure(tmp_path / name, cam).raw, ref)


def test_dev_zero_is_refused_without_reading(tmp_path):
    from allsky_camera.exceptions import InputFileError
    t0 = time.perf_counter()
    with pytest.raises(InputFileError, match="not a regular file"):
        io.read_exposure("/dev/zero", config.load_camera("MDM"))
    assert time.perf_counter() - t0 < 1.0


# ------------------------------------------------------ camera configurations
def _yaml(tmp_path, edit):
    import yaml
    d = config.camera_to_dict(config.load_camera("MDM"))
    d = edit(d)
    p = tmp_path / "cam.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


CONFIG_CASES = {
    "top-level list": (lambda d: [d], "top level must be a mapping"),
    "search_half_px -3": (lambda d: {**d, "astrometry": {**d["astrometry"],
                                                         "search_half_px": -3}},
                          r"astrometry.search_half_px = -3 is outside \[1, inf\)"),
    "saturation nan": (lambda d: {**d, "sensor": {**d["sensor"], "saturation_adu": float("nan")}},
                       "sensor.saturation_adu = nan is not a finite number"),
    "box_half_px 0": (lambda d: {**d, "centroid": {**d["centroid"], "box_half_px": 0}},
                      r"centroid.box_half_px = 0 is outside \[1, inf\)"),
    "latitude 134": (lambda d: {**d, "site": {**d["site"], "lat_deg": 134.0}},
                     r"site.lat_deg = 134.0 is outside \[-90, 90\]"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_camera_yaml_refused(case, base, tmp_path, capsys):
    edit, match = CONFIG_CASES[case]
    cam = _yaml(tmp_path, edit)
    rc, err = run([base, "--outdir", tmp_path / "out", "--camera", cam, "-q"], capsys)
    assert_refused(rc, err, match, tmp_path / "out")


def test_stock_configurations_are_within_range():
    for name in config.known_cameras():
        config.load_camera(name)        # raises if a value is out of its range
    keys = {k for k, _ in config._numbers(config.load_camera("MDM"), "")}
    assert set(config.RANGES) <= keys, "RANGES names keys the configuration no longer has"


# ------------------------------------------------------------- file names
@pytest.mark.slow
@pytest.mark.parametrize("name", ["café_ü.fits", "new\nline.fits", "price$1$x_{2}.fits"])
def test_strange_file_names(name, base, tmp_path, capsys):
    path = variant(tmp_path, base, name)
    out = tmp_path / "out"
    rc, err = run([path, "--outdir", out, "-q", "--camera", "MDM", "--skip_sbmap"], capsys)
    assert rc == 0, err
    assert "Traceback" not in err
    stem = io.output_stem(name)
    for kind in ("cat.fits", "detrended.fits", "zp.png", "quiver.png"):
        assert (out / f"{stem}-{kind}").is_file()
    rawfile = fits.getheader(out / f"{stem}-cat.fits", 1)["RAWFILE"]
    assert rawfile == io.fits_text(name) and rawfile.isascii() and "\n" not in rawfile
    assert leftovers(out) == []


def test_fits_text_is_printable_ascii():
    assert io.fits_text("a$b") == "a$b"
    assert io.fits_text("café\n") == "caf\\xe9\\n"
    assert all(" " <= c <= "~" for c in io.fits_text("日本\t\x00"))


def test_stem_whose_temporary_name_is_too_long(base, tmp_path, capsys):
    limit = io.name_max(tmp_path)
    stem = "s" * (limit - len("-detrended.fits"))      # the longest product just fits
    path = variant(tmp_path, base, stem[: limit - 5] + ".fits")
    stem = io.output_stem(path)
    out = tmp_path / "out"
    rc, err = run([path, "--outdir", out, *FAST], capsys)
    assert rc == 0, err
    assert (out / f"{stem}-detrended.fits").is_file() and leftovers(out) == []


def test_stem_whose_product_name_is_too_long(base, tmp_path, capsys):
    limit = io.name_max(tmp_path)
    path = variant(tmp_path, base, "L" * (limit - 5) + ".fits")
    rc, err = run([path, "--outdir", tmp_path / "out", *FAST], capsys)
    assert_refused(rc, err, "more than the .* file system allows", tmp_path / "out")


# ------------------------------------------------------------ header cards
def test_unparsable_raw_cards_are_fixed_or_dropped(base, tmp_path, capsys):
    path = variant(tmp_path, base, "cards.fits", raw_cards=[
        "BADNUM  = 12.3.4 / not a number", "BADSTR  = 'unterminated", "lower   = 3",
        "BAD=KEY = 3"])
    out = tmp_path / "out"
    rc, err = run([path, "--outdir", out, *FAST], capsys)
    assert rc == 0, err
    assert "Traceback" not in err and "BAD=KEY dropped" in err   # said in the log ...
    h = fits.getheader(out / "cards-detrended.fits")
    hist = " ".join(str(v) for v in h["HISTORY"])                # ... and in the header
    assert "BAD=KEY dropped" in hist and "BADNUM fixed" in hist and "LOWER fixed" in hist
    assert h["BADNUM"] == "12.3.4" and h["LOWER"] == 3 and "BADSTR" in h
    assert h["EXPOSURE"] == 60.0


def test_fresh_checksums_and_utc_date(base, tmp_path, capsys):
    assert "CHECKSUM" in fits.getheader(base)      # the raw file has its own
    out = tmp_path / "out"
    rc, err = run([base, "--outdir", out, *FAST], capsys)
    assert rc == 0, err
    for name in ("base-detrended.fits", "base-cat.fits"):
        with fits.open(out / name, checksum=True) as hl:
            for hdu in hl:
                assert hdu.verify_checksum() == 1 and hdu.verify_datasum() == 1
    h = fits.getheader(out / "base-detrended.fits")
    raw = fits.getheader(base)
    # MDM's clock is UTC-7 (etc/MDM.yaml): 21:38:23 local is 04:38:23 UTC next day
    assert raw["DATE-OBS"] == "2020-10-11T21:38:23"
    assert h["DATE-OBS"] == "2020-10-12T04:38:23.000"
    assert h["CAMDATE"] == raw["DATE-OBS"]


def test_leap_second_is_accepted(base, tmp_path, capsys):
    # 2016-12-31 ended with a leap second (IERS Bulletin C 52); MDM's clock is UTC-7
    path = variant(tmp_path, base, "leap.fits", cards=[("DATE-OBS", "2016-12-31T16:59:60.5")])
    out = tmp_path / "out"
    rc, err = run([path, "--outdir", out, *FAST], capsys)
    assert rc == 0, err
    assert fits.getheader(out / "leap-detrended.fits")["DATE-OBS"] == "2016-12-31T23:59:60.500"


# ----------------------------------------------------- outputs and faults
@pytest.fixture
def complete_set(base, tmp_path, capsys):
    out = tmp_path / "out"
    rc, err = run([base, "--outdir", out, "-q", "--camera", "MDM", "--skip_sbmap"], capsys)
    assert rc == 0, err
    before = snapshot(out)
    assert len(before) == 4
    return out, before


def test_disk_full_while_writing_png_keeps_earlier_set(complete_set, base, capsys,
                                                       monkeypatch):
    from matplotlib.figure import Figure
    out, before = complete_set

    def full(self, fname, **kw):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(Figure, "savefig", full)
    rc, err = run([base, "--outdir", out, "-q", "--camera", "MDM", "--skip_sbmap",
                   "--overwrite"], capsys)
    assert_refused(rc, err, "zp.png: cannot write .*No space left", out)
    assert snapshot(out) == before


def test_failed_overwrite_keeps_earlier_set(complete_set, base, capsys, monkeypatch):
    out, before = complete_set

    def broken(*a, **k):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(fits.HDUList, "writeto", broken)
    rc, err = run([base, "--outdir", out, "-q", "--camera", "MDM", "--skip_sbmap",
                   "--overwrite"], capsys)
    assert_refused(rc, err, "cannot write", out)
    assert snapshot(out) == before


def test_product_path_that_is_a_directory(base, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "base-cat.fits").mkdir(parents=True)
    for extra in ([], ["--overwrite"]):
        rc, err = run([base, "--outdir", out, *FAST, *extra], capsys)
        assert_refused(rc, err, "base-cat.fits: exists", out)
    assert (out / "base-cat.fits").is_dir()


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_of_a_live_run_refuses(base, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import json
        import socket
        (out / ".lock.base").write_text(json.dumps({
            "pid": sleeper.pid, "host": socket.gethostname(), "state": "writing",
            "staging": f".part{sleeper.pid}.base", "files": []}))
        rc, err = run([base, "--outdir", out, *FAST], capsys)
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert f"another run (pid {sleeper.pid})" in err
        assert not (out / "base-cat.fits").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_leftovers_of_a_killed_run_are_removed(base, tmp_path, capsys):
    import json
    import socket
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    (out / ".lock.base").write_text(json.dumps({
        "pid": dead, "host": socket.gethostname(), "state": "writing",
        "staging": f".part{dead}.base", "files": []}))
    (out / f".part{dead}.base").mkdir()
    (out / f".part{dead}.base" / "base-cat.fits").write_bytes(b"half")
    (out / f".part{dead}.other-zp.png").write_bytes(b"half")
    rc = ac_proc.main([str(base), "--outdir", str(out), "--skip_checkplots", "--skip_sbmap",
                       "--camera", "MDM", "-q"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"run {dead}" in err and "killed" in err and "removed 2 temporary" in err
    assert leftovers(out) == [] and (out / "base-cat.fits").is_file()


def test_killed_while_publishing_is_completed(base, tmp_path, capsys):
    """A run killed between its renames: the next one finishes publishing its set."""
    import json
    import socket
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    staging = out / f".part{dead}.base"
    staging.mkdir()
    (staging / "base-zp.png").write_bytes(b"new zp")
    (out / "base-cat.fits").write_bytes(b"new cat")         # renamed before the kill
    (out / ".lock.base").write_text(json.dumps({
        "pid": dead, "host": socket.gethostname(), "state": "committing",
        "staging": staging.name, "files": ["base-cat.fits", "base-zp.png"]}))
    ac_proc.setup_logging(False, False)       # log to this test's stderr
    with outputs.OutputSet(out, "base", [], overwrite=False) as oset:
        oset.commit()
    assert (out / "base-zp.png").read_bytes() == b"new zp"
    assert (out / "base-cat.fits").read_bytes() == b"new cat"
    err = capsys.readouterr().err
    assert f"run {dead} was killed while publishing" in err and "1 file(s) renamed" in err
    assert leftovers(out) == []


# ----------------------------------------------------------------- signals
def _start(args, out):
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO / "py")}
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args), "--outdir", str(out)],
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_staging(proc, out, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if out.exists() and any(p.name.startswith(f".part{proc.pid}.") and p.is_dir()
                                for p in out.iterdir()):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_signals_clean_up(sig, base, tmp_path):
    out = tmp_path / "out"
    proc = _start([base, "-q", "--camera", "MDM", "--skip_sbmap"], out)
    assert _wait_staging(proc, out), proc.communicate()[1]
    num = getattr(signal, sig)
    proc.send_signal(num)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + num, err
    assert err.strip().splitlines() == [
        f"ac_proc.py: error: base.fits: interrupted by {sig}; no partial output was left"]
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_sigkill_leftovers_removed_by_next_run(base, tmp_path):
    out = tmp_path / "out"
    proc = _start([base, "-q", "--camera", "MDM", "--skip_sbmap"], out)
    assert _wait_staging(proc, out), proc.communicate()[1]
    proc.kill()
    proc.communicate(timeout=60)
    assert leftovers(out) != []
    again = _start([base, "-q", "--camera", "MDM", "--skip_sbmap"], out)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"run {proc.pid}" in err and "killed" in err
    assert leftovers(out) == [] and (out / "base-cat.fits").is_file()


# ------------------------------------------------------------- logging
def test_quiet_warnings_name_the_frame_and_no_numpy_warnings(base, tmp_path, capsys):
    """A constant frame: nothing to measure, warnings only, each naming the frame."""
    path = variant(tmp_path, base, "flat.fits", data=np.full((1200, 1600), 40, np.uint8))
    rc, err = run([path, "--outdir", tmp_path / "out", *FAST], capsys)
    assert rc == 0, err
    lines = err.strip().splitlines()
    assert lines, "a frame without stars must warn"
    for line in lines:
        assert line.startswith("WARNING ") and "flat.fits: " in line, line
    assert "RuntimeWarning" not in err and "Traceback" not in err


@pytest.mark.parametrize("fill", ["nan_half", "constant_float"])
def test_degenerate_frames_give_no_numpy_warnings(fill, base, tmp_path, capsys):
    img = np.full((1200, 1600), 30.0, np.float32)
    if fill == "nan_half":
        with fits.open(base) as hl:
            img = hl[0].data.astype(np.float32)
        img[:, :800] = np.nan          # the sky's left half; the dark region is kept
    path = variant(tmp_path, base, f"{fill}.fits", data=img)
    rc, err = run([path, "--outdir", tmp_path / "out", *FAST], capsys)
    assert rc == 0, err
    assert "RuntimeWarning" not in err and "Traceback" not in err


# ------------------------------------------------------- self-describing
@pytest.mark.slow
def test_no_card_is_truncated_in_any_product(base, tmp_path, capsys):
    import warnings
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc, err = run([base, "--outdir", out, "-q", "--camera", "MDM", "--write_healpix",
                       "--write_sbmap", "--detect_streaks"], capsys)
    assert rc == 0, err
    assert "cut to" not in err and "truncated" not in err
    cat = fits.open(out / "base-cat.fits")
    h = cat[1].header
    from astropy.table import Table
    t = Table.read(out / "base-cat.fits")
    for i, name in enumerate(t.colnames, start=1):
        if t[name].description:
            assert h[f"TCOMM{i}"] == t[name].description
    for name, (value, desc) in FLAGS.items():
        assert h[f"FLAGB{value.bit_length() - 1:02d}"] == name
        assert h.comments[f"FLAGB{value.bit_length() - 1:02d}"] == desc
    for f in out.glob("*.fits"):
        with fits.open(f) as hl:
            for hdu in hl:
                for card in hdu.header.cards:
                    assert len(card.image) % 80 == 0
        with fits.open(f) as hl:
            hl.verify("exception")
    from allsky_camera.stages.healpix import EXTENSIONS
    with fits.open(out / "base-healpix.fits") as hl:
        for name in EXTENSIONS:
            assert "equatorial" in hl[name].header.comments["COORDSYS"]
            assert hl[name].header.comments["COORDSYS"].endswith("(az, alt)")
    cat.close()


# ------------------------------------------------------------ ac_calibrate
def calib(argv, capsys):
    rc = ac_calibrate.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


CAL_CASES = {
    "string OBSLAT": ([("OBSLAT", "north"), ("OBSLONG", -111.6)], [],
                      "OBSLAT = 'north' is not a number"),
    "string OBSALT": ([("OBSLAT", 31.9), ("OBSLONG", -111.6), ("OBSALT", "high")], [],
                      "OBSALT = 'high' is not a number"),
    "string DATAMAX": ([("DATAMAX", "full")], ["--lat", "31.9", "--lon", "-111.6"],
                       "DATAMAX = 'full' is not a number"),
    "--lat 134": ([], ["--lat", "134", "--lon", "-111.6"], r"site.lat_deg = 134.0 is outside"),
    "OBSLAT 134": ([("OBSLAT", 134.0), ("OBSLONG", -111.6)], [], "OBSLAT.*134.0 is outside"),
    "--utc-offset 30": ([], ["--lat", "31.9", "--lon", "-111.6", "--utc-offset", "30"],
                        r"--utc-offset: header.utc_offset_hours = 30.0 is outside \[-14, 14\]"),
}


@pytest.mark.parametrize("case", CAL_CASES)
def test_calibrate_bad_values(case, base, tmp_path, capsys, monkeypatch):
    from allsky_camera.camera import calibrate
    cards, extra, match = CAL_CASES[case]

    def no_solve(*a, **k):           # the case must be refused before the solve
        raise AssertionError("solved")
    monkeypatch.setattr(calibrate, "solve", no_solve)
    frame = variant(tmp_path, base, "cal.fits", cards=cards)
    out = tmp_path / "etc" / "NEW.yaml"
    rc, err = calib([frame, "--output", out, *extra], capsys)
    assert_refused(rc, err, match)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_calibrate_masks_frame_of_another_size(base, tmp_path, capsys):
    small = variant(tmp_path, base, "small.fits", data=np.ones((100, 100), np.uint8))
    out = tmp_path / "etc" / "NEW.yaml"
    rc, err = calib([base, "--masks", small, "--output", out, "--lat", "31.9", "--lon",
                     "-111.6"], capsys)
    assert_refused(rc, err, "small.fits: --masks frame is 100x100 pixels")
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("exc,status", [(KeyboardInterrupt(), 130)])
def test_calibrate_interrupted(exc, status, base, tmp_path, capsys, monkeypatch):
    from allsky_camera.camera import calibrate

    def interrupted(*a, **k):
        raise exc
    monkeypatch.setattr(calibrate, "solve", interrupted)
    out = tmp_path / "etc" / "NEW.yaml"
    rc, err = calib([base, "--output", out, "--lat", "31.9", "--lon", "-111.6"], capsys)
    assert rc == status
    assert err.strip().splitlines() == [
        "ac_calibrate.py: error: interrupted by SIGINT; no file was written"]
    assert list(out.parent.iterdir()) == []


def test_calibrate_failure_writes_nothing_and_names_the_frame(base, tmp_path, capsys,
                                                              monkeypatch):
    """A zeropoint that cannot be measured: no YAML, no masks, the real frame named."""
    from allsky_camera.camera import calibrate
    from allsky_camera.stages import photometry
    cam = config.load_camera("MDM")

    class Sol:        # the solution of the frame's own camera (what a solve would find)
        model = cam.astrometry.model
        circle = (802.0, 511.0, 640.0)
        n_matched, rms_px = 100, 0.3
    monkeypatch.setattr(calibrate, "solve", lambda *a, **k: Sol)
    real = photometry.zeropoint
    monkeypatch.setattr(photometry, "zeropoint", lambda *a, **k: _no_zp(real(*a, **k)))
    out = tmp_path / "etc" / "NEW.yaml"
    rc, err = calib([base, "--output", out, "--lat", "31.9599", "--lon", "-111.5997",
                     "--elev", "2100", "--exptime-card", "EXPOSURE", "--utc-offset", "-7"],
                    capsys)
    assert_refused(rc, err, r"base\.fits: no zeropoint could be measured")
    assert "calibration.fits" not in err
    assert list(out.parent.iterdir()) == []


def _no_zp(zp):
    import dataclasses
    return dataclasses.replace(zp, zp_aper=float("nan"), zp_total=float("nan"),
                               n_stars=0, message="too few stars (test)")


def test_calibrate_refuses_to_replace_existing_masks(base, tmp_path, capsys):
    out = tmp_path / "etc" / "NEW.yaml"
    out.parent.mkdir()
    (out.parent / "NEW_bpm.fits").write_bytes(b"old mask")
    rc, err = calib([base, "--output", out, "--lat", "31.9", "--lon", "-111.6"], capsys)
    assert_refused(rc, err, "NEW_bpm.fits: output exists already")
    assert (out.parent / "NEW_bpm.fits").read_bytes() == b"old mask"
    assert sorted(p.name for p in out.parent.iterdir()) == ["NEW_bpm.fits"]


# ------------------------------------------------- references outside the project
DCT = shared_data("dct")


@pytest.mark.slow
@pytest.mark.realdata
def test_real_bzip2_frame_reads_as_astropy_reads_it():
    """The CRC-checked read of a real DCT .fits.bz2 gives astropy's own pixels."""
    if not DCT.is_dir():
        pytest.skip(f"the real DCT frames are not here ({DCT}): skipped")
    path = DCT / "005.fits.bz2"
    data, header = io._read_image_hdu(path)
    np.testing.assert_array_equal(data, fits.getdata(path))
    assert header["NAXIS1"] == data.shape[1]


@pytest.mark.parametrize("text,offset,utc", [
    ("2016-12-31T23:59:60.5", 0.0, "2016-12-31T23:59:60.5"),
    ("2016-12-31T16:59:60.25", -7.0, "2016-12-31T23:59:60.25"),
    ("2020-10-11T21:38:23.1", -7.0, "2020-10-12T04:38:23.1"),
    ("2020-10-11 21:38:23.12Z", 0.0, "2020-10-11T21:38:23.12"),
    ("2020-10-11T21:38:23+02:00", 0.0, "2020-10-11T19:38:23"),
    ("2015-06-30T23:59:60", 0.0, "2015-06-30T23:59:60")])
def test_times_agree_with_astropy(text, offset, utc):
    """UTC and TT against astropy.time (its own leap-second table), leap seconds included."""
    from astropy.time import Time

    from allsky_camera.camera import coords
    t = coords.parse_time(text, offset)
    ref = Time(utc, scale="utc")
    dt_s = (t.tt1 - ref.tt.jd1 + (t.tt2 - ref.tt.jd2)) * 86400.0
    assert abs(dt_s) < 1e-4
    assert t.iso_utc[:19] == ref.isot[:19]


def test_dev_zero_refused_when_the_camera_is_chosen_from_the_header(tmp_path, capsys):
    rc, err = run(["/dev/zero", "--outdir", tmp_path / "out", "-q"], capsys)
    assert_refused(rc, err, "/dev/zero: is not a regular file")


@pytest.mark.parametrize("year", [2030, 2099])
def test_future_years_give_no_erfa_warnings(year):
    """After ERFA's leap-second table ("dubious year"), positions come without warnings."""
    import warnings

    from allsky_camera.camera import coords
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = coords.parse_time(f"{year}-06-01T03:00:00")
        site = coords.Site(-111.6, 31.96, 2100.0, 0.0)
        alt, az = coords.radec_to_altaz(np.array([10.0]), np.array([20.0]), t, site)
        coords.sun_moon_altaz(t, site)
    assert np.isfinite(alt).all() and np.isfinite(az).all()


@pytest.mark.parametrize("cards,warned", [
    ({"OBSLAT": 134.0, "OBSLONG": -111.6, "OBSALT": 2000.0}, "OBSLAT = 134.0"),
    ({"OBSLAT": "north", "OBSLONG": -111.6}, "OBSLAT = 'north'"),
    ({"OBSLAT": 35.1, "OBSLONG": -111.4, "OBSALT": 1e9}, "OBSALT = 1000000000.0"),
    ({"OBSLAT": 35.1, "OBSLONG": -111.4, "OBSALT": 2200.0}, None)])
def test_header_site_out_of_range_falls_back_to_the_configuration(cards, warned, caplog):
    import dataclasses

    from allsky_camera.camera import coords
    cfg = dataclasses.replace(config.load_camera("DCT").site, prefer_header=True)
    site, source = coords.site_from_config(cfg, fits.Header(cards))
    if warned is None:
        assert source == "header" and (site.lat_deg, site.height_m) == (35.1, 2200.0)
        assert not caplog.records
    else:
        assert source == "config" and site.lat_deg == cfg.lat_deg
        assert warned in caplog.text and "using the camera configuration's site" in caplog.text


@pytest.mark.slow
def test_two_runs_on_the_same_outputs(base, tmp_path, capsys):
    """The second run refuses while the first holds the set's lock; the first completes."""
    out = tmp_path / "out"
    first = _start([base, "-q", "--camera", "MDM", "--skip_sbmap", "--skip_checkplots"], out)
    assert _wait_staging(first, out), first.communicate()[1]
    first.send_signal(signal.SIGSTOP)          # hold it inside its output set
    try:
        rc, err = run([base, "--outdir", out, *FAST, "--overwrite"], capsys)
        assert_refused(rc, err, f"another run \\(pid {first.pid}\\) is writing the outputs")
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert (out / "base-cat.fits").is_file() and leftovers(out) == []


def test_library_warnings_name_the_frame(base, tmp_path, capsys, monkeypatch):
    """An astropy warning raised during a run is logged with the frame's name."""
    import warnings

    from astropy.utils.exceptions import AstropyUserWarning

    from allsky_camera import reduction
    real = reduction.reduce_exposure

    def noisy(*a, **k):
        warnings.warn("a library complains", AstropyUserWarning, stacklevel=1)
        return real(*a, **k)
    monkeypatch.setattr(reduction, "reduce_exposure", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        rc, err = run([base, "--outdir", tmp_path / "out", *FAST], capsys)
    assert rc == 0, err
    line, = [x for x in err.splitlines() if "a library complains" in x]
    assert line.startswith("WARNING py.warnings: base.fits: ")


def test_daylight_frame_claims_no_zeropoint(tmp_path, capsys):
    """Stars that seem to match at local noon (Sun near +81 deg) mean a wrong
    clock or site: the run warns, naming the frame, and claims no zeropoint,
    transparency or clear fraction (the Sun's altitude is checked against
    astropy in tests/test_coords.py)."""
    camera = config.load_camera("MDM")
    sim = simulate.simulate(camera, seed=3, dateobs="2020-06-21T12:20:00")
    path = tmp_path / "noon.fits"
    fits.PrimaryHDU(data=sim.image, header=sim.header.copy()).writeto(path)
    rc, err = run([path, "--outdir", tmp_path, *FAST], capsys)
    assert rc == 0
    h = fits.getheader(tmp_path / "noon-cat.fits", 1)
    assert h["SUNALT"] > 79 and h["SKYSTAT"] == "day"
    assert h["ZPTOTAL"] == "NaN" and h["CLEARFRC"] == "NaN" and "daylight" in h["ZPMSG"]
    assert "noon.fits" in err and "daylight" in err and "Traceback" not in err
