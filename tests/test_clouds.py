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
    base.update({k: np.atleast_1d(np.asarray(v, dtype=float if k != "star_n" else int))
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
    cm = clouds.CloudMap(8, state, z, z, z, z, np.zeros(n, np.int32), z, z, z)
    f = cm.fractions()
    assert f == pytest.approx({"clear": 0.5, "cloud": 0.25, "unknown": 0.25})
    cards = dict((k, v) for k, v, _ in cm.header_cards())
    assert cards["CLDCLEAR"] == 0.5 and cards["CLDNSIDE"] == 8


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
