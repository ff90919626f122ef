"""Sky-brightness map: the safe circle, solid angles and magnitudes against
direct formulae."""

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.stages import sbmap

#: Square arcseconds in a steradian, (180 / pi * 3600)^2 = 4.2545e10 (IAU
#: definition of the arcsecond), written out independently of the module.
ARCSEC2_PER_SR = 4.254517029615221e10


@pytest.fixture(scope="module")
def model():
    return config.load_camera("MDM").astrometry.model


@pytest.mark.parametrize("centre,radius", [((800.3, 600.7), 450.0), ((-20.0, 30.0), 100.0),
                                           ((5.5, 3.5), 0.0), ((100.0, 90.0), 1e4)])
def test_safe_mask_is_the_distance_grid(model, centre, radius):
    m = model.replace(x0=centre[0], y0=centre[1])
    shape = (1200, 1600)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    want = np.hypot(xx - centre[0], yy - centre[1]) <= radius
    np.testing.assert_array_equal(sbmap.safe_mask(shape, m, radius), want)


def test_solid_angles_follow_the_model(model):
    rng = np.random.default_rng(51)
    x, y = rng.uniform(0, 1600, 500), rng.uniform(0, 1200, 500)
    r = np.hypot(x - model.x0, y - model.y0)
    inside = r < 500.0
    got = sbmap.solid_angle_map(model, x[None, :], y[None, :], r_max=500.0)[0]
    want = model.pixel_solid_angle(x, y)
    np.testing.assert_allclose(got[inside], want[inside], rtol=1e-6)


def test_flat_sky_map_is_the_formula(model):
    """A flat image of S ADU: every safe pixel reads zp - 2.5 log10(S / t / (omega A))."""
    cam = config.load_camera("MDM")
    shape = (cam.sensor.ny, cam.sensor.nx)
    level, exptime, zp, radius = 37.0, 15.0, 6.1, 420.0
    img = np.full(shape, level, dtype=np.float32)
    res = sbmap.run(img, model, exptime, zp, cam.sbmap, radius)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    safe = np.hypot(xx - model.x0, yy - model.y0) <= radius
    assert np.isnan(res.mag[~safe]).all()
    ys, xs = np.nonzero(safe)
    sel = np.random.default_rng(52).choice(ys.size, 2000, replace=False)
    omega = model.pixel_solid_angle(xs[sel], ys[sel])
    want = zp - 2.5 * np.log10(level / exptime / (omega * ARCSEC2_PER_SR))
    np.testing.assert_allclose(res.mag[ys[sel], xs[sel]], want, atol=2e-5)
    assert res.zenith_mag == pytest.approx(float(res.mag[round(model.y0), round(model.x0)]))
