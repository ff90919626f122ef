"""Static masks from several frames: fixed dark features in, transient light out."""

import logging

import numpy as np
import pytest
from astropy.io import fits

import dct_labels
from allsky_camera import ac_calibrate
from allsky_camera.camera import config, coords, masks
from allsky_camera.stages import io
from tests_helpers import RecordingHandler

CIRCLE = (200.0, 150.0, 140.0)


def _sky(seed, shape=(300, 400)):
    """A flat sky of 1000 ADU with Gaussian noise, inside CIRCLE; 0 outside."""
    rng = np.random.default_rng(seed)
    img = 1000.0 + rng.normal(0.0, 5.0, shape)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    img[np.hypot(x - CIRCLE[0], y - CIRCLE[1]) >= CIRCLE[2]] = 0.0
    return img.astype(np.float32)


def test_only_what_most_frames_show_dark_is_masked():
    frames = [_sky(s) for s in range(3)]
    for f in frames:
        f[100:140, 150:190] *= 0.3               # a building: dark in every frame
    frames[0][180:220, 220:260] *= 0.3           # a dark cloud in one frame only
    y, x = np.mgrid[0:300, 0:400]
    frames[1] += 3000.0 * np.exp(-np.hypot(x - 120, y - 200) / 15.0)   # a Moon halo
    before = [f.copy() for f in frames]
    m = masks.obstructions(frames, CIRCLE)
    assert m[110:130, 160:180].all()                         # the building
    assert not m[190:210, 230:250].any()                     # the one-frame cloud
    assert not m[185:215, 105:135].any()                     # the halo
    assert m[0, 0] and m[150, 399]                           # outside the lens
    for f, b in zip(frames, before):
        np.testing.assert_array_equal(f, b)


def test_a_thin_dark_line_in_two_frames_is_kept_even_if_it_sways():
    frames = [_sky(s) for s in range(4)]
    for k, off in enumerate((0, 2)):             # the wire, 2 px apart in two frames
        frames[k][148 + off:150 + off, 120:280] -= 40.0
    m = masks.obstructions(frames, CIRCLE)
    assert m[149:152, 130:270].all()
    frames = [_sky(s) for s in range(4)]
    frames[0][148:150, 120:280] -= 40.0          # in one frame only: a transient
    assert not masks.obstructions(frames, CIRCLE)[149, 130:270].any()


def test_hot_pixels_need_most_frames():
    frames = [_sky(s) for s in range(3)]
    for f in frames[:2]:
        f[50, 200] += 500.0
    frames[2][60, 210] += 500.0
    bad = masks.bad_pixels(np.stack(frames))
    assert bad[50, 200] and not bad[60, 210]


# ---------------------------------------------------------------- the DCT masks
@pytest.fixture(scope="module")
def dct_obstruction():
    cam = config.load_camera("DCT")
    return cam, masks.read_mask(cam.resolve(cam.sensor.obstruction_mask),
                                (cam.sensor.ny, cam.sensor.nx))


def _frame(name):
    d = dct_labels.dct_dir()
    if d is None:
        pytest.skip("the real DCT frames (../shared/data/dct) are not here: skipped")
    return fits.getdata(d / f"{name}.fits.bz2").astype(np.float32), fits.getheader(
        d / f"{name}.fits.bz2")


@pytest.mark.parametrize("frame, min_seen", [("007", 0.8), ("019", 0.5)])
def test_dct_mask_holds_the_whole_wire(dct_obstruction, frame, min_seen):
    # the wire, found in the raw frame (overcast 007, Milky Way 019) column by
    # column as the darkest pixel against a running median along the column,
    # near a straight guess across its span; it sways by a few pixels
    from scipy import ndimage

    _, obs = dct_obstruction
    img, _ = _frame(frame)
    sm = ndimage.uniform_filter(img, 3)
    seen = 0
    cols = range(830, 1060, 20)
    for x in cols:
        guess = int(420 + (x - 800) * 0.54)
        col = sm[guess - 30:guess + 31, x]
        r = col - ndimage.median_filter(col, 15)
        k = int(np.argmin(r))
        if -r[k] > 5 * 1.4826 * np.median(np.abs(r - np.median(r))):
            seen += 1
            y = guess - 30 + k
            assert obs[y - 3:y + 4, x].any(), (x, y)
    assert seen >= min_seen * len(cols)      # the Milky Way hides it in places on 019


def test_dct_mask_holds_no_moon_halo(dct_obstruction):
    # the Moon in frame 010 (alt 26 deg): where astropy's ephemeris and the
    # camera model put it; its halo must not be in the static mask
    cam, obs = dct_obstruction
    img, header = _frame("010")
    t = io.start_time(header, cam.header, "010")
    site, _ = coords.site_from_config(cam.site)
    eph = coords.sun_moon_altaz(t, site)
    mx, my = cam.astrometry.model.altaz_to_xy(np.array([eph["moon_alt"]]),
                                              np.array([eph["moon_az"]]))
    y, x = np.mgrid[0:obs.shape[0], 0:obs.shape[1]]
    r = np.hypot(x - mx[0], y - my[0])
    halo = (r > 15) & (r < 110)
    assert img[halo].mean() > 2 * np.median(img[::8, ::8])     # the halo is bright there
    assert obs[halo].mean() < 0.02


def test_dct_mask_holds_the_trees_at_the_top(dct_obstruction):
    # trees at the top edge (the README of the frames): the silhouette above
    # the centre, dark in the twilight frame 002 against its bright sky
    cam, obs = dct_obstruction
    img, _ = _frame("002")
    img = img - cam.sensor.bias_adu
    top = (slice(850, 940), slice(600, 800))
    dark = img[top] < 0.5 * np.median(img[300:700, 400:1000])
    assert dark.sum() > 1000 and obs[top][dark].mean() > 0.9


def test_calibration_warns_for_frames_with_the_moon_up():
    cam = config.load_camera("DCT")
    site, _ = coords.site_from_config(cam.site)
    # 010: the Moon 26 deg up; 005: the Moon 27 deg down (astropy's ephemeris)
    headers = [fits.Header({"DATE-OBS": "2018-06-29T10:34:17"}),
               fits.Header({"DATE-OBS": "2018-08-06T05:17:04"})]
    log = logging.getLogger("allsky_camera")
    catch = RecordingHandler()
    log.addHandler(catch)
    try:
        ac_calibrate.warn_moon(["010", "005"], headers, cam.header, site)
    finally:
        log.removeHandler(catch)
    msgs = [r.getMessage() for r in catch.records if r.levelno == logging.WARNING]
    assert len(msgs) == 1 and msgs[0].startswith("010: the Moon is up"), msgs
