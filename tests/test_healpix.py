"""HEALPix pixel indices against healpy, median maps, Nside checks."""

import numpy as np
import pytest

from allsky_camera.exceptions import AllskyError
from allsky_camera.stages import healpix


@pytest.mark.parametrize("nside", [1, 2, 8, 64, 1024])
def test_ang2pix_ring_matches_healpy(nside):
    import healpy as hp

    rng = np.random.default_rng(nside)
    theta = np.degrees(np.arccos(rng.uniform(-1, 1, 50000)))
    phi = rng.uniform(0, 360, 50000)
    theta = np.r_[theta, 0.0, 180.0, 90.0, 48.19, 131.81]
    phi = np.r_[phi, 0.0, 359.999999, 0.0, 90.0, 270.0]
    ours = healpix.ang2pix_ring(nside, theta, phi)
    ref = hp.ang2pix(nside, np.radians(theta), np.radians(phi))
    np.testing.assert_array_equal(ours, ref)


def test_median_map():
    theta = np.array([10.0, 10.0, 10.0, 100.0])
    phi = np.array([5.0, 5.0, 5.0, 200.0])
    med, n = healpix.median_map(8, theta, phi, np.array([1.0, 2.0, 9.0, 4.0]))
    p = healpix.ang2pix_ring(8, theta, phi)
    assert med[p[0]] == 2.0 and n[p[0]] == 3 and med[p[3]] == 4.0
    assert np.isnan(med).sum() == 768 - 2


@pytest.mark.parametrize("bad", [0, 3, 12, -8, 2048, 8.0, True])
def test_bad_nside(bad):
    with pytest.raises(AllskyError, match="power of two"):
        healpix.check_nside(bad)


def test_bad_nside_in_config_is_a_config_error():
    from allsky_camera.camera import config
    from allsky_camera.exceptions import ConfigError

    d = config.camera_to_dict(config.load_camera("MDM"))
    d["transparency"]["nside"] = 6
    with pytest.raises(ConfigError, match="transparency.nside"):
        config.camera_from_dict(d)
