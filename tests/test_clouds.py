"""The cloud map (clouds.py): sky texture, the combination of evidence, the products."""

import dataclasses

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera.camera import config
from allsky_camera.stages import clouds
from allsky_camera.stages.clouds import CLEAR, CLOUD, NOT_SKY, UNKNOWN


@pytest.fixture(scope="module")
def cfg():
    return config.Transparency()


def flat_noise(shape, sky, sigma, seed):
    return (sky + np.random.default_rng(seed).normal(0.0, sigma, shape)).astype(np.float32)


def test_block_noise_is_the_scatter_of_block_medians():
    # the reference is the empirical scatter of the block medians (numpy), not
    # the formula (sqrt(pi/2) sigma / sqrt(n)) the module uses
    img = flat_noise((600, 800), 1000.0, 10.0, 1)
    tex = clouds.block_texture(img, None, block_px=12, stride_px=4, model_blocks=5)
    per_block = np.nanmedian(tex.noise) / np.sqrt(1.25)      # back to a single block median
    scatter = np.nanstd(tex.level)
    assert abs(per_block / scatter - 1.0) < 0.1
    # and the residual's noise is the residual's scatter
    assert abs(np.nanmedian(tex.noise) / np.nanstd(tex.residual) - 1.0) < 0.1


def test_block_texture_leaves_input_alone():
    img = flat_noise((120, 144), 100.0, 3.0, 2)
    mask = np.zeros(img.shape, bool)
    mask[:20] = True
    before, mbefore = img.copy(), mask.copy()
    clouds.block_texture(img, mask, block_px=12, stride_px=4, model_blocks=5, grow_blocks=1)
    np.testing.assert_array_equal(img, before)
    np.testing.assert_array_equal(mask, mbefore)


def test_open_fraction_counts_the_mask_before_growth():
    # a one-pixel wire across the frame: the blocks it crosses and their
    # neighbours (grown) carry no texture, yet all but the wire sees the sky
    img = flat_noise((120, 144), 100.0, 3.0, 4)
    mask = np.zeros(img.shape, bool)
    mask[52] = True                       # a sampled row (stride 4) of block row 4
    tex = clouds.block_texture(img, mask, block_px=12, stride_px=4, model_blocks=5,
                               grow_blocks=1)
    assert np.isnan(tex.level[3:6]).all() and np.isfinite(tex.level[7, 2:-2]).all()
    # counted independently: the masked share of each block's 3 x 3 sampled pixels
    np.testing.assert_allclose(tex.open_fraction[4], 1.0 - 3.0 / 9.0)
    np.testing.assert_array_equal(np.delete(tex.open_fraction, 4, axis=0), 1.0)


def test_the_edge_of_the_field_is_not_texture():
    # a sky disc on a dark frame, no mask: the blocks straddling the disc's rim
    # hold the fall to black, which is structure of the lens, not of the sky
    ny, nx = 240, 288
    y, x = np.mgrid[0:ny, 0:nx]
    img = flat_noise((ny, nx), 1000.0, 10.0, 5)
    img[np.hypot(x - 144.0, y - 120.0) > 100.0] = 5.0
    rim = dict(block_px=12, stride_px=4, model_blocks=5)
    plain = clouds.block_texture(img, None, **rim)
    cut = clouds.block_texture(img, None, sky_circle=(144.0, 120.0, 100.0), **rim)
    inside = np.hypot(plain.xc - 144.0, plain.yc - 120.0) < 100.0
    rel = np.abs(plain.residual) / 1000.0
    assert np.nanmax(rel[inside]) > 0.1                      # the rim shows without the circle
    rel_cut = np.abs(cut.residual) / 1000.0
    assert np.nanmax(rel_cut) < 6 * np.nanmedian(cut.noise) / 1000.0
    # the inner sky is untouched; the open fraction is the mask's alone
    inner = np.hypot(cut.xc - 144.0, cut.yc - 120.0) < 60.0
    np.testing.assert_array_equal(cut.residual[inner], plain.residual[inner])
    assert np.isfinite(cut.residual[inner]).all()
    np.testing.assert_array_equal(cut.open_fraction, 1.0)


def test_mad_sigma_error_is_that_of_gaussian_samples():
    # reference: the scatter of MAD-based sigmas of Gaussian draws (numpy),
    # against the asymptotic efficiency the module quotes (Rousseeuw & Croux 1993)
    n = 60
    x = np.random.default_rng(12).normal(0.0, 1.0, (4000, n))
    s = clouds.MAD_TO_SIGMA * np.median(np.abs(x - np.median(x, axis=1)[:, None]), axis=1)
    assert np.std(s) * np.sqrt(n) == pytest.approx(clouds.MAD_SIGMA_REL_ERROR, rel=0.1)


def test_texture_of_few_blocks_is_less_sure(cfg):
    amp = 2.0 * cfg.texture_cloud
    few = _combine(cfg, texture_amp=amp, texture_noise=0.002, texture_n=3)
    many = _combine(cfg, texture_amp=amp, texture_noise=0.002, texture_n=200)
    assert few[0] == many[0] == CLOUD
    assert few[4] < many[4]
    # without a count, the fixed scatter alone (the many-block limit)
    assert _combine(cfg, texture_amp=amp, texture_noise=0.002)[4] >= many[4]


def test_block_size_must_be_a_multiple_of_the_stride():
    with pytest.raises(clouds.AllskyError, match="texture_block_px"):
        clouds.block_texture(np.ones((50, 50)), None, block_px=10, stride_px=4, model_blocks=5)


def _one_cell_texture(img):
    tex = clouds.block_texture(img, None, block_px=12, stride_px=4, model_blocks=5)
    amp, noise, n = clouds.cell_texture(tex, np.zeros(tex.level.shape, int), 1, min_blocks=6)
    return amp[0], noise[0], n[0]


def test_smooth_sky_has_no_texture_and_structure_has():
    ny, nx = 600, 800
    y, x = np.mgrid[0:ny, 0:nx]
    # a sky with a strong quadratic gradient (like an all-sky frame's horizon)
    sky = 1000.0 * (1.0 + 0.5 * ((x - 400) / 400.0) ** 2 + 0.3 * (y / 600.0))
    noise = np.random.default_rng(3).normal(0.0, 10.0, (ny, nx))
    amp, noise_rel, n = _one_cell_texture((sky + noise).astype(np.float32))
    assert n > 1000 and amp < 0.005 and noise_rel < 0.01
    # a cloud's structure: 5 % of the sky on a 100-pixel scale
    ripple = 0.05 * np.sin(2 * np.pi * x / 100.0) * np.cos(2 * np.pi * y / 130.0)
    amp_c, _, _ = _one_cell_texture((sky * (1.0 + ripple) + noise).astype(np.float32))
    assert amp_c > 0.5 * np.std(ripple) and amp_c > 5 * amp


def test_stars_do_not_make_texture():
    img = flat_noise((600, 800), 1000.0, 10.0, 4)
    rng = np.random.default_rng(5)
    ys, xs = rng.integers(0, 600, 400), rng.integers(0, 800, 400)
    img[ys, xs] += 5000.0            # 400 bright single-pixel stars, one per ~1200 px
    amp, _, _ = _one_cell_texture(img)
    assert amp < 0.005


def test_confidence_is_twice_the_normal_probability_minus_one():
    from scipy.special import ndtr  # the standard normal CDF

    v = np.array([0.1, 0.5, 0.7, 0.9, 1.3])
    c = clouds.confidence(v, 0.7, 0.2)
    np.testing.assert_allclose(c, 2 * ndtr(np.abs(v - 0.7) / 0.2) - 1, atol=2e-7)
    z = np.linspace(0.0, 6.0, 601)       # the erf approximation over its range
    np.testing.assert_allclose(clouds.confidence(z, 0.0, 1.0 / np.sqrt(2)),
                               2 * ndtr(z * np.sqrt(2)) - 1, atol=2e-7)
    assert clouds.confidence(np.array([np.nan]), 0.7, 0.2)[0] == 0.0


def test_grow_is_a_binary_dilation():
    from scipy import ndimage

    m = np.random.default_rng(6).random((40, 50)) > 0.97
    for n in (1, 2):
        np.testing.assert_array_equal(
            clouds.grow(m, n), ndimage.binary_dilation(m, np.ones((3, 3), bool), iterations=n))


def _combine(cfg, **kw):
    base = dict(star_transp=np.array([np.nan]), star_weight=np.array([0.0]),
                star_n=np.array([0]), texture_amp=np.array([np.nan]),
                texture_noise=np.array([np.nan]), sky_fraction=np.array([1.0]))
    base.update({k: np.atleast_1d(np.asarray(v, dtype=int if k in ("star_n", "texture_n")
                                          else float))
                 for k, v in kw.items()})
    state, transp, conf, sconf, tconf = clouds.combine(cfg=cfg, **base)
    return int(state[0]), float(transp[0]), float(conf[0]), float(sconf[0]), float(tconf[0])


def test_no_evidence_is_unknown_never_clear_or_cloud(cfg):
    state, transp, conf, _, _ = _combine(cfg)
    assert state == UNKNOWN and np.isnan(transp) and conf == 0.0
    # a texture measured on a sky too noisy to show a cloud says nothing either
    state, *_ = _combine(cfg, texture_amp=0.0, texture_noise=2 * cfg.texture_cloud)
    assert state == UNKNOWN


def test_not_sky_whatever_the_evidence(cfg):
    state, _, conf, _, _ = _combine(cfg, star_transp=0.0, star_weight=1e4, star_n=20,
                                    texture_amp=0.5, texture_noise=0.001, sky_fraction=0.0)
    assert state == NOT_SKY and conf == 0.0


def test_stars_decide_when_they_are_many(cfg):
    state, transp, conf, _, _ = _combine(cfg, star_transp=0.05, star_weight=1e4, star_n=30)
    assert state == CLOUD and transp == pytest.approx(0.05) and conf > 0.99
    state, _, conf, _, _ = _combine(cfg, star_transp=1.0, star_weight=1e4, star_n=30,
                                    texture_amp=0.0, texture_noise=0.005)
    assert state == CLEAR and conf > 0.99


def test_structure_beats_a_few_stars_shining_through(cfg):
    # moonlit thin cloud: two bright stars read 0.8, the sky shows strong structure
    state, transp, conf, sconf, tconf = _combine(
        cfg, star_transp=0.8, star_weight=400.0, star_n=2, texture_amp=0.15,
        texture_noise=0.005)
    assert state == CLOUD and tconf > sconf and transp == pytest.approx(0.8)


def test_a_smooth_sky_alone_is_only_a_weak_clear(cfg):
    state, _, conf, _, _ = _combine(cfg, texture_amp=0.0, texture_noise=0.002)
    assert state == CLEAR and conf <= cfg.texture_clear_conf_max + 1e-6


def test_combine_leaves_inputs_alone(cfg):
    arrays = dict(star_transp=np.array([0.2, np.nan]), star_weight=np.array([100.0, 0.0]),
                  star_n=np.array([3, 0]), texture_amp=np.array([0.1, 0.0]),
                  texture_noise=np.array([0.01, 0.01]), sky_fraction=np.array([1.0, 0.5]))
    copies = {k: v.copy() for k, v in arrays.items()}
    clouds.combine(cfg=cfg, **arrays)
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], copies[k])


@pytest.fixture(scope="module")
def mdm():
    return config.load_camera("MDM")


def _random_map(nside, seed):
    n = 12 * nside * nside
    rng = np.random.default_rng(seed)
    state = rng.integers(0, 3, n).astype(np.uint8)
    f = np.zeros(n, np.float32)
    return clouds.CloudMap(nside, state, rng.random(n).astype(np.float32),
                           rng.random(n).astype(np.float32), f, f, np.zeros(n, np.int32),
                           f, f, np.ones(n, np.float32))


@pytest.mark.slow      # importing healpy takes seconds
def test_pixel_maps_follow_healpy_cells(mdm):
    import healpy as hp

    model = mdm.astrometry.model
    shape = (mdm.sensor.ny, mdm.sensor.nx)
    cmap = _random_map(8, 7)
    mask = np.zeros(shape, bool)
    mask[500:520, 700:760] = True
    state, transp, conf = clouds.pixel_maps(cmap, model, shape, mask=mask, stride=4)
    assert state.dtype == np.uint8 and transp.dtype == np.float32 and state.shape == shape
    rng = np.random.default_rng(8)
    # the pixels evaluated with stride 4 (the others repeat them)
    ys, xs = 4 * rng.integers(0, shape[0] // 4, 3000), 4 * rng.integers(0, shape[1] // 4, 3000)
    alt, az = model.xy_to_altaz(xs.astype(float), ys.astype(float))
    sky = np.isfinite(alt) & (alt > 0) & ~mask[ys, xs]
    cell = hp.ang2pix(8, np.radians(90 - alt[sky]), np.radians(az[sky]))
    np.testing.assert_array_equal(state[ys[sky], xs[sky]], cmap.state[cell])
    np.testing.assert_array_equal(transp[ys[sky], xs[sky]], cmap.transparency[cell])
    assert (state[ys[~sky], xs[~sky]] == NOT_SKY).all()
    assert (state[mask] == NOT_SKY).all() and np.isnan(transp[mask]).all()


def test_lens_ghost_lies_opposite_the_source(mdm):
    # a lens symmetric about its axis mirrors a source through the optical
    # centre: for a near-zenithal camera, the same altitude, azimuth + 180 deg
    model = mdm.astrometry.model
    az = np.array([283.0, 277.0, 100.0, 0.0, 190.0])
    alt = np.array([30.0, 31.0, 30.0, 90.0, 60.0])
    hit = clouds.near_ghost(model, (30.0, 100.0), az, alt, 5.0)
    np.testing.assert_array_equal(hit, [True, True, False, False, False])
    # a source whose mirror falls below the horizon has no ghost on the sky
    assert not clouds.near_ghost(model, (-30.0, 100.0), az, alt, 5.0).any()


def test_cloud_image_file(tmp_path, mdm):
    cmap = _random_map(8, 9)
    shape = (mdm.sensor.ny, mdm.sensor.nx)
    st, tr, cf = clouds.pixel_maps(cmap, mdm.astrometry.model, shape, stride=4)
    path = tmp_path / "x-clouds.fits"
    clouds.write_cloud_image(path, st, tr, cf, header_cards=cmap.header_cards())
    with fits.open(path) as h:
        assert h[0].data.dtype == np.uint8 and h[0].data.shape == shape
        assert [h[0].header[f"CLDCODE{k}"] for k in range(4)] == [
            "clear", "cloud", "unknown", "not sky"]
        assert [clouds.STATE_NAMES[k] for k in range(4)] == [
            h[0].header[f"CLDCODE{k}"] for k in range(4)]
        assert h["TRANSP"].data.dtype.kind == "f" and h["TRANSP"].data.itemsize == 4
        assert h["CONF"].data.shape == shape
        np.testing.assert_array_equal(h[0].data, st)
        for hdu in h:
            for card in hdu.header.cards:
                assert len(card.keyword) <= 8 and len(str(card)) <= 80


def test_fractions_and_cards():
    n = 768
    state = np.full(n, NOT_SKY, np.uint8)
    state[:100], state[100:150], state[150:200] = CLEAR, CLOUD, UNKNOWN
    z = np.zeros(n, np.float32)
    cm = clouds.CloudMap(8, state, z, z, z, z, np.zeros(n, np.int32), z, z, z + 1)
    f = cm.fractions()
    assert f == pytest.approx({"clear": 0.5, "cloud": 0.25, "unknown": 0.25})
    cards = dict((k, v) for k, v, _ in cm.header_cards())
    assert cards["CLDCLEAR"] == 0.5 and cards["CLDNSIDE"] == 8
    # a cell counts by the sky it shows: 50 unknown slivers a tenth open
    sliver = np.where(state == UNKNOWN, 0.1, 1.0).astype(np.float32)
    f = dataclasses.replace(cm, sky_fraction=sliver).fractions()
    assert f == pytest.approx({"clear": 100 / 155, "cloud": 50 / 155, "unknown": 5 / 155})
    # no visible sky: nothing to say
    assert np.isnan(dataclasses.replace(cm, sky_fraction=z).fractions()["clear"])


def test_star_weights_let_stars_beyond_the_safe_radius_vote(cfg):
    from allsky_camera.flags import bit

    flags = np.array([0, bit("OUTSIDE_SAFE"), bit("MOON"), bit("FAINT")])
    w = clouds.star_weights(flags, np.array([10.0, 10.0, 10.0, 10.0]), cfg)
    np.testing.assert_array_equal(w > 0, [True, True, False, True])


def test_summary_says_twilight_not_cloudy(cfg):
    from allsky_camera.stages.transparency import TransparencySummary

    n = 768
    state = np.full(n, CLEAR, np.uint8)
    z = np.zeros(n, np.float32)
    tconf = np.full(n, 0.5, np.float32)
    cm = clouds.CloudMap(8, state, z, z, z, z, np.zeros(n, np.int32), z, tconf, z + 1)
    level, msg = clouds.summary_message(cm, TransparencySummary(0.3, 0.0, 2, 2), -7.0, cfg)
    assert "twilight" in msg and "cloudy" not in msg
    level, msg = clouds.summary_message(
        dataclasses.replace(cm, state=np.full(n, CLOUD, np.uint8)),
        TransparencySummary(0.0, 0.0, 900, 300), -40.0, cfg)
    assert "mostly cloudy" in msg
