"""Simulator: determinism, flux and sky against their formulas, truth files, CLI."""

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from allsky_camera import config, simulate

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


@pytest.fixture(scope="module")
def sim(camera):
    return simulate.simulate(camera, seed=1, zenith_shift=(1.0, -2.0), rotation_deg=0.2)


def test_deterministic(camera, sim):
    again = simulate.simulate(camera, seed=1, zenith_shift=(1.0, -2.0), rotation_deg=0.2)
    np.testing.assert_array_equal(sim.image, again.image)
    other = simulate.simulate(camera, seed=2, zenith_shift=(1.0, -2.0), rotation_deg=0.2)
    assert not np.array_equal(sim.image, other.image)


def test_image_and_header(camera, sim):
    assert sim.image.shape == (1200, 1600) and sim.image.dtype == np.uint8
    assert sim.image.max() <= camera.sensor.saturation_adu
    h = sim.header
    assert h["EXPOSURE"] == camera.simulation.exptime_s
    assert h["DATE-OBS"] == camera.simulation.dateobs          # the camera's clock (UTC-7)
    assert h["SIMDX"] == 1.0 and h["SIMDY"] == -2.0 and h["SIMDROT"] == 0.2
    assert h["SIMZP"] == pytest.approx(sim.truth.zp_true, abs=1e-5)
    assert sim.truth.time.iso_utc.startswith("2020-10-12T04:38:23")


def test_true_positions_follow_perturbed_model(camera, sim):
    m = sim.truth.model
    t = camera.astrometry.model
    assert (m.x0, m.y0) == (t.x0 + 1.0, t.y0 - 2.0) and m.rot_deg == pytest.approx(t.rot_deg + 0.2)
    st = sim.truth.stars
    x, y = m.altaz_to_xy(st["alt_deg"], st["az_deg"])
    np.testing.assert_allclose(x, st["x"]) and np.testing.assert_allclose(y, st["y"])


def test_rendered_star_flux_and_enclosed_fraction():
    from allsky_camera import apertures

    rng = np.random.default_rng(0)
    for fwhm in (2.0, 2.6, 3.6):
        x, y = 40 + rng.uniform(-0.5, 0.5, 1), 40 + rng.uniform(-0.5, 0.5, 1)
        img = simulate.render_stars((80, 80), x, y, np.array([1000.0]), np.array([fwhm]))
        assert img.sum() == pytest.approx(1000.0, rel=1e-4)
        s, _, _ = apertures.aperture_sums(img, x, y, 2.0)
        ef = simulate.enclosed_fraction(2.0, fwhm)
        assert s[0] / 1000.0 == pytest.approx(float(ef), abs=0.015)
    # without pixels the continuous Gaussian's fraction
    assert simulate.enclosed_fraction(2.0, 2.0, pixelated=False) == pytest.approx(
        1 - np.exp(-4 / (2 * (2.0 / simulate.FWHM_PER_SIGMA) ** 2)))


def test_sky_matches_its_law(camera, sim):
    m = sim.truth.model
    for (x, y) in ((m.x0, m.y0), (m.x0 + 300, m.y0 + 100), (m.x0 - 450, m.y0)):
        xi, yi = round(x), round(y)
        alt, _ = m.xy_to_altaz(xi, yi)
        mu = simulate.sky_surface_brightness(90 - alt, camera.simulation,
                                             camera.simulation.sky_zenith_mag)
        assert sim.truth.sky_mag[yi, xi] == pytest.approx(mu, abs=1e-4)
        omega = m.pixel_solid_angle(xi, yi) * (180 / np.pi * 3600) ** 2
        adu = 10 ** (-0.4 * (mu - sim.truth.zp_true)) * sim.truth.exptime * omega
        assert sim.truth.sky_adu[yi, xi] == pytest.approx(adu, rel=1e-4)
    assert np.isnan(sim.truth.sky_mag[0, 0])                     # corner: no sky


def test_zeropoints(camera, sim):
    st = sim.truth.stars
    safe = st["safe"]
    assert sim.truth.zp_aper_true == pytest.approx(camera.photometry.zp_nominal, abs=1e-6)
    flux = 10 ** (-0.4 * (st["VMAG"] - sim.truth.zp_true)) * sim.truth.exptime
    np.testing.assert_allclose(st["flux_adu"], flux)
    assert safe.sum() > 1000


def test_clouds_dim_stars(camera):
    s = simulate.simulate(camera, seed=3, clouds=simulate.Clouds("quarter", 0.2, az_deg=45))
    st = s.truth.stars
    daz = (np.asarray(st["az_deg"]) - 45 + 180) % 360 - 180
    inside = np.abs(daz) < 44
    assert np.allclose(st["transmission"][inside], 0.2)
    assert np.allclose(st["transmission"][np.abs(daz) > 46], 1.0)
    with pytest.raises(Exception, match="choose one of"):
        simulate.simulate(camera, seed=3, clouds=simulate.Clouds("fog"))


def test_write_round_trip(tmp_path, sim):
    raw, truth = simulate.write_simulation(sim, tmp_path / "x.fits.gz")
    assert raw.read_bytes()[:2] == b"\x1f\x8b"                   # really gzip
    np.testing.assert_array_equal(fits.getdata(raw), sim.image)
    st = Table.read(truth, "STARS")
    np.testing.assert_allclose(st["x"], sim.truth.stars["x"])
    assert fits.getheader(truth)["ZPTRUE"] == pytest.approx(sim.truth.zp_true)
    with pytest.raises(Exception, match="exists already"):
        simulate.write_simulation(sim, tmp_path / "x.fits.gz")


def test_cli(tmp_path):
    script = REPO / "py" / "allsky_camera" / "simulate.py"
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "s.fits"), "--seed", "3",
                        "--streaks", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(Table.read(tmp_path / "s-truth.fits", "STREAKS")) == 2
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "t.fits"), "--camera",
                        "NOPE"], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
