"""Satellite and aircraft streaks.

1. Flatten: subtract the sky (a coarse running median) and divide by the
   robust noise, local in tiles, inside the sky circle and outside the
   static mask (obstructions, the DCT camera's wire, grown by a margin),
   the Moon's halo and saturated pixels; catalog stars are blanked so that
   they cannot line up.
2. Search along lines, not pixel by pixel (:mod:`allsky_camera.stages.line_search`):
   the clipped significance image, binned, is summed along strips over
   windows of several lengths and angles, a matched filter for a faint,
   long trail; the strongest non-overlapping windows are the candidates.
3. Refine each candidate at full resolution: refit the line to its ridge,
   place its ends by a step model fitted along the line
   (:func:`allsky_camera.stages.line_search.step_ends`: the residual across
   +-1 px less the sky beside the line, the level the median of bins,
   stars and holes counting nothing), and merge pieces of one streak.
4. Reject what is not a trail: too wide, not thin against both sides, too
   short, or bent (a ridge whose sagitta departs both from a straight line
   and from the great circle through its ends, computed with the camera
   model: a lens reflection arc or a cloud's rim).

Pixel convention: 0-based, x = column, pixel centres at integers.  The
position angle ``pa_deg`` is measured in the image from the +y axis toward
the -x axis, in [0, 180) (a line has no direction): 0 is a streak along the
columns, 90 one along the rows.  For a camera with rotation 0 and parity +1
that is north through east, as on the sky.

The table this module writes (``<stem>-streaks.fits``) replaces the original
pipeline's pickle file: a FITS binary table with units and descriptions that
any astronomy tool reads, and that is safe to open.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import numpy as np

from allsky_camera.exceptions import AllskyError

log = logging.getLogger(__name__)

#: Along a line, a sample off the searched sky counts this many times the
#: streak's level against it: a streak does not jump a gap in the sky area
#: (a choice of this module: any value above a few works the same).
OFF_SKY_PENALTY = 10.0

#: The local sky beside a streak is measured from this many pixels off its
#: line: past the core of the widest streak kept (``max_width_px`` FWHM 5 px,
#: whose profile is down to 17 % there).
SIDE_INNER_PX = 4

#: Running median along the line of the sky beside it, pixels: the sky
#: beside a streak varies over tens of pixels, a star beside it over a few.
SIDE_MEDIAN_PX = 17

#: Fewest samples along a segment for the thinness test.
MIN_SAMPLES = 40

#: Every this many pixels of the searched sky measure the clipped image's noise.
SUBSAMPLE = 7

#: Columns of the streak table: name -> (unit, description).
COLUMNS = {
    "x1": ("pix", "first endpoint x"), "y1": ("pix", "first endpoint y"),
    "x2": ("pix", "second endpoint x"), "y2": ("pix", "second endpoint y"),
    "alt1": ("deg", "first endpoint altitude"), "az1": ("deg", "first endpoint azimuth"),
    "alt2": ("deg", "second endpoint altitude"), "az2": ("deg", "second endpoint azimuth"),
    "ra1": ("deg", "first endpoint ICRS RA"), "dec1": ("deg", "first endpoint ICRS Dec"),
    "ra2": ("deg", "second endpoint ICRS RA"), "dec2": ("deg", "second endpoint ICRS Dec"),
    "length_px": ("pix", "length between the endpoints"),
    "pa_deg": ("deg", "position angle in the image, from +y toward -x"),
    "width_px": ("pix", "FWHM across the streak"),
    "sb_adu": ("adu", "mean signal above sky per pixel on the streak's core"),
    "sb_mag": ("mag / arcsec2", "mean surface brightness above sky, V"),
    "at_edge": ("", "an endpoint lies on the edge of the searched sky area"),
}


def search_region(shape, model, cfg, mask=None):
    """Pixels searched, bool array of ``shape`` ``(ny, nx)``: inside the lens
    circle (zenith distance 90 deg) less ``cfg.horizon_margin_px``, the safe
    circle for streaks, and not in ``mask`` (True = not sky)."""
    ny, nx = shape
    yy, xx = np.ogrid[:ny, :nx]
    r_max = float(model.radius(90.0)) - cfg.horizon_margin_px
    region = (xx - model.x0) ** 2 + (yy - model.y0) ** 2 <= r_max ** 2
    if mask is not None:
        region &= ~mask
    return region


def local_noise(resid, block):
    """Robust noise (MAD) in ``block`` x ``block`` tiles, expanded to every pixel."""
    ny, nx = resid.shape
    by, bx = -(-ny // block), -(-nx // block)
    pad = np.full((by * block, bx * block), np.nan, dtype=np.float32)
    pad[:ny, :nx] = resid
    # every other pixel of each tile in both directions: a quarter of the
    # values gives the percentiles to a few per cent, four times faster
    tiles = pad.reshape(by, block, bx, block)[:, ::2, :, ::2].transpose(0, 2, 1, 3).reshape(
        by, bx, -1)
    # from the lower half only (median minus 15.9th percentile = 1 sigma for
    # normal noise): stars and the streak itself only raise the upper half.
    # The percentiles of each tile's finite values (NaN sort last), linearly
    # interpolated as numpy's nanpercentile does, without its per-tile loop
    srt = np.sort(tiles, axis=2)
    n = np.isfinite(tiles).sum(axis=2)

    def pct(q):
        pos = np.maximum(n - 1, 0) * (q / 100.0)
        i0 = np.floor(pos).astype(np.intp)
        i1 = np.minimum(i0 + 1, np.maximum(n - 1, 0))
        v0 = np.take_along_axis(srt, i0[..., None], axis=2)[..., 0]
        v1 = np.take_along_axis(srt, i1[..., None], axis=2)[..., 0]
        return np.where(n > 0, v0 + (pos - i0) * (v1 - v0), np.nan)

    with np.errstate(all="ignore"):
        mad = (pct(50.0) - pct(15.87)) / 1.4826
    # tiles mostly off the sky (the lens edge) say little: they take the
    # median tile's noise
    sparse = np.isfinite(tiles).mean(axis=2) < 0.5
    typical = np.nanmedian(mad[~sparse]) if (~sparse).any() else 1.0
    mad = np.where(sparse | ~np.isfinite(mad), typical, mad)
    # 1.4826: MAD to standard deviation for a normal distribution
    return np.repeat(np.repeat(1.4826 * mad, block, 0), block, 1)[:ny, :nx]


def empty_table():
    """A streak table with every column and no row."""
    return _table({k: np.zeros(0) for k in COLUMNS})


def _table(cols):
    import astropy.units as u
    from astropy.table import Table

    t = Table()
    for name, (unit, desc) in COLUMNS.items():
        data = np.asarray(cols[name])
        t[name] = data.astype(bool) if name == "at_edge" else data.astype(float)
        if unit:
            t[name].unit = u.Unit(unit)
        t[name].description = desc
    return t


def _merge_into(seg, rows, tol, gap):
    """Merge ``seg`` into a listed streak on the same line (within ``tol`` px)
    that it overlaps or nearly touches (within ``gap`` px along the line).

    The listed streak is extended to cover both; returns True when merged.
    """
    new = np.asarray(seg, dtype=float).reshape(2, 2)
    for i in range(len(rows["x1"])):
        old = np.array([[rows["x1"][i], rows["y1"][i]], [rows["x2"][i], rows["y2"][i]]])
        longer, other = (old, new) if (np.hypot(*(old[1] - old[0]))
                                       >= np.hypot(*(new[1] - new[0]))) else (new, old)
        d = longer[1] - longer[0]
        n = float(np.hypot(*d))
        if n == 0:
            continue
        d /= n
        w = other - longer[0]
        perp = np.abs(w[:, 0] * d[1] - w[:, 1] * d[0])
        along = w @ d
        if perp.max() >= tol or along.max() < -gap or along.min() > n + gap:
            continue
        t = np.r_[0.0, n, along]
        p0 = longer[0] + t.min() * d
        p1 = longer[0] + t.max() * d
        rows["x1"][i], rows["y1"][i] = float(p0[0]), float(p0[1])
        rows["x2"][i], rows["y2"][i] = float(p1[0]), float(p1[1])
        rows["length_px"][i] = float(t.max() - t.min())
        rows["at_edge"][i] = bool(rows["at_edge"][i])
        return True
    return False


def _straight(sig, d, p0, p1, cfg, blank=None):
    """A streak is thin: across it the significance falls off within a few
    pixels on both sides; a gradient edge or a cloud rim stays high on one.
    Medians along the whole segment, one bilinear sample per pixel, on the
    line and ``cfg.width_half_px`` to either side, over the samples none of
    whose pixels is in ``blank`` (bool, True: a blanked star, whose 0 would
    pull the medians toward 0)."""
    nrm = np.array([-d[1], d[0]])
    n = max(int(np.hypot(p1[0] - p0[0], p1[1] - p0[1])), MIN_SAMPLES)
    t = np.linspace(0.0, 1.0, n)
    px = p0[0] + t * (p1[0] - p0[0])
    py = p0[1] + t * (p1[1] - p0[1])

    def median_at(off):
        x, y = px + off * nrm[0], py + off * nrm[1]
        v = _sample(sig, x, y)
        if blank is not None:
            # none of the four pixels of the bilinear sample blanked
            ny, nx = blank.shape
            keep = np.ones(v.shape, dtype=bool)
            for fx in (np.floor, np.ceil):
                for fy in (np.floor, np.ceil):
                    xi = np.clip(fx(x).astype(int), 0, nx - 1)
                    yi = np.clip(fy(y).astype(int), 0, ny - 1)
                    keep &= ~blank[yi, xi]
            if keep.sum() >= MIN_SAMPLES // 2:
                v = v[keep]
        return float(np.median(v))

    side = [median_at(off) for off in (-cfg.width_half_px, cfg.width_half_px)]
    core = median_at(0.0)
    log.debug("streaks: thin test core %.2f sides %.2f %.2f", core, *side)
    return core > cfg.side_contrast * max(max(side), 0.0) + cfg.walk_sigma


def _half_max_width(p, offs):
    """Full width at half maximum (pixels) of the profile ``p`` across a line,
    sampled at offsets ``offs`` (pixels, centred on 0): the baseline is the
    median of the outer quarter on each side, the peak the highest sample
    within 2 px of the centre, the crossings linearly interpolated.  None
    when there is no peak above the baseline."""
    p = np.asarray(p, dtype=float)
    outer = np.abs(offs) >= 0.75 * np.abs(offs).max()
    if not np.isfinite(p[outer]).any():
        return None
    p = np.nan_to_num(p - np.nanmedian(p[outer]), nan=0.0)
    centre = np.nonzero(np.abs(offs) <= 2)[0]
    i = centre[np.argmax(p[centre])]
    half = 0.5 * p[i]
    if half <= 0:
        return None
    edges = []
    for step in (-1, 1):
        j = i
        while 0 <= j + step < p.size and p[j + step] > half:
            j += step
        k = j + step
        if not 0 <= k < p.size:          # never falls to half: as wide as the window
            edges.append(float(offs[j]))
            continue
        # linear interpolation between samples j (above half) and k (below)
        edges.append(float(offs[j] + (offs[k] - offs[j]) * (p[j] - half) / (p[j] - p[k])))
    return abs(edges[1] - edges[0])


def grown_mask(mask, cfg):
    """The obstruction (or saturation) ``mask`` grown by ``cfg.mask_grow_px``
    (a square): the sky median and the glare leave bright rims along its
    edges (trees, buildings, the wire, a saturated twilight sky).  Bool array
    of the mask's shape; ``mask`` is not changed."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    from scipy.ndimage import maximum_filter

    g = round(cfg.mask_grow_px)
    return maximum_filter(mask.view(np.uint8), size=2 * g + 1) > 0


def moon_halo(model, cfg, moon_altaz, sky, region):
    """The Moon's halo: pixels within ``cfg.moon_radius_deg`` of the Moon
    (when it is up) whose sky is brighter than ``cfg.halo_sky_factor`` times
    the median sky of ``region``.  A Moon that does not light the sky there
    (a thin crescent, or one that a simulator did not render) hides nothing.

    Parameters
    ----------
    model : CameraModel
    cfg : config.Streaks
    moon_altaz : (float, float) or None
        The Moon's apparent altitude and azimuth, deg.
    sky : ndarray, shape (ny, nx)
        Background per pixel, ADU.
    region : ndarray of bool, shape (ny, nx)
        The searched pixels, for the median sky.

    Returns
    -------
    ndarray of bool, shape (ny, nx)
    """
    ny, nx = np.shape(sky)
    out = np.zeros((ny, nx), dtype=bool)
    if moon_altaz is None or not moon_altaz[0] > 0.0 or not region.any():
        return out
    mx, my = model.altaz_to_xy(moon_altaz[0], moon_altaz[1])
    zd = 90.0 - float(moon_altaz[0])
    # pixels per radian: the larger of the radial and tangential scales
    radial = float(model.dradius_dtheta(zd))
    tangential = float(model.radius(zd)) / max(np.sin(np.radians(zd)), 1e-6)
    r = np.radians(cfg.moon_radius_deg) * max(radial, tangential)
    yy, xx = np.ogrid[:ny, :nx]
    disc = (xx - float(mx)) ** 2 + (yy - float(my)) ** 2 <= r * r
    level = float(np.median(sky[region]))
    return disc & (sky > cfg.halo_sky_factor * level)


def _sample(img, x, y):
    """Bilinear samples of ``img`` at ``(x, y)`` (0 outside the image)."""
    from scipy.ndimage import map_coordinates

    return map_coordinates(img, [np.ravel(y), np.ravel(x)], order=1, mode="constant",
                           cval=0.0).reshape(np.shape(x))


def _ridge(sig, p0, p1, chunk, half):
    """Offsets of the ridge from the line ``p0``-``p1``, chunk by chunk.

    The significance is summed along the line in chunks of ``chunk`` pixels;
    the peak of each chunk's profile across the line (a parabola through
    the highest three samples, within ``half`` pixels of the line) is the
    ridge's offset there, counted along the normal ``(-dy, dx)``.

    Returns
    -------
    pos, off, weight : ndarray
        Chunk centres along the line from ``p0`` (pixels), offsets (pixels)
        and peak sums (significance), for the chunks that show a ridge.
    """
    d = p1 - p0
    length = float(np.hypot(*d))
    d = d / length
    nrm = np.array([-d[1], d[0]])
    offs = np.arange(-2 * half, 2 * half + 0.25, 0.5)
    along = np.arange(0.0, length, 1.0)
    x = p0[0] + along[:, None] * d[0] + offs[None, :] * nrm[0]
    y = p0[1] + along[:, None] * d[1] + offs[None, :] * nrm[1]
    prof = _sample(sig, x, y)
    nch = int(length // chunk)
    ch = prof[:nch * chunk].reshape(nch, chunk, offs.size).sum(axis=1)
    inner = np.abs(offs) <= half
    pos, off, wts = [], [], []
    for i in range(nch):
        p = np.where(inner, ch[i], -np.inf)
        j = int(np.argmax(p))
        # a ridge: its peak three sigma above the noise of a chunk's sum
        if not 0 < j < offs.size - 1 or ch[i, j] <= 3 * np.sqrt(chunk):
            continue
        a, b, c = ch[i, j - 1], ch[i, j], ch[i, j + 1]
        den = a - 2 * b + c
        frac = 0.5 * (a - c) / den if den < 0 else 0.0
        off.append(offs[j] + 0.5 * float(np.clip(frac, -1, 1)))
        wts.append(ch[i, j])
        pos.append((i + 0.5) * chunk)
    return np.array(pos), np.array(off), np.array(wts)


def _refine(sig, p0, p1, cfg):
    """Fit the line through the ridge of a candidate segment at full
    resolution: a weighted straight fit of :func:`_ridge`'s offsets, twice.

    Returns
    -------
    (p0, p1) : the refined end points (pixels), or None when fewer than two
        chunks show a ridge.
    """
    p0, p1 = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
    for _ in range(2):
        length = float(np.hypot(*(p1 - p0)))
        if length < 2 * cfg.refine_chunk_px:
            return None
        pos, off, wts = _ridge(sig, p0, p1, cfg.refine_chunk_px, float(cfg.bin_px))
        if pos.size < 2:
            return None
        coef = np.polyfit(pos, off, 1, w=np.sqrt(np.minimum(wts, np.median(wts))))
        d = (p1 - p0) / length
        nrm = np.array([-d[1], d[0]])
        p0, p1 = p0 + np.polyval(coef, 0.0) * nrm, p1 + np.polyval(coef, length) * nrm
    return p0, p1


def _noise_at(noise, xa, ya, xb, yb):
    """The noise map at a segment's middle, ADU."""
    ny, nx = noise.shape
    x = min(max(round(0.5 * (xa + xb)), 0), nx - 1)
    y = min(max(round(0.5 * (ya + yb)), 0), ny - 1)
    return float(noise[y, x])


def _strip_points(p0, p1, half):
    """Integer pixels of the strip of half-width ``half`` along ``p0``-``p1``."""
    p0, p1 = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
    length = float(np.hypot(*(p1 - p0)))
    d = (p1 - p0) / max(length, 1e-9)
    along = np.arange(0.0, length + 0.5, 1.0)
    offs = np.arange(-half, half + 0.5, 1.0)
    x = p0[0] + along[:, None] * d[0] - offs[None, :] * d[1]
    y = p0[1] + along[:, None] * d[1] + offs[None, :] * d[0]
    return np.rint(x).astype(int).ravel(), np.rint(y).astype(int).ravel()


def _claim(claimed, p0, p1, half):
    """Mark the pixels of a found streak (in place, on the detector's own array)."""
    ny, nx = claimed.shape
    x, y = _strip_points(p0, p1, half)
    ok = (x >= 0) & (x < nx) & (y >= 0) & (y < ny)
    claimed[y[ok], x[ok]] = True


def _strip_snr(values, valid, cand, cfg, noise):
    """S/N of a candidate's strip (one block wide) over ``valid`` pixels."""
    ny, nx = values.shape
    x, y = _strip_points((cand.x1, cand.y1), (cand.x2, cand.y2), 0.5 * cfg.bin_px)
    ok = (x >= 0) & (x < nx) & (y >= 0) & (y < ny)
    x, y = x[ok], y[ok]
    ok = valid[y, x]
    if ok.sum() == 0:
        return 0.0
    return float(values[y[ok], x[ok]].sum() / (noise * np.sqrt(ok.sum())))


def great_circle_sagitta(model, p0, p1):
    """Offset (pixels) of the image of the great circle through two pixels
    from their chord, at its middle, along the chord's normal ``(-dy, dx)``.

    A satellite's trail follows a great circle of the sky (to the accuracy
    needed here: its orbit's plane through the Earth's centre, seen from a
    site near it); a fisheye bends great circles that miss the zenith.
    """
    alt, az = model.xy_to_altaz(np.array([p0[0], p1[0]]), np.array([p0[1], p1[1]]))
    alt, az = np.radians(alt), np.radians(az)
    v = np.stack([np.cos(alt) * np.sin(az), np.cos(alt) * np.cos(az), np.sin(alt)], axis=1)
    m = v.sum(axis=0)
    m /= np.linalg.norm(m)
    xm, ym = model.altaz_to_xy(np.degrees(np.arcsin(m[2])), np.degrees(np.arctan2(m[0], m[1])))
    d = (p1 - p0) / np.hypot(*(p1 - p0))
    return float((xm - 0.5 * (p0[0] + p1[0])) * -d[1] + (ym - 0.5 * (p0[1] + p1[1])) * d[0])


def _robust_quadratic(u, off, wts):
    """Quadratic coefficient of a fit of ``off`` against ``u``: weights capped
    at their median (a star on the ridge must not steer it), chunks more
    than 3 robust sigma off the first fit dropped, refitted."""
    w = np.sqrt(np.minimum(wts, np.median(wts)))
    coef = np.polyfit(u, off, 2, w=w)
    res = off - np.polyval(coef, u)
    # 1.4826: MAD to standard deviation for a normal distribution
    scale = 1.4826 * float(np.median(np.abs(res))) or 1e-3
    keep = np.abs(res) <= 3 * scale
    if keep.sum() >= 4:
        coef = np.polyfit(u[keep], off[keep], 2, w=w[keep])
    return float(coef[0])


def bends(sig, model, p0, p1, cfg):
    """True when the ridge between ``p0`` and ``p1`` is an arc: its sagitta
    (from a quadratic fit of the ridge's offsets) differs by more than
    ``cfg.max_curvature_px`` from both a straight line's (0) and that of the
    great circle through the ends.  Lens reflections, halo rims and the
    edges of glare are arcs; satellite trails are great circles (and the
    simulators' streaks straight lines).  Short ridges (fewer than four
    chunks) are not judged."""
    p0, p1 = np.asarray(p0, dtype=float), np.asarray(p1, dtype=float)
    length = float(np.hypot(*(p1 - p0)))
    chunk = max(cfg.refine_chunk_px // 2, 4)
    pos, off, wts = _ridge(sig, p0, p1, chunk, float(cfg.bin_px))
    if pos.size < 4:
        return False
    u = pos - 0.5 * length
    c2 = _robust_quadratic(u, off, wts)
    # the fitted ridge's middle against its chord between u = -L/2 and +L/2
    sag = -c2 * (0.5 * length) ** 2
    gc = great_circle_sagitta(model, p0, p1)
    return bool(min(abs(sag), abs(sag - gc)) > cfg.max_curvature_px)


@dataclasses.dataclass(frozen=True)
class Flattened:
    """The image made ready for the line search by :func:`flatten`.

    Attributes
    ----------
    region : ndarray of bool, shape (ny, nx)
        Pixels searched (the sky circle, off the grown mask and the Moon's halo).
    resid : ndarray of float32
        Image less the sky, ADU (0 off ``region``).
    noise : ndarray of float32
        Local robust noise per pixel, ADU.
    sig : ndarray of float32
        Significance ``(resid - median) / noise`` (0 off ``region`` and on ``blank``).
    blank : ndarray of bool
        Pixels of ``region`` blanked: saturated (grown) and bright catalog stars.
    """

    region: np.ndarray
    resid: np.ndarray
    noise: np.ndarray
    sig: np.ndarray
    blank: np.ndarray


def flatten(image, model, cfg, *, mask=None, sky=None, saturated=None, moon_altaz=None,
            star_xy=None, workers=1):
    """Sky-subtracted, noise-normalised image with stars and saturation blanked.

    Parameters are those of :func:`detect` (``image`` ADU, 0-based pixels,
    x = column); nothing given is changed.

    Returns
    -------
    Flattened or None
        None when no pixel is left to search.
    """
    region = search_region(image.shape, model, cfg,
                           mask=None if mask is None else grown_mask(mask, cfg))
    if sky is None:
        from allsky_camera.stages.fastmedian import median_filter_fast

        sky = median_filter_fast(image, cfg.bkg_kernel_px, step=cfg.bkg_step_px, mask=region,
                                 workers=workers)
    region &= ~moon_halo(model, cfg, moon_altaz, np.nan_to_num(sky), region)
    ny, nx = image.shape
    resid = np.where(region, image - np.nan_to_num(sky), 0.0).astype(np.float32)
    vals = resid[region]
    if vals.size == 0:
        return None
    med = float(np.median(vals))
    # 1.4826: MAD to standard deviation for a normal distribution
    sigma = 1.4826 * float(np.median(np.abs(vals - med))) or 1.0
    # significance over the LOCAL noise (blocks): glare, twilight and lit
    # clouds are noisy and structured, and must not read as streaks
    noise = np.maximum(local_noise(np.where(region, resid, np.nan), cfg.noise_block_px),
                       sigma)
    sig = np.where(region, (resid - med) / noise, 0.0).astype(np.float32)
    # saturated pixels and their surroundings (a saturated star, the rim of a
    # saturated twilight sky) are blanked: they neither make a streak nor
    # break one
    blank = np.zeros(sig.shape, dtype=bool) if saturated is None else (
        grown_mask(saturated, cfg) & region)
    sig[blank] = 0.0
    if star_xy is not None and len(star_xy[0]):
        r = cfg.star_mask_px
        xs = np.rint(star_xy[0]).astype(int)
        ys = np.rint(star_xy[1]).astype(int)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dx * dx + dy * dy <= r * r:
                    yy, xx = ys + dy, xs + dx
                    ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
                    sig[yy[ok], xx[ok]] = 0.0
                    blank[yy[ok], xx[ok]] = True
    return Flattened(region=region, resid=resid, noise=noise, sig=sig, blank=blank)


def detect(image, model, *, cfg, exptime, zp, time=None, site=None, mask=None, star_xy=None,
           sky=None, saturated=None, moon_altaz=None, workers=1):
    """Find satellite and aircraft streaks in a detrended image.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Detrended image, ADU; not changed.
    model : CameraModel
        The fitted camera model of this exposure: the search circle, the
        end points' (alt, az), the pixel solid angle.
    cfg : config.Streaks
        Settings (thresholds, lengths, kernels).
    exptime : float
        Exposure time, s.
    zp : float
        Total-flux zeropoint, mag for 1 ADU/s (the nominal one), for ``sb_mag``.
    time, site : ObsTime, Site, optional
        For the end points' RA/Dec (NaN without them).
    mask : ndarray of bool, shape (ny, nx), optional
        True where the pixel is not sky (obstructions, the wire); not
        searched, nor within ``cfg.mask_grow_px`` of it.
    star_xy : (ndarray, ndarray), optional
        Pixel positions of catalog stars to blank (bright ones, brighter than
        ``cfg.star_mask_vmax``).
    sky : ndarray, shape (ny, nx), optional
        Background per pixel, ADU; default: the running median of width
        ``cfg.bkg_kernel_px`` on a grid of step ``cfg.bkg_step_px``.
    saturated : ndarray of bool, shape (ny, nx), optional
        Saturated raw pixels: blanked, with ``cfg.mask_grow_px`` around them
        (the rim of a saturated twilight sky or of glare is a sharp edge).
    moon_altaz : (float, float), optional
        The Moon's apparent altitude and azimuth, deg: its halo
        (:func:`moon_halo`) is not searched.
    workers : int
        Threads for that median (``--multiproc``); results do not depend on it.

    Returns
    -------
    astropy.table.Table
        One row per streak, columns :data:`COLUMNS` with units and
        descriptions; zero rows (every column) when none.

    Raises
    ------
    AllskyError
        ``image`` is not 2-D, or ``mask``, ``saturated`` or ``sky`` has
        another shape.
    """
    from allsky_camera.stages import line_search

    image = np.asarray(image)
    if image.ndim != 2:
        raise AllskyError(f"streaks.detect: image has shape {image.shape}; give a 2-D image")
    for name, arr in (("mask", mask), ("sky", sky), ("saturated", saturated)):
        if arr is not None and np.shape(arr) != image.shape:
            raise AllskyError(f"streaks.detect: {name} has shape {np.shape(arr)}, the image "
                              f"{image.shape}; give one of the image's shape")
    flat = flatten(image, model, cfg, mask=mask, sky=sky, saturated=saturated,
                   moon_altaz=moon_altaz, star_xy=star_xy, workers=workers)
    if flat is None:
        return empty_table()
    region, resid, noise, sig, blank = flat.region, flat.resid, flat.noise, flat.sig, flat.blank
    # the line search, on the significance clipped to a few sigma: a star or
    # a hot pixel then weighs no more than a few pixels of a faint trail
    clipped = np.clip(sig, -cfg.clip_sigma, cfg.clip_sigma)
    sums, counts = line_search.bin_image(clipped, region & ~blank, cfg.bin_px)
    windows = [float(cfg.window_min_px)]
    while 2 * windows[-1] <= cfg.window_max_px:
        windows.append(2 * windows[-1])
    cands = line_search.search(sums, counts, cfg.bin_px, windows_px=windows,
                               angle_step_deg=cfg.angle_step_deg, snr_min=cfg.search_snr,
                               max_segments=cfg.max_candidates)
    log.debug("streaks: %d candidate segments", len(cands))
    rows = {k: [] for k in COLUMNS}
    claimed = np.zeros(sig.shape, dtype=bool)
    sub = clipped[region][::SUBSAMPLE]
    # 1.4826: MAD to standard deviation for a normal distribution
    noise_c = 1.4826 * float(np.median(np.abs(sub - np.median(sub)))) or 1.0
    for cand in cands:
        # explained away: the candidate's strip less the pixels of streaks
        # already found must still reach the search's S/N
        if claimed.any() and _strip_snr(clipped, region & ~claimed, cand, cfg,
                                        noise_c) < cfg.search_snr:
            continue
        ref = _refine(sig, (cand.x1, cand.y1), (cand.x2, cand.y2), cfg)
        if ref is None:
            log.debug("streaks: %s: no ridge", cand)
            continue
        p0, p1 = ref
        d = (p1 - p0) / np.hypot(*(p1 - p0))
        meas = _measure(sig, resid, noise, region, blank, 0.5 * (p0 + p1), d,
                        0.5 * float(np.hypot(*(p1 - p0))), cfg)
        if meas is None:
            log.debug("streaks: %s: no profile", cand)
            continue
        (xa, ya), (xb, yb), width, core, at_edge = meas
        length = float(np.hypot(xb - xa, yb - ya))
        why = ("short" if length < cfg.min_length_px else
               "faint" if core < cfg.min_core_sigma * _noise_at(noise, xa, ya, xb, yb) else
               "wide" if width > cfg.max_width_px else
               "not thin" if not _straight(sig, d, (xa, ya), (xb, yb), cfg, blank) else
               "bends (an arc)" if bends(sig, model, (xa, ya), (xb, yb), cfg) else None)
        if why:
            log.debug("streaks: (%.0f, %.0f)-(%.0f, %.0f) L=%.0f w=%.1f core=%.1f: %s",
                      xa, ya, xb, yb, length, width, core, why)
            continue
        if _merge_into((xa, ya, xb, yb), rows, cfg.dedupe_px, cfg.line_gap_px):
            _claim(claimed, (xa, ya), (xb, yb), cfg.bin_px)
            continue
        rows["x1"].append(xa)
        rows["y1"].append(ya)
        rows["x2"].append(xb)
        rows["y2"].append(yb)
        rows["length_px"].append(length)
        rows["pa_deg"].append(float(np.degrees(np.arctan2(-(xb - xa), yb - ya)) % 180.0))
        rows["width_px"].append(width)
        rows["sb_adu"].append(core)
        rows["at_edge"].append(at_edge)
        _claim(claimed, (xa, ya), (xb, yb), cfg.bin_px)
    if not rows["x1"]:
        return empty_table()
    x1, y1, x2, y2 = (np.asarray(rows[k]) for k in ("x1", "y1", "x2", "y2"))
    rows["alt1"], rows["az1"] = model.xy_to_altaz(x1, y1)
    rows["alt2"], rows["az2"] = model.xy_to_altaz(x2, y2)
    if time is not None and site is not None:
        from allsky_camera.camera.coords import altaz_to_radec
        rows["ra1"], rows["dec1"] = altaz_to_radec(rows["alt1"], rows["az1"], time, site)
        rows["ra2"], rows["dec2"] = altaz_to_radec(rows["alt2"], rows["az2"], time, site)
    else:
        for k in ("ra1", "dec1", "ra2", "dec2"):
            rows[k] = np.full(x1.size, np.nan)
    from allsky_camera.stages.sbmap import surface_brightness
    xm, ym = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    rows["sb_mag"] = surface_brightness(np.asarray(rows["sb_adu"]), exptime,
                                        model.pixel_solid_angle(xm, ym), zp)
    t = _table(rows)
    log.info("streaks: %d found", len(t))
    return t


def _measure(sig, resid, noise, region, blank, c, d, half_len, cfg):
    """Walk along the line through ``c`` with direction ``d``; endpoints, width, level.

    ``half_len`` (pixels) is the half-length of the candidate about ``c``:
    the streak's level is first measured there.  ``noise`` is the local
    noise map (ADU), ``blank`` the pixels that say nothing (stars,
    saturation)."""
    ny, nx = sig.shape
    span = np.hypot(nx, ny)
    s = np.arange(-span, span, 1.0)
    px, py = c[0] + s * d[0], c[1] + s * d[1]
    inside = (px >= 0) & (px <= nx - 1) & (py >= 0) & (py <= ny - 1)
    s, px, py = s[inside], px[inside], py[inside]
    xi, yi = np.rint(px).astype(int), np.rint(py).astype(int)
    inreg = region[yi, xi]
    if not inreg.any():
        return None
    # signal along the line: mean residual (ADU) across +-1 px; ADU rather
    # than significance, as a trail keeps its brightness where the noise
    # grows (toward the horizon)
    nrm = np.array([-d[1], d[0]])
    prof = np.zeros(s.size)
    for off in (-1.0, 0.0, 1.0):
        prof += _sample(resid, px + off * nrm[0], py + off * nrm[1])
    prof /= 3.0
    # less the local sky beside the line: the median of both sides (from
    # SIDE_INNER_PX to cfg.width_half_px off it), its running median along
    # the line; the sky median is biased high near bright stars and under
    # their wings, and a streak's end there would be lost
    sides = np.stack([_sample(resid, px + off * nrm[0], py + off * nrm[1])
                      for off in np.r_[-cfg.width_half_px:-SIDE_INNER_PX + 1,
                                       SIDE_INNER_PX:cfg.width_half_px + 1]])
    from scipy.ndimage import median_filter

    prof = prof - median_filter(np.median(sides, axis=0), size=SIDE_MEDIAN_PX, mode="nearest")
    # the streak's extent: a step model fitted along the line
    # (:func:`line_search.step_ends`), its level first measured within the
    # candidate; blanked stars count nothing, the line leaving the searched
    # sky ends it
    on_blank = blank[yi, xi]
    within = inreg & ~on_blank & (np.abs(s) <= half_len)
    if within.sum() < cfg.min_length_px // 2:
        return None
    from allsky_camera.stages import line_search

    w = np.nonzero(np.abs(s) <= half_len)[0]
    # the noise of a sample: the local noise map (a constant factor for the
    # mean across the line does not move the ends)
    sample_noise = np.maximum(noise[yi, xi], 1e-6)
    ends = line_search.step_ends(prof, sample_noise, ~on_blank, inreg, w[0], w[-1],
                                 bin_px=cfg.end_bin_px, iterations=cfg.end_iterations,
                                 off_sky_penalty=OFF_SKY_PENALTY,
                                 outlier_sigma=cfg.end_outlier_sigma)
    if ends is None:
        return None
    fa, fb, _ = ends
    a, b = int(np.ceil(fa)), int(np.floor(fb))
    # an endpoint at the edge of the searched area: the line leaves the sky there
    at_edge = bool(a == 0 or not inreg[max(a - 2, 0)] or b == s.size - 1
                   or not inreg[min(b + 2, s.size - 1)])
    # width and level from the profile across the line, on the core
    offs = np.arange(-cfg.width_half_px, cfg.width_half_px + 1, dtype=float)
    sel = np.arange(a, b + 1, max((b - a) // 60, 1))
    cx = px[sel][:, None] + offs[None, :] * nrm[0]
    cy = py[sel][:, None] + offs[None, :] * nrm[1]
    cxi = np.clip(np.rint(cx).astype(int), 0, nx - 1)
    cyi = np.clip(np.rint(cy).astype(int), 0, ny - 1)
    across = np.where(region[cyi, cxi], resid[cyi, cxi], np.nan)
    if not np.isfinite(across).any(axis=0).all():
        return None                                   # the profile leaves the sky
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # offsets all off the sky
        p = np.nanmedian(across, axis=0)
    fwhm = _half_max_width(p, offs)
    if fwhm is None:
        return None
    core = float(np.nanmedian(across[:, np.abs(offs) <= 1]))
    ea, eb = c + (s[0] + fa) * d, c + (s[0] + fb) * d
    return (float(ea[0]), float(ea[1])), (float(eb[0]), float(eb[1])), fwhm, core, at_edge
