"""End to end: the pipeline on seeded simulated MDM frames, against their truth."""

import argparse
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from allsky_camera import ac_proc
from allsky_camera.camera import config
from allsky_camera.sim import simulate
from allsky_camera.stages import io

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
SCRIPT = REPO / "py" / "allsky_camera" / "ac_proc.py"
SHIFT, ROT = (2.5, -1.5), 0.3


def options(outdir, *extra):
    return ac_proc.build_parser().parse_args(["x.fits", "--outdir", str(outdir), *extra])


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


@pytest.fixture(scope="module", params=[11, 12])
def reduced(request, camera, tmp_path_factory):
    """A perturbed frame, reduced in-process; returns (result, truth, outdir)."""
    out = tmp_path_factory.mktemp(f"run{request.param}")
    sim = simulate.simulate(camera, seed=request.param, zenith_shift=SHIFT, rotation_deg=ROT)
    raw = sim.image.copy()
    exp = io.exposure_from_data(str(out / f"sim{request.param}.fits"), sim.image, sim.header,
                                camera)
    res = ac_proc.process(exp, camera, options(out))
    np.testing.assert_array_equal(sim.image, raw)          # the input is never modified
    return res, sim.truth, out


def matched_truth(cat, truth):
    index = {h: i for i, h in enumerate(truth.stars["HIP"])}
    return truth.stars[np.array([index[h] for h in cat["HIP"]])]


def isolated_in_truth(tt, truth, radius_px, dv):
    """No rendered star (catalog or fainter) within radius_px, unless dv mag fainter."""
    from allsky_camera.stages.centroid import nearest_other
    x, y, v = (np.asarray(truth.stars[k]) for k in ("x", "y", "VMAG"))
    ok = np.ones(len(tt), bool)
    for r in np.arange(1.0, radius_px + 1.0):   # nearest within growing radii
        idx, _ = nearest_other(np.asarray(tt["x"]), np.asarray(tt["y"]), x, y, r)
        idx2 = np.where(idx >= 0, idx, 0)
        other = (idx >= 0) & (np.hypot(x[idx2] - tt["x"], y[idx2] - tt["y"]) > 1e-6)
        ok &= ~(other & (v[idx2] - np.asarray(tt["VMAG"]) < dv))
    return ok


def test_zeropoints_against_truth(reduced):
    res, truth, _ = reduced
    zp = res["zeropoint"]
    assert abs(zp.zp_total - truth.zp_true) < 0.03
    # both at the zenith (X = 1): the aperture zeropoint of the zenith PSF
    assert abs(zp.zp_aper - truth.zp_aper_true) < 0.03
    assert zp.model_fit.k_source == "fitted" and abs(zp.model.k - truth.ext_coef) < 0.03


def test_centroids_of_isolated_bright_stars(reduced):
    res, truth, _ = reduced
    cat = res["catalog"]
    tt = matched_truth(cat, truth)
    sel = ((cat["flags"] == 0) & (cat["VMAG"] < 5) & ~tt["saturated"]
           & isolated_in_truth(tt, truth, 6, 2.5))
    assert sel.sum() > 150
    d = np.hypot(cat["xcentroid"] - tt["x"], cat["ycentroid"] - tt["y"])[sel]
    assert np.sqrt(np.mean(d ** 2)) < 0.15


def test_astrometric_fit_recovers_injected_geometry(reduced):
    res, truth, _ = reduced
    sol = res["solution"]
    assert abs(sol.model.x0 - truth.model.x0) < 0.2
    assert abs(sol.model.y0 - truth.model.y0) < 0.2
    assert abs(sol.model.rot_deg - truth.model.rot_deg) < 0.02
    assert sol.template_rms_px > 3 * sol.fit.rms_px


def test_sky_brightness_map(reduced):
    res, truth, _ = reduced
    sb = res["skymap"].mag
    ok = np.isfinite(sb) & np.isfinite(truth.sky_mag)
    assert ok.sum() > 0.7 * np.pi * 500 ** 2
    assert abs(np.median(sb[ok] - truth.sky_mag[ok])) < 0.05


def test_catalog_file_describes_itself(reduced):
    res, truth, out = reduced
    path = next(out.glob("*-cat.fits"))
    cat = Table.read(path)
    h = fits.getheader(path, 1)
    for col in ("RA", "DEC", "VMAG", "alt_deg", "az_deg", "x", "y", "xcentroid", "ycentroid",
                "flux_adu", "m_inst", "zp_adu_per_s", "moon_sep_deg", "flags"):
        assert col in cat.colnames
    assert str(cat["alt_deg"].unit) == "deg" and str(cat["flux_adu"].unit) == "adu"
    assert h["ZPTOTAL"] == pytest.approx(res["zeropoint"].zp_total, abs=1e-4)
    assert h["CAMERA"] == "MDM" and h["PIPEVER"]
    assert all(len(k) <= 8 for k in h)
    assert abs(h["DZENX"] - SHIFT[0]) < 0.2 and abs(h["DROT"] - ROT) < 0.02
    det = fits.getdata(next(out.glob("*-detrended.fits")))
    assert det.dtype == np.dtype(">f4")
    for kind in ("zp", "quiver", "sbmap"):
        png = next(out.glob(f"*-{kind}.png"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000


def test_cli_end_to_end_with_options(camera, tmp_path):
    sim = simulate.simulate(camera, seed=5)
    raw = tmp_path / "2020_10_11__21_38_23.fits.bz2"
    simulate.write_simulation(sim, raw)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(SCRIPT), str(raw), "--outdir", str(out),
                        "--skip_checkplots", "--write_sbmap", "--dont_write_detrended", "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["2020_10_11__21_38_23-cat.fits", "2020_10_11__21_38_23-sbmap.fits"]
    sb = fits.open(out / names[1])[0]
    assert sb.header["BUNIT"] == "mag/arcsec2" and sb.header["SBKERNEL"] == 23
    assert np.isnan(sb.data[0, 0]) and 19 < np.nanmedian(sb.data) < 22
    # a second run refuses to overwrite, and says so in one line
    r = subprocess.run([sys.executable, str(SCRIPT), str(raw), "--outdir", str(out), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "exists already" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _bad_inputs(tmp_path):
    good = simulate.simulate(config.load_camera("MDM"), seed=3)
    cases = {}
    cases["missing"] = tmp_path / "nope.fits"
    p = tmp_path / "notfits.fits"
    p.write_text("this is not FITS")
    cases["not FITS"] = p
    p = tmp_path / "trunc.fits"
    fits.PrimaryHDU(good.image, good.header).writeto(p)
    p.write_bytes(p.read_bytes()[:100000])
    cases["truncated"] = p
    p = tmp_path / "small.fits"
    fits.PrimaryHDU(good.image[:100, :100], good.header).writeto(p)
    cases["size"] = p
    h = good.header.copy()
    del h["EXPOSURE"]
    p = tmp_path / "noexp.fits"
    fits.PrimaryHDU(good.image, h).writeto(p)
    cases["no EXPOSURE"] = p
    h = good.header.copy()
    h["EXPOSURE"] = 0
    p = tmp_path / "zeroexp.fits"
    fits.PrimaryHDU(good.image, h).writeto(p)
    cases["exptime 0"] = p
    h = good.header.copy()
    h["DATE-OBS"] = "sometime"
    p = tmp_path / "baddate.fits"
    fits.PrimaryHDU(good.image, h).writeto(p)
    cases["bad DATE-OBS"] = p
    p = tmp_path / "zeros.fits"
    fits.PrimaryHDU(np.zeros_like(good.image), good.header).writeto(p)
    cases["all zero"] = p
    p = tmp_path / "nan.fits"
    fits.PrimaryHDU(np.full(good.image.shape, np.nan, np.float32), good.header).writeto(p)
    cases["all NaN"] = p
    return cases


def test_bad_inputs_one_line_exit_2_clean_outdir(tmp_path):
    cases = _bad_inputs(tmp_path)
    for what, path in cases.items():
        out = tmp_path / f"out_{what.replace(' ', '_')}"
        r = subprocess.run([sys.executable, str(SCRIPT), str(path), "--outdir", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 2, what
        err = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("INFO")]
        assert len(err) == 1 and str(path) in err[0], (what, r.stderr)
        assert "Traceback" not in r.stderr
        assert not out.exists() or list(out.iterdir()) == [], what


def test_unwritable_outdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = subprocess.run([sys.executable, str(SCRIPT), "--demo", "--outdir", str(blocker / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "output directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_overcast_frame_degrades_gracefully(camera, tmp_path):
    sim = simulate.simulate(camera, seed=8, clouds=simulate.Clouds("overcast", 0.02))
    exp = io.exposure_from_data(str(tmp_path / "overcast.fits"), sim.image, sim.header, camera)
    res = ac_proc.process(exp, camera, options(tmp_path, "--skip_checkplots"))
    h = fits.getheader(tmp_path / "overcast-cat.fits", 1)
    assert len(res["catalog"]) > 100                       # rows kept, every column
    from allsky_camera.flags import bit
    lost = (res["catalog"]["flags"] & (bit("FAINT") | bit("NO_FLUX"))) > 0
    assert lost.mean() > 0.9                               # almost nothing detected...
    zp = res["zeropoint"]
    # ...and what is left measures the 2 % transmission (4.2 mag), or no zeropoint at all
    assert (not zp.ok and "ZPMSG" in h) or zp.zp_total < zp.zp_nominal_total - 3.5


def test_parser_has_every_original_option():
    p = ac_proc.build_parser()
    dests = {a.dest for a in p._actions}
    for name in ("outdir", "dont_write_detrended", "multiproc", "skip_checkplots", "skip_sbmap",
                 "write_sbmap", "force_mp_centroiding", "dont_write_catalog", "oplot_centroids",
                 "write_healpix", "detect_streaks", "camera", "overwrite", "demo"):
        assert name in dests
    assert isinstance(options("o"), argparse.Namespace)


def test_default_run_imports_only_what_it_needs(camera, tmp_path):
    """No IERS table, no astropy.coordinates, and none of the heavy optional
    packages are imported by a run without checkplots (start-up stays light,
    and no download can ever be attempted)."""
    from allsky_camera.stages import catalog

    sim = simulate.simulate(camera, seed=6)
    raw = tmp_path / "light.fits"
    simulate.write_simulation(sim, raw)
    # the catalog cache is built once (that may use scipy); runs after it stay light
    catalog.load_catalog(camera.photometry.vmax)
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(SCRIPT)!r}, {str(raw)!r}, '--outdir', {str(tmp_path)!r}, "
        "'--skip_checkplots', '-q']\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = ['astropy.coordinates', 'astropy.utils.iers', 'matplotlib',\n"
        "         'healpy', 'skimage', 'scipy', 'photutils']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_multiproc_gives_identical_catalog(camera, tmp_path):
    # a cloud, so that lost stars (measured at the prediction) are compared too
    sim = simulate.simulate(camera, seed=7, clouds=simulate.Clouds("quarter", 0.2))
    out = {}
    for n, extra in ((1, []), (2, ["--multiproc", "2", "--force_mp_centroiding"])):
        d = tmp_path / f"n{n}"
        d.mkdir()
        exp = io.exposure_from_data(str(d / "f.fits"), sim.image, sim.header, camera)
        out[n] = ac_proc.process(exp, camera, options(d, "--skip_checkplots", "--write_healpix",
                                                      "--dont_write_detrended", *extra))
    a, b = out[1]["catalog"], out[2]["catalog"]
    for col in a.colnames:
        np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]), err_msg=col)
    np.testing.assert_array_equal(out[1]["skymap"].mag, out[2]["skymap"].mag)
    assert out[1]["transparency"].summary == out[2]["transparency"].summary
    with fits.open(tmp_path / "n1" / "f-healpix.fits") as h1, \
            fits.open(tmp_path / "n2" / "f-healpix.fits") as h2:
        for e1, e2 in zip(h1[1:], h2[1:]):
            np.testing.assert_array_equal(e1.data.field(0), e2.data.field(0), err_msg=e1.name)
