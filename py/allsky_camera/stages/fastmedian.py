"""A fast running median for smooth backgrounds.

``scipy.ndimage.median_filter`` with a 23 x 23 kernel takes seconds on a
2-Mpixel frame.  The sky of an all-sky camera varies on scales much larger
than the kernel, so :func:`median_filter_fast` computes the exact
``kernel x kernel`` median only at the nodes of a grid every ``step`` pixels
and interpolates bilinearly in between.  The image is padded with its edge
values, as scipy's ``mode='nearest'`` does.

The node medians are found in one of two exact ways:

* **lattice path** (raw camera frames, or frames minus a constant level):
  when the pixel values sit on a unit lattice ``v0 + n`` (``n`` integer), each
  pixel is coded by ``n`` in 8 or 16 bits.  8-bit codes (data spanning at most
  256 ADU, as from an 8-bit camera) are radix-sorted (numpy's
  ``kind='stable'`` sort), about 2.5 times faster than partitioning floats;
  16-bit codes are partitioned, 1.5 times faster than floats.  Pixels off the
  lattice (e.g. bad pixels replaced by a neighbour mean) are allowed: the few
  windows that hold one take the general path.
* **general path**: ``np.partition`` of the windows' values.

Both give the same medians, which equal scipy's at the nodes.  Which one is
faster depends on numpy and the CPU: numpy 2 partitions 32-bit floats with
SIMD instructions (x86-simd-sort) and then beats the lattice path by about 2
(DCT and MDM frames on the project's AVX2 machine).  The first call for a
kernel and dtype times both paths on a small synthetic lattice image and
keeps the faster one for the process (the choice never changes a value).

:func:`median` is ``np.median`` of a whole array at a fraction of its cost
(one partition instead of numpy's three-rank one), for the other stages.

Pixel convention: 0-based, ``image[y, x]`` with x the column (fast) axis,
pixel centres at integer coordinates.  Only numpy is imported.
"""

from __future__ import annotations

import functools
import logging
import numbers
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

log = logging.getLogger(__name__)

#: Bytes of window values gathered per chunk of nodes (bounds the memory of
#: one chunk; the total stays below a few times this per worker).
_CHUNK_BYTES = 1 << 24
#: Pixels sampled to decide cheaply whether an image may be on a unit lattice.
_LATTICE_SAMPLE = 4096
#: Largest fraction of off-lattice pixels for which the lattice path is used.
#: Affects the speed only, never the result.
_LATTICE_MAX_OFF = 0.01
#: Lattice tolerance in units of the float spacing of the largest |value|:
#: covers the rounding of ``raw - level`` and of ``v - v0`` in floating point.
_LATTICE_TOL_ULP = 4
#: Integer types tried for the lattice codes, smallest first.
_CODE_TYPES = (np.uint8, np.uint16)


#: Side (pixels) of the synthetic lattice image timed to choose the path, and
#: the repeats (best of) of each timing.  They affect the speed only.
_CALIBRATE_PX = 96
_CALIBRATE_REPEAT = 3


def median(values):
    """``np.median(values)`` (all values, flattened), the same number in the
    same dtype, at a fraction of the cost.

    numpy's median partitions at both middle ranks and at the last element
    (to find NaN); here one partition at the upper middle rank ``n // 2``
    leaves the lower one as the largest value before it, and a NaN (numpy
    then returns NaN) as the largest after it.  The mean of the two middle
    values is numpy's own (``np.mean`` of the pair).  4 to 7 times faster on
    a few 10^5 values.

    Parameters
    ----------
    values : array_like
        Real values, any shape; NaN allowed (the result is then NaN).

    Returns
    -------
    numpy scalar
        NaN for an empty input (numpy warns there; this does not).
    """
    a = np.asarray(values).ravel()
    n = a.size
    if n == 0:
        return np.float64(np.nan)
    k = n // 2
    p = np.partition(a, k)
    if p.dtype.kind in "fc" and np.isnan(p[k:].max()):
        return p.dtype.type(np.nan)
    return np.mean(p[k:k + 1] if n % 2 else np.array([p[:k].max(), p[k]], dtype=p.dtype))


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} = {value!r}: must be an integer >= {minimum}")
    return int(value)


def _node_coords(n, step):
    """Node coordinates along one axis: 0, step, 2 step, ... and the last pixel."""
    g = np.arange(0, n, step)
    if g[-1] != n - 1:
        g = np.append(g, n - 1)
    return g


def _axis_weights(n, g):
    """Interpolation along one axis of ``n`` pixels with nodes at ``g``.

    Returns for every pixel the node at or before it, the next node (the same
    one at the last node) and the weight of the next node, 0 at the nodes
    themselves (so that node values are reproduced exactly).
    """
    p = np.arange(n)
    j0 = np.searchsorted(g, p, side="right") - 1
    j1 = np.minimum(j0 + 1, g.size - 1)
    gap = g[j1] - g[j0]
    return j0, j1, (p - g[j0]) / np.where(gap > 0, gap, 1)


def _needed_nodes(mask, ngy, ngx, y0, y1, x0, x1):
    """Nodes used by the interpolation at some pixel where ``mask`` is True."""
    # pixels sharing the same lower node form contiguous runs along each axis
    ry = np.flatnonzero(np.diff(y0, prepend=-1))
    rx = np.flatnonzero(np.diff(x0, prepend=-1))
    cells = np.logical_or.reduceat(np.logical_or.reduceat(mask, ry, axis=0), rx, axis=1)
    need = np.zeros((ngy, ngx), dtype=bool)
    for jy in (y0[ry], y1[ry]):
        for jx in (x0[rx], x1[rx]):
            # .at: the last run repeats the last node, and plain fancy
            # assignment would keep only one of the repeated writes
            np.logical_or.at(need, np.ix_(jy, jx), cells)
    return need


def _lattice_codes(padded):
    """Code the pixels of a unit-lattice image by small integers.

    Returns ``(codes, values, off)`` or None when the image is not (mostly)
    on a lattice ``v0 + n``.  ``codes`` (uint8 or uint16) is
    ``rint(v - v0)``, non-decreasing in v; ``values[code]`` is the value of
    one pixel of that code; ``off`` flags the pixels whose value differs from
    ``values[code]`` (sharing a code with another value, e.g. off the
    lattice).  Codes grow with the values, so for windows without ``off``
    pixels the code order is the value order and the median code gives the
    exact median value.
    """
    flat = padded.ravel()
    v0 = flat.min()
    vmax = flat.max()
    top = max(abs(float(v0)), abs(float(vmax)))
    tol = _LATTICE_TOL_ULP * np.spacing(padded.dtype.type(top))
    sample = flat[:: max(1, flat.size // _LATTICE_SAMPLE)] - v0
    if np.mean(np.abs(sample - np.rint(sample)) > tol) > _LATTICE_MAX_OFF:
        return None
    d = padded - v0
    n = np.rint(d)
    span = int(np.rint(vmax - v0))      # n.max(): rounding is monotonic
    ctype = next((t for t in _CODE_TYPES if span <= np.iinfo(t).max), None)
    if ctype is None:
        return None
    codes = n.astype(ctype)
    values = np.full(span + 1, np.nan, dtype=padded.dtype)
    # any pixel's value will do for its code (few pixels are off the lattice);
    # should an off-lattice value have been kept for a common code, keep the
    # on-lattice values only
    values[codes.ravel()] = flat
    off = values[codes] != padded
    if np.mean(off) > _LATTICE_MAX_OFF:
        close = np.abs(d - n) <= tol
        values[:] = np.nan
        values[codes[close]] = padded[close]
        off = values[codes] != padded
        if np.mean(off) > _LATTICE_MAX_OFF:
            return None
    return codes, values, off


def _nodes_touching(off, gy, gx, jy, jx, kernel):
    """True for the nodes (jy, jx) of the grid (gy, gx) whose window holds at
    least one ``off`` pixel (``off`` in the padded frame, where the window of
    node (y, x) spans rows y .. y + kernel - 1 and columns x .. x + kernel - 1)."""
    rows = np.flatnonzero(off.any(axis=1))     # few rows: np.nonzero of them only
    py, px = np.nonzero(off[rows])
    py = rows[py]
    if py.size == 0:
        return np.zeros(jy.size, dtype=bool)
    # an off pixel at p is in the windows of the nodes g with p - kernel < g <= p:
    # mark that rectangle of nodes by its four signed corners, then integrate
    ya = np.searchsorted(gy, py - kernel, side="right")
    yb = np.searchsorted(gy, py, side="right")
    xa = np.searchsorted(gx, px - kernel, side="right")
    xb = np.searchsorted(gx, px, side="right")
    diff = np.zeros((gy.size + 1, gx.size + 1), dtype=np.int64)
    np.add.at(diff, (ya, xa), 1)
    np.add.at(diff, (ya, xb), -1)
    np.add.at(diff, (yb, xa), -1)
    np.add.at(diff, (yb, xb), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[jy, jx] > 0


def _run(tasks, workers):
    """Run the callables ``tasks``, on ``workers`` threads when > 1."""
    if workers > 1 and len(tasks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda task: task(), tasks))
    else:
        for task in tasks:
            task()


@functools.lru_cache(maxsize=16)
def _lattice_pays(kernel, dtype):
    """Whether the lattice path beats the general one for ``kernel`` windows of
    ``dtype`` data on this machine: both are timed once on a synthetic Poisson
    image on a unit lattice."""
    rng = np.random.default_rng(0)
    n = _CALIBRATE_PX
    img = rng.poisson(30.0, (n, n)).astype(dtype)
    padded = np.pad(img, kernel // 2, mode="edge")
    g = _node_coords(n, max(kernel // 3, 1))
    jy, jx = (a.ravel() for a in np.meshgrid(np.arange(g.size), np.arange(g.size),
                                               indexing="ij"))
    best = {}
    for lattice in (True, False):
        times = []
        for _ in range(_CALIBRATE_REPEAT):
            t0 = time.perf_counter()
            _node_medians(padded, kernel, g, g, jy, jx, 1, lattice=lattice)
            times.append(time.perf_counter() - t0)
        best[lattice] = min(times)
    log.debug("kernel %d, %s: lattice path %.2f ms, general %.2f ms", kernel, dtype,
              1e3 * best[True], 1e3 * best[False])
    return best[True] < best[False]


def _node_medians(padded, kernel, gy, gx, jy, jx, workers, *, lattice=True):
    """Exact medians of the ``kernel x kernel`` windows of ``padded`` centred
    on the nodes (gy[jy], gx[jx]) of the image (their top-left corners in the
    padded frame); ``jy, jx`` not empty.  ``lattice``: try the lattice path."""
    # only the box covered by the wanted windows is read: shift the frame to it
    y0, x0 = int(gy[jy].min()), int(gx[jx].min())
    padded = padded[y0:int(gy[jy].max()) + kernel, x0:int(gx[jx].max()) + kernel]
    gy, gx = gy - y0, gx - x0
    wy, wx = gy[jy], gx[jx]
    mid = kernel * kernel // 2
    out = np.empty(wy.size, dtype=padded.dtype)
    general = np.arange(wy.size)
    tasks = []

    def add_tasks(source, idx, radix, lookup=None):
        if idx.size == 0:
            return
        win = sliding_window_view(source, (kernel, kernel))
        nbytes = idx.size * kernel * kernel * source.itemsize
        nchunks = max(-(-nbytes // _CHUNK_BYTES), workers)

        def task(sel):
            block = win[wy[sel], wx[sel]].reshape(sel.size, -1)
            if radix:
                block.sort(axis=1, kind="stable")      # a radix sort for 8-bit codes
            else:
                block.partition(mid, axis=1)
            med = block[:, mid]
            out[sel] = med if lookup is None else lookup[med]

        for sel in np.array_split(idx, min(nchunks, idx.size)):
            tasks.append(lambda sel=sel: task(sel))

    coded = _lattice_codes(padded) if lattice else None
    if coded is not None:
        codes, values, off = coded
        bad = _nodes_touching(off, gy, gx, jy, jx, kernel)
        general = np.flatnonzero(bad)
        # numpy radix-sorts 8-bit rows fast; wider codes partition faster
        add_tasks(codes, np.flatnonzero(~bad), codes.dtype == np.uint8, values)
        log.debug("lattice path: %d nodes by %s codes, %d by partition",
                  wy.size - general.size, codes.dtype, general.size)
    else:
        log.debug("general path: %d nodes by partition", wy.size)
    add_tasks(padded, general, False)
    _run(tasks, workers)
    return out


def median_filter_fast(image, kernel, *, step, mask=None, workers=1):
    """Approximate ``scipy.ndimage.median_filter(image, size=kernel, mode='nearest')``.

    The exact ``kernel x kernel`` median is evaluated on a grid of nodes at
    x, y = 0, step, 2 step, ... and at the last column and row, then
    interpolated bilinearly to every pixel.  At the nodes the result equals
    scipy's; in between it suits a sky that is smooth on the scale of
    ``step`` (for a quantised sky it is smoother than scipy's, whose output
    jumps by whole ADU).

    Parameters
    ----------
    image : array_like
        2-D image, ``image[y, x]``, any real dtype, all values finite.  Not
        modified.
    kernel : int
        Window width, pixels; odd (the window is centred on the pixel).
    step : int
        Grid step, pixels (1 evaluates the exact filter everywhere).
    mask : array_like of bool, optional
        Same shape as ``image``; True where the result is wanted.  Nodes not
        used by the interpolation at any wanted pixel are skipped, and the
        result is NaN where ``mask`` is False.  Pixels outside the mask still
        enter the windows, as in scipy.
    workers : int
        Threads sharing the node medians (numpy releases the GIL while it
        gathers, sorts and partitions the windows).  The result does not
        depend on it.

    Returns
    -------
    ndarray
        Same shape as ``image``, in the image's units; float32 for float32
        and 8/16-bit integer images, float64 otherwise.

    Raises
    ------
    ValueError
        For a non-2-D, empty or non-finite ``image``, an even or non-positive
        ``kernel``, ``step`` or ``workers`` < 1, or a ``mask`` of another shape.
    """
    box, by, bx = median_filter_box(image, kernel, step=step, mask=mask, workers=workers)
    if mask is None:
        return box
    out = np.full(np.shape(image), np.nan, dtype=box.dtype)
    out[by, bx] = box
    return out


def median_filter_box(image, kernel, *, step, mask=None, workers=1):
    """:func:`median_filter_fast` in the box around the wanted pixels only.

    Returns ``(box, rows, cols)``: the result is ``box`` on
    ``image[rows, cols]`` (the smallest box holding every True of ``mask``;
    the whole image without a mask; empty slices and a 0x0 box for a mask
    without True) and NaN everywhere else.  Same parameters, values and
    errors as :func:`median_filter_fast`, without the full-frame copy.
    """
    img = np.asarray(image)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"image: need a non-empty 2-D array, got shape {img.shape}")
    if not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)
            or img.dtype == bool):
        raise ValueError(f"image: need a real array, got dtype {img.dtype}")
    kernel = _check_int(kernel, "kernel", 1)
    if kernel % 2 == 0:
        raise ValueError(f"kernel = {kernel}: must be odd")
    step = _check_int(step, "step", 1)
    workers = _check_int(workers, "workers", 1)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != img.shape:
            raise ValueError(f"mask: shape {mask.shape} differs from the image's {img.shape}")
    dtype = np.result_type(img.dtype, np.float32)
    ny, nx = img.shape
    padded = np.pad(img.astype(dtype, copy=False), kernel // 2, mode="edge")
    if not np.isfinite(padded).all():
        raise ValueError("image: contains NaN or infinite values")

    gy, gx = _node_coords(ny, step), _node_coords(nx, step)
    y0, y1, wy = _axis_weights(ny, gy)
    x0, x1, wx = _axis_weights(nx, gx)
    if mask is None:
        need = np.ones((gy.size, gx.size), dtype=bool)
        by, bx = slice(0, ny), slice(0, nx)
    else:
        # only the box around the wanted pixels is searched and interpolated
        rows_on = np.flatnonzero(mask.any(axis=1))
        if rows_on.size == 0:
            return np.zeros((0, 0), dtype=dtype), slice(0, 0), slice(0, 0)
        cols_on = np.flatnonzero(mask.any(axis=0))
        by = slice(rows_on[0], rows_on[-1] + 1)
        bx = slice(cols_on[0], cols_on[-1] + 1)
        need = _needed_nodes(mask[by, bx], gy.size, gx.size, y0[by], y1[by], x0[bx], x1[bx])
    jy, jx = np.nonzero(need)
    # unused nodes stay 0: they only ever get weight 0 at wanted pixels
    grid = np.zeros((gy.size, gx.size), dtype=dtype)
    if jy.size:
        # a window centred on node (y, x) starts at (y, x) in the padded frame
        grid[jy, jx] = _node_medians(padded, kernel, gy, gx, jy, jx, workers,
                                     lattice=_lattice_pays(kernel, np.dtype(dtype)))
    log.debug("median_filter_fast: %dx%d image, kernel %d, step %d, %d of %d nodes",
              ny, nx, kernel, step, jy.size, need.size)

    wx, wy = wx.astype(dtype), wy.astype(dtype)
    rows = grid[:, x0[bx]]                                   # (nodes in y, box width)
    rows += (grid[:, x1[bx]] - rows) * wx[bx]
    box = rows[y0[by]]
    box += (rows[y1[by]] - box) * wy[by, None]
    if mask is not None:
        box[~mask[by, bx]] = np.nan
    return box, by, bx
