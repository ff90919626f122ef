"""sim.streaks: straight streaks of Gaussian profile."""

import math

import numpy as np
import pytest

from allsky_camera.sim import psf, streaks


def test_render_streak_profile():
    s = streaks.Streak(10.0, 50.0, 190.0, 50.0, width_px=3.0, peak_adu=20.0)
    img = streaks.render_streaks((100, 200), [s])
    assert img[50, 100] == pytest.approx(20.0)
    sigma = 3.0 / psf.FWHM_PER_SIGMA
    np.testing.assert_allclose(img[45:56, 100], 20.0 * np.exp(-0.5 * (np.arange(-5, 6) / sigma)
                                                              ** 2), rtol=1e-12)
    assert img[50, 9] == 0.0 and img[50, 191] == 0.0 and img[50, 10] > 0     # cut at its ends
    # a streak leaving the image: what is on it is drawn, the rest dropped
    off = streaks.Streak(100.0, 50.0, 500.0, 50.0, 2.0, 10.0)
    img = streaks.render_streaks((100, 200), [off])
    assert img[50, 100:].min() == pytest.approx(10.0) and img[50, :99].max() == 0.0


def test_random_streaks():
    a = streaks.random_streaks(6, (1200, 1600), np.random.default_rng(1))
    b = streaks.random_streaks(6, (1200, 1600), np.random.default_rng(1))
    assert a == b and len(a) == 6
    for i, s in enumerate(a):
        leaves = not (0 <= s.x2 <= 1599 and 0 <= s.y2 <= 1199)
        assert leaves == (i % 3 == 0) or i % 3 != 0
        assert 1.5 <= s.width_px <= 4.0 and 15.0 <= s.peak_adu <= 60.0
    assert not (0 <= a[0].x2 <= 1599 and 0 <= a[0].y2 <= 1199)


@pytest.mark.parametrize("angle_deg, width", [(0.0, 2.5), (27.0, 2.5), (63.0, 4.0),
                                              (90.0, 1.8)])
def test_streak_flux_is_peak_times_profile_integral_times_length(angle_deg, width):
    """Sum over the image = peak * sigma sqrt(2 pi) * length (the Gaussian integral);
    sampling at pixel centres sums a Gaussian of sigma >= 0.75 px to within 1e-6."""
    length, peak = 300.0, 12.0
    a = math.radians(angle_deg)
    cx, cy = 200.0, 200.0
    s = streaks.Streak(cx - 0.5 * length * math.cos(a), cy - 0.5 * length * math.sin(a),
                       cx + 0.5 * length * math.cos(a), cy + 0.5 * length * math.sin(a),
                       width_px=width, peak_adu=peak)
    img = streaks.render_streaks((400, 400), [s])
    sigma = width / psf.FWHM_PER_SIGMA
    want = peak * sigma * math.sqrt(2 * math.pi) * length
    # the square cut at the ends counts whole pixels: about one pixel row of error
    assert img.sum() == pytest.approx(want, rel=2.0 / length)


def test_streak_half_maximum_is_half_the_fwhm_across():
    """Pixels at or above half the peak are those within FWHM / 2 of the centre line
    (the definition of the FWHM), for an oblique streak."""
    a = math.radians(35.0)
    length, width, peak = 250.0, 3.2, 40.0
    s = streaks.Streak(50.0, 50.0, 50 + length * math.cos(a), 50 + length * math.sin(a),
                       width, peak)
    img = streaks.render_streaks((300, 300), [s])
    yy, xx = np.indices(img.shape)
    along = (xx - 50) * math.cos(a) + (yy - 50) * math.sin(a)
    across = (yy - 50) * math.cos(a) - (xx - 50) * math.sin(a)
    mid = (along > 10) & (along < length - 10)
    np.testing.assert_array_equal((img >= peak / 2)[mid], (np.abs(across) <= width / 2)[mid])
    assert img[mid].max() <= peak


def test_no_streaks_and_zero_length():
    assert not streaks.render_streaks((10, 10), []).any()
    assert not streaks.render_streaks((10, 10), [streaks.Streak(3, 3, 3, 3, 2.0, 5.0)]).any()


def test_streak_is_checked():
    from allsky_camera.exceptions import ConfigError

    with pytest.raises(ConfigError, match="width_px"):
        streaks.Streak(0, 0, 10, 10, 0.0, 5.0)
