"""Matched search for faint straight segments: windowed line integrals.

A satellite trail two or three noise sigma high per pixel is invisible
pixel by pixel but its light summed along a few hundred pixels stands far
above the noise.  This module sums a significance image along straight
strips (a Radon transform cut into windows along each line, so that a
segment is not diluted by the noise of the rest of its chord) and returns
the strips whose sum is significant.

Pixel convention: 0-based, x = column (fast axis), pixel centres at
integers.  A strip is given by its angle ``theta`` (radians, of the line's
direction from +x toward +y, in [0, pi)) and its offset ``rho`` (pixels,
``rho = -x sin(theta) + y cos(theta)``, the signed distance of the line from
the pixel (0, 0)), and the segment along it by ``t`` (pixels,
``t = x cos(theta) + y sin(theta)``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from allsky_camera.exceptions import AllskyError

#: Cells along a strip per shortest window: the windows' ends are placed to
#: a quarter of its length (a choice of this module, not a tunable).
CELLS_PER_WINDOW = 4


@dataclasses.dataclass(frozen=True)
class Segment:
    """A significant strip found by :func:`search`.

    Attributes
    ----------
    x1, y1, x2, y2 : float
        End points of the window, full-resolution pixels.
    snr : float
        Sum of the significance in the strip over its noise.
    theta : float
        Direction of the line, radians from +x toward +y, in [0, pi).
    """

    x1: float
    y1: float
    x2: float
    y2: float
    snr: float
    theta: float


def bin_image(values, valid, factor):
    """Block sums of ``values`` over ``valid`` pixels, ``factor`` x ``factor``.

    Parameters
    ----------
    values : ndarray, shape (ny, nx)
        Per-pixel values (noise sigma units); not changed.
    valid : ndarray of bool, shape (ny, nx)
        Pixels that count.
    factor : int
        Block size, pixels (>= 1).

    Returns
    -------
    sums, counts : ndarray, shape (ceil(ny / factor), ceil(nx / factor))
        Sum of the valid values and number of valid pixels in each block.
    """
    if int(factor) != factor or factor < 1:
        raise AllskyError(f"line_search.bin_image: factor {factor!r}; give an integer >= 1")
    values = np.asarray(values, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    if values.shape != valid.shape or values.ndim != 2:
        raise AllskyError(f"line_search.bin_image: values {values.shape} and valid "
                          f"{valid.shape} must be 2-D arrays of one shape")
    ny, nx = values.shape
    by, bx = -(-ny // factor), -(-nx // factor)
    v = np.zeros((by * factor, bx * factor), dtype=np.float32)
    c = np.zeros_like(v)
    v[:ny, :nx] = np.where(valid, values, 0.0)
    c[:ny, :nx] = valid
    shape = (by, factor, bx, factor)
    return v.reshape(shape).sum(axis=(1, 3)), c.reshape(shape).sum(axis=(1, 3))


def search(sums, counts, factor, *, windows_px, angle_step_deg, snr_min, min_fill=0.3,
           max_segments=50):
    """Strips of a binned significance image whose windowed sum is significant.

    For each angle (``angle_step_deg`` apart over 180 deg) the blocks are
    dealt into strips one block wide (and, summed in pairs, two wide) and
    into cells one block long along the strip; for each window length the
    sum over the window is compared with its noise, ``sqrt(n)`` times the
    robust per-pixel noise of the binned image (measured on it, so that a
    smoothed or clipped significance image is judged by its own noise).

    Parameters
    ----------
    sums, counts : ndarray, shape (my, mx)
        From :func:`bin_image`.
    factor : int
        The block size used there, pixels.
    windows_px : sequence of float
        Window lengths along the strips, full-resolution pixels.
    angle_step_deg : float
        Step between the angles searched, deg.
    snr_min : float
        Strips with a lower signal-to-noise ratio are not returned.
    min_fill : float
        A window must hold at least this fraction of valid pixels.
    max_segments : int
        At most this many segments are returned, the most significant,
        each the best of its neighbourhood (strips within 3 blocks of a
        stronger one's line and overlapping it are dropped).

    Returns
    -------
    list of Segment
        Most significant first.
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    ok = counts > 0.5 * factor * factor
    if ok.sum() < 10:
        return []
    # noise per pixel of the summed significance, from blocks mostly on the sky:
    # a block sum of n pixels has sigma * sqrt(n)
    z = sums[ok] / np.sqrt(counts[ok])
    med = np.median(z)
    # 1.4826: MAD to standard deviation for a normal distribution
    sigma = 1.4826 * float(np.median(np.abs(z - med))) or 1.0
    keep = counts > 0
    iy, ix = np.nonzero(keep)
    # block centres in full-resolution pixels
    xc = (ix * factor + 0.5 * (factor - 1)).astype(np.float32)
    yc = (iy * factor + 0.5 * (factor - 1)).astype(np.float32)
    # the per-pixel mean (a full block's z is mean * factor), removed
    w = (sums[keep] - med / factor * counts[keep]).astype(np.float32)
    n = counts[keep].astype(np.float32)
    span = float(np.hypot(*sums.shape) * factor)
    # cells along the strips: a quarter of the shortest window (the windows'
    # ends are found to that precision; the walk at full resolution does better)
    cell = max(int(min(windows_px) // (CELLS_PER_WINDOW * factor)), 1) * factor
    wins = sorted({max(round(wp / cell), 1) for wp in windows_px})
    found = []
    # a window is searched at every k-th angle only, k such that the angle
    # step moves its far end by at most one block
    every = {win: max(int(np.degrees(factor / (win * cell)) // angle_step_deg), 1)
             for win in wins}
    for k, theta in enumerate(np.radians(np.arange(0.0, 180.0, angle_step_deg))):
        c, s = np.cos(theta), np.sin(theta)
        ir = ((yc * (c / factor) - xc * (s / factor)) + span / factor).astype(np.intp)
        it = ((xc * (c / cell) + yc * (s / cell)) + span / cell).astype(np.intp)
        lo_r, hi_r = ir.min(), ir.max() + 1
        lo_t, hi_t = it.min(), it.max() + 1
        mt = hi_t - lo_t
        idx = (ir - lo_r) * mt + (it - lo_t)
        size = (hi_r - lo_r) * mt
        # running sums along each strip, one block wide
        ch1 = np.zeros((hi_r - lo_r, mt + 1), dtype=np.float32)
        cm1 = np.zeros_like(ch1)
        np.cumsum(np.bincount(idx, weights=w, minlength=size).reshape(-1, mt), axis=1,
                  out=ch1[:, 1:])
        np.cumsum(np.bincount(idx, weights=n, minlength=size).reshape(-1, mt), axis=1,
                  out=cm1[:, 1:])
        for width in (1, 2):
            # two blocks wide: neighbouring strips added (the sums are linear)
            ch, cm = (ch1, cm1) if width == 1 else (ch1[:-1] + ch1[1:], cm1[:-1] + cm1[1:])
            for win in wins:
                if win >= ch.shape[1] or k % every[win]:
                    continue
                sw = ch[:, win:] - ch[:, :-win]
                nw = cm[:, win:] - cm[:, :-win]
                floor = min_fill * win * cell * factor * width
                snr = np.where(nw >= floor, sw / np.sqrt(np.maximum(nw, floor)), 0.0)
                j = np.argmax(snr, axis=1)
                best = snr[np.arange(snr.shape[0]), j] / sigma
                for r in np.nonzero(best > snr_min)[0]:
                    rho = (lo_r + r + 0.5 * width) * factor - span
                    t0 = (lo_t + j[r]) * cell - span
                    found.append((float(best[r]), theta, rho, t0, t0 + win * cell))
    return _suppress(found, factor, max_segments)


def _suppress(found, factor, max_segments):
    """Keep the strongest strips, dropping weaker ones on top of them."""
    if not found:
        return []
    f = np.array(found)
    f = f[np.argsort(-f[:, 0])]
    snr, theta, rho, t0, t1 = f.T
    # end points of every strip
    c, s = np.cos(theta), np.sin(theta)
    pts = np.stack([t0 * c - rho * s, t0 * s + rho * c, t1 * c - rho * s, t1 * s + rho * c], 1)
    alive = np.ones(len(f), dtype=bool)
    out = []
    for i in range(len(f)):
        if not alive[i]:
            continue
        out.append(Segment(*(float(v) for v in pts[i]), snr=float(snr[i]),
                           theta=float(theta[i])))
        if len(out) >= max_segments:
            break
        # the others' end points in this strip's frame
        ci, si = c[i], s[i]
        near = np.ones(len(f), dtype=bool)
        along = []
        for k in (0, 2):
            px, py = pts[:, k], pts[:, k + 1]
            perp = -px * si + py * ci - rho[i]
            near &= np.abs(perp) <= 3 * factor
            along.append(px * ci + py * si)
        a0, a1 = np.minimum(*along), np.maximum(*along)
        overlap = (a1 >= t0[i] - factor) & (a0 <= t1[i] + factor)
        alive &= ~(near & overlap)
    return out


def step_ends(values, noise, usable, on_sky, start, stop, *, bin_px, iterations,
              off_sky_penalty, outlier_sigma):
    """Ends of a step (a uniform segment) in a profile sampled along a line.

    The model: ``values[i] = A`` on the segment ``[a, b]`` and 0 elsewhere,
    with Gaussian noise ``noise[i]``.  For a given level ``A`` the segment
    of highest likelihood maximises the sum over it of
    ``A (values - A / 2) / noise**2`` (the log-likelihood ratio of a sample
    being on the segment), found exactly from the running sum; the level is
    then re-measured on that segment and the ends placed again.  Each
    sample's term is limited to ``+-A**2 / noise**2`` (a star on the line
    counts as at most two samples of the segment, a hole as at most two of
    the sky), samples not ``usable`` (blanked) count 0 and samples off the
    searched sky ``-off_sky_penalty`` times that limit: a segment does not
    jump a gap in the sky.

    Parameters
    ----------
    values : ndarray of float, shape (n,)
        Signal along the line, one sample per pixel of path (ADU or any
        unit shared by ``noise``); not changed.
    noise : ndarray of float, shape (n,)
        Its noise per sample (> 0; only its variation along the line
        matters, a constant factor does not).
    usable, on_sky : ndarray of bool, shape (n,)
        Samples that count, and samples on the searched sky.
    start, stop : int
        A stretch of samples known to lie on the segment (the search's
        window): the level is first measured there, and the segment found
        must contain its middle.
    bin_px : int
        The level is the median of the means of bins this many samples
        long (robust to stars on the line and to the window overrunning an
        end), bins less than half usable left out.
    iterations : int
        Times the level is re-measured on the segment found (>= 1).
    off_sky_penalty : float
        See above (a few: the result does not depend on it).
    outlier_sigma : float
        Samples more than this many times their scatter (measured about the
        level on the segment, robustly) above the level, or below 0, count
        0: a star on the line, or a hole beside one, is no evidence of the
        segment going on or of its end.

    Returns
    -------
    (a, b, level) or None
        ``a``, ``b``: fractional sample indices of the segment's ends (the
        step halfway between the last sample on and the first off);
        ``level``: ``A``.  None when the level is not positive or no
        segment of two samples or more is found.
    """
    values = np.asarray(values, dtype=float)
    noise = np.asarray(noise, dtype=float)
    usable = np.asarray(usable, dtype=bool) & np.asarray(on_sky, dtype=bool)
    on_sky = np.asarray(on_sky, dtype=bool)
    n = values.size
    if not (noise.shape == usable.shape == on_sky.shape == (n,)) or np.any(noise <= 0):
        raise AllskyError("line_search.step_ends: values, noise, usable and on_sky must be "
                          "1-D arrays of one length, noise > 0")
    mid = (int(start) + int(stop)) // 2
    if not 0 <= mid < n:
        return None
    a, b = max(int(start), 0), min(int(stop), n - 1)
    inv = 1.0 / noise ** 2
    level = 0.0
    for _ in range(max(int(iterations), 1)):
        level = _binned_level(values[a:b + 1], usable[a:b + 1], bin_px)
        if not level > 0:
            return None
        # the samples' scatter about the level on the segment, in units of
        # ``noise``: samples more than ``outlier_sigma`` of it above the level
        # (a star) or below 0 (a hole) are neither on nor off the segment
        z = (values[a:b + 1] - level) / noise[a:b + 1]
        z = z[usable[a:b + 1]]
        # 1.4826: MAD to standard deviation for a normal distribution
        spread = 1.4826 * float(np.median(np.abs(z - np.median(z)))) if z.size else 0.0
        outlier = ((values > level + outlier_sigma * spread * noise)
                   | (values < -outlier_sigma * spread * noise)) if spread > 0 else ~usable
        # per-sample log-likelihood ratio, limited to +-A**2 / noise**2
        cap = level * level * inv
        gain = np.clip(level * (values - 0.5 * level) * inv, -cap, cap)
        gain = np.where(usable & ~outlier, gain, 0.0)
        gain = np.where(on_sky, gain, -off_sky_penalty * cap)
        csum = np.r_[0.0, np.cumsum(gain)]
        # the segment [a, b] has sum csum[b + 1] - csum[a], a <= mid <= b; of
        # equal sums the shortest (samples that say nothing are left out)
        a = mid - int(np.argmin(csum[mid::-1]))
        b = mid + int(np.argmax(csum[mid + 1:]))
        if b - a < 2:
            return None
    # ends trimmed to usable samples; an end next to samples that say
    # nothing (a blanked star) lies somewhere under them: in their middle
    while a < b and not usable[a]:
        a += 1
    while b > a and not usable[b]:
        b -= 1
    if b - a < 2:
        return None
    ra = rb = 0
    while a - ra - 1 >= 0 and on_sky[a - ra - 1] and not usable[a - ra - 1]:
        ra += 1
    while b + rb + 1 < n and on_sky[b + rb + 1] and not usable[b + rb + 1]:
        rb += 1
    return a - 0.5 - 0.5 * ra, b + 0.5 + 0.5 * rb, level


def _binned_level(values, usable, bin_px):
    """Median of the means of the usable samples of bins ``bin_px`` long
    (bins less than half usable left out; NaN when none is left)."""
    nb = max(values.size // max(int(bin_px), 1), 1)
    means = []
    for v, u in zip(np.array_split(values, nb), np.array_split(usable, nb)):
        if u.sum() >= 0.5 * u.size and u.any():
            means.append(float(v[u].mean()))
    return float(np.median(means)) if means else float("nan")
