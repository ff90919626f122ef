"""Which photometric-model stars sit under a cloud, judged by their neighbours.

A cloud only ever dims a star.  One clouded star is hard to tell from a
noisy one, but the stars around it read faint too: the median of the model
residuals of the stars within a radius (the star included) is a cloud map
sampled at the star, and a map that reads significantly faint marks a cloud
the clipping of a single star cannot see (thin cloud of 0.1-0.3 mag, the
edges of thick cloud).  Such stars are left out of the extinction fit
(:func:`allsky_camera.stages.photmodel.fit_exposure`): a cloud over part of
the sky would otherwise tilt the fitted extinction, because it dims stars of
some airmasses more than others.

The test is one-sided (only faint neighbourhoods are clouds) and relative to
the fit, so a uniform haze (every residual shifted alike) marks nothing.

Angles are in degrees, azimuth from north through east; residuals in mag,
positive = fainter than the model.
"""

from __future__ import annotations

import numpy as np

#: Standard error of the median of n normal deviates of unit sigma, times
#: sqrt(n), for large n: sqrt(pi / 2) (Kendall & Stuart, The Advanced Theory
#: of Statistics, vol. 1, eq. 10.29).
MEDIAN_ERR_FACTOR = float(np.sqrt(np.pi / 2.0))
#: MAD to standard deviation for a normal distribution.
MAD_TO_SIGMA = 1.4826


def unit_vectors(zd_deg, az_deg):
    """Unit vectors (east, north, up) of sky positions, shape ``(n, 3)``.

    Parameters
    ----------
    zd_deg, az_deg : ndarray
        Zenith distance and azimuth (from north through east), deg.
    """
    zd = np.radians(np.asarray(zd_deg, dtype=float))
    az = np.radians(np.asarray(az_deg, dtype=float))
    s = np.sin(zd)
    return np.stack([s * np.sin(az), s * np.cos(az), np.cos(zd)], axis=-1)


def neighbours(zd_deg, az_deg, radius_deg):
    """Which stars lie within ``radius_deg`` of each other, shape ``(n, n)``.

    Parameters
    ----------
    zd_deg, az_deg : ndarray, shape (n,)
        Positions, deg (azimuth from north through east).
    radius_deg : float
        Neighbourhood radius (great-circle distance), deg; a star is its own
        neighbour.

    Returns
    -------
    ndarray of bool
        Symmetric, True on the diagonal.
    """
    u = unit_vectors(zd_deg, az_deg)
    return (u @ u.T) >= np.cos(np.radians(radius_deg))


def local_median(values, near):
    """Median of ``values`` over each star's neighbours.

    Parameters
    ----------
    values : ndarray, shape (n,)
        One finite value per star.
    near : ndarray of bool, shape (n, n)
        ``near[i, j]``: star j is a neighbour of star i (:func:`neighbours`).

    Returns
    -------
    median : ndarray, shape (n,)
        The median of each neighbourhood (the mean of the two middle values
        when the count is even; NaN for an empty one).
    count : ndarray of int, shape (n,)
        Stars in each neighbourhood.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.zeros(0), np.zeros(0, dtype=int)
    # columns in order of value: the k-th neighbour of a row is where the
    # running count of its neighbours reaches k
    order = np.argsort(v, kind="stable")
    running = np.cumsum(near[:, order], axis=1, dtype=np.int32)
    count = running[:, -1]
    lo = np.argmax(running >= np.maximum((count + 1) // 2, 1)[:, None], axis=1)
    hi = np.argmax(running >= (count // 2 + 1)[:, None], axis=1)
    vs = v[order]
    return np.where(count > 0, 0.5 * (vs[lo] + vs[hi]), np.nan), count


def clouded(resid_mag, near, *, n_sigma, min_mag, min_stars):
    """Stars whose neighbourhood reads significantly fainter than the model.

    Parameters
    ----------
    resid_mag : ndarray
        Residual ``m_inst - model`` of each candidate star, mag (positive:
        fainter); finite.
    near : ndarray of bool, shape (n, n)
        The stars' neighbourhoods (:func:`neighbours`).
    n_sigma : float
        A neighbourhood is clouded when its median residual exceeds this
        many standard errors of a median of that many stars (their scatter
        about their own neighbourhoods) ...
    min_mag : float
        ... and this much, mag (a dimming too small to move the fit).
    min_stars : int
        Neighbourhoods of fewer stars (the star included) are not judged.

    Returns
    -------
    ndarray of bool
        True for the stars to leave out.
    """
    r = np.asarray(resid_mag, dtype=float)
    if r.size == 0:
        return np.zeros(0, dtype=bool)
    med, count = local_median(r, near)
    # a star's scatter about its neighbourhood: the noise, without the
    # clouds' structure (which widens the scatter about the model)
    d = (r - med)[count > 0]
    if d.size == 0:
        return np.zeros(r.shape, dtype=bool)
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(d - np.median(d))))
    err = MEDIAN_ERR_FACTOR * sigma / np.sqrt(np.maximum(count, 1))
    with np.errstate(invalid="ignore"):
        return (count >= min_stars) & (med > np.maximum(n_sigma * err, min_mag))
