"""io: reading raw frames of any BITPIX and compression, the bad-input errors."""

import bz2
import gzip

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera.camera import config
from allsky_camera.exceptions import InputFileError, OutputError
from allsky_camera.stages import io


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


def mdm_header(**cards):
    h = fits.Header()
    h["EXPOSURE"] = 60.0
    h["DATE-OBS"] = "2020-10-11T21:38:23"
    for k, v in cards.items():
        h[k.replace("_", "-")] = v
    return h


def frame(dtype=np.uint8, value=20):
    data = np.full((1200, 1600), value, dtype=dtype)
    data[600, 800] = value + 50
    return data


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32,
                                   np.float64])
def test_reads_any_bitpix(tmp_path, camera, dtype):
    p = tmp_path / "x.fits"
    fits.PrimaryHDU(frame(dtype), header=mdm_header()).writeto(p)
    e = io.read_exposure(p, camera)
    assert e.raw.shape == (1200, 1600)
    assert e.raw[600, 800] == 70 and e.raw[0, 0] == 20   # BZERO applied for uint16
    assert e.exptime == 60.0
    assert e.time.iso_utc == "2020-10-12T04:38:23.000"
    assert e.stem == "x"


@pytest.mark.parametrize("opener,suffix", [(gzip.open, ".fits.gz"), (bz2.open, ".fits.bz2")])
def test_reads_compressed(tmp_path, camera, opener, suffix):
    p = tmp_path / f"2020_10_11__21_38_23{suffix}"
    raw = tmp_path / "plain.fits"
    fits.PrimaryHDU(frame(np.uint16), header=mdm_header()).writeto(raw)
    with opener(p, "wb") as fh:
        fh.write(raw.read_bytes())
    e = io.read_exposure(p, camera)
    assert e.raw[600, 800] == 70
    assert e.stem == "2020_10_11__21_38_23"


def write(tmp_path, data=None, header=None, name="bad.fits"):
    p = tmp_path / name
    fits.PrimaryHDU(frame() if data is None else data,
                    header=mdm_header() if header is None else header).writeto(p)
    return p


@pytest.mark.parametrize("make,match", [
    (lambda t: t / "missing.fits", "no such file"),
    (lambda t: (t / "text.fits").write_text("hello") and t / "text.fits", "not a readable FITS"),
    (lambda t: write(t, data=np.ones((100, 80), np.uint8)), "80x100 pixels but camera MDM"),
    (lambda t: write(t, header=fits.Header({"DATE-OBS": "2020-10-11T21:38:23"})),
     "EXPOSURE.*missing"),
    (lambda t: write(t, header=mdm_header(EXPOSURE="long")), "not a number"),
    (lambda t: write(t, header=mdm_header(EXPOSURE=0.0)), r"is outside \(0, 3600\] s"),
    (lambda t: write(t, header=mdm_header(EXPOSURE=-3.0)), r"is outside \(0, 3600\] s"),
    (lambda t: write(t, header=fits.Header({"EXPOSURE": 60.0})), "DATE-OBS.*missing"),
    (lambda t: write(t, header=mdm_header(DATE_OBS="last night")), "not an ISO 8601"),
    (lambda t: write(t, data=np.zeros((1200, 1600), np.uint8)), "every pixel is zero"),
    (lambda t: write(t, data=np.full((1200, 1600), np.nan, np.float32)), "NaN"),
])
def test_bad_input_messages(tmp_path, camera, make, match):
    p = make(tmp_path)
    with pytest.raises(InputFileError, match=match) as exc:
        io.read_exposure(p, camera)
    msg = str(exc.value)
    assert str(p) in msg and "\n" not in msg


def test_truncated_file(tmp_path, camera):
    p = write(tmp_path)
    data = p.read_bytes()
    (tmp_path / "cut.fits").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated|not a readable"):
        io.read_exposure(tmp_path / "cut.fits", camera)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.fits"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_outdir_checks(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(OutputError, match="not a directory|cannot create"):
        io.check_outdir(f)
    with pytest.raises(OutputError, match="exists already"):
        io.check_not_existing([f], overwrite=False)
    io.check_not_existing([f], overwrite=True)


@pytest.mark.parametrize("name,stem", [("a/b/2020_10_11__21_38_23.fits", "2020_10_11__21_38_23"),
                                       ("x.fits.bz2", "x"), ("x.FITS.GZ", "x"), ("x.fit", "x")])
def test_output_stem(name, stem):
    assert io.output_stem(name) == stem
