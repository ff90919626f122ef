"""Scattered moonlight on a clear sky: the model of Krisciunas & Schaefer (1991).

Krisciunas & Schaefer (1991, PASP 103, 1033; "K&S" below) predict the V-band
sky brightness that a clear atmosphere adds when the Moon is up, from the
Moon's phase angle, its zenith distance, the zenith distance of the sky
position, their separation and the extinction coefficient.  They quote an
accuracy of 8 % to 23 % against their Mauna Kea data.  Thin cloud lit by
the Moon brightens the sky above this prediction; how much a real camera's
sky departs from it on clear frames is what ``benchmarks/moonsky_evidence.py``
measures.

Units: brightness in nanolamberts (nL, K&S's unit) or V mag/arcsec^2; angles
in degrees.
"""

from __future__ import annotations

import numpy as np

#: K&S, after Garstang (1989): B(nL) = 34.08 exp(20.7233 - 0.92104 V),
#: V in mag/arcsec^2.
NL_SCALE = 34.08
NL_OFFSET = 20.7233
NL_SLOPE = 0.92104
#: K&S: the Moon's V magnitude outside the atmosphere against its phase
#: angle alpha (deg), -12.73 + 0.026 |alpha| + 4e-9 alpha^4 (Allen 1973), as
#: the illuminance I* = 10^(-0.4 (3.84 + 0.026 |alpha| + 4e-9 alpha^4)) in
#: K&S's units.
MOON_MAG_FULL_OFFSET = 3.84
MOON_PHASE_LIN = 0.026
MOON_PHASE_QUART = 4.0e-9
#: K&S: the scattering function f(rho) = 10^5.36 (1.06 + cos^2 rho)
#: (Rayleigh) + 10^(6.15 - rho / 40) (Mie, rho in deg).
RAYLEIGH_LOG = 5.36
RAYLEIGH_ISO = 1.06
MIE_LOG = 6.15
MIE_SCALE_DEG = 40.0
#: K&S: the airmass of a thin layer at height, X = (1 - 0.96 sin^2 Z)^-1/2.
KS_AIRMASS_SIN2 = 0.96


def nl_to_mag(b_nl):
    """Surface brightness in nanolamberts to V mag/arcsec^2 (K&S, inverted).

    NaN where ``b_nl`` is not positive.
    """
    b = np.asarray(b_nl, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, (NL_OFFSET - np.log(np.where(b > 0, b, 1.0) / NL_SCALE))
                        / NL_SLOPE, np.nan)


def mag_to_nl(mag):
    """V mag/arcsec^2 to nanolamberts (K&S)."""
    return NL_SCALE * np.exp(NL_OFFSET - NL_SLOPE * np.asarray(mag, dtype=float))


def phase_angle_deg(illuminated_fraction):
    """The Moon's phase angle (deg, 0 at full) from its illuminated fraction.

    The illuminated fraction of a sphere seen at phase angle alpha is
    ``(1 + cos alpha) / 2``; the fraction is clipped to [0, 1].
    """
    k = np.clip(np.asarray(illuminated_fraction, dtype=float), 0.0, 1.0)
    return np.degrees(np.arccos(2.0 * k - 1.0))


def ks_airmass(zd_deg):
    """K&S: the airmass ``(1 - 0.96 sin^2 Z)^(-1/2)`` (finite at the horizon)."""
    s = np.sin(np.radians(np.asarray(zd_deg, dtype=float)))
    return 1.0 / np.sqrt(1.0 - KS_AIRMASS_SIN2 * s * s)


def moon_illuminance(phase_deg):
    """K&S: the Moon's illuminance outside the atmosphere, K&S units.

    Parameters
    ----------
    phase_deg : array_like
        Phase angle alpha, deg (0: full Moon, 180: new).
    """
    a = np.abs(np.asarray(phase_deg, dtype=float))
    return 10.0 ** (-0.4 * (MOON_MAG_FULL_OFFSET + MOON_PHASE_LIN * a + MOON_PHASE_QUART * a ** 4))


def scattering_function(sep_deg):
    """K&S: the atmosphere's scattering function f(rho), K&S units."""
    rho = np.asarray(sep_deg, dtype=float)
    return (10.0 ** RAYLEIGH_LOG * (RAYLEIGH_ISO + np.cos(np.radians(rho)) ** 2)
            + 10.0 ** (MIE_LOG - rho / MIE_SCALE_DEG))


def scattered_moonlight_nl(*, zd_deg, moon_zd_deg, sep_deg, phase_deg, k_v):
    """Sky brightness added by the Moon on a clear sky, nanolamberts (K&S).

    ``B = f(rho) I* 10^(-0.4 k X(Z_moon)) (1 - 10^(-0.4 k X(Z)))``.

    Parameters
    ----------
    zd_deg : array_like
        Zenith distance of the sky position, deg.
    moon_zd_deg : float or array_like
        Zenith distance of the Moon, deg (the Moon above the horizon: < 90).
    sep_deg : array_like
        Angular separation of the sky position from the Moon, deg (K&S's
        data start some 10 deg from the Moon: nearer, the aureole is
        extrapolated).
    phase_deg : float
        Phase angle of the Moon, deg (:func:`phase_angle_deg`).
    k_v : float
        V-band extinction coefficient, mag/airmass.

    Returns
    -------
    ndarray
        nL; 0 where the Moon is below the horizon.
    """
    mz = np.asarray(moon_zd_deg, dtype=float)
    b = (scattering_function(sep_deg) * moon_illuminance(phase_deg)
         * 10.0 ** (-0.4 * k_v * ks_airmass(np.minimum(mz, 90.0)))
         * (1.0 - 10.0 ** (-0.4 * k_v * ks_airmass(zd_deg))))
    return np.where(mz < 90.0, b, 0.0)
