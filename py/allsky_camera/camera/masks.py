"""Static masks of a camera: bad pixels and obstructions, from several frames.

Only what stays the same from frame to frame belongs in a static mask; the
Moon's halo, glare and clouds come and go.  So each frame is judged on its
own and a pixel is masked only when more than :data:`VOTE_FRACTION` of the
frames agree:

* Bad pixels: hot or dead pixels stand alone far above (below) all their
  8 neighbours (stars are spread over several pixels and move).
* Obstructions: pixels inside the lens circle where the sky is hidden
  (trees, buildings, a wire): their large-scale level falls well below the
  sky's radial profile of that frame, or they are darker than their
  surroundings (a thin wire).  Transient light is brighter than the sky,
  never a silhouette, and what one frame's Moon or twilight gradient makes
  look dark the other frames outvote.  Everything outside the lens circle is
  masked, and the mask is dilated a little.

Masks are boolean images (True = bad / hidden), written as compressed uint8
FITS images beside the camera's YAML.
"""

from __future__ import annotations

import numpy as np

#: Detection thresholds: hot/dead pixels (noise sigma), the level departure of
#: an obstruction (fraction of the sky's radial profile), a dark wire (noise
#: sigma of the 3x3-smoothed residual), the smallest dark feature kept
#: (pixels), and the dilation of the obstruction mask (pixels).
HOT_SIGMA = 8.0
HOT_RATIO = 3.0
LEVEL_DEPARTURE = 0.35
WIRE_SIGMA = 2.0
MIN_FEATURE_PX = 40
DILATE_PX = 2
#: Median widths (pixels): large-scale level, and the local background of a wire.
LEVEL_KERNEL_PX = 31
LOCAL_KERNEL_PX = 11
#: Radial bins (pixels) of the sky profile.
RADIAL_BIN_PX = 8
#: A wire sways in the wind: its dark line in each frame is widened by this
#: many pixels before the frames vote (seen on the DCT frames: the wire
#: moves by 1-3 px between nights).
WIRE_SWAY_PX = 3
#: Glare: large-scale level this fraction above the sky's radial profile
#: (the Moon's halo, reflections), grown by this many pixels; no dark line is
#: looked for there.
GLARE_EXCESS = 0.5
GLARE_GROW_PX = 10
#: Frames that must show a thin dark line at the same place.
LINE_MIN_FRAMES = 2
#: A pixel enters a static mask when more than this fraction of the frames
#: find it bad or hidden (a majority: one frame's transient cannot).
VOTE_FRACTION = 0.5


def _robust_sigma(v):
    v = v[np.isfinite(v)]
    return 1.4826 * float(np.median(np.abs(v - np.median(v)))) or 1.0   # MAD to sigma


def _vote(per_frame):
    """Pixels flagged in more than :data:`VOTE_FRACTION` of the frames."""
    count = np.sum(per_frame, axis=0)
    return count > VOTE_FRACTION * len(per_frame)


def bad_pixels(stack):
    """Hot and dead pixels of a stack of frames (``(n, ny, nx)``).

    A pixel is bad when, in most frames, it stands alone far above (hot) or
    below (dead) all its 8 neighbours (:func:`detrend.find_hot_pixels`, which
    a star, spread over several pixels, never passes), so even one frame
    gives a mask that hides no star.
    """
    from allsky_camera.stages.detrend import find_hot_pixels

    votes = []
    for frame in stack:
        f = np.asarray(frame, dtype=np.float32)
        votes.append(find_hot_pixels(f, nsigma=HOT_SIGMA, ratio=HOT_RATIO)
                     | find_hot_pixels(-f, nsigma=HOT_SIGMA, ratio=HOT_RATIO))
    return _vote(np.array(votes))


def dark_features(frame, circle):
    """Pixels of one frame darker than its sky: silhouettes, and thin dark lines
    widened by :data:`WIRE_SWAY_PX`.

    Parameters
    ----------
    frame : ndarray, (ny, nx)
        Raw or detrended frame, ADU.
    circle : (float, float, float)
        Lens circle centre x, y and radius, pixels.

    Returns
    -------
    silhouette, line : ndarray of bool
        Inside the lens circle only (the outside is not judged here).
    """
    from scipy import ndimage

    from allsky_camera.stages.fastmedian import median_filter_fast

    med = np.asarray(frame, dtype=np.float32)
    ny, nx = med.shape
    cx, cy, r = circle
    yy, xx = np.mgrid[:ny, :nx]
    rr = np.hypot(xx - cx, yy - cy)
    inside = rr < r
    level = median_filter_fast(med, LEVEL_KERNEL_PX, step=8, mask=inside)
    base = np.nanpercentile(med[~inside], 1) if (~inside).any() else 0.0
    lv = level - base
    # the sky's radial profile: median level in rings
    ring = (rr / RADIAL_BIN_PX).astype(int)
    prof = ndimage.median(lv, labels=np.where(inside, ring + 1, 0),
                          index=np.arange(1, ring[inside].max() + 2))
    expect = np.asarray(prof)[np.clip(ring, 0, len(prof) - 1)]
    # silhouettes: well below the sky's radial profile (brighter than it is the
    # Milky Way, the Moon's glare or a lit cloud, not an obstruction)
    with np.errstate(invalid="ignore", divide="ignore"):
        depart = lv / np.where(expect > 0, expect, np.nan) < 1.0 - LEVEL_DEPARTURE
    # thin dark features (a wire): darker than the local median
    local = median_filter_fast(med, LOCAL_KERNEL_PX, step=2, mask=inside)
    res = np.where(inside, med - local, 0.0)     # no NaN: the box filter would spread it
    sm = ndimage.uniform_filter(res, 3)
    dark = sm < -WIRE_SIGMA * _robust_sigma(sm[inside][::7])
    lab, n = ndimage.label(dark)
    if n:     # thin lines, not speckles of noise
        sizes = np.bincount(lab.ravel())
        keep = sizes >= MIN_FEATURE_PX
        keep[0] = False
        dark = ndimage.binary_dilation(keep[lab], iterations=WIRE_SWAY_PX)
    # no lines in glare: the Moon's halo has dark gaps between its rays
    with np.errstate(invalid="ignore"):
        glare = lv > (1.0 + GLARE_EXCESS) * expect
    glare = ndimage.binary_dilation(glare, iterations=GLARE_GROW_PX)
    return depart & inside, dark & inside & ~glare


def obstructions(stack, circle):
    """Pixels where the sky is hidden, from a stack of frames and the lens circle.

    Parameters
    ----------
    stack : sequence of ndarray, each (ny, nx)
        Frames of the same camera (several nights, Moon and twilight
        welcome: only what is dark in most of them is kept).
    circle : (float, float, float)
        Lens circle centre x, y and radius, pixels.

    Returns
    -------
    ndarray of bool
    """
    from scipy import ndimage

    sil, line = zip(*(dark_features(f, circle) for f in stack))
    # a silhouette must be dark in most frames; a thin dark line at the same
    # place in LINE_MIN_FRAMES frames is fixed (light that comes and goes is
    # never darker than the sky, and the Milky Way's dark lanes move)
    feat = _vote(np.array(sil)) | (np.sum(line, axis=0) >= min(LINE_MIN_FRAMES, len(stack)))
    ny, nx = feat.shape
    cx, cy, r = circle
    yy, xx = np.mgrid[:ny, :nx]
    inside = np.hypot(xx - cx, yy - cy) < r
    lab, n = ndimage.label(feat)
    if n:
        sizes = np.bincount(lab.ravel())
        keep = sizes >= MIN_FEATURE_PX
        keep[0] = False
        feat = keep[lab]
    mask = feat | ~inside
    return ndimage.binary_dilation(mask, iterations=DILATE_PX)


def write_mask(mask, path):
    """Write a boolean mask as a compressed uint8 FITS image (1 = masked)."""
    from astropy.io import fits

    from allsky_camera.stages.io import write_fits_hdus

    hdu = fits.CompImageHDU(mask.astype(np.uint8), compression_type="RICE_1")
    write_fits_hdus(fits.HDUList([fits.PrimaryHDU(), hdu]), path)


def read_mask(path, shape):
    """Read a mask written by :func:`write_mask` (or any image: nonzero = masked)."""
    from astropy.io import fits

    from allsky_camera.exceptions import ConfigError

    try:
        with fits.open(path) as hdul:
            data = next(h.data for h in hdul if h.data is not None)
    except (OSError, StopIteration) as err:
        raise ConfigError(f"{path}: cannot read the mask ({err}); rebuild it with "
                          "ac_calibrate.py --build-masks") from err
    if data.shape != tuple(shape):
        raise ConfigError(f"{path}: mask is {data.shape[1]}x{data.shape[0]} but the camera is "
                          f"{shape[1]}x{shape[0]}")
    return data != 0
