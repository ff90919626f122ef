"""Recovery of a camera that moved far from its template.

When the template fails the quality gate (the camera was bumped, turned
after maintenance, or configured with a wrong rotation), :func:`seed_model`
searches wider by itself, with the blind calibration's machinery
(:mod:`allsky_camera.camera.calibrate`): point sources are detected inside the lens
circle the template implies, and hypothesis and verify runs over every
rotation about the template's zenith and zenith offsets up to
``astrometry.recover_offset_px``, keeping the template's projection, radial
scale and parity.  The best hypothesis is a seed: the caller refines it with
the ordinary per-exposure fit and judges it with the gate again.

Runs only on frames whose template failed, so a normal frame pays nothing.
Pixel convention: 0-based, x = column (fast axis), pixel centres at integers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Zenith distance (deg) of the lens circle searched for sources: the
#: horizon, where an all-sky lens's image ends.
_HORIZON_ZD_DEG = 90.0
#: Block size (pixels) of the background and noise maps of the detection: a
#: few star widths, smaller than sky gradients.
_BLOCK_PX = 16
#: Fraction of the lens circle's radius searched (its rim is horizon haze).
_CIRCLE_FRACTION = 0.97
#: MAD to standard deviation for a normal distribution.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Seed:
    """Outcome of :func:`seed_model`.

    Attributes
    ----------
    model : CameraModel or None
        The template turned and shifted by the best hypothesis (None when
        no hypothesis was verified).
    score : int
        Search stars matched by it.
    n_search : int
        Search stars predicted (bright, high enough).
    drot_deg, dx_px, dy_px : float
        The hypothesis: rotation (deg, in (-180, 180], +x toward +y) and
        zenith shift (pixels) from the template.
    seconds : float
        Wall-clock time of the search.
    message : str
        Why there is no seed, or empty.
    """

    model: object
    score: int
    n_search: int
    drot_deg: float
    dx_px: float
    dy_px: float
    seconds: float
    message: str = ""


def _block_stat(img, b, fn):
    """``fn`` over ``b x b`` blocks, expanded back to ``img``'s shape.

    Every other pixel of each block is used (a quarter of them): the block
    statistics are medians, as well estimated from 64 pixels as from 256.
    """
    ny, nx = img.shape
    by, bx = -(-ny // b), -(-nx // b)
    h = b // 2
    sub = np.pad(img, ((0, by * b - ny), (0, bx * b - nx)), mode="edge")[::2, ::2]
    blocks = sub.reshape(by, h, bx, h).transpose(0, 2, 1, 3).reshape(by, bx, h * h)
    stat = fn(blocks)
    return np.repeat(np.repeat(stat, b, axis=0), b, axis=1)[:ny, :nx]


def detect_peaks(image, circle, *, nmax, threshold_sigma):
    """Most significant point sources inside a lens circle (fast, pixel precision).

    The background (median of 16-pixel blocks) is removed, the residual is
    smoothed by a 3x3 box mean (single hot pixels drop by 9, a star's peak
    keeps most of its signal), and local maxima above ``threshold_sigma``
    times the block's noise (MAD) are ranked by that significance.

    Parameters
    ----------
    image : ndarray
        Detrended image, ``image[y, x]``.
    circle : (float, float, float)
        Centre x, y and radius of the lens circle, pixels.
    nmax : int
        Most sources returned.
    threshold_sigma : float
        Detection threshold, noise sigma.

    Returns
    -------
    x, y : ndarray
        Peak pixels (integers as floats), most significant first.
    """
    img = np.nan_to_num(np.asarray(image, dtype=np.float32))
    ny, nx = img.shape
    res = img - _block_stat(img, _BLOCK_PX, lambda b: np.median(b, axis=-1))
    sm = np.zeros_like(res)
    sm[1:-1, 1:-1] = sum(res[1 + dy:ny - 1 + dy, 1 + dx:nx - 1 + dx]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    noise = _block_stat(sm, _BLOCK_PX, lambda b: _MAD_TO_SIGMA * np.median(
        np.abs(b - np.median(b, axis=-1, keepdims=True)), axis=-1))
    cx, cy, r = circle
    yy, xx = np.ogrid[:ny, :nx]
    signif = np.divide(sm, noise, out=np.zeros_like(sm), where=noise > 0)
    peak = ((xx - cx) ** 2 + (yy - cy) ** 2 < (_CIRCLE_FRACTION * r) ** 2) & (
        signif > threshold_sigma)
    pad = np.pad(sm, 1, mode="constant", constant_values=-np.inf)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                peak &= sm >= pad[1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx]
    ys, xs = np.nonzero(peak)
    order = np.argsort(signif[ys, xs])[::-1][:nmax]
    return xs[order].astype(float), ys[order].astype(float)


def seed_model(image, template, alt, az, vmag, cfg):
    """Best rotation and zenith shift of the template on this frame.

    Parameters
    ----------
    image : ndarray
        Detrended image, ``image[y, x]``.
    template : CameraModel
        The configuration's template (its projection, scale and parity are kept).
    alt, az : ndarray
        Apparent altitude and azimuth of catalog stars, deg.
    vmag : ndarray
        Their V magnitudes.
    cfg : Astrometry
        The ``recover_*`` settings, and ``min_stars``.

    Returns
    -------
    Seed
    """
    from allsky_camera.camera import calibrate

    t0 = time.perf_counter()
    alt, az, vmag = (np.asarray(v, dtype=float) for v in (alt, az, vmag))
    nan = float("nan")

    def fail(msg, score=-1, n=0):
        return Seed(None, score, n, nan, nan, nan, time.perf_counter() - t0, msg)

    use = (vmag <= cfg.recover_vmax) & (alt >= cfg.recover_min_alt_deg)
    n_search = int(use.sum())
    if n_search < cfg.min_stars:
        return fail(f"{n_search} catalog stars for the recovery search, fewer than "
                    f"min_stars {cfg.min_stars}", n=n_search)
    circle = (template.x0, template.y0, float(template.radius(_HORIZON_ZD_DEG)))
    xd, yd = detect_peaks(image, circle, nmax=cfg.recover_n_detect,
                          threshold_sigma=calibrate.DETECT_SIGMA)
    if xd.size < cfg.min_stars:
        return fail(f"{xd.size} sources detected, fewer than min_stars {cfg.min_stars}",
                    n=n_search)
    xt, yt = template.altaz_to_xy(alt[use], az[use])
    score, hyp = calibrate.search_seeded((xd, yd), image.shape, xt, yt,
                                         (template.x0, template.y0),
                                         max_offset_px=cfg.recover_offset_px,
                                         step_px=cfg.recover_step_px)
    if hyp is None or score < cfg.min_stars:
        return fail(f"recovery search matched {max(score, 0)} of {n_search} bright stars, "
                    f"fewer than min_stars {cfg.min_stars}", score, n_search)
    drot, dx, dy = hyp
    drot = float((drot + 180.0) % 360.0 - 180.0)
    if drot == -180.0:
        drot = 180.0
    model = template.replace(x0=template.x0 + dx, y0=template.y0 + dy,
                             rot_deg=template.rot_deg + drot)
    dt = time.perf_counter() - t0
    log.info("astrometry recovery: %d of %d bright stars match the template turned by "
             "%.1f deg and shifted by (%.0f, %.0f) px (%.2f s)", score, n_search, drot, dx, dy,
             dt)
    return Seed(model, score, n_search, drot, dx, dy, dt)
