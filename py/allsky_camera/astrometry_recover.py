"""Recovery of a camera that moved far from its template.

When the template fails the quality gate (the camera was bumped, turned
after maintenance, or configured with a wrong rotation), :func:`seed_model`
searches wider by itself, with the blind calibration's machinery
(:mod:`allsky_camera.calibrate`): point sources are detected inside the lens
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
    from . import calibrate

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
    xd, yd, _, _ = calibrate.detect(image, circle, nmax=cfg.recover_n_detect)
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
