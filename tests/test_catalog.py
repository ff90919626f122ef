"""Catalog: Hp -> V, proper motion, nearest neighbours, the cache."""

import numpy as np
import pytest

from allsky_camera import catalog


@pytest.fixture()
def cache(tmp_path):
    catalog._MEMO.clear()
    yield tmp_path
    catalog._MEMO.clear()


def test_vmag_of_known_stars(cache):
    c = catalog.load_catalog(2.5, cache_dir=cache)
    v = dict(zip(c["hip"], c["vmag"]))
    # Johnson V (Bright Star Catalogue): Vega, Arcturus, Capella, Procyon, Altair
    for hip, vj in ((91262, 0.03), (69673, -0.04), (24608, 0.08), (37279, 0.34),
                    (97649, 0.77)):
        assert v[hip] == pytest.approx(vj, abs=0.06), hip


def test_vmag_from_hp_colour_terms():
    hp = np.array([5.0, 5.0, 5.0, 5.0])
    bv = np.array([-0.2, 0.0, 1.0, np.nan])
    v = catalog.vmag_from_hp(hp, bv)
    assert v[0] > v[1] > v[2]                  # red stars are brighter in Hp than in V
    assert v[1] - 5.0 == pytest.approx(-0.011, abs=0.005)   # Bessell (2000) at B-V ~ 0
    assert v[3] == 5.0                         # no colour: V = Hp


def test_proper_motion_of_barnards_star():
    # HIP 87937: pmRA -798.6, pmDE 10328.1 mas/yr
    ra0, dec0 = 269.45402, 4.66828
    ra, dec = catalog.propagate(np.array([ra0]), np.array([dec0]), np.array([-798.58]),
                                np.array([10328.12]), catalog.HIPPARCOS_EPOCH_JD + 30 * 365.25)
    assert (dec[0] - dec0) * 3600 == pytest.approx(10.328 * 30, rel=1e-3)
    assert (ra[0] - ra0) * 3600 * np.cos(np.radians(dec0)) == pytest.approx(-0.7986 * 30,
                                                                             rel=2e-2)


def test_nearest_neighbours_against_brute_force(cache):
    c = catalog.load_catalog(3.0, cache_dir=cache)
    ra, dec = np.radians(c["ra_deg"]), np.radians(c["dec_deg"])
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
    ang = np.degrees(np.arccos(np.clip(v @ v.T, -1, 1)))
    np.fill_diagonal(ang, np.inf)
    np.testing.assert_allclose(c["nn_sep_deg"], ang.min(axis=1), atol=1e-4)
    j = ang.argmin(axis=1)
    np.testing.assert_allclose(c["nn_dv"], c["vmag"][j] - c["vmag"], atol=1e-5)


def test_cache_round_trip_and_rebuild(cache, monkeypatch):
    a = catalog.load_catalog(3.0, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    catalog._MEMO.clear()

    def boom():
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(catalog, "_parse", boom)
    b = catalog.load_catalog(3.0, cache_dir=cache)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    monkeypatch.undo()
    files[0].write_bytes(b"corrupt")
    catalog._MEMO.clear()
    c = catalog.load_catalog(3.0, cache_dir=cache)
    np.testing.assert_array_equal(a["hip"], c["hip"])


def test_reference_stars_table(cache):
    t = catalog.reference_stars(2459134.7, 3.0, cache_dir=cache)
    assert {"HIP", "RA", "DEC", "VMAG", "BV", "nn_sep_deg"} <= set(t.colnames)
    assert str(t["RA"].unit) == "deg"
    assert (t["VMAG"] <= 3.0).all() and len(t) > 100
    empty = catalog.reference_stars(2459134.7, -5.0, cache_dir=cache)
    assert len(empty) == 0 and empty.colnames == t.colnames
