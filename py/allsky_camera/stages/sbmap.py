"""Sky-brightness map in V mag/arcsec^2.

The sky level in each pixel is the ``kernel x kernel`` running median of the
detrended image (evaluated on a grid and interpolated, see
:mod:`allsky_camera.stages.fastmedian`), divided by the exposure time and by the
pixel's solid angle from the camera model, and put on the V scale with the
camera's nominal zeropoint on the total-flux scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from allsky_camera.stages.fastmedian import median, median_filter_box

log = logging.getLogger(__name__)

#: Square arcseconds per steradian, (180/pi * 3600)^2.
ARCSEC2_PER_SR = (180.0 / np.pi * 3600.0) ** 2


@dataclass(frozen=True)
class SkyMap:
    """Result of :func:`run`.

    Attributes
    ----------
    mag : ndarray of float32
        Sky brightness, V mag/arcsec^2, NaN outside the safe radius or where
        the sky is not positive.
    zp : float
        Zeropoint used (mag for 1 ADU/s, total flux).
    kernel_px : int
        Median kernel width, pixels.
    median_mag : float
        Median over the map.
    zenith_mag : float
        Value at the zenith pixel.
    """

    mag: np.ndarray
    zp: float
    kernel_px: int
    median_mag: float
    zenith_mag: float


def safe_mask(shape, model, radius_px):
    """True inside ``radius_px`` of the zenith pixel of ``model``."""
    ny, nx = shape
    out = np.zeros(shape, dtype=bool)
    half = abs(radius_px)
    if not np.isfinite(half):
        return out if np.isnan(half) else np.ones(shape, dtype=bool)
    # only the box around the circle is tested
    y0, y1 = max(int(np.floor(model.y0 - half)), 0), min(int(np.ceil(model.y0 + half)) + 1, ny)
    x0, x1 = max(int(np.floor(model.x0 - half)), 0), min(int(np.ceil(model.x0 + half)) + 1, nx)
    if y0 >= y1 or x0 >= x1:
        return out
    yy, xx = np.ogrid[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = (xx - model.x0) ** 2 + (yy - model.y0) ** 2 <= radius_px ** 2
    return out


#: Radial step (pixels) of the solid-angle table interpolated for every pixel.
_OMEGA_STEP_PX = 0.5


def solid_angle_map(model, x, y, *, r_max=None):
    """Pixel solid angle (sr) at (x, y), interpolated in radius from a table.

    A pixel's solid angle depends only on its distance from the optical axis
    (the projection is radial; tilts turn the sky without changing areas), so
    a table every 0.5 px reproduces :meth:`CameraModel.pixel_solid_angle` to
    better than 1e-6 at a small fraction of the cost.  ``x`` and ``y``
    broadcast (a row and a column give the whole grid).  With ``r_max``
    (pixels from the zenith pixel) the table stops there: farther pixels get
    its last value.
    """
    r = np.sqrt((x - model.x0) ** 2 + (y - model.y0) ** 2)
    grid, table = _omega_table(model, r, r_max)
    return np.interp(r, grid, table)


def _omega_table(model, r, r_max):
    """Radii every 0.5 px from 0 past ``r``'s largest (or ``r_max``) and the
    pixel solid angle there, sr."""
    top = r.max() if r_max is None or not r.size else min(r.max(), r_max)
    grid = np.arange(0.0, top + 2 * _OMEGA_STEP_PX, _OMEGA_STEP_PX) if r.size else np.zeros(1)
    return grid, model.pixel_solid_angle(model.x0 + grid, np.full(grid.shape, model.y0))


def _magnitude_box(sky_adu, exptime, model, xs, ys, zp, r_max, out):
    """:func:`surface_brightness` of the sky levels ``sky_adu`` on the pixels
    of columns ``xs`` and rows ``ys``, written to ``out`` (float32, same shape).

    ``zp - 2.5 log10(sky / (t omega A))`` is split as ``c(r) - 2.5 log10(sky)``
    with ``c = zp + 2.5 log10(t omega A)``, a function of the distance from
    the zenith pixel interpolated from the 0.5-px table of
    :func:`solid_angle_map`; the (natural) logarithm of the sky is taken in
    its own precision (float32).  This costs a third of the direct formula and differs
    from it by less than 1e-5 mag (float32 rounding of the result).
    """
    r = np.sqrt(((xs - model.x0) ** 2)[None, :] + ((ys - model.y0) ** 2)[:, None])
    grid, table = _omega_table(model, r, r_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.interp(r, grid, zp + 2.5 * np.log10(exptime * table * ARCSEC2_PER_SR))
    with np.errstate(invalid="ignore", divide="ignore"):
        lg = np.log(sky_adu.astype(np.result_type(sky_adu.dtype, np.float32), copy=False))
    np.copyto(lg, np.nan, where=lg == -np.inf)      # zero sky; negative sky is NaN already
    lg *= -2.5 / np.log(10.0)                       # -2.5 log10(sky)
    np.add(c, lg, out=out, casting="same_kind")


def surface_brightness(sky_adu, exptime, omega_sr, zp):
    """V mag/arcsec^2 of a sky level ``sky_adu`` (ADU per pixel) in ``exptime`` s
    on pixels of solid angle ``omega_sr``; NaN where the level is not positive."""
    rate = np.asarray(sky_adu / exptime / (omega_sr * ARCSEC2_PER_SR))
    pos = rate > 0
    mag = np.full(rate.shape, np.nan)
    np.log10(rate, out=mag, where=pos)
    mag *= -2.5
    mag += zp                       # zp - 2.5 log10(rate), in place
    return mag


def run(image, model, exptime, zp, sbcfg, radius_px, *, mask=None, workers=1):
    """Sky-brightness map of a detrended exposure.

    Parameters
    ----------
    image : ndarray
        Detrended image, ADU, ``image[y, x]``.
    model : CameraModel
        Fitted camera model (for the solid angle of each pixel).
    exptime : float
        Seconds.
    zp : float
        Zeropoint, mag for 1 ADU/s, total-flux scale.
    sbcfg : Sbmap
        Kernel width and grid step.
    radius_px : float
        Map only within this radius of the zenith pixel.
    mask : ndarray of bool, optional
        Extra pixels to leave out (True = not sky, e.g. obstructions).
    workers : int
        Parallel workers for the median.

    Returns
    -------
    SkyMap
    """
    want = safe_mask(image.shape, model, radius_px)
    if mask is not None:
        want &= ~mask
    # per-pixel work only in the box around the wanted pixels; the sky is NaN
    # at the unwanted ones, and so is their magnitude
    sky, by, bx = median_filter_box(image, sbcfg.kernel_px, step=sbcfg.step_px, mask=want,
                                    workers=workers)
    out = np.full(image.shape, np.nan, dtype=np.float32)
    if by.stop > by.start:
        ys = np.arange(by.start, by.stop, dtype=float)
        xs = np.arange(bx.start, bx.stop, dtype=float)
        _magnitude_box(sky, exptime, model, xs, ys, zp, radius_px, out[by, bx])
    iz, jz = round(model.y0), round(model.x0)
    inside = 0 <= iz < image.shape[0] and 0 <= jz < image.shape[1]
    zen = float(out[iz, jz]) if inside else float("nan")
    vals = out[by, bx]
    vals = vals[~np.isnan(vals)]
    med = float(median(vals)) if vals.size else float("nan")
    log.info("sbmap: median %.2f, zenith %.2f mag/arcsec2 (zp %.3f)", med, zen, zp)
    return SkyMap(out, float(zp), int(sbcfg.kernel_px), med, zen)
