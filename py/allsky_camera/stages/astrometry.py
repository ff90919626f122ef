"""Per-exposure astrometric fit of the camera model.

The template in the camera's configuration predicts where catalog stars fall;
:func:`fit_model` refits chosen parameters (zenith pixel, rotation, radial
scale, tilts) on measured centroids by robust least squares: Gauss-Newton
steps with Huber weights (iteratively reweighted), then clipping of
residuals beyond ``clip_sigma`` robust standard deviations and a refit.
Only numpy is used, so the fit costs milliseconds and no import time.

:func:`solve` accepts a model only when it passes the quality gate of
:mod:`allsky_camera.stages.astrometry_gate` (status ``FIT``); else the template
(``TEMPLATE``), else a model seeded by the recovery search of
:mod:`allsky_camera.stages.astrometry_recover` (``RECOVERED``); else ``FAILED``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from allsky_camera.stages.fastmedian import median

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
    if not any(k in _COEFF_PARAMS for k in names):
        return model.replace(**plain)         # the cheap copy, without re-validation
    coeffs = list(model.coeffs)
    for k, v in zip(names, values):
        if k in _COEFF_PARAMS:
            i = _COEFF_PARAMS[k]
            coeffs += [0.0] * (i + 1 - len(coeffs))
            coeffs[i] = float(v)
    return model.replace(coeffs=tuple(coeffs), **plain)


#: Fitted parameters that change the camera-frame angles of the stars, and
#: those that change the radial function beyond its scale.
_TILT_PARAMS = frozenset({"tilt_n_deg", "tilt_e_deg"})
#: Rotations whose sines :func:`_predictor` keeps (a Gauss-Newton step uses
#: two: the model's and the rotated Jacobian column's).
_TRIG_CACHE = 4


def _predictor(model, params, alt, az):
    """``predict(m, idx)``: ``m.altaz_to_xy(alt[idx], az[idx])`` for the
    models ``m`` that differ from ``model`` in ``params`` only.

    What those parameters cannot change is computed once: the camera-frame
    angles unless a tilt is fitted, and the unscaled radii unless a radial
    term is; the sines and cosines of the rotated azimuths once per rotation
    (a Jacobian column for x0, y0 or the scale keeps the model's).  The
    operations are those of ``altaz_to_xy``, so the positions are the same
    to the last bit.
    """
    params = set(params)
    if params & _TILT_PARAMS:
        return lambda m, idx: m.altaz_to_xy(alt[idx], az[idx])
    theta, phi = model.camera_angles(alt, az)
    r1 = None if params & _COEFF_PARAMS.keys() else model.unscaled_radius(theta)
    trig = {}       # rot_deg -> (sin, cos) of the rotated azimuths, every star

    def predict(m, idx):
        r = m.radius(theta[idx]) if r1 is None else m.scale * r1[idx]
        # most Jacobian columns keep the rotation: their sines are reused
        # (CameraModel.radial_to_xy's arithmetic, in its order)
        if m.rot_deg not in trig:
            if len(trig) >= _TRIG_CACHE:
                trig.clear()
            psi = phi + m.parity * np.radians(m.rot_deg)
            trig[m.rot_deg] = (np.sin(psi), np.cos(psi))
        sin, cos = trig[m.rot_deg]
        return m.x0 - m.parity * r * sin[idx], m.y0 + r * cos[idx]

    return predict
#: Huber threshold in robust standard deviations (Huber 1981, the usual 1.345).
_HUBER_K = 1.345
#: MAD to standard deviation for a normal distribution.
_MAD_TO_SIGMA = 1.4826
#: Gauss-Newton iterations per clipping round, and clipping rounds.
_GN_ITERS = 8
_CLIP_ROUNDS = 3
#: First passes (peak search around the model, then fit) from a recovery
#: seed: the seed is a few pixels off, the first pass halves that, the second
#: starts within a pixel.
_RECOVERY_PASSES = 2


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
    return _MAD_TO_SIGMA * median(np.abs(r - median(r)))


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
    predict = _predictor(model, params, alt, az)
    everyone = slice(None)

    def make(pv):
        return with_params(model, params, pv)

    for _round in range(_CLIP_ROUNDS):
        idx = np.nonzero(used)[0]
        for _ in range(_GN_ITERS):
            m = make(p)
            xp, yp = predict(m, idx)
            rx, ry = x[idx] - xp, y[idx] - yp
            r = np.concatenate([rx, ry])
            s = max(_robust_sigma(r), 1e-3)
            w = np.minimum(1.0, _HUBER_K * s / np.maximum(np.abs(r), 1e-12))
            jac = np.empty((r.size, p.size))
            for j in range(p.size):
                pj = p.copy()
                pj[j] += steps[j]
                xj, yj = predict(make(pj), idx)
                # residual = measured - predicted, so d(residual) = -d(predicted)
                jac[:, j] = -np.concatenate([xj - xp, yj - yp]) / steps[j]
            jw = jac * w[:, None]
            delta, *_ = np.linalg.lstsq(jw.T @ jac, -(jw.T @ r), rcond=None)
            p = p + delta
            if np.all(np.abs(delta) < steps):
                break
        m = make(p)
        xp, yp = predict(m, everyone)
        dx, dy = x - xp, y - yp
        d = np.hypot(dx, dy)
        sig = _MAD_TO_SIGMA * median(np.abs(np.concatenate([dx[idx], dy[idx]])))
        keep = np.isfinite(d) & (d <= clip_sigma * max(sig, 1e-3) * np.sqrt(2.0))
        if np.array_equal(keep, used):
            break
        if keep.sum() < max(min_stars, len(params)):
            break
        used = keep
    m = make(p)
    xp, yp = predict(m, everyone)
    dx, dy = x - xp, y - yp
    return FitResult(m, True, int(used.sum()), rms(dx[used], dy[used]), used, dx, dy)


def offsets_cards(template, fitted, fit, template_rms):
    """Header cards describing the template-to-fit offsets and residuals."""
    drot = (fitted.rot_deg - template.rot_deg + 180.0) % 360.0 - 180.0
    return [
        ("ASTFIT", bool(fit.ok), "astrometric model refitted on this exposure"),
        ("ASTNSTAR", fit.n_used, "stars used in the astrometric fit"),
        ("ASTRMS", round(fit.rms_px, 4), "[pix] RMS residual of the model used"),
        ("TPLRMS", round(template_rms, 4), "[pix] RMS residual of the static template"),
        ("DZENX", round(fitted.x0 - template.x0, 4), "[pix] fitted minus template zenith x"),
        ("DZENY", round(fitted.y0 - template.y0, 4), "[pix] fitted minus template zenith y"),
        ("DROT", round(drot, 5), "[deg] fitted minus template rot"),
        ("DSCALE", round(fitted.scale / template.scale - 1.0, 7), "fitted/template radial scale-1"),
    ]


@dataclass(frozen=True)
class Solution:
    """The exposure's astrometric solution (see :func:`solve`).

    ``status`` (the ASTSTAT card) is ``'FIT'`` (the per-exposure fit passed
    the quality gate), ``'RECOVERED'`` (the template failed the gate and the
    recovery search found the camera), ``'TEMPLATE'`` (no fit accepted, but
    the template passes the gate) or ``'FAILED'`` (nothing passes: the
    positions of the stars on this frame are unknown; ``model`` is then the
    template).  ``message`` (ASTMSG) says why.
    """

    template: object          # CameraModel from the configuration
    model: object             # CameraModel used for this exposure
    fit: FitResult            # the final fit
    template_rms_px: float    # RMS residual of the template on the fit's stars
    message: str = ""
    status: str = "FIT"       # FIT, RECOVERED, TEMPLATE or FAILED
    gate: object = None       # astrometry_gate.GateResult of the accepted (or last) model
    seed: object = None       # astrometry_recover.Seed when a recovery search ran

    @property
    def stars_known(self):
        """True unless FAILED: the model puts the stars where they are."""
        return self.status != "FAILED"

    def header_cards(self):
        """ASTSTAT, ASTMSG and the gate's cards."""
        cards = [("ASTSTAT", self.status, "astrometry FIT RECOVERED TEMPLATE FAILED"),
                 ("ASTMSG", self.message[:68], "why ASTSTAT")]
        if self.gate is not None:
            cards += self.gate.header_cards()
        if self.seed is not None:
            cards.append(("ASTRECT", round(self.seed.seconds, 3),
                          "[s] time of the recovery search"))
        return cards


def _first_pass(image, start, alt, az, camera):
    """Bright stars found near ``start``'s predictions, and the fit on them."""
    from allsky_camera.stages import centroid

    a = camera.astrometry
    c = camera.centroid
    xt, yt = start.altaz_to_xy(alt, az)
    xp, yp = centroid.peak_search(image, xt, yt, search_half=a.search_half_px)
    # a centroid still moving by more than 0.001 px after n_iter steps is kept:
    # on an undersampled camera (DCT) most bright stars are, and their
    # positions are good to a tenth of a pixel; the robust fit and the gate
    # judge them
    xc, yc, _ = centroid.refine(image, xp, yp, box_half=c.box_half_px,
                                window_sigma=c.window_sigma_px, n_iter=c.n_iter)
    fit = fit_model(start, xc, yc, alt, az, params=a.fit_params, clip_sigma=a.clip_sigma,
                    min_stars=a.min_stars)
    return xc, yc, fit


def _fit_matched(start, xm, ym, alt, az, a):
    """The fit on the stars found within ``gate_match_px`` of ``start``'s predictions."""
    dx, dy = residuals(start, xm, ym, alt, az)
    with np.errstate(invalid="ignore"):
        near = np.hypot(dx, dy) <= a.gate_match_px
    return fit_model(start, np.where(near, xm, np.nan), np.where(near, ym, np.nan), alt, az,
                     params=a.fit_params, clip_sigma=a.clip_sigma, min_stars=a.min_stars)


def solve(image, alt, az, candidates, camera, *, vmag, where="exposure"):
    """Fit the camera model on an exposure, judged by the quality gate.

    The bright ``candidates`` are found near their template predictions
    (brightest smoothed pixel within ``astrometry.search_half_px``, then
    windowed centroiding) and the model is refitted on them.  The fit is
    accepted when it passes :func:`allsky_camera.stages.astrometry_gate.evaluate`
    (``'FIT'``); else the template is, when it passes (``'TEMPLATE'``); else
    the recovery search seeds a new first pass (``'RECOVERED'`` when its
    fit passes the gate); else ``'FAILED'``.

    Parameters
    ----------
    image : ndarray
        Detrended image.
    alt, az : ndarray
        Apparent alt/az of the catalog stars, deg.
    candidates : ndarray of bool
        Stars to use (bright, isolated, inside the safe radius).
    camera : Camera
    vmag : ndarray
        V magnitudes of the catalog stars (for the gate's flux test).
    where : str
        Named in the warnings (the exposure's file name).

    Returns
    -------
    Solution
    """
    from allsky_camera.stages import astrometry_gate as gate

    a = camera.astrometry
    template = a.model
    al, azs, vm = alt[candidates], az[candidates], np.asarray(vmag, dtype=float)[candidates]
    xm, ym, fit = _first_pass(image, template, al, azs, camera)
    tdx, tdy = residuals(template, xm, ym, al, azs)
    trms = rms(tdx[fit.used], tdy[fit.used])
    g_fit = gate.evaluate(image, fit.model, xm, ym, al, azs, vm, a) if fit.ok else None
    if g_fit is not None and g_fit.ok:
        log.info("astrometry: %d stars, rms %.3f px (template %.3f px), "
                 "zenith shift (%.2f, %.2f) px, rotation %.4f deg; gate: %s",
                 fit.n_used, fit.rms_px, trms, fit.model.x0 - template.x0,
                 fit.model.y0 - template.y0, fit.model.rot_deg - template.rot_deg,
                 g_fit.message)
        return Solution(template, fit.model, fit, trms, "", "FIT", g_fit)
    why_fit = fit.message if not fit.ok else f"fit rejected: {g_fit.message}"
    g_tpl = gate.evaluate(image, template, xm, ym, al, azs, vm, a)
    if g_tpl.ok:
        # under heavy partial cloud most first-pass "stars" are noise peaks that
        # pull the fit: refit on the stars the template finds, gated again
        mfit = _fit_matched(template, xm, ym, al, azs, a)
        g_m = gate.evaluate(image, mfit.model, xm, ym, al, azs, vm, a) if mfit.ok else None
        if g_m is not None and g_m.ok:
            log.info("astrometry: %d stars found by the template refitted (first fit "
                     "rejected: %s), rms %.3f px; gate: %s", mfit.n_used, why_fit,
                     mfit.rms_px, g_m.message)
            return Solution(template, mfit.model, mfit, trms, "", "FIT", g_m)
    # no fit accepted: the cards (ASTFIT F, ASTNSTAR, ASTRMS) describe the template
    kept = dataclasses.replace(fit, model=template, ok=False, n_used=g_tpl.n_matched,
                               rms_px=g_tpl.rms_px, message=why_fit)
    if g_tpl.ok:
        log.warning("%s: astrometry: %s; the template passes the gate, keeping it",
                    where, why_fit)
        return Solution(template, template, kept, trms, why_fit, "TEMPLATE", g_tpl)
    seed = None
    last = g_fit or g_tpl
    why = f"{why_fit}; template: {g_tpl.message}"
    short = f"template: {g_tpl.message}"
    if a.recover:
        from allsky_camera.stages import astrometry_recover

        seed = astrometry_recover.seed_model(image, template, alt, az, vmag, a)
        why_rec = seed.message
        if seed.model is not None:
            start = seed.model
            for _ in range(_RECOVERY_PASSES):
                xr, yr, rfit = _first_pass(image, start, al, azs, camera)
                if not rfit.ok:
                    break
                start = rfit.model
            if rfit.ok:
                last = gate.evaluate(image, rfit.model, xr, yr, al, azs, vm, a)
                why_rec = f"recovered model rejected: {last.message}"
                if last.ok:
                    m = rfit.model
                    drot = (m.rot_deg - template.rot_deg + 180.0) % 360.0 - 180.0
                    msg = (f"template failed the gate; turned {drot:.2f} deg, shifted "
                           f"({m.x0 - template.x0:.1f}, {m.y0 - template.y0:.1f}) px")
                    log.warning("%s: astrometry RECOVERED: the template failed the gate (%s); "
                                "the camera is turned by %.3f deg and its zenith shifted by "
                                "(%.2f, %.2f) px from the template; %s", where, g_tpl.message,
                                drot, m.x0 - template.x0, m.y0 - template.y0, last.message)
                    return Solution(template, m, rfit, trms, msg, "RECOVERED", last, seed)
            else:
                why_rec = f"fit from the search's seed: {rfit.message}"
        why += f"; recovery: {why_rec}"
        short = f"recovery: {why_rec}"
    log.warning("%s: astrometry FAILED: %s. No zeropoint, transparency or clear fraction "
                "will be measured on this frame", where, why)
    return Solution(template, template, kept, trms, short, "FAILED", last, seed)


def refit(sol, image, alt, az, good, camera, x_meas, y_meas, *, vmag):
    """Final fit on every well-measured star; kept only if it passes the gate.

    Parameters
    ----------
    sol : Solution
        The first-pass solution (status FIT or RECOVERED; others are
        returned unchanged).
    image, alt, az, camera
        As for :func:`solve`.
    good : ndarray of bool
        Stars with good centroids.
    x_meas, y_meas : ndarray
        Their centroids (all stars), pixels.
    vmag : ndarray
        V magnitudes of all stars.

    Returns
    -------
    Solution
        The refitted solution, or ``sol`` when the refit is not better founded.
    """
    from allsky_camera.stages import astrometry_gate as gate

    a = camera.astrometry
    if sol.status not in ("FIT", "RECOVERED") or good.sum() < a.min_stars:
        return sol
    xm, ym, al, azs = x_meas[good], y_meas[good], alt[good], az[good]
    fit = fit_model(sol.model, xm, ym, al, azs, params=a.fit_params,
                    clip_sigma=a.clip_sigma, min_stars=a.min_stars)
    if not fit.ok:
        return sol
    g = gate.evaluate(image, fit.model, xm, ym, al, azs, np.asarray(vmag)[good], a)
    if not g.ok:
        log.warning("astrometry: the final refit on %d stars fails the gate (%s); keeping "
                    "the first-pass model", fit.n_used, g.message)
        return sol
    tdx, tdy = residuals(sol.template, xm, ym, al, azs)
    trms = rms(tdx[fit.used], tdy[fit.used])
    log.info("astrometry: final fit %d stars, rms %.3f px (template %.3f px), zenith shift "
             "(%.2f, %.2f) px, rotation %.4f deg", fit.n_used, fit.rms_px, trms,
             fit.model.x0 - sol.template.x0, fit.model.y0 - sol.template.y0,
             fit.model.rot_deg - sol.template.rot_deg)
    return Solution(sol.template, fit.model, fit, trms, sol.message, sol.status, g, sol.seed)


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

