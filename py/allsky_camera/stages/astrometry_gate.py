"""Quality gate of an astrometric solution: is what the model claims true?

A fit always returns a model, even on noise peaks, clouds or a camera that
moved far from its template.  :func:`evaluate` accepts a model only when the
stars it predicts are where it says:

1. *found stars*: of the bright catalog stars the model predicts on the
   chip, those whose measured centroid lies within ``gate_match_px`` of the
   predicted position.  At least ``min_stars`` must be found, and either
   ``gate_min_fraction`` of all predicted (a fraction, not a count, so a few
   chance coincidences on a starless frame do not pass), or, on a partly
   cloudy sky, at least ``gate_min_clear_stars`` in *clear sky cells* (see
   below);
2. *residual RMS* of the matched stars at most ``gate_max_rms_px``, the
   scatter centroid noise gives on this camera (a fit that reaches its
   stars only by spreading its error does not pass);
3. *flux rises with catalog brightness*: Spearman's rank correlation between
   the box flux of the matched stars brighter than ``fit_vmax`` and their
   ``-V``, taken within each sky cell and averaged (weighted by stars), at
   least ``gate_min_rank_corr`` (noise peaks have no relation to the
   catalog);
4. *a sane model*: radial scale within ``gate_max_scale_dev`` of 1 and the
   optical axis tilted by at most ``gate_max_tilt_deg``.

Sky cells and partly cloudy skies
---------------------------------
The sky is cut into cells of ``gate_cell_az_deg`` in azimuth by
``gate_cell_alt_deg`` in altitude (:func:`sky_cells`).  Clouds are spatially
coherent: a cloud hides a region, and a clear patch shows nearly every
bright star in it.  A sky 60-80 % under cloud therefore finds well under
half its predicted stars, but in the clear cells it finds over 90 % of
them; a cell is *clear* when it has at least ``gate_cell_min_pred``
predicted stars and at least ``gate_clear_cell_fraction`` of them are found
(:func:`clear_cells`).  What a wrong model produces is different:

* a wrong model (clock hours off = the sky turned about the pole, a turned
  or shifted camera beyond the fit's capture, a mirrored image) matches by
  chance only: the first pass takes the brightest pixel of a search box of
  ``(2 search_half_px + 1)^2`` pixels, which lands within ``gate_match_px``
  of the prediction with probability about ``pi 2^2 / 15^2 = 0.06`` on
  MDM.  Measured (``benchmarks/gate_chance.py``, 3 seeds, 11 wrong models
  each): 7-25 of 369-399 stars (1.8-6.8 %), RMS 1.2-1.6 px, and no clear
  cell in any of the 33.  Chance matches are spread over the whole sky, so
  a cell of 8 predicted stars reaches 80 % (7 of 8) with binomial
  probability ~ 8 * 0.07^7 ~ 1e-7: no clear cell, no pass.  The right model
  under three quarters of thick cloud finds 108-121 (27-30 %), 81-82 of
  them in clear cells, RMS 0.52-0.60 px;
* a thin overcast (transmission 0.05) is found where its brightest stars
  are, everywhere alike: 20-60 % per cell, hence few clear cells; it stays
  FAILED as before (``benchmarks/recovery.py --cases hopeless``);
* the flux ranking is taken within cells because a cloud dims all the stars
  of a region: pooled over the whole sky, a clear V = 4 star outshines a
  clouded V = 2 one and the ranks mix (a half-clouded sky gave a pooled rho
  of 0.18, under the threshold, for a right model), while within one cell
  the transmission is nearly constant and the order holds.

Residual RMS, rank correlation and sanity apply unchanged to both paths.

The thresholds live in the camera's ``astrometry`` section
(:class:`allsky_camera.camera.config.Astrometry`).  Everything is numpy on a few
hundred stars: the gate costs milliseconds.

Pixel convention: 0-based, x = column (fast axis), pixel centres at integers.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Half-width (pixels) of the box whose sum is a matched star's flux, and of
#: the larger box whose border median is its local background.  Fixed: the
#: flux is only ranked, so any box holding most of a star's light will do.
_FLUX_HALF_PX = 2
_BKG_HALF_PX = 5
#: Status values written to the ASTSTAT header card.
STATUSES = ("FIT", "RECOVERED", "TEMPLATE", "FAILED")


@dataclass(frozen=True)
class GateResult:
    """Outcome of :func:`evaluate`.

    Attributes
    ----------
    ok : bool
        Every test passed.
    message : str
        The first test that failed and its numbers, or a summary when ok.
    n_predicted : int
        Bright catalog stars the model puts on the chip.
    n_matched : int
        Of those, stars found within ``gate_match_px`` of the prediction.
    fraction : float
        ``n_matched / n_predicted`` (0 when nothing is predicted).
    rms_px : float
        RMS residual of the matched stars, pixels (NaN if none).
    rank_corr : float
        Spearman rank correlation of the flux of matched stars with
        ``V <= fit_vmax`` against ``-V``, within sky cells and averaged
        (:func:`cell_rank_correlation`; NaN if no cell has 3 such stars).
    """

    ok: bool
    message: str
    n_predicted: int
    n_matched: int
    fraction: float
    rms_px: float
    rank_corr: float

    def header_cards(self):
        """``(keyword, value, comment)`` cards of the gate's measurements."""
        def r(v, nd):
            return round(float(v), nd) if np.isfinite(v) else "NaN"
        return [("ASTNPRED", self.n_predicted, "bright stars predicted, astrometric gate"),
                ("ASTNMAT", self.n_matched, "of those, found at the predicted position"),
                ("ASTFRAC", r(self.fraction, 4), "matched fraction of predicted stars"),
                ("ASTGRMS", r(self.rms_px, 4), "[pix] RMS residual of the matched stars"),
                ("ASTRCORR", r(self.rank_corr, 4), "flux-V rank correlation within sky cells")]


def _ranks(a):
    """0-based ranks of ``a``, ties sharing their average rank."""
    _, inv, cnt = np.unique(a, return_inverse=True, return_counts=True)
    first = np.cumsum(cnt) - cnt
    return (first + 0.5 * (cnt - 1))[inv]


def rank_correlation(a, b):
    """Spearman's rank correlation of two equal-length arrays.

    The Pearson correlation of the ranks, ties given their average rank.
    Returns NaN for fewer than 3 values or a constant array.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.size < 3:
        return float("nan")
    ra = _ranks(a)
    rb = _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt(np.sum(ra * ra) * np.sum(rb * rb))
    return float(np.sum(ra * rb) / den) if den > 0 else float("nan")


def sky_cells(alt, az, az_step_deg, alt_step_deg):
    """Index of the sky cell of each position: azimuth sectors x altitude rings.

    Parameters
    ----------
    alt, az : ndarray
        Altitude and azimuth (north through east), deg.
    az_step_deg, alt_step_deg : float
        Width of the azimuth sectors and height of the altitude rings, deg.

    Returns
    -------
    ndarray of int
        ``ring * n_sectors + sector``; -1 for non-finite positions.
    """
    alt = np.asarray(alt, dtype=float)
    az = np.asarray(az, dtype=float)
    n_sec = int(np.ceil(360.0 / az_step_deg))
    fin = np.isfinite(alt) & np.isfinite(az)
    sec = np.floor(np.where(fin, az % 360.0, 0.0) / az_step_deg).astype(int) % n_sec
    ring = np.floor(np.clip(np.where(fin, alt, 0.0), 0.0, 90.0 - 1e-9) / alt_step_deg)
    return np.where(fin, ring.astype(int) * n_sec + sec, -1)


def _group_ranks(values, group):
    """0-based ranks of ``values`` within each ``group`` (small non-negative
    integers), ties sharing their average rank, as :func:`_ranks` per group."""
    order = np.lexsort((values, group))
    sv, sg = values[order], group[order]
    n = values.size
    new_group = np.r_[True, sg[1:] != sg[:-1]]
    run = np.flatnonzero(new_group | np.r_[True, sv[1:] != sv[:-1]])   # tie runs
    count = np.diff(np.r_[run, n])
    group_start = np.flatnonzero(new_group)
    first = run - group_start[np.searchsorted(group_start, run, side="right") - 1]
    ranks = np.empty(n)
    ranks[order] = np.repeat(first + 0.5 * (count - 1), count)
    return ranks


def cell_rank_correlation(flux, minus_v, cell):
    """Spearman correlation of flux with ``-V`` within sky cells, pooled.

    Clouds dim whole regions of the sky, so a star under cloud is fainter
    than a clear star of the same V: pooled over the whole sky the ranks
    mix.  Within one cell the transmission is nearly one value and the
    ranks keep their order.  Each cell with at least 3 finite fluxes gives
    its Spearman rho; the result is their mean weighted by the number of
    stars.  NaN when no cell has 3 stars.

    All cells are ranked and summed at once (:func:`rank_correlation`'s
    arithmetic per cell, the sums in another order: the same to 1e-15).
    """
    flux = np.asarray(flux, dtype=float)
    minus_v = np.asarray(minus_v, dtype=float)
    cell = np.asarray(cell)
    fin = np.isfinite(flux) & (cell >= 0)
    if not fin.any():
        return float("nan")
    _, g = np.unique(cell[fin], return_inverse=True)
    g = g.ravel()
    ng = np.bincount(g)
    ra = _group_ranks(flux[fin], g)
    rb = _group_ranks(minus_v[fin], g)
    ra -= (np.bincount(g, ra) / ng)[g]           # rank sums are exact: the cell means are
    rb -= (np.bincount(g, rb) / ng)[g]
    den = np.sqrt(np.bincount(g, ra * ra) * np.bincount(g, rb * rb))
    use = (ng >= 3) & (den > 0)
    if not use.any():
        return float("nan")
    rho = np.bincount(g, ra * rb)[use] / den[use]
    return float(np.sum(rho * ng[use]) / np.sum(ng[use]))


def clear_cells(cell, matched, min_fraction, min_pred):
    """Matched stars in the sky cells where the model finds its stars.

    A cell is *clear* when it holds at least ``min_pred`` predicted stars
    and at least ``min_fraction`` of them are matched.

    Returns
    -------
    n_clear : int
        Matched stars in the clear cells.
    fraction : float
        Their fraction of the stars predicted in those cells (NaN if none).
    """
    cell = np.asarray(cell)
    matched = np.asarray(matched, dtype=bool)
    n_pred = np.bincount(cell[cell >= 0], minlength=1)
    n_mat = np.bincount(cell[(cell >= 0) & matched], minlength=n_pred.size)
    clear = (n_pred >= min_pred) & (n_mat >= min_fraction * n_pred)
    n_c, p_c = int(n_mat[clear].sum()), int(n_pred[clear].sum())
    return n_c, (n_c / p_c if p_c else float("nan"))


def _box_offsets(half, nx, border):
    """Flat-index offsets of a (2 half + 1)^2 box (``border``: its edge only)."""
    o = np.arange(-half, half + 1)
    dy, dx = np.meshgrid(o, o, indexing="ij")
    keep = (np.maximum(np.abs(dy), np.abs(dx)) == half) if border else np.ones(dy.shape, bool)
    return (dy * nx + dx)[keep]


def box_flux(image, x, y):
    """Background-subtracted flux (ADU) in a small box around each position.

    The sum over the ``(2*2+1)^2`` box centred on the nearest pixel, minus
    that many times the median of the border of an ``(2*5+1)^2`` box.
    Boxes reaching off the image, and non-finite positions, give NaN.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ny, nx = image.shape
    out = np.full(x.shape, np.nan)
    fin = np.isfinite(x) & np.isfinite(y)
    xi = np.where(fin, np.rint(np.where(fin, x, 0.0)), -1).astype(int)
    yi = np.where(fin, np.rint(np.where(fin, y, 0.0)), -1).astype(int)
    h = _BKG_HALF_PX
    ok = fin & (xi >= h) & (xi < nx - h) & (yi >= h) & (yi < ny - h)
    if not ok.any():
        return out
    flat_img = np.ravel(image)
    centre = yi[ok] * nx + xi[ok]
    inner = flat_img[centre[:, None] + _box_offsets(_FLUX_HALF_PX, nx, False)[None, :]]
    border = flat_img[centre[:, None] + _box_offsets(h, nx, True)[None, :]]
    out[ok] = inner.sum(axis=1) - inner.shape[1] * np.median(border, axis=1)
    return out


def evaluate(image, model, x_meas, y_meas, alt, az, vmag, cfg):
    """Judge an astrometric model against measured centroids of bright stars.

    Parameters
    ----------
    image : ndarray
        Detrended image, ``image[y, x]``.
    model : CameraModel
        The model to judge (a fit, the template or a recovered model).
    x_meas, y_meas : ndarray
        Measured centroids of the bright candidate stars, pixels (NaN where
        no star was found).
    alt, az : ndarray
        Apparent altitude and azimuth of the same stars, deg.
    vmag : ndarray
        Their catalog V magnitudes.
    cfg : Astrometry
        The camera's astrometry settings (``gate_*`` thresholds).

    Returns
    -------
    GateResult
    """
    x_meas, y_meas, alt, az, vmag = (np.asarray(v, dtype=float)
                                     for v in (x_meas, y_meas, alt, az, vmag))
    ny, nx = image.shape
    xp, yp = model.altaz_to_xy(alt, az)
    on = (xp > -0.5) & (xp < nx - 0.5) & (yp > -0.5) & (yp < ny - 0.5)
    n_pred = int(on.sum())
    with np.errstate(invalid="ignore"):
        d = np.hypot(x_meas - xp, y_meas - yp)
        matched = on & np.isfinite(d) & (d <= cfg.gate_match_px)
    n_mat = int(matched.sum())
    frac = n_mat / n_pred if n_pred else 0.0
    rms_px = float(np.sqrt(np.mean(d[matched] ** 2))) if n_mat else float("nan")
    # the flux test on the bright matched stars (V <= fit_vmax): fainter ones
    # add noise and cost, not evidence
    ranked = matched & (vmag <= cfg.fit_vmax)
    flux = box_flux(image, x_meas[ranked], y_meas[ranked])
    cell = sky_cells(alt, az, cfg.gate_cell_az_deg, cfg.gate_cell_alt_deg)
    corr = cell_rank_correlation(flux, -vmag[ranked], cell[ranked])
    n_clear, clear_frac = clear_cells(cell[on], matched[on], cfg.gate_clear_cell_fraction,
                                      cfg.gate_cell_min_pred)
    tilt = float(np.hypot(model.tilt_n_deg, model.tilt_e_deg))

    def result(ok, msg):
        return GateResult(ok, msg, n_pred, n_mat, frac, rms_px, corr)

    if n_mat < cfg.min_stars:
        return result(False, f"{n_mat} of {n_pred} bright stars found at the predicted "
                             f"positions, fewer than min_stars {cfg.min_stars}")
    partial = frac < cfg.gate_min_fraction
    if partial and n_clear < cfg.gate_min_clear_stars:
        return result(False, f"{n_mat} of {n_pred} bright stars found ({frac:.2f}), "
                             f"below gate_min_fraction {cfg.gate_min_fraction:g}, and "
                             f"{n_clear} in clear sky cells (>= {cfg.gate_clear_cell_fraction:g} "
                             f"found), fewer than "
                             f"gate_min_clear_stars {cfg.gate_min_clear_stars}")
    if not rms_px <= cfg.gate_max_rms_px:
        return result(False, f"residual RMS {rms_px:.2f} px over gate_max_rms_px "
                             f"{cfg.gate_max_rms_px:g}")
    if not corr >= cfg.gate_min_rank_corr:
        return result(False, f"star fluxes do not follow the catalog (rank correlation "
                             f"{corr:.2f} < {cfg.gate_min_rank_corr:g}): noise peaks?")
    if abs(model.scale - 1.0) > cfg.gate_max_scale_dev:
        return result(False, f"radial scale {model.scale:.4f} differs from 1 by more than "
                             f"gate_max_scale_dev {cfg.gate_max_scale_dev:g}")
    if tilt > cfg.gate_max_tilt_deg:
        return result(False, f"axis tilt {tilt:.2f} deg over gate_max_tilt_deg "
                             f"{cfg.gate_max_tilt_deg:g}")
    where = (f", {n_clear} of them in clear sky cells ({clear_frac:.2f} found there)"
             if partial else "")
    return result(True, f"{n_mat} of {n_pred} bright stars found ({frac:.2f}){where}, RMS "
                        f"{rms_px:.2f} px, flux-V rank correlation {corr:.2f}")


def withhold_zeropoint(zeropoint, reason, *, cause="astrometry FAILED"):
    """The zeropoint emptied because the stars' positions are unknown.

    When the astrometry FAILED, fluxes measured at predicted star positions
    mean nothing: the zeropoints become NaN, no star counts, and
    ``message`` (the ZPMSG card) says why.  The input is not changed.

    Parameters
    ----------
    zeropoint : photometry.Zeropoint
    reason : str
        Why, e.g. the solution's message.
    cause : str
        What withholds it, the start of the message.

    Returns
    -------
    photometry.Zeropoint
    """
    nan = float("nan")
    return dataclasses.replace(zeropoint, zp_aper=nan, zp_total=nan, zp_err=nan, rms_mag=nan,
                               n_stars=0, message=f"{cause}: {reason}")


def withhold_transparency(transparency):
    """The transparency result emptied because the stars' positions are unknown.

    Per-star transparencies, the cloud map, the median and the clear
    fraction become NaN and no star votes.  The input is not changed.

    Parameters
    ----------
    transparency : transparency.TransparencyResult

    Returns
    -------
    transparency.TransparencyResult
    """
    nan = float("nan")
    n = len(transparency.transparency)
    summary = dataclasses.replace(transparency.summary, median=nan, clear_fraction=nan,
                                  n_voting=0, n_cells=0)
    return dataclasses.replace(transparency, transparency=np.full(n, nan), weight=np.zeros(n),
                               per_cell=np.full(np.shape(transparency.per_cell), nan),
                               summary=summary)
