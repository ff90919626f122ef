"""sim.clouds: cloud transmission maps, thin cloud, haze and the cloud's own light."""

import numpy as np
import pytest

from allsky_camera.exceptions import ConfigError
from allsky_camera.sim import clouds


def uniform_hemisphere(n, seed):
    """Directions uniform in solid angle on the upper hemisphere (uniform sin(alt)), deg."""
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(0.0, 1.0, n))), rng.uniform(0.0, 360.0, n), rng


@pytest.mark.parametrize("kind, covered", [("quarter", 0.25), ("half", 0.5),
                                           ("three-quarter", 0.75)])
def test_sector_clouds_cover_their_share_of_the_sky(kind, covered):
    """Directions drawn uniformly on the upper hemisphere (uniform sin(alt))."""
    rng = np.random.default_rng(8)
    alt = np.degrees(np.arcsin(rng.uniform(0.0, 1.0, 20000)))
    az = rng.uniform(0.0, 360.0, alt.size)
    t = clouds.cloud_transmission(clouds.Clouds(kind, 0.1, az_deg=300.0), alt, az, rng)
    assert np.mean(t < 1.0) == pytest.approx(covered, abs=0.01)


def test_band_covers_sin_of_its_half_width():
    """The part of a sphere within d of a great circle is sin(d) of it (spherical zone)."""
    alt, az, rng = uniform_hemisphere(40000, 9)
    t = clouds.cloud_transmission(clouds.Clouds("band", 0.3, az_deg=70.0), alt, az, rng)
    assert np.mean(t < 1.0) == pytest.approx(np.sin(np.radians(clouds.BAND_HALF_WIDTH_DEG)),
                                             abs=0.006)
    assert set(np.unique(t)) == {0.3, 1.0}


def test_thin_cloud_spans_its_transmission_range_with_structure():
    alt, az, rng = uniform_hemisphere(40000, 10)
    c = clouds.Clouds("thin", 0.5, 3.0, az_deg=120.0, transmission_max=0.9)
    t = clouds.cloud_transmission(c, alt, az, rng)
    daz = (az - 120.0 + 180.0) % 360.0 - 180.0
    inside = np.abs(daz) < clouds.QUARTER_HALF_WIDTH_DEG
    assert np.all(t[~inside] == 1.0)
    assert np.all((t[inside] >= 0.5) & (t[inside] <= 0.9))
    # structure: most of the range is used, not a uniform layer
    lo, hi = np.percentile(t[inside], [2, 98])
    assert lo < 0.6 and hi > 0.8 and np.std(t[inside]) > 0.05


def test_haze_and_overcast_are_uniform():
    alt, az, rng = uniform_hemisphere(1000, 11)
    for kind in ("haze", "overcast"):
        t = clouds.cloud_transmission(clouds.Clouds(kind, 0.85, 1.0), alt, az, rng)
        assert np.all(t == 0.85)
    assert np.all(clouds.cloud_transmission(None, alt, az, rng) == 1.0)
    assert np.all(clouds.cloud_transmission(clouds.Clouds("none"), alt, az, rng) == 1.0)


def test_stars_and_sky_see_the_same_patches():
    alt, az, rng = uniform_hemisphere(5000, 12)
    sky_t, star_t = clouds.sky_and_star_transmission(
        clouds.Clouds("patches", 0.2), (alt, az), (alt[::7], az[::7]), rng)
    assert sky_t.shape == alt.shape and star_t.shape == alt[::7].shape
    np.testing.assert_array_equal(star_t, sky_t[::7])
    assert 0.05 < np.mean(sky_t < 1.0) < 0.8


def test_cloudy_sky_light():
    sky = np.array([100.0, 100.0, 100.0, 100.0])
    t = np.array([1.0, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(clouds.cloudy_sky(sky, t, 2.0), [100.0, 150.0, 200.0, 200.0])
    # brightening 1: the cloud sends back exactly the light it takes away
    np.testing.assert_allclose(clouds.cloudy_sky(sky, t, 1.0), sky)
    assert np.all(sky == 100.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="fog"), "choose one of"),
    (dict(kind="band", transmission=1.5), "fraction"),
    (dict(kind="band", brightening=-1.0), ">= 0"),
    (dict(kind="thin", transmission=0.5), "transmission_max"),
    (dict(kind="thin", transmission=0.5, transmission_max=0.4), "transmission_max"),
])
def test_clouds_are_checked(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        clouds.Clouds(**kwargs)
