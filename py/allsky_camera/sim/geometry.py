"""Where each pixel of a simulated frame looks: zenith distance, solid angle, sky.

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`:
0-based, ``x`` is the column (fast axis, ``image[y, x]``), pixel centres at
integers.  Angles in degrees, solid angles in steradians.
"""

from __future__ import annotations

import math

import numpy as np

#: Zenith distance of the horizon, deg (definition).
HORIZON_ZD_DEG = 90.0
#: Square arcseconds per steradian, (180 / pi * 3600)^2 (unit conversion).
ARCSEC2_PER_SR = (180.0 / math.pi * 3600.0) ** 2
#: Step (pixels) of the radial tables of zenith distance and pixel solid
#: angle interpolated over the image: both are smooth in the radius, and
#: linear interpolation on this step agrees with the model to ~1e-7.
RADIAL_STEP_PX = 0.25


def sky_geometry(model, nx, ny, horizon_alt_deg):
    """Zenith distance and solid angle of every pixel, and which pixels see the sky.

    Parameters
    ----------
    model : CameraModel
        The true camera model.
    nx, ny : int
        Sensor size, pixels.
    horizon_alt_deg : float
        Lowest altitude the lens sees, deg.

    Returns
    -------
    zd_deg : ndarray, shape (ny, nx)
        Zenith distance of each pixel centre, deg.
    omega_sr : ndarray, shape (ny, nx)
        Solid angle of each pixel, sr: the model's ``pixel_solid_angle``,
        which depends only on the radius from the optical axis, tabulated
        every :data:`RADIAL_STEP_PX` and interpolated.
    on_sky : ndarray of bool, shape (ny, nx)
        Pixels above ``horizon_alt_deg``; for an untilted model, those
        within the radius of zenith distance ``90 - horizon_alt_deg``.
    """
    yy, xx = np.indices((ny, nx), dtype=float)
    r = np.hypot(xx - model.x0, yy - model.y0)
    r_grid = np.arange(0.0, r.max() + 2 * RADIAL_STEP_PX, RADIAL_STEP_PX)
    omega_grid = model.pixel_solid_angle(model.x0 + r_grid, np.full_like(r_grid, model.y0))
    omega = np.interp(r, r_grid, omega_grid)
    if model.tilted:
        alt, _ = model.xy_to_altaz(xx, yy)
        zd = HORIZON_ZD_DEG - alt
        with np.errstate(invalid="ignore"):
            on_sky = alt >= horizon_alt_deg
    else:
        zd = np.interp(r, r_grid, model.theta(r_grid))
        on_sky = r <= float(model.radius(HORIZON_ZD_DEG - horizon_alt_deg))
    on_sky &= np.isfinite(zd) & np.isfinite(omega)
    return zd, omega, on_sky


def sky_pixels(model, on_sky):
    """Indices and sky positions of the pixels that see the sky.

    Parameters
    ----------
    model : CameraModel
    on_sky : ndarray of bool, shape (ny, nx)
        From :func:`sky_geometry`.

    Returns
    -------
    ys, xs : ndarray of int, shape (n,)
        Row and column of each sky pixel, in ``np.nonzero`` order.
    alt_deg, az_deg : ndarray, shape (n,)
        Where each pixel centre looks, deg (azimuth north through east).
    """
    ys, xs = np.nonzero(on_sky)
    alt, az = model.xy_to_altaz(xs, ys)
    return ys, xs, alt, az
