"""sim.geometry: where each pixel looks, its solid angle, which pixels see the sky."""

from pathlib import Path

import numpy as np
import pytest

from allsky_camera.camera import config
from allsky_camera.sim import geometry

SMALL = Path(__file__).resolve().parent / "data" / "SMALL640.yaml"


@pytest.fixture(scope="module")
def cam():
    return config.load_camera(SMALL)


def test_arcsec2_per_sr():
    """One steradian is 4.25452e10 square arcseconds."""
    assert geometry.ARCSEC2_PER_SR == pytest.approx(4.25451702961e10, rel=1e-10)


@pytest.mark.parametrize("tilt", [0.0, 1.5])
@pytest.mark.parametrize("horizon_alt", [20.0, 45.0])
def test_sky_pixels_hold_the_solid_angle_of_the_sky_cap(cam, tilt, horizon_alt):
    """Summed pixel solid angles above altitude h = 2 pi (1 - sin h), the spherical cap."""
    model = cam.astrometry.model.replace(tilt_n_deg=tilt)
    zd, omega, on_sky = geometry.sky_geometry(model, cam.sensor.nx, cam.sensor.ny, horizon_alt)
    cap = 2 * np.pi * (1 - np.sin(np.radians(horizon_alt)))
    # pixels are counted whole at the cap's edge: about half a pixel ring of error
    ring = np.pi * 2 * float(model.radius(90.0 - horizon_alt)) * omega[on_sky].max()
    assert omega[on_sky].sum() == pytest.approx(cap, abs=0.5 * ring)
    assert np.all(zd[on_sky] <= 90.0 - horizon_alt + 1e-9)


def test_zenith_distance_agrees_with_the_model(cam):
    model = cam.astrometry.model
    zd, _, on_sky = geometry.sky_geometry(model, cam.sensor.nx, cam.sensor.ny, 2.0)
    ys, xs, alt, az = geometry.sky_pixels(model, on_sky)
    np.testing.assert_array_equal(np.nonzero(on_sky), (ys, xs))
    np.testing.assert_allclose(zd[ys, xs], 90.0 - alt, atol=1e-5)
    assert alt.size == on_sky.sum() and np.all((az >= 0) & (az < 360))
