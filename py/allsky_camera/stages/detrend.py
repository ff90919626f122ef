"""Detrending: remove the dark+bias level and repair static bad pixels.

The level is the sigma-clipped mean of the camera's never-illuminated region
(``sensor.dark_region``), or the configured ``sensor.bias_adu`` when the
camera has no such region.  Pixels of the static bad-pixel mask, and any
non-finite pixels, are replaced by the mean of their good neighbours.
The input array is never modified.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from allsky_camera.exceptions import InputFileError
from allsky_camera.stages.fastmedian import median

log = logging.getLogger(__name__)

#: Clipping threshold (sigma) and iterations of the dark-level estimate,
#: the values astropy's sigma_clipped_stats uses by default.
_CLIP_SIGMA = 3.0
_CLIP_ITERS = 5
#: Rows per block of the hot-pixel search (speed only: the block's
#: temporaries stay in the CPU cache).
_HOT_BLOCK_ROWS = 64
#: Passes of neighbour filling; a bad cluster wider than twice this stays NaN-free
#: by falling back to the image median.
_FILL_PASSES = 4


@dataclass(frozen=True)
class Detrended:
    """Result of :func:`run`.

    Attributes
    ----------
    image : ndarray of float32
        Raw minus the dark+bias level, ADU, shape (ny, nx).
    level : float
        The level subtracted, ADU.
    level_source : str
        ``'dark_region'`` or ``'config'``.
    bad : ndarray of bool or None
        Pixels that were interpolated over.
    n_bad : int
        Number of interpolated pixels.
    """

    image: np.ndarray
    level: float
    level_source: str
    bad: np.ndarray | None
    n_bad: int


def clipped_mean(values, sigma=_CLIP_SIGMA, iters=_CLIP_ITERS):
    """Sigma-clipped mean and standard deviation of finite ``values``."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    for _ in range(iters):
        if v.size == 0:
            break
        med, std = median(v), v.std()
        keep = np.abs(v - med) <= sigma * std
        if keep.all():
            break
        v = v[keep]
    if v.size == 0:
        return np.nan, np.nan
    return float(v.mean()), float(v.std())


def _nonzero_sparse(mask):
    """``np.nonzero`` of a 2-D mask with few True pixels, in the same order.

    Only the rows holding a True pixel are scanned (``np.nonzero`` of a whole
    frame costs more than the rest of a sparse search).
    """
    rows = np.flatnonzero(mask.any(axis=1))
    ys, xs = np.nonzero(mask[rows])
    return rows[ys], xs


def fill_bad(image, bad):
    """Replace ``bad`` pixels by the mean of their good 8-neighbours.

    Repeated so that small clusters fill from their edges inward; anything
    left after that takes the median of the good pixels.  Returns a new array.
    """
    return _fill_bad_into(image.copy(), bad)


def _fill_bad_into(out, bad):
    """:func:`fill_bad` writing into ``out``; ``bad`` is not modified.

    Which pixels are still bad is kept for the bad pixels only (flat indices
    in row-major order, looked up by binary search), not in a copy of the
    frame's mask.
    """
    ny, nx = out.shape
    ys, xs = _nonzero_sparse(bad)       # row-major order: ``flat`` is sorted
    flat = ys * nx + xs
    todo = np.ones(ys.size, dtype=bool)  # still bad
    for _ in range(_FILL_PASSES):
        idx = np.flatnonzero(todo)
        if not idx.size:
            break
        py, px = ys[idx], xs[idx]
        tot = np.zeros(idx.size)
        cnt = np.zeros(idx.size)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dx == 0 and dy == 0:
                    continue
                yy, xx = py + dy, px + dx
                ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
                f = yy[ok] * nx + xx[ok]
                pos = np.minimum(np.searchsorted(flat, f), flat.size - 1)
                ok[ok] &= ~((flat[pos] == f) & todo[pos])
                tot[ok] += out[yy[ok], xx[ok]]
                cnt[ok] += 1
        done = cnt > 0
        out[py[done], px[done]] = tot[done] / cnt[done]
        todo[idx[done]] = False
    if todo.any():
        left = np.zeros(out.shape, dtype=bool)
        left[ys[todo], xs[todo]] = True
        out[left] = np.median(out[~left])
    return out


def find_hot_pixels(image, *, nsigma, ratio):
    """Single pixels far brighter than all their neighbours (hot pixels, cosmic rays).

    A pixel is hot when it exceeds the brightest of its 8 neighbours by
    ``nsigma`` times the image's robust noise, and its excess over the
    faintest neighbour is ``ratio`` times the brightest neighbour's.  A
    sampled star fails the second test (for FWHM >= 2 px its brightest
    neighbour holds > 40 % of the peak, its faintest one less).

    Returns
    -------
    ndarray of bool
    """
    img = np.asarray(image, dtype=np.float32)
    ny, nx = img.shape
    # robust noise from the differences of horizontal neighbours (sqrt 2 for the pair)
    diff = np.diff(img[:: max(ny // 200, 1)], axis=1)
    noise = 1.4826 * median(np.abs(diff - median(diff))) / np.sqrt(2.0)
    noise = max(float(noise), 1e-6)
    thr = nsigma * noise
    # A hot pixel exceeds its left and right neighbours by more than ``thr``
    # (float32 rounding is monotonic, so img - nbmax > thr implies it), which
    # leaves few candidates; the border pixels (whose edge-replicated
    # neighbours include themselves) are always tested.
    # In blocks of rows that stay in the cache, from the differences of
    # horizontal neighbours d[:, j] = img[:, j + 1] - img[:, j]: pixel j + 1
    # exceeds its left neighbour by d[:, j] and its right one by -d[:, j + 1]
    # (IEEE subtraction is exactly antisymmetric, so these are the values
    # img - neighbour would give).
    # The first test leaves few pixels; the second is made on those only.
    ys, xs = [], []
    for r0 in range(1, ny - 1, _HOT_BLOCK_ROWS):
        d = np.diff(img[r0:min(r0 + _HOT_BLOCK_ROWS, ny - 1)], axis=1)
        by, bx = np.divmod(np.flatnonzero(d[:, :-1] > thr), nx - 2)
        both = d[by, bx + 1] < -thr
        ys.append(by[both] + r0)
        xs.append(bx[both] + 1)
    cols, rows = np.arange(nx), np.arange(ny)
    ys = np.concatenate([*ys, np.zeros(nx, np.intp), np.full(nx, ny - 1), rows, rows])
    xs = np.concatenate([*xs, cols, cols, np.zeros(ny, np.intp), np.full(ny, nx - 1)])
    val = img[ys, xs]
    nbmax = np.full(val.shape, -np.inf, dtype=np.float32)
    nbmin = np.full(val.shape, np.inf, dtype=np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                # clipped indices: the image's edge values continue outside it
                nb = img[np.clip(ys + dy, 0, ny - 1), np.clip(xs + dx, 0, nx - 1)]
                np.maximum(nbmax, nb, out=nbmax)
                np.minimum(nbmin, nb, out=nbmin)
    hot = np.zeros(img.shape, dtype=bool)
    hot[ys, xs] = ((val - nbmax) > thr) & ((val - nbmin) > ratio * (nbmax - nbmin))
    return hot


def run(raw, camera, *, bad_pixel_mask=None, path=""):
    """Subtract the dark+bias level and repair bad pixels.

    Parameters
    ----------
    raw : ndarray
        Raw image, ``raw[y, x]``, ADU.
    camera : Camera
    bad_pixel_mask : ndarray of bool, optional
        Static bad pixels (True = bad), same shape as ``raw``.
    path : str
        Named in error messages.

    Returns
    -------
    Detrended
    """
    s = camera.sensor
    if s.dark_region is not None:
        x0, x1, y0, y1 = s.dark_region
        level, _ = clipped_mean(raw[y0:y1, x0:x1])
        source = "dark_region"
        if not np.isfinite(level):
            raise InputFileError(f"{path}: the dark region {list(s.dark_region)} has no "
                                 "finite pixels; check sensor.dark_region")
    else:
        level, source = float(s.bias_adu), "config"
    image = raw.astype(np.float32)
    image -= np.float32(level)
    # integer data converts to finite floats: nothing to test
    bad = (np.zeros(image.shape, dtype=bool) if raw.dtype.kind in "iub"
           else ~np.isfinite(image))
    if bad_pixel_mask is not None:
        bad |= bad_pixel_mask.astype(bool)
    if s.hot_pixel_sigma is not None:
        hot = find_hot_pixels(np.where(bad, 0.0, image) if bad.any() else image,
                              nsigma=s.hot_pixel_sigma, ratio=s.hot_pixel_ratio)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("detrend: %d hot pixels found", int(hot.sum()))
        bad |= hot
    n_bad = int(bad.sum())
    if n_bad:
        if raw.dtype.kind not in "iub":
            image[~np.isfinite(image)] = 0.0
        image = _fill_bad_into(image, bad)        # our own array: no copy
    log.info("detrend: level %.2f ADU from %s, %d bad pixels repaired", level, source, n_bad)
    return Detrended(image=image, level=float(level), level_source=source,
                     bad=bad if n_bad else None, n_bad=n_bad)
