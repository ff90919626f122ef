"""Per-exposure astrometric fit of the camera model.

The template in the camera's configuration predicts where catalog stars fall;
:func:`fit_model` refits chosen parameters (zenith pixel, rotation, radial
scale, tilts) on measured centroids by robust least squares: Gauss-Newton
steps with Huber weights (iteratively reweighted), then clipping of
residuals beyond ``clip_sigma`` robust standard deviations and a refit.
Only numpy is used, so the fit costs milliseconds and no import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Finite-difference steps of the Jacobian, per parameter (units of the
#: parameter: pixels, degrees, or dimensionless for the scale).
_FD_STEP = {"x0": 1e-3, "y0": 1e-3, "rot_deg": 1e-5, "scale": 1e-7,
            "tilt_n_deg": 1e-5, "tilt_e_deg": 1e-5, "k1": 1e-7, "k2": 1e-7, "k3": 1e-7}
#: Radial distortion terms that can be fitted: name -> index in ``coeffs``
#: (projections other than ``poly``: coeffs = (f, k1, k2, k3)).
_COEFF_PARAMS = {"k1": 1, "k2": 2, "k3": 3}


def _get(model, name):
    if name in _COEFF_PARAMS:
        i = _COEFF_PARAMS[name]
        return model.coeffs[i] if i < len(model.coeffs) else 0.0
    return getattr(model, name)


def with_params(model, names, values):
    """A copy of ``model`` with parameters ``names`` set (k1..k3 are radial terms)."""
    plain = {k: float(v) for k, v in zip(names, values) if k not in _COEFF_PARAMS}
    coeffs = list(model.coeffs)
    for k, v in zip(names, values):
        if k in _COEFF_PARAMS:
            i = _COEFF_PARAMS[k]
            coeffs += [0.0] * (i + 1 - len(coeffs))
            coeffs[i] = float(v)
    return model.replace(coeffs=tuple(coeffs), **plain)
#: Huber threshold in robust standard deviations (Huber 1981, the usual 1.345).
_HUBER_K = 1.345
#: MAD to standard deviation for a normal distribution.
_MAD_TO_SIGMA = 1.4826
#: Gauss-Newton iterations per clipping round, and clipping rounds.
_GN_ITERS = 8
_CLIP_ROUNDS = 3


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit_model`.

    Attributes
    ----------
    model : CameraModel
        Fitted model (the input model when the fit was not possible).
    ok : bool
        The fit ran on enough stars.
    n_used : int
        Stars kept after clipping.
    rms_px : float
        RMS of the radial residuals of the kept stars, pixels.
    used : ndarray of bool
        Which input stars were kept.
    dx, dy : ndarray
        Measured minus fitted position of every input star, pixels.
    message : str
        Why the fit was not done, or empty.
    """

    model: object
    ok: bool
    n_used: int
    rms_px: float
    used: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    message: str = ""


def residuals(model, x, y, alt, az):
    """Measured minus predicted position (pixels) for stars at (alt, az)."""
    xp, yp = model.altaz_to_xy(alt, az)
    return x - xp, y - yp


def rms(dx, dy):
    """Root mean square of the residual vector lengths (pixels)."""
    if len(dx) == 0:
        return float("nan")
    return float(np.sqrt(np.mean(dx ** 2 + dy ** 2)))


def _robust_sigma(r):
    return _MAD_TO_SIGMA * np.median(np.abs(r - np.median(r)))


def fit_model(model, x, y, alt, az, *, params, clip_sigma, min_stars):
    """Fit model parameters to measured star positions.

    Parameters
    ----------
    model : CameraModel
        Starting model (the template).
    x, y : ndarray
        Measured centroids, pixels; NaN entries are ignored.
    alt, az : ndarray
        Apparent horizontal coordinates of the same stars, deg.
    params : sequence of str
        CameraModel fields to fit.
    clip_sigma : float
        Residuals beyond this many robust sigma are dropped.
    min_stars : int
        Fewer usable stars: no fit.

    Returns
    -------
    FitResult
    """
    x, y, alt, az = (np.asarray(v, dtype=float) for v in (x, y, alt, az))
    used = np.isfinite(x) & np.isfinite(y)
    params = list(params)
    if used.sum() < max(min_stars, len(params)):
        dx, dy = residuals(model, x, y, alt, az)
        return FitResult(model, False, int(used.sum()), rms(dx[used], dy[used]), used, dx, dy,
                         f"{int(used.sum())} stars for the fit, fewer than {min_stars}")
    p = np.array([_get(model, k) for k in params], dtype=float)
    steps = np.array([_FD_STEP[k] for k in params])

    def make(pv):
        return with_params(model, params, pv)

    for _round in range(_CLIP_ROUNDS):
        idx = np.nonzero(used)[0]
        for _ in range(_GN_ITERS):
            m = make(p)
            rx, ry = residuals(m, x[idx], y[idx], alt[idx], az[idx])
            r = np.concatenate([rx, ry])
            s = max(_robust_sigma(r), 1e-3)
            w = np.minimum(1.0, _HUBER_K * s / np.maximum(np.abs(r), 1e-12))
            jac = np.empty((r.size, p.size))
            xp, yp = x[idx] - rx, y[idx] - ry
            for j in range(p.size):
                pj = p.copy()
                pj[j] += steps[j]
                xj, yj = make(pj).altaz_to_xy(alt[idx], az[idx])
                # residual = measured - predicted, so d(residual) = -d(predicted)
                jac[:, j] = -np.concatenate([xj - xp, yj - yp]) / steps[j]
            jw = jac * w[:, None]
            delta, *_ = np.linalg.lstsq(jw.T @ jac, -(jw.T @ r), rcond=None)
            p = p + delta
            if np.all(np.abs(delta) < steps):
                break
        m = make(p)
        dx, dy = residuals(m, x, y, alt, az)
        d = np.hypot(dx, dy)
        sig = _MAD_TO_SIGMA * np.median(np.abs(np.concatenate([dx[idx], dy[idx]])))
        keep = np.isfinite(d) & (d <= clip_sigma * max(sig, 1e-3) * np.sqrt(2.0))
        if np.array_equal(keep, used):
            break
        if keep.sum() < max(min_stars, len(params)):
            break
        used = keep
    m = make(p)
    dx, dy = residuals(m, x, y, alt, az)
    return FitResult(m, True, int(used.sum()), rms(dx[used], dy[used]), used, dx, dy)


def offsets_cards(template, fitted, fit, template_rms):
    """Header cards describing the template-to-fit offsets and residuals."""
    return [
        ("ASTFIT", bool(fit.ok), "astrometric model refitted on this exposure"),
        ("ASTNSTAR", fit.n_used, "stars used in the astrometric fit"),
        ("ASTRMS", round(fit.rms_px, 4), "[pix] RMS residual of the fitted model"),
        ("TPLRMS", round(template_rms, 4), "[pix] RMS residual of the static template"),
        ("DZENX", round(fitted.x0 - template.x0, 4), "[pix] fitted minus template zenith x"),
        ("DZENY", round(fitted.y0 - template.y0, 4), "[pix] fitted minus template zenith y"),
        ("DROT", round(fitted.rot_deg - template.rot_deg, 5), "[deg] fitted minus template rot"),
        ("DSCALE", round(fitted.scale / template.scale - 1.0, 7), "fitted/template radial scale-1"),
    ]


@dataclass(frozen=True)
class Solution:
    """The exposure's astrometric solution (see :func:`solve`)."""

    template: object          # CameraModel from the configuration
    model: object             # CameraModel fitted on this exposure
    fit: FitResult            # the final fit
    template_rms_px: float    # RMS residual of the template on the fit's stars
    message: str = ""


def solve(image, alt, az, candidates, camera, *, x_meas=None, y_meas=None):
    """Fit the camera model on an exposure.

    Without measured positions, the bright ``candidates`` are found near
    their template predictions: brightest smoothed pixel within
    ``astrometry.search_half_px``, then windowed centroiding, then the
    robust fit.  With ``x_meas, y_meas`` (centroids from a previous pass) the
    fit uses those.

    Parameters
    ----------
    image : ndarray
        Detrended image.
    alt, az : ndarray
        Apparent alt/az of the catalog stars, deg.
    candidates : ndarray of bool
        Stars to use (bright, isolated, inside the safe radius).
    camera : Camera
    x_meas, y_meas : ndarray, optional
        Measured centroids of all stars (NaN where unusable).

    Returns
    -------
    Solution
    """
    from . import centroid

    a = camera.astrometry
    c = camera.centroid
    template = a.model
    if x_meas is None:
        xt, yt = template.altaz_to_xy(alt[candidates], az[candidates])
        xp, yp = centroid.peak_search(image, xt, yt, search_half=a.search_half_px)
        xc, yc, conv = centroid.refine(image, xp, yp, box_half=c.box_half_px,
                                       window_sigma=c.window_sigma_px, n_iter=c.n_iter)
        xc[~conv] = np.nan
        xm, ym = xc, yc
        al, azs = alt[candidates], az[candidates]
    else:
        xm, ym = x_meas[candidates], y_meas[candidates]
        al, azs = alt[candidates], az[candidates]
    fit = fit_model(template, xm, ym, al, azs, params=a.fit_params,
                    clip_sigma=a.clip_sigma, min_stars=a.min_stars)
    tdx, tdy = residuals(template, xm, ym, al, azs)
    trms = rms(tdx[fit.used], tdy[fit.used])
    if not fit.ok:
        log.warning("astrometry: %s; keeping the template", fit.message)
    else:
        log.info("astrometry: %d stars, rms %.3f px (template %.3f px), "
                 "zenith shift (%.2f, %.2f) px, rotation %.4f deg",
                 fit.n_used, fit.rms_px, trms, fit.model.x0 - template.x0,
                 fit.model.y0 - template.y0, fit.model.rot_deg - template.rot_deg)
    return Solution(template, fit.model, fit, trms, fit.message)


def fit_candidates(vmag, isolated, clear_of_moon, r_template_px, cfg):
    """The stars that vote in the first astrometric fit.

    Bright (``vmag <= cfg.fit_vmax``), isolated on the sky, clear of the Moon,
    and predicted by the template within ``cfg.safe_radius_px`` of its zenith.

    Parameters
    ----------
    vmag : ndarray
        Catalog V, mag.
    isolated, clear_of_moon : ndarray of bool
    r_template_px : ndarray
        Distance of the template prediction from the template zenith, pixels.
    cfg : Astrometry
        The camera's astrometry settings.

    Returns
    -------
    ndarray of bool
    """
    return ((np.asarray(vmag) <= cfg.fit_vmax) & isolated & clear_of_moon
            & (np.asarray(r_template_px) <= cfg.safe_radius_px))
