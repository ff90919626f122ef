"""The per-process caches of the crowding stage (stages/_crowd_cache.py) and
the sky search in crowding.run, against references the project did not make:
astropy's search_around_sky for the sky pairs, ERFA's own apparent-place
chain (eraAtco13, one call per star) for the hourly CIRS places, numpy's
interp for the fast G(b) look-up; and the cached run against the exhaustive
pixel search on the real DCT frame's sky, time and site."""

from pathlib import Path

import numpy as np
import pytest

from allsky_camera.stages import _crowd_cache, catalog, crowding

REPO = Path(__file__).resolve().parents[1]
#: The DCT frame 005's start (its DATE-OBS) and site (header OBSLAT etc.).
DCT_005 = "2018-08-06T05:17:04.752"


def shared():
    """``../shared`` of the checkout (a worktree under wt/ looks one level up too)."""
    for base in (REPO.parent, REPO.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    pytest.skip(f"the shared data folder is not beside {REPO}: skipped")


@pytest.fixture(scope="module")
def deep():
    return catalog.load_catalog(catalog.DEEP_VMAX)


def test_sky_neighbours_match_astropy_search_around_sky(deep):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    _crowd_cache.clear()
    jd = 2458336.72                                     # 2018-08-06
    rng = np.random.default_rng(3)
    # random stars, and some near a pole and across RA 0 / 360
    ra0, dec0 = catalog.positions_at(deep, jd)
    special = np.flatnonzero((np.abs(dec0) > 86) | (ra0 < 1.0) | (ra0 > 359.0))
    q = np.unique(np.concatenate([rng.choice(deep["hip"].size, 300, replace=False),
                                  special[:150]]))
    angle = 3.0
    i, j = _crowd_cache.sky_neighbours(deep, q, angle, jd)
    got = set(zip(q[i].tolist(), j.tolist()))
    # the same pairs at the exact epoch, by astropy
    c_all = SkyCoord(ra0 * u.deg, dec0 * u.deg)
    # (indices into the argument, indices into the caller, ...)
    jj, iq, _, _ = c_all[q].search_around_sky(c_all, angle * u.deg)
    want = {(int(q[a]), int(b)) for a, b in zip(iq, jj) if q[a] != b}
    assert want <= got                      # none missed
    # the extras are only those the year's proper motion can bring within
    extra = got - want
    pm_deg = np.max(np.hypot(deep["pmra_masyr"], deep["pmdec_masyr"])) / 3.6e6
    if extra:
        a, b = np.array(sorted(extra)).T
        s = SkyCoord(ra0[a] * u.deg, dec0[a] * u.deg).separation(
            SkyCoord(ra0[b] * u.deg, dec0[b] * u.deg)).deg
        assert np.all(s < angle + 2 * pm_deg)
    assert len(got) > 1000
    # a star is asked for again, in another company: the same list
    i2, j2 = _crowd_cache.sky_neighbours(deep, q[::-1][:7], angle, jd)
    k = q[::-1][:7]
    for n in range(7):
        np.testing.assert_array_equal(j2[i2 == n], j[i == int(np.flatnonzero(q == k[n])[0])])


def test_sky_neighbours_within_keeps_the_nearest(deep):
    jd = 2458336.72
    q = np.arange(0, deep["hip"].size, 97)
    i, j = _crowd_cache.sky_neighbours(deep, q, 3.3, jd)
    within = np.linspace(0.5, 3.3, q.size)
    i2, j2 = _crowd_cache.sky_neighbours(deep, q, 3.3, jd, within_deg=within)
    ra, dec = catalog.positions_at(deep, jd)
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    s = SkyCoord(ra[q[i2]] * u.deg, dec[q[i2]] * u.deg).separation(
        SkyCoord(ra[j2] * u.deg, dec[j2] * u.deg)).deg
    pm_deg = np.max(np.hypot(deep["pmra_masyr"], deep["pmdec_masyr"])) / 3.6e6
    assert np.all(s < within[i2] + pm_deg + 1e-9)      # the year's motion included
    s_all = SkyCoord(ra[q[i]] * u.deg, dec[q[i]] * u.deg).separation(
        SkyCoord(ra[j] * u.deg, dec[j] * u.deg)).deg
    assert np.count_nonzero(s_all < within[i]) <= i2.size < i.size
    # a radius that is not a number keeps all, a negative one none
    odd = within.copy()
    odd[0], odd[1] = np.nan, -1.0
    i3, j3 = _crowd_cache.sky_neighbours(deep, q, 3.3, jd, within_deg=odd)
    np.testing.assert_array_equal(j3[i3 == 0], j[i == 0])
    assert not np.any(i3 == 1)
    np.testing.assert_array_equal(j3[i3 > 1], j2[i2 > 1])


def test_hourly_places_are_erfa_at_the_exposure_time(deep):
    """Interpolated between the hour's ends vs ERFA's whole chain per star."""
    import erfa

    from allsky_camera.camera import coords

    site = coords.Site(lon_deg=-111.4222, lat_deg=34.7444, height_m=2360.0,
                       pressure_hpa=770.0)
    # the middle of an hour: the interpolation's worst
    t = coords.parse_time("2018-08-06T05:30:00")
    idx = np.arange(0, deep["hip"].size, 40)
    pl = _crowd_cache.apparent_places(deep, idx, t, site)
    alt, az = coords.cirs_to_altaz(pl.ri_rad, pl.di_rad, t, site)
    ra, dec = catalog.positions_at({k: deep[k][idx] for k in deep}, t.jd_tt)
    aob, zob, *_ = erfa.atco13(np.radians(ra), np.radians(dec), 0.0, 0.0, 0.0, 0.0,
                                    t.utc1, t.utc2, 0.0, np.radians(site.lon_deg),
                                    np.radians(site.lat_deg), site.height_m, 0.0, 0.0,
                                    site.pressure_hpa, site.temperature_c, site.humidity,
                                    site.wavelength_um)
    up = zob < np.radians(80.0)
    d_alt = np.abs(alt - (90.0 - np.degrees(zob)))[up] * 3600.0
    d_az = (np.abs((az - np.degrees(aob) + 180.0) % 360.0 - 180.0)
            * np.sin(zob))[up] * 3600.0
    assert np.count_nonzero(up) > 500
    assert d_alt.max() < 0.005 and d_az.max() < 0.005            # arcsec
    # the hour's start itself: no interpolation left
    t0 = coords.parse_time("2018-08-06T05:00:00")
    pl0 = _crowd_cache.apparent_places(deep, idx, t0, site)
    ri, di = coords.icrs_to_cirs(*catalog.positions_at({k: deep[k][idx] for k in deep},
                                                        t0.jd_tt), t0, site)
    np.testing.assert_allclose(pl0.di_rad, di, atol=1e-12)
    np.testing.assert_allclose(np.mod(pl0.ri_rad - ri + 1, 2 * np.pi) - 1, 0.0, atol=1e-12)


def test_caches_are_bounded():
    _crowd_cache.clear()
    lru = _crowd_cache._Lru(2)
    built = []
    for key in (1, 2, 1, 3, 2):
        lru.get(key, lambda key=key: built.append(key) or key)
    assert built == [1, 2, 3, 2]            # 2 was dropped when 3 came (1 used later)
    assert len(lru._data) == 2


def test_catalogue_flux_is_astropy_magnitude_and_kept(deep):
    from astropy import units as u

    _crowd_cache.clear()
    flux = _crowd_cache.catalogue_flux(deep)
    vmag = np.asarray(deep["vmag"], dtype=float)
    # astropy's logarithmic magnitude unit: 10^(-0.4 m) (Pogson)
    np.testing.assert_allclose(flux, u.Magnitude(vmag).physical.value, rtol=1e-14)
    assert _crowd_cache.catalogue_flux(deep) is flux         # computed once
    assert not flux.flags.writeable
    with pytest.raises(ValueError):
        flux[0] = 1.0


def test_erf_profile_look_up_is_numpy_interp():
    b = np.concatenate([np.geomspace(1e-6, 1e7, 2000), [0.0, 1e-4, 1e6]])
    crowding._erf_profile(1.0)
    lb, g = crowding._G_TABLE
    lbb = np.log(np.maximum(b, crowding._G_MIN))
    want = np.where(b < crowding._G_MIN, 2 * b / np.sqrt(np.pi),
                    np.interp(lbb, lb, g) + np.maximum(lbb - lb[-1], 0.0))
    np.testing.assert_allclose(crowding._erf_profile(b), want, rtol=1e-12, atol=1e-15)


def test_enclosed_pairs_is_enclosed_fast():
    rng = np.random.default_rng(5)
    sig = rng.uniform(0.6, 2.5, 40)
    star = np.sort(rng.integers(0, 40, 5000))
    d = rng.uniform(0.0, 40.0, 5000)
    ap, an = crowding._enclosed_pairs(2.0, (5.0, 10.0), sig, star, d)
    s = sig[star]
    np.testing.assert_allclose(ap, crowding.enclosed_fast(2.0, d, s), atol=3e-7)
    np.testing.assert_allclose(an, crowding.enclosed_fast(10.0, d, s)
                               - crowding.enclosed_fast(5.0, d, s), atol=3e-7)


@pytest.fixture(scope="module")
def dct_sky(deep):
    """Crowding inputs on the DCT camera at frame 005's time and site: every
    reference star above 5 deg through the camera's model."""
    from astropy.io import fits

    from allsky_camera.camera import config, coords

    path = shared() / "dct" / "005.fits.bz2"
    header = fits.getheader(path)
    cam = config.load_camera("DCT")
    site, _ = coords.site_from_config(cam.site, header)
    t = coords.parse_time(header["DATE-OBS"])
    assert t.iso_utc.startswith(DCT_005[:16])
    model = cam.astrometry.model
    stars = catalog.reference_stars(t.jd_tt, cam.photometry.vmax)
    alt, az = coords.radec_to_altaz(np.asarray(stars["RA"]), np.asarray(stars["DEC"]), t,
                                    site)
    up = alt > 1.0
    stars, alt, az = stars[up], alt[up], az[up]
    x, y = model.altaz_to_xy(alt, az)
    zd = 90.0 - alt
    apcor = 0.15 + 0.1 * (zd / 90.0) ** 2           # mag: wider PSFs low down
    vmag = np.asarray(stars["VMAG"], dtype=float)
    total = 2e5 * 10 ** (-0.4 * (vmag - 3.0))
    noise = np.full(len(stars), 25.0)
    noise[::50] = np.nan                            # a few without a noise: the mean's
    args = (stars, x, y, model, t, site, apcor, cam.photometry, (1040, 1392))
    return args, dict(star_total_adu=total, sky_sigma_adu=noise)


def test_cached_run_is_the_exhaustive_search_on_the_dct_sky(dct_sky):
    args, kw = dct_sky
    _crowd_cache.clear()
    ref = crowding.run_exhaustive(*args, **kw)
    got = crowding.run(*args, **kw)
    np.testing.assert_array_equal(got.n_neighbours, ref.n_neighbours)
    assert ref.n_neighbours.sum() > 50_000
    for name in ("c_aper", "c_annulus", "c_annulus_max"):
        a, b = getattr(got, name), getattr(ref, name)
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-9, err_msg=name)
    # a second frame of the hour from the caches: the same again
    again = crowding.run(*args, **kw)
    np.testing.assert_array_equal(again.c_aper, got.c_aper)


def test_results_do_not_depend_on_the_frames_before(dct_sky):
    """Frame B after frame A equals frame B in a fresh process' caches."""
    import dataclasses

    args, kw = dct_sky
    stars, x, y, model, t = args[:5]
    later = dataclasses.replace(t, utc2=t.utc2 + 1.3 / 24, tt2=t.tt2 + 1.3 / 24)
    args_b = (stars, x, y, model, later, *args[5:])
    _crowd_cache.clear()
    fresh = crowding.run(*args_b, **kw)
    _crowd_cache.clear()
    crowding.run(*args, **kw)
    after = crowding.run(*args_b, **kw)
    for name in ("c_aper", "c_annulus", "c_annulus_max", "n_neighbours"):
        np.testing.assert_array_equal(getattr(after, name), getattr(fresh, name))


def test_sky_reach_bounds_the_pixel_pairs_on_the_sky(dct_sky):
    """Every pair within a star's reach in pixels is within its sky angle
    (astropy separations), and the angle is not much wider than needed."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from allsky_camera.camera import coords

    (stars, x, y, model, t, site, apcor, phot, _), _ = dct_sky
    deep = catalog.reference_stars(t.jd_tt, catalog.DEEP_VMAX)
    alt, az = coords.radec_to_altaz(np.asarray(deep["RA"]), np.asarray(deep["DEC"]), t, site)
    up = alt > 0
    xn, yn = model.altaz_to_xy(alt[up], az[up])
    reach = phot.annulus_px[1] + crowding._PSF_REACH_SIGMA * crowding.psf_sigma_px(
        apcor, phot.aper_radius_px)
    i, j = crowding.pairs_within(x, y, xn, yn, reach)
    sep = SkyCoord(np.asarray(stars["RA"])[i] * u.deg, np.asarray(stars["DEC"])[i] * u.deg
                   ).separation(SkyCoord(np.asarray(deep["RA"])[up][j] * u.deg,
                                         np.asarray(deep["DEC"])[up][j] * u.deg)).deg
    alts, stretch = crowding.stretch_by_altitude(model, t, site)
    angle = crowding.sky_reach_deg(float(np.max(reach)), np.min(stretch))
    bound = reach / crowding.local_stretch(model.xy_to_altaz(x, y)[0], alts, stretch, angle)
    ratio = sep / bound[i]
    assert i.size > 100_000
    assert ratio.max() < 1.0 / 1.05 * crowding._SKY_REACH_SAFETY    # 5 % to spare at least
    assert ratio.max() > 0.9                                        # and not vacuous
    assert np.all(bound * crowding._SKY_REACH_SAFETY <= angle)
