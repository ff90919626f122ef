"""A fast running median for smooth backgrounds.

``scipy.ndimage.median_filter`` with a 23 x 23 kernel takes seconds on a
2-Mpixel frame.  The sky of an all-sky camera varies on scales much larger
than the kernel, so the exact kernel median is computed only at the nodes of
a grid every ``step`` pixels (``np.partition`` over windows cut with
``sliding_window_view``) and interpolated bilinearly in between.  Edges are
padded as scipy's ``mode='nearest'`` does; the tests compare the result with
scipy's.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Grid nodes per chunk of the partition: bounds the memory of one chunk to
#: about 8 bytes x 2000 x kernel^2 (8 MB for a 23 px kernel).
_CHUNK = 2000


def _node_medians(padded, ky, kx, iy, ix, k):
    """Medians of the ``k x k`` windows whose top-left corners are (ky[iy], kx[ix])."""
    win = sliding_window_view(padded, (k, k))
    out = np.empty(iy.size, dtype=np.float64)
    mid = (k * k) // 2
    for s in range(0, iy.size, _CHUNK):
        block = win[ky[iy[s:s + _CHUNK]], kx[ix[s:s + _CHUNK]]].reshape(-1, k * k)
        out[s:s + _CHUNK] = np.partition(block, mid, axis=1)[:, mid]
    return out


def median_filter_fast(image, kernel, *, step, mask=None, workers=1):
    """Running ``kernel x kernel`` median, exact on a grid and interpolated.

    Parameters
    ----------
    image : ndarray
        2-D image (not modified); NaNs are not supported.
    kernel : int
        Odd window width, pixels.
    step : int
        Grid step, pixels (1 gives the exact filter everywhere).
    mask : ndarray of bool, optional
        True where the result is wanted; nodes farther than one step from any
        wanted pixel are skipped, and the result is NaN where ``mask`` is False.
    workers : int
        Threads sharing the node medians (numpy's partition releases the GIL);
        the result does not depend on it.

    Returns
    -------
    ndarray of float32
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel = {kernel}: must be an odd positive integer")
    if step < 1:
        raise ValueError(f"step = {step}: must be a positive integer")
    ny, nx = image.shape
    h = kernel // 2
    padded = np.pad(np.asarray(image, dtype=np.float32), h, mode="edge")
    gy = np.arange(0, ny - 1 + step, step)
    gx = np.arange(0, nx - 1 + step, step)
    gy = np.minimum(gy, ny - 1)
    gx = np.minimum(gx, nx - 1)
    gy, gx = np.unique(gy), np.unique(gx)
    need = np.ones((gy.size, gx.size), dtype=bool)
    if mask is not None:
        # a node is needed when a wanted pixel lies in one of its four cells
        cy = np.searchsorted(gy, np.arange(ny), side="right") - 1
        cx = np.searchsorted(gx, np.arange(nx), side="right") - 1
        rows = np.zeros((gy.size, nx), dtype=bool)
        np.logical_or.at(rows, cy, mask)
        cells = np.zeros((gy.size, gx.size), dtype=bool)
        np.logical_or.at(cells.T, cx, rows.T)
        need = cells.copy()
        need[1:, :] |= cells[:-1, :]
        need[:, 1:] |= cells[:, :-1]
        need[1:, 1:] |= cells[:-1, :-1]
    iy, ix = np.nonzero(need)
    grid = np.full((gy.size, gx.size), np.nan, dtype=np.float64)
    if iy.size:
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            parts = np.array_split(np.arange(iy.size), workers)
            with ThreadPoolExecutor(workers) as ex:
                res = list(ex.map(lambda p: _node_medians(padded, gy, gx, iy[p], ix[p], kernel),
                                  parts))
            grid[iy, ix] = np.concatenate(res)
        else:
            grid[iy, ix] = _node_medians(padded, gy, gx, iy, ix, kernel)
    # bilinear interpolation between nodes
    jy = np.clip(np.searchsorted(gy, np.arange(ny), side="right") - 1, 0, max(gy.size - 2, 0))
    jx = np.clip(np.searchsorted(gx, np.arange(nx), side="right") - 1, 0, max(gx.size - 2, 0))
    if gy.size > 1:
        ty = (np.arange(ny) - gy[jy]) / (gy[jy + 1] - gy[jy])
        jy1 = jy + 1
    else:
        ty, jy1 = np.zeros(ny), jy
    if gx.size > 1:
        tx = (np.arange(nx) - gx[jx]) / (gx[jx + 1] - gx[jx])
        jx1 = jx + 1
    else:
        tx, jx1 = np.zeros(nx), jx
    if mask is not None:
        ys, xs = np.nonzero(mask)
        out = np.full((ny, nx), np.nan, dtype=np.float32)
        a, b = ty[ys], tx[xs]
        out[ys, xs] = ((1 - a) * (1 - b) * grid[jy[ys], jx[xs]]
                       + (1 - a) * b * grid[jy[ys], jx1[xs]]
                       + a * (1 - b) * grid[jy1[ys], jx[xs]] + a * b * grid[jy1[ys], jx1[xs]])
        return out
    a, b = ty[:, None], tx[None, :]
    g00 = grid[np.ix_(jy, jx)]
    g01 = grid[np.ix_(jy, jx1)]
    g10 = grid[np.ix_(jy1, jx)]
    g11 = grid[np.ix_(jy1, jx1)]
    return ((1 - a) * (1 - b) * g00 + (1 - a) * b * g01 + a * (1 - b) * g10
            + a * b * g11).astype(np.float32)
