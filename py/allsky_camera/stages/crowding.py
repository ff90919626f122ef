"""Crowding: the share of a star's measured flux that belongs to other stars.

A catalog star's aperture flux holds the light of every other star whose
PSF reaches into its aperture, and its sky annulus holds theirs too.  With
the whole Hipparcos catalogue (:func:`allsky_camera.stages.catalog.neighbours`,
down to its faint limit, V ~ 12-14) projected through the exposure's camera
model (so the fisheye's plate scale at the star's position is the model's),
each neighbour's light is integrated over the aperture and over the annulus
for a circular Gaussian PSF:

* ``c_aper`` = sum_j (F_j / F) E(r_ap; d_j) / E(r_ap; 0): the neighbours'
  flux inside the aperture over the star's own (positive: the star reads
  bright);
* ``c_annulus`` = sum_j (F_j / F) [E(r_out; d_j) - E(r_in; d_j)]
  (A_ap / A_an) / E(r_ap; 0): the neighbours' flux in the annulus spread over
  it and scaled to the aperture area, over the star's aperture flux: what a
  MEAN sky would wrongly subtract (the annulus median is hit less: an upper
  bound; the star reads faint).

E(r; d) is the fraction of a Gaussian PSF (sigma s) centred at distance d
that falls within radius r: the Rice distribution's CDF, ``scipy.stats.rice``
(Rice 1945; ``rice.cdf(r / s, d / s)``).  The PSF sigma comes from the
aperture correction measured on the exposure: a Gaussian puts 1 - exp(-r^2 /
2 s^2) of its flux inside r, so ``s = r_ap / sqrt(-2 ln(1 - 10^(-0.4 apcor)))``
with ``apcor`` the correction from the aperture to the total flux at the
star's zenith distance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Neighbours are searched out to the annulus' outer radius plus this many
#: PSF sigmas (beyond 4 sigma a Gaussian's light is < 0.04 % of its flux).
_PSF_REACH_SIGMA = 4.0
#: Smallest aperture correction (mag) turned into a PSF width: a correction
#: of 0 or less (a clipped fit) would mean a PSF of zero width.
_MIN_APCOR_MAG = 0.01
# Table of :func:`enclosed` behind :func:`enclosed_fast`: step and extent in
# units of the PSF sigma (r / sigma to 40, d / sigma to 40), built once.
_TABLE_STEP = 0.05
_TABLE_MAX_U = 40.0
_TABLE_MAX_V = 40.0
_TABLE = None
#: Floor of :attr:`Crowding.flux_factor` (see there).
_MIN_FLUX_FACTOR = 0.5
# Table of G(b) = int_0^1 erf(b u) / u du behind :func:`_erf_profile`:
# log-spaced b from _G_MIN to _G_MAX, built once.
_G_MIN, _G_MAX, _G_N = 1e-4, 1e6, 401
_G_TABLE = None


@dataclass(frozen=True)
class Crowding:
    """Light of other catalog stars in each star's aperture and annulus.

    Attributes
    ----------
    c_aper : ndarray of float64
        Neighbours' flux inside the aperture over the star's own aperture
        flux (0: none).
    c_annulus : ndarray of float64
        Neighbours' flux in the sky annulus, per annulus pixel times the
        aperture area, over the star's aperture flux (an upper bound on the
        sky over-subtraction; 0: none).
    c_annulus_max : ndarray of float64
        The same for a MEAN sky: an upper bound on ``c_annulus`` (equal to
        it when no noise was given).
    n_neighbours : ndarray of int32
        Catalog stars within reach (annulus outer radius + 4 PSF sigma).
    """

    c_aper: np.ndarray
    c_annulus: np.ndarray
    c_annulus_max: np.ndarray
    n_neighbours: np.ndarray

    @property
    def flux_factor(self):
        """What the star's measured flux is of its own: ``1 + c_aper -
        c_annulus``, raised to 0.5 at least (a star whose annulus holds more
        light than that is flagged BLENDED by far; its prediction is not
        trusted further)."""
        return np.maximum(1.0 + self.c_aper - self.c_annulus, _MIN_FLUX_FACTOR)

    @property
    def contamination(self):
        """What of the star's reading may not be its own, at worst, as a
        fraction: the larger of ``c_aper`` (the neighbours' light in the
        aperture: the error if their share were not known) and
        ``|c_aper - c_annulus_max|`` (the bias left after a sky subtraction
        hit by their light as a mean would be).  A flag should hold the
        worst case; :attr:`flux_factor` holds the best estimate."""
        return np.maximum(self.c_aper, np.abs(self.c_aper - self.c_annulus_max))


def _erf_profile(b):
    """G(b) = int_0^1 erf(b u) / u du (b >= 0), the median shift summed over a
    Gaussian profile (see :func:`measure`): 2 b / sqrt(pi) for small b,
    ln(b) + 0.9 or so for large b.  Interpolated in log b from a table (1e-4
    relative); below the table 2 b / sqrt(pi), above it extrapolated
    in ln b (G grows as ln b there)."""
    global _G_TABLE
    from scipy.special import erf

    if _G_TABLE is None:
        lb = np.linspace(np.log(_G_MIN), np.log(_G_MAX), _G_N)
        # u = exp(-t): int_0^inf erf(b exp(-t)) dt, on a fine grid in t
        t = np.linspace(0.0, np.log(_G_MAX / _G_MIN) + 20.0, 20001)
        vals = erf(np.exp(lb)[:, None] * np.exp(-t)[None, :])
        _G_TABLE = (lb, np.trapezoid(vals, t, axis=1))
    lb, g = _G_TABLE
    b = np.asarray(b, dtype=float)
    small = b < _G_MIN
    lbb = np.log(np.maximum(b, _G_MIN))
    out = np.interp(lbb, lb, g) + np.maximum(lbb - lb[-1], 0.0)
    return np.where(small, 2.0 * b / np.sqrt(np.pi), out)


def psf_sigma_px(apcor_mag, aper_radius_px):
    """Sigma (pixels) of the Gaussian PSF with aperture correction ``apcor_mag``.

    Parameters
    ----------
    apcor_mag : array_like
        Total minus aperture magnitude correction, mag (> 0; values below
        0.01 mag are raised to it).
    aper_radius_px : float
        Aperture radius, pixels.

    Returns
    -------
    ndarray
        sigma such that 1 - exp(-r^2 / 2 sigma^2) = 10^(-0.4 apcor), pixels.
    """
    a = np.maximum(np.asarray(apcor_mag, dtype=float), _MIN_APCOR_MAG)
    inside = 10.0 ** (-0.4 * a)
    return aper_radius_px / np.sqrt(-2.0 * np.log1p(-inside))


def enclosed(r_px, d_px, sigma_px):
    """Fraction of a circular Gaussian PSF centred ``d_px`` from a circle's
    centre that falls inside its radius ``r_px`` (all pixels; broadcast)."""
    from scipy.stats import rice

    s = np.asarray(sigma_px, dtype=float)
    return rice.cdf(np.asarray(r_px, dtype=float) / s, np.asarray(d_px, dtype=float) / s)


def measure(star_flux, nb_flux, pair_star, dist_px, sigma_px, *, aper_radius_px, annulus_px,
            star_total_adu=None, sky_sigma_adu=None):
    """Crowding of every star from its neighbours' catalog fluxes.

    Parameters
    ----------
    star_flux : ndarray, shape (n,)
        Catalog flux of each star, any linear unit (e.g. 10^(-0.4 V)).
    nb_flux : ndarray, shape (m,)
        Catalog flux of each (star, neighbour) pair's neighbour, same unit.
    pair_star : ndarray of int, shape (m,)
        Index of the star of each pair.
    dist_px : ndarray, shape (m,)
        Neighbour's distance from the star, pixels.
    sigma_px : ndarray, shape (n,)
        PSF sigma at each star, pixels.
    aper_radius_px : float
        Aperture radius, pixels.
    annulus_px : tuple of float
        Sky annulus inner and outer radius, pixels.
    star_total_adu, sky_sigma_adu : ndarray, shape (n,), optional
        Each star's expected total flux and its annulus' pixel noise, ADU.
        When given, ``c_annulus`` is the shift of the annulus MEDIAN: a pixel
        raised by ``e`` moves the median of ``N`` pixels of normal noise
        ``n`` by ``n sqrt(pi / 2) erf(e / (n sqrt 2)) / N`` (it crosses the
        median with probability Phi(e / n) - 1/2, and one crossing moves the
        median by 1 / (N pdf(median))): as much as the mean (``e / N``) for
        light fainter than the noise, at most ``1.25 n / N`` for brighter.
        Summed over a Gaussian PSF of peak ``p`` (the neighbour's light in
        the annulus as if all of it were there) this is
        ``2 pi sigma^2 n sqrt(pi / 2) G(p / (n sqrt 2)) / N`` with ``G(b) =
        int_0^1 erf(b u) / u du`` (:func:`_erf_profile`).  Otherwise (or
        where a noise is not finite) the mean's ``f / N``.

    Returns
    -------
    Crowding
    """
    n = np.asarray(star_flux).size
    pair_star = np.asarray(pair_star, dtype=np.intp)
    sig = np.asarray(sigma_px, dtype=float)
    r_in, r_out = annulus_px
    own = enclosed_fast(aper_radius_px, 0.0, sig)
    s = sig[pair_star]
    ratio = np.asarray(nb_flux, dtype=float) / np.asarray(star_flux, dtype=float)[pair_star]
    in_aper = ratio * enclosed_fast(aper_radius_px, dist_px, s)
    in_annulus = ratio * (enclosed_fast(r_out, dist_px, s) - enclosed_fast(r_in, dist_px, s))
    area_ratio = aper_radius_px ** 2 / (r_out ** 2 - r_in ** 2)
    c_ann_max = np.bincount(pair_star, weights=in_annulus, minlength=n) * area_ratio / own
    if star_total_adu is not None and sky_sigma_adu is not None:
        from scipy.special import erf

        total = np.asarray(star_total_adu, dtype=float)[pair_star]
        noise = np.asarray(sky_sigma_adu, dtype=float)[pair_star]
        peak = in_annulus * total / (2.0 * np.pi * s ** 2)      # ADU per pixel
        use = np.isfinite(noise) & (noise > 0) & np.isfinite(total) & (total > 0)
        noise = np.where(use, noise, 1.0)
        median_hit = (2.0 * np.pi * s ** 2 * noise * np.sqrt(np.pi / 2.0)
                      * _erf_profile(peak / (noise * np.sqrt(2.0))) / np.where(use, total, 1.0))
        in_annulus = np.where(use, median_hit, in_annulus)
    c_aper = np.bincount(pair_star, weights=in_aper, minlength=n) / own
    c_ann = np.bincount(pair_star, weights=in_annulus, minlength=n) * area_ratio / own
    count = np.bincount(pair_star, minlength=n).astype(np.int32)
    return Crowding(c_aper=c_aper, c_annulus=c_ann, c_annulus_max=c_ann_max,
                    n_neighbours=count)


def _enclosed_table():
    """E(r; d) of :func:`enclosed` on a grid of r / sigma and d / sigma."""
    global _TABLE
    if _TABLE is None:
        u = np.arange(0.0, _TABLE_MAX_U + _TABLE_STEP / 2, _TABLE_STEP)
        v = np.arange(0.0, _TABLE_MAX_V + _TABLE_STEP / 2, _TABLE_STEP)
        _TABLE = enclosed(u[:, None], v[None, :], 1.0)
        _TABLE[0, :] = 0.0
    return _TABLE


def enclosed_fast(r_px, d_px, sigma_px):
    """:func:`enclosed` by bilinear interpolation in a table of it (step 0.05
    sigma; departs from it by < 1e-3), 50 times faster.  Radii beyond the
    table (> 40 sigma) count as enclosing the whole PSF, distances beyond it
    (> 40 sigma) as none of it."""
    table = _enclosed_table()
    s = np.asarray(sigma_px, dtype=float)
    u = np.asarray(r_px, dtype=float) / s / _TABLE_STEP
    v = np.asarray(d_px, dtype=float) / s / _TABLE_STEP
    u, v = np.broadcast_arrays(u, v)
    nu, nv = table.shape
    far = v >= nv - 1
    big = u >= nu - 1
    iu = np.clip(u.astype(np.intp), 0, nu - 2)
    iv = np.clip(v.astype(np.intp), 0, nv - 2)
    fu = np.clip(u - iu, 0.0, 1.0)
    fv = np.clip(v - iv, 0.0, 1.0)
    e = ((1 - fu) * (1 - fv) * table[iu, iv] + fu * (1 - fv) * table[iu + 1, iv]
         + (1 - fu) * fv * table[iu, iv + 1] + fu * fv * table[iu + 1, iv + 1])
    return np.where(far, 0.0, np.where(big, 1.0, e))


def run(stars, x, y, model, time, site, apcor_mag, phot, shape, *, star_total_adu=None,
        sky_sigma_adu=None):
    """Crowding of the reference stars on one exposure.

    Every star of hip2.dat (down to its faint limit) is projected through
    the exposure's camera model, so the distance between two stars is in
    the exposure's pixels wherever they are on the fisheye.

    Parameters
    ----------
    stars : Table
        Reference stars (:func:`allsky_camera.stages.catalog.reference_stars`:
        HIP, VMAG).
    x, y : ndarray
        Their predicted pixel positions (0-based, x = column).
    model : CameraModel
        The exposure's fitted camera model.
    time : ObsTime
    site : Site
    apcor_mag : ndarray
        Aperture correction at each star, mag.
    phot : Photometry
        ``aper_radius_px`` and ``annulus_px``.
    shape : tuple of int
        Image shape (ny, nx).
    star_total_adu, sky_sigma_adu : ndarray, optional
        Expected total flux and sky noise per pixel of each star, ADU: the
        annulus term is then the median's (see :func:`measure`).

    Returns
    -------
    Crowding
    """
    from scipy.spatial import cKDTree

    from allsky_camera.camera import coords
    from allsky_camera.stages import catalog

    n = len(stars)
    sigma = psf_sigma_px(apcor_mag, phot.aper_radius_px)
    reach_px = phot.annulus_px[1] + _PSF_REACH_SIGMA * sigma
    deep = catalog.reference_stars(time.jd_tt, catalog.DEEP_VMAX)
    alt, az = coords.radec_to_altaz(deep["RA"], deep["DEC"], time, site)
    up = alt > 0
    xn, yn = model.altaz_to_xy(alt[up], az[up])
    margin = float(np.max(reach_px)) if n else 0.0
    ny, nx = shape
    near = (xn > -margin) & (xn < nx + margin) & (yn > -margin) & (yn < ny + margin)
    xn, yn = xn[near], yn[near]
    hip_n = np.asarray(deep["HIP"])[up][near]
    v_n = np.asarray(deep["VMAG"], dtype=float)[up][near]
    if n == 0 or xn.size == 0:
        zero = np.zeros(n)
        return Crowding(c_aper=zero, c_annulus=zero.copy(), c_annulus_max=zero.copy(),
                        n_neighbours=np.zeros(n, np.int32))
    hits = cKDTree(np.column_stack([xn, yn])).query_ball_point(
        np.column_stack([x, y]), reach_px, return_sorted=False)
    counts = np.fromiter((len(h) for h in hits), dtype=np.intp, count=n)
    i = np.repeat(np.arange(n), counts)
    j = (np.concatenate([np.asarray(h, dtype=np.intp) for h in hits]) if counts.sum()
         else np.zeros(0, np.intp))
    other = hip_n[j] != np.asarray(stars["HIP"])[i]     # a star is not its own neighbour
    i, j = i[other], j[other]
    cr = measure(10.0 ** (-0.4 * np.asarray(stars["VMAG"], dtype=float)),
                 10.0 ** (-0.4 * v_n[j]), i, np.hypot(xn[j] - x[i], yn[j] - y[i]), sigma,
                 aper_radius_px=phot.aper_radius_px, annulus_px=tuple(phot.annulus_px),
                 star_total_adu=star_total_adu, sky_sigma_adu=sky_sigma_adu)
    log.debug("crowding: %d neighbour pairs among %d catalogue stars on the chip", i.size,
              xn.size)
    return cr
