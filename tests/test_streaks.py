"""Streak detection on simulated frames with injected streaks, and on clean frames."""

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera import ac_proc, config, detrend, io, simulate, streaks
from allsky_camera.fastmedian import median_filter_fast

N_FRAMES = 12          # streak frames, three streaks each
N_CLEAN = 10           # clean frames for false positives
TOL_PX = 10.0          # endpoint tolerance of the issue


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


def detect_on(camera, sim):
    """The pipeline's streak step on a simulated frame, with the true geometry."""
    det = detrend.run(sim.image, camera)
    sc = camera.streaks
    model = sim.truth.model
    region = streaks.search_region(det.image.shape, model, sc)
    sky = median_filter_fast(det.image, sc.bkg_kernel_px, step=sc.bkg_step_px, mask=region)
    st = sim.truth.stars
    bright = np.asarray(st["VMAG"]) <= sc.star_mask_vmax
    return streaks.detect(det.image, model, cfg=sc, sky=sky, region=region,
                          exptime=sim.truth.exptime, zp=sim.truth.zp_true,
                          star_xy=(np.asarray(st["x"])[bright], np.asarray(st["y"])[bright]))


def visible_part(s, model, cfg, shape):
    """The injected streak clipped to the searched sky (None if it misses it)."""
    ny, nx = shape
    r = float(model.radius(90.0)) - cfg.horizon_margin_px
    t = np.linspace(0.0, 1.0, 20001)
    x, y = s.x1 + t * (s.x2 - s.x1), s.y1 + t * (s.y2 - s.y1)
    ok = (((x - model.x0) ** 2 + (y - model.y0) ** 2 <= r * r)
          & (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1))
    if ok.sum() < 2:
        return None
    i = np.nonzero(ok)[0]
    return np.array([[x[i[0]], y[i[0]]], [x[i[-1]], y[i[-1]]]])


def overlaps_another(seg, others, tol=TOL_PX, min_shared_px=50.0):
    """Two streaks that run on top of each other cannot be told apart."""
    for o in others:
        d = o[1] - o[0]
        n = np.hypot(*d)
        d = d / n
        t = np.linspace(0, 1, 200)
        pts = seg[0] + t[:, None] * (seg[1] - seg[0])
        w = pts - o[0]
        along = w @ d
        perp = np.abs(w[:, 0] * d[1] - w[:, 1] * d[0])
        shared = (perp < tol) & (along > 0) & (along < n)
        if shared.mean() * np.hypot(*(seg[1] - seg[0])) > min_shared_px:
            return True
    return False


def endpoint_error(table, seg):
    best = np.inf
    for r in table:
        p = np.array([[r["x1"], r["y1"]], [r["x2"], r["y2"]]])
        for q in (p, p[::-1]):
            best = min(best, np.hypot(*(q - seg).T).max())
    return best


@pytest.mark.slow
def test_injected_streaks_found(camera):
    found = total = 0
    for k in range(N_FRAMES):
        rng = np.random.default_rng(500 + k)
        injected = simulate.random_streaks(3, (camera.sensor.ny, camera.sensor.nx), rng)
        sim = simulate.simulate(camera, seed=600 + k, streaks=injected)
        table = detect_on(camera, sim)
        segs = [visible_part(s, sim.truth.model, camera.streaks, sim.image.shape)
                for s in injected]
        for i, seg in enumerate(segs):
            if seg is None or np.hypot(*(seg[1] - seg[0])) < camera.streaks.min_length_px:
                continue
            if overlaps_another(seg, [o for j, o in enumerate(segs) if j != i and o is not None]):
                continue
            total += 1
            found += endpoint_error(table, seg) < TOL_PX
    assert total >= 25
    assert found / total >= 0.95, (found, total)


@pytest.mark.slow
def test_no_false_streaks_on_clean_frames(camera):
    false = 0
    for k in range(N_CLEAN):
        sim = simulate.simulate(camera, seed=700 + k)
        false += len(detect_on(camera, sim))
    assert false <= 1


def test_streak_leaving_the_sky_ends_at_its_edge(camera):
    ny, nx = camera.sensor.ny, camera.sensor.nx
    m = camera.astrometry.model
    s = simulate.Streak(m.x0 - 100, m.y0 - 50, m.x0 + 1500, m.y0 + 300, 3.0, 40.0)
    sim = simulate.simulate(camera, seed=9, streaks=[s])
    table = detect_on(camera, sim)
    assert len(table) == 1 and table["at_edge"][0]
    seg = visible_part(s, sim.truth.model, camera.streaks, (ny, nx))
    assert endpoint_error(table, seg) < TOL_PX
    assert table["width_px"][0] == pytest.approx(3.0, abs=1.0)


def test_cli_writes_table_even_when_empty(camera, tmp_path):
    sim = simulate.simulate(camera, seed=10)
    exp = io.exposure_from_data(str(tmp_path / "clean.fits"), sim.image, sim.header, camera)
    opts = ac_proc.build_parser().parse_args(["x", "--outdir", str(tmp_path), "--detect_streaks",
                                              "--skip_checkplots", "--dont_write_detrended"])
    ac_proc.process(exp, camera, opts)
    with fits.open(tmp_path / "clean-streaks.fits") as h:
        assert h[1].header["NSTREAK"] == 0 and len(h[1].data) == 0
        names = h[1].columns.names
    for col in ("x1", "y1", "x2", "y2", "alt1", "az1", "ra1", "dec1", "length_px", "pa_deg",
                "width_px", "sb_mag"):
        assert col in names
