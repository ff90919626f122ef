"""sim.detector: noise, bias, hot pixels and digitisation, each step alone."""

import numpy as np
import pytest

from allsky_camera.sim import detector


def test_raw_dtype():
    assert detector.raw_dtype(255) == np.uint8
    assert detector.raw_dtype(4095) == np.uint16
    assert detector.raw_dtype(65535) == np.uint16


@pytest.mark.parametrize("signal, gain, read_noise", [(200.0, 2.5, 6.0), (30.0, 1.0, 4.0),
                                                      (1000.0, 0.5, 10.0)])
def test_noise_follows_the_ccd_equation(signal, gain, read_noise):
    """Mean = signal; variance = signal / gain + (read noise / gain)^2 ADU^2
    (the CCD noise equation, e.g. Howell, Handbook of CCD Astronomy, ch. 4)."""
    sig = np.full((400, 500), signal)
    adu = detector.add_noise(sig, gain_e_per_adu=gain, read_noise_e=read_noise,
                             rng=np.random.default_rng(1))
    want = signal / gain + (read_noise / gain) ** 2
    assert adu.mean() == pytest.approx(signal, abs=4 * np.sqrt(want / adu.size))
    # the sample variance of n normal-ish values has a relative error sqrt(2 / n)
    assert adu.var() == pytest.approx(want, rel=5 * np.sqrt(2.0 / adu.size))
    assert np.array_equal(sig, np.full((400, 500), signal))       # input unchanged


def test_negative_signal_counts_as_none():
    adu = detector.add_noise(np.full(1000, -50.0), gain_e_per_adu=2.0, read_noise_e=0.0,
                             rng=np.random.default_rng(2))
    assert not adu.any()


def test_hot_pixels_count_range_and_copy():
    frame = np.full((100, 120), 10.0)
    out, hot = detector.add_hot_pixels(frame, fraction=1e-3, saturation_adu=4095.0,
                                       rng=np.random.default_rng(3))
    assert hot.shape == frame.shape and hot.sum() == 12            # round(1e-3 * 12000)
    assert np.all((out[hot] >= 0.5 * 4095.0) & (out[hot] <= 4095.0))
    assert np.all(out[~hot] == 10.0) and np.all(frame == 10.0)
    none, hot0 = detector.add_hot_pixels(frame, fraction=0.0, saturation_adu=255.0,
                                         rng=np.random.default_rng(3))
    assert not hot0.any() and np.array_equal(none, frame)


def test_digitise_rounds_clips_and_casts():
    raw = detector.digitise(np.array([-3.0, 0.4, 0.6, 254.4, 254.6, 300.0]), 255)
    assert raw.dtype == np.uint8
    assert raw.tolist() == [0, 0, 1, 254, 255, 255]
    assert detector.digitise(np.array([70000.0]), 100000).dtype == np.int32


def test_expose_adds_the_bias_and_is_reproducible():
    signal = np.full((200, 200), 50.0)
    kw = dict(gain_e_per_adu=2.0, read_noise_e=3.0, bias_adu=100.0, hot_pixel_fraction=0.0,
              saturation_adu=4095)
    raw, hot = detector.expose(signal, rng=np.random.default_rng(5), **kw)
    again, _ = detector.expose(signal, rng=np.random.default_rng(5), **kw)
    assert raw.dtype == np.uint16 and np.array_equal(raw, again) and not hot.any()
    # rounding adds 1/12 ADU^2 to the variance
    assert raw.mean() == pytest.approx(150.0, abs=0.1)
    assert raw.var() == pytest.approx(50 / 2 + (3 / 2) ** 2 + 1 / 12, rel=0.03)
