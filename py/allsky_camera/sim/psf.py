"""The simulator's point-spread function: a circular Gaussian integrated over the pixels.

Stars (:mod:`allsky_camera.sim.stars`) and planets
(:mod:`allsky_camera.sim.sim_extras`) are rendered with it; streaks
(:mod:`allsky_camera.sim.streaks`) share its width convention.

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`:
0-based, ``x`` is the column (fast axis, ``image[y, x]``), pixel centres at
integers, so pixel ``(i, j)`` covers ``i - 0.5 <= x < i + 0.5``.  Widths in
pixels, zenith distances in degrees, fluxes in ADU.
"""

from __future__ import annotations

import math

import numpy as np

from allsky_camera.sim.geometry import HORIZON_ZD_DEG

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2) (exact for a Gaussian profile).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Stamps reach ``ceil(STAMP_SIGMAS * sigma) + 1`` pixels from the star's
#: nearest pixel; beyond that a Gaussian holds < 1e-4 of its flux per axis
#: (the project's specification of the simulator).
STAMP_SIGMAS = 4.0
#: Variance (pixel^2) by which an aperture sum on the rendered image sees a
#: Gaussian star widened: the pixel integration of the PSF (a one-pixel box,
#: variance 1/12) and the aperture's exact-overlap weights, which treat each
#: pixel's light as spread uniformly over the pixel (another 1/12).  Derived
#: from the rendering, checked against numeric sums of rendered stamps in
#: tests/test_simulate.py (0.002 mag on average, 0.007 at worst, for the MDM
#: PSF in a 2-pixel aperture; the unwidened formula is 0.05 mag off).
PIXEL_VARIANCE_PX2 = 2.0 / 12.0


def fwhm_at(zd_deg, fwhm_zenith_px, fwhm_horizon_px):
    """PSF FWHM in pixels at zenith distance ``zd_deg`` (deg).

    ``fwhm_zenith + (fwhm_horizon - fwhm_zenith) * (zd / 90)^2``.

    Parameters
    ----------
    zd_deg : array_like
        Zenith distance, deg.
    fwhm_zenith_px, fwhm_horizon_px : float
        FWHM at the zenith and at the horizon, pixels.

    Returns
    -------
    ndarray
        FWHM, pixels.
    """
    q = np.asarray(zd_deg, dtype=float) / HORIZON_ZD_DEG
    return fwhm_zenith_px + (fwhm_horizon_px - fwhm_zenith_px) * q * q


def enclosed_fraction(radius_px, sigma_px, *, pixelated=True):
    """Fraction of a circular Gaussian star's flux inside a circular aperture.

    ``1 - exp(-R^2 / (2 s^2))`` with the aperture centred on the star.
    With ``pixelated`` (the default, used for the truth and the zeropoint)
    ``s^2 = sigma^2 + PIXEL_VARIANCE_PX2``: the fraction that exact-overlap
    aperture photometry measures on the rendered, pixel-integrated image;
    without, ``s = sigma``: the continuous Gaussian's.

    Parameters
    ----------
    radius_px : float
        Aperture radius, pixels.
    sigma_px : array_like
        Gaussian sigma of the PSF, pixels.
    pixelated : bool
        See above.
    """
    var = np.asarray(sigma_px, dtype=float) ** 2
    if pixelated:
        var = var + PIXEL_VARIANCE_PX2
    return 1.0 - np.exp(-(radius_px ** 2) / (2.0 * var))


def stamp_half_width(sigma_px):
    """Half-width in pixels of the square stamp a star of Gaussian ``sigma_px`` is rendered in.

    ``ceil(STAMP_SIGMAS * sigma) + 1``: the stamp spans ``2 h + 1`` pixels
    centred on the star's nearest pixel.

    Parameters
    ----------
    sigma_px : array_like
        Gaussian sigma, pixels.

    Returns
    -------
    ndarray of int
    """
    return np.ceil(STAMP_SIGMAS * np.asarray(sigma_px, dtype=float)).astype(int) + 1


def pixel_fractions(centre, sigma, first, npix):
    """Fraction of 1-D Gaussians' flux in pixels ``first, first + 1, ...``.

    Parameters
    ----------
    centre, sigma : ndarray, shape (n,)
        Centre (pixel coordinate, centres at integers) and sigma (pixels).
    first : ndarray of int, shape (n,)
        First pixel of each row of the result.
    npix : int
        Pixels per row.

    Returns
    -------
    ndarray, shape (n, npix)
        Exact integrals over ``[p - 0.5, p + 0.5)`` from differences of
        ``erf`` at the pixel edges.
    """
    from scipy.special import erf

    edges = first[:, None] + np.arange(npix + 1) - 0.5
    cdf = erf((edges - centre[:, None]) / (math.sqrt(2.0) * sigma[:, None]))
    return 0.5 * np.diff(cdf, axis=1)


def render_stars(shape, x, y, flux, sigma):
    """Noiseless image of circular Gaussian stars, integrated exactly over the pixels.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    x, y : array_like, shape (n,)
        Star positions, pixels (0-based, pixel centres at integers).
    flux : array_like, shape (n,)
        Total flux of each star, ADU (a cloud transmission would multiply
        it before this call).
    sigma : array_like, shape (n,)
        Gaussian sigma of each star, pixels.

    Returns
    -------
    image : ndarray of float64, shape ``shape``
        Sum of the stars, ADU per pixel.  Each star fills a square stamp of
        half-width :func:`stamp_half_width` around its nearest pixel; stamp
        pixels off the image are dropped.  Vectorised over the stars of each
        stamp size and accumulated with ``np.bincount``.
    peak : ndarray, shape (n,)
        Brightest pixel of each star's own stamp, ADU.
    """
    ny, nx = shape
    x, y, flux, sigma = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, y, flux, sigma))
    image = np.zeros(ny * nx)
    peak = np.zeros(x.size)
    if x.size == 0:
        return image.reshape(shape), peak
    ix = np.rint(x).astype(int)
    iy = np.rint(y).astype(int)
    half = stamp_half_width(sigma)
    for h in np.unique(half):            # a handful of stamp sizes
        sel = np.flatnonzero(half == h)
        offs = np.arange(-h, h + 1)
        px = pixel_fractions(x[sel], sigma[sel], ix[sel] - h, offs.size)    # (n, m)
        py = pixel_fractions(y[sel], sigma[sel], iy[sel] - h, offs.size)    # (n, m)
        stamps = flux[sel, None, None] * py[:, :, None] * px[:, None, :]    # (n, m, m)
        peak[sel] = stamps.max(axis=(1, 2))
        cols = ix[sel, None, None] + offs[None, None, :]
        rows = iy[sel, None, None] + offs[None, :, None]
        inside = (cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny)
        image += np.bincount((rows * nx + cols)[inside], weights=stamps[inside],
                             minlength=ny * nx)
    return image.reshape(shape), peak
