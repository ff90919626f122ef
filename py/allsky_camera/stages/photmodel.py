"""The camera's photometric model: what a star gives on a clear night.

The expected instrumental magnitude of a star (``-2.5 log10`` of its total
flux in ADU/s) is

    m = V - ZP + k (X - 1) + c (B - V) + c2 (B - V - 0.6)^2 + v(zd) + t(zd, az) + e(zd, az)

with

* ``ZP`` the total-flux zeropoint at the zenith (X = 1), mag for 1 ADU/s;
* ``X`` the airmass of the star's apparent (refracted) zenith distance,
  Kasten & Young (1989), :func:`airmass`;
* ``k`` the atmospheric extinction, mag per airmass;
* ``c`` the colour term, mag per mag of B-V (the camera's band against V),
  the slope at B-V = 0.6 when ``c2`` is not zero;
* ``c2`` the colour response's curvature, mag per mag^2, about B-V = 0.6
  (:data:`COLOUR_PIVOT_BV`): an unfiltered CCD's band is not V, and its
  magnitude is not linear in B-V over B to M stars;
* ``v(zd)`` the lens throughput (vignetting), mag, an even polynomial in
  ``zd / 90 deg`` with no constant term, so zero at the zenith:
  ``v = sum_j a_j (zd / 90)^(2 j)``, ``j = 1, 2, ...``;
* ``t(zd, az)`` the vignetting's tilt, mag: ``(zd / 90) (t_n cos az + t_e sin az)``
  with the azimuth from north through east.  A lens whose throughput is
  centred off the zenith (a decentred or tilted lens, or an optical axis off
  the zenith pixel) adds to the radial ``v`` a term linear in the pixel offset
  from the zenith, ``-grad v . d``: to first order a dipole growing with the
  zenith distance (on the DCT camera 0.19 mag toward the north at zd 90);
* ``e(zd, az)`` the vignetting's ellipticity, mag:
  ``(zd / 90)^2 (e_c cos 2 az + e_s sin 2 az)``.  A quadratic loss ``a rho^2``
  whose contours are ellipses, ``rho^2 = r^2 (1 + eps cos 2 (az - az0))``,
  is ``a r^2`` plus exactly this term with ``(e_c, e_s) = a eps (cos 2 az0,
  sin 2 az0)`` (on the DCT camera -0.2 mag: the north-south line reads
  brighter than the east-west one, the same on two nights).

``c``, ``c2``, ``v``, ``t`` and ``e`` are camera properties (measured once on clear frames by
``ac_calibrate.py``, :func:`calibrate_terms`); ``ZP`` and ``k`` are fitted on
every exposure (:func:`fit_exposure`), ``k`` only when enough clear stars span
enough airmass, else the site's default is used and the fit says so.

Note on degeneracy: ``k (X - 1)`` and an even polynomial in the zenith
distance are nearly the same function of the zenith distance, so one frame
cannot tell extinction from vignetting.  The calibration therefore holds ``k``
at the site's default and puts the rest into ``v``; a per-exposure ``k`` then
measures the night's extinction relative to that default.

Zenith distances are in degrees, magnitudes in mag.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from allsky_camera.exceptions import ConfigError

log = logging.getLogger(__name__)

#: Kasten & Young (1989, Applied Optics 28, 4735), eq. 3: relative optical
#: airmass ``X = 1 / (cos z + A (B - z)^-C)`` with z the apparent zenith
#: distance in degrees.
KY_A = 0.50572
KY_B_DEG = 96.07995
KY_C = 1.6364
#: MAD to standard deviation for a normal distribution.
MAD_TO_SIGMA = 1.4826
#: Smallest robust scatter (mag) used for clipping, so that a fit on a few
#: noiseless stars does not clip everything.
MIN_CLIP_SIGMA_MAG = 0.01
#: Iterations of the clipped fits (they usually converge in 3-5).
MAX_ROUNDS = 10
#: Passes of the cloud test of :func:`fit_exposure` (each refits without the
#: stars whose neighbours read faint; it usually settles after one or two).
MAX_CLOUD_PASSES = 3
#: B-V about which the colour curvature ``c2`` is taken, mag: about the median
#: colour of the V < 5 stars of the Hipparcos catalog (0.5-0.7), so that ``c``
#: stays the colour term of a typical star.
COLOUR_PIVOT_BV = 0.6


def airmass(zd_deg):
    """Relative optical airmass of Kasten & Young (1989).

    Parameters
    ----------
    zd_deg : array_like
        Apparent (refracted) zenith distance, deg, 0-90.

    Returns
    -------
    ndarray
        Airmass (1 at the zenith, ~38 at the horizon); NaN outside 0-90 deg.
    """
    z = np.asarray(zd_deg, dtype=float)
    ok = (z >= 0.0) & (z <= 90.0)
    zc = np.where(ok, z, 0.0)
    x = 1.0 / (np.cos(np.radians(zc)) + KY_A * (KY_B_DEG - zc) ** (-KY_C))
    return np.where(ok, x, np.nan)


def vignetting_mag(zd_deg, coeffs):
    """Lens throughput loss (mag) ``sum_j a_j (zd/90)^(2j)``, zero at the zenith.

    Parameters
    ----------
    zd_deg : array_like
        Zenith distance, deg.
    coeffs : sequence of float
        ``(a_1, a_2, ...)``, mag: the coefficients of ``(zd/90)^2``,
        ``(zd/90)^4``, ...  Empty: no vignetting.
    """
    q = (np.asarray(zd_deg, dtype=float) / 90.0) ** 2
    out = np.zeros(q.shape)
    for j, a in enumerate(coeffs, start=1):
        out = out + a * q ** j
    return out


def tilt_mag(zd_deg, az_deg, tilt):
    """The vignetting's tilt ``(zd/90) (t_n cos az + t_e sin az)``, mag.

    Parameters
    ----------
    zd_deg, az_deg : array_like
        Zenith distance and azimuth (from north through east), deg.
    tilt : sequence of float
        ``(t_n, t_e)``, mag at zd = 90 deg toward north and east; empty: no
        tilt (then ``az_deg`` may be None).
    """
    zd = np.asarray(zd_deg, dtype=float)
    if len(tilt) == 0:
        return np.zeros(zd.shape)
    if len(tilt) != 2:
        raise ConfigError(f"vignetting_tilt {tuple(tilt)}: give two values [t_n, t_e], mag")
    if az_deg is None:
        raise ValueError("tilt_mag: the vignetting tilt needs the stars' azimuths (az_deg)")
    az = np.radians(np.asarray(az_deg, dtype=float))
    return zd / 90.0 * (tilt[0] * np.cos(az) + tilt[1] * np.sin(az))


def ellipse_mag(zd_deg, az_deg, ellipse):
    """The vignetting's ellipticity ``(zd/90)^2 (e_c cos 2az + e_s sin 2az)``, mag.

    Parameters
    ----------
    zd_deg, az_deg : array_like
        Zenith distance and azimuth (from north through east), deg.
    ellipse : sequence of float
        ``(e_c, e_s)``, mag at zd = 90 deg; empty: none (then ``az_deg`` may
        be None).
    """
    zd = np.asarray(zd_deg, dtype=float)
    if len(ellipse) == 0:
        return np.zeros(zd.shape)
    if len(ellipse) != 2:
        raise ConfigError(f"vignetting_ellipse {tuple(ellipse)}: give two values [e_c, e_s], "
                          "mag")
    if az_deg is None:
        raise ValueError("ellipse_mag: the vignetting ellipticity needs the stars' azimuths "
                         "(az_deg)")
    az2 = 2.0 * np.radians(np.asarray(az_deg, dtype=float))
    return (zd / 90.0) ** 2 * (ellipse[0] * np.cos(az2) + ellipse[1] * np.sin(az2))


def colour_mag(bv, c, c2=0.0):
    """The colour response ``c (B-V) + c2 (B-V - COLOUR_PIVOT_BV)^2``, mag."""
    bv = np.asarray(bv, dtype=float)
    out = c * bv
    return out + c2 * (bv - COLOUR_PIVOT_BV) ** 2 if c2 else out


def camera_terms_mag(bv, zd_deg, az_deg, cfg):
    """Colour response, vignetting, its tilt and ellipticity of the camera ``cfg``, mag.

    ``cfg`` is a :class:`~allsky_camera.config.Photometry` or a
    :class:`PhotModel` (``colour_term``, ``colour_quad``, ``vignetting``,
    ``vignetting_tilt``, ``vignetting_ellipse``).
    """
    return (colour_mag(bv, cfg.colour_term, cfg.colour_quad)
            + vignetting_mag(zd_deg, cfg.vignetting)
            + tilt_mag(zd_deg, az_deg, cfg.vignetting_tilt)
            + ellipse_mag(zd_deg, az_deg, cfg.vignetting_ellipse))


def colour_or_mean(bv, mean_bv):
    """B-V with missing colours (NaN) replaced by ``mean_bv``."""
    bv = np.asarray(bv, dtype=float)
    return np.where(np.isfinite(bv), bv, mean_bv)


@dataclass(frozen=True)
class PhotModel:
    """A photometric model, see the module docstring.

    Attributes
    ----------
    zp : float
        Total-flux zeropoint at the zenith (X = 1), mag for 1 ADU/s.
    k : float
        Extinction, mag per airmass.
    colour_term : float
        c, mag per mag of B-V.
    vignetting : tuple of float
        Coefficients of ``(zd/90)^2, (zd/90)^4, ...``, mag.
    colour_quad : float
        c2, mag per mag^2 of ``(B-V - COLOUR_PIVOT_BV)``.
    vignetting_tilt : tuple of float
        ``(t_n, t_e)``, mag (:func:`tilt_mag`); empty: none.
    vignetting_ellipse : tuple of float
        ``(e_c, e_s)``, mag (:func:`ellipse_mag`); empty: none.
    """

    zp: float
    k: float
    colour_term: float = 0.0
    vignetting: tuple = ()
    colour_quad: float = 0.0
    vignetting_tilt: tuple = ()
    vignetting_ellipse: tuple = ()

    def expected_mag(self, vmag, bv, zd_deg, az_deg=None):
        """Expected instrumental magnitude ``-2.5 log10(total ADU/s)``.

        ``bv`` NaN gives NaN; replace missing colours first
        (:func:`colour_or_mean`) when a value is needed anyway.  ``az_deg``
        (deg, from north through east) is needed when the model has a
        vignetting tilt.
        """
        x = airmass(zd_deg)
        return (np.asarray(vmag, dtype=float) - self.zp + self.k * (x - 1.0)
                + camera_terms_mag(bv, zd_deg, az_deg, self))

    def expected_flux(self, vmag, bv, zd_deg, exptime, az_deg=None):
        """Expected total flux in the exposure, ADU."""
        return 10.0 ** (-0.4 * self.expected_mag(vmag, bv, zd_deg, az_deg)) * exptime


@dataclass(frozen=True)
class ModelFit:
    """The model fitted on one exposure (see :func:`fit_exposure`).

    Attributes
    ----------
    model : PhotModel
        ``zp`` and ``k`` of this exposure, ``c`` and ``v`` of the camera.
    zp_err, k_err : float
        1-sigma errors (mag, mag/airmass); ``k_err`` NaN when ``k`` is the
        default.
    k_source : str
        ``'fitted'`` or ``'default'``.
    k_why : str
        Why the default was used (empty when fitted).
    colour_term_err : float
        The camera's colour-term error (from the configuration), mag/mag.
    rms_mag : float
        Robust scatter of the used stars about the model, mag.
    n_used : int
        Stars kept by the clipping.
    airmass_span : float
        Range of airmass of the candidate stars (10th to 90th percentile).
    used : ndarray of bool
        Stars kept, over the input arrays.
    residual : ndarray
        ``m_inst - model`` for every input star, mag (NaN where unmeasured).
    message : str
        Why there is no fit, or empty.
    k_err_apcor : float
        The part of ``k_err`` that comes from the aperture correction's slope
        (:func:`with_apcor_slope_error`), mag/airmass; 0 when not added.
    n_clouded : int
        Candidate stars left out because their neighbours read fainter than
        the model (:func:`allsky_camera.stages.photcloud.clouded`).
    """

    model: PhotModel
    zp_err: float
    k_err: float
    k_source: str
    k_why: str
    colour_term_err: float
    rms_mag: float
    n_used: int
    airmass_span: float
    used: np.ndarray = field(repr=False)
    residual: np.ndarray = field(repr=False)
    message: str = ""
    k_err_apcor: float = 0.0
    n_clouded: int = 0

    @property
    def ok(self):
        """True when a zeropoint was fitted."""
        return bool(np.isfinite(self.model.zp))

    def header_cards(self):
        """``(keyword, value, comment)`` cards for the catalog header."""
        m = self.model
        cards = [
            ("EXTCOEF", _r(m.k), "[mag/airmass] extinction k"),
            ("EXTERR", _r(self.k_err), "[mag/airmass] EXTCOEF error incl. APCORB's"),
            ("EXTSRC", self.k_source, "EXTCOEF fitted on this frame or site default"),
            ("COLTERM", _r(m.colour_term), "[mag/mag] colour term c (B-V), camera"),
            ("COLTERR", _r(self.colour_term_err), "[mag/mag] 1-sigma error of COLTERM"),
            ("COLQUAD", _r(m.colour_quad), "[mag/mag^2] colour curvature, (B-V-0.6)^2"),
            ("PMNSTAR", self.n_used, "stars used for the photometric model fit"),
            ("PMNCLOUD", self.n_clouded, "model stars left out: neighbours read faint"),
            ("PMRMS", _r(self.rms_mag), "[mag] robust scatter about the model"),
            ("PMXSPAN", _r(self.airmass_span), "airmass span (10-90 %) of the fit stars"),
        ]
        for j, a in enumerate(m.vignetting, start=1):
            cards.append((f"VIGN{2 * j}", _r(a), f"[mag] vignetting coeff of (zd/90)^{2 * j}"))
        for key, a, toward in zip(("VIGNTN", "VIGNTE"), m.vignetting_tilt, ("north", "east")):
            cards.append((key, _r(a), f"[mag] vignetting tilt toward {toward}, zd 90"))
        for key, a, term in zip(("VIGNEC", "VIGNES"), m.vignetting_ellipse, ("cos", "sin")):
            cards.append((key, _r(a), f"[mag] vignetting ellipse, {term} 2az at zd 90"))
        if self.k_why:
            cards.append(("EXTMSG", self.k_why[:68], "why EXTCOEF is the default"))
        return cards


def _r(v, nd=4):
    return round(float(v), nd) if np.isfinite(v) else float("nan")


def _robust_sigma(res):
    return max(MAD_TO_SIGMA * float(np.median(np.abs(res - np.median(res)))),
               MIN_CLIP_SIGMA_MAG)


def _clipped_lstsq(design, y, err, *, clip_sigma, faint_clip_mag, min_rows):
    """Weighted least squares of ``y ~ design @ p``, clipping outliers and faint stars.

    Rows are weighted by ``1 / err^2``.  Starts from the weighted median of
    ``y`` (first column a constant, the others at 0), then keeps the rows
    whose normalised residual ``res / err`` lies within ``clip_sigma`` of its
    robust scatter and that are not more than ``faint_clip_mag`` fainter
    (larger ``y``) than the fit: a clouded star is faint, and must not drag
    the fit.

    Returns ``(params, cov, keep, sigma)``: ``cov`` scaled by the reduced
    chi-square (so it holds when ``err`` is under-estimated), ``sigma`` the
    robust scatter of the kept residuals in mag; ``params`` NaN when fewer
    than ``min_rows`` rows survive.
    """
    n, npar = design.shape
    nan = (np.full(npar, np.nan), np.full((npar, npar), np.nan))
    if n == 0:
        return (*nan, np.zeros(0, bool), np.nan)
    w = 1.0 / err ** 2
    p = np.zeros(npar)
    order = np.argsort(y)
    cw = np.cumsum(w[order])
    p[0] = float(y[order][np.searchsorted(cw, 0.5 * cw[-1])])
    keep = np.ones(n, dtype=bool)
    scale = _robust_sigma((y - p[0]) / err)
    for _ in range(MAX_ROUNDS):
        res = y - design @ p
        new = (np.abs(res / err) <= clip_sigma * scale) & (res <= faint_clip_mag)
        if new.sum() < min_rows:
            break
        sw = np.sqrt(w[new])
        p, *_ = np.linalg.lstsq(design[new] * sw[:, None], y[new] * sw, rcond=None)
        scale = _robust_sigma(((y - design @ p) / err)[new])
        if np.array_equal(new, keep):
            break
        keep = new
    res = y - design @ p
    keep = (np.abs(res / err) <= clip_sigma * scale) & (res <= faint_clip_mag)
    if keep.sum() < min_rows:
        return (*nan, keep, np.nan)
    sw = np.sqrt(w[keep])
    a = design[keep] * sw[:, None]
    p, *_ = np.linalg.lstsq(a, y[keep] * sw, rcond=None)
    r = (y - design @ p)[keep]
    dof = max(int(keep.sum()) - npar, 1)
    chi2 = float(np.sum(r ** 2 * w[keep])) / dof
    cov = np.linalg.pinv(a.T @ a) * max(chi2, 1.0)
    return p, cov, keep, _robust_sigma(r)


def fit_exposure(m_inst, vmag, bv, zd_deg, sel, *, cfg, m_err=None, az_deg=None):
    """Fit the exposure's zeropoint and extinction, the camera's c and v fixed.

    A clipped weighted least-squares fit (:func:`_clipped_lstsq`) of
    ``m_inst - V - camera terms = -ZP + k (X - 1)``, then a cloud test: the
    stars whose neighbourhood (``cfg.model_cloud_radius_deg``) reads
    significantly fainter than that fit (:func:`allsky_camera.stages.photcloud.clouded`)
    are left out and the fit is made again, until the stars left out settle
    (at most :data:`MAX_CLOUD_PASSES` times; needs ``az_deg``).  A clear
    frame normally leaves no star out and keeps the first fit.

    Parameters
    ----------
    m_inst : ndarray
        Measured instrumental magnitude of the total flux,
        ``-2.5 log10(ADU/s)``; NaN where not measured.
    vmag, bv : ndarray
        Catalog V and B-V (NaN: no colour; such stars are not used).
    zd_deg : ndarray
        Apparent zenith distance, deg.
    sel : ndarray of bool
        Candidate stars (good flags, bright enough).
    az_deg : ndarray, optional
        Azimuth (from north through east), deg; needed when
        ``cfg.vignetting_tilt`` is set, and by the cloud test (without it
        there is none).
    m_err : ndarray, optional
        1-sigma measurement error of ``m_inst``, mag; each star weighs
        ``1 / (m_err^2 + model_floor_mag^2)``.  Default: equal weights.
    cfg : Photometry
        ``ext_coef`` (site default k), ``colour_term``, ``colour_term_err``,
        ``colour_quad``, ``vignetting``, ``vignetting_tilt``,
        ``vignetting_ellipse``, and the fit's settings ``model_clip_sigma``,
        ``model_faint_clip_mag``, ``ext_min_stars``, ``ext_min_airmass_span``,
        ``min_stars_zp``, and the cloud test's ``model_cloud_radius_deg`` (0:
        off), ``model_cloud_sigma``, ``model_cloud_min_mag``,
        ``model_cloud_min_stars``.

    Returns
    -------
    ModelFit
    """
    m_inst, vmag, bv, zd = (np.asarray(a, dtype=float) for a in (m_inst, vmag, bv, zd_deg))
    x = airmass(zd)
    base = camera_model(np.nan, cfg.ext_coef, cfg)
    cand = (np.asarray(sel, bool) & np.isfinite(m_inst) & np.isfinite(bv) & np.isfinite(x)
            & np.isfinite(vmag))
    # y = -ZP + k (X - 1): everything but the zeropoint and extinction moved over
    y = m_inst - vmag - camera_terms_mag(bv, zd, az_deg, cfg)
    err = np.full(m_inst.shape, cfg.model_floor_mag) if m_err is None else np.hypot(
        np.asarray(m_err, dtype=float), cfg.model_floor_mag)
    cand &= np.isfinite(err) & (err > 0)
    idx = np.nonzero(cand)[0]
    n = idx.size
    empty = np.zeros(m_inst.shape, bool)
    if n < cfg.min_stars_zp:
        span = _span(x[idx])
        msg = f"{n} usable stars, fewer than {cfg.min_stars_zp}: no photometric model"
        return ModelFit(base, np.nan, np.nan, "default", msg, cfg.colour_term_err, np.nan, n,
                        span, empty, np.full(m_inst.shape, np.nan), msg)
    res = _fit_zp_k(x[idx], y[idx], err[idx], cfg)
    out = np.zeros(n, bool)              # over idx: left out as clouded
    if az_deg is not None and cfg.model_cloud_radius_deg > 0:
        from allsky_camera.stages import photcloud

        near = photcloud.neighbours(zd[idx], np.asarray(az_deg, dtype=float)[idx],
                                    cfg.model_cloud_radius_deg)
        for _ in range(MAX_CLOUD_PASSES):
            if not np.isfinite(res.zp):
                break
            r = y[idx] - (-res.zp + res.k * (x[idx] - 1.0))
            new = photcloud.clouded(r, near, n_sigma=cfg.model_cloud_sigma,
                                    min_mag=cfg.model_cloud_min_mag,
                                    min_stars=cfg.model_cloud_min_stars)
            if np.array_equal(new, out) or (~new).sum() < cfg.min_stars_zp:
                break
            out = new
            res = _fit_zp_k(x[idx[~out]], y[idx[~out]], err[idx[~out]], cfg)
            if out.any():
                log.info("photmodel: %d stars left out: their neighbours read fainter "
                         "than the model (clouds)", int(out.sum()))
    kept = idx[~out]
    model = camera_model(res.zp, res.k, cfg)
    used = empty.copy()
    used[kept[res.keep]] = True
    resid = m_inst - model.expected_mag(vmag, bv, zd, az_deg)
    msg = "" if np.isfinite(res.zp) else "the clipped fit kept too few stars: no zeropoint"
    if res.why:
        log.info("photmodel: extinction held at the default %.3f: %s", res.k, res.why)
    return ModelFit(model, res.zp_err, res.k_err, res.src, res.why, cfg.colour_term_err,
                    float(res.sig), int(res.keep.sum()), _span(x[kept]), used, resid, msg,
                    n_clouded=int(out.sum()))


def _span(x):
    """Airmass span (10th to 90th percentile) of ``x``; NaN when empty."""
    return float(np.subtract(*np.percentile(x, [90, 10]))) if x.size else float("nan")


@dataclass(frozen=True)
class _ZpK:
    """One pass of :func:`_fit_zp_k`: zeropoint and extinction, see :class:`ModelFit`."""

    zp: float
    zp_err: float
    k: float
    k_err: float
    src: str
    why: str
    keep: np.ndarray
    sig: float


def _fit_zp_k(x, y, e, cfg):
    """Fit ``y = -ZP + k (X - 1)`` on candidate stars: k when they allow, else ZP alone.

    Parameters
    ----------
    x, y, e : ndarray
        Airmass, ``m_inst - V - camera terms`` (mag) and its 1-sigma error
        (mag) of the candidate stars.
    cfg : Photometry

    Returns
    -------
    _ZpK
        ``keep`` over the candidates; ``k`` the default and ``why`` said
        when the extinction could not be fitted.
    """
    n = x.size
    span = _span(x)
    why = ""
    if n < cfg.ext_min_stars:
        why = f"{n} stars, fewer than {cfg.ext_min_stars}"
    elif not span >= cfg.ext_min_airmass_span:
        why = f"airmass span {span:.2f}, less than {cfg.ext_min_airmass_span:g}"
    kw = dict(clip_sigma=cfg.model_clip_sigma, faint_clip_mag=cfg.model_faint_clip_mag)
    ones = np.ones(n)
    k, k_err, src = cfg.ext_coef, float("nan"), "default"
    if not why:
        # fit the change from the default, which the start assumes
        p, cov, keep, sig = _clipped_lstsq(np.stack([ones, x - 1.0], axis=1),
                                           y - k * (x - 1.0), e,
                                           min_rows=cfg.ext_min_stars, **kw)
        if np.all(np.isfinite(p)):
            # the clipped stars must still span the airmass
            span_kept = _span(x[keep])
            if span_kept >= cfg.ext_min_airmass_span:
                zp, k, src = -float(p[0]), k + float(p[1]), "fitted"
                zp_err, k_err = float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))
            else:
                why = f"clear stars span airmass {span_kept:.2f} only"
        else:
            why = f"fewer than {cfg.ext_min_stars} stars left after clipping"
    if src == "default":
        p, cov, keep, sig = _clipped_lstsq(ones[:, None], y - k * (x - 1.0), e,
                                           min_rows=cfg.min_stars_zp, **kw)
        zp, zp_err = -float(p[0]), float(np.sqrt(cov[0, 0]))
    return _ZpK(zp, zp_err, float(k), k_err, src, why, keep, float(sig))


def with_apcor_slope_error(fit, zd_deg, b_err):
    """``fit`` with the aperture correction's slope error added to ``k_err``.

    The total magnitudes that fit ``k`` are the aperture magnitudes less
    ``a + b (zd/90)^2``; an error ``db`` of the slope b moves them by
    ``-db q`` (``q = (zd/90)^2``), and the fitted k by ``-s db``, with ``s``
    the weighted regression slope of ``q`` on ``X - 1`` over the stars the fit
    used (a least-squares fit is linear in its data; equal weights: the fit's
    own are not kept).  That is added in quadrature.

    Parameters
    ----------
    fit : ModelFit
    zd_deg : ndarray
        Zenith distance of the fit's input stars, deg.
    b_err : float
        1-sigma error of the aperture correction's slope b, mag.

    Returns
    -------
    ModelFit
        Unchanged when k is the site default or ``b_err`` is not finite.
    """
    import dataclasses

    if fit.k_source != "fitted" or not np.isfinite(b_err) or fit.used.sum() < 3:
        return fit
    zd = np.asarray(zd_deg, dtype=float)[fit.used]
    x1, q = airmass(zd) - 1.0, (zd / 90.0) ** 2
    xc = x1 - x1.mean()
    s = float(np.sum(xc * (q - q.mean())) / np.sum(xc * xc))
    part = abs(s) * float(b_err)
    return dataclasses.replace(fit, k_err=float(np.hypot(fit.k_err, part)), k_err_apcor=part)


@dataclass(frozen=True)
class CameraTerms:
    """The camera's photometric terms measured on clear frames.

    Attributes
    ----------
    zp : float
        Clear-sky total-flux zeropoint at the zenith, mag for 1 ADU/s
        (mean over the frames).
    colour_term, colour_term_err : float
        c and its 1-sigma error, mag per mag of B-V.
    vignetting : tuple of float
        Coefficients of ``(zd/90)^2, (zd/90)^4, ...``, mag.
    colour_quad : float
        c2, mag per mag^2 (0 when not fitted).
    vignetting_tilt : tuple of float
        ``(t_n, t_e)``, mag (empty when not fitted).
    vignetting_ellipse : tuple of float
        ``(e_c, e_s)``, mag (empty when not fitted).
    k : float
        The extinction held fixed, mag/airmass.
    rms_mag : float
        Robust scatter of the used stars about the model, mag.
    n_used : int
        Stars used (all frames).
    zp_frames : tuple of float
        Zeropoint of each frame.
    """

    zp: float
    colour_term: float
    colour_term_err: float
    vignetting: tuple
    k: float
    rms_mag: float
    n_used: int
    zp_frames: tuple
    colour_quad: float = 0.0
    vignetting_tilt: tuple = ()
    vignetting_ellipse: tuple = ()


def calibrate_terms(frames, *, k, n_vignetting, clip_sigma, faint_clip_mag, min_stars,
                    floor_mag=0.0, colour_quad=False, tilt=False, ellipse=False):
    """Fit the camera's colour terms and vignetting on one or more clear frames.

    Each frame gets its own zeropoint; the colour terms, the vignetting
    polynomial and its tilt are shared; the extinction is held at ``k`` (see
    the module docstring for why).

    Parameters
    ----------
    frames : sequence of tuple
        ``(m_inst, vmag, bv, zd_deg, sel)``, ``(m_inst, vmag, bv, zd_deg,
        sel, m_err)`` or ``(m_inst, vmag, bv, zd_deg, sel, m_err, az_deg)``
        per frame, as in :func:`fit_exposure` (``m_err`` None: equal
        weights; ``az_deg`` is needed with ``tilt`` or ``ellipse``).
    k : float
        Extinction held fixed, mag/airmass.
    n_vignetting : int
        Number of even-polynomial terms of v (0: none).
    colour_quad : bool
        Fit the colour curvature c2 too.
    tilt : bool
        Fit the vignetting's tilt ``(t_n, t_e)`` too.
    ellipse : bool
        Fit the vignetting's ellipticity ``(e_c, e_s)`` too.
    clip_sigma, faint_clip_mag : float
        Clipping (see :func:`fit_exposure`).
    min_stars : int
        Fewest stars for a fit.
    floor_mag : float
        Added in quadrature to ``m_err`` (equal weights without ``m_err``).

    Returns
    -------
    CameraTerms

    Raises
    ------
    ConfigError
        Too few usable stars (name the frames in the caller's message).
    """
    rows, ys, which, errs = [], [], [], []
    nf = len(frames)
    for i, frame in enumerate(frames):
        m_inst, vmag, bv, zd = (np.asarray(a, dtype=float) for a in frame[:4])
        sel = frame[4]
        m_err = (np.hypot(np.asarray(frame[5], dtype=float), floor_mag)
                 if len(frame) > 5 and frame[5] is not None
                 else np.full(m_inst.shape, max(floor_mag, MIN_CLIP_SIGMA_MAG)))
        if (tilt or ellipse) and (len(frame) < 7 or frame[6] is None):
            raise ValueError(f"calibrate_terms: frame {i} has no azimuths: the tilt and the "
                             "ellipticity need them")
        x = airmass(zd)
        ok = (np.asarray(sel, bool) & np.isfinite(m_inst) & np.isfinite(bv) & np.isfinite(x)
              & np.isfinite(vmag) & np.isfinite(m_err) & (m_err > 0))
        errs.append(m_err[ok])
        q = (zd[ok] / 90.0) ** 2
        onehot = np.zeros((ok.sum(), nf))
        onehot[:, i] = 1.0
        cols = [onehot, bv[ok][:, None]]
        if colour_quad:
            cols.append((bv[ok][:, None] - COLOUR_PIVOT_BV) ** 2)
        cols += [q[:, None] ** j for j in range(1, n_vignetting + 1)]
        az = np.radians(np.asarray(frame[6], dtype=float)[ok]) if tilt or ellipse else None
        if tilt:
            cols += [(zd[ok] / 90.0 * np.cos(az))[:, None], (zd[ok] / 90.0 * np.sin(az))[:, None]]
        if ellipse:
            cols += [(q * np.cos(2.0 * az))[:, None], (q * np.sin(2.0 * az))[:, None]]
        rows.append(np.hstack(cols))
        ys.append(m_inst[ok] - vmag[ok] - k * (x[ok] - 1.0))
        which.append(np.full(ok.sum(), i))
    design, y, err = np.vstack(rows), np.concatenate(ys), np.concatenate(errs)
    if y.size < min_stars:
        raise ConfigError(f"{y.size} usable stars on the calibration frames, fewer than "
                          f"{min_stars}: calibrate on clear frames")
    # the clipped fit wants a constant first column: subtract each frame's median
    med = np.array([np.median(y[np.concatenate(which) == i]) for i in range(nf)])
    w = np.concatenate(which)
    y0 = y - med[w]
    p, cov, keep, sig = _clipped_lstsq(np.hstack([np.ones((y.size, 1)), design[:, 1:]])
                                       if nf == 1 else design, y0, err, clip_sigma=clip_sigma,
                                       faint_clip_mag=faint_clip_mag, min_rows=min_stars)
    if not np.all(np.isfinite(p)):
        raise ConfigError("the calibration fit kept too few stars: calibrate on clear frames")
    zps = -(p[:nf] + med)
    c, c_err = float(p[nf]), float(np.sqrt(cov[nf, nf]))
    j = nf + 1
    c2 = float(p[j]) if colour_quad else 0.0
    j += int(colour_quad)
    vig = tuple(float(v) for v in p[j:j + n_vignetting])
    j += n_vignetting
    t = tuple(float(v) for v in p[j:j + 2]) if tilt else ()
    j += 2 * int(tilt)
    e = tuple(float(v) for v in p[j:j + 2]) if ellipse else ()
    return CameraTerms(float(np.mean(zps)), c, c_err, vig, float(k), float(sig),
                       int(keep.sum()), tuple(float(z) for z in zps), c2, t, e)


def clear_sky_model(zp_clear, fit, cfg):
    """The model of this exposure on a clear night.

    Parameters
    ----------
    zp_clear : float
        The camera's clear-sky total-flux zeropoint at the zenith, mag for
        1 ADU/s.
    fit : ModelFit or None
        The exposure's fit: its extinction is used when it was fitted (the
        night's air is not cloud), else the site default.
    cfg : Photometry

    Returns
    -------
    PhotModel
    """
    k = fit.model.k if fit is not None and fit.k_source == "fitted" else cfg.ext_coef
    return camera_model(float(zp_clear), float(k), cfg)


def camera_model(zp, k, cfg):
    """:class:`PhotModel` of zeropoint ``zp`` and extinction ``k`` with the
    camera terms of ``cfg`` (a :class:`~allsky_camera.config.Photometry`)."""
    return PhotModel(zp, k, cfg.colour_term, tuple(cfg.vignetting), cfg.colour_quad,
                     tuple(cfg.vignetting_tilt), tuple(cfg.vignetting_ellipse))


def grey_transmission(zp_fit, zp_clear):
    """Grey transmission of the frame, ``10^(-0.4 (zp_clear - zp_fit))`` (NaN if no fit)."""
    return float(10.0 ** (-0.4 * (zp_clear - zp_fit))) if np.isfinite(zp_fit) else float("nan")
