"""The photometric model: airmass against published numbers, fits on known stars,
the simulator's extinction / colour / vignetting recovered, and SKYSTAT."""

import dataclasses

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import photmodel, skystat, transparency


@pytest.fixture(scope="module")
def phot():
    return config.load_camera("MDM").photometry


# ------------------------------------------------------------------ airmass
#: Kasten & Young (1989, Appl. Opt. 28, 4735), Table: relative optical airmass
#: of the ISO standard atmosphere (exact integration), and the formula's own
#: largest error, 0.5 % near the horizon (their text).
KY_TABLE = {60.0: 1.9954, 80.0: 5.5998, 90.0: 38.0868}


@pytest.mark.parametrize("zd, x", sorted(KY_TABLE.items()))
def test_airmass_matches_kasten_young_table(zd, x):
    assert photmodel.airmass(zd) == pytest.approx(x, rel=5e-3)


def test_airmass_against_hardie_and_secant():
    # Hardie (1962, Astronomical Techniques p. 180) polynomial in sec z - 1,
    # good to 0.1 % to X = 6.8; the plane-parallel secant near the zenith
    zd = np.linspace(0.0, 80.0, 81)
    s = 1.0 / np.cos(np.radians(zd)) - 1.0
    hardie = s + 1.0 - 0.0018167 * s - 0.002875 * s ** 2 - 0.0008083 * s ** 3
    np.testing.assert_allclose(photmodel.airmass(zd), hardie, rtol=3e-3)
    np.testing.assert_allclose(photmodel.airmass(zd[:31]), 1.0 + s[:31], rtol=1e-3)
    assert np.isnan(photmodel.airmass([-1.0, 91.0])).all()


def test_vignetting_is_zero_at_zenith_and_even():
    v = photmodel.vignetting_mag([0.0, 45.0, 90.0], (0.4, 0.1))
    np.testing.assert_allclose(v, [0.0, 0.4 / 4 + 0.1 / 16, 0.5])
    assert photmodel.vignetting_mag([30.0], ()) == 0.0


# ------------------------------------------------------------------ fits
def _stars(rng, n, *, zp, k, c, vig, cloud_frac=0.0, cloud_t=0.3, noise=0.03):
    vmag = rng.uniform(1.0, 5.0, n)
    bv = rng.uniform(-0.2, 1.6, n)
    zd = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(70.0)), 1.0, n)))
    m = photmodel.PhotModel(zp, k, c, vig).expected_mag(vmag, bv, zd)
    cloud = rng.random(n) < cloud_frac
    m = m + rng.normal(0.0, noise, n) - 2.5 * np.log10(np.where(cloud, cloud_t, 1.0))
    return m, vmag, bv, zd, cloud


def test_fit_exposure_recovers_zp_and_k_through_clouds(phot):
    rng = np.random.default_rng(7)
    cfg = dataclasses.replace(phot, colour_term=-0.1, vignetting=(0.3, 0.05))
    m, v, bv, zd, cloud = _stars(rng, 600, zp=6.0, k=0.22, c=-0.1, vig=(0.3, 0.05),
                                 cloud_frac=0.3)
    before = m.copy()
    fit = photmodel.fit_exposure(m, v, bv, zd, np.ones(m.size, bool), cfg=cfg)
    np.testing.assert_array_equal(m, before)
    assert fit.k_source == "fitted"
    assert fit.model.k == pytest.approx(0.22, abs=0.01)
    assert fit.model.zp == pytest.approx(6.0, abs=0.01)
    assert not fit.used[cloud].any()                         # clouded stars clipped
    assert fit.k_err < 0.01 and fit.rms_mag == pytest.approx(0.03, abs=0.01)
    cards = dict((k_, v_) for k_, v_, _ in fit.header_cards())
    assert cards["EXTSRC"] == "fitted" and cards["VIGN2"] == 0.3


def test_fit_exposure_falls_back_to_site_default(phot):
    rng = np.random.default_rng(8)
    m, v, bv, zd, _ = _stars(rng, 1500, zp=6.0, k=0.15, c=0.0, vig=())
    near = zd < 20.0                           # no airmass span near the zenith
    fit = photmodel.fit_exposure(m, v, bv, zd, near, cfg=phot)
    assert fit.k_source == "default" and fit.model.k == phot.ext_coef
    assert "airmass span" in fit.k_why and np.isnan(fit.k_err)
    assert fit.model.zp == pytest.approx(6.0, abs=0.01)
    few = photmodel.fit_exposure(m, v, bv, zd, np.arange(m.size) < 3, cfg=phot)
    assert not few.ok and "fewer than" in few.message


def test_calibrate_terms_recovers_colour_and_vignetting():
    rng = np.random.default_rng(9)
    frames = []
    for zp in (9.8, 9.7):
        m, v, bv, zd, _ = _stars(rng, 500, zp=zp, k=0.15, c=-0.12, vig=(0.5, 0.1))
        frames.append((m, v, bv, zd, np.ones(m.size, bool)))
    t = photmodel.calibrate_terms(frames, k=0.15, n_vignetting=2, clip_sigma=3.0,
                                  faint_clip_mag=0.3, min_stars=30)
    assert t.colour_term == pytest.approx(-0.12, abs=0.01)
    assert t.zp_frames == pytest.approx((9.8, 9.7), abs=0.01)
    zd = np.linspace(0, 70, 8)
    np.testing.assert_allclose(photmodel.vignetting_mag(zd, t.vignetting),
                               photmodel.vignetting_mag(zd, (0.5, 0.1)), atol=0.015)


# ------------------------------------------------------------------ haze
def test_uniform_haze_is_not_cloud():
    cfg = config.Transparency()
    n = 400
    rng = np.random.default_rng(4)
    cell = rng.integers(0, 50, n)
    w = np.ones(n)
    t = np.full(n, 0.9)
    s, _ = transparency.summarize(t, w, cell, 768, cfg.clear_threshold, 0.9, cfg.haze_min)
    assert s.clear_fraction == 1.0 and s.grey == 0.9
    # a uniform 0.5 is not haze: only haze_min is divided out
    s, _ = transparency.summarize(np.full(n, 0.5), w, cell, 768, cfg.clear_threshold, 0.5,
                                  cfg.haze_min)
    assert s.clear_fraction == 0.0
    assert dict((k, v) for k, v, _ in s.header_cards())["TRANSGRY"] == 0.5


# ------------------------------------------------------------------ SKYSTAT
@pytest.mark.parametrize("sun, moon, ill, mag, want", [
    (10.0, -30.0, 0.5, 15.0, "day"),
    (-8.0, -30.0, 0.5, 17.0, "twilight"),
    (-30.0, 40.0, 0.9, 18.5, "moon"),
    (-30.0, 40.0, 0.02, 21.3, "dark"),         # a thin crescent
    (-30.0, 40.0, 0.9, 21.3, "dark"),          # the sky says the light is negligible
    (-40.0, -20.0, 0.9, float("nan"), "dark"),
])
def test_skystat(sun, moon, ill, mag, want):
    s = skystat.classify({"sun_alt": sun, "moon_alt": moon, "moon_illum": ill}, mag,
                         config.SkyStatus())
    assert s.status == want
    assert dict((k, v) for k, v, _ in s.header_cards())["SKYSTAT"] == want


def test_too_bright_only_for_twilight_and_day():
    assert skystat.too_bright("twilight", 2, 10) and skystat.too_bright("day", 0, 10)
    assert not skystat.too_bright("dark", 2, 10) and not skystat.too_bright("twilight", 50, 10)


def test_zenith_sky_mag_inverts_the_rate():
    # 20 mag/arcsec^2 with ZP 6: 10^(-0.4 * 14) ADU/s per arcsec^2
    omega = np.full(5, 1e-6)
    rate = 10 ** (-0.4 * (20.0 - 6.0)) * omega * skystat.ARCSEC2_PER_SR
    mag = skystat.zenith_sky_mag(rate * 60.0, np.full(5, 10.0), omega, 60.0, 6.0, 30.0)
    assert mag == pytest.approx(20.0, abs=1e-9)
    assert np.isnan(skystat.zenith_sky_mag(rate, np.full(5, 50.0), omega, 60.0, 6.0, 30.0))


# ------------------------------------------------------------------ simulator
def _reduce(camera, sim, outdir, name):
    from allsky_camera import ac_proc
    from allsky_camera.stages import io

    exp = io.exposure_from_data(str(outdir / f"{name}.fits"), sim.image, sim.header, camera)
    opts = ac_proc.build_parser().parse_args(["x", "--outdir", str(outdir), "--skip_checkplots",
                                              "--skip_sbmap", "--dont_write_detrended",
                                              "--dont_write_catalog"])
    return ac_proc.process(exp, camera, opts)


@pytest.mark.slow
def test_simulator_terms_recovered(tmp_path):
    """Calibrate c and v on one simulated frame (k held at the default), then
    fit k on another night with a different extinction."""
    from allsky_camera.sim import simulate

    cam = config.load_camera("MDM")
    c_true, vig_true, k_cal, k_night = -0.10, (0.35, 0.10), 0.15, 0.25
    sim1 = simulate.simulate(cam, seed=21, ext_coef=k_cal, colour_term=c_true,
                             vignetting=vig_true)
    assert sim1.header["SIMEXTK"] == k_cal and sim1.header["SIMVIG2"] == 0.35
    res = _reduce(cam, sim1, tmp_path, "cal")
    cat = res["catalog"]
    m = -2.5 * np.log10(np.where(cat["flux_total_adu"] > 0, cat["flux_total_adu"], np.nan)
                        / sim1.truth.exptime)
    sel = (np.asarray(cat["flags"]) == 0) & (np.asarray(cat["VMAG"]) <= 5.0)
    terms = photmodel.calibrate_terms(
        [(m, np.asarray(cat["VMAG"]), np.asarray(cat["BV"]), 90 - np.asarray(cat["alt_deg"]),
          sel)], k=k_cal, n_vignetting=2, clip_sigma=3.0, faint_clip_mag=0.3, min_stars=30)
    assert terms.colour_term == pytest.approx(c_true, abs=0.02)
    zd = np.linspace(0, 70, 8)
    np.testing.assert_allclose(photmodel.vignetting_mag(zd, terms.vignetting),
                               photmodel.vignetting_mag(zd, vig_true), atol=0.03)
    # another night, the camera now knows its terms
    ph = dataclasses.replace(cam.photometry, colour_term=terms.colour_term,
                             vignetting=terms.vignetting)
    cam2 = dataclasses.replace(cam, photometry=ph)
    sim2 = simulate.simulate(cam, seed=22, ext_coef=k_night, colour_term=c_true,
                             vignetting=vig_true)
    res2 = _reduce(cam2, sim2, tmp_path, "night")
    fit = res2["zeropoint"].model_fit
    assert fit.k_source == "fitted"
    assert fit.model.k == pytest.approx(k_night, abs=0.02)
    assert res2["zeropoint"].zp_total == pytest.approx(sim2.truth.zp_true, abs=0.03)
    cat2 = res2["catalog"]
    good = (np.asarray(cat2["flags"]) == 0) & (np.asarray(cat2["VMAG"]) <= 5.0)
    zd2 = 90 - np.asarray(cat2["alt_deg"])
    for lo in range(0, 70, 10):
        band = good & (zd2 >= lo) & (zd2 < lo + 10)
        assert abs(np.median(cat2["transparency"][band]) - 1.0) < 0.05, lo


# ------------------------------------------------------------------ tilt and colour curvature
def test_tilt_is_the_first_order_of_a_decentred_vignetting():
    """A radial throughput loss ``a rho^2`` centred at ``c`` (in units of the
    zd = 90 deg radius of an equidistant lens, rho = |p - c|) differs from the
    centred one by ``-2 a p.c + a |c|^2``: the tilt with ``t = -2 a c``."""
    a, cn, ce = 0.4, 0.05, -0.03
    zd = np.linspace(0.0, 80.0, 17)[:, None] * np.ones((1, 12))
    az = np.linspace(0.0, 330.0, 12)[None, :] * np.ones((17, 1))
    r = zd / 90.0
    pn, pe = r * np.cos(np.radians(az)), r * np.sin(np.radians(az))
    exact = a * ((pn - cn) ** 2 + (pe - ce) ** 2)
    model = (photmodel.vignetting_mag(zd, (a,))
             + photmodel.tilt_mag(zd, az, (-2 * a * cn, -2 * a * ce)))
    np.testing.assert_allclose(model, exact - a * (cn ** 2 + ce ** 2), atol=1e-12)
    assert photmodel.tilt_mag([40.0], None, ()) == 0.0
    with pytest.raises(ValueError, match="azimuth"):
        photmodel.tilt_mag([40.0], None, (0.1, 0.0))


def test_colour_curvature_about_the_pivot():
    bv = np.array([-0.2, 0.6, 1.6])
    np.testing.assert_allclose(photmodel.colour_mag(bv, -0.1), -0.1 * bv)
    q = photmodel.colour_mag(bv, -0.1, -0.2) - photmodel.colour_mag(bv, -0.1)
    np.testing.assert_allclose(q, -0.2 * (bv - photmodel.COLOUR_PIVOT_BV) ** 2)
    assert q[1] == 0.0


def test_calibrate_terms_recovers_tilt_ellipse_and_curvature(phot):
    """Stars seen through an elliptical, decentred quadratic throughput loss
    written in the pixel plane of an equidistant lens (north up, east at
    +90 deg), not with the model's own terms."""
    rng = np.random.default_rng(10)
    c, c2, k, zp = -0.12, -0.15, 0.15, 9.7
    a, big, small, az0, cn, ce = 0.4, 1.1, 0.9, 30.0, 0.2, -0.05
    n = 1500
    vmag, bv = rng.uniform(1.0, 5.0, n), rng.uniform(-0.2, 1.8, n)
    zd = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(70.0)), 1.0, n)))
    az = rng.uniform(0.0, 360.0, n)
    r, phi = zd / 90.0, np.radians(az - az0)
    u, w = r * np.cos(phi), r * np.sin(phi)             # along and across az0
    ellip = a * ((u / big) ** 2 + (w / small) ** 2)
    # a linear throughput gradient toward (cn, ce), as a decentred lens gives
    grad = r * (cn * np.cos(np.radians(az)) + ce * np.sin(np.radians(az)))
    m = (vmag - zp + k * (photmodel.airmass(zd) - 1.0) + c * bv
         + c2 * (bv - photmodel.COLOUR_PIVOT_BV) ** 2 + ellip + grad
         + rng.normal(0.0, 0.03, n))
    t = photmodel.calibrate_terms([(m, vmag, bv, zd, np.ones(n, bool), None, az)], k=k,
                                  n_vignetting=2, clip_sigma=3.0, faint_clip_mag=0.3,
                                  min_stars=30, colour_quad=True, tilt=True, ellipse=True)
    assert t.colour_term == pytest.approx(c, abs=0.01)
    assert t.colour_quad == pytest.approx(c2, abs=0.01)
    np.testing.assert_allclose(t.vignetting_tilt, (cn, ce), atol=0.01)
    # a rho^2 = a r^2 (m + d cos 2 (az - az0)), m, d the mean and half
    # difference of 1/big^2 and 1/small^2
    d = a * 0.5 * (big ** -2 - small ** -2)
    np.testing.assert_allclose(t.vignetting_ellipse,
                               (d * np.cos(np.radians(2 * az0)), d * np.sin(np.radians(2 * az0))),
                               atol=0.01)
    assert t.vignetting[0] == pytest.approx(a * 0.5 * (big ** -2 + small ** -2), abs=0.02)
    assert t.zp == pytest.approx(zp, abs=0.01)
    # the exposure fit with these camera terms gets ZP and k back
    cfg = dataclasses.replace(phot, colour_term=t.colour_term, colour_quad=t.colour_quad,
                              vignetting=t.vignetting, vignetting_tilt=t.vignetting_tilt,
                              vignetting_ellipse=t.vignetting_ellipse)
    fit = photmodel.fit_exposure(m, vmag, bv, zd, np.ones(n, bool), cfg=cfg, az_deg=az)
    assert fit.model.k == pytest.approx(k, abs=0.01)
    assert fit.model.zp == pytest.approx(zp, abs=0.01)
    cards = {k_: v_ for k_, v_, _ in fit.header_cards()}
    assert cards["COLQUAD"] == round(t.colour_quad, 4)
    assert cards["VIGNTN"] == round(t.vignetting_tilt[0], 4)
    assert cards["VIGNES"] == round(t.vignetting_ellipse[1], 4)
    with pytest.raises(ValueError, match="azimuth"):
        photmodel.fit_exposure(m, vmag, bv, zd, np.ones(n, bool), cfg=cfg)


# ------------------------------------------------------------------ aperture correction and k
def test_apcor_slope_error_is_the_textbook_one(phot):
    """Equal errors sigma: the slope's error of a straight-line fit is
    sigma / sqrt(sum (q - mean q)^2) (e.g. Bevington & Robinson, eq. 6.22)."""
    from allsky_camera.stages import photometry

    rng = np.random.default_rng(11)
    n = 400
    zd = rng.uniform(0.0, 70.0, n)
    q = (zd / 90.0) ** 2
    flux = np.full(n, 1e4)
    sigma = 0.05                                          # mag, per star
    big = flux * 10 ** (0.4 * (0.25 + 0.3 * q + rng.normal(0.0, sigma, n)))
    a, b, _, src, b_err = photometry.fit_apcor(zd, flux, big, np.ones(n, bool), phot,
                                               with_err=True)
    assert src == "measured" and b == pytest.approx(0.3, abs=0.03)
    assert b_err == pytest.approx(sigma / np.sqrt(np.sum((q - q.mean()) ** 2)), rel=0.15)
    assert len(photometry.fit_apcor(zd, flux, big, np.ones(n, bool), phot)) == 4


def test_extinction_error_carries_the_apcor_slope(phot):
    """A least-squares fit is linear in its data: refitting with the total
    magnitudes moved by a slope error db moves k by what the propagated
    error says."""
    rng = np.random.default_rng(12)
    m, v, bv, zd, _ = _stars(rng, 800, zp=6.0, k=0.15, c=0.0, vig=(), noise=0.02)
    sel = np.ones(m.size, bool)
    fit = photmodel.fit_exposure(m, v, bv, zd, sel, cfg=phot)
    db = 0.05
    moved = photmodel.fit_exposure(m - db * (zd / 90.0) ** 2, v, bv, zd, fit.used, cfg=phot)
    with_b = photmodel.with_apcor_slope_error(fit, zd, db)
    assert with_b.k_err_apcor == pytest.approx(abs(moved.model.k - fit.model.k), rel=0.1)
    assert with_b.k_err == pytest.approx(np.hypot(fit.k_err, with_b.k_err_apcor))
    assert with_b.model == fit.model
    near = photmodel.fit_exposure(m, v, bv, zd, zd < 20.0, cfg=phot)   # k is the default
    assert photmodel.with_apcor_slope_error(near, zd, db) is near


def test_clouded_stars_do_not_set_the_aperture_correction(phot):
    """Stars behind a cloud (20 % of their light) whose aperture correction is
    off (their sky's error) are left out of it; uniform haze keeps them all."""
    from allsky_camera.stages import photometry

    rng = np.random.default_rng(13)
    n, t = 300, 60.0
    vmag = rng.uniform(1.0, 3.5, n)
    zd = rng.uniform(0.0, 65.0, n)
    q = (zd / 90.0) ** 2
    cloud = rng.random(n) < 0.4
    total = phot_total = 10 ** (-0.4 * (vmag - phot.zp_nominal - 0.25)) * t
    aper = total * 10 ** (-0.4 * (0.25 + 0.3 * q)) * np.where(cloud, 0.2, 1.0)
    big = aper * 10 ** (0.4 * (0.25 + 0.3 * q - np.where(cloud, 0.3 * q + 0.1, 0.0)))
    err = np.full(n, 1e-3) * phot_total
    for haze in (1.0, 0.5):
        fl = photometry.Fluxes(aper * haze, err, big * haze, np.zeros(n), np.zeros(n, int))
        zp = photometry.zeropoint(vmag, zd, fl, ~cloud, np.ones(n, bool), phot, t)
        assert zp.apcor_b == pytest.approx(0.3, abs=0.01), haze
        assert zp.n_apcor == (~cloud).sum(), haze
