"""Astrometric fit: recovery of injected template offsets on synthetic positions."""

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import astrometry


@pytest.fixture(scope="module")
def template():
    return config.load_camera("MDM").astrometry.model


def sky_points(n, rng):
    alt = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(20)), 1.0, n)))
    az = rng.uniform(0, 360, n)
    return alt, az


def test_fit_recovers_shift_rotation_scale(template):
    rng = np.random.default_rng(11)
    alt, az = sky_points(400, rng)
    truth = template.replace(x0=template.x0 + 2.5, y0=template.y0 - 1.5,
                             rot_deg=template.rot_deg + 0.3, scale=1.002)
    x, y = truth.altaz_to_xy(alt, az)
    x = x + rng.normal(0, 0.1, x.size)
    y = y + rng.normal(0, 0.1, y.size)
    x[:20] += rng.uniform(5, 10, 20)          # outliers: wrong matches
    fit = astrometry.fit_model(template, x, y, alt, az, params=("x0", "y0", "rot_deg", "scale"),
                               clip_sigma=4.0, min_stars=10)
    assert fit.ok
    m = fit.model
    assert abs(m.x0 - truth.x0) < 0.05 and abs(m.y0 - truth.y0) < 0.05
    assert abs(m.rot_deg - truth.rot_deg) < 0.005
    assert abs(m.scale - truth.scale) < 1e-4
    assert not fit.used[:20].any()             # every outlier clipped
    assert fit.rms_px == pytest.approx(0.1 * np.sqrt(2), rel=0.15)


def test_fit_with_tilt(template):
    rng = np.random.default_rng(12)
    alt, az = sky_points(500, rng)
    truth = template.replace(tilt_n_deg=0.8, tilt_e_deg=-0.5, x0=template.x0 + 1.0)
    x, y = truth.altaz_to_xy(alt, az)
    fit = astrometry.fit_model(template, x, y, alt, az,
                               params=("x0", "y0", "rot_deg", "scale", "tilt_n_deg",
                                       "tilt_e_deg"), clip_sigma=4.0, min_stars=10)
    assert fit.rms_px < 0.01
    assert fit.model.tilt_n_deg == pytest.approx(0.8, abs=0.01)
    assert fit.model.tilt_e_deg == pytest.approx(-0.5, abs=0.01)


def test_too_few_stars_keeps_template(template):
    alt, az = np.array([60.0, 50.0]), np.array([10.0, 200.0])
    x, y = template.altaz_to_xy(alt, az)
    fit = astrometry.fit_model(template, x, y, alt, az, params=("x0", "y0"), clip_sigma=4,
                               min_stars=12)
    assert not fit.ok and fit.model is template
    assert "fewer than 12" in fit.message
