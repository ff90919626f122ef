"""Exact circular apertures and sky annuli, vectorised over many stars.

The photometric equivalent of photutils' ``aperture_photometry(method='exact')``
using numpy alone (the pipeline does not pay photutils' import time); the
tests compare the two.

Pixel convention: 0-based, ``image[y, x]`` with x the column (fast) axis;
pixel ``(i, j)`` (column i, row j) has its centre at (i, j) and covers
``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]``.

Exact overlap of a disc and a rectangle
---------------------------------------
Put the disc of radius R at the origin and let ``s(t) = sqrt(R^2 - t^2)``
be the half-height of the disc at abscissa t, with antiderivative
``H(t) = (t s(t) + R^2 asin(t / R)) / 2``.  ``F(a, b)``, the area of the
part of the disc with ``x < a`` and ``y < b``, integrates over x the length
of the vertical chord ``[-s(x), s(x)]`` that lies below b:

* ``b >= R``: the whole chord, ``F = 2 (H(a) - H(-R))``;
* ``b <= -R``: nothing, ``F = 0``;
* otherwise the line ``y = b`` meets the circle at ``x = +-c``,
  ``c = sqrt(R^2 - b^2)``.  For ``|x| < c`` the chord is cut at b, length
  ``s(x) + b``; for ``|x| > c`` it is entirely below b (length ``2 s(x)``)
  when ``b > 0`` and entirely above it (length 0) when ``b < 0``.

(a is first clipped to [-R, R].)  The area inside ``[x0, x1] x [y0, y1]`` is
then ``F(x1, y1) - F(x0, y1) - F(x1, y0) + F(x0, y0)``.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

log = logging.getLogger(__name__)

#: Stamps of at least this many pixels are cut through a sliding-window view
#: (row copies), smaller ones pixel by pixel, whichever was faster in
#: benchmarks/bench_pipeline.py; the values are the same either way.
_SLIDING_MIN_PIXELS = 64
#: Margin (pixels) by which an annulus offset must clear both radii, for
#: any centre within half a pixel, to skip the distance test: far above the
#: rounding of a squared distance, far below any real geometry.
_SURE_MARGIN_PX = 1e-6
#: Standard deviation of a normal distribution over its median absolute
#: deviation, 1 / Phi^-1(3/4).
_MAD_TO_SIGMA = 1.482602218505602


def _h(t, r):
    """Antiderivative of sqrt(r^2 - t^2), for t clipped to [-r, r]."""
    t = np.clip(t, -r, r)
    return 0.5 * (t * np.sqrt(np.maximum(r * r - t * t, 0.0)) + r * r * np.arcsin(t / r))


def _lower_left_area(a, b, r):
    """Area of the disc of radius r at the origin with x < a and y < b.

    Every antiderivative needed is ``_h`` at a, -c or c (c depends on b only),
    so with a varying along one axis and b along another (a grid of pixel
    corners) the arcsines are taken on the axes, not on the whole grid.
    """
    a = np.clip(a, -r, r)
    c = np.sqrt(np.maximum(r * r - b * b, 0.0))
    ha, hc, hmc, hr = _h(a, r), _h(c, r), _h(-c, r), _h(-r, r)
    # H is increasing, so H(clip(a, -c, c)) = clip(H(a), H(-c), H(c)) and
    # H(min(a, -c)) = min(H(a), H(-c)): no branch needs a mask of its own.
    # |x| < c, chord cut at y = b: integral of (s(x) + b) over [-c, u], u = clip(a, -c, c)
    cut = b * (np.minimum(np.maximum(a, -c), c) + c)
    cut += np.minimum(np.maximum(ha, hmc), hc) - hmc
    # |x| > c with b > 0: whole chords on [-r, min(a, -c)] and [c, max(a, c)]
    whole = np.minimum(ha, hmc) - hr
    whole += np.maximum(ha - hc, 0.0)
    whole *= 2.0
    cut += np.where(b > 0, whole, 0.0)
    full = 2.0 * (ha - hr)
    return np.where(b >= r, full, np.where(b <= -r, 0.0, cut))


def circle_pixel_overlap(dx0, dx1, dy0, dy1, r):
    """Exact area of a disc inside an axis-aligned rectangle.

    Parameters
    ----------
    dx0, dx1, dy0, dy1 : array_like
        Rectangle ``[dx0, dx1] x [dy0, dy1]`` relative to the disc's centre,
        pixels (``dx0 <= dx1``, ``dy0 <= dy1``); broadcastable.
    r : array_like
        Disc radius, pixels, > 0; broadcastable with the rectangle.

    Returns
    -------
    ndarray of float
        Overlap area, pixels^2, of the broadcast shape.

    Raises
    ------
    ValueError
        If a radius is not positive or a rectangle has ``dx1 < dx0`` or
        ``dy1 < dy0``.
    """
    dx0, dx1, dy0, dy1, r = (np.asarray(v, dtype=float) for v in (dx0, dx1, dy0, dy1, r))
    if not np.all(r > 0):
        raise ValueError("r: radii must be positive")
    if np.any(dx1 < dx0) or np.any(dy1 < dy0):
        raise ValueError("dx0, dx1, dy0, dy1: need dx0 <= dx1 and dy0 <= dy1")
    area = (_lower_left_area(dx1, dy1, r) - _lower_left_area(dx0, dy1, r)
            - _lower_left_area(dx1, dy0, r) + _lower_left_area(dx0, dy0, r))
    return np.maximum(area, 0.0)


def _centres(image, x, y, mask):
    """Validate the common arguments; return the image, flat x, y, the mask
    and the shape to give the results."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image: need a 2-D array, got shape {image.shape}")
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x, y: aperture centres must be finite")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape:
            raise ValueError(f"mask: shape {mask.shape} differs from the image's {image.shape}")
    return image, x.ravel(), y.ravel(), mask, x.shape


def _gather(image, xi, yi, oy, ox, edge):
    """``image[yi + oy, xi + ox]`` for the stars not flagged ``edge`` (whose
    stamps lie inside the image), shape (M,) + S.

    The bounding box of the offsets is copied row by row from a sliding-window
    view of the image, then the offsets are picked from the box: far faster
    than gathering pixel by pixel.
    """
    oy, ox = np.broadcast_arrays(oy, ox)
    y0, x0 = int(oy.min()), int(ox.min())
    hy, hx = int(oy.max()) - y0 + 1, int(ox.max()) - x0 + 1
    inner = ~edge
    win = sliding_window_view(image, (hy, hx))
    box = win[yi[inner] + y0, xi[inner] + x0]
    idx = ((oy - y0) * hx + (ox - x0)).ravel()
    if idx.size == hy * hx and np.array_equal(idx, np.arange(idx.size)):
        return box.reshape((-1, *oy.shape))         # the offsets are the whole box
    return np.take(box.reshape(-1, hy * hx), idx, axis=1).reshape((-1, *oy.shape))


def _cut(image, mask, xi, yi, oy, ox):
    """Pixel values at (yi + oy, xi + ox) and whether each is usable (on the
    image, finite, not masked).

    ``xi, yi`` have shape (N,); ``oy, ox`` are integer offsets that broadcast
    together to the shape S of a stamp; the results have shape (N,) + S.
    Values are float32 for float32 and 8/16-bit integer images, float64
    otherwise.
    """
    ny, nx = image.shape
    oy, ox = np.broadcast_arrays(np.asarray(oy), np.asarray(ox))
    lead = (-1,) + (1,) * oy.ndim
    dtype = np.result_type(image.dtype, np.float32)
    vals = np.empty((xi.size, *oy.shape), dtype=dtype)
    masked = None if mask is None else np.empty(vals.shape, dtype=bool)
    on = None
    # stamps that cross the image's edge: clip their indices, flag the pixels
    edge = ((yi + np.min(oy) < 0) | (yi + np.max(oy) >= ny)
            | (xi + np.min(ox) < 0) | (xi + np.max(ox) >= nx))
    inner = ~edge
    if inner.any() and oy.size >= _SLIDING_MIN_PIXELS:
        vals[inner] = _gather(image, xi, yi, oy, ox, edge)
        if mask is not None:
            masked[inner] = _gather(mask, xi, yi, oy, ox, edge)
    elif inner.any():
        flat = (yi[inner] * nx + xi[inner]).reshape(lead) + (oy * nx + ox)
        vals[inner] = np.take(image.ravel(), flat)
        if mask is not None:
            masked[inner] = np.take(mask.ravel(), flat)
    if edge.any():
        yy = yi[edge].reshape(lead) + oy
        xx = xi[edge].reshape(lead) + ox
        on = np.ones(vals.shape, dtype=bool)
        on[edge] = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        yy, xx = np.clip(yy, 0, ny - 1), np.clip(xx, 0, nx - 1)
        vals[edge] = image[yy, xx]
        if mask is not None:
            masked[edge] = mask[yy, xx]
    ok = np.isfinite(vals)
    if on is not None:
        ok &= on
    if mask is not None:
        ok &= ~masked
    return vals, ok


def aperture_sums(image, x, y, r, *, mask=None):
    """Sums over exact circular apertures.

    Each pixel counts with the exact area of its intersection with the disc
    of radius ``r`` centred at (x, y), as photutils' ``method='exact'``.

    Parameters
    ----------
    image : array_like
        2-D image, ``image[y, x]``, in any units (e.g. ADU).
    x, y : array_like
        Aperture centres, pixels (0-based, pixel centres at integers; x the
        column); broadcastable, finite.
    r : float
        Aperture radius, pixels, > 0.
    mask : array_like of bool, optional
        Same shape as ``image``; True for pixels to leave out.

    Returns
    -------
    sums : ndarray of float64
        Overlap-weighted sum of the usable pixels, image units.
    area : ndarray of float64
        Aperture area covered by usable pixels, pixels^2 (``pi r^2`` when
        nothing is lost).
    n_bad : ndarray of int
        Pixels overlapping the aperture that are masked, non-finite or off
        the image.

    All three have the broadcast shape of ``x`` and ``y``.
    """
    image, x, y, mask, shape = _centres(image, x, y, mask)
    r = float(r)
    if not r > 0:
        raise ValueError(f"r = {r}: must be positive")
    half = int(np.ceil(r))          # a pixel overlapping the disc is within r + 1 of rint(x)
    xi, yi = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    off = np.arange(-half, half + 1)
    vals, ok = _cut(image, mask, xi, yi, off[:, None], off[None, :])
    # pixel edges relative to the centres; F on the shared corner grid, then
    # inclusion-exclusion per pixel
    edges = np.arange(-half - 0.5, half + 1.0)
    # computed with the stars along the last (contiguous) axis, (corner y,
    # corner x, star): numpy's loops then run over thousands of stars rather
    # than a dozen corners, 1.6 times faster for the same values
    ex = (xi - x)[None, :] + edges[:, None]
    ey = (yi - y)[None, :] + edges[:, None]
    f = _lower_left_area(ex[None, :, :], ey[:, None, :], r)
    w = np.maximum(f[1:, 1:] - f[1:, :-1] - f[:-1, 1:] + f[:-1, :-1], 0.0)
    w = np.ascontiguousarray(w.transpose(2, 0, 1))          # (star, row, column)
    # pixels overlapping the disc: nearest point of the pixel closer than r
    gx = np.maximum(np.abs((xi - x)[:, None] + off) - 0.5, 0.0)
    gy = np.maximum(np.abs((yi - y)[:, None] + off) - 0.5, 0.0)
    touched = gy[:, :, None] ** 2 + gx[:, None, :] ** 2 < r * r
    w = np.where(ok, w, 0.0)
    sums = (w * np.where(ok, vals, 0.0)).sum(axis=(1, 2))
    area = w.sum(axis=(1, 2))
    n_bad = (touched & ~ok).sum(axis=(1, 2))
    return sums.reshape(shape), area.reshape(shape), n_bad.reshape(shape)


def _sorted_median(s, n):
    """Median of the first ``n[i]`` values of each sorted row ``s[i]`` (float64)."""
    rows = np.arange(s.shape[0])
    return 0.5 * (s[rows, (n - 1) // 2].astype(np.float64)
                  + s[rows, n // 2].astype(np.float64))


def _first_true(n, test):
    """For each row i, the first index j in ``[0, n[i])`` where ``test(j)``
    holds, ``n[i]`` if none; ``test`` maps an index per row (shape (N,)) to a
    bool per row and must be monotone (False, then True) along each row.
    A binary search: about log2(max n) calls of ``test``."""
    lo = np.zeros(n.shape, dtype=np.intp)
    hi = np.asarray(n, dtype=np.intp).copy()
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        t = test(np.where(active, mid, 0))
        lo = np.where(active & ~t, mid + 1, lo)
        hi = np.where(active & t, mid, hi)


def _sorted_deviation_median(s, n, m):
    """Median of ``|s[i, :n[i]] - m[i]|`` (float32 arithmetic for float32 ``s``)
    for sorted rows ``s``, without sorting the deviations.

    Left of ``m`` the deviations grow leftwards, right of it rightwards: the
    sorted deviations merge two sorted runs, and their k-th value is found by
    a binary search over how many come from the left run.
    """
    rows = np.arange(s.shape[0])
    mt = m.astype(s.dtype)
    p = _first_true(n, lambda j: s[rows, j] >= mt)     # left run: s[p-1], s[p-2], ...
    # the two middle ranks (n-1)//2 and n//2 are searched together: every
    # array below holds the rows twice, once per rank
    r2, p2, m2 = np.tile(rows, 2), np.tile(p, 2), np.tile(mt, 2)
    nb = np.tile(n, 2) - p2
    k = np.concatenate([(n - 1) // 2, n // 2])

    def left(i):          # i-th smallest deviation left of m (i < p)
        return m2 - s[r2, np.clip(p2 - 1 - i, 0, None)]

    def right(j):         # j-th smallest deviation right of m (j < nb)
        return s[r2, np.clip(p2 + j, None, s.shape[1] - 1)] - m2

    lo = np.maximum(0, k + 1 - nb)                      # how many come from the left run
    hi = np.minimum(k + 1, p2)
    # first i in [lo, hi) where left(i) >= right(k - i), else hi
    i = lo + _first_true(hi - lo, lambda d: left(lo + d) >= right(k - lo - d))
    j = k + 1 - i
    a = np.where(i > 0, left(i - 1), -np.inf)
    b = np.where(j > 0, right(j - 1), -np.inf)
    half = 0.5 * np.maximum(a, b).astype(np.float64)
    out = np.zeros(s.shape[0])
    out += half[:s.shape[0]]
    out += half[s.shape[0]:]
    return out


def annulus_median(image, x, y, r_in, r_out, *, mask=None, quantum=0.0):
    """Median, robust sigma and count of the pixels in sky annuli.

    A pixel belongs to the annulus of centre (x, y) when the distance d of
    its centre satisfies ``r_in <= d < r_out``.  Masked, non-finite and
    off-image pixels are left out.

    With ``quantum > 0`` (data quantised in steps of ``quantum``, e.g. 1 ADU
    for raw integer frames) the median is interpolated within its step, as
    for grouped data: ``m - q/2 + q (n/2 - n_below) / n_at``, with
    ``n_below`` the pixels below ``m - q/2`` and ``n_at`` those within
    ``q/2`` of m.  The plain median of quantised values snaps to a step and
    is biased by up to half a step, several per cent of a faint sky.

    Parameters
    ----------
    image : array_like
        2-D image, ``image[y, x]``, in any units (e.g. ADU).
    x, y : array_like
        Annulus centres, pixels (0-based, pixel centres at integers; x the
        column); broadcastable, finite.
    r_in, r_out : float
        Inner and outer radius, pixels, ``0 <= r_in < r_out``.
    mask : array_like of bool, optional
        Same shape as ``image``; True for pixels to leave out.
    quantum : float
        Quantisation step of the data, image units; 0 for none.

    Returns
    -------
    median : ndarray of float64
        Image units; NaN where the annulus holds no usable pixel.
    sigma : ndarray of float64
        Robust standard deviation, 1.4826 x the median absolute deviation
        from ``median``, image units; NaN where no pixel.
    n : ndarray of int
        Pixels used.

    All three have the broadcast shape of ``x`` and ``y``.
    """
    image, x, y, mask, shape = _centres(image, x, y, mask)
    r_in, r_out, quantum = float(r_in), float(r_out), float(quantum)
    if not 0 <= r_in < r_out:
        raise ValueError(f"r_in = {r_in}, r_out = {r_out}: need 0 <= r_in < r_out")
    if not quantum >= 0:
        raise ValueError(f"quantum = {quantum}: must be >= 0")
    # offsets from rint(centre) that can be in the annulus for some centre
    # within half a pixel of it (the centre moves the distance by <= sqrt(1/2))
    half = int(np.ceil(r_out)) + 1
    oy, ox = np.mgrid[-half:half + 1, -half:half + 1]
    rho = np.hypot(ox, oy)
    keep = (rho + np.sqrt(0.5) >= r_in) & (rho - np.sqrt(0.5) < r_out)
    # offsets inside the annulus for every such centre need no distance test:
    # they come first (the order of a row's pixels does not matter), the
    # ones to test after them
    sure = ((rho - np.sqrt(0.5) > r_in + _SURE_MARGIN_PX)
            & (rho + np.sqrt(0.5) < r_out - _SURE_MARGIN_PX))
    n_sure = int((keep & sure).sum())
    oy = np.concatenate([oy[keep & sure], oy[keep & ~sure]])
    ox = np.concatenate([ox[keep & sure], ox[keep & ~sure]])
    xi, yi = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
    vals, ok = _cut(image, mask, xi, yi, oy, ox)
    # squared distances (dx^2 + dy^2, as written) of the offsets to test, the
    # squares taken once per star and integer offset
    lag = np.arange(-half, half + 1)
    sx = (xi - x)[:, None] + lag
    sx *= sx
    sy = (yi - y)[:, None] + lag
    sy *= sy
    d2 = np.take(sx, ox[n_sure:] + half, axis=1)
    d2 += np.take(sy, oy[n_sure:] + half, axis=1)
    ok[:, n_sure:] &= (d2 >= r_in * r_in) & (d2 < r_out * r_out)
    n = np.count_nonzero(ok, axis=1)
    med = np.full(x.size, np.nan)
    sig = np.full(x.size, np.nan)
    has = np.flatnonzero(n > 0)
    if has.size:
        v = vals
        np.copyto(v, np.nan, where=~ok)                 # our own array: in place
        if has.size < x.size:
            v = v[has]
        v.sort(axis=1)                                  # NaN sorts last
        nh = n[has]
        rows = np.arange(has.size)
        m = _sorted_median(v, nh)
        if quantum > 0:
            # the values below m - q/2, and those within q/2 of m, are runs of
            # the sorted rows: binary searches count them
            h = 0.5 * quantum
            below = _first_true(nh, lambda j: ~(v[rows, j] < m - h))
            i0 = _first_true(nh, lambda j: (v[rows, j] >= m) | (np.abs(v[rows, j] - m) < h))
            i1 = _first_true(nh, lambda j: (v[rows, j] > m) & ~(np.abs(v[rows, j] - m) < h))
            at = np.maximum(i1 - i0, 0)
            m = np.where(at > 0, m - 0.5 * quantum
                         + quantum * (0.5 * nh - below) / np.maximum(at, 1), m)
        med[has] = m
        sig[has] = _MAD_TO_SIGMA * _sorted_deviation_median(v, nh, m)
    return med.reshape(shape), sig.reshape(shape), n.reshape(shape)
