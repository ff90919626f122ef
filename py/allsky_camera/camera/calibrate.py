"""Blind astrometric calibration of an all-sky camera from one clear frame.

No prior on the geometry is needed:

1. the lens circle is found from the illuminated area (a circle fitted to the
   edge of the bright region, which may run off the image);
2. stars are detected as local maxima of the background-subtracted image;
3. hypothesis and verify (:mod:`allsky_camera.camera.blind_search`): for every
   projection family, parity and trial zenith near the circle's centre,
   detections vote with the brightest catalog stars above 20 deg for a
   (radial scale, rotation); the best-voted hypotheses are verified by
   counting the stars they project within a few pixels of a detection (a
   distance map makes each count a lookup).  Stars within
   ``photometry.planet_exclusion_deg`` of Venus, Mars, Jupiter or Saturn are
   left out of the search and of the fits;
4. the best hypothesis is refined by robust least squares on ever more stars
   (zenith, rotation, scale, radial distortion, then tilt), for each fisheye
   family, leaving out centroids next to saturated pixels (burned-in text,
   planets, clipped stars); the family with the lowest residual RMS wins.

:func:`search` is the older exhaustive scan (equidistant law only, every
rotation step at every trial zenith); :func:`solve` no longer uses it: on a
small lens whose law is not equidistant it verified too few stars (an
orthographic 250 px lens: 10 of 41, "no geometry verified").

Pixel convention: 0-based, x = column, pixel centres at integers.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from allsky_camera.camera.config import Photometry
from allsky_camera.exceptions import SkyError

log = logging.getLogger(__name__)

#: Search grid of the hypotheses: rotation step (deg), scale factors around
#: the lens circle's, and the match tolerance (pixels) and star numbers.
ROT_STEP_DEG = 0.5
SCALE_FACTORS = np.arange(0.80, 1.2001, 0.02)
MATCH_TOL_PX = 4.0
#: The zenith is searched this far (pixels) from the lens circle's centre, in steps.
CENTRE_SEARCH_PX = 30
CENTRE_STEP_PX = 6
N_DETECT = 80
SEARCH_VMAX = 3.0
SEARCH_MIN_ALT = 20.0
#: Refinement: (V limit, match tolerance px, fitted parameters) per round.
ROUNDS = ((4.0, 6.0, ("x0", "y0", "rot_deg", "scale")),
          (5.0, 3.0, ("x0", "y0", "rot_deg", "scale", "k1")),
          (6.0, 2.0, ("x0", "y0", "rot_deg", "scale", "k1", "k2")),
          (6.5, 1.5, ("x0", "y0", "rot_deg", "scale", "k1", "k2", "tilt_n_deg", "tilt_e_deg")),
          (5.8, 1.5, ("x0", "y0", "rot_deg", "scale", "k1", "k2", "tilt_n_deg", "tilt_e_deg")))
#: Residual clip of the refinement fits, in robust sigma.
CLIP_SIGMA = 2.5
#: Fewest verified matches for a solution, and lowest altitude used (deg).
MIN_MATCHES = 40
MIN_ALT_DEG = 8.0
#: Detection: background median width (px) and threshold (noise sigma).
BKG_KERNEL_PX = 15
DETECT_SIGMA = 5.0
#: Glare: saturated areas of at least GLARE_MIN_PX pixels (the Moon, not a
#: star) and detections within GLARE_RADIUS_PX of them are ignored; pixels at
#: SATURATION_FRACTION of the frame's maximum count as saturated.
SATURATION_FRACTION = 0.98
GLARE_MIN_PX = 200
GLARE_RADIUS_PX = 80
#: Refinement centroids within this many pixels (chessboard) of a saturated
#: pixel are dropped.
SATURATION_MARGIN_PX = 2
#: Block size (pixels) of the local noise map used to rank detections.
LOCAL_NOISE_BLOCK_PX = 32
FAMILIES = ("equidistant", "equisolid", "stereographic", "orthographic")
#: A family whose starting model matches fewer first-round stars than this
#: fraction of the best family's is not refined (it never wins: on the
#: simulated small cameras such starts match 20-40 % as many stars and end
#: with twice the residual RMS).
FAMILY_KEEP_FRACTION = 0.7
#: Catalog stars this near a planet (deg) are left out: the configuration's default.
PLANET_EXCLUSION_DEG = {f.name: f.default for f in dataclasses.fields(Photometry)}[
    "planet_exclusion_deg"]


@dataclass(frozen=True)
class Solution:
    """A blind solve."""

    model: object          # CameraModel
    n_matched: int
    rms_px: float
    circle: tuple          # (x, y, radius) of the lens circle, pixels
    x: np.ndarray          # matched centroids
    y: np.ndarray
    dx: np.ndarray         # residuals (measured - model), pixels
    dy: np.ndarray
    vmag: np.ndarray


def lens_circle(image):
    """Centre and radius (pixels) of the illuminated lens circle.

    The image is block-averaged, thresholded half-way between its dark
    corners and its bright middle, and a circle is fitted (algebraic least
    squares) to the edge of the bright region where it does not touch the
    image border.
    """
    ny, nx = image.shape
    b = 8
    small = image[: ny // b * b, : nx // b * b].reshape(ny // b, b, nx // b, b).mean(axis=(1, 3))
    lo = np.percentile(small, 5)
    hi = np.percentile(small, 70)
    bright = small > 0.5 * (lo + hi)
    edge = bright & ~(np.roll(bright, 1, 0) & np.roll(bright, -1, 0)
                      & np.roll(bright, 1, 1) & np.roll(bright, -1, 1))
    edge[[0, -1], :] = False
    edge[:, [0, -1]] = False
    ys, xs = np.nonzero(edge)
    if xs.size < 20:
        raise SkyError("no lens circle found: the frame has no illuminated sky")
    X, Y = (xs + 0.5) * b - 0.5, (ys + 0.5) * b - 0.5
    a = np.column_stack([X, Y, np.ones_like(X)])
    for it in range(8):      # drop edge points of obstructions and glare, off the circle
        sol, *_ = np.linalg.lstsq(a, X ** 2 + Y ** 2, rcond=None)
        cx, cy = sol[0] / 2, sol[1] / 2
        r = np.sqrt(sol[2] + cx ** 2 + cy ** 2)
        d = np.abs(np.hypot(X - cx, Y - cy) - r)
        keep = d <= max(np.percentile(d, 80), 1.5 * b) if it < 4 else d <= 1.5 * b
        if keep.sum() < 20 or keep.all():
            break
        a, X, Y = a[keep], X[keep], Y[keep]
    return float(cx), float(cy), float(r)


def detect(image, circle, *, nmax=N_DETECT):
    """Brightest point sources inside the lens circle: x, y, flux (ADU)."""
    from allsky_camera.stages.centroid import refine
    from allsky_camera.stages.fastmedian import median_filter_fast

    ny, nx = image.shape
    cx, cy, r = circle
    yy, xx = np.ogrid[:ny, :nx]
    region = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.97 * r) ** 2
    img = image.astype(np.float32)
    bkg = median_filter_fast(img, BKG_KERNEL_PX, step=4, mask=region)
    res = np.where(region, img - bkg, 0.0)
    # detect on a 3x3 box mean: a star's peak keeps most of its signal, the
    # pixel noise drops by 3, and single hot pixels by 9
    sm = res.copy()
    sm[1:-1, 1:-1] = sum(res[1 + dy:ny - 1 + dy, 1 + dx:nx - 1 + dx]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    vals = sm[region]
    sig = 1.4826 * np.median(np.abs(vals - np.median(vals))) or 1.0   # MAD to sigma
    pad = np.pad(sm, 1, mode="constant", constant_values=-np.inf)
    peak = sm > DETECT_SIGMA * sig
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                peak &= sm >= pad[1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx]
    # not near large saturated areas (the Moon and its glare, lit buildings)
    from scipy import ndimage
    sat = img >= SATURATION_FRACTION * img.max()
    lab, nlab = ndimage.label(sat)
    if nlab:
        sizes = np.bincount(lab.ravel())[1:]
        big = np.isin(lab, np.nonzero(sizes >= GLARE_MIN_PX)[0] + 1)
        if big.any():
            peak &= ndimage.distance_transform_edt(~big) > GLARE_RADIUS_PX
    ys, xs = np.nonzero(peak & region)
    if xs.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0), res
    # rank by significance over the local noise (blocks), not by flux: glare
    # and twilight gradients are noisy, not starry
    blk = LOCAL_NOISE_BLOCK_PX
    by, bx = ny // blk, nx // blk
    cut = sm[: by * blk, : bx * blk].reshape(by, blk, bx, blk).transpose(0, 2, 1, 3)
    cut = cut.reshape(by, bx, -1)
    med = np.median(cut, axis=2)
    lnoise = 1.4826 * np.median(np.abs(cut - med[..., None]), axis=2)
    noise = lnoise[np.minimum(ys // blk, by - 1), np.minimum(xs // blk, bx - 1)]
    flux = sm[ys, xs] / np.maximum(noise, sig * 0.5)
    order = np.argsort(flux)[::-1][:nmax]
    xc, yc, _ = refine(res, xs[order].astype(float), ys[order].astype(float), box_half=3,
                       window_sigma=1.2, n_iter=10)
    ok = np.isfinite(xc) & (np.hypot(xc - xs[order], yc - ys[order]) < 2.0)
    return xc[ok], yc[ok], flux[order][ok], res


def _initial_model(family, circle, parity, rot, scale):
    from allsky_camera.camera.camera_model import CameraModel

    cx, cy, r = circle
    f = r / (np.pi / 2)              # equidistant scale that puts 90 deg on the circle
    m = CameraModel(x0=cx, y0=cy, rot_deg=float(rot), parity=int(parity),
                    projection="equidistant", coeffs=(f * scale,))
    return m if family == "equidistant" else to_family(m, family)


def to_family(model, family):
    """The closest ``family`` model to ``model`` (same radius at 60 deg zenith distance)."""
    from allsky_camera.camera.camera_model import _G

    t = np.radians(60.0)
    f = float(model.radius(60.0)) / model.scale / float(_G[family](t))
    return model.replace(projection=family, coeffs=(f,))


def unit_scale(model):
    """The same mapping with ``scale = 1``: the fitted scale folded into the coefficients.

    A template's ``scale`` is the per-exposure fit's free parameter, so a new
    camera's template starts at 1 (the astrometric gate checks ``|scale - 1|``).
    Exact: the radius is linear in the poly coefficients and in a family's ``f``.
    """
    c = tuple(float(v) for v in model.coeffs)
    if model.projection == "poly":
        c = tuple(v * model.scale for v in c)
    else:
        c = (c[0] * model.scale, *c[1:])
    return model.replace(coeffs=c, scale=1.0)


def search(det_xy, shape, alt, az, circle):
    """Best (parity, rotation, scale) hypothesis and its number of matches.

    The exhaustive equidistant-only scan (see the module docstring);
    :func:`allsky_camera.camera.blind_search.search` is the one :func:`solve` uses.
    """
    from scipy import ndimage

    ny, nx = shape
    hit = np.zeros(shape, dtype=bool)
    xi = np.clip(np.rint(det_xy[0]).astype(int), 0, nx - 1)
    yi = np.clip(np.rint(det_xy[1]).astype(int), 0, ny - 1)
    hit[yi, xi] = True
    dist = ndimage.distance_transform_edt(~hit)
    cx0, cy0, r = circle
    f0 = r / (np.pi / 2)
    zd = np.radians(90.0 - alt)
    rots = np.radians(np.arange(0.0, 360.0, ROT_STEP_DEG))
    best = (-1, None)
    offs = np.arange(-CENTRE_SEARCH_PX, CENTRE_SEARCH_PX + 1, CENTRE_STEP_PX)
    for parity, s, ox, oy in ((p, s, ox, oy) for p in (1, -1) for s in SCALE_FACTORS
                              for ox in offs for oy in offs):
        cx, cy = cx0 + ox, cy0 + oy
        if True:
            rr = f0 * s * zd                                   # (n,)
            psi = np.radians(az)[None, :] + parity * rots[:, None]   # (nrot, n)
            x = cx - parity * rr[None, :] * np.sin(psi)
            y = cy + rr[None, :] * np.cos(psi)
            ok = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
            xi = np.clip(np.rint(x).astype(int), 0, nx - 1)
            yi = np.clip(np.rint(y).astype(int), 0, ny - 1)
            score = ((dist[yi, xi] <= MATCH_TOL_PX) & ok).sum(axis=1)
            k = int(np.argmax(score))
            if score[k] > best[0]:
                best = (int(score[k]), (parity, float(np.degrees(rots[k])), float(s),
                                        float(cx), float(cy)))
    return best


#: Seeded search (:func:`search_seeded`): hypotheses kept from the vote for
#: verification, and the half-width (grid steps) of the verified neighbourhood.
SEEDED_N_VERIFY = 12
SEEDED_VERIFY_HALF = 1


def _score(near, x, y):
    """Predictions (last axis) that fall on a True pixel of ``near``."""
    ny, nx = near.shape
    xi = np.rint(x).astype(int)
    yi = np.rint(y).astype(int)
    ok = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
    return (near[np.clip(yi, 0, ny - 1), np.clip(xi, 0, nx - 1)] & ok).sum(axis=-1)


def search_seeded(det_xy, shape, x_pred, y_pred, centre, *, max_offset_px, step_px,
                  rot_step_deg=ROT_STEP_DEG, tol_px=MATCH_TOL_PX):
    """Hypothesis and verify around a known model: best rotation and zenith shift.

    The seeded variant of :func:`search`: projection, radial scale and parity
    are a model's (its predictions ``x_pred, y_pred``); only the image is
    turned about ``centre`` (every ``rot_step_deg`` over the full circle) and
    shifted (up to ``max_offset_px``).  Hypotheses come from a vote: for
    each rotation every (prediction, detection) pair votes for the shift
    that would join them, in cells of ``step_px``; the cells with most
    votes (summed over their 3x3 neighbourhood) are then verified like
    :func:`search`'s, counting the predictions within ``tol_px`` of a
    detection (a distance-map look-up each) on a finer grid around them.

    Parameters
    ----------
    det_xy : (ndarray, ndarray)
        Detected sources x, y, pixels.
    shape : tuple
        Image shape (ny, nx).
    x_pred, y_pred : ndarray
        The model's predicted positions of bright catalog stars, pixels.
    centre : (float, float)
        The model's zenith pixel; rotations are about it.
    max_offset_px, step_px : float
        Largest zenith shift searched (each axis) and the vote's cell, pixels.
    rot_step_deg, tol_px : float
        Rotation step (deg) and match tolerance (pixels).

    Returns
    -------
    score : int
        Predictions matched by the best hypothesis (-1 if none was tried).
    hypothesis : tuple or None
        ``(drot_deg, dx_px, dy_px)``: rotation (deg, +x toward +y) about
        ``centre`` and shift of the zenith (pixels) to add to the model.
    """
    from scipy import ndimage

    ny, nx = shape
    xd = np.asarray(det_xy[0], dtype=float)
    yd = np.asarray(det_xy[1], dtype=float)
    u = np.asarray(x_pred, dtype=float) - centre[0]
    v = np.asarray(y_pred, dtype=float) - centre[1]
    if xd.size == 0 or u.size == 0:
        return -1, None
    hit = np.zeros(shape, dtype=bool)
    hit[np.clip(np.rint(yd).astype(int), 0, ny - 1),
        np.clip(np.rint(xd).astype(int), 0, nx - 1)] = True
    near = ndimage.distance_transform_edt(~hit) <= tol_px
    rots = np.arange(0.0, 360.0, rot_step_deg)
    c, s = np.cos(np.radians(rots)), np.sin(np.radians(rots))
    # vote: shift joining prediction i (rotated by k) to detection j
    n_cell = int(np.ceil(max_offset_px / step_px))
    side = 2 * n_cell + 1
    votes = np.zeros((rots.size, side, side), dtype=np.int32)
    for k0 in range(0, rots.size, 90):          # chunks keep the arrays small
        ck, sk = c[k0:k0 + 90, None], s[k0:k0 + 90, None]
        px = centre[0] + ck * u - sk * v        # (nk, n)
        py = centre[1] + sk * u + ck * v
        bx = np.rint((xd[None, None, :] - px[..., None]) / step_px).astype(int) + n_cell
        by = np.rint((yd[None, None, :] - py[..., None]) / step_px).astype(int) + n_cell
        kk = np.broadcast_to(np.arange(px.shape[0])[:, None, None], bx.shape)
        inside = (bx >= 0) & (bx < side) & (by >= 0) & (by < side)
        flat = (kk[inside] * side + by[inside]) * side + bx[inside]
        votes[k0:k0 + 90] += np.bincount(flat, minlength=px.shape[0] * side * side).reshape(
            px.shape[0], side, side).astype(np.int32)
    pooled = ndimage.uniform_filter(votes.astype(np.float32), size=(3, 3, 3),
                                    mode=("wrap", "constant", "constant"))
    top = np.argsort(pooled.ravel())[::-1][:SEEDED_N_VERIFY]
    best = (-1, None)
    h = SEEDED_VERIFY_HALF
    fine_r = np.arange(-h, h + 1) * rot_step_deg
    fine_xy = np.arange(-2 * h, 2 * h + 1) * step_px / 2.0
    for t in top:
        k, iy, ix = np.unravel_index(t, votes.shape)
        for dr in fine_r:
            rot = rots[k] + dr
            cr, sr = np.cos(np.radians(rot)), np.sin(np.radians(rot))
            xr = centre[0] + cr * u - sr * v
            yr = centre[1] + sr * u + cr * v
            ox = (ix - n_cell) * step_px + fine_xy
            oy = (iy - n_cell) * step_px + fine_xy
            sc = _score(near, xr[None, None, :] + ox[None, :, None],
                        yr[None, None, :] + oy[:, None, None])      # (noy, nox)
            j = np.unravel_index(int(np.argmax(sc)), sc.shape)
            if sc[j] > best[0]:
                best = (int(sc[j]), (float(rot % 360.0), float(ox[j[1]]), float(oy[j[0]])))
    return best


def _match(image, model, alt, az, tol, *, bad=None):
    """Centroids of catalog stars near their predictions (within ``tol`` px).

    Centroids that land on a ``bad`` pixel (bool image, e.g. near saturated
    pixels: burned-in text, planets, saturated stars) are dropped.
    """
    from allsky_camera.stages.centroid import peak_search, refine

    ny, nx = image.shape
    x, y = model.altaz_to_xy(alt, az)
    on = (x > 8) & (x < nx - 9) & (y > 8) & (y < ny - 9)
    xp, yp = peak_search(image, x[on], y[on], search_half=int(np.ceil(tol)) + 1)
    xc, yc, _ = refine(image, xp, yp, box_half=3, window_sigma=1.2, n_iter=10)
    d = np.hypot(xc - x[on], yc - y[on])
    good = np.isfinite(d) & (d <= tol) & (np.hypot(xc - xp, yc - yp) < 2.0)
    if bad is not None:
        xi = np.clip(np.rint(np.nan_to_num(xc)).astype(int), 0, nx - 1)
        yi = np.clip(np.rint(np.nan_to_num(yc)).astype(int), 0, ny - 1)
        good &= ~bad[yi, xi]
    idx = np.nonzero(on)[0][good]
    return idx, xc[good], yc[good]


def refine_model(res_image, model, stars, alt, az, *, bad=None):
    """Robust refinement of ``model`` on more and more catalog stars.

    ``bad``: pixels (bool image) where a centroid is not trusted (see :func:`_match`).
    """
    from allsky_camera.stages.astrometry import fit_model

    vmag = np.asarray(stars["VMAG"], dtype=float)
    fit = None
    for vmax, tol, params in ROUNDS:
        use = vmag <= vmax
        idx, xc, yc = _match(res_image, model, alt[use], az[use], tol, bad=bad)
        if idx.size < MIN_MATCHES:
            break
        fit = fit_model(model, xc, yc, alt[use][idx], az[use][idx], params=params,
                        clip_sigma=CLIP_SIGMA, min_stars=MIN_MATCHES)
        if not fit.ok:
            break
        model = fit.model
    return model, fit


def solve(image, time, site, *, vmax=6.5, planet_exclusion_deg=None):
    """Blind solve of one clear frame.

    Parameters
    ----------
    image : ndarray
        Raw or bias-subtracted frame.
    time : ObsTime
    site : coords.Site
    vmax : float
        Faintest catalog star used in the refinement.
    planet_exclusion_deg : float, optional
        Catalog stars nearer Venus, Mars, Jupiter or Saturn than this (deg)
        are left out of the search and the fits; default the configuration's
        (``photometry.planet_exclusion_deg``).

    Returns
    -------
    Solution

    Raises
    ------
    SkyError
        No lens circle, too few stars, or no hypothesis verified.
    """
    from allsky_camera.camera import blind_search, coords
    from allsky_camera.stages import catalog

    circle = lens_circle(image)
    xd, yd, fd, res = detect(image, circle)
    if xd.size < 15:
        raise SkyError(f"only {xd.size} stars detected: the frame is not clear enough "
                       "(cloudy, twilight or empty) to calibrate on")
    stars = catalog.reference_stars(time.jd_tt, vmax)
    alt, az = coords.radec_to_altaz(stars["RA"], stars["DEC"], time, site)
    # stars next to a planet would match the planet: out of the search and the fits
    planets = coords.planets_altaz(time, site)
    clear = coords.planet_separation(alt, az, planets, min_alt_deg=MIN_ALT_DEG) > (
        PLANET_EXCLUSION_DEG if planet_exclusion_deg is None else planet_exclusion_deg)
    up = (alt > MIN_ALT_DEG) & clear
    stars, alt, az = stars[up], alt[up], az[up]
    vm = np.asarray(stars["VMAG"], dtype=float)
    bright = (vm <= SEARCH_VMAX) & (alt > SEARCH_MIN_ALT)
    score, hyp = blind_search.search((xd, yd), image.shape, alt[bright], az[bright], circle,
                                     families=FAMILIES, scales=SCALE_FACTORS,
                                     centre_search_px=CENTRE_SEARCH_PX,
                                     centre_step_px=CENTRE_STEP_PX, tol_px=MATCH_TOL_PX)
    log.info("calibrate: %d detections, %d planets up, best hypothesis %s with %d of %d "
             "bright stars", xd.size, sum(a > MIN_ALT_DEG for a, _ in planets.values()), hyp,
             score, int(bright.sum()))
    if hyp is None or score < max(8, 0.25 * bright.sum()):
        raise SkyError(f"no geometry verified ({score} of {int(bright.sum())} bright stars "
                       "matched): is the frame clear, and the site and time right?")
    m_hyp = hyp.model()
    # centroids next to saturated pixels are not trusted: 8-bit stars and planets
    # clip, and burned-in text is saturated
    from scipy import ndimage
    near_sat = ndimage.binary_dilation(image >= SATURATION_FRACTION * image.max(),
                                       iterations=SATURATION_MARGIN_PX)
    best = None
    # the searched family and the others from it (same radius at 60 deg); only
    # those whose start matches nearly as many stars as the best are refined
    starts = {f: m_hyp if f == hyp.family else to_family(m_hyp, f) for f in FAMILIES}
    v0, tol0, _ = ROUNDS[0]
    first = vm <= v0
    n0 = {f: _match(res, m, alt[first], az[first], tol0, bad=near_sat)[0].size
          for f, m in starts.items()}
    for family in sorted(starts, key=lambda f: -n0[f]):
        if n0[family] < FAMILY_KEEP_FRACTION * max(n0.values()):
            log.info("calibrate: %s: %d first-round matches of %d, not refined", family,
                     n0[family], max(n0.values()))
            continue
        model, fit = refine_model(res, starts[family], stars, alt, az, bad=near_sat)
        if fit is None or not fit.ok:
            continue
        log.info("calibrate: %s: %d stars, rms %.3f px", family, fit.n_used, fit.rms_px)
        if best is None or fit.rms_px < best[1].rms_px:
            best = (model, fit)
    if best is None:
        raise SkyError("the refinement found too few stars: the frame is not clear enough")
    model, fit = best
    model = unit_scale(model)
    # the matched set of the final model, for the diagnostics
    idx, xc, yc = _match(res, model, alt, az, ROUNDS[-1][1], bad=near_sat)
    xm, ym = model.altaz_to_xy(alt[idx], az[idx])
    keep = fit.used if fit.used.size == idx.size else np.ones(idx.size, bool)
    return Solution(model, int(fit.n_used), float(fit.rms_px), circle, xc[keep], yc[keep],
                    (xc - xm)[keep], (yc - ym)[keep], vm[idx][keep])
