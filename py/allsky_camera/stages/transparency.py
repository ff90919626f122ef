"""Transparency: how much of each star's light got through, and a cloud summary.

A star's transparency is its measured total flux over the flux the camera's
clear-sky photometric model predicts for it (:mod:`allsky_camera.stages.photmodel`:
the clear-sky zenith zeropoint, extinction at its airmass, colour term,
vignetting), so a clear sky reads 1.00 at every altitude, colour and radius.
Stars that the catalog predicts well above the detection limit but that were
not found keep their row with a transparency near 0: they are the evidence
of cloud.

The exposure's grey offset (dust, dew, thin uniform haze: the fitted
zeropoint against the clear-sky one, ``TRANSGRY``) is reported apart from
clouds: cells are judged on the transparency divided by the grey offset, so a
sky that is uniformly 0.9 is haze, not 10 % cloud cover.  A grey offset deeper
than ``haze_min`` is not haze: only ``haze_min`` is divided out.

Each star's vote is weighted by the signal-to-noise ratio it *should* have on
this frame's sky (predicted from its V, the nominal zeropoint and the noise
measured in its sky annulus), so on a bright sky (Moon, twilight, clouds lit
from below) faint stars, which are pure noise there, do not vote; stars below
``min_snr`` do not vote at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TransparencySummary:
    """Exposure-level transparency.

    Attributes
    ----------
    median : float
        Weighted median transparency of the voting stars (NaN if none).
    clear_fraction : float
        Fraction of the sampled sky (HEALPix cells above the safe altitude
        holding a voting star) whose median transparency exceeds the clear
        threshold; NaN if no cell is sampled.
    n_voting : int
        Stars that voted.
    n_cells : int
        Sky cells sampled.
    grey : float
        Grey transmission of the whole frame (haze), the fitted zeropoint
        against the clear-sky one (NaN: no zeropoint).
    """

    median: float
    clear_fraction: float
    n_voting: int
    n_cells: int
    grey: float = float("nan")
    message: str = ""

    def header_cards(self):
        """``(keyword, value, comment)`` cards for the catalog header."""
        def r(v):
            return round(float(v), 4) if np.isfinite(v) else "NaN"
        return [("TRANSMED", r(self.median), "median transparency of voting stars"),
                ("CLEARFRC", r(self.clear_fraction), "clear fraction of the sampled sky"),
                ("TRANSNST", self.n_voting, "stars voting for transparency"),
                ("TRANSNPX", self.n_cells, "sky cells sampled for CLEARFRC"),
                ("TRANSGRY", r(self.grey), "grey transmission of the frame (haze)")] + (
                    [("TRANSMSG", self.message[:68], "why clouds were not judged")]
                    if self.message else [])


def star_transparency(flux_total_adu, expected_total_adu, *, clip):
    """Per-star transparency, clipped to ``[clip[0], clip[1]]``.

    Parameters
    ----------
    flux_total_adu : ndarray
        Measured total flux (aperture-corrected), ADU; NaN or <= 0 counts as 0.
    expected_total_adu : ndarray
        Total flux the clear-sky model predicts for the star, ADU.
    clip : (float, float)
        Range of the result.
    """
    f = np.nan_to_num(np.asarray(flux_total_adu, dtype=float), nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = f / np.asarray(expected_total_adu, dtype=float)
    return np.clip(np.nan_to_num(t, nan=0.0), clip[0], clip[1])


def expected_snr(vmag, zp_nominal_aper, exptime, sky_sigma_adu, aper_area_px, gain=None):
    """Signal-to-noise ratio a star of magnitude V should reach in the aperture.

    Parameters
    ----------
    vmag : ndarray
    zp_nominal_aper : ndarray or float
        Nominal zeropoint for the aperture flux (mag for 1 ADU/s).
    exptime : float
    sky_sigma_adu : ndarray
        Per-pixel noise of the sky around the star (annulus), ADU.
    aper_area_px : float
        Aperture area, pixels.
    gain : float, optional
        e-/ADU for the star's own Poisson noise.
    """
    f = 10.0 ** (-0.4 * (np.asarray(vmag, dtype=float) - zp_nominal_aper)) * exptime
    var = aper_area_px * np.asarray(sky_sigma_adu, dtype=float) ** 2
    if gain:
        var = var + f / gain
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = f / np.sqrt(var)
    return np.where(np.isfinite(snr), snr, 0.0)


def weighted_median(values, weights):
    """Median of ``values`` with non-negative ``weights`` (NaN if total weight is 0)."""
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    ok = np.isfinite(v) & (w > 0)
    if not ok.any():
        return float("nan")
    order = np.argsort(v[ok])
    vs, cw = v[ok][order], np.cumsum(w[ok][order])
    return float(vs[np.searchsorted(cw, 0.5 * cw[-1])])


def grouped_weighted_median(groups, values, weights, n_groups):
    """Weighted median of ``values`` within each integer group ``0..n_groups-1``.

    Vectorised: one sort by (group, value), cumulative weights per group.
    Returns (medians, counts); NaN and 0 for empty groups.
    """
    g = np.asarray(groups)
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    ok = np.isfinite(v) & (w > 0) & (g >= 0)
    g, v, w = g[ok], v[ok], w[ok]
    med = np.full(n_groups, np.nan)
    counts = np.bincount(g, minlength=n_groups)
    if g.size == 0:
        return med, counts
    order = np.lexsort((v, g))
    g, v, w = g[order], v[order], w[order]
    cw = np.cumsum(w)
    start = np.searchsorted(g, np.arange(n_groups), side="left")
    end = np.searchsorted(g, np.arange(n_groups), side="right")
    has = end > start
    base = np.where(start > 0, cw[np.maximum(start - 1, 0)], 0.0)
    half = base + 0.5 * (cw[np.maximum(end - 1, 0)] - base)
    idx = np.searchsorted(cw, half)
    med[has] = v[np.minimum(idx[has], v.size - 1)]
    return med, counts


def summarize(transp, weights, cell, n_cells, clear_threshold, grey=float("nan"), haze_min=1.0):
    """Exposure summary from per-star transparency.

    Parameters
    ----------
    transp, weights : ndarray
        Per-star transparency and vote weight (0: does not vote).
    cell : ndarray of int
        Sky cell of each star (e.g. a HEALPix pixel in horizontal
        coordinates), -1 for stars outside the area summarised.
    n_cells : int
    clear_threshold : float
        A cell is clear when its weighted median transparency, divided by
        the haze, exceeds this.
    grey : float
        The frame's grey transmission (NaN: unknown, taken as 1).
    haze_min : float
        The haze divided out is ``max(grey, haze_min)``.

    Returns
    -------
    TransparencySummary
    per_cell : ndarray
        Weighted median transparency per cell (NaN where no vote).
    """
    vote = (weights > 0) & (cell >= 0)
    med = weighted_median(transp[vote], weights[vote])
    per_cell, counts = grouped_weighted_median(np.where(vote, cell, -1), transp, weights,
                                               n_cells)
    sampled = np.isfinite(per_cell)
    n = int(sampled.sum())
    haze = max(grey, haze_min) if np.isfinite(grey) else 1.0
    frac = float(np.mean(per_cell[sampled] / haze > clear_threshold)) if n else float("nan")
    return TransparencySummary(med, frac, int(vote.sum()), n, float(grey)), per_cell


#: Flags that say nothing about clouds: such stars do not vote.  OTHER_STAR
#: is here too: a neighbour bright enough to pull the centroid lies in the
#: star's aperture or annulus (on a clear simulated sky such stars read 0.90).
#: FAINT, NO_FLUX and SHIFT are cloud evidence: those stars vote, measured at
#: their predicted position.
NON_CLOUD_FLAGS = ("NOT_ISOLATED", "MOON", "OUTSIDE_SAFE", "EDGE", "SATURATED", "BAD_PIXEL",
                   "OTHER_STAR", "PLANET")


def vote_weight(flags, snr, min_snr, *, non_cloud_flags=NON_CLOUD_FLAGS):
    """Vote weight of each star: expected S/N squared, 0 for stars that do not vote.

    Parameters
    ----------
    flags : ndarray of int
        Quality bits (:mod:`allsky_camera.flags`).
    snr : ndarray
        Expected S/N of each star on this sky (:func:`expected_snr`).
    min_snr : float
        Stars expected below this S/N do not vote.
    non_cloud_flags : tuple of str
        Flags that say nothing about clouds: stars with any of them do not vote.
    """
    from allsky_camera.flags import bit

    spoil = 0
    for name in non_cloud_flags:
        spoil |= bit(name)
    snr = np.asarray(snr, dtype=float)
    votes = ((np.asarray(flags) & spoil) == 0) & (snr >= min_snr)
    return np.where(votes, snr ** 2, 0.0)


@dataclass(frozen=True)
class TransparencyResult:
    """Per-star transparency and the exposure summary (see :func:`run`)."""

    transparency: np.ndarray      # per star, clipped
    weight: np.ndarray            # vote weight (expected S/N squared; 0: no vote)
    expected_snr: np.ndarray      # S/N the star should reach on this sky
    cell: np.ndarray              # HEALPix (RING, horizontal) cell of each star
    per_cell: np.ndarray          # weighted median transparency per cell, NaN: no vote
    summary: TransparencySummary


def run(*, vmag, alt_deg, az_deg, flags, flux_total_adu, sky_sigma_adu, expected_total_adu,
        apcor_mag, exptime, aper_area_px, cfg, grey=float("nan")):
    """Transparency of every star and of the sky.

    Parameters
    ----------
    vmag, alt_deg, az_deg : ndarray
        Catalog V and apparent position (deg) of every star.
    flags : ndarray of int
        Quality bits (:mod:`allsky_camera.flags`).
    flux_total_adu : ndarray
        Measured total flux (at the centroid when the star was found, at the
        predicted position when not), ADU.
    sky_sigma_adu : ndarray
        Per-pixel sky noise around each star, ADU.
    expected_total_adu : ndarray
        Total flux the clear-sky photometric model predicts for each star, ADU.
    apcor_mag : ndarray
        Aperture correction at each star (total minus aperture zeropoint).
    exptime : float
    aper_area_px : float
        Photometric aperture area, pixels.
    cfg : Transparency
        Settings.
    grey : float
        The frame's grey transmission (fitted against clear-sky zeropoint);
        NaN: unknown.

    Returns
    -------
    TransparencyResult
    """
    from allsky_camera.stages.healpix import ang2pix_ring, npix

    t = star_transparency(flux_total_adu, expected_total_adu, clip=cfg.clip)
    expected = np.asarray(expected_total_adu, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        # the magnitude whose clear-sky aperture flux is that expected, at 0 mag zeropoint
        m_aper = -2.5 * np.log10(expected / exptime) + np.asarray(apcor_mag, dtype=float)
    snr = expected_snr(np.nan_to_num(m_aper, nan=np.inf), 0.0, exptime,
                       np.nan_to_num(sky_sigma_adu, nan=np.inf), aper_area_px)
    weight = vote_weight(flags, snr, cfg.min_expected_snr)
    votes = weight > 0
    cell = ang2pix_ring(cfg.nside, 90.0 - np.asarray(alt_deg), np.asarray(az_deg))
    summary, per_cell = summarize(t, weight, np.where(votes, cell, -1), npix(cfg.nside),
                                  cfg.clear_threshold, grey, cfg.haze_min)
    return TransparencyResult(t, weight, snr, cell, per_cell, summary)


def sky_too_bright(result, status):
    """``result`` with no clear fraction: the sky is too bright to judge clouds.

    On a twilight or day frame too few stars vote; that is not cloud.  The
    per-star values stay; the summary's clear fraction becomes NaN and its
    message says why.
    """
    import dataclasses

    summary = dataclasses.replace(result.summary, clear_fraction=float("nan"),
                                  message=f"sky too bright ({status}) to judge clouds")
    return dataclasses.replace(result, summary=summary)


def cell_image(model, shape, per_cell, nside, radius_px, stride):
    """The per-cell transparency drawn on the camera's pixel grid.

    Every ``stride``-th pixel within ``radius_px`` of the zenith pixel takes
    the value of the HEALPix cell it sees (NaN: no vote there, or not sky).

    Returns
    -------
    ndarray of float32, shape ``(ceil(ny / stride), ceil(nx / stride))``
    """
    from allsky_camera.stages.healpix import ang2pix_ring

    ny, nx = shape
    ys, xs = np.mgrid[0:ny:stride, 0:nx:stride]
    inside = np.hypot(xs - model.x0, ys - model.y0) <= radius_px
    out = np.full(xs.shape, np.nan, dtype=np.float32)
    alt, az = model.xy_to_altaz(xs[inside], ys[inside])
    out[inside] = per_cell[ang2pix_ring(nside, 90.0 - alt, az)]
    return out
