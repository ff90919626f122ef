"""Aperture photometry, aperture correction and the exposure's zeropoints.

Fluxes are sums over exact circular apertures minus the median of a sky
annulus times the aperture area (:mod:`allsky_camera.stages.apertures`).  The total flux
is the aperture flux plus an aperture correction ``2.5 log10(F_big / F_aper)``
measured on bright isolated stars and fitted as ``a + b (zd / 90)^2`` because
the PSF widens toward the horizon.  Two zeropoints (mag for 1 ADU/s, at the
zenith, X = 1) describe the exposure:

* ``zp_total``: for the total flux, from the photometric model fitted on the
  zeropoint stars (:mod:`allsky_camera.stages.photmodel`: extinction, colour term,
  vignetting);
* ``zp_aper``: for the flux inside the small aperture, ``zp_total`` less
  the aperture correction at the zenith (MDM's nominal 5.66 is such a value).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from allsky_camera.stages import apertures

log = logging.getLogger(__name__)

#: MAD to standard deviation for a normal distribution.
_MAD_TO_SIGMA = 1.4826
#: Clipping of the aperture-correction fit: threshold (sigma) and rounds.
_APCOR_CLIP = 3.0
_APCOR_ROUNDS = 3
#: Floor (mag) added in quadrature to a star's aperture-correction error:
#: PSF differences between stars, so the brightest do not outweigh the rest.
_APCOR_FLOOR_MAG = 0.01
#: Normal-distribution efficiency of the median relative to the mean (pi/2),
#: used for the error of a median.
_MEDIAN_VAR_FACTOR = np.pi / 2.0
#: Magnitude error per relative flux error, 2.5 / ln 10.
MAG_PER_LN = 2.5 / np.log(10.0)


@dataclass(frozen=True)
class Zeropoint:
    """The exposure's photometric calibration.

    Attributes
    ----------
    zp_aper, zp_total : float
        Zeropoints at the zenith (X = 1), mag for 1 ADU/s, for the aperture
        flux and total flux; NaN when not measured.
    zp_err : float
        Standard error of ``zp_total`` (mag).
    rms_mag : float
        Robust scatter of per-star zeropoints (mag).
    n_stars : int
        Stars used.
    apcor_a, apcor_b : float
        Aperture correction ``a + b (zd/90)^2`` (mag).
    apcor_source : str
        ``'measured'`` or ``'default'``.
    n_apcor : int
        Stars used for the aperture correction.
    zp_nominal_total : float
        The camera's clear-sky zeropoint at the zenith on the total-flux
        scale (``zp_nominal``, plus the aperture correction at the zenith
        measured on this frame when ``zp_nominal_scale`` is 'aperture').
    message : str
        Why no zeropoint was measured, or empty.
    model_fit : ModelFit or None
        The photometric model fitted on the exposure.
    """

    zp_aper: float
    zp_total: float
    zp_err: float
    rms_mag: float
    n_stars: int
    apcor_a: float
    apcor_b: float
    apcor_source: str
    n_apcor: int
    zp_nominal_total: float
    message: str = ""
    model_fit: object = None

    @property
    def model(self):
        """The exposure's fitted :class:`~allsky_camera.stages.photmodel.PhotModel` (or None)."""
        return None if self.model_fit is None else self.model_fit.model

    def apcor(self, zd_deg):
        """Aperture correction (mag) at zenith distance ``zd_deg``."""
        return self.apcor_a + self.apcor_b * (np.asarray(zd_deg, dtype=float) / 90.0) ** 2

    @property
    def ok(self):
        """True when a zeropoint was measured."""
        return bool(np.isfinite(self.zp_total))

    def header_cards(self):
        """``(keyword, value, comment)`` cards for the catalog header."""
        return [
            ("ZPAPER", _r(self.zp_aper), "[mag] zenith zeropoint, aperture flux, 1 ADU/s"),
            ("ZPTOTAL", _r(self.zp_total), "[mag] zenith zeropoint, total flux, 1 ADU/s"),
            ("ZPERR", _r(self.zp_err), "[mag] standard error of ZPTOTAL"),
            ("ZPRMS", _r(self.rms_mag), "[mag] robust scatter of per-star zeropoints"),
            ("ZPNSTAR", self.n_stars, "stars used for the zeropoint"),
            ("APCORA", _r(self.apcor_a), "[mag] aperture correction a + b (zd/90)^2"),
            ("APCORB", _r(self.apcor_b), "[mag] aperture correction b"),
            ("APCORSRC", self.apcor_source, "aperture correction measured or default"),
            ("APCORN", self.n_apcor, "stars used for the aperture correction"),
            ("ZPNOMTOT", _r(self.zp_nominal_total), "[mag] clear-sky zenith zeropoint, total"),
        ] + (self.model_fit.header_cards() if self.model_fit is not None else [])


def _r(v, nd=4):
    return round(float(v), nd) if np.isfinite(v) else float("nan")


@dataclass(frozen=True)
class Fluxes:
    """Aperture measurements of a list of positions (arrays, one per star)."""

    flux_adu: np.ndarray      # sky-subtracted flux in the aperture, ADU
    flux_err_adu: np.ndarray  # its 1-sigma error, ADU
    flux_big_adu: np.ndarray  # sky-subtracted flux in the aperture-correction aperture, ADU
    sky_adu: np.ndarray       # sky per pixel (annulus median), ADU
    n_bad_pix: np.ndarray     # masked or off-image pixels touched by the aperture
    sky_sigma_adu: np.ndarray | None = None   # robust per-pixel sky noise in the annulus, ADU


def measure(image, x, y, phot, *, mask=None, gain=None, quantum=0.0, big=None):
    """Aperture photometry of stars at (x, y).

    Parameters
    ----------
    image : ndarray
        Detrended image, ADU.
    x, y : ndarray
        Star positions, pixels (0-based, pixel centres at integers).
    phot : Photometry
        The camera's photometry settings (aperture and annulus radii).
    mask : ndarray of bool, optional
        Pixels to ignore (True = bad).
    gain : float, optional
        Electrons per ADU, for the Poisson part of the errors.
    quantum : float
        Quantisation step of the data (1 for integer raw data, 0 for none),
        for the interpolated annulus median.
    big : ndarray of bool, optional
        Stars measured in the aperture-correction aperture too (default all);
        the others get NaN there.

    Returns
    -------
    Fluxes
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    image = np.asarray(image)
    if mask is not None and image.dtype.kind == "f":
        # masked pixels as NaN, which the apertures leave out as they do masked
        # ones: the same sums and statistics, without gathering the mask around
        # every star three times
        image = np.where(mask, np.array(np.nan, dtype=image.dtype), image)
        mask = None
    r_in, r_out = phot.annulus_px
    sky, sky_sig, n_sky = apertures.annulus_median(image, xs, ys, r_in, r_out, mask=mask,
                                                       quantum=quantum)
    s_small, a_small, n_bad = apertures.aperture_sums(image, xs, ys, phot.aper_radius_px, mask=mask)
    flux = s_small - a_small * sky
    flux_big = np.full(flux.shape, np.nan)
    sel = np.ones(flux.shape, bool) if big is None else np.asarray(big, bool)
    if sel.any():
        s_big, a_big, _ = apertures.aperture_sums(image, xs[sel], ys[sel], phot.apcor_radius_px,
                                                  mask=mask)
        flux_big[sel] = s_big - a_big * sky[sel]
    var = (a_small * sky_sig ** 2
           + a_small ** 2 * _MEDIAN_VAR_FACTOR * sky_sig ** 2 / np.maximum(n_sky, 1))
    if gain:
        var = var + np.maximum(flux, 0.0) / gain
    nan = np.where(ok, 1.0, np.nan)
    var = np.where(var >= 0, var, np.nan)
    return Fluxes(flux * nan, np.sqrt(var) * nan, flux_big * nan, sky * nan,
                  np.where(ok, n_bad, 0).astype(np.int32), sky_sig * nan)


def instrumental_mag(flux_adu, exptime):
    """``-2.5 log10(flux / exptime)``; NaN where the flux is not positive."""
    f = np.asarray(flux_adu, dtype=float) / exptime
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(f > 0, -2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def fit_apcor(zd_deg, flux_adu, flux_big_adu, sel, phot, *, flux_err_adu=None, with_err=False):
    """Fit the aperture correction ``a + b (zd/90)^2`` on selected stars.

    With ``flux_err_adu`` (the aperture flux's error, ADU) each star weighs
    ``1 / sigma^2``, sigma the correction's error: the big aperture's sky
    noise, ``flux_err * apcor_radius / aper_radius`` over the aperture flux
    (sky-limited stars), so that faint or clouded stars count little.

    Returns ``(a, b, n_used, source)``; falls back to the configured
    ``apcor_default_mag`` (b = 0) with fewer than ``apcor_min_stars`` stars.
    With ``with_err``, ``(a, b, n_used, source, b_err)``: ``b_err`` the
    1-sigma error of b (mag) from the kept stars' weighted fit, scaled by
    its reduced chi-square (when above 1 with ``flux_err_adu``); 0 for the
    default.
    """
    use = sel & (flux_adu > 0) & (flux_big_adu > 0)
    if flux_err_adu is not None:
        use &= np.isfinite(flux_err_adu) & (np.asarray(flux_err_adu) > 0)
    if use.sum() < phot.apcor_min_stars:
        out = (phot.apcor_default_mag, 0.0, int(use.sum()), "default")
        return (*out, 0.0) if with_err else out
    q = (np.asarray(zd_deg)[use] / 90.0) ** 2
    ac = 2.5 * np.log10(flux_big_adu[use] / flux_adu[use])
    if flux_err_adu is None:
        sw = np.ones(ac.size)
    else:
        err = (MAG_PER_LN * np.asarray(flux_err_adu)[use] * phot.apcor_radius_px
               / phot.aper_radius_px / flux_adu[use])
        sw = 1.0 / np.hypot(err, _APCOR_FLOOR_MAG)
    keep = np.ones(ac.size, dtype=bool)
    a, b = float(np.median(ac)), 0.0
    for _ in range(_APCOR_ROUNDS):
        if keep.sum() < phot.apcor_min_stars:
            break
        design = np.stack([np.ones(keep.sum()), q[keep]], axis=1) * sw[keep, None]
        (a, b), *_ = np.linalg.lstsq(design, ac[keep] * sw[keep], rcond=None)
        z = (ac - (a + b * q)) * sw
        sig = _MAD_TO_SIGMA * np.median(np.abs(z[keep]))
        new = np.abs(z) <= _APCOR_CLIP * max(sig, 1e-3 * float(np.median(sw)))
        if np.array_equal(new, keep):
            break
        keep = new
    out = (float(a), float(b), int(keep.sum()), "measured")
    if not with_err:
        return out
    return (*out, _slope_err(q[keep], (ac - (a + b * q))[keep], sw[keep],
                             floor=flux_err_adu is not None))


def _slope_err(q, res, sw, *, floor):
    """1-sigma error of the slope of a weighted straight-line fit (weights
    ``sw^2``), scaled by the reduced chi-square (not below 1 with ``floor``:
    the weights are errors then; without, they are all 1 and the scatter is
    the error)."""
    if q.size < 3:
        return float("nan")
    a = np.stack([np.ones(q.size), q], axis=1) * sw[:, None]
    chi2 = float(np.sum((res * sw) ** 2)) / (q.size - 2)
    return float(np.sqrt(np.linalg.pinv(a.T @ a)[1, 1] * (max(chi2, 1.0) if floor else chi2)))


def _clear_looking(flux_adu, vmag, bv, zd, az_deg, sel, phot, exptime):
    """``sel`` less the stars that look clouded, for the aperture correction.

    A star behind a cloud keeps a fraction of its flux, so its aperture
    correction is mostly its sky's error (on the independent MDM cloud frame
    they pulled the slope b from 0.21 to 0.19).  Which stars are clouded is
    judged without this exposure's fit: the aperture flux over the clear-sky
    model with the site's default extinction (camera terms included), against
    the median of that ratio over ``sel`` (so uniform haze keeps every star);
    stars fainter than that median by more than ``phot.apcor_cloud_clip_mag``
    are left out.
    """
    from allsky_camera.stages import photmodel

    sel = np.asarray(sel, bool)
    i = np.nonzero(sel)[0]                  # only the candidates: cheaper on 4000 stars
    f_exp = photmodel.clear_sky_model(phot.zp_nominal, None, phot).expected_flux(
        np.asarray(vmag, dtype=float)[i], photmodel.colour_or_mean(bv[i], phot.missing_bv),
        zd[i], exptime, None if az_deg is None else np.asarray(az_deg, dtype=float)[i])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.asarray(flux_adu, dtype=float)[i] / f_exp
    ok = ratio > 0
    if not ok.any():
        return sel
    out = np.zeros(sel.shape, bool)
    out[i] = ok & (ratio >= np.median(ratio[ok]) * 10.0 ** (-0.4 * phot.apcor_cloud_clip_mag))
    return out


def zeropoint(vmag, zd_deg, fluxes, good, apcor_sel, phot, exptime, *, bv=None, az_deg=None):
    """Measure the exposure's zeropoints and photometric model.

    The aperture correction is fitted first (:func:`fit_apcor`), on the
    stars of ``apcor_sel`` that do not look clouded (:func:`_clear_looking`); the total
    fluxes of the zeropoint stars then fit the photometric model
    (:func:`allsky_camera.stages.photmodel.fit_exposure`): the zenith total-flux
    zeropoint and, when the clear stars span enough airmass, the extinction.

    Parameters
    ----------
    vmag, zd_deg : ndarray
        Catalog V and apparent zenith distance (deg) of every star.
    fluxes : Fluxes
    good : ndarray of bool
        Stars usable for the zeropoint (unflagged, bright enough); only
        those to ``phot.model_vmax`` enter the model fit.
    apcor_sel : ndarray of bool
        Stars usable for the aperture correction (bright, isolated, unflagged).
    phot : Photometry
    exptime : float
        Seconds.
    bv : ndarray, optional
        Catalog B-V (NaN: none); default 0 for every star (no colour term).
    az_deg : ndarray, optional
        Azimuth (deg, from north through east); needed when the camera has a
        vignetting tilt (``phot.vignetting_tilt``).

    Returns
    -------
    Zeropoint
        ``zp_total`` is the model's zeropoint at the zenith (X = 1) and
        ``zp_aper`` the same for the flux inside the aperture (``zp_total``
        less the aperture correction at the zenith).
    """
    from allsky_camera.stages import photmodel

    zd = np.asarray(zd_deg, dtype=float)
    bv = np.zeros(zd.shape) if bv is None else np.asarray(bv, dtype=float)
    a, b, n_ap, src, b_err = fit_apcor(zd_deg, fluxes.flux_adu, fluxes.flux_big_adu,
                                       _clear_looking(fluxes.flux_adu, vmag, bv, zd, az_deg,
                                                      apcor_sel, phot, exptime),
                                       phot, flux_err_adu=fluxes.flux_err_adu, with_err=True)
    use = (np.asarray(good, bool) & np.isfinite(fluxes.flux_adu)
           & (np.asarray(vmag, dtype=float) <= phot.model_vmax))
    m_total = instrumental_mag(fluxes.flux_adu * 10.0 ** (0.4 * (a + b * (zd / 90.0) ** 2)),
                               exptime)
    # weights from the flux each star should have on a clear night (the
    # clear-sky model), not from its measured flux: a star that fluctuated up
    # would otherwise weigh more and bias the zeropoint bright
    nominal = phot.zp_nominal + (a if phot.zp_nominal_scale == "aperture" else 0.0)
    clear = photmodel.clear_sky_model(nominal, None, phot)
    f_aper = (clear.expected_flux(vmag, photmodel.colour_or_mean(bv, phot.missing_bv), zd,
                                  exptime, az_deg) * 10.0 ** (-0.4 * (a + b * (zd / 90.0) ** 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        m_err = MAG_PER_LN * np.asarray(fluxes.flux_err_adu, dtype=float) / f_aper
    fit = photmodel.fit_exposure(m_total, vmag, bv, zd, use, cfg=phot,
                                 m_err=np.where(m_err > 0, m_err, np.nan), az_deg=az_deg)
    fit = photmodel.with_apcor_slope_error(fit, zd, b_err)
    zpt = fit.model.zp
    zpa = zpt - a
    msg = fit.message
    return Zeropoint(float(zpa), float(zpt), float(fit.zp_err), float(fit.rms_mag), fit.n_used,
                     a, b, src, n_ap, float(nominal), msg, fit)


def measured_positions(xc, yc, x_pred, y_pred, flags, *, forced=False):
    """Where each star's flux is measured.

    Stars found are measured at their centroid; stars not found, or whose
    centroid wandered off (FAINT, NO_FLUX, SHIFT, OTHER_STAR), at the fitted
    prediction, so clouds read as about zero flux.  With ``forced`` every
    star is measured at the prediction (forced photometry; pass it only
    when the astrometric fit is good): a faint star's centroid climbs the
    noise peaks around it and its flux reads bright (2-10 % at V 5.5-6.5
    on the DCT frame 005).

    Returns
    -------
    x, y : ndarray
        Pixels (0-based, x = column).
    """
    from allsky_camera.flags import bit

    lost = (flags & (bit("FAINT") | bit("NO_FLUX") | bit("SHIFT") | bit("OTHER_STAR"))) > 0
    found = np.isfinite(xc) & ~lost & (not forced)
    return np.where(found, xc, x_pred), np.where(found, yc, y_pred)


def flux_flags(fluxes):
    """NO_FLUX (flux not positive) and BAD_PIXEL (masked pixel in the aperture) bits."""
    from allsky_camera.flags import bit

    f = np.zeros(len(fluxes.flux_adu), dtype=np.int32)
    f[~(fluxes.flux_adu > 0)] |= bit("NO_FLUX")
    f[fluxes.n_bad_pix > 0] |= bit("BAD_PIXEL")
    return f


def zeropoint_stars(vmag, flags, fluxes, phot, exptime):
    """The stars that vote in the zeropoint and in the aperture correction.

    Zeropoint: unflagged, ``vmag <= phot.zp_vmax`` (or ``phot.vmax``), and,
    when ``phot.zp_min_snr > 0``, expected to reach that S/N on this frame's
    sky with the nominal zeropoint (on a bright sky faint stars are noise:
    keep the stars that should be well measured, whatever their own noise
    did).  Aperture correction: unflagged, ``vmag <= phot.apcor_vmax``.

    Parameters
    ----------
    vmag : ndarray
        Catalog V, mag.
    flags : ndarray of int
    fluxes : Fluxes
    phot : Photometry
    exptime : float
        Seconds.

    Returns
    -------
    zp_sel, apcor_sel : ndarray of bool
    """
    from allsky_camera.stages.transparency import expected_snr

    good = flags == 0
    zpsel = good & (vmag <= (phot.zp_vmax if phot.zp_vmax is not None else phot.vmax))
    if phot.zp_min_snr > 0:
        zp_aper_guess = phot.zp_nominal - (phot.apcor_default_mag
                                           if phot.zp_nominal_scale == "total" else 0.0)
        snr_exp = expected_snr(vmag, zp_aper_guess, exptime,
                               np.nan_to_num(fluxes.sky_sigma_adu, nan=np.inf),
                               np.pi * phot.aper_radius_px ** 2)
        zpsel &= snr_exp >= phot.zp_min_snr
    return zpsel, good & (vmag <= phot.apcor_vmax)
