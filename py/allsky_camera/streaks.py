"""Satellite and aircraft streaks.

1. Flatten: subtract the sky (a coarse running median) and divide by the
   robust noise, local in tiles, inside the sky circle and outside the
   static mask (obstructions, the DCT camera's wire); catalog stars are
   blanked so that they cannot line up.
2. Threshold the lightly smoothed significance image and drop compact
   blobs (stars, hot pixels): a streak is long and thin.
3. Find straight segments with scikit-image's probabilistic Hough transform.
4. Merge collinear segments (a streak broken by a star or a noise gap is one
   streak), then measure each along its line: endpoints where the signal
   ends (at the edge of the sky area for streaks that leave it), width from
   the second moment across the line, and mean surface brightness above sky.
   A line must be thin (its core well above both sides), so that a cloud's
   rim or a gradient's edge is not taken for a streak.

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

import logging
import warnings

import numpy as np

from allsky_camera.exceptions import AllskyError

log = logging.getLogger(__name__)

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
    tiles = pad.reshape(by, block, bx, block).transpose(0, 2, 1, 3).reshape(by, bx, -1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN tiles off the sky
        # from the lower half only (median minus 15.9th percentile = 1 sigma for
        # normal noise): stars and the streak itself only raise the upper half
        lo, med = np.nanpercentile(tiles, [15.87, 50.0], axis=2)
        mad = (med - lo) / 1.4826
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


def _segments_to_lines(segments, cfg):
    """Group Hough segments into lines: (theta, rho) of each group and its members."""
    lines = []
    for (x0, y0), (x1, y1) in segments:
        ang = np.arctan2(y1 - y0, x1 - x0) % np.pi
        nx_, ny_ = -np.sin(ang), np.cos(ang)            # unit normal
        rho = x0 * nx_ + y0 * ny_
        for ln in lines:
            d_ang = abs((ang - ln["ang"] + np.pi / 2) % np.pi - np.pi / 2)
            # perpendicular distance of this segment's ends from the group's line
            gx, gy = -np.sin(ln["ang"]), np.cos(ln["ang"])
            dist = max(abs(x0 * gx + y0 * gy - ln["rho"]), abs(x1 * gx + y1 * gy - ln["rho"]))
            if d_ang < np.radians(cfg.merge_angle_deg) and dist < cfg.merge_dist_px:
                ln["pts"] += [(x0, y0), (x1, y1)]
                break
        else:
            lines.append({"ang": ang, "rho": rho, "pts": [(x0, y0), (x1, y1)]})
    return lines


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


def _straight(sig, d, p0, p1, cfg):
    """A streak is thin: across it the significance falls off within a few
    pixels on both sides; a gradient edge or a cloud rim stays high on one."""
    ny, nx = sig.shape
    nrm = np.array([-d[1], d[0]])
    t = np.linspace(0.0, 1.0, 40)
    px = p0[0] + t * (p1[0] - p0[0])
    py = p0[1] + t * (p1[1] - p0[1])
    side = []
    for off in (-cfg.width_half_px, cfg.width_half_px):
        xs = np.clip(np.rint(px + off * nrm[0]).astype(int), 0, nx - 1)
        ys = np.clip(np.rint(py + off * nrm[1]).astype(int), 0, ny - 1)
        side.append(np.median(sig[ys, xs]))
    xs = np.clip(np.rint(px).astype(int), 0, nx - 1)
    ys = np.clip(np.rint(py).astype(int), 0, ny - 1)
    core = np.median(sig[ys, xs])
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


def _fit_line(pts):
    p = np.asarray(pts, dtype=float)
    c = p.mean(axis=0)
    _, _, vt = np.linalg.svd(p - c)
    return c, vt[0]


def detect(image, model, *, cfg, exptime, zp, time=None, site=None, mask=None, star_xy=None,
           sky=None, workers=1):
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
        True where the pixel is not sky (obstructions, the wire); ignored.
    star_xy : (ndarray, ndarray), optional
        Pixel positions of catalog stars to blank (bright ones, brighter than
        ``cfg.star_mask_vmax``).
    sky : ndarray, shape (ny, nx), optional
        Background per pixel, ADU; default: the running median of width
        ``cfg.bkg_kernel_px`` on a grid of step ``cfg.bkg_step_px``.
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
        ``image`` is not 2-D, or ``mask`` or ``sky`` has another shape.
    """
    from skimage.morphology import remove_small_objects
    from skimage.transform import probabilistic_hough_line

    image = np.asarray(image)
    if image.ndim != 2:
        raise AllskyError(f"streaks.detect: image has shape {image.shape}; give a 2-D image")
    for name, arr in (("mask", mask), ("sky", sky)):
        if arr is not None and np.shape(arr) != image.shape:
            raise AllskyError(f"streaks.detect: {name} has shape {np.shape(arr)}, the image "
                              f"{image.shape}; give one of the image's shape")
    region = search_region(image.shape, model, cfg,
                           mask=None if mask is None else np.asarray(mask, dtype=bool))
    if sky is None:
        from allsky_camera.fastmedian import median_filter_fast

        sky = median_filter_fast(image, cfg.bkg_kernel_px, step=cfg.bkg_step_px, mask=region,
                                 workers=workers)
    ny, nx = image.shape
    resid = np.where(region, image - np.nan_to_num(sky), 0.0).astype(np.float32)
    vals = resid[region]
    if vals.size == 0:
        return empty_table()
    med = float(np.median(vals))
    # 1.4826: MAD to standard deviation for a normal distribution
    sigma = 1.4826 * float(np.median(np.abs(vals - med))) or 1.0
    # significance over the LOCAL noise (blocks): glare, twilight and lit
    # clouds are noisy and structured, and must not read as streaks
    noise = np.maximum(local_noise(np.where(region, resid, np.nan), cfg.noise_block_px),
                       sigma)
    sig = np.where(region, (resid - med) / noise, 0.0).astype(np.float32)
    blank = np.zeros(sig.shape, dtype=bool)
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
    # light smoothing: a 3x3 box raises a streak's significance by ~3 and a
    # single noise pixel's by only 1/3... the box mean of noise has sigma/3
    sm = sig.copy()
    sm[1:-1, 1:-1] = sum(sig[1 + dy:ny - 1 + dy, 1 + dx:nx - 1 + dx]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    binary = sm > cfg.threshold_sigma / 3.0
    binary = remove_small_objects(binary, max_size=cfg.min_blob_px)
    segs = probabilistic_hough_line(binary, threshold=cfg.hough_threshold,
                                    line_length=cfg.min_length_px, line_gap=cfg.line_gap_px,
                                    rng=0)
    rows = {k: [] for k in COLUMNS}
    for ln in _segments_to_lines(segs, cfg):
        c, d = _fit_line(ln["pts"])
        meas = _measure(sig, resid, region, blank, c, d, cfg)
        if meas is None:
            continue
        (xa, ya), (xb, yb), width, core, at_edge = meas
        length = float(np.hypot(xb - xa, yb - ya))
        if length < cfg.min_length_px or core < cfg.min_core_sigma * sigma or not _straight(
                sig, d, (xa, ya), (xb, yb), cfg):
            continue
        if _merge_into((xa, ya, xb, yb), rows, cfg.dedupe_px, cfg.line_gap_px):
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
    if not rows["x1"]:
        return empty_table()
    x1, y1, x2, y2 = (np.asarray(rows[k]) for k in ("x1", "y1", "x2", "y2"))
    rows["alt1"], rows["az1"] = model.xy_to_altaz(x1, y1)
    rows["alt2"], rows["az2"] = model.xy_to_altaz(x2, y2)
    if time is not None and site is not None:
        from .coords import altaz_to_radec
        rows["ra1"], rows["dec1"] = altaz_to_radec(rows["alt1"], rows["az1"], time, site)
        rows["ra2"], rows["dec2"] = altaz_to_radec(rows["alt2"], rows["az2"], time, site)
    else:
        for k in ("ra1", "dec1", "ra2", "dec2"):
            rows[k] = np.full(x1.size, np.nan)
    from .sbmap import surface_brightness
    xm, ym = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    rows["sb_mag"] = surface_brightness(np.asarray(rows["sb_adu"]), exptime,
                                        model.pixel_solid_angle(xm, ym), zp)
    t = _table(rows)
    log.info("streaks: %d found", len(t))
    return t


def _measure(sig, resid, region, blank, c, d, cfg):
    """Walk along the line through ``c`` with direction ``d``; endpoints, width, level."""
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
    # signal along the line: mean significance across +-1 px
    nrm = np.array([-d[1], d[0]])
    prof = np.zeros(s.size)
    for off in (-1.0, 0.0, 1.0):
        xo = np.clip(np.rint(px + off * nrm[0]).astype(int), 0, nx - 1)
        yo = np.clip(np.rint(py + off * nrm[1]).astype(int), 0, ny - 1)
        prof += sig[yo, xo]
    prof /= 3.0
    # running mean along the line, so that single noisy pixels do not end it
    k = cfg.walk_window_px
    run = np.convolve(np.where(inreg, prof, 0.0), np.ones(k) / k, mode="same")
    on = inreg & (run > cfg.walk_sigma)
    if on.sum() < cfg.min_length_px:
        return None
    idx = np.nonzero(on)[0]
    # the longest run of "on" samples allowing gaps up to line_gap_px
    breaks = np.nonzero(np.diff(idx) > cfg.line_gap_px)[0]
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    j = np.argmax(ends - starts)
    a, b = starts[j], ends[j]
    # trim the ends (the running mean and gap bridging reach past them) to
    # where the profile drops below half the streak's median level
    half = max(cfg.walk_sigma, 0.5 * float(np.median(prof[a:b + 1])))
    # blanked stars on the line neither break a streak nor end one
    on_blank = blank[yi[a:b + 1], xi[a:b + 1]]
    strong = np.nonzero((prof[a:b + 1] > half) | on_blank)[0]
    if strong.size < 2:
        return None
    # the longest stretch without a gap wider than end_gap_px: a crossing
    # streak or a star just past an end is a short blip after a gap
    cut = np.nonzero(np.diff(strong) > cfg.end_gap_px)[0]
    s0 = np.r_[strong[0], strong[cut + 1]]
    s1 = np.r_[strong[cut], strong[-1]]
    k = np.argmax(s1 - s0)
    a, b = a + s0[k], a + s1[k]
    while a < b and blank[yi[a], xi[a]]:
        a += 1
    while b > a and blank[yi[b], xi[b]]:
        b -= 1
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
    return (float(px[a]), float(py[a])), (float(px[b]), float(py[b])), fwhm, core, at_edge
