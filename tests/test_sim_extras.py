"""Simulator extras of small cameras: burned-in text, a dome, planets."""

from pathlib import Path

import numpy as np
import pytest

from allsky_camera import ac_simulate
from allsky_camera.camera import config, coords
from allsky_camera.exceptions import ConfigError
from allsky_camera.sim import sim_extras, simulate

SMALL = Path(__file__).resolve().parent / "data" / "SMALL640.yaml"


@pytest.fixture(scope="module")
def cam():
    return config.load_camera(SMALL)


@pytest.fixture(scope="module")
def frames(cam):
    ex = sim_extras.Extras(planets=True, dome=sim_extras.Dome(az_deg=150.0, half_width_deg=30.0,
                                                              top_alt_deg=30.0),
                           text=sim_extras.TextOverlay())
    return simulate.simulate(cam, seed=2), simulate.simulate(cam, seed=2, extras=ex)


def test_text_mask_draws_the_font():
    ov = sim_extras.TextOverlay(x0=10, y0=40, scale=3)
    m = sim_extras.text_mask((60, 100), ov, "1:")
    dots = sum(row.count("#") for ch in "1:" for row in sim_extras._FONT[ch])
    assert m.sum() == dots * 9
    ys, xs = np.nonzero(m)
    # the "1" glyph's stem is its middle column; the top row of dots is row y0
    assert ys.max() == 40 and ys.min() == 40 - 7 * 3 + 1
    assert xs.min() == 10 + 1 * 3            # " ##  " row: first lit dot in column 1
    with pytest.raises(ConfigError, match="no glyph"):
        sim_extras.text_mask((10, 10), ov, "Z")


def test_burn_text_does_not_change_its_input():
    raw = np.full((480, 640), 20, np.uint8)
    before = raw.copy()
    ex = sim_extras.Extras(text=sim_extras.TextOverlay())
    out, mask = sim_extras.burn_text(raw, ex, utc_iso="2020-10-12T04:38:23.000",
                                     saturation_adu=255)
    np.testing.assert_array_equal(raw, before)
    assert out.dtype == np.uint8 and (out[mask] == 255).all() and (out[~mask] == 20).all()
    # "2020-10-12 04:38:23 UTC": 23 glyphs of 6 dots at 2 px
    xs = np.nonzero(mask.any(axis=0))[0]
    assert xs.max() < 6 + 23 * 6 * 2
    with pytest.raises(ConfigError, match="Dome"):
        sim_extras.Extras(dome="big")


def test_extras_off_give_the_same_frame(cam, frames):
    plain = frames[0]
    again = simulate.simulate(cam, seed=2, extras=sim_extras.Extras())
    np.testing.assert_array_equal(plain.image, again.image)
    assert len(again.truth.extras.planets) == 0


def test_dome_is_dark_and_text_is_burned(cam, frames):
    plain, sim = frames
    ex = sim.truth.extras
    bias = cam.simulation.bias_adu
    inner = ex.dome & ~ex.text
    assert inner.sum() > 2000
    # behind the dome only bias, read noise and hot pixels; the sky is far brighter
    assert abs(np.median(sim.image[inner]) - bias) <= 2
    assert np.median(plain.image[inner]) > bias + 30
    assert (sim.image[ex.text] == cam.sensor.saturation_adu).all()
    # the dome's outline: every masked pixel is below its top and within its azimuths
    ys, xs = np.nonzero(ex.dome)
    alt, az = sim.truth.model.xy_to_altaz(xs, ys)
    assert alt.max() < 30.0 and (np.abs((az - 150.0 + 180) % 360 - 180) < 30.0).all()


def test_planets_are_bright_points_where_astropy_puts_them(cam, frames):
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    sim = frames[1]
    pl = sim.truth.extras.planets
    assert sorted(pl["name"]) == ["Jupiter", "Mars", "Saturn"]
    site, _ = coords.site_from_config(cam.site)
    t = sim.truth.time
    loc = EarthLocation(lon=site.lon_deg * u.deg, lat=site.lat_deg * u.deg,
                        height=site.height_m * u.m)
    tt = Time(t.utc1, t.utc2, format="jd", scale="utc")
    frame = AltAz(obstime=tt, location=loc, pressure=site.pressure_hpa * u.hPa,
                  temperature=site.temperature_c * u.deg_C, relative_humidity=site.humidity,
                  obswl=site.wavelength_um * u.um)
    for row in pl:
        b = get_body(row["name"].lower(), tt, loc).transform_to(frame)
        x, y = sim.truth.model.altaz_to_xy(b.alt.deg, b.az.deg)
        assert np.hypot(x - row["x"], y - row["y"]) < 0.05
        ix, iy = int(np.rint(x)), int(np.rint(y))
        stamp = sim.image[iy - 1:iy + 2, ix - 1:ix + 2].astype(float)
        # Mars and Jupiter saturate an 8-bit sensor; Saturn (V ~ 1) stands far above the sky
        assert stamp.max() >= (255 if row["VMAG"] < 0 else np.median(sim.image) + 60)


def test_command_line_renders_the_extras(tmp_path, capsys):
    from astropy.io import fits

    out = tmp_path / "small.fits"
    assert ac_simulate.main([str(out), "--camera", str(SMALL), "--planets", "--text",
                          "--dome", "150", "30", "30"]) == 0
    img = fits.getdata(out)
    ov = sim_extras.TextOverlay()
    assert (img[ov.y0 - 13:ov.y0 + 1, ov.x0:ov.x0 + 40] == 255).sum() > 50
    assert ac_simulate.main([str(tmp_path / "bad.fits"), "--camera", str(SMALL), "--dome", "150",
                          "0", "30"]) == 2
    assert "HALF_WIDTH" in capsys.readouterr().err
