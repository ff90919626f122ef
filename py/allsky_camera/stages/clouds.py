"""Cloud map: star transparency and sky texture combined, one state per sky cell.

Two kinds of evidence are kept per HEALPix cell (RING, horizontal
coordinates: theta = 90 deg - altitude, phi = azimuth north through east):

* **stars** (:mod:`allsky_camera.stages.transparency`): the weighted median
  transparency of the stars that vote in the cell, taken as given (the
  better the photometric model, the better this evidence);
* **sky texture**: clouds lit from below (Moon, twilight, city lights) show
  as structure in the sky background that a clear sky does not have.  The
  image is reduced to a grid of block medians (a decimated grid: every
  ``texture_stride_px``-th pixel, ``texture_block_px`` blocks, so stars drop
  out), a smooth sky model is a running median of that grid, and the
  texture of a cell is the robust RMS of the block residuals in excess of
  their noise, relative to the sky level.

Each kind gives a call (clear or cloud) and a confidence in [0, 1]
(0: a coin toss, 1: certain), ``erf(|value - threshold| / (sqrt(2) sigma))``
for a Gaussian error ``sigma``: twice the probability that the call is
right, minus one.  The cell takes the call of
the more confident kind (when they agree their confidences combine as
independent evidence).  A sky cell with no usable evidence of its own
borrows that of the cells around it, at a confidence that falls with their
distance (:mod:`allsky_camera.stages.cloud_reach`; ``CloudMap.evidence_deg``
says how far the evidence behind each state lies, 0 for its own): a cell is
*unknown*, never clear or cloud, only when no evidence lies within reach (a
correlation length or so, ``transparency.cloud_corr_deg``) or the evidence
around it disagrees; a cell the camera does not see (obstruction mask, below the
horizon, outside the lens) is *not sky*, whatever its neighbours say.  A
smooth sky is weaker evidence
of clear than a structured one is of cloud (an overcast can be smooth), so
the confidence of a texture "clear" call is capped, and such a call decides
only cells where no star gives evidence, on an exposure whose star cells are
not mostly cloud.

Pixel conventions: 0-based, x = column (fast axis), pixel centres at
integers; angles in degrees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from allsky_camera.exceptions import AllskyError

log = logging.getLogger(__name__)

#: State codes of the cloud map (the -clouds.fits image and the HEALPix maps).
CLEAR, CLOUD, UNKNOWN, NOT_SKY = 0, 1, 2, 3
STATE_NAMES = {CLEAR: "clear", CLOUD: "cloud", UNKNOWN: "unknown", NOT_SKY: "not sky"}
#: Sun altitudes (deg) that bound twilight: astronomical twilight ends at
#: -18 deg; sunrise and sunset are at -0.833 deg (refraction at the horizon
#: plus the Sun's semi-diameter, the almanac convention).
TWILIGHT_SUN_ALT_DEG = -18.0
DAY_SUN_ALT_DEG = -0.833
#: -clouds.fits evaluates the cells every this many pixels (a cell is some
#: 40 px across; the masks are applied at every pixel).
PIXEL_MAP_STRIDE = 2
#: The standard deviation of the median of n Gaussian samples is about
#: sqrt(pi / 2) sigma / sqrt(n) (asymptotic efficiency of the median).
MEDIAN_EFFICIENCY = np.sqrt(np.pi / 2.0)
#: MAD to Gaussian sigma.
MAD_TO_SIGMA = 1.4826
#: Difference of two independent pixels: sigma times sqrt(2).
SQRT2 = np.sqrt(2.0)
#: Relative standard error of a MAD-based sigma from n Gaussian samples,
#: times sqrt(n): the MAD's asymptotic efficiency is 36.8 % (Rousseeuw &
#: Croux 1993, JASA 88, 1273), so the error is 1 / sqrt(2 * 0.368 n).
MAD_SIGMA_REL_ERROR = 1.0 / np.sqrt(2.0 * 0.368)


#: Flags that keep a star out of the cloud map: those of the exposure's
#: transparency summary except OUTSIDE_SAFE, so that the map reaches the
#: horizon wherever stars are seen.
MAP_NON_CLOUD_FLAGS = ("NOT_ISOLATED", "MOON", "EDGE", "SATURATED", "BAD_PIXEL", "OTHER_STAR")


def star_weights(flags, expected_snr, cfg):
    """Vote weight of each star in the cloud map (expected S/N squared; 0: no vote).

    As :func:`allsky_camera.stages.transparency.vote_weight`, with stars beyond the
    safe radius voting too (:data:`MAP_NON_CLOUD_FLAGS`).
    """
    from allsky_camera.stages.transparency import vote_weight

    return vote_weight(flags, expected_snr, cfg.min_expected_snr,
                       non_cloud_flags=MAP_NON_CLOUD_FLAGS)


@dataclass(frozen=True)
class Texture:
    """Sky texture on the block grid.

    Attributes
    ----------
    level : ndarray, (nby, nbx)
        Block median, ADU; NaN where the block is masked.
    model : ndarray
        Smooth sky model: mean of the four blocks ``model_blocks // 2`` away
        along y and x (of the two of one axis where the other's are masked;
        NaN where both pairs are), ADU.
    noise : ndarray
        Expected noise of the residual ``level - model``, ADU (from
        neighbouring-pixel differences in the block).
    xc, yc : ndarray
        Pixel coordinates of the block centres.
    open_fraction : ndarray
        Fraction of the block's sampled pixels that the mask leaves open
        (before any growth; 1 without a mask): how much of the block sees
        the sky, whether or not it is clean enough for a texture.
    """

    level: np.ndarray
    model: np.ndarray
    noise: np.ndarray
    xc: np.ndarray
    yc: np.ndarray
    open_fraction: np.ndarray

    @property
    def residual(self):
        """Block level minus the smooth model, ADU (NaN where masked)."""
        return self.level - self.model


def block_texture(image, mask, *, block_px, stride_px, model_blocks, grow_blocks=0,
                  sky_circle=None):
    """Block medians, their smooth model and their noise.

    Parameters
    ----------
    image : ndarray, (ny, nx)
        Detrended image, ADU.
    mask : ndarray of bool or None
        True where the pixel is not sky (obstructions, bad pixels, the Moon's
        surroundings); a block with any masked sampled pixel is masked.
    block_px : int
        Block side, pixels (a multiple of ``stride_px``).
    stride_px : int
        Sampling step inside a block, pixels.
    model_blocks : int
        The smooth model at a block is the mean of the four blocks
        ``model_blocks // 2`` away along x and y.
    grow_blocks : int
        Masked blocks grow by this many blocks (the edges of trees and
        buildings are structure, not cloud).
    sky_circle : (float, float, float), optional
        ``(x0, y0, radius)``, pixels: the horizon's circle on the image.  A
        block reaching beyond it is masked like an obstructed one (the sky
        falls off steeply at the edge of the field: structure, not cloud).

    Returns
    -------
    Texture
    """
    if block_px % stride_px or block_px < 2 * stride_px:
        raise AllskyError(f"texture block {block_px} px must be a multiple (>= 2) of the "
                          f"stride {stride_px} px: change transparency.texture_block_px")
    img = np.asarray(image, dtype=np.float32)
    ny, nx = img.shape
    nby, nbx = ny // block_px, nx // block_px
    k = block_px // stride_px
    sub = img[:nby * block_px:stride_px, :nbx * block_px:stride_px]
    blocks = sub.reshape(nby, k, nbx, k).transpose(0, 2, 1, 3).reshape(nby, nbx, k * k)
    level = np.median(blocks, axis=2)
    # noise: neighbours on the sampled grid, differenced (no sky gradient left)
    diff = np.abs(blocks[..., 1::2] - blocks[..., 0:-1:2])
    sigma_pix = MAD_TO_SIGMA * np.median(diff, axis=2) / SQRT2
    noise = MEDIAN_EFFICIENCY * sigma_pix / np.sqrt(k * k)
    bad = ~np.isfinite(level)
    open_fraction = np.ones((nby, nbx))
    hidden = np.zeros((nby, nbx), dtype=bool)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)[:nby * block_px:stride_px, :nbx * block_px:stride_px]
        m = m.reshape(nby, k, nbx, k)
        open_fraction = 1.0 - m.mean(axis=(1, 3))
        hidden |= m.any(axis=(1, 3))
    if grow_blocks > 0 and hidden.any():
        hidden = grow(hidden, grow_blocks)
    if sky_circle is not None:
        # (not grown: the blocks inside take their model from the other pair)
        # a block's sampled pixel farthest from the centre is one of its corners
        x0, y0, radius = sky_circle
        lo_y, lo_x = np.arange(nby) * block_px, np.arange(nbx) * block_px
        far_y = np.maximum(np.abs(lo_y - y0), np.abs(lo_y + block_px - stride_px - y0))
        far_x = np.maximum(np.abs(lo_x - x0), np.abs(lo_x + block_px - stride_px - x0))
        hidden |= np.hypot(far_x[None, :], far_y[:, None]) > radius
    bad |= hidden
    # smooth sky model: at each block, the mean of the four blocks
    # ``model_blocks // 2`` away along x and y.  A linear gradient leaves no
    # residual and a quadratic one (the sky's radial profile, the Moon's
    # glare) a nearly constant one, which the ring median removes (cell_texture).
    d = max(model_blocks // 2, 1)
    lv = np.where(bad, np.nan, level).astype(np.float32)
    p = np.pad(lv, d, constant_values=np.nan)
    # the y pair and the x pair; where a mask hides one pair, the other serves
    # (a thin wire or a tree edge then takes no more sky than itself)
    pairs = np.stack([0.5 * (p[:-2 * d, d:-d] + p[2 * d:, d:-d]),
                      0.5 * (p[d:-d, :-2 * d] + p[d:-d, 2 * d:])])
    n_pairs = np.sum(np.isfinite(pairs), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        model = np.where(n_pairs > 0, np.nansum(pairs, axis=0) / np.maximum(n_pairs, 1),
                         np.nan)
    noise = noise * np.sqrt(1.0 + 2.0 / (4.0 * np.maximum(n_pairs, 1)))
    bad |= ~np.isfinite(model)
    yc = (np.arange(nby) * block_px + (block_px - stride_px) / 2.0)
    xc = (np.arange(nbx) * block_px + (block_px - stride_px) / 2.0)
    xc, yc = np.meshgrid(xc, yc)
    # (the residual's noise: the block's own plus that of the mean of the
    # 2 or 4 blocks of its model, above)
    return Texture(np.where(bad, np.nan, level), model, np.where(bad, np.nan, noise), xc, yc,
                   open_fraction)


def cell_texture(tex, cell, n_cells, *, min_blocks, ring=None):
    """Texture of each sky cell.

    Parameters
    ----------
    tex : Texture
    cell : ndarray of int, shape of ``tex.level``
        Sky cell each block sees; -1 where none (below the horizon).
    n_cells : int
    min_blocks : int
        Fewer unmasked blocks in a cell: no texture evidence there.
    ring : ndarray of int, shape of ``tex.level``, optional
        Zenith-distance ring of each block: the median residual of each ring
        is removed first (the sky's radial curvature leaves a residual that
        is constant along a ring; clouds do not).

    Returns
    -------
    amp : ndarray
        Robust RMS (MAD about zero) of the block residuals in the cell, in
        excess of their noise, relative to the
        sky level (0.02: 2 % structure); NaN where not measured.
    noise_rel : ndarray
        Noise of a block median relative to the sky level (the smallest
        texture the cell can show).
    n_blocks : ndarray of int
        Unmasked blocks in the cell.
    """
    from allsky_camera.stages.transparency import grouped_weighted_median

    ok = np.isfinite(tex.level) & (cell >= 0)
    g = np.where(ok, cell, -1).ravel()
    res = np.where(ok, tex.residual, np.nan).ravel()
    ones = np.ones(g.size)
    if ring is not None:
        rg = np.where(ok, ring, -1).ravel()
        n_ring = int(rg.max()) + 1 if rg.size else 0
        centre, _ = grouped_weighted_median(rg, res, ones, max(n_ring, 1))
        res = res - np.where(rg >= 0, centre[np.maximum(rg, 0)], 0.0)
    mad, n = grouped_weighted_median(g, np.abs(res), ones, n_cells)
    # the sky level and the noise vary smoothly: their means suffice
    sel = g >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        lev = (np.bincount(g[sel], weights=tex.model.ravel()[sel], minlength=n_cells)
               / np.bincount(g[sel], minlength=n_cells))
        noi = (np.bincount(g[sel], weights=tex.noise.ravel()[sel], minlength=n_cells)
               / np.bincount(g[sel], minlength=n_cells))
    rms = MAD_TO_SIGMA * mad
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.sqrt(np.maximum(rms ** 2 - noi ** 2, 0.0))
        amp = excess / lev
        noise_rel = noi / lev
    bad = (n < min_blocks) | ~(lev > 0)
    return np.where(bad, np.nan, amp), np.where(bad, np.nan, noise_rel), n


def confidence(value, threshold, sigma):
    """Probability that ``value`` is on its side of ``threshold`` (Gaussian error ``sigma``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(np.asarray(value, dtype=float) - threshold) / (SQRT2 * np.asarray(sigma))
    return np.where(np.isfinite(z), _erf(np.where(np.isfinite(z), z, 0.0)), 0.0)


#: Abramowitz & Stegun (1964), Handbook of Mathematical Functions, 7.1.26:
#: erf(z) = 1 - (a1 t + ... + a5 t^5) exp(-z^2), t = 1 / (1 + p z), z >= 0,
#: absolute error below 1.5e-7 (numpy has no erf; the default run has no scipy).
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(z):
    """erf of non-negative ``z`` (A&S 7.1.26)."""
    t = 1.0 / (1.0 + _AS_P * z)
    poly = t * (_AS_A[0] + t * (_AS_A[1] + t * (_AS_A[2] + t * (_AS_A[3] + t * _AS_A[4]))))
    return 1.0 - poly * np.exp(-z * z)


def grow(mask, n):
    """``mask`` dilated ``n`` times by its 8 neighbours (pure numpy)."""
    m = np.asarray(mask, dtype=bool)
    for _ in range(n):
        p = np.pad(m, 1)
        m = np.zeros_like(m)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                m |= p[dy:dy + m.shape[0], dx:dx + m.shape[1]]
    return m


@dataclass(frozen=True)
class CloudMap:
    """Per-cell cloud states and the evidence behind them.

    Attributes
    ----------
    nside : int
        HEALPix Nside of the cells (RING, horizontal).
    state : ndarray of uint8
        :data:`CLEAR`, :data:`CLOUD`, :data:`UNKNOWN` or :data:`NOT_SKY`.
    transparency : ndarray of float32
        Estimated transparency (stars' weighted median); NaN where no star
        evidence.
    confidence : ndarray of float32
        How sure the state is, 0 (coin toss) to 1, 0 for unknown and not-sky
        cells; for a state borrowed from the cells around it, lower than its
        lenders' (see ``evidence_deg``).
    star_transp, star_conf, star_n : ndarray
        Star evidence: weighted median transparency, confidence, voting stars.
    texture_amp, texture_conf : ndarray
        Texture evidence: relative structure amplitude and its confidence.
    sky_fraction : ndarray
        Fraction of the cell that the obstruction mask leaves open (0: not sky).
    evidence_deg : ndarray of float32 or None
        Distance from the cell to the evidence behind its state, deg: 0 for
        the cell's own, > 0 for evidence borrowed from the nearest lending
        cell (:mod:`allsky_camera.stages.cloud_reach`; its confidence is
        lower than the lender's), NaN for unknown and not-sky cells.  None:
        every clear or cloud state is the cell's own.
    corr_deg : float
        Correlation length the borrowed evidence was weighted with, deg
        (0: none borrowed; :func:`pixel_maps` then borrows nothing either).
    min_confidence : float
        A borrowed call less sure than this was left unknown.
    """

    nside: int
    state: np.ndarray
    transparency: np.ndarray
    confidence: np.ndarray
    star_transp: np.ndarray
    star_conf: np.ndarray
    star_n: np.ndarray
    texture_amp: np.ndarray
    texture_conf: np.ndarray
    sky_fraction: np.ndarray
    evidence_deg: np.ndarray | None = None
    corr_deg: float = 0.0
    min_confidence: float = 0.0

    def fractions(self):
        """Fractions of the visible sky that are clear, cloud, unknown.

        Each sky cell (not 'not sky') counts by its :attr:`sky_fraction`, the
        part of it the obstruction mask leaves open: a cell by the trees that
        shows a sliver of sky counts as that sliver.
        """
        area = np.where(self.state != NOT_SKY, np.asarray(self.sky_fraction, dtype=float), 0.0)
        total = float(area.sum())
        if not total > 0:
            return {name: float("nan") for name in ("clear", "cloud", "unknown")}
        return {STATE_NAMES[s]: float(area[self.state == s].sum() / total)
                for s in (CLEAR, CLOUD, UNKNOWN)}

    def header_cards(self):
        """``(keyword, value, comment)`` cards: the state codes and the fractions."""
        f = self.fractions()

        def r(v):
            return round(v, 4) if np.isfinite(v) else "NaN"
        return [("CLDCODE0", "clear", "state code 0"),
                ("CLDCODE1", "cloud", "state code 1"),
                ("CLDCODE2", "unknown", "state code 2: no usable evidence"),
                ("CLDCODE3", "not sky", "state code 3: obstruction, below horizon"),
                ("CLDNSIDE", self.nside, "HEALPix Nside of the cloud cells"),
                ("CLDCLEAR", r(f["clear"]), "fraction of the visible sky clear"),
                ("CLDCLOUD", r(f["cloud"]), "fraction of the visible sky cloudy"),
                ("CLDUNKN", r(f["unknown"]), "fraction of the visible sky unknown")]


def summary_message(cmap, star_summary, sun_alt_deg, cfg):
    """Log level and one-line summary of the cloud map for the run's log.

    A bright sky (twilight, day) with few stars says so, rather than
    "cloudy"; the map is then mostly the sky texture's.

    Parameters
    ----------
    cmap : CloudMap
    star_summary : transparency.TransparencySummary
    sun_alt_deg : float
    cfg : config.Transparency

    Returns
    -------
    level : int
        ``logging.INFO`` or ``logging.WARNING``.
    message : str
    """
    f = cmap.fractions()
    n_sky = int(np.sum(cmap.state != NOT_SKY))
    n_star = int(np.sum(cmap.star_conf > 0))
    n_tex = int(np.sum(cmap.texture_conf > 0))
    n_lent = 0 if cmap.evidence_deg is None else int(np.sum(cmap.evidence_deg > 0))
    text = (f"clear {f['clear']:.2f}, cloud {f['cloud']:.2f}, unknown {f['unknown']:.2f} of the "
            f"visible sky ({n_sky} cells; star evidence in {n_star}, sky texture in {n_tex}, "
            f"neighbours' in {n_lent}; {star_summary.n_voting} stars voted)")
    sky = ("day" if sun_alt_deg > DAY_SUN_ALT_DEG else
           "twilight" if sun_alt_deg > TWILIGHT_SUN_ALT_DEG else None)
    if sky and n_star < n_tex:
        return logging.WARNING, (f"{sky} (Sun at {sun_alt_deg:.1f} deg): sky too bright for "
                                 f"most stars; the map is the sky texture's: {text}")
    known = f["clear"] + f["cloud"]
    if n_sky == 0 or not known > 0:
        return logging.WARNING, f"no usable evidence of clouds on this frame: {text}"
    if f["cloud"] / known > 1.0 - cfg.cloudy_warning:
        return logging.WARNING, f"mostly cloudy: {text}"
    return logging.INFO, text


def combine(*, star_transp, star_weight, star_n, texture_amp, texture_noise, sky_fraction,
            cfg, texture_n=None):
    """Cell states from star and texture evidence.

    Parameters
    ----------
    star_transp : ndarray
        Weighted median transparency of the voting stars per cell (NaN: none).
    star_weight : ndarray
        Sum of the vote weights (expected S/N squared) per cell.
    star_n : ndarray of int
        Voting stars per cell.
    texture_amp, texture_noise : ndarray
        From :func:`cell_texture` (NaN: not measured).
    sky_fraction : ndarray
        Fraction of the cell that sees the sky; 0 is not sky.
    cfg : config.Transparency
    texture_n : ndarray of int, optional
        Blocks behind each cell's texture: the amplitude of few blocks is
        less certain (the MAD's standard error, :data:`MAD_SIGMA_REL_ERROR`
        / sqrt(n), adds to ``cfg.texture_scatter``); None: not counted.

    Returns
    -------
    state, transparency, confidence, star_conf, texture_conf : ndarray
    """
    thr = cfg.clear_threshold
    st = np.asarray(star_transp, dtype=float)
    n = np.asarray(star_n)
    w = np.asarray(star_weight, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sig_s = np.hypot(1.0 / np.sqrt(w), cfg.star_scatter / np.sqrt(n))
    star_ok = (n >= cfg.min_cell_stars) & np.isfinite(st)
    star_conf = np.where(star_ok, confidence(st, thr, sig_s), 0.0)
    star_cloud = st < thr

    amp = np.asarray(texture_amp, dtype=float)
    noi = np.asarray(texture_noise, dtype=float)
    tthr = cfg.texture_cloud
    # sensitive: the cell's noise lets a cloud's texture show
    tex_ok = np.isfinite(amp) & (noi < tthr)
    tex_cloud = amp > tthr
    # the amplitude's error: noise of the block residual plus the scatter of an
    # RMS (a cell-to-cell scatter, and the MAD's own error from few blocks)
    rel = np.full(amp.shape, float(cfg.texture_scatter))
    if texture_n is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.hypot(rel, MAD_SIGMA_REL_ERROR / np.sqrt(np.asarray(texture_n, float)))
    tex_conf = np.where(tex_ok, confidence(amp, tthr, np.hypot(noi, rel * tthr)), 0.0)
    tex_conf = np.where(tex_cloud, tex_conf, np.minimum(tex_conf, cfg.texture_clear_conf_max))

    agree = star_ok & tex_ok & (star_cloud == tex_cloud)
    # a smooth sky is weak evidence: it decides only where no star speaks;
    # structure (a cloud call) overrules the stars when it is the surer one
    use_star = star_ok & ((star_conf >= tex_conf) | ~(tex_ok & tex_cloud))
    cloud = np.where(use_star, star_cloud, tex_cloud)
    conf = np.where(agree, 1.0 - (1.0 - star_conf) * (1.0 - tex_conf),
                    np.maximum(star_conf, tex_conf))
    known = (star_ok | tex_ok) & (conf >= cfg.min_confidence)
    # a smooth sky alone is clear only on an exposure whose star cells are not
    # mostly cloud: under an overcast lit from below the sky is smooth too
    judged = star_ok & (star_conf >= cfg.min_confidence)
    if (judged.sum() >= cfg.texture_prior_min_cells
            and np.mean(star_cloud[judged]) > cfg.texture_clear_max_cloud):
        known &= ~(~star_ok & ~cloud)
    state = np.where(known, np.where(cloud, CLOUD, CLEAR), UNKNOWN)
    state = np.where(np.asarray(sky_fraction) > 0, state, NOT_SKY).astype(np.uint8)
    conf = np.where((state == CLEAR) | (state == CLOUD), conf, 0.0)
    transp = np.where(star_ok, st, np.nan)
    return (state, transp.astype(np.float32), conf.astype(np.float32),
            star_conf.astype(np.float32), tex_conf.astype(np.float32))


def near_ghost(model, source_altaz, az_deg, alt_deg, radius_deg):
    """True where a direction lies near the lens ghost of a bright source.

    Reflections between the surfaces of a lens symmetric about its axis put
    ghost images of a bright source on the line through the source's image
    and the optical centre; the brightest lies near the point symmetric to
    the source about the centre.  Its discs and arcs are structure of the
    lens, not of the sky.

    Parameters
    ----------
    model : CameraModel
    source_altaz : (float, float)
        Altitude and azimuth of the source (the Moon), deg.
    az_deg, alt_deg : ndarray
        Directions to test, deg.
    radius_deg : float
        Angular radius about the ghost's direction, deg.

    Returns
    -------
    ndarray of bool (all False when the mirrored point is off the sky)
    """
    from allsky_camera.camera.coords import angular_sep

    x, y = model.altaz_to_xy(np.array([source_altaz[0]]), np.array([source_altaz[1]]))
    gx, gy = 2.0 * model.x0 - x, 2.0 * model.y0 - y
    g_alt, g_az = model.xy_to_altaz(gx, gy)
    if not (np.isfinite(g_alt[0]) and g_alt[0] > -radius_deg):
        return np.zeros(np.shape(alt_deg), dtype=bool)
    return angular_sep(az_deg, alt_deg, g_az[0], g_alt[0]) < radius_deg


def run(image, model, *, star_cell, star_transp, star_weight, cfg, mask=None,
        horizon_alt_deg=0.0, moon_altaz=None, moon_exclusion_deg=0.0, stars_known=True,
        night=True):
    """The cloud map of one exposure.

    Parameters
    ----------
    image : ndarray, (ny, nx)
        Detrended image, ADU.
    model : CameraModel
        Fitted astrometric model.
    star_cell : ndarray of int
        HEALPix cell of each star (RING, horizontal, ``cfg.nside``), -1: none.
    star_transp, star_weight : ndarray
        Per-star transparency and vote weight (0: no vote), from
        :func:`allsky_camera.stages.transparency.run`.
    cfg : config.Transparency
    mask : ndarray of bool, optional
        True where the sky is hidden (obstructions, bad pixels).
    horizon_alt_deg : float
        Sky below this altitude is not sky.
    moon_altaz : (float, float), optional
        Moon altitude and azimuth, deg; its surroundings (the halo's own
        gradient) and those of its lens ghost (:func:`near_ghost`) carry no
        texture evidence.
    moon_exclusion_deg : float
        Radius of those surroundings, deg.
    stars_known : bool
        False when the astrometry failed: the stars give no evidence, and,
        if the sky was dark enough for stars to vote in
        ``cfg.texture_prior_min_cells`` or more cells' worth of stars (their
        expected S/N, not their detection), the stars were most likely lost
        to cloud: cells where stars were expected are cloud, with confidence
        ``cfg.lost_stars_conf``, unless their texture says otherwise, and a
        smooth sky elsewhere is not taken for clear.
    night : bool
        The Sun is below astronomical twilight (:data:`TWILIGHT_SUN_ALT_DEG`);
        in twilight a bright sky, not a cloud, may hide the stars, and the
        rule above does not apply.

    Returns
    -------
    CloudMap
    """
    from allsky_camera.camera.coords import angular_sep
    from allsky_camera.stages.healpix import ang2pix_ring, npix
    from allsky_camera.stages.transparency import grouped_weighted_median

    nc = npix(cfg.nside)
    expected = int(np.sum(np.asarray(star_weight) > 0))
    vote = (np.asarray(star_weight) > 0) & bool(stars_known)
    sc = np.where(vote, np.asarray(star_cell), -1)
    st, n_star = grouped_weighted_median(sc, star_transp, star_weight, nc)
    w_sum = np.bincount(sc[sc >= 0], weights=np.asarray(star_weight, float)[sc >= 0],
                        minlength=nc)

    horizon_px = float(model.radius(90.0 - horizon_alt_deg))
    tex = block_texture(image, mask, block_px=cfg.texture_block_px,
                        stride_px=cfg.texture_stride_px, model_blocks=cfg.texture_model_blocks,
                        grow_blocks=cfg.texture_mask_grow_blocks,
                        sky_circle=(model.x0, model.y0, horizon_px))
    alt, az = model.xy_to_altaz(tex.xc.ravel(), tex.yc.ravel())
    alt, az = alt.reshape(tex.xc.shape), az.reshape(tex.xc.shape)
    r = np.hypot(tex.xc - model.x0, tex.yc - model.y0)
    sky = np.isfinite(alt) & (alt > horizon_alt_deg) & (r < model.radius(90.0 - horizon_alt_deg))
    cell = np.where(sky, ang2pix_ring(cfg.nside, 90.0 - np.where(sky, alt, 0.0),
                                      np.where(sky, az, 0.0)), -1)
    near_moon = np.zeros_like(sky)
    if moon_altaz is not None and moon_altaz[0] > -moon_exclusion_deg:
        near_moon = angular_sep(az, alt, moon_altaz[1], moon_altaz[0]) < moon_exclusion_deg
        near_moon = near_moon | near_ghost(model, moon_altaz, az, alt, moon_exclusion_deg)
    # the part of each cell the mask leaves open: a cell whose few open pixels
    # are too near an obstruction for a texture still sees the sky (its stars
    # vote), so this is counted on the mask itself, not on the texture's blocks
    n_all = np.bincount(cell[sky], minlength=nc)
    n_open = np.bincount(cell[sky], weights=tex.open_fraction[sky], minlength=nc)
    with np.errstate(invalid="ignore", divide="ignore"):
        sky_fraction = np.where(n_all > 0, n_open / np.maximum(n_all, 1), 0.0)
    tex_cell = np.where(near_moon, -1, cell)
    ring = np.where(sky, ((90.0 - np.where(sky, alt, 90.0)) / cfg.texture_ring_deg), -1)
    amp, noise_rel, n_blocks = cell_texture(tex, tex_cell, nc, min_blocks=cfg.texture_min_blocks,
                                            ring=ring.astype(int))
    state, transp, conf, sconf, tconf = combine(
        star_transp=st, star_weight=w_sum, star_n=n_star, texture_amp=amp,
        texture_noise=noise_rel, sky_fraction=sky_fraction, cfg=cfg, texture_n=n_blocks)
    if not stars_known and night and expected >= cfg.texture_prior_min_cells:
        ew = np.asarray(star_weight) > 0
        n_exp = np.bincount(np.asarray(star_cell)[ew & (np.asarray(star_cell) >= 0)],
                            minlength=nc)
        lost = (n_exp >= cfg.min_cell_stars) & (state != NOT_SKY) & (state != CLOUD)
        smooth = (state == CLEAR) & ~lost
        state = np.where(lost, CLOUD, np.where(smooth, UNKNOWN, state)).astype(np.uint8)
        conf = np.where(lost, cfg.lost_stars_conf, np.where(smooth, 0.0, conf))
        conf = conf.astype(np.float32)
        log.info("clouds: the astrometry found too few of the stars this sky should show: "
                 "%d cells where stars were expected are called cloud", int(lost.sum()))
    # sky cells without evidence of their own borrow their neighbours'
    from allsky_camera.stages.cloud_reach import reach_cells
    n_unknown = int(np.sum(state == UNKNOWN))
    state, conf, evidence_deg = reach_cells(state, conf, cfg.nside, corr_deg=cfg.cloud_corr_deg,
                                            min_confidence=cfg.min_confidence)
    log.info("clouds: %d of %d unknown sky cells took their neighbours' evidence (within "
             "%.1f deg correlation length)", n_unknown - int(np.sum(state == UNKNOWN)),
             n_unknown, cfg.cloud_corr_deg)
    return CloudMap(cfg.nside, state, transp, conf, st.astype(np.float32), sconf,
                    n_star.astype(np.int32), amp.astype(np.float32), tconf,
                    sky_fraction.astype(np.float32), evidence_deg, float(cfg.cloud_corr_deg),
                    float(cfg.min_confidence))


def pixel_maps(cmap, model, shape, *, mask=None, horizon_alt_deg=0.0, stride=1):
    """The cloud map on the camera's pixel grid.

    Parameters
    ----------
    cmap : CloudMap
    model : CameraModel
    shape : (ny, nx)
        Raw frame shape.
    mask : ndarray of bool, optional
        True where the sky is hidden: those pixels are not sky.
    horizon_alt_deg : float
    stride : int
        Evaluate every ``stride``-th pixel and repeat it (1: every pixel).

    Returns
    -------
    state : ndarray of uint8, ``shape``
    transparency, confidence : ndarray of float32, ``shape`` (NaN / 0 where
        not sky or not measured)

    Notes
    -----
    A sky pixel of a cell with evidence of its own takes the cell's state.
    When the map borrowed evidence (``cmap.corr_deg > 0``), a sky pixel of
    a cell without (unknown, borrowed, or too hidden to count as sky)
    borrows at its own place on a finer grid
    (:func:`allsky_camera.stages.cloud_reach.reach_directions`): the open
    pixels of a mostly hidden cell that lie nearer another cell's evidence
    take more of it.  A pixel the mask hides is never sky.
    """
    from allsky_camera.stages.healpix import ang2pix_ring

    ny, nx = shape
    ys, xs = np.mgrid[0:ny:stride, 0:nx:stride]
    alt, az = model.xy_to_altaz(xs.ravel().astype(float), ys.ravel().astype(float))
    alt, az = alt.reshape(xs.shape), az.reshape(xs.shape)
    r = np.hypot(xs - model.x0, ys - model.y0)
    sky = np.isfinite(alt) & (alt > horizon_alt_deg) & (r < model.radius(90.0 - horizon_alt_deg))
    cell = ang2pix_ring(cmap.nside, 90.0 - np.where(sky, alt, 90.0), np.where(sky, az, 0.0))
    g_state = np.where(sky, cmap.state[cell], NOT_SKY).astype(np.uint8)
    # a sky pixel of a cell judged 'not sky' (its visible part too small) is unknown
    g_state = np.where(sky & (g_state == NOT_SKY), UNKNOWN, g_state).astype(np.uint8)
    g_conf = np.where(sky, cmap.confidence[cell], 0.0).astype(np.float32)
    if cmap.corr_deg > 0:
        from allsky_camera.stages.cloud_reach import own_evidence, reach_directions
        lend = sky & ~own_evidence(cmap.state, cmap.evidence_deg)[cell]
        g_state[lend], g_conf[lend] = reach_directions(alt[lend], az[lend], cmap)
    if stride > 1:
        def up(a):
            return np.repeat(np.repeat(a, stride, axis=0), stride, axis=1)[:ny, :nx]
        sky, cell, g_state, g_conf = up(sky), up(cell), up(g_state), up(g_conf)
    if mask is not None:
        sky = sky & ~np.asarray(mask, dtype=bool)
    state = np.where(sky, g_state, NOT_SKY).astype(np.uint8)
    transp = np.where(sky, cmap.transparency[cell], np.nan).astype(np.float32)
    conf = np.where(sky, g_conf, 0.0).astype(np.float32)
    return state, transp, conf


def compass(model, *, alt_deg):
    """Pixel positions of the zenith and of north and east at ``alt_deg``, for plots.

    Returns
    -------
    dict of (x, y) tuples: ``zenith``, ``north``, ``east``
    """
    out = {}
    for name, (alt, az) in (("zenith", (90.0, 0.0)), ("north", (alt_deg, 0.0)),
                            ("east", (alt_deg, 90.0))):
        x, y = model.altaz_to_xy(np.array([alt]), np.array([az]))
        out[name] = (float(x[0]), float(y[0]))
    return out


def write_cloud_image(path, state, transparency, confidence, header_cards=()):
    """Write the cloud map on the pixel grid as ``-clouds.fits``.

    Primary HDU: the state image (uint8, codes in CLDCODEn); extension
    TRANSP: transparency per pixel (float32, NaN where not measured);
    extension CONF: confidence per pixel (float32, 0 to 1).
    """
    from astropy.io import fits

    from allsky_camera.stages.io import add_cards, write_fits_hdus

    prim = fits.PrimaryHDU(np.asarray(state, dtype=np.uint8))
    add_cards(prim.header, [("BUNIT", "", "cloud state code, see CLDCODEn"),
                            ("CLDCODE0", "clear", "state code 0"),
                            ("CLDCODE1", "cloud", "state code 1"),
                            ("CLDCODE2", "unknown", "state code 2: no usable evidence"),
                            ("CLDCODE3", "not sky", "state code 3: obstruction, below horizon"),
                            *header_cards])
    tr = fits.ImageHDU(np.asarray(transparency, dtype=np.float32), name="TRANSP")
    add_cards(tr.header, [("BUNIT", "", "transparency, 1 = clear sky"),
                          ("COMMENT", "NaN where no star measured the cell", "")])
    cf = fits.ImageHDU(np.asarray(confidence, dtype=np.float32), name="CONF")
    add_cards(cf.header, [("BUNIT", "", "confidence of the state: 0 coin toss, 1 sure")])
    write_fits_hdus(fits.HDUList([prim, tr, cf]), path)
