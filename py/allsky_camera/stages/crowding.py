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
# units of the PSF sigma (r / sigma to 25, d / sigma to 25), built once.
_TABLE_STEP = 0.05
_TABLE_STEP_V = 0.1
_TABLE_FINE = 5
_TABLE_MAX_U = 25.0
_TABLE_MAX_V = 25.0
#: Step (in PSF sigmas) of the slow reference integral :func:`enclosed`.
_RHO_STEP = 0.005
# Abramowitz & Stegun (1964) 7.1.26: p and a1..a5 of erf(x) ~ 1 - (a1 t + ...
# + a5 t^5) exp(-x^2), t = 1 / (1 + p x).
_AS_ERF_P = 0.3275911
_AS_ERF = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
#: Where :func:`_i0e` switches from numpy's I0 to the asymptotic series.
_I0_SWITCH = 50.0
_TABLE = None
_TABLE32 = None
#: Stars per block of :func:`measure`: their table rows (float32, ~150
#: offsets x 3 radii) stay in a CPU's L2 cache.
_BLOCK_STARS = 512
#: Cosine of the zenith distance beyond which catalogue stars are not
#: projected: 92 deg, the horizon plus 2 deg (refraction at the horizon is
#: ~0.6 deg; the rest covers the apparent-place shifts).
_COS_HORIZON = float(np.cos(np.radians(92.0)))
#: Altitudes (deg) and azimuth step (deg) of the directions where
#: :func:`stretch_by_altitude` measures the camera's plate scale: dense
#: near the horizon, where refraction squeezes the sky most (its gradient
#: is ~0.2 there, falling to 0.05 by 5 deg).
_STRETCH_ALT_DEG = (0.05, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 15.0, 20.0,
                    27.0, 35.0, 45.0, 55.0, 65.0, 75.0, 85.0, 89.5)
_STRETCH_AZ_STEP_DEG = 10.0
#: Finite-difference step of that Jacobian on the sky, deg.
_STRETCH_STEP_DEG = 0.01
#: Widening of the sky angle searched over reach / stretch: covers the
#: plate scale between the sampled directions and its change over the
#: reach (the model's and refraction's curvature over ~3 deg).
_SKY_REACH_SAFETY = 1.15
#: The sky angle is rounded up to a power of this (the neighbour cache key).
_SKY_REACH_STEP = 1.1
#: Beyond this angle (deg; a very coarse camera) the sky search would hold
#: more pairs than the exhaustive pixel search costs: that is used instead.
_MAX_SKY_REACH_DEG = 15.0
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


def _trapezoid(y, x):
    """Trapezoid-rule integral of ``y`` over ``x`` along the last axis (numpy
    < 2 has no ``np.trapezoid``, and its ``np.trapz`` is deprecated in 2)."""
    y = np.asarray(y, dtype=float)
    dx = np.diff(np.asarray(x, dtype=float))
    return np.sum(0.5 * (y[..., 1:] + y[..., :-1]) * dx, axis=-1)


def _erf(x):
    """erf(x) for x >= 0: Abramowitz & Stegun (1964) 7.1.26, |error| <= 1.5e-7
    (numpy has no erf; scipy stays out of a default run)."""
    a1, a2, a3, a4, a5 = _AS_ERF
    t = 1.0 / (1.0 + _AS_ERF_P * x)
    return 1.0 - ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t * np.exp(-x * x)


def _i0e(x):
    """exp(-x) I0(x) for x >= 0: numpy's I0 below 50 (it overflows near
    713), the asymptotic series 1 / sqrt(2 pi x) (1 + 1/(8x) + 9/(128 x^2))
    above 50 (Abramowitz & Stegun 9.7.1; relative error < 1e-6 there)."""
    x = np.asarray(x, dtype=float)
    small = x < _I0_SWITCH
    xs = np.where(small, x, 0.0)
    xl = np.where(small, _I0_SWITCH, x)
    big = (1.0 + 1.0 / (8.0 * xl) + 9.0 / (128.0 * xl * xl)) / np.sqrt(2.0 * np.pi * xl)
    return np.where(small, np.i0(xs) * np.exp(-xs), big)


def _erf_profile(b):
    """G(b) = int_0^1 erf(b u) / u du (b >= 0), the median shift summed over a
    Gaussian profile (see :func:`measure`): 2 b / sqrt(pi) for small b,
    ln(b) + 0.9 or so for large b.  Interpolated in log b from a table (1e-4
    relative); below the table 2 b / sqrt(pi), above it extrapolated
    in ln b (G grows as ln b there)."""
    global _G_TABLE
    if _G_TABLE is None:
        lb = np.linspace(np.log(_G_MIN), np.log(_G_MAX), _G_N)
        # u = exp(-t): int_0^inf erf(b exp(-t)) dt, on a fine grid in t
        t = np.linspace(0.0, np.log(_G_MAX / _G_MIN) + 20.0, 4001)
        vals = _erf(np.exp(lb)[:, None] * np.exp(-t)[None, :])
        _G_TABLE = (lb, _trapezoid(vals, t))
    lb, g = _G_TABLE
    b = np.asarray(b, dtype=float)
    small = b < _G_MIN
    lbb = np.log(np.maximum(b, _G_MIN))
    # linear interpolation on the uniform grid in ln b (np.interp's result,
    # without its binary search)
    t = (lbb - lb[0]) * ((lb.size - 1) / (lb[-1] - lb[0]))
    k = np.clip(t.astype(np.intp), 0, lb.size - 2)
    f = np.clip(t - k, 0.0, 1.0)
    out = g[k] + (g[k + 1] - g[k]) * f + np.maximum(lbb - lb[-1], 0.0)
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
    centre that falls inside its radius ``r_px`` (all pixels; broadcast):
    the Rice distribution's CDF (Rice 1945), integrated here as
    ``int_0^u rho exp(-(rho - v)^2 / 2) exp(-rho v) I0(rho v) d rho`` with
    ``u = r / sigma``, ``v = d / sigma`` (trapezoids of 0.005, error < 1e-5).
    Slow: :func:`enclosed_fast` tabulates it."""
    s = np.asarray(sigma_px, dtype=float)
    u, v = np.broadcast_arrays(np.asarray(r_px, dtype=float) / s,
                               np.asarray(d_px, dtype=float) / s)
    out = np.empty(u.shape)
    for idx in np.ndindex(u.shape):
        rho = np.linspace(0.0, u[idx], max(2, int(np.ceil(u[idx] / _RHO_STEP)) + 1))
        f = rho * np.exp(-0.5 * (rho - v[idx]) ** 2) * _i0e(rho * v[idx])
        out[idx] = _trapezoid(f, rho)
    return out


def _enclosed_grid(u, v):
    """:func:`enclosed` (sigma 1) on the grid ``u`` (radii) x ``v`` (offsets),
    from 0 in steps of ``_TABLE_STEP`` and ``_TABLE_STEP_V``: a cumulative integral over rho
    on a grid ten times finer, sampled at ``u``."""
    fine = _TABLE_STEP / _TABLE_FINE
    rho = np.arange(0.0, u[-1] + fine / 2, fine)
    f = rho[None, :] * np.exp(-0.5 * (rho[None, :] - v[:, None]) ** 2) * _i0e(
        rho[None, :] * v[:, None])
    cum = np.concatenate([np.zeros((v.size, 1)),
                          np.cumsum(0.5 * (f[:, 1:] + f[:, :-1]) * fine, axis=1)], axis=1)
    return np.minimum(cum[:, ::_TABLE_FINE].T, 1.0)


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
    dist = np.asarray(dist_px, dtype=float)
    r_in, r_out = annulus_px
    own = enclosed_fast(aper_radius_px, 0.0, sig)
    ratio = np.asarray(nb_flux, dtype=float) / np.asarray(star_flux, dtype=float)[pair_star]
    median = star_total_adu is not None and sky_sigma_adu is not None
    if median:
        total = np.asarray(star_total_adu, dtype=float)
        noise = np.asarray(sky_sigma_adu, dtype=float)
        use = np.isfinite(noise) & (noise > 0) & np.isfinite(total) & (total > 0)
        noise = np.where(use, noise, 1.0)
        total = np.where(use, total, 1.0)
        psf_area = 2.0 * np.pi * sig ** 2               # peak = flux / psf_area, pixels
        # per star: b = light in the annulus * to_b, median hit = scale * G(b)
        to_b = total / psf_area / (noise * np.sqrt(2.0))
        scale = psf_area * noise * np.sqrt(np.pi / 2.0) / total
    sums = np.zeros((3, n))          # neighbours' light: aperture, annulus, annulus median
    # the stars in blocks, with their pairs
    if np.all(pair_star[1:] >= pair_star[:-1]):
        ps, dd, rr = pair_star, dist, ratio                # grouped by star already
    else:
        order = np.argsort(pair_star, kind="stable")
        ps, dd, rr = pair_star[order], dist[order], ratio[order]
    bounds = np.searchsorted(ps, np.arange(0, n + _BLOCK_STARS, _BLOCK_STARS))
    for k in range(bounds.size - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi == lo:
            continue
        first = k * _BLOCK_STARS
        block = slice(first, min(first + _BLOCK_STARS, n))
        m = block.stop - block.start
        star = ps[lo:hi] - first
        in_aper, in_ann = _enclosed_pairs(aper_radius_px, (r_in, r_out), sig[block], star,
                                          dd[lo:hi])
        in_aper *= rr[lo:hi]
        in_ann *= rr[lo:hi]
        sums[0, block] = np.bincount(star, weights=in_aper, minlength=m)
        sums[1, block] = np.bincount(star, weights=in_ann, minlength=m)
        if median:
            hit = scale[block][star] * _erf_profile(in_ann * to_b[block][star])
            in_ann = np.where(use[block][star], hit, in_ann)
        sums[2, block] = np.bincount(star, weights=in_ann, minlength=m)
    area_ratio = aper_radius_px ** 2 / (r_out ** 2 - r_in ** 2)
    count = np.bincount(pair_star, minlength=n).astype(np.int32)
    return Crowding(c_aper=sums[0] / own, c_annulus=sums[2] * area_ratio / own,
                    c_annulus_max=sums[1] * area_ratio / own, n_neighbours=count)


def _enclosed_pairs(aper_radius_px, annulus_px, sigma_px, star, dist_px):
    """:func:`enclosed_fast` of each pair for the aperture and for the annulus
    (outer minus inner circle).

    The table is first interpolated in r / sigma for each star (a row of
    offsets per star and radius, float32: 1e-7, far below the table's own
    1e-3), then each pair in its star's row at d / sigma: the bilinear
    interpolation of :func:`enclosed_fast`, its two steps taken apart.

    Parameters
    ----------
    aper_radius_px : float
        Aperture radius, pixels.
    annulus_px : tuple of float
        Annulus inner and outer radius, pixels.
    sigma_px : ndarray, shape (n,)
        PSF sigma of each star, pixels.
    star : ndarray of int, shape (m,)
        Star (index into ``sigma_px``) of each pair.
    dist_px : ndarray, shape (m,)
        Distance of each pair, pixels.

    Returns
    -------
    in_aper, in_annulus : ndarray of float64, shape (m,)
        Fractions of the neighbour's PSF in the aperture and in the annulus.
    """
    table, diff = _enclosed_table32()
    nu, nv = table.shape
    v = dist_px / sigma_px[star] / _TABLE_STEP_V
    far = v >= nv - 1
    ncol = min(nv, int(np.max(v)) + 2)
    iv = np.minimum(v.astype(np.intp), ncol - 2)
    fv = np.clip(v - iv, 0.0, 1.0).astype(np.float32)
    at = star * ncol + iv

    def row(r):
        u = float(r) / sigma_px / _TABLE_STEP
        iu = np.clip(u.astype(np.intp), 0, nu - 2)
        fu = np.clip(u - iu, 0.0, 1.0).astype(np.float32)[:, None]
        out = table[iu, :ncol]
        out += fu * diff[iu, :ncol]
        out[u >= nu - 1] = 1.0                # the whole PSF
        return out

    r_in, r_out = annulus_px
    annulus = row(r_out)
    annulus -= row(r_in)
    res = []
    for rows in (row(aper_radius_px), annulus):
        flat = rows.ravel()
        e0 = flat[at]
        e = (e0 + fv * (flat[at + 1] - e0)).astype(float)
        e[far] = 0.0                          # no light of a PSF that far
        res.append(e)
    return res


def _enclosed_table32():
    """The table of :func:`_enclosed_table` and its steps in r / sigma, float32."""
    global _TABLE32
    if _TABLE32 is None:
        t = _enclosed_table().astype(np.float32)
        _TABLE32 = (t, np.diff(t, axis=0))
    return _TABLE32


def _enclosed_table():
    """E(r; d) of :func:`enclosed` on a grid of r / sigma and d / sigma."""
    global _TABLE
    if _TABLE is None:
        u = np.arange(0.0, _TABLE_MAX_U + _TABLE_STEP / 2, _TABLE_STEP)
        v = np.arange(0.0, _TABLE_MAX_V + _TABLE_STEP_V / 2, _TABLE_STEP_V)
        _TABLE = _enclosed_grid(u, v)
    return _TABLE


def enclosed_fast(r_px, d_px, sigma_px):
    """:func:`enclosed` by bilinear interpolation in a table of it (steps 0.05
    sigma in r, 0.1 in d; departs from it by < 1e-3).  Radii beyond the table (> 25 sigma)
    count as enclosing the whole PSF, distances beyond it (> 25 sigma) as
    none of it."""
    table = _enclosed_table()
    s = np.asarray(sigma_px, dtype=float)
    u = np.asarray(r_px, dtype=float) / s / _TABLE_STEP
    v = np.asarray(d_px, dtype=float) / s / _TABLE_STEP_V
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


def _cos_sep(ra_deg, dec_deg, ra0_deg, dec0_deg):
    """Cosine of the angle between positions and one direction (deg in)."""
    d, d0 = np.radians(dec_deg), np.radians(dec0_deg)
    return (np.sin(d) * np.sin(d0)
            + np.cos(d) * np.cos(d0) * np.cos(np.radians(np.asarray(ra_deg) - ra0_deg)))


def pairs_within(x, y, xn, yn, reach_px):
    """Every (star, neighbour) pair nearer than the star's reach.

    A grid of square cells as wide as the largest reach: a star's neighbours
    are in its own cell and the eight around it (numpy only: scipy's k-d
    tree stays out of a default run).

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Stars, pixels.
    xn, yn : ndarray, shape (m,)
        Neighbours, pixels.
    reach_px : ndarray, shape (n,)
        Largest distance of a neighbour from each star, pixels.

    Returns
    -------
    i, j : ndarray of intp
        Indices of the stars and of the neighbours of each pair (distance
        < reach), grouped by star.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xn, yn = np.asarray(xn, dtype=float), np.asarray(yn, dtype=float)
    reach = np.broadcast_to(np.asarray(reach_px, dtype=float), x.shape)
    if x.size == 0 or xn.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    cell = max(float(np.max(reach)), 1.0)
    ox, oy = min(x.min(), xn.min()), min(y.min(), yn.min())
    ncx = int((max(x.max(), xn.max()) - ox) // cell) + 3
    key_n = ((yn - oy) // cell).astype(np.int64) * ncx + ((xn - ox) // cell).astype(np.int64)
    order = np.argsort(key_n, kind="stable")
    keys = key_n[order]
    cx, cy = ((x - ox) // cell).astype(np.int64), ((y - oy) // cell).astype(np.int64)
    out_i, out_j = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            k = (cy + dy) * ncx + (cx + dx)
            lo = np.searchsorted(keys, k, side="left")
            cnt = np.searchsorted(keys, k, side="right") - lo
            i = np.repeat(np.arange(x.size), cnt)
            start = np.repeat(lo - np.cumsum(cnt) + cnt, cnt)
            j = order[start + np.arange(i.size)]
            near = np.hypot(xn[j] - x[i], yn[j] - y[i]) < reach[i]
            out_i.append(i[near])
            out_j.append(j[near])
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    by_star = np.argsort(i, kind="stable")
    return i[by_star], j[by_star]


def _empty(n):
    zero = np.zeros(n)
    return Crowding(c_aper=zero, c_annulus=zero.copy(), c_annulus_max=zero.copy(),
                    n_neighbours=np.zeros(n, np.int32))


def stretch_by_altitude(model, time, site):
    """Smallest stretch of the sky onto the chip at each of a set of altitudes.

    On a grid of directions above the horizon (:data:`_STRETCH_ALT_DEG` x
    every :data:`_STRETCH_AZ_STEP_DEG` of azimuth), the ICRS sky is moved by
    :data:`_STRETCH_STEP_DEG` east and north, taken through the apparent
    place and refraction (:func:`allsky_camera.camera.coords.radec_to_altaz`)
    and the camera model, and the smaller singular value of the 2 x 2
    Jacobian is kept, the smallest over azimuth: two stars ``d`` pixels
    apart there are at most ``d / stretch`` degrees apart on the sky
    (refraction squeezes the horizon by ~20 %: the minimum is there).

    Returns
    -------
    alt_deg : ndarray
        The altitudes, deg (increasing).
    stretch : ndarray
        Pixels per degree at each (the smallest over the chip where the
        model gives no finite pixel at an altitude; NaN if nowhere).
    """
    from allsky_camera.camera import coords

    alts = np.asarray(_STRETCH_ALT_DEG, dtype=float)
    alt, az = np.meshgrid(alts, np.arange(0.0, 360.0, _STRETCH_AZ_STEP_DEG))
    ra, dec = coords.altaz_to_radec(alt.ravel(), az.ravel(), time, site)
    a, d = np.radians(ra), np.radians(dec)
    p = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    east = np.stack([-np.sin(a), np.cos(a), np.zeros_like(a)])
    north = np.stack([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)])
    h = np.tan(np.radians(_STRETCH_STEP_DEG))       # p + h t is _STRETCH_STEP_DEG from p
    v = np.concatenate([p, p + h * east, p + h * north], axis=1)
    ra_v = np.mod(np.degrees(np.arctan2(v[1], v[0])), 360.0)
    dec_v = np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1])))
    alt_o, az_o = coords.radec_to_altaz(ra_v, dec_v, time, site)
    xs, ys = model.altaz_to_xy(alt_o, az_o)
    xs, ys = xs.reshape(3, -1) / _STRETCH_STEP_DEG, ys.reshape(3, -1) / _STRETCH_STEP_DEG
    j11, j21 = xs[1] - xs[0], ys[1] - ys[0]
    j12, j22 = xs[2] - xs[0], ys[2] - ys[0]
    # the smaller singular value of [[j11, j12], [j21, j22]]
    tr = j11 ** 2 + j21 ** 2 + j12 ** 2 + j22 ** 2
    det = np.abs(j11 * j22 - j12 * j21)
    smin = np.sqrt(np.maximum(0.5 * tr - np.sqrt(np.maximum(0.25 * tr * tr - det * det, 0.0)),
                              0.0)).reshape(alt.shape)
    smin = np.where(np.isfinite(smin), smin, np.inf).min(axis=0)
    finite = np.isfinite(smin)
    if not finite.any():
        return alts, np.full(alts.shape, np.nan)
    return alts, np.where(finite, smin, smin[finite].min())


def local_stretch(alt_deg, alts, stretch, band_deg):
    """The smallest of :func:`stretch_by_altitude`'s ``stretch`` within
    ``band_deg`` of each altitude ``alt_deg`` (and at the grid altitudes just
    outside that band), pixels per degree."""
    a = np.asarray(alt_deg, dtype=float)
    lo = np.clip(np.searchsorted(alts, a - band_deg, side="right") - 1, 0, alts.size - 1)
    hi = np.clip(np.searchsorted(alts, a + band_deg, side="left"), 0, alts.size - 1)
    k = np.arange(alts.size)
    inside = (k >= lo[:, None]) & (k <= hi[:, None])
    return np.where(inside, stretch, np.inf).min(axis=1)


def sky_reach_deg(reach_px, stretch_px_per_deg):
    """The angle searched on the sky for neighbours ``reach_px`` pixels away:
    ``reach / stretch`` widened by :data:`_SKY_REACH_SAFETY` and rounded up
    to a power of :data:`_SKY_REACH_STEP` (so the frames of a night share
    one, the key of the neighbour cache), deg; NaN if it would exceed
    :data:`_MAX_SKY_REACH_DEG`."""
    need = float(reach_px) / float(stretch_px_per_deg) * _SKY_REACH_SAFETY
    if not np.isfinite(need) or need <= 0.0 or need > _MAX_SKY_REACH_DEG:
        return float("nan")
    k = np.ceil(np.log(need) / np.log(_SKY_REACH_STEP))
    return float(_SKY_REACH_STEP ** k)


def run(stars, x, y, model, time, site, apcor_mag, phot, shape, *, star_total_adu=None,
        sky_sigma_adu=None):
    """Crowding of the reference stars on one exposure.

    Every star of hip2.dat (down to its faint limit) is projected through
    the exposure's camera model, so the distance between two stars is in
    the exposure's pixels wherever they are on the fisheye.

    Only the catalogue stars near a reference star on the sky are projected:
    the pairs within the largest angle any star's reach can span on this
    camera (:func:`stretch_by_altitude`, :func:`sky_reach_deg`; each star
    keeps those within its own reach at its altitude) and the
    stars' CIRS positions are kept per process
    (:mod:`allsky_camera.stages._crowd_cache`: the latter per UTC hour,
    < 0.015 arcsec from the exposure's own).  Reference stars missing from
    the deep catalogue, or a camera model too coarse for the sky search,
    take the exhaustive search over the whole projected catalogue.

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
    from allsky_camera.camera import coords
    from allsky_camera.stages import _crowd_cache, catalog

    n = len(stars)
    if n == 0:
        return _empty(0)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sigma = psf_sigma_px(apcor_mag, phot.aper_radius_px)
    reach_px = phot.annulus_px[1] + _PSF_REACH_SIGMA * sigma
    margin = float(np.max(reach_px))
    deep = catalog.load_catalog(catalog.DEEP_VMAX)
    hip = np.asarray(stars["HIP"])
    k = np.minimum(np.searchsorted(deep["hip"], hip), deep["hip"].size - 1)
    alts, stretch = stretch_by_altitude(model, time, site)
    angle = sky_reach_deg(margin, np.min(stretch))
    if not (np.all(deep["hip"][k] == hip) and np.isfinite(angle)):
        log.debug("crowding: exhaustive neighbour search (sky angle %s deg)", angle)
        return run_exhaustive(stars, x, y, model, time, site, apcor_mag, phot, shape,
                              star_total_adu=star_total_adu, sky_sigma_adu=sky_sigma_adu)
    # each star's own angle, from the plate scale around its altitude
    alt_star = model.xy_to_altaz(x, y)[0]
    within = reach_px * _SKY_REACH_SAFETY / local_stretch(alt_star, alts, stretch, angle)
    i, j = _crowd_cache.sky_neighbours(deep, k, angle, time.jd_tt, within_deg=within)
    need = np.zeros(deep["hip"].size, dtype=bool)
    need[j] = True
    idx = np.flatnonzero(need)
    places = _crowd_cache.apparent_places(deep, idx, time, site)
    # every star here is within a few degrees of a reference star above the
    # horizon, so (unlike the whole catalogue of run_exhaustive) it needs no
    # horizon pre-cut before the observed place: the few below take it and
    # fail alt > 0
    alt, az = coords.cirs_to_altaz(places.ri_rad, places.di_rad, time, site)
    up = alt > 0
    idx, alt, az = idx[up], alt[up], az[up]
    xn, yn = model.altaz_to_xy(alt, az)
    ny, nx = shape
    near = (xn > -margin) & (xn < nx + margin) & (yn > -margin) & (yn < ny + margin)
    # pixel positions over the whole catalogue, NaN off the chip or below
    # the horizon (so those pairs fail the distance test below)
    on_chip = idx[near]
    x_all = np.full(deep["hip"].size, np.nan)
    y_all = np.full(deep["hip"].size, np.nan)
    flux_all = np.zeros(deep["hip"].size)
    x_all[on_chip], y_all[on_chip] = xn[near], yn[near]
    flux_all[on_chip] = _crowd_cache.catalogue_flux(deep)[on_chip]
    dx = x_all[j]
    dx -= x[i]
    dy = y_all[j]
    dy -= y[i]
    d2 = dx * dx
    d2 += dy * dy
    close = d2 < (reach_px ** 2)[i]
    n_sky = i.size
    i, j, dist = i[close], j[close], np.sqrt(d2[close])
    cr = measure(10.0 ** (-0.4 * np.asarray(stars["VMAG"], dtype=float)), flux_all[j], i, dist,
                 sigma, aper_radius_px=phot.aper_radius_px, annulus_px=tuple(phot.annulus_px),
                 star_total_adu=star_total_adu, sky_sigma_adu=sky_sigma_adu)
    log.debug("crowding: %d neighbour pairs (%d on the sky within %.2f deg) among %d "
              "catalogue stars on the chip", i.size, n_sky, angle, np.count_nonzero(near))
    return cr


def run_exhaustive(stars, x, y, model, time, site, apcor_mag, phot, shape, *,
                   star_total_adu=None, sky_sigma_adu=None):
    """:func:`run` with the whole catalogue projected at the exposure's own
    epoch and searched in pixels (:func:`pairs_within`): no cache, slower."""
    from allsky_camera.camera import coords
    from allsky_camera.stages import catalog

    n = len(stars)
    sigma = psf_sigma_px(apcor_mag, phot.aper_radius_px)
    reach_px = phot.annulus_px[1] + _PSF_REACH_SIGMA * sigma
    deep = catalog.reference_stars(time.jd_tt, catalog.DEEP_VMAX)
    # only the sky above the horizon (and a little below: refraction) goes
    # through the full apparent-place chain
    ra_z, dec_z = coords.altaz_to_radec(90.0, 0.0, time, site)
    sky = _cos_sep(np.asarray(deep["RA"]), np.asarray(deep["DEC"]), ra_z, dec_z) > _COS_HORIZON
    alt, az = coords.radec_to_altaz(np.asarray(deep["RA"])[sky], np.asarray(deep["DEC"])[sky],
                                    time, site)
    up = alt > 0
    xn, yn = model.altaz_to_xy(alt[up], az[up])
    margin = float(np.max(reach_px)) if n else 0.0
    ny, nx = shape
    near = (xn > -margin) & (xn < nx + margin) & (yn > -margin) & (yn < ny + margin)
    xn, yn = xn[near], yn[near]
    hip_n = np.asarray(deep["HIP"])[sky][up][near]
    v_n = np.asarray(deep["VMAG"], dtype=float)[sky][up][near]
    if n == 0 or xn.size == 0:
        zero = np.zeros(n)
        return Crowding(c_aper=zero, c_annulus=zero.copy(), c_annulus_max=zero.copy(),
                        n_neighbours=np.zeros(n, np.int32))
    i, j = pairs_within(x, y, xn, yn, reach_px)
    other = hip_n[j] != np.asarray(stars["HIP"])[i]     # a star is not its own neighbour
    i, j = i[other], j[other]
    cr = measure(10.0 ** (-0.4 * np.asarray(stars["VMAG"], dtype=float)),
                 10.0 ** (-0.4 * v_n[j]), i, np.hypot(xn[j] - x[i], yn[j] - y[i]), sigma,
                 aper_radius_px=phot.aper_radius_px, annulus_px=tuple(phot.annulus_px),
                 star_total_adu=star_total_adu, sky_sigma_adu=sky_sigma_adu)
    log.debug("crowding: %d neighbour pairs among %d catalogue stars on the chip", i.size,
              xn.size)
    return cr
