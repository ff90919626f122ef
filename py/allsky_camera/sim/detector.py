"""The simulated detector: photon and read noise, bias, hot pixels, digitisation.

:func:`expose` turns an expected signal (ADU per pixel, bias excluded)
into a raw frame in three steps, each a function of its own:
:func:`add_noise` (Poisson electrons and Gaussian read noise, back to ADU),
:func:`add_hot_pixels` (after the bias pedestal is added) and
:func:`digitise` (round, clip to the saturation level, cast to
:func:`raw_dtype`).  Random draws come in that order from one generator,
so the same seed gives the same frame.

Images are indexed ``image[y, x]`` (0-based, x the fast axis); signal in
ADU, noise in electrons where named ``_e``.
"""

from __future__ import annotations

import numpy as np

#: Hot pixels take values uniform between this fraction of the saturation
#: level and the saturation level (a shape choice of the simulator: hot
#: pixels of real sensors are bright, many of them saturated).
HOT_PIXEL_MIN_FRACTION = 0.5


def raw_dtype(saturation_adu):
    """Integer type of a raw frame saturating at ``saturation_adu`` ADU.

    ``uint8`` up to 255, ``uint16`` up to 65535, else ``int32``.
    """
    if saturation_adu <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if saturation_adu <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


def add_noise(signal_adu, *, gain_e_per_adu, read_noise_e, rng):
    """Photon and read noise on an expected signal.

    Electrons ``signal * gain`` are drawn from a Poisson law (negative
    signal counts as 0), Gaussian read noise of ``read_noise_e`` electrons
    is added and the sum divided by the gain, so the variance of a pixel
    is ``signal / gain + (read_noise_e / gain)^2`` ADU^2.

    Parameters
    ----------
    signal_adu : ndarray
        Expected signal, ADU per pixel, bias excluded.
    gain_e_per_adu : float
        Electrons per ADU.
    read_noise_e : float
        Read noise, electrons RMS.
    rng : numpy.random.Generator
        Draws the Poisson, then the Gaussian, values.

    Returns
    -------
    ndarray of float64, the shape of ``signal_adu``
        Noisy signal, ADU (not rounded).
    """
    electrons = rng.poisson(np.maximum(signal_adu, 0.0) * gain_e_per_adu).astype(float)
    electrons += rng.normal(0.0, read_noise_e, size=signal_adu.shape)
    return electrons / gain_e_per_adu


def add_hot_pixels(adu, *, fraction, saturation_adu, rng):
    """Set ``round(fraction * npix)`` distinct random pixels to hot values.

    Parameters
    ----------
    adu : ndarray
        Frame, ADU (not changed).
    fraction : float
        Fraction of the pixels that are hot.
    saturation_adu : float
        Hot values are uniform between ``HOT_PIXEL_MIN_FRACTION`` of this
        and this, ADU.
    rng : numpy.random.Generator
        Draws the pixels (without replacement), then their values.

    Returns
    -------
    adu : ndarray of float64
        A copy with the hot pixels set.
    hot : ndarray of bool, the shape of ``adu``
        The hot pixels.
    """
    out = np.array(adu, dtype=float)
    n_hot = round(fraction * out.size)
    hot = np.zeros(out.size, dtype=bool)
    if n_hot > 0:
        idx = rng.choice(out.size, size=n_hot, replace=False)
        hot[idx] = True
        out.flat[idx] = rng.uniform(HOT_PIXEL_MIN_FRACTION * saturation_adu, saturation_adu,
                                    size=n_hot)
    return out, hot.reshape(out.shape)


def digitise(adu, saturation_adu):
    """Round to integers, clip to ``[0, saturation_adu]`` and cast to :func:`raw_dtype`.

    Parameters
    ----------
    adu : ndarray
        Frame, ADU.
    saturation_adu : float
        Largest value the camera records, ADU.

    Returns
    -------
    ndarray of :func:`raw_dtype`
    """
    return np.clip(np.rint(adu), 0, saturation_adu).astype(raw_dtype(saturation_adu))


def expose(signal_adu, *, gain_e_per_adu, read_noise_e, bias_adu, hot_pixel_fraction,
           saturation_adu, rng):
    """Turn an expected signal (ADU per pixel, bias excluded) into a raw frame.

    :func:`add_noise`, plus the pedestal ``bias_adu`` on every pixel, then
    :func:`add_hot_pixels` and :func:`digitise`.

    Parameters
    ----------
    signal_adu : ndarray, shape (ny, nx)
        Expected signal, ADU per pixel.
    gain_e_per_adu, read_noise_e, bias_adu, hot_pixel_fraction : float
        The camera's ``simulation`` settings (electrons per ADU, electrons,
        ADU, fraction of the pixels).
    saturation_adu : float
        The sensor's saturation level, ADU.
    rng : numpy.random.Generator

    Returns
    -------
    raw : ndarray of :func:`raw_dtype`, shape (ny, nx)
    hot : ndarray of bool, shape (ny, nx)
        The hot pixels.
    """
    adu = add_noise(signal_adu, gain_e_per_adu=gain_e_per_adu, read_noise_e=read_noise_e,
                    rng=rng) + bias_adu
    adu, hot = add_hot_pixels(adu, fraction=hot_pixel_fraction, saturation_adu=saturation_adu,
                              rng=rng)
    return digitise(adu, saturation_adu), hot
