"""Transparency and the cloud map on simulated frames with known clouds."""

import logging

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera import ac_proc
from allsky_camera.camera import config
from allsky_camera.sim import simulate
from allsky_camera.stages import io, transparency
from tests_helpers import RecordingHandler


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


def reduce(camera, outdir, clouds, seed):
    sim = simulate.simulate(camera, seed=seed, clouds=clouds)
    exp = io.exposure_from_data(str(outdir / f"frame{seed}.fits"), sim.image, sim.header,
                                camera)
    opts = ac_proc.build_parser().parse_args(["x", "--outdir", str(outdir), "--write_healpix",
                                              "--dont_write_detrended"])
    return ac_proc.process(exp, camera, opts), sim.truth


@pytest.fixture(scope="module")
def clear(camera, tmp_path_factory):
    return reduce(camera, tmp_path_factory.mktemp("clear"), None, 31)


@pytest.fixture(scope="module")
def quarter(camera, tmp_path_factory):
    out = tmp_path_factory.mktemp("quarter")
    res, truth = reduce(camera, out, simulate.Clouds("quarter", 0.2, az_deg=45.0), 32)
    return res, truth, out


def test_clear_sky(clear):
    res, _ = clear
    s = res["transparency"].summary
    assert abs(s.median - 1.0) < 0.03
    assert s.clear_fraction >= 0.95
    cat = res["catalog"]
    assert "transparency" in cat.colnames and np.isfinite(cat["transparency"]).all()


def test_quarter_cloud_in_healpix_map(quarter):
    import healpy as hp

    res, _, out = quarter
    path = next(out.glob("*-healpix.fits"))
    m = hp.read_map(path, hdu=5)                        # TRANSP_HOR
    nside = hp.get_nside(m)
    theta, phi = hp.pix2ang(nside, np.arange(m.size))
    alt, az = 90 - np.degrees(theta), np.degrees(phi)
    daz = (az - 45.0 + 180.0) % 360.0 - 180.0
    with_stars = np.isfinite(m)
    inside = with_stars & (np.abs(daz) < 45)
    outside = with_stars & (np.abs(daz) >= 45)
    # voting stars lie inside the safe radius (alt > ~19 deg); an Nside-8 pixel is ~7 deg
    # across, so one holding such a star can be centred at alt ~14.5 deg
    assert inside.sum() > 30 and outside.sum() > 100 and (alt[with_stars] > 14).all()
    assert np.mean(m[inside] < 0.5) >= 0.9
    assert np.mean(m[outside] > 0.8) >= 0.9
    assert 0.6 < res["transparency"].summary.clear_fraction < 0.85


def test_lost_stars_stay_in_catalog_near_zero(quarter):
    res, _, _ = quarter
    cat = res["catalog"]
    votes = cat["transp_weight"] > 0
    daz = (np.asarray(cat["az_deg"]) - 45.0 + 180.0) % 360.0 - 180.0
    cloudy = votes & (np.abs(daz) < 40)
    assert cloudy.sum() > 50
    assert np.median(cat["transparency"][cloudy]) < 0.35


# brightening 6: clouds lit from below (Moon, city) six times the clear sky, so
# most catalog stars are noise on this sky and must not vote it clear
@pytest.mark.parametrize("transmission, brightening", [(0.05, 1.25), (0.08, 6.0)])
def test_overcast(camera, tmp_path, transmission, brightening):
    log = logging.getLogger("allsky_camera")
    catch = RecordingHandler()
    log.addHandler(catch)
    try:
        res, _ = reduce(camera, tmp_path, simulate.Clouds("overcast", transmission,
                                                          brightening=brightening), 33)
    finally:
        log.removeHandler(catch)
    s = res["transparency"].summary
    h = fits.getheader(next(tmp_path.glob("*-cat.fits")), 1)
    warned = [r.getMessage() for r in catch.records if r.levelno == logging.WARNING]
    f = res["clouds"].fractions()
    # the cloud map is never clear on an overcast
    assert f["clear"] < 0.03, f
    if h["ASTSTAT"] == "FAILED":
        # too few stars to trust any geometry (issue 7): nothing is claimed
        assert not np.isfinite(s.clear_fraction) and h["CLEARFRC"] == "NaN"
        assert h["ZPMSG"] and any("astrometry FAILED" in m and "frame33" in m
                                  for m in warned), warned
    else:
        assert s.clear_fraction <= 0.05 and s.n_cells > 100
        assert abs(s.median - transmission) < 0.05
        assert h["CLEARFRC"] <= 0.05 and h["TRANSMED"] < 0.15 and h["TRANSNPX"] == s.n_cells
        assert any("clouds: mostly cloudy" in m for m in warned), warned
        assert f["cloud"] > 0.7
    # every product was still written
    assert next(tmp_path.glob("*-healpix.fits")) and next(tmp_path.glob("*-transp.png"))


def test_healpix_file_cards(quarter):
    import healpy as hp

    _, truth, out = quarter
    path = next(out.glob("*-healpix.fits"))
    with fits.open(path) as hdul:
        names = [h.name for h in hdul[1:]]
        assert names == ["ZP_HOR", "N_ZP_HOR", "ZP_EQU", "N_ZP_EQU", "TRANSP_HOR", "TRANSP_EQU",
                         "CLOUD_HOR", "CLDCONF_HOR", "CLDDIST_HOR"]
        for k, h in enumerate(hdul[1:], start=1):
            assert h.header["PIXTYPE"] == "HEALPIX" and h.header["ORDERING"] == "RING"
            assert h.header["NSIDE"] == 8 and h.header["FIRSTPIX"] == 0
            assert h.header["LASTPIX"] == 12 * 64 - 1
            assert h.header["COORDSYS"] in ("C", "H")
            assert len(hp.read_map(path, hdu=k)) == 768
    zp = hp.read_map(path, hdu=1)
    ok = np.isfinite(zp)
    # the per-cell zeropoint of the stars, extinction included: ZP - k (X - 1)
    theta, _ = hp.pix2ang(8, np.arange(768))
    z = np.minimum(np.degrees(theta), 90.0)           # cells with stars are above the horizon
    x_ky = 1.0 / (np.cos(np.radians(z)) + 0.50572 * (96.07995 - z) ** -1.6364)
    expect = truth.zp_true - truth.ext_coef * (x_ky - 1.0)
    assert ok.sum() > 100 and abs(np.median(zp[ok] - expect[ok])) < 0.1
    # the cloud state per cell: the quarter cloud (azimuth 0-90) is cloud, the
    # opposite quarter clear (healpy's own cell centres)
    state = hp.read_map(path, hdu=7, dtype=np.int32)
    theta, phi = hp.pix2ang(8, np.arange(768))
    alt, az = 90 - np.degrees(theta), np.degrees(phi)
    high = alt > 25
    assert set(np.unique(state)) <= {0, 1, 2, 3}
    assert np.mean(state[high & (az > 10) & (az < 80)] == 1) > 0.8
    assert np.mean(state[high & (az > 190) & (az < 260)] == 0) > 0.8
    assert (state[alt < 0] == 3).all()


def test_weighted_medians_against_brute_force():
    rng = np.random.default_rng(0)
    v = rng.normal(size=500)
    w = rng.uniform(0, 2, 500)
    g = rng.integers(0, 20, 500)
    med, cnt = transparency.grouped_weighted_median(g, v, w, 20)
    for k in range(20):
        sel = g == k
        assert med[k] == transparency.weighted_median(v[sel], w[sel])
        assert cnt[k] == sel.sum()
    # the weighted median splits the weight in two
    vs, ws = np.sort(v), w[np.argsort(v)]
    m = transparency.weighted_median(v, w)
    assert ws[vs < m].sum() <= 0.5 * w.sum() <= ws[vs <= m].sum()


def test_expected_snr_falls_on_bright_sky():
    faint = transparency.expected_snr(np.array([5.0]), 5.6, 60.0, np.array([2.0]), 12.6)
    bright = transparency.expected_snr(np.array([5.0]), 5.6, 60.0, np.array([20.0]), 12.6)
    assert faint[0] == pytest.approx(10 * bright[0])


def _run(cfg, n, **kw):
    args = dict(vmag=np.full(n, 3.0), alt_deg=np.full(n, 60.0), az_deg=np.linspace(0, 350, n),
                flags=np.zeros(n, dtype=int), flux_total_adu=np.full(n, 0.0),
                sky_sigma_adu=np.full(n, 2.0), apcor_mag=np.full(n, 0.3),
                exptime=60.0, aper_area_px=12.6, cfg=cfg)
    args["expected_total_adu"] = 10 ** (-0.4 * (args["vmag"] - 6.0)) * 60.0
    args["flux_total_adu"] = args["expected_total_adu"].copy()     # fully clear
    args.update(kw)
    return transparency.run(**args)


def test_which_flags_vote(camera):
    from allsky_camera.flags import FLAGS, bit

    cfg = camera.transparency
    names = list(FLAGS)
    flags = np.array([bit(nm) for nm in names])
    before = flags.copy()
    r = _run(cfg, len(names), flags=flags)
    votes = dict(zip(names, r.weight > 0))
    # lost stars are cloud evidence; crowding, Moon, edge, saturation, bad pixels are not;
    # BLENDED stars vote: their prediction holds their neighbours' catalogue light
    assert {nm for nm, v in votes.items() if v} == {"SHIFT", "FAINT", "NO_FLUX", "BLENDED"}
    np.testing.assert_array_equal(flags, before)          # inputs unchanged
    np.testing.assert_allclose(r.transparency, 1.0)
    # a star that should reach S/N < min_expected_snr on this sky does not vote
    faint = _run(cfg, 3, vmag=np.full(3, 9.0), sky_sigma_adu=np.full(3, 50.0))
    assert (faint.expected_snr < cfg.min_expected_snr).all() and (faint.weight == 0).all()
    # transparency is clipped, and a missing flux counts as none
    r = _run(cfg, 3, flux_total_adu=np.array([np.nan, -5.0, 1e9]))
    np.testing.assert_array_equal(r.transparency, [cfg.clip[0], cfg.clip[0], cfg.clip[1]])


def test_no_stars_keeps_nan_summary(camera):
    r = _run(camera.transparency, 0)
    assert r.transparency.shape == (0,) and r.summary.n_voting == 0 == r.summary.n_cells
    cards = dict((k, v) for k, v, _ in r.summary.header_cards())
    assert cards["TRANSMED"] == "NaN" and cards["CLEARFRC"] == "NaN"
