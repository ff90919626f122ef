"""Centroids: iterative flux-weighted (Gaussian-windowed) centroiding.

All stars are processed at once: boxes of ``(2 h + 1)^2`` pixels are cut
around the current estimates by fancy indexing into an ``(N, 2h+1, 2h+1)``
stack, the local background (median of the box border) is removed, and each
estimate moves to the Gaussian-windowed first moment of its box.  For a
symmetric star this converges on its centre whatever the window width; the
window keeps neighbours and noise far from the centre out of the sum (the
windowed centroid of SExtractor's XWIN_IMAGE).

Pixel convention: 0-based, x = column, pixel centres at integers.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Step factor of the windowed-centroid update: for a Gaussian star of width
#: sigma seen through a Gaussian window of the same width the windowed moment
#: moves half-way to the centre, so doubling the step converges in one go
#: (Bertin, SExtractor manual, "windowed positions").
_STEP = 2.0
#: Updates smaller than this (pixels) count as converged.
_TOL_PX = 1e-3
#: The working set of :func:`refine` is compacted when fewer than this
#: fraction of its stars still iterate (speed only, never the result).
_COMPACT_FRACTION = 0.75


def cut_stamps(image, xc, yc, half, *, dtype=np.float64):
    """Stack of boxes ``image[yc-h:yc+h+1, xc-h:xc+h+1]`` (integer centres).

    Pixels outside the image are NaN.  ``dtype`` (floating) is that of the
    stack.  Returns ``(stamps, dx, dy)`` where
    ``dx, dy`` (shape ``(2h+1,)``) are the offsets of the box columns and rows.
    Boxes wholly inside the image (nearly all) are copied from a sliding-window
    view of the image, row by row; only the boxes that cross the edge gather
    pixel by pixel.
    """
    ny, nx = image.shape
    xc = np.asarray(xc, dtype=np.intp)
    yc = np.asarray(yc, dtype=np.intp)
    off = np.arange(-half, half + 1)
    k = 2 * half + 1
    inner = (xc >= half) & (xc < nx - half) & (yc >= half) & (yc < ny - half)
    edge = np.flatnonzero(~inner)
    if not edge.size and xc.size and ny >= k and nx >= k:
        # all inside (the common case): the gathered boxes are the stack
        stamps = sliding_window_view(image, (k, k))[yc - half, xc - half]
        return (stamps if stamps.dtype == dtype else stamps.astype(dtype)), off, off
    stamps = np.empty((xc.size, k, k), dtype=dtype)
    if ny >= k and nx >= k and edge.size < xc.size:
        win = sliding_window_view(image, (k, k))
        stamps[inner] = win[yc[inner] - half, xc[inner] - half]
    if edge.size:
        yy = yc[edge, None, None] + off[None, :, None]
        xx = xc[edge, None, None] + off[None, None, :]
        inside = (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
        part = image[np.clip(yy, 0, ny - 1), np.clip(xx, 0, nx - 1)].astype(dtype)
        part[~inside] = np.nan
        stamps[edge] = part
    return stamps, off, off


def row_nanmedian(a):
    """``np.nanmedian(a, axis=1)`` of a 2-D array of short rows (no warning
    for an all-NaN row: NaN).

    Each row is sorted (NaN last; numpy's sort of short float rows is several
    times faster than its median's partition) and the median is the mean of
    its middle finite values, as ``np.median`` computes it, in float64.
    Float32 rows are sorted as float32 (faster, and the same order).
    """
    a = np.asarray(a)
    if a.dtype != np.float32:
        a = a.astype(float)
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    s = np.sort(a, axis=1)
    n = a.shape[1] - np.count_nonzero(np.isnan(a), axis=1)
    rows = np.arange(a.shape[0])
    lo = np.maximum((n - 1) // 2, 0)
    med = (s[rows, lo].astype(float) + s[rows, n // 2 - (n == 0)].astype(float)) / 2.0
    return np.where(n > 0, med, np.nan)


def _gauss(d, inv2s2):
    """``exp(-d^2 * inv2s2)`` in one temporary: ``(d d)(-inv2s2)`` is the same
    number (negation is exact), twice as fast as the expression as written."""
    g = d * d
    g *= -inv2s2
    return np.exp(g, out=g)


def _zero_nan(a):
    """``np.nan_to_num(a)`` in place (``a`` is returned): NaN -> 0, infinities
    -> the largest floats.  Most stamps are wholly finite, and one test of
    that costs less than nan_to_num's several passes (a copying nan_to_num
    costs several times more again)."""
    if not np.isfinite(a).all():
        np.nan_to_num(a, copy=False)
    return a


def _border_median(stamps):
    border = np.concatenate([stamps[:, 0, :], stamps[:, -1, :],
                             stamps[:, 1:-1, 0], stamps[:, 1:-1, -1]], axis=1)
    return row_nanmedian(border)


def refine(image, x, y, *, box_half, window_sigma, n_iter):
    """Refine star positions by iterative windowed centroiding.

    Parameters
    ----------
    image : ndarray
        Detrended image, ``image[y, x]``.
    x, y : array_like
        Starting positions (pixels).
    box_half : int
        Half-width of the box, pixels.
    window_sigma : float
        Sigma of the Gaussian window, pixels.
    n_iter : int
        Maximum number of iterations.

    Returns
    -------
    xc, yc : ndarray
        Refined positions; NaN where the box held no positive signal or the
        estimate left the box's reach.
    converged : ndarray of bool
        The last update was below 0.001 pixel.
    """
    x = np.asarray(x, dtype=float).copy()
    y = np.asarray(y, dtype=float).copy()
    ny, nx = image.shape
    ok = np.isfinite(x) & np.isfinite(y) & (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    converged = np.zeros(x.size, dtype=bool)
    inv2s2 = 1.0 / (2.0 * window_sigma ** 2)
    k = 2 * box_half + 1
    off = np.arange(-box_half, box_half + 1)
    # The working set ("slots"): the stars still iterating and some that have
    # stopped.  Each slot keeps its star's background-subtracted box (NaN ->
    # 0) at its integer centre (xi, yi), cut again only when that centre
    # moves.  Every slot is computed (a stopped one's result is dropped), so
    # the boxes are not gathered at every step; the set is compacted when
    # fewer than _COMPACT_FRACTION of its stars still iterate.
    slot = np.flatnonzero(ok)
    cut_dtype = np.float32 if image.dtype == np.float32 else np.float64
    boxes = np.empty((slot.size, k, k))
    xi = np.full(slot.size, np.iinfo(np.intp).min, dtype=np.intp)
    yi = xi.copy()
    for _ in range(n_iter):
        act = ok[slot] & ~converged[slot]
        n_act = int(np.count_nonzero(act))
        if n_act == 0:
            break
        if n_act < _COMPACT_FRACTION * slot.size:
            slot, boxes, xi, yi = slot[act], boxes[act], xi[act], yi[act]
            act = np.ones(slot.size, dtype=bool)
        xs, ys = x[slot], y[slot]
        ia = np.flatnonzero(act)
        nxi = np.rint(xs[ia]).astype(np.intp)
        nyi = np.rint(ys[ia]).astype(np.intp)
        moved = (nxi != xi[ia]) | (nyi != yi[ia])
        if moved.any():
            m = ia[moved]
            xi[m], yi[m] = nxi[moved], nyi[moved]
            # cut in the image's precision (float32 for a detrended frame: half
            # the bytes, and a faster sort for the border median), then in float64
            stamps, _, _ = cut_stamps(image, xi[m], yi[m], box_half, dtype=cut_dtype)
            boxes[m] = _zero_nan(stamps - _border_median(stamps)[:, None, None])
        with np.errstate(invalid="ignore", over="ignore"):    # stopped slots: NaN, inf
            ddx = (xi - xs)[:, None] + off[None, :]           # pixel minus estimate, (n, k)
            ddy = (yi - ys)[:, None] + off[None, :]
            # the Gaussian window is separable: w[i, j] = gy[i] gx[j]
            gx, gy = _gauss(ddx, inv2s2), _gauss(ddy, inv2s2)
            rows = np.einsum("nij,nj->ni", boxes, gx)         # sum over columns
            rows_x = np.einsum("nij,nj->ni", boxes, gx * ddx)
            norm = np.einsum("ni,ni->n", rows, gy)
            with np.errstate(divide="ignore"):
                sx = _STEP * np.einsum("ni,ni->n", rows_x, gy) / norm
                sy = _STEP * np.einsum("ni,ni->n", rows, gy * ddy) / norm
            fine = (norm > 0) & np.isfinite(sx) & np.isfinite(sy)
        good = act & fine
        sx = np.clip(sx[good], -box_half, box_half)
        sy = np.clip(sy[good], -box_half, box_half)
        x[slot[good]] += sx
        y[slot[good]] += sy
        ok[slot[act & ~fine]] = False
        converged[slot[good]] = np.hypot(sx, sy) < _TOL_PX
        ok &= (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    x[~ok] = np.nan
    y[~ok] = np.nan
    return x, y, converged & ok


def peak_search(image, x, y, *, search_half, smooth_half=1):
    """Brightest smoothed pixel within ``search_half`` of each position.

    Used to find stars when the prediction may be several pixels off.  The
    image is box-smoothed over ``(2 smooth_half + 1)^2`` pixels inside each
    stamp, so a single hot pixel does not win over a star.

    Returns
    -------
    xp, yp : ndarray of float
        Pixel of the peak (NaN where the box is off the image).
    """
    xi = np.rint(x).astype(int)
    yi = np.rint(y).astype(int)
    half = search_half + smooth_half
    # in the image's float32 when it is one (summed below in float64: the same sums)
    stamps, _, _ = cut_stamps(image, xi, yi, half,
                              dtype=np.float32 if image.dtype == np.float32 else np.float64)
    if not np.isfinite(stamps).all():
        stamps = np.nan_to_num(stamps, nan=-np.inf)
    k = 2 * smooth_half + 1
    n = 2 * search_half + 1
    sm = np.zeros((xi.size, n, n))
    for dy in range(k):
        for dx in range(k):
            sm += stamps[:, dy:dy + n, dx:dx + n]
    flat = sm.reshape(xi.size, -1).argmax(axis=1)
    py, px = np.unravel_index(flat, (n, n))
    xp = (xi + px - search_half).astype(float)
    yp = (yi + py - search_half).astype(float)
    bad = ~np.isfinite(sm.reshape(xi.size, -1).max(axis=1))
    xp[bad] = np.nan
    yp[bad] = np.nan
    return xp, yp


def nearest_other(xq, yq, xp, yp, radius, *, exclude_self=False):
    """Index of the nearest point ``(xp, yp)`` within ``radius`` of each query.

    A grid of cells ``radius`` wide is hashed and sorted once, and each query
    looks into its 3x3 neighbouring cells, so the cost grows as N log N (a
    KD-tree's job without importing one).

    Returns
    -------
    idx : ndarray of int
        Index into ``xp`` of the nearest point within ``radius``, -1 if none.
    dist : ndarray
        Its distance (pixels), inf if none.

    With ``exclude_self`` the queries are the points themselves (same
    order) and each point's own entry is skipped.
    """
    xq, yq, xp, yp = (np.asarray(v, dtype=float) for v in (xq, yq, xp, yp))
    best = np.full(xq.size, -1)
    dist = np.full(xq.size, np.inf)
    okp = np.isfinite(xp) & np.isfinite(yp)
    if xq.size == 0 or not okp.any():
        return best, dist
    pidx = np.nonzero(okp)[0]
    cx = np.floor(xp[pidx] / radius).astype(np.int64)
    cy = np.floor(yp[pidx] / radius).astype(np.int64)
    span = np.int64(1 << 30)   # cell keys: large enough for any image
    keys = cx * span + cy
    order = np.argsort(keys, kind="stable")
    skeys = keys[order]
    okq = np.isfinite(xq) & np.isfinite(yq)
    qidx = np.arange(xq.size) if exclude_self else np.full(xq.size, -1)
    qx = np.floor(np.where(okq, xq, 0.0) / radius).astype(np.int64)
    qy = np.floor(np.where(okq, yq, 0.0) / radius).astype(np.int64)
    # every (query, point) pair of neighbouring cells, in the order of the
    # cells (ox, then oy) and of the points within a cell: the first pair at
    # the smallest distance wins ties
    qkeys = qx * span + qy
    qorder = np.argsort(qkeys)              # sorted needles: searchsorted is faster
    sq = qkeys[qorder]
    qs, cs = [], []
    for ox in (-1, 0, 1):
        # cells (qx + ox, qy - 1 .. qy + 1) have consecutive keys: one range
        lo, hi = np.empty(xq.size, np.intp), np.empty(xq.size, np.intp)
        lo[qorder] = np.searchsorted(skeys, sq + (ox * span - 1), side="left")
        hi[qorder] = np.searchsorted(skeys, sq + (ox * span + 1), side="right")
        cnt = np.where(okq, hi - lo, 0)
        q = np.repeat(np.arange(xq.size), cnt)
        start = np.repeat(np.cumsum(cnt) - cnt, cnt)
        qs.append(q)
        cs.append(pidx[order[np.repeat(lo, cnt) + np.arange(q.size) - start]])
    q, cand = np.concatenate(qs), np.concatenate(cs)
    d = np.hypot(xp[cand] - xq[q], yp[cand] - yq[q])
    keep = (d <= radius) & (cand != qidx[q])
    q, cand, d = q[keep], cand[keep], d[keep]
    if q.size:
        by_query = np.argsort(q, kind="stable")        # keeps the cell order per query
        q, cand, d = q[by_query], cand[by_query], d[by_query]
        first = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
        dmin = np.minimum.reduceat(d, first)
        at_min = d == np.repeat(dmin, np.diff(np.r_[first, q.size]))
        uq, where = np.unique(q[at_min], return_index=True)
        best[uq] = cand[at_min][where]
        dist[uq] = d[at_min][where]
    return best, dist


def window_snr(image, x, y, *, box_half, window_sigma):
    """Signal-to-noise ratio of the Gaussian-windowed flux at (x, y).

    The background is the median of the box border and the noise its robust
    standard deviation, so a star buried in noise (clouds, bright sky)
    scores near 0 and a detected one well above 5.
    """
    ok = np.isfinite(x) & np.isfinite(y)
    snr = np.zeros(len(x))
    if not ok.any():
        return snr
    xi = np.rint(x[ok]).astype(int)
    yi = np.rint(y[ok]).astype(int)
    # in the image's float32 when it is one (the same values, a faster sort)
    st, off, _ = cut_stamps(image, xi, yi, box_half,
                            dtype=np.float32 if image.dtype == np.float32 else np.float64)
    border = np.concatenate([st[:, 0, :], st[:, -1, :], st[:, 1:-1, 0], st[:, 1:-1, -1]], axis=1)
    bkg = row_nanmedian(border)
    # 1.4826: MAD to standard deviation for a normal distribution
    sig = 1.4826 * row_nanmedian(np.abs(border - bkg[:, None]))
    # the Gaussian window is separable, w[i, j] = gy[i] gx[j]
    gx = np.exp(-((xi - x[ok])[:, None] + off[None, :]) ** 2 / (2.0 * window_sigma ** 2))
    gy = np.exp(-((yi - y[ok])[:, None] + off[None, :]) ** 2 / (2.0 * window_sigma ** 2))
    rows = np.einsum("nij,nj->ni", _zero_nan(st - bkg[:, None, None]), gx)
    flux = np.einsum("ni,ni->n", rows, gy)
    noise = np.maximum(sig, 1e-6) * np.sqrt((gy ** 2).sum(axis=1) * (gx ** 2).sum(axis=1))
    snr[ok] = flux / noise
    return snr


def refine_parallel(image, x, y, *, box_half, window_sigma, n_iter, workers):
    """:func:`refine` split over ``workers`` threads (numpy releases the GIL in
    the array work); every star is refined independently, so the result is
    identical to the serial call."""
    if workers <= 1 or len(x) < 2 * workers:
        return refine(image, x, y, box_half=box_half, window_sigma=window_sigma, n_iter=n_iter)
    from concurrent.futures import ThreadPoolExecutor

    parts = np.array_split(np.arange(len(x)), workers)
    with ThreadPoolExecutor(workers) as ex:
        res = list(ex.map(lambda p: refine(image, x[p], y[p], box_half=box_half,
                                           window_sigma=window_sigma, n_iter=n_iter), parts))
    return tuple(np.concatenate([r[k] for r in res]) for k in range(3))


def run(image, raw, x_pred, y_pred, *, cfg, saturation_adu, workers=1):
    """Refine predicted positions and flag doubtful centroids.

    Parameters
    ----------
    image : ndarray
        Detrended image.
    raw : ndarray
        Raw image, for saturation.
    x_pred, y_pred : ndarray
        Predicted positions of all catalog stars, pixels.
    cfg : Centroid
        The camera's centroid settings.
    saturation_adu : float
        Raw level counted as saturated.
    workers : int
        Threads for the centroiding (results do not depend on it).

    Returns
    -------
    xc, yc : ndarray
        Refined centroids (NaN where centroiding failed).
    flagbits : ndarray of int32
        SHIFT, OTHER_STAR, SATURATED, EDGE, NO_FLUX and FAINT bits
        (:mod:`allsky_camera.flags`).
    """
    from allsky_camera.flags import bit

    ny, nx = image.shape
    xc, yc, conv = refine_parallel(image, np.asarray(x_pred, float), np.asarray(y_pred, float),
                                   box_half=cfg.box_half_px, window_sigma=cfg.window_sigma_px,
                                   n_iter=cfg.n_iter, workers=workers)
    f = np.zeros(len(x_pred), dtype=np.int32)
    failed = ~np.isfinite(xc)
    f[failed] |= bit("NO_FLUX")
    shift = np.hypot(xc - x_pred, yc - y_pred)
    f[~failed & (shift > cfg.max_shift_px)] |= bit("SHIFT")
    m = cfg.edge_margin_px
    edge = (x_pred < m) | (x_pred > nx - 1 - m) | (y_pred < m) | (y_pred > ny - 1 - m)
    f[edge] |= bit("EDGE")
    near, _ = nearest_other(xc, yc, x_pred, y_pred, cfg.blend_radius_px)
    other = (near >= 0) & (near != np.arange(len(x_pred)))
    f[other] |= bit("OTHER_STAR")
    snr = window_snr(image, xc, yc, box_half=cfg.box_half_px, window_sigma=cfg.window_sigma_px)
    f[~failed & (snr < cfg.min_snr)] |= bit("FAINT")
    xs = np.where(failed, x_pred, xc)
    ys = np.where(failed, y_pred, yc)
    okpos = np.isfinite(xs) & np.isfinite(ys)
    h = cfg.saturation_radius_px
    # 8/16-bit raw data and float32 are exact in float32; the test in float64
    exact32 = raw.dtype in (np.uint8, np.int8, np.uint16, np.int16, np.float32)
    stamps, _, _ = cut_stamps(raw, np.rint(np.where(okpos, xs, 0)).astype(int),
                              np.rint(np.where(okpos, ys, 0)).astype(int), h,
                              dtype=np.float32 if exact32 else np.float64)
    peak = np.nanmax(np.where(np.isnan(stamps), -np.inf, stamps), axis=(1, 2))
    sat = peak.astype(np.float64) >= saturation_adu
    f[okpos & sat] |= bit("SATURATED")
    return xc, yc, f


def position_flags(x, y, vmag, r_px, isolated, clear_of_moon, *, box_half_px, neighbour_dv,
                   safe_radius_px):
    """Flag bits that depend on where a star is, not on what was measured.

    NOT_ISOLATED: a catalog neighbour on the sky (``isolated`` False) or a
    predicted neighbour inside the centroid box (within ``box_half_px + 1``
    pixels) that is not ``neighbour_dv`` mag fainter; MOON: not clear of the
    Moon; OUTSIDE_SAFE: farther than ``safe_radius_px`` from the zenith.

    Parameters
    ----------
    x, y : ndarray
        Predicted positions, pixels (0-based, x = column).
    vmag : ndarray
        Catalog V, mag.
    r_px : ndarray
        Distance from the fitted zenith, pixels.
    isolated, clear_of_moon : ndarray of bool
    box_half_px, neighbour_dv, safe_radius_px : float

    Returns
    -------
    ndarray of int32
    """
    from allsky_camera.flags import bit

    vmag = np.asarray(vmag)
    near, _ = nearest_other(x, y, x, y, box_half_px + 1.0, exclude_self=True)
    crowded = (near >= 0) & (vmag[np.maximum(near, 0)] - vmag < neighbour_dv)
    f = np.zeros(len(vmag), dtype=np.int32)
    f[~isolated | crowded] |= bit("NOT_ISOLATED")
    f[~clear_of_moon] |= bit("MOON")
    f[np.asarray(r_px) > safe_radius_px] |= bit("OUTSIDE_SAFE")
    return f
