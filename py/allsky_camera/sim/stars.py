"""Simulated stars: which are seen, how bright through the photometric model, which saturate.

:func:`visible_stars` places the reference stars on the sensor;
:func:`zeropoints` reads the camera's nominal zeropoint as the simulator's
true one; :func:`model_dmag` and :func:`star_flux` give each star's flux
through the photometric model of :mod:`allsky_camera.stages.photmodel`
(extinction ``k (X - 1)`` with the Kasten & Young airmass, colour term
``c (B - V)``, vignetting ``v(zd)``); the PSF that renders them is in
:mod:`allsky_camera.sim.psf`; :func:`saturated_stars` reads the raw frame
back.

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`:
0-based, ``x`` is the column (fast axis, ``image[y, x]``), pixel centres at
integers.  Angles in degrees, magnitudes V, fluxes in ADU.
"""

from __future__ import annotations

import math

import numpy as np

from allsky_camera.camera.coords import radec_to_altaz
from allsky_camera.sim.geometry import HORIZON_ZD_DEG
from allsky_camera.sim.psf import FWHM_PER_SIGMA, enclosed_fraction
from allsky_camera.stages.photmodel import airmass, vignetting_mag


def visible_stars(cat, model, time, site, *, horizon_alt_deg, nx, ny):
    """Reference stars above the horizon and on the sensor, placed by the true model.

    Parameters
    ----------
    cat : astropy.table.Table
        Reference stars with ``RA``, ``DEC`` (deg, ICRS at the epoch) and
        ``VMAG`` (:func:`allsky_camera.stages.catalog.reference_stars`).
    model : CameraModel
        The true camera model.
    time : ObsTime
    site : allsky_camera.camera.coords.Site
    horizon_alt_deg : float
        Lowest altitude rendered, deg.
    nx, ny : int
        Sensor size, pixels.

    Returns
    -------
    cat : astropy.table.Table
        The rows kept (finite ``VMAG``, above ``horizon_alt_deg``, centre
        within ``-0.5 <= x < nx - 0.5`` and ``-0.5 <= y < ny - 0.5``).
    alt_deg, az_deg : ndarray
        Apparent (refracted) altitude and azimuth, deg.
    x, y : ndarray
        True pixel positions, 0-based, centres at integers.
    """
    alt, az = radec_to_altaz(np.asarray(cat["RA"], dtype=float),
                             np.asarray(cat["DEC"], dtype=float), time, site)
    vmag = np.asarray(cat["VMAG"], dtype=float)
    x, y = model.altaz_to_xy(alt, az)
    keep = ((alt > horizon_alt_deg) & np.isfinite(vmag)
            & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5))
    return cat[keep], alt[keep], az[keep], x[keep], y[keep]


def zeropoints(zp_true, *, zp_nominal, zp_nominal_scale, aper_radius_px, fwhm_zenith_px):
    """The true total-flux zeropoint and the aperture zeropoint at the zenith.

    Parameters
    ----------
    zp_true : float or None
        The true total-flux zeropoint, mag for 1 ADU/s; None: derived from
        ``zp_nominal``.
    zp_nominal : float
        The camera's nominal zeropoint, mag for 1 ADU/s.
    zp_nominal_scale : str
        ``'total'``: ``zp_nominal`` is the total-flux zeropoint;
        ``'aperture'``: it is the zenith zeropoint of the flux inside the
        photometric aperture, so the total one is ``zp_nominal - 2.5 log10 EF``.
    aper_radius_px : float
        Photometric aperture radius, pixels.
    fwhm_zenith_px : float
        PSF FWHM at the zenith, pixels.

    Returns
    -------
    zp_true, zp_aper : float
        Total-flux and aperture zeropoints at the zenith (X = 1), mag for
        1 ADU/s; ``zp_aper = zp_true + 2.5 log10 EF`` with EF the
        pixelated :func:`~allsky_camera.sim.psf.enclosed_fraction` of the
        zenith PSF.
    """
    ef_zen = float(enclosed_fraction(aper_radius_px, fwhm_zenith_px / FWHM_PER_SIGMA))
    if zp_true is None:
        zp_true = zp_nominal
        if zp_nominal_scale == "aperture":
            zp_true = zp_nominal - 2.5 * math.log10(ef_zen)
    zp_true = float(zp_true)
    return zp_true, zp_true + 2.5 * math.log10(ef_zen)


def model_dmag(alt_deg, bv, *, ext_coef, colour_term, vignetting):
    """Magnitude added to a star by the photometric model.

    Parameters
    ----------
    alt_deg : ndarray
        Apparent altitude, deg.
    bv : ndarray
        B-V colour, mag; NaN (unknown) counts as 0.
    ext_coef : float
        Extinction k, mag per airmass.
    colour_term : float
        c, mag per mag of B-V.
    vignetting : sequence of float
        Coefficients of ``(zd/90)^2, (zd/90)^4, ...``, mag.

    Returns
    -------
    ndarray
        ``k (X - 1) + c (B - V) + v(zd)``, mag, with X the Kasten & Young
        airmass (:func:`allsky_camera.stages.photmodel.airmass`).
    """
    zd = HORIZON_ZD_DEG - np.asarray(alt_deg, dtype=float)
    return (ext_coef * (airmass(zd) - 1.0) + colour_term * np.nan_to_num(bv, nan=0.0)
            + vignetting_mag(zd, vignetting))


def star_flux(vmag, dmag, *, zp, exptime, transmission):
    """Total flux of stars in the exposure, ADU.

    Parameters
    ----------
    vmag, dmag : ndarray
        V magnitude and :func:`model_dmag`, mag.
    zp : float
        Total-flux zeropoint at the zenith, mag for 1 ADU/s.
    exptime : float
        Exposure time, s.
    transmission : ndarray or float
        Cloud transmission at each star, 0-1.

    Returns
    -------
    ndarray
        ``10**(-0.4 (V - zp + dmag)) * exptime * transmission``.
    """
    return 10.0 ** (-0.4 * (vmag - zp + dmag)) * exptime * transmission


def saturated_stars(raw, hot, x, y, radius_px, saturation_adu):
    """Stars with a saturated pixel that is not hot within ``radius_px`` of their centre.

    Parameters
    ----------
    raw : ndarray, shape (ny, nx)
        The raw frame, ADU.
    hot : ndarray of bool, shape (ny, nx)
        Hot pixels (ignored).
    x, y : array_like, shape (n,)
        Star positions, pixels (0-based, centres at integers).
    radius_px : float
        Pixels whose centre lies within this of a star count, pixels.
    saturation_adu : float

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    ny, nx = raw.shape
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size == 0:
        return np.zeros(0, dtype=bool)
    reach = math.ceil(radius_px) + 1
    offs = np.arange(-reach, reach + 1)
    ix = np.rint(x).astype(int)[:, None, None] + offs[None, None, :]
    iy = np.rint(y).astype(int)[:, None, None] + offs[None, :, None]
    near = (ix - x[:, None, None]) ** 2 + (iy - y[:, None, None]) ** 2 <= radius_px ** 2
    near &= (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ixc = np.clip(ix, 0, nx - 1)
    iyc = np.clip(iy, 0, ny - 1)
    return (near & (raw[iyc, ixc] >= saturation_adu) & ~hot[iyc, ixc]).any(axis=(1, 2))
