"""Cloud evidence with a spatial reach (cloud_reach.py): geometry against healpy and astropy,
and what a cell without evidence of its own borrows."""

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import cloud_reach, clouds, healpix
from allsky_camera.stages.clouds import CLEAR, CLOUD, NOT_SKY, UNKNOWN

NSIDE = 8
NPIX = 12 * NSIDE * NSIDE


@pytest.fixture(scope="module")
def cfg():
    return config.Transparency()


@pytest.mark.slow      # importing healpy takes seconds
@pytest.mark.parametrize("nside", [1, 2, 8, 64, 1024])
def test_pix2ang_ring_matches_healpy(nside):
    import healpy as hp

    n = 12 * nside * nside
    pix = np.unique(np.r_[np.arange(min(n, 5000)), np.arange(max(n - 5000, 0), n),
                          np.random.default_rng(nside).integers(0, n, 20000)])
    theta, phi = healpix.pix2ang_ring(nside, pix)
    th_ref, ph_ref = hp.pix2ang(nside, pix)
    np.testing.assert_allclose(theta, np.degrees(th_ref), atol=1e-9)
    dphi = (phi - np.degrees(ph_ref) + 180.0) % 360.0 - 180.0
    assert np.abs(dphi).max() < 1e-9


def test_pix2ang_ring_rejects_bad_pixels():
    from allsky_camera.exceptions import AllskyError

    with pytest.raises(AllskyError, match="768"):
        healpix.pix2ang_ring(8, [0, 768])


def test_separations_match_astropy():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    rng = np.random.default_rng(3)
    alt = np.degrees(np.arcsin(rng.uniform(-0.2, 1.0, 300)))
    az = rng.uniform(0.0, 360.0, 300)
    # pairs a few arcseconds to 180 deg apart
    alt2 = np.r_[alt[:100] + 1e-3, alt[100:]]
    az2 = np.r_[az[:100], rng.uniform(0.0, 360.0, 200)]
    d = cloud_reach.separation_deg(cloud_reach.unit_vectors(alt, az),
                                   cloud_reach.unit_vectors(alt2, az2))
    ref = SkyCoord(az * u.deg, alt * u.deg).separation(SkyCoord(az2 * u.deg, alt2 * u.deg))
    np.testing.assert_allclose(np.diag(d), ref.deg, atol=1e-7)


def test_borrow_is_the_weighted_mean_of_the_donors_by_astropy_distance():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    rng = np.random.default_rng(5)
    t_alt, t_az = rng.uniform(0.0, 90.0, 500), rng.uniform(0.0, 360.0, 500)
    d_alt, d_az = rng.uniform(30.0, 90.0, 40), rng.uniform(0.0, 180.0, 40)
    d_cloud, d_conf = rng.random(40) < 0.5, rng.uniform(0.3, 1.0, 40)
    corr = 6.0
    cloud, conf, dist = cloud_reach.borrow(t_alt, t_az, d_alt, d_az, d_cloud, d_conf,
                                           corr_deg=corr)
    sep = SkyCoord(t_az[:, None] * u.deg, t_alt[:, None] * u.deg).separation(
        SkyCoord(d_az[None, :] * u.deg, d_alt[None, :] * u.deg)).deg
    k = np.where(sep <= cloud_reach.CUTOFF_CORR_LENGTHS * corr,
                 np.exp(-0.5 * (sep / corr) ** 2), 0.0)
    some = k.sum(axis=1) > 0
    assert some.any() and (~some).any()
    e = (k[some] @ np.where(d_cloud, d_conf, -d_conf)) / k[some].sum(axis=1)
    np.testing.assert_allclose(conf[some], np.abs(e) * k[some].max(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(cloud[some], e > 0)
    np.testing.assert_allclose(dist[some], np.where(k[some] > 0, sep[some], np.inf).min(axis=1),
                               atol=1e-5)
    assert (conf[~some] == 0).all() and np.isnan(dist[~some]).all() and not cloud[~some].any()


@pytest.mark.slow      # importing healpy takes seconds
def test_default_reach_is_one_cell_and_spans_the_neighbours(cfg):
    import healpy as hp

    # the default correlation length is the cell size of Nside 8 ...
    assert cfg.cloud_corr_deg == pytest.approx(hp.nside2resol(cfg.nside, arcmin=True) / 60.0,
                                               rel=0.01)
    # ... so that a certain cell's call reaches (exp(-d^2 / 2 L^2) >= min_confidence)
    # the nearest four of its healpy neighbours (those across its edges),
    # and no cell that is not one of its neighbours
    reach = cfg.cloud_corr_deg * np.sqrt(2.0 * np.log(1.0 / cfg.min_confidence))
    alt, az = cloud_reach.cell_centres(NSIDE, np.arange(NPIX))
    u = cloud_reach.unit_vectors(alt, az)
    d = cloud_reach.separation_deg(u, u)
    ref = np.degrees(hp.rotator.angdist(np.array(hp.pix2vec(NSIDE, np.repeat(np.arange(NPIX),
                                                                              NPIX))),
                                        np.array(hp.pix2vec(NSIDE, np.tile(np.arange(NPIX),
                                                                           NPIX)))))
    np.testing.assert_allclose(d.ravel(), ref, atol=1e-5)      # rounding of 1 - u.v
    nb = hp.get_all_neighbours(NSIDE, np.arange(NPIX))
    for i in range(NPIX):
        mine = nb[:, i][nb[:, i] >= 0]
        assert np.sort(d[i, mine])[3] < reach
        within = np.flatnonzero(d[i] < reach)
        assert set(within) - {i} <= set(mine)


def _ring_of_cells():
    """Cells along the ring of altitude ~30 deg (Nside 8), in azimuth order, and centres."""
    alt, az = cloud_reach.cell_centres(NSIDE, np.arange(NPIX))
    ring = np.flatnonzero(np.isclose(alt, alt[np.argmin(np.abs(alt - 30.0))]))
    return ring[np.argsort(az[ring])], alt, az


def test_a_cell_between_confident_neighbours_takes_their_call_less_sure(cfg):
    ring, alt, az = _ring_of_cells()
    state = np.full(NPIX, NOT_SKY, np.uint8)
    conf = np.zeros(NPIX, np.float32)
    state[ring] = UNKNOWN
    a, gap, b, far = ring[10], ring[11], ring[12], ring[24]
    state[[a, b]], conf[[a, b]] = CLOUD, 0.9
    before = state.copy(), conf.copy()
    st, cf, dist = cloud_reach.reach_cells(state, conf, NSIDE, corr_deg=cfg.cloud_corr_deg,
                                           min_confidence=cfg.min_confidence)
    np.testing.assert_array_equal(state, before[0])     # inputs left alone
    np.testing.assert_array_equal(conf, before[1])
    assert st[gap] == CLOUD and cfg.min_confidence <= cf[gap] < 0.9
    sep = cloud_reach.separation_deg(cloud_reach.unit_vectors(alt[[gap]], az[[gap]]),
                                     cloud_reach.unit_vectors(alt[[a]], az[[a]]))[0, 0]
    assert cf[gap] == pytest.approx(0.9 * np.exp(-0.5 * (sep / cfg.cloud_corr_deg) ** 2),
                                    rel=1e-5)
    assert dist[gap] == pytest.approx(sep, rel=1e-5)
    # own evidence keeps its confidence and says so
    assert st[a] == CLOUD and cf[a] == pytest.approx(0.9) and dist[a] == 0
    # a cell far from any evidence stays unknown, with no distance
    assert st[far] == UNKNOWN and cf[far] == 0 and np.isnan(dist[far])
    # not-sky cells beside the evidence stay not sky
    assert (st[state == NOT_SKY] == NOT_SKY).all()
    assert not np.isin(st, (CLEAR,)).any()


def test_disagreeing_neighbours_leave_the_cell_unknown(cfg):
    ring, _, _ = _ring_of_cells()
    state = np.full(NPIX, NOT_SKY, np.uint8)
    conf = np.zeros(NPIX, np.float32)
    state[ring] = UNKNOWN
    state[ring[10]], state[ring[12]] = CLOUD, CLEAR
    conf[[ring[10], ring[12]]] = 0.9
    st, cf, _ = cloud_reach.reach_cells(state, conf, NSIDE, corr_deg=cfg.cloud_corr_deg,
                                        min_confidence=cfg.min_confidence)
    assert st[ring[11]] == UNKNOWN and cf[ring[11]] == 0


def test_own_evidence_wins_and_zero_reach_borrows_nothing(cfg):
    ring, _, _ = _ring_of_cells()
    state = np.full(NPIX, NOT_SKY, np.uint8)
    conf = np.zeros(NPIX, np.float32)
    state[ring] = UNKNOWN
    state[ring[9:14]] = [CLOUD, CLOUD, CLEAR, CLOUD, CLOUD]
    conf[ring[9:14]] = [1.0, 1.0, 0.35, 1.0, 1.0]
    st, cf, dist = cloud_reach.reach_cells(state, conf, NSIDE, corr_deg=cfg.cloud_corr_deg,
                                           min_confidence=cfg.min_confidence)
    assert st[ring[11]] == CLEAR and cf[ring[11]] == pytest.approx(0.35) and dist[ring[11]] == 0
    st0, cf0, _ = cloud_reach.reach_cells(state, conf, NSIDE, corr_deg=0.0,
                                          min_confidence=cfg.min_confidence)
    np.testing.assert_array_equal(st0, state)
    assert (st[ring[14]] == CLOUD) and (st[ring[20]] == UNKNOWN)


@pytest.fixture(scope="module")
def mdm():
    return config.load_camera("MDM")


def test_pixels_of_a_cell_without_evidence_borrow_where_they_lie(cfg, mdm):
    # one cell of own evidence; its neighbour's pixels nearer to it take its
    # call, those farther off (beyond the reach) stay unknown; masked pixels
    # stay not sky
    model = mdm.astrometry.model
    shape = (mdm.sensor.ny, mdm.sensor.nx)
    ring, alt, az = _ring_of_cells()
    state = np.full(NPIX, UNKNOWN, np.uint8)
    conf = np.zeros(NPIX, np.float32)
    donor = ring[5]
    state[donor], conf[donor] = CLOUD, 0.95
    st, cf, dist = cloud_reach.reach_cells(state, conf, NSIDE, corr_deg=cfg.cloud_corr_deg,
                                           min_confidence=cfg.min_confidence)
    z = np.zeros(NPIX, np.float32)
    cmap = clouds.CloudMap(NSIDE, st, z, cf, z, z, np.zeros(NPIX, np.int32), z, z, z + 1,
                           dist, cfg.cloud_corr_deg, cfg.min_confidence)
    mask = np.zeros(shape, bool)
    mask[:, :40] = True
    pstate, _, pconf = clouds.pixel_maps(cmap, model, shape, mask=mask, stride=2)
    ys, xs = np.mgrid[0:shape[0]:2, 0:shape[1]:2]
    p_alt, p_az = model.xy_to_altaz(xs.ravel().astype(float), ys.ravel().astype(float))
    sky = np.isfinite(p_alt) & (p_alt > 0) & ~mask[ys.ravel(), xs.ravel()]
    cell = np.full(p_alt.shape, -1)
    cell[sky] = healpix.ang2pix_ring(NSIDE, 90.0 - p_alt[sky], p_az[sky])
    d = cloud_reach.separation_deg(cloud_reach.unit_vectors(p_alt[sky], p_az[sky]),
                                   cloud_reach.unit_vectors(alt[[donor]], az[[donor]]))[:, 0]
    s = pstate[ys.ravel()[sky], xs.ravel()[sky]]
    c = pconf[ys.ravel()[sky], xs.ravel()[sky]]
    own = cell[sky] == donor
    assert (s[own] == CLOUD).all() and np.allclose(c[own], 0.95)
    lent = ~own & (s == CLOUD)
    assert lent.any() and (c[lent] < 0.95).all()
    # borrowed where near, unknown beyond the reach (fine grid ~0.9 deg)
    reach = cfg.cloud_corr_deg * np.sqrt(2.0 * np.log(0.95 / cfg.min_confidence))
    assert (s[~own & (d < reach - 1.0)] == CLOUD).all()
    assert (s[d > reach + 1.0] == UNKNOWN).all()
    # a cell left unknown (its centre beyond the reach) has pixels near enough to borrow
    far_cells = np.unique(cell[sky][lent & (st[cell[sky]] == UNKNOWN)])
    assert far_cells.size > 0
    # the mask's pixels are never sky
    assert (pstate[mask] == NOT_SKY).all() and (pconf[mask] == 0).all()
