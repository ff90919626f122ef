"""Planets: ERFA positions against astropy's get_body, magnitudes against published
oppositions, and the PLANET flag of the pipeline."""

from pathlib import Path

import numpy as np
import pytest

from allsky_camera.camera import coords

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "tests" / "data" / "SMALL640.yaml"
DCT = REPO.parent / "shared" / "data" / "dct"


def _astropy_altaz(names, t, site):
    """Topocentric alt/az (deg) of planets by astropy (its built-in ephemeris), no refraction."""
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    loc = EarthLocation(lon=site.lon_deg * u.deg, lat=site.lat_deg * u.deg,
                        height=site.height_m * u.m)
    tt = Time(t.utc1, t.utc2, format="jd", scale="utc")
    frame = AltAz(obstime=tt, location=loc)
    out = {}
    for n in names:
        b = get_body(n.lower(), tt, loc).transform_to(frame)
        out[n] = (float(b.alt.deg), float(b.az.deg))
    return out


@pytest.mark.parametrize("iso", ["2020-10-12T04:38:23", "2019-03-06T08:30:37",
                                 "2024-06-01T10:00:00", "2026-01-15T03:00:00"])
def test_planet_positions_match_astropy(iso):
    site = coords.Site(-111.5997, 31.9599, 2100.0)          # no refraction, as astropy here
    t = coords.parse_time(iso)
    ours = coords.planets_altaz(t, site)
    ref = _astropy_altaz(coords.PLANETS, t, site)
    assert set(ours) == {"Venus", "Mars", "Jupiter", "Saturn"}
    for n, (alt, az) in ours.items():
        sep = coords.angular_sep(az, alt, ref[n][1], ref[n][0]) * 3600.0
        # plan94 is good to a few arcsec; one pixel of a small camera is 1260 arcsec
        assert sep < 10.0, (n, iso, sep)


def test_planet_separation_ignores_planets_below_the_horizon():
    planets = {"Venus": (-20.0, 90.0), "Mars": (45.0, 180.0)}
    sep = coords.planet_separation([45.0, 46.0, 50.0], [180.0, 180.0, 90.0], planets)
    np.testing.assert_allclose(sep[:2], [0.0, 1.0], atol=1e-9)
    assert sep[2] > 30.0
    assert np.isinf(coords.planet_separation([10.0], [0.0], {"Venus": (-5.0, 0.0)})).all()
    with pytest.raises(ValueError, match="Pluto"):
        coords.planet_radec(coords.parse_time("2020-01-01T00:00:00"), "Pluto")


@pytest.mark.parametrize("name, iso, vmag", [
    # published magnitudes at opposition (phase angle ~ 0, so the full-phase law holds)
    ("Mars", "2020-10-13T23:00:00", -2.6),        # opposition of 13 October 2020
    ("Jupiter", "2020-07-14T08:00:00", -2.75),    # opposition of 14 July 2020
])
def test_planet_magnitude_at_opposition(name, iso, vmag):
    from allsky_camera.sim.sim_extras import planet_vmag

    _, _, dist, helio = coords.planet_radec(coords.parse_time(iso), name)
    assert planet_vmag(dist, helio, name) == pytest.approx(vmag, abs=0.2)


@pytest.fixture(scope="module")
def small_reduced(tmp_path_factory):
    from allsky_camera import ac_proc
    from allsky_camera.camera import config
    from allsky_camera.sim import sim_extras, simulate
    from allsky_camera.stages import io

    cam = config.load_camera(SMALL)
    sim = simulate.simulate(cam, seed=11, extras=sim_extras.Extras(planets=True),
                            zenith_shift=(1.2, -0.8), rotation_deg=0.2)
    exp = io.exposure_from_data("small.fits", sim.image, sim.header, cam)
    out = tmp_path_factory.mktemp("small")
    opts = ac_proc.build_parser().parse_args(["x", "--outdir", str(out), "--skip_checkplots",
                                              "--skip_sbmap", "--dont_write_detrended"])
    return cam, sim, ac_proc.process(exp, cam, opts)


@pytest.mark.slow
def test_pipeline_flags_stars_near_planets(small_reduced):
    from allsky_camera.flags import bit

    cam, sim, res = small_reduced
    cat = res["catalog"]
    assert len(sim.truth.extras.planets) == 3                 # Mars, Jupiter, Saturn up
    site, _ = coords.site_from_config(cam.site)
    ref = _astropy_altaz(coords.PLANETS, sim.truth.time, site)
    alt, az = np.asarray(cat["alt_deg"]), np.asarray(cat["az_deg"])
    # refraction (on in the pipeline, off in the reference) moves a planet < 0.1 deg here
    sep = np.min([coords.angular_sep(az, alt, a_z, a_l) for a_l, a_z in ref.values()
                  if a_l > 0], axis=0)
    flagged = (np.asarray(cat["flags"]) & bit("PLANET")) > 0
    lim = cam.photometry.planet_exclusion_deg
    assert flagged.sum() >= 1
    assert (flagged == (sep < lim))[np.abs(sep - lim) > 0.1].all()
    assert res["zeropoint"].ok
    # the per-exposure fit did not use them, nor did the zeropoint (flags != 0)
    assert not np.any(flagged & (np.asarray(cat["flags"]) == 0))
    m, t = res["solution"].model, sim.truth.model
    assert np.hypot(m.x0 - t.x0, m.y0 - t.y0) < 0.3


@pytest.mark.slow
def test_catalog_header_names_the_planet_flag(small_reduced):
    cards = {k: v for k, v, _ in small_reduced[2]["header_cards"]}
    assert cards["FLAGB10"] == "PLANET"


@pytest.mark.realdata
@pytest.mark.parametrize("frame, names", [("005", ("Mars", "Jupiter", "Saturn")),
                                          ("010", ("Mars", "Saturn"))])
def test_planets_are_where_predicted_on_the_real_dct_frames(frame, names):
    from allsky_camera.camera import config
    from allsky_camera.stages import io

    if not DCT.is_dir():
        pytest.skip(f"the real DCT frames are not here ({DCT}): skipped")
    cam = config.load_camera("DCT")
    exp = io.read_exposure(DCT / f"{frame}.fits.bz2", cam)
    site, _ = coords.site_from_config(cam.site, exp.header)
    img = exp.raw.astype(float)
    pl = coords.planets_altaz(exp.time, site)
    assert {n for n, (a, _) in pl.items() if a > 5} == set(names)
    for n in names:
        x, y = (float(v) for v in cam.astrometry.model.altaz_to_xy(*pl[n]))
        ix, iy = round(x), round(y)
        box = img[iy - 6:iy + 7, ix - 6:ix + 7]
        local = np.median(img[iy - 20:iy + 21, ix - 20:ix + 21])
        # the brightest pixel near the prediction is the planet: within 1.5 px of it
        j, i = np.unravel_index(np.argmax(box), box.shape)
        assert np.hypot(ix - 6 + i - x, iy - 6 + j - y) < 1.5, n
        assert box.max() > local + 10000.0, n
