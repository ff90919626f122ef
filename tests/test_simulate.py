"""simulate: the whole frame (detector, clouds, streaks, truth, header), files and the CLI.

The parts are tested alone in tests/test_sim_*.py (one file per module of sim/).
"""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from allsky_camera import ac_simulate
from allsky_camera.camera import config
from allsky_camera.exceptions import ConfigError, OutputError
from allsky_camera.sim import simulate

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "py" / "allsky_camera" / "ac_simulate.py"


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


@pytest.fixture(scope="module")
def sim(camera):
    """The default MDM frame (all stars to simulation.vmax)."""
    return simulate.simulate(camera, seed=0)


@pytest.fixture(scope="module")
def shifted(camera):
    """A perturbed geometry, bright stars only (fast)."""
    return simulate.simulate(camera, seed=1, zenith_shift=(3.5, -2.25), rotation_deg=0.7,
                             star_vmax=5.0)


def with_sim(camera, **changes):
    return dataclasses.replace(camera, simulation=dataclasses.replace(camera.simulation,
                                                                      **changes))


# ------------------------------------------------------------ the frame
def test_shape_dtype_and_clip(camera, sim):
    s = camera.sensor
    assert sim.image.shape == (s.ny, s.nx)
    assert sim.image.dtype == np.uint8
    assert sim.image.max() == s.saturation_adu           # bright stars and hot pixels clip
    st = sim.truth.stars
    assert len(st) > 5000
    assert np.all(st["x"] >= -0.5) and np.all(st["x"] < s.nx - 0.5)
    assert np.all(st["y"] >= -0.5) and np.all(st["y"] < s.ny - 0.5)
    assert np.all(st["alt_deg"] > camera.simulation.horizon_alt_deg)


def test_saturated_flags(camera, sim):
    """Flag = a non-hot pixel at saturation within the aperture radius (checked star by star)."""
    st = sim.truth.stars
    sat = camera.sensor.saturation_adu
    radius = camera.photometry.aper_radius_px
    assert st["saturated"][np.argmin(st["VMAG"])]       # the brightest star saturates
    assert st["peak_adu"].max() > sat                    # unclipped truth above the clip
    assert st["saturated"].sum() < 0.01 * len(st)
    rng = np.random.default_rng(0)
    check = np.union1d(np.flatnonzero(st["saturated"]),
                       rng.choice(len(st), size=300, replace=False))
    yy, xx = np.indices(sim.image.shape)
    for i in check:
        x, y = st["x"][i], st["y"][i]
        box = (slice(max(int(y) - 4, 0), int(y) + 5), slice(max(int(x) - 4, 0), int(x) + 5))
        near = (xx[box] - x) ** 2 + (yy[box] - y) ** 2 <= radius ** 2
        expect = np.any(near & (sim.image[box] >= sat) & ~sim.truth.hot_pixels[box])
        assert st["saturated"][i] == expect


def test_sixteen_bit_camera(camera):
    cam = dataclasses.replace(camera, sensor=dataclasses.replace(camera.sensor,
                                                                 saturation_adu=4095.0))
    s = simulate.simulate(cam, seed=2, star_vmax=2.0)
    assert s.image.dtype == np.uint16
    assert s.image.max() <= 4095
    hot = s.truth.hot_pixels
    assert s.image[hot].min() >= 4095 // 2


def test_detector_noise_bias_and_hot_pixels(camera, sim):
    ss = camera.simulation
    hot = sim.truth.hot_pixels
    assert hot.sum() == round(ss.hot_pixel_fraction * hot.size)
    assert sim.image[hot].min() >= camera.sensor.saturation_adu // 2
    # off-sky corner: bias plus read noise plus rounding, nothing else
    corner = sim.image[:150, :150].astype(float)[~hot[:150, :150]]
    assert np.isnan(sim.truth.sky_mag[:150, :150]).all()
    assert not sim.truth.sky_adu[:150, :150].any()
    # read noise in ADU, then rounded to integers: the exact moments
    from scipy.special import ndtr
    rn_adu = ss.read_noise_e / ss.gain_e_per_adu
    k = np.arange(-30, 31) + np.round(ss.bias_adu)
    p = ndtr((k + 0.5 - ss.bias_adu) / rn_adu) - ndtr((k - 0.5 - ss.bias_adu) / rn_adu)
    mean = np.sum(k * p)
    assert corner.mean() == pytest.approx(mean, abs=0.02)
    assert corner.std() == pytest.approx(np.sqrt(np.sum((k - mean) ** 2 * p)), rel=0.03)
    # near the zenith: bias + sky, with Poisson noise
    m = sim.truth.model
    box = (slice(int(m.y0) - 40, int(m.y0) + 40), slice(int(m.x0) - 40, int(m.x0) + 40))
    sky = float(np.median(sim.truth.sky_adu[box]))
    assert np.median(sim.image[box]) - ss.bias_adu == pytest.approx(sky, abs=1.0)


def test_determinism(camera):
    a = simulate.simulate(camera, seed=5, star_vmax=4.0)
    b = simulate.simulate(camera, seed=5, star_vmax=4.0)
    c = simulate.simulate(camera, seed=6, star_vmax=4.0)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth.hot_pixels, b.truth.hot_pixels)
    assert a.header == b.header
    assert not np.array_equal(a.image, c.image)
    np.testing.assert_array_equal(a.truth.stars["x"], c.truth.stars["x"])   # same sky


def test_true_positions_follow_the_perturbed_model(camera, shifted):
    t = camera.astrometry.model
    m = shifted.truth.model
    assert (m.x0, m.y0, m.rot_deg) == (t.x0 + 3.5, t.y0 - 2.25, t.rot_deg + 0.7)
    st = shifted.truth.stars
    x, y = m.altaz_to_xy(st["alt_deg"], st["az_deg"])
    np.testing.assert_array_equal(st["x"], x)
    np.testing.assert_array_equal(st["y"], y)
    # and the light is there: bright unsaturated stars peak at their nearest pixel
    img = np.where(shifted.truth.hot_pixels, 0.0, shifted.image.astype(float))
    for row in st[(st["VMAG"] < 3.5) & ~st["saturated"]][:20]:
        ix, iy = int(np.rint(row["x"])), int(np.rint(row["y"]))
        box = img[iy - 2:iy + 3, ix - 2:ix + 3]
        jy, jx = np.unravel_index(np.argmax(box), box.shape)
        assert abs(jx - 2) <= 1 and abs(jy - 2) <= 1


def clear_flux(st, tr, zp=None):
    """Total flux of each truth star on a clear sky: m = V - ZP + k (X - 1) + c (B-V) + v."""
    zp = tr.zp_true if zp is None else zp
    q = ((90.0 - np.asarray(st["alt_deg"])) / 90.0) ** 2
    vig = sum(a * q ** j for j, a in enumerate(tr.vignetting, start=1))
    m = (np.asarray(st["VMAG"]) - zp + tr.ext_coef * (np.asarray(st["airmass"]) - 1.0)
         + tr.colour_term * np.nan_to_num(np.asarray(st["BV"])) + vig)
    return 10 ** (-0.4 * m) * tr.exptime


def test_star_fluxes_and_zeropoints(camera, sim):
    st = sim.truth.stars
    tr = sim.truth
    assert tr.ext_coef == camera.simulation.ext_coef
    np.testing.assert_allclose(st["flux_adu"], clear_flux(st, tr), rtol=1e-12)
    # the airmass of Kasten & Young (1989) at the star's apparent zenith distance
    z = 90.0 - np.asarray(st["alt_deg"])
    ky = 1.0 / (np.cos(np.radians(z)) + 0.50572 * (96.07995 - z) ** -1.6364)
    np.testing.assert_allclose(st["airmass"], ky, rtol=1e-12)
    sigma = st["fwhm_px"] / simulate.FWHM_PER_SIGMA
    np.testing.assert_allclose(st["ef_aper"], simulate.enclosed_fraction(
        camera.photometry.aper_radius_px, sigma))
    # the nominal aperture zeropoint is read at the zenith PSF
    apcor = -2.5 * np.log10(simulate.enclosed_fraction(
        camera.photometry.aper_radius_px, camera.simulation.fwhm_zenith_px
        / simulate.FWHM_PER_SIGMA))
    assert camera.photometry.zp_nominal_scale == "aperture"
    assert tr.zp_true == pytest.approx(camera.photometry.zp_nominal + apcor, abs=1e-12)
    assert tr.zp_aper_true == pytest.approx(camera.photometry.zp_nominal, abs=1e-9)
    assert tr.zp_true > tr.zp_aper_true


def test_zeropoint_overrides(camera):
    s = simulate.simulate(camera, seed=0, star_vmax=3.0, zp_true=7.25, exptime=30.0)
    assert s.truth.zp_true == 7.25 and s.header["SIMZP"] == 7.25
    assert s.header[camera.header.exptime_card] == 30.0
    np.testing.assert_allclose(s.truth.stars["flux_adu"], clear_flux(s.truth.stars, s.truth,
                                                                     zp=7.25))
    cam = with_sim(camera, zp_true=6.5)
    assert simulate.simulate(cam, star_vmax=3.0).truth.zp_true == 6.5
    cam = dataclasses.replace(camera, photometry=dataclasses.replace(
        camera.photometry, zp_nominal_scale="total"))
    assert simulate.simulate(cam, star_vmax=3.0).truth.zp_true == camera.photometry.zp_nominal


def test_sky_in_adu_matches_the_law(camera, sim):
    tr = sim.truth
    m = tr.model
    ss = camera.simulation
    xs = np.array([m.x0, 802.0, 400.0, 1200.0, 802.0, 300.0])
    ys = np.array([m.y0, 900.0, 511.0, 300.0, 1130.0, 800.0])
    ix, iy = np.rint(xs).astype(int), np.rint(ys).astype(int)
    alt, _ = m.xy_to_altaz(ix, iy)
    mu = simulate.sky_surface_brightness(90.0 - alt, ss.sky_zenith_mag, ss.sky_horizon_mag)
    np.testing.assert_allclose(tr.sky_mag[iy, ix], mu, atol=2e-5)
    omega = m.pixel_solid_angle(ix, iy) * (180 / np.pi * 3600) ** 2
    expect = 10 ** (-0.4 * (mu - tr.zp_true)) * tr.exptime * omega
    np.testing.assert_allclose(tr.sky_adu[iy, ix], expect, rtol=1e-5)
    assert tr.sky_mag[round(m.y0), round(m.x0)] == pytest.approx(
        ss.sky_zenith_mag, abs=1e-3)
    # the horizon: the sky ends at the radius of zd = 90 - horizon_alt_deg
    r_h = float(m.radius(90.0 - ss.horizon_alt_deg))
    yy, xx = np.indices(tr.sky_mag.shape)
    r = np.hypot(xx - m.x0, yy - m.y0)
    np.testing.assert_array_equal(np.isfinite(tr.sky_mag), r <= r_h)
    edge = np.isfinite(tr.sky_mag) & (r > r_h - 1.0)
    np.testing.assert_allclose(tr.sky_mag[edge], ss.sky_horizon_mag, atol=0.02)


def test_no_starlight_beyond_the_horizon(camera):
    """A camera seeing only above 30 deg: nothing but bias and noise below."""
    cam = with_sim(camera, horizon_alt_deg=30.0, hot_pixel_fraction=0.0)
    s = simulate.simulate(cam, seed=3, star_vmax=4.0)
    assert s.truth.stars["alt_deg"].min() > 30.0
    m = s.truth.model
    yy, xx = np.indices(s.image.shape)
    off = np.hypot(xx - m.x0, yy - m.y0) > float(m.radius(60.0)) + 1
    rn_adu = cam.simulation.read_noise_e / cam.simulation.gain_e_per_adu
    assert s.image[off].max() <= cam.simulation.bias_adu + 7 * rn_adu + 1


# ------------------------------------------------------------ header
def test_header_cards(camera, shifted):
    h = shifted.header
    assert h[camera.header.exptime_card] == camera.simulation.exptime_s
    assert h[camera.header.dateobs_card] == camera.simulation.dateobs
    assert shifted.truth.time.iso_utc == "2020-10-12T04:38:23.000"
    assert h["SIMULATE"] is True and h["SIMSEED"] == 1
    assert h["SIMZP"] == shifted.truth.zp_true
    assert (h["SIMDX"], h["SIMDY"], h["SIMDROT"]) == (3.5, -2.25, 0.7)
    assert "INSTRUME" not in h                      # MDM has no INSTRUME
    assert all(h.comments[k] for k in ("SIMULATE", "SIMSEED", "SIMZP", "SIMDX"))
    assert all(len(k) <= 8 for k in h)


def test_header_dateobs_and_instrume(camera):
    cam = dataclasses.replace(camera, header=dataclasses.replace(camera.header,
                                                                 instrume="ALLSKY1"))
    s = simulate.simulate(cam, star_vmax=2.0, dateobs="2021-03-04T01:02:03.6")
    assert s.header["INSTRUME"] == "ALLSKY1"
    assert s.header["DATE-OBS"] == "2021-03-04T01:02:04"     # rounded to the second
    assert s.truth.time.iso_utc == "2021-03-04T08:02:04.000"


def test_bad_arguments(camera):
    with pytest.raises(ConfigError, match="exptime"):
        simulate.simulate(camera, exptime=0.0, star_vmax=2.0)
    with pytest.raises(ConfigError, match="clouds"):
        simulate.simulate(camera, clouds="band", star_vmax=2.0)
    with pytest.raises(ConfigError, match="simulation"):
        simulate.simulate(dataclasses.replace(camera, simulation=None))
    with pytest.raises(ConfigError, match="choose one of"):
        simulate.Clouds("fog")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        simulate.Clouds("band", transmission=1.5)
    with pytest.raises(ConfigError, match="width_px"):
        simulate.Streak(0, 0, 10, 10, width_px=0.0, peak_adu=5.0)
    with pytest.raises(ConfigError, match="Streak"):
        simulate.simulate(camera, streaks=[(0, 0, 10, 10, 2.0, 5.0)], star_vmax=2.0)


# ------------------------------------------------------------ clouds
@pytest.fixture(scope="module")
def quarter(camera):
    return simulate.simulate(camera, seed=3, star_vmax=5.0,
                             clouds=simulate.Clouds("quarter", 0.2, brightening=2.0, az_deg=45.0))


def test_quarter_cloud_dims_the_stars_in_its_quadrant(camera, quarter):
    st = quarter.truth.stars
    daz = (np.asarray(st["az_deg"]) - 45.0 + 180.0) % 360.0 - 180.0
    inside = np.abs(daz) < 45.0
    assert 0.1 < inside.mean() < 0.4
    np.testing.assert_array_equal(st["transmission"], np.where(inside, 0.2, 1.0))
    clear = clear_flux(st, quarter.truth)
    np.testing.assert_allclose(st["flux_adu"], clear * st["transmission"], rtol=1e-12)
    assert quarter.header["SIMCLOUD"] == "quarter" and quarter.header["SIMCLTR"] == 0.2


def test_quarter_cloud_map_and_brighter_sky(camera, quarter):
    tr = quarter.truth
    m = tr.model
    on = np.isfinite(tr.sky_mag)
    np.testing.assert_array_equal(np.isfinite(tr.transmission), on)
    ys, xs = np.nonzero(on)
    _, az = m.xy_to_altaz(xs, ys)
    daz = (az - 45.0 + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(tr.transmission[ys, xs], np.where(np.abs(daz) < 45, 0.2, 1.0),
                               rtol=1e-7)
    # a quarter of the sky by solid angle (the sensor crops the sky circle a little)
    omega = m.pixel_solid_angle(xs, ys)
    assert np.sum(omega[np.abs(daz) < 45]) / np.sum(omega) == pytest.approx(0.25, abs=0.02)
    clear = simulate.simulate(camera, seed=3, star_vmax=5.0).truth
    # outside: the clear sky; inside: sky * (t + brightening * (1 - t)), brighter
    out = np.abs(daz) > 46
    np.testing.assert_allclose(tr.sky_adu[ys[out], xs[out]], clear.sky_adu[ys[out], xs[out]])
    ins = np.abs(daz) < 44
    b = 2.0
    np.testing.assert_allclose(tr.sky_adu[ys[ins], xs[ins]],
                               clear.sky_adu[ys[ins], xs[ins]] * (0.2 + b * 0.8), rtol=1e-5)
    np.testing.assert_allclose(clear.sky_mag[ys[ins], xs[ins]] - tr.sky_mag[ys[ins], xs[ins]],
                               2.5 * np.log10(0.2 + b * 0.8), atol=1e-4)
    mu = tr.zp_true - 2.5 * np.log10(tr.sky_adu[on] / tr.exptime / (omega
                                                                    * simulate.ARCSEC2_PER_SR))
    np.testing.assert_allclose(tr.sky_mag[on], mu, atol=1e-4)


@pytest.mark.parametrize("kind,low,high", [("band", 0.10, 0.30), ("patches", 0.05, 0.5),
                                           ("overcast", 1.0, 1.0)])
def test_cloud_kinds_cover_the_sky_they_say(camera, kind, low, high):
    s = simulate.simulate(camera, seed=4, clouds=simulate.Clouds(kind, 0.05), star_vmax=4.5)
    tr = s.truth
    on = np.isfinite(tr.transmission)
    covered = np.mean(tr.transmission[on] < 1.0)
    assert low <= covered <= high
    assert set(np.unique(tr.transmission[on])) <= {np.float32(0.05), np.float32(1.0)}
    # the stars see the clouds of the map at their pixel (bar the cloud's rim)
    st = tr.stars
    at = tr.transmission[np.rint(st["y"]).astype(int), np.rint(st["x"]).astype(int)]
    assert np.mean(np.isclose(at, st["transmission"])) > 0.97


def test_no_clouds_is_the_clear_frame(camera):
    a = simulate.simulate(camera, seed=5, star_vmax=3.0)
    b = simulate.simulate(camera, seed=5, star_vmax=3.0, clouds=simulate.Clouds("none"))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.truth.transmission is None and b.truth.transmission is None
    assert np.all(a.truth.stars["transmission"] == 1.0)


# ------------------------------------------------------------ streaks
def test_streaks_fall_on_the_sky_only(camera):
    m = camera.astrometry.model
    r = float(m.radius(90.0 - camera.simulation.horizon_alt_deg))
    # from the zenith outward, past the horizon and off the image
    s = simulate.Streak(m.x0, m.y0 - 100.0, m.x0 + 2000.0, m.y0 - 100.0, 3.0, 30.0)
    corner = simulate.Streak(5.0, 5.0, 100.0, 20.0, 3.0, 30.0)           # beyond the horizon
    clean = simulate.simulate(camera, seed=6, star_vmax=2.0)
    streaked = simulate.simulate(camera, seed=6, star_vmax=2.0, streaks=[s, corner])
    assert streaked.truth.streaks == (s, corner) and streaked.header["SIMNSTRK"] == 2
    row = round(m.y0 - 100.0)
    xs = np.arange(round(m.x0) + 20, round(m.x0 + np.sqrt(r * r - 100.0 ** 2)) - 5)
    diff = streaked.image[row, xs].astype(float) - clean.image[row, xs].astype(float)
    assert np.median(diff) == pytest.approx(30.0, abs=2.0)
    beyond = np.arange(round(m.x0 + r) + 5, camera.sensor.nx)
    np.testing.assert_array_equal(streaked.image[row, beyond], clean.image[row, beyond])
    np.testing.assert_array_equal(streaked.image[:40, :120], clean.image[:40, :120])


# ------------------------------------------------------------ files
@pytest.mark.parametrize("name", ["frame.fits", "frame.fits.gz", "frame.fits.bz2"])
def test_write_round_trip(tmp_path, sim, name):
    path = tmp_path / name
    raw_path, tpath = simulate.write_simulation(sim, path)
    assert raw_path == path and tpath == tmp_path / "frame-truth.fits"
    magic = path.read_bytes()[:3]
    assert magic == {"frame.fits": b"SIM", "frame.fits.gz": b"\x1f\x8b\x08",
                     "frame.fits.bz2": b"BZh"}[name]
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(hdul[0].data, sim.image)
        assert hdul[0].data.dtype == sim.image.dtype
        assert hdul[0].header["SIMZP"] == sim.header["SIMZP"]
        assert hdul[0].header["DATE-OBS"] == sim.header["DATE-OBS"]
    stars = Table.read(tpath, hdu="STARS")
    assert stars.colnames == sim.truth.stars.colnames
    for c in stars.colnames:
        np.testing.assert_array_equal(stars[c], sim.truth.stars[c])
    with fits.open(tpath) as hdul:
        h = hdul[0].header
        assert h["ZPTRUE"] == sim.truth.zp_true and h["ZPAPTRUE"] == sim.truth.zp_aper_true
        assert h["ZENX"] == sim.truth.model.x0 and h["ROT"] == sim.truth.model.rot_deg
        np.testing.assert_array_equal(hdul["SKYMAG"].data, sim.truth.sky_mag)
        hot = hdul["HOTPIX"].data
        np.testing.assert_array_equal(np.sort(hot["y"] * sim.image.shape[1] + hot["x"]),
                                      np.flatnonzero(sim.truth.hot_pixels))
        assert len(hdul["STREAKS"].data) == 0 and "TRANSMIS" not in hdul
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "frame-truth.fits"])


def test_write_clouds_and_streaks(tmp_path, camera):
    st = simulate.Streak(100.0, 200.0, 900.0, 700.0, 2.5, 25.0)
    s = simulate.simulate(camera, seed=7, star_vmax=3.0, streaks=[st],
                          clouds=simulate.Clouds("band", 0.3))
    _, tpath = simulate.write_simulation(s, tmp_path / "c.fits")
    with fits.open(tpath) as hdul:
        np.testing.assert_array_equal(hdul["TRANSMIS"].data, s.truth.transmission)
        assert hdul[0].header["SIMCLOUD"] == "band" and hdul[0].header["SIMNSTRK"] == 1
    t = Table.read(tpath, hdu="STREAKS")
    assert len(t) == 1 and t["x2"][0] == 900.0 and str(t["width_px"].unit) == "pix"


def test_write_refuses_existing(tmp_path, sim):
    path = tmp_path / "a.fits"
    simulate.write_simulation(sim, path)
    with pytest.raises(OutputError, match="exists"):
        simulate.write_simulation(sim, path)
    (tmp_path / "b-truth.fits").write_text("keep me")
    with pytest.raises(OutputError, match=r"b-truth\.fits"):
        simulate.write_simulation(sim, tmp_path / "b.fits")
    assert not (tmp_path / "b.fits").exists()
    simulate.write_simulation(sim, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-truth.fits", "a.fits",
                                                          "b-truth.fits"]


# ------------------------------------------------------------ command line
def test_cli_as_a_script(tmp_path):
    out = tmp_path / "out.fits"
    r = subprocess.run([sys.executable, str(SCRIPT), str(out), "--seed", "3",
                        "--shift", "1.5", "-2", "--rotate", "0.25"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "out.fits" in r.stdout
    h = fits.getheader(out)
    assert (h["SIMSEED"], h["SIMDX"], h["SIMDY"], h["SIMDROT"]) == (3, 1.5, -2.0, 0.25)
    assert (tmp_path / "out-truth.fits").exists()


def test_cli_clouds_and_streaks(tmp_path):
    out = tmp_path / "c.fits"
    r = subprocess.run([sys.executable, str(SCRIPT), str(out), "--clouds", "quarter",
                        "--transmission", "0.3", "--streaks", "2"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    tpath = tmp_path / "c-truth.fits"
    assert len(Table.read(tpath, hdu="STREAKS")) == 2
    trans = fits.getdata(tpath, "TRANSMIS")
    assert np.nanmin(trans) == pytest.approx(0.3)
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "d.fits"), "--clouds",
                        "band", "--transmission", "2"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "between 0 and 1" in r.stderr


def test_cli_bad_camera_exits_2(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "x.fits"),
                        "--camera", "NOSUCHCAM"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "NOSUCHCAM" in lines[0]
    assert not (tmp_path / "x.fits").exists()


def test_main_refuses_existing_output(tmp_path, capsys):
    (tmp_path / "y.fits").write_bytes(b"")
    assert ac_simulate.main([str(tmp_path / "y.fits")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists" in err[0]


def test_colour_term_and_vignetting_rendered(camera):
    s = simulate.simulate(camera, seed=0, star_vmax=3.5, ext_coef=0.3, colour_term=-0.2,
                          vignetting=(0.5, 0.1))
    tr = s.truth
    assert (tr.ext_coef, tr.colour_term, tr.vignetting) == (0.3, -0.2, (0.5, 0.1))
    assert s.header["SIMEXTK"] == 0.3 and s.header["SIMCOLT"] == -0.2
    assert s.header["SIMVIG2"] == 0.5 and s.header["SIMVIG4"] == 0.1
    np.testing.assert_allclose(tr.stars["flux_adu"], clear_flux(tr.stars, tr), rtol=1e-12)
    # the same stars without the terms are brighter by exactly the model's magnitudes
    plain = simulate.simulate(camera, seed=0, star_vmax=3.5, ext_coef=0.0, colour_term=0.0,
                              vignetting=())
    dm = -2.5 * np.log10(tr.stars["flux_adu"] / plain.truth.stars["flux_adu"])
    zd = 90.0 - np.asarray(tr.stars["alt_deg"])
    want = (0.3 * (tr.stars["airmass"] - 1) - 0.2 * np.nan_to_num(tr.stars["BV"])
            + 0.5 * (zd / 90) ** 2 + 0.1 * (zd / 90) ** 4)
    np.testing.assert_allclose(dm, want, atol=1e-9)


