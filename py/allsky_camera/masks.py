"""Static masks of a camera: bad pixels and obstructions, from a stack of frames.

* Bad pixels: hot or dead pixels stand out of their 3x3 neighbourhood by many
  noise sigma in the median of the frames (stars move between frames, hot
  pixels do not).
* Obstructions: pixels inside the lens circle where the sky is hidden
  (trees, buildings, a wire): their large-scale level departs from the sky's
  radial profile, or they are persistently darker than their surroundings
  (a thin wire), in the median of the frames; plus everything outside the
  lens circle.  The mask is dilated a little.

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
WIRE_SIGMA = 2.5
MIN_FEATURE_PX = 40
DILATE_PX = 2
#: Median widths (pixels): large-scale level, and the local background of a wire.
LEVEL_KERNEL_PX = 31
LOCAL_KERNEL_PX = 11
#: Radial bins (pixels) of the sky profile.
RADIAL_BIN_PX = 8


def _robust_sigma(v):
    v = v[np.isfinite(v)]
    return 1.4826 * float(np.median(np.abs(v - np.median(v)))) or 1.0   # MAD to sigma


def bad_pixels(stack):
    """Hot and dead pixels of a stack of frames (``(n, ny, nx)``).

    A pixel is bad when, in every frame, it stands alone far above (hot) or
    below (dead) all its 8 neighbours (:func:`detrend.find_hot_pixels`, which
    a star, spread over several pixels, never passes), so even one frame
    gives a mask that hides no star.
    """
    from .detrend import find_hot_pixels

    bad = None
    for frame in stack:
        f = np.asarray(frame, dtype=np.float32)
        b = (find_hot_pixels(f, nsigma=HOT_SIGMA, ratio=HOT_RATIO)
             | find_hot_pixels(-f, nsigma=HOT_SIGMA, ratio=HOT_RATIO))
        bad = b if bad is None else bad & b
    return bad


def obstructions(stack, circle):
    """Pixels where the sky is hidden, from a stack of frames and the lens circle."""
    from scipy import ndimage

    from .fastmedian import median_filter_fast

    med = np.median(stack, axis=0).astype(np.float32)
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
    depart = lv / np.where(expect > 0, expect, np.nan) < 1.0 - LEVEL_DEPARTURE
    # thin dark features (a wire): darker than the local median in every frame
    local = median_filter_fast(med, LOCAL_KERNEL_PX, step=2, mask=inside)
    res = np.where(inside, med - local, 0.0)     # no NaN: the box filter would spread it
    sm = ndimage.uniform_filter(res, 3)
    dark = sm < -WIRE_SIGMA * _robust_sigma(sm[inside][::7])
    feat = (depart | dark) & inside
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

    from .io import write_fits_hdus

    hdu = fits.CompImageHDU(mask.astype(np.uint8), compression_type="RICE_1")
    write_fits_hdus(fits.HDUList([fits.PrimaryHDU(), hdu]), path)


def read_mask(path, shape):
    """Read a mask written by :func:`write_mask` (or any image: nonzero = masked)."""
    from astropy.io import fits

    from .exceptions import ConfigError

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
