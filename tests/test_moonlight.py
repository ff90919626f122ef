"""The Krisciunas & Schaefer (1991) moonlight model against numbers from outside the project."""

import numpy as np
import pytest

from allsky_camera.stages import moonlight

#: specsim (desihub/specsim, an independent implementation of the same model)
#: documents for its ``atmosphere.krisciunas_schaefer``: sky at zenith
#: distance 20 deg, Moon at zenith distance 70 deg, 50 deg apart, lunar phase
#: 0.25 (its phase runs 0 at full to 1 at new, the phase angle being
#: 180 deg times it), V extinction 0.15: 19.855 mag/arcsec^2.
SPECSIM_EXAMPLE = dict(zd_deg=20.0, moon_zd_deg=70.0, sep_deg=50.0, phase_deg=0.25 * 180.0,
                       k_v=0.15)
SPECSIM_MAG = 19.855
#: Luminance of a sky of V mu mag/arcsec^2: 10.8e4 * 10^(-0.4 mu) cd/m^2 (the
#: photometric conversion used for sky-quality meters and in Garstang's and
#: Schaefer's papers); one nanolambert is 1e-9 / pi cd/cm^2 = 1e-5 / pi cd/m^2.
CD_M2_AT_MAG0 = 10.8e4
CD_M2_PER_NL = 1e-5 / np.pi


def test_specsim_published_example():
    b = moonlight.scattered_moonlight_nl(**SPECSIM_EXAMPLE)
    assert moonlight.nl_to_mag(b) == pytest.approx(SPECSIM_MAG, abs=0.001)


@pytest.mark.parametrize("mu", [17.0, 19.5, 21.0, 22.0])
def test_nanolamberts_are_the_luminance_of_the_magnitude(mu):
    cd_m2 = moonlight.mag_to_nl(mu) * CD_M2_PER_NL
    # the two published conversions agree to about 0.5 %
    assert cd_m2 == pytest.approx(CD_M2_AT_MAG0 * 10 ** (-0.4 * mu), rel=0.01)
    assert moonlight.nl_to_mag(moonlight.mag_to_nl(mu)) == pytest.approx(mu, abs=1e-12)


def test_nl_to_mag_of_nothing_is_nan():
    out = moonlight.nl_to_mag(np.array([0.0, -1.0, 100.0]))
    assert np.isnan(out[:2]).all() and np.isfinite(out[2])


def test_phase_angle_of_the_illuminated_fraction():
    # the lit fraction of a sphere at phase angle alpha is (1 + cos alpha) / 2
    np.testing.assert_allclose(moonlight.phase_angle_deg([1.0, 0.5, 0.0, 1.2]),
                               [0.0, 90.0, 180.0, 0.0], atol=1e-9)
    alpha = np.linspace(0.0, 180.0, 7)
    np.testing.assert_allclose(moonlight.phase_angle_deg((1 + np.cos(np.radians(alpha))) / 2),
                               alpha, atol=1e-6)


def test_moon_below_the_horizon_adds_nothing():
    b = moonlight.scattered_moonlight_nl(zd_deg=np.array([0.0, 40.0]), moon_zd_deg=95.0,
                                         sep_deg=np.array([95.0, 60.0]), phase_deg=0.0,
                                         k_v=0.15)
    np.testing.assert_array_equal(b, 0.0)


def test_brighter_near_the_moon_and_when_full():
    kw = dict(zd_deg=30.0, moon_zd_deg=50.0, k_v=0.15)
    near = moonlight.scattered_moonlight_nl(sep_deg=20.0, phase_deg=0.0, **kw)
    far = moonlight.scattered_moonlight_nl(sep_deg=90.0, phase_deg=0.0, **kw)
    quarter = moonlight.scattered_moonlight_nl(sep_deg=20.0, phase_deg=90.0, **kw)
    assert near > far > 0
    # Allen's phase law: the quarter Moon is 0.026 * 90 + 4e-9 * 90^4 = 2.60 mag
    # fainter than the full one, and so is its scattered light
    assert 2.5 * np.log10(near / quarter) == pytest.approx(2.6024, abs=1e-3)


def test_inputs_not_modified():
    zd = np.array([10.0, 50.0])
    sep = np.array([30.0, 80.0])
    moonlight.scattered_moonlight_nl(zd_deg=zd, moon_zd_deg=60.0, sep_deg=sep, phase_deg=30.0,
                                     k_v=0.2)
    np.testing.assert_array_equal(zd, [10.0, 50.0])
    np.testing.assert_array_equal(sep, [30.0, 80.0])
