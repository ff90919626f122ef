"""Exact circular apertures and sky annuli, vectorised over many stars.

The photometric equivalent of photutils' ``aperture_photometry(method='exact')``
using numpy alone (so the pipeline does not pay photutils' import time); the
tests compare the two.  A pixel ``(i, j)`` covers ``[i - 0.5, i + 0.5] x
[j - 0.5, j + 0.5]`` (0-based, x = column, pixel centres at integers).

The exact area of a circle of radius R (centred on the origin) inside the
rectangle ``[x0, x1] x [y0, y1]`` comes from the area ``F(a, b)`` of the part
of the circle with ``x < a`` and ``y < b``, by inclusion-exclusion over the
four corners.  ``F`` integrates the chord length along x with the
antiderivative ``H(t) = (t sqrt(R^2 - t^2) + R^2 asin(t / R)) / 2`` of the
half-chord ``sqrt(R^2 - t^2)``, split where the line ``y = b`` cuts the circle.
"""

from __future__ import annotations

import numpy as np


def _h(t, r):
    """Antiderivative of sqrt(r^2 - t^2) for -r <= t <= r."""
    t = np.clip(t, -r, r)
    return 0.5 * (t * np.sqrt(np.maximum(r * r - t * t, 0.0)) + r * r * np.arcsin(t / r))


def _corner_area(a, b, r):
    """Area of the disc of radius r with x < a and y < b."""
    a = np.clip(a, -r, r)
    xb = np.sqrt(np.maximum(r * r - b * b, 0.0))      # where y = b meets the circle
    # chord from -h(x) to min(b, h(x)) where positive
    # |x| <= xb: length b + h(x) (line inside the circle); |x| > xb: 2 h(x) if b > 0, else 0
    lo_mid = -xb
    hi_mid = np.clip(a, -xb, xb)
    mid = np.where(hi_mid > lo_mid, b * (hi_mid - lo_mid) + _h(hi_mid, r) - _h(lo_mid, r), 0.0)
    left = 2.0 * (_h(np.minimum(a, -xb), r) - _h(-r, r))             # x in [-r, min(a, -xb)]
    right = 2.0 * np.maximum(_h(np.maximum(a, xb), r) - _h(xb, r), 0.0)   # x in [xb, a]
    outer = np.where(b > 0, left + right, 0.0)
    return np.where(b >= r, 2.0 * (_h(a, r) - _h(-r, r)), np.where(b <= -r, 0.0, mid + outer))


def circle_pixel_overlap(dx0, dx1, dy0, dy1, r):
    """Exact area of the disc of radius ``r`` centred on the origin inside the
    rectangle ``[dx0, dx1] x [dy0, dy1]`` (broadcastable arrays)."""
    return (_corner_area(dx1, dy1, r) - _corner_area(dx0, dy1, r)
            - _corner_area(dx1, dy0, r) + _corner_area(dx0, dy0, r))


def _stamps(image, x, y, half, mask):
    ny, nx = image.shape
    xi = np.rint(x).astype(np.int64)
    yi = np.rint(y).astype(np.int64)
    off = np.arange(-half, half + 1)
    xx = xi[:, None, None] + off[None, None, :]
    yy = yi[:, None, None] + off[None, :, None]
    inside = (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
    xc, yc = np.clip(xx, 0, nx - 1), np.clip(yy, 0, ny - 1)
    vals = image[yc, xc].astype(np.float64)
    valid = inside & np.isfinite(vals)
    if mask is not None:
        valid &= ~mask[yc, xc]
    # pixel offsets from the true centre
    dx = xx - np.asarray(x, dtype=float)[:, None, None]
    dy = yy - np.asarray(y, dtype=float)[:, None, None]
    return vals, valid, dx, dy


def aperture_sums(image, x, y, r, *, mask=None):
    """Sums over exact circular apertures.

    Parameters
    ----------
    image : ndarray
        2-D image, ``image[y, x]``.
    x, y : ndarray
        Aperture centres, pixels (finite).
    r : float
        Radius, pixels.
    mask : ndarray of bool, optional
        True for pixels to leave out.

    Returns
    -------
    sums : ndarray
        Overlap-weighted sum of the valid pixels.
    area : ndarray
        Aperture area covered by valid pixels (pixels^2).
    n_bad : ndarray of int
        Masked, non-finite or off-image pixels the aperture touches.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    half = int(np.ceil(r + 0.5))
    vals, valid, dx, dy = _stamps(image, x, y, half, mask)
    # corner areas on the (2h+2)^2 grid of pixel corners, shared by neighbouring
    # pixels, then inclusion-exclusion per pixel
    edges = np.arange(2 * half + 2) - 0.5
    cx = dx[:, 0, 0][:, None] + edges[None, :]
    cy = dy[:, 0, 0][:, None] + edges[None, :]
    f = _corner_area(cx[:, None, :], cy[:, :, None], r)
    w = f[:, 1:, 1:] - f[:, 1:, :-1] - f[:, :-1, 1:] + f[:, :-1, :-1]
    touched = w > 0
    sums = np.where(valid, vals * w, 0.0).sum(axis=(1, 2))
    area = np.where(valid, w, 0.0).sum(axis=(1, 2))
    n_bad = (touched & ~valid).sum(axis=(1, 2))
    return sums, area, n_bad


def _row_median(v, n):
    """Median of each row's first ``n`` finite values (NaNs sort last)."""
    s = np.sort(v, axis=1)
    rows = np.arange(v.shape[0])
    return 0.5 * (s[rows, (n - 1) // 2] + s[rows, n // 2])


def annulus_median(image, x, y, r_in, r_out, *, mask=None, quantum=0.0):
    """Median of the pixels whose centres lie at ``r_in <= d < r_out``.

    With ``quantum > 0`` (data quantised in steps of ``quantum``, e.g. 1 ADU
    for integer raw data) the median is interpolated within its step, as for
    grouped data: ``m - q/2 + q (n/2 - n_below) / n_at``.  The plain median of
    quantised values snaps to a step and is biased by up to half a step,
    which on a faint sky of 8-bit data is several per cent of the sky.

    Returns
    -------
    median : ndarray
        NaN where the annulus holds no valid pixel.
    sigma : ndarray
        Robust standard deviation, 1.4826 x the median absolute deviation.
    n : ndarray of int
        Pixels used.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    ny, nx = image.shape
    # integer offsets that can fall in the annulus for any sub-pixel centre
    half = int(np.ceil(r_out)) + 1
    oy, ox = np.mgrid[-half:half + 1, -half:half + 1]
    rr = np.hypot(ox, oy)
    keep = (rr >= r_in - 0.75) & (rr < r_out + 0.75)
    ox, oy = ox[keep], oy[keep]
    xi = np.rint(x).astype(np.int64)
    yi = np.rint(y).astype(np.int64)
    xx = xi[:, None] + ox[None, :]
    yy = yi[:, None] + oy[None, :]
    inside = (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
    flat = np.clip(yy, 0, ny - 1) * nx + np.clip(xx, 0, nx - 1)
    vals = image.ravel()[flat].astype(np.float64)
    valid = inside & np.isfinite(vals)
    if mask is not None:
        valid &= ~mask.ravel()[flat]
    dxf = (xi - x)[:, None] + ox[None, :]
    dyf = (yi - y)[:, None] + oy[None, :]
    d2 = dxf * dxf + dyf * dyf
    sel = valid & (d2 >= r_in * r_in) & (d2 < r_out * r_out)
    v = np.where(sel, vals, np.nan).reshape(x.size, -1)
    n = sel.reshape(x.size, -1).sum(axis=1)
    med = np.full(x.size, np.nan)
    sig = np.full(x.size, np.nan)
    has = n > 0
    if has.any():
        med[has] = _row_median(v[has], n[has])
        if quantum > 0:
            q = quantum
            below = (v[has] < med[has, None] - 0.5 * q).sum(axis=1)
            at = (np.abs(v[has] - med[has, None]) < 0.5 * q).sum(axis=1)
            ok = at > 0
            idx = np.nonzero(has)[0][ok]
            med[idx] = (med[idx] - 0.5 * q + q * (0.5 * n[idx] - below[ok]) / at[ok])
        # 1.4826: MAD to standard deviation for a normal distribution
        sig[has] = 1.4826 * _row_median(np.abs(v[has] - med[has, None]), n[has])
    return med, sig, n
