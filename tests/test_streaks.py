"""Streak detection on simulated frames with injected streaks, and on clean frames."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera import ac_proc
from allsky_camera.camera import config, coords
from allsky_camera.exceptions import AllskyError
from allsky_camera.sim import simulate
from allsky_camera.stages import detrend, io, streaks
from tests_helpers import shared_data as _shared_data

N_FRAMES = 12          # streak frames, three streaks each
N_CLEAN = 20           # clean frames for false positives (the issue: at most 1 in 20)
N_FAINT = 12           # frames with two faint streaks each
TOL_PX = 10.0          # endpoint tolerance of the issue
INDEP_TOL_PX = 2.0     # the independent frame's streak ends, truth to 0.1 px (found: 1.1 px)


def shared_data(sub):
    """``../shared/data/<sub>`` (the project's helper); skip when absent."""
    d = _shared_data(sub)
    if not d.is_dir():
        pytest.skip(f"{d} is not here: skipped")
    return d


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


def detect_on(camera, sim, **kw):
    """The pipeline's streak step on a simulated frame, with the true geometry."""
    det = detrend.run(sim.image, camera)
    st = sim.truth.stars
    bright = np.asarray(st["VMAG"]) <= camera.streaks.star_mask_vmax
    return streaks.detect(det.image, sim.truth.model, cfg=camera.streaks,
                          exptime=sim.truth.exptime, zp=sim.truth.zp_true,
                          star_xy=(np.asarray(st["x"])[bright], np.asarray(st["y"])[bright]),
                          **kw)


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


def noise_map(camera, sim):
    """Per-pixel noise of a simulated frame, ADU: Poisson on the true sky and
    read noise (the simulator's detector, config ``simulation``)."""
    sc = camera.simulation
    return np.sqrt(sim.truth.sky_adu * sc.gain_e_per_adu + sc.read_noise_e ** 2) / sc.gain_e_per_adu


def faint_streaks(rng, n, model, cfg, noise, *, peak_sigma, length_px, width_px=2.5):
    """``n`` streaks of ``length_px`` wholly on the searched sky and the
    image, random in position and angle, whose peak is ``peak_sigma`` times the per-pixel
    noise ``noise`` (ADU map) at their middle; FWHM ``width_px``."""
    ny, nx = noise.shape
    r_max = float(model.radius(90.0)) - cfg.horizon_margin_px - 0.5 * length_px - 5
    out = []
    while len(out) < n:
        r = r_max * np.sqrt(rng.uniform())
        phi, ang = rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
        cx, cy = model.x0 + r * np.cos(phi), model.y0 + r * np.sin(phi)
        dx, dy = 0.5 * length_px * np.cos(ang), 0.5 * length_px * np.sin(ang)
        # both ends on the image too (the lens circle is cut by its edges)
        if not all(5 <= x <= nx - 6 and 5 <= y <= ny - 6
                   for x, y in ((cx - dx, cy - dy), (cx + dx, cy + dy))):
            continue
        peak = peak_sigma * float(noise[round(cy), round(cx)])
        out.append(simulate.Streak(cx - dx, cy - dy, cx + dx, cy + dy, width_px, peak))
    return tuple(out)


def endpoint_error(table, seg):
    best = np.inf
    for r in table:
        p = np.array([[r["x1"], r["y1"]], [r["x2"], r["y2"]]])
        for q in (p, p[::-1]):
            best = min(best, np.hypot(*(q - seg).T).max())
    return best


@pytest.fixture(scope="module")
def streak_frames(camera):
    """N_FRAMES seeded frames with three random streaks each, and what was found."""
    site, _ = coords.site_from_config(camera.site)
    out = []
    for k in range(N_FRAMES):
        rng = np.random.default_rng(500 + k)
        injected = simulate.random_streaks(3, (camera.sensor.ny, camera.sensor.nx), rng)
        sim = simulate.simulate(camera, seed=600 + k, streaks=injected)
        out.append((injected, sim, detect_on(camera, sim, time=sim.truth.time, site=site)))
    return out


def count_found(camera, injected, sim, table):
    """(found, resolvable) injected streaks of one frame: visible, long enough, not
    lying on another one, and found with both endpoints within TOL_PX."""
    segs = [visible_part(s, sim.truth.model, camera.streaks, sim.image.shape) for s in injected]
    found = total = 0
    for i, seg in enumerate(segs):
        if seg is None or np.hypot(*(seg[1] - seg[0])) < camera.streaks.min_length_px:
            continue
        if overlaps_another(seg, [o for j, o in enumerate(segs) if j != i and o is not None]):
            continue
        total += 1
        found += endpoint_error(table, seg) < TOL_PX
    return found, total


@pytest.mark.slow
def test_injected_streaks_found(camera, streak_frames):
    found = total = 0
    for injected, sim, table in streak_frames:
        f, t = count_found(camera, injected, sim, table)
        found, total = found + f, total + t
    assert total >= 25
    assert found / total >= 0.95, (found, total)


@pytest.mark.slow
def test_end_points_on_the_sky(camera, streak_frames):
    """(alt, az) through the model given, (RA, Dec) from those; length and angle."""
    site, _ = coords.site_from_config(camera.site)
    for _, sim, t in streak_frames[:3]:
        assert len(t) >= 2
        alt, az = sim.truth.model.xy_to_altaz(np.asarray(t["x1"]), np.asarray(t["y1"]))
        np.testing.assert_allclose(t["alt1"], alt) and np.testing.assert_allclose(t["az1"], az)
        ra, dec = coords.altaz_to_radec(np.asarray(t["alt2"]), np.asarray(t["az2"]),
                                        sim.truth.time, site)
        np.testing.assert_allclose(t["ra2"], ra) and np.testing.assert_allclose(t["dec2"], dec)
        np.testing.assert_allclose(t["length_px"], np.hypot(t["x2"] - t["x1"], t["y2"] - t["y1"]))
        assert np.all((t["pa_deg"] >= 0) & (t["pa_deg"] < 180))
        assert np.isfinite(t["sb_mag"]).all()


@pytest.fixture(scope="module")
def clean_noise(camera):
    """The noise map of the default simulated sky (it does not depend on the seed)."""
    return noise_map(camera, simulate.simulate(camera, seed=1))


@pytest.mark.slow
def test_faint_streaks_found(camera, clean_noise):
    """Peak 2.5 sigma per pixel, 200-450 px, FWHM 2.5 px: invisible pixel by
    pixel, found at >= 90 % by the line search (the issue's bar)."""
    found = total = 0
    for k in range(N_FAINT):
        rng = np.random.default_rng(900 + k)
        inj = faint_streaks(rng, 2, camera.astrometry.model, camera.streaks, clean_noise,
                            peak_sigma=2.5, length_px=rng.uniform(200, 450))
        sim = simulate.simulate(camera, seed=950 + k, streaks=inj)
        f, t = count_found(camera, inj, sim, detect_on(camera, sim))
        found, total = found + f, total + t
    assert total >= 20
    assert found / total >= 0.9, (found, total)


def test_great_circle_sagitta_against_geometry():
    """Equidistant lens (r = c theta, theta in radians), no tilt: the horizon
    is the circle r = R, so the
    great circle through (alt 0, az -a) and (alt 0, az +a) bows R (1 - cos a)
    out from its chord; one through the zenith is straight."""
    from allsky_camera.camera.camera_model import CameraModel

    R = 500.0
    m = CameraModel(x0=800.0, y0=600.0, rot_deg=0.0, parity=1, projection="equidistant",
                    coeffs=(R / (np.pi / 2),), scale=1.0, tilt_n_deg=0.0, tilt_e_deg=0.0)
    a = 30.0
    p0 = np.array(m.altaz_to_xy(0.0, -a), dtype=float)
    p1 = np.array(m.altaz_to_xy(0.0, a), dtype=float)
    assert abs(streaks.great_circle_sagitta(m, p0, p1)) == pytest.approx(
        R * (1 - np.cos(np.radians(a))), rel=1e-3)
    q0 = np.array(m.altaz_to_xy(40.0, 70.0), dtype=float)
    q1 = np.array(m.altaz_to_xy(40.0, 250.0), dtype=float)
    assert streaks.great_circle_sagitta(m, q0, q1) == pytest.approx(0.0, abs=1e-6)


def test_line_search_finds_a_faint_segment_in_noise():
    """Analytic: a segment 1 pixel wide of 2.5 sigma on unit Gaussian noise,
    160 px long, sums to S/N 2.5 * 160 / sqrt(4 * 160) = 15.8 over a strip
    of one 4 px block (less where it straddles two); pure noise stays below
    the threshold."""
    from allsky_camera.stages import line_search

    rng = np.random.default_rng(3)
    img = rng.normal(size=(300, 400)).astype(np.float32)
    valid = np.ones(img.shape, dtype=bool)
    clean = line_search.search(*line_search.bin_image(img, valid, 4), 4, windows_px=(64, 128),
                               angle_step_deg=1.5, snr_min=7.0)
    assert clean == []
    x = np.arange(100, 260)
    y = np.rint(120 + 0.3 * (x - 100)).astype(int)
    img[y, x] += 2.5
    found = line_search.search(*line_search.bin_image(img, valid, 4), 4, windows_px=(64, 128),
                               angle_step_deg=1.5, snr_min=7.0)
    assert found and 10.0 < found[0].snr < 2.5 * 160 / np.sqrt(4 * 160) + 3
    seg = found[0]
    assert np.degrees(seg.theta) == pytest.approx(np.degrees(np.arctan(0.3)), abs=3)
    # its middle lies on the segment
    xm, ym = 0.5 * (seg.x1 + seg.x2), 0.5 * (seg.y1 + seg.y2)
    assert 100 <= xm <= 260 and abs(ym - (120 + 0.3 * (xm - 100))) < 6


def test_step_ends_of_a_faint_segment_in_noise():
    """Analytic: a step of 2 sigma per sample on unit Gaussian noise over
    samples 150-449 (ends at 149.5 and 449.5), the level first measured on a
    window inside it.  The ends come back to within a few samples (the
    likelihood-ratio walk off the step drifts by -2**2 / 2 per sample, so
    it rarely overshoots by more than a few); a bright star on the line 4
    samples past an end changes nothing; a line leaving the searched sky
    ends the segment there; the inputs are not changed."""
    from allsky_camera.stages import line_search

    cfg = config.Streaks()
    kw = dict(bin_px=cfg.end_bin_px, iterations=cfg.end_iterations, off_sky_penalty=10.0,
              outlier_sigma=cfg.end_outlier_sigma)
    ones, yes = np.ones(600), np.ones(600, dtype=bool)
    errs = []
    for seed in range(20):
        rng = np.random.default_rng(40 + seed)
        values = rng.normal(size=600)
        values[150:450] += 2.0
        starry = values.copy()
        starry[454:460] += 12.0                  # a star just past the end
        before = starry.copy()
        a, b, level = line_search.step_ends(starry, ones, yes, yes, 250, 380, **kw)
        np.testing.assert_array_equal(starry, before)
        assert (a, b) == line_search.step_ends(values, ones, yes, yes, 250, 380, **kw)[:2]
        assert level == pytest.approx(2.0, abs=0.3)
        errs.append(max(abs(a - 149.5), abs(b - 449.5)))
    errs = np.array(errs)
    assert np.median(errs) <= 2.0 and errs.max() < TOL_PX, errs
    # the sky ending at sample 400
    a, b, _ = line_search.step_ends(values, ones, yes, np.arange(600) < 400, 250, 380, **kw)
    assert 390 < b <= 399.5 and abs(a - 149.5) < TOL_PX
    with pytest.raises(AllskyError, match="one length"):
        line_search.step_ends(values, np.ones(5), yes, yes, 250, 380, **kw)


def run_pipeline(path, camera_name, outdir):
    """The pipeline's streak table of a raw frame (CLI options of a user)."""
    from astropy.table import Table

    opts = ac_proc.build_parser().parse_args([str(path), "--outdir", str(outdir),
                                              "--camera", camera_name, "--detect_streaks",
                                              "--skip_checkplots", "--dont_write_detrended",
                                              "--dont_write_catalog", "-q"])
    ac_proc.run(opts)
    stem = path.name.split(".")[0]
    return Table.read(Path(outdir) / f"{stem}-streaks.fits")


@pytest.mark.slow
def test_independent_frame_streaks_found(tmp_path):
    """The three streaks of a frame rendered by another simulator (truth
    header STRKk = 'x1,y1,x2,y2'), found with both ends within INDEP_TOL_PX
    (the step model along the line places them to about a pixel), and
    nothing else, with the stock MDM configuration."""
    d = shared_data("independent")
    path = d / "mdm_cloud_streaks.fits.gz"
    head = fits.getheader(d / "mdm_cloud_streaks-truth.fits.gz", 1)
    truth = [np.array([float(v) for v in head[f"STRK{k}"].split(",")]).reshape(2, 2)
             for k in range(head["NSTREAK"])]
    t = run_pipeline(path, "MDM", tmp_path)
    assert len(t) == len(truth) == 3
    for seg in truth:
        assert endpoint_error(t, seg) < INDEP_TOL_PX


#: The one trail on the shared DCT frames, seen by eye on 006 (a satellite:
#: thin, crossing the stars, bent as a great circle is by the fisheye), as a
#: box x0, x1, y0, y1 in pixels.
DCT_TRAILS = {"006": (690.0, 1050.0, 630.0, 700.0)}


@pytest.mark.slow
@pytest.mark.parametrize("frame", ["002", "005", "006", "007", "010", "019"])
def test_no_false_streaks_on_real_frames(frame, tmp_path):
    """The real DCT frames: trees, the building, the wire, lens reflections
    and the Moon's halo are not streaks; the trail on 006 is."""
    t = run_pipeline(shared_data("dct") / f"{frame}.fits.bz2", "DCT", tmp_path)
    box = DCT_TRAILS.get(frame)
    for r in t:
        assert box is not None, (frame, list(r))
        for x, y in ((r["x1"], r["y1"]), (r["x2"], r["y2"])):
            assert box[0] <= x <= box[1] and box[2] <= y <= box[3], (frame, list(r))
    if box is not None:
        assert len(t) >= 1


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


def test_position_angle_width_and_brightness(camera):
    """A row-wise and a column-wise streak of known width and level."""
    m = camera.astrometry.model
    along_x = simulate.Streak(m.x0 - 300, m.y0 + 150, m.x0 + 200, m.y0 + 150, 3.0, 40.0)
    along_y = simulate.Streak(m.x0 - 200, m.y0 - 350, m.x0 - 200, m.y0 + 50, 2.0, 30.0)
    sim = simulate.simulate(camera, seed=11, streaks=[along_x, along_y])
    t = detect_on(camera, sim)
    assert len(t) == 2
    rx = t[np.argmin(np.abs(t["y1"] - along_x.y1))]
    ry = t[np.argmin(np.abs(t["x1"] - along_y.x1))]
    assert rx["pa_deg"] == pytest.approx(90.0, abs=1.0)
    assert min(ry["pa_deg"], 180 - ry["pa_deg"]) == pytest.approx(0.0, abs=1.0)
    assert rx["length_px"] == pytest.approx(500.0, abs=10.0)
    assert rx["width_px"] == pytest.approx(3.0, abs=1.0)
    assert ry["width_px"] == pytest.approx(2.0, abs=1.0)
    # the core level: the mean of the Gaussian profile over the centre +-1 px
    sig = 3.0 / simulate.FWHM_PER_SIGMA
    core = 40.0 * (1 + 2 * np.exp(-0.5 / sig ** 2)) / 3
    assert rx["sb_adu"] == pytest.approx(core, rel=0.15)
    omega = sim.truth.model.pixel_solid_angle(0.5 * (rx["x1"] + rx["x2"]),
                                              0.5 * (rx["y1"] + rx["y2"]))
    mu = sim.truth.zp_true - 2.5 * np.log10(rx["sb_adu"] / sim.truth.exptime
                                            / (omega * (180 / np.pi * 3600) ** 2))
    assert rx["sb_mag"] == pytest.approx(mu, abs=1e-6)


def test_masked_pixels_are_not_searched(camera):
    """A static line under the mask (a wire, an antenna) is never a streak, and the
    inputs are left as they were."""
    m = camera.astrometry.model
    line = simulate.Streak(m.x0 + 20, m.y0 - 10, m.x0 + 520, m.y0 + 90, 3.0, 50.0)
    sim = simulate.simulate(camera, seed=12, streaks=[line])
    assert len(detect_on(camera, sim)) == 1
    yy, xx = np.indices(sim.image.shape)
    d = np.array([line.x2 - line.x1, line.y2 - line.y1]) / np.hypot(500, 100)
    mask = np.abs((xx - line.x1) * d[1] - (yy - line.y1) * d[0]) < 6
    det = detrend.run(sim.image, camera)
    before, mask_before = det.image.copy(), mask.copy()
    t = streaks.detect(det.image, sim.truth.model, cfg=camera.streaks, exptime=1.0, zp=0.0,
                       mask=mask)
    assert len(t) == 0 and t.colnames == list(streaks.COLUMNS)
    np.testing.assert_array_equal(det.image, before)
    np.testing.assert_array_equal(mask, mask_before)


def test_empty_table_and_bad_input(camera):
    t = streaks.empty_table()
    assert len(t) == 0 and t.colnames == list(streaks.COLUMNS)
    assert str(t["x1"].unit) == "pix" and str(t["sb_mag"].unit) == "mag / arcsec2"
    assert all(t[c].description for c in t.colnames)
    m = camera.astrometry.model
    with pytest.raises(AllskyError, match="2-D"):
        streaks.detect(np.zeros((2, 3, 4)), m, cfg=camera.streaks, exptime=1.0, zp=0.0)
    with pytest.raises(AllskyError, match="mask has shape"):
        streaks.detect(np.zeros((30, 40)), m, cfg=camera.streaks, exptime=1.0, zp=0.0,
                       mask=np.zeros((3, 4), dtype=bool))


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


def test_defaults_live_in_one_place():
    """etc/MDM.yaml shows the streak settings as comments; they are the dataclass's."""
    import dataclasses
    import re

    text = (config.ETC_DIR / "MDM.yaml").read_text()
    shown = dict(re.findall(r"^#   (\w+): ([^ #]+)", text.split("# streaks:")[1].split("\n\n")[0],
                            flags=re.M))
    defaults = {f.name: f.default for f in dataclasses.fields(config.Streaks)}
    assert set(shown) == set(defaults)
    for name, value in shown.items():
        assert float(value) == defaults[name], name
    assert config.load_camera("MDM").streaks == config.Streaks()
