"""Simulated clouds: where they are, how much light they pass, how they light up the sky.

A :class:`Clouds` layer is a transmission over the sky
(:func:`cloud_transmission`, 0-1, 1 outside the cloud) that multiplies the
stars' flux and the sky behind the cloud; the cloud also sends its own
light (:func:`cloudy_sky`), so a moonlit or city-lit cloud brightens the
sky beneath it.  ``thin`` is a structured thin cloud whose transmission
varies between two values, ``haze`` a uniform dimming of the whole sky.

Angles in degrees, azimuth north through east; sky signal in ADU per
pixel.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from allsky_camera.exceptions import ConfigError

#: Cloud layers :func:`cloud_transmission` draws; ``none`` is a clear sky.
CLOUD_KINDS = ("none", "patches", "band", "quarter", "half", "three-quarter", "overcast",
               "thin", "haze")
#: Cloud geometry: shape choices of the simulator, sized so that each kind
#: covers a distinct, substantial part of an all-sky frame (deg).
#: ``quarter``: the azimuth quadrant within this of ``Clouds.az_deg``, a
#: quarter of the sky by solid angle at every altitude.
QUARTER_HALF_WIDTH_DEG = 45.0
#: ``half`` and ``three-quarter``: the same, azimuths within 90 and 135 deg of
#: ``Clouds.az_deg`` (half and three quarters of the sky).
SECTOR_HALF_WIDTH_DEG = {"quarter": QUARTER_HALF_WIDTH_DEG, "half": 90.0,
                         "three-quarter": 135.0}
#: ``band``: within this angular distance of the great circle through the
#: zenith at azimuth ``Clouds.az_deg`` (a band 20 deg wide, ~17 % of the sky).
BAND_HALF_WIDTH_DEG = 10.0
#: ``patches``: this many round clouds ...
N_CLOUD_PATCHES = 4
#: ... centred at altitudes drawn uniformly in this range (deg) ...
PATCH_ALT_RANGE_DEG = (25.0, 80.0)
#: ... at azimuths within this of ``Clouds.az_deg`` (deg) ...
PATCH_AZ_SPREAD_DEG = 120.0
#: ... with radii drawn uniformly in this range (deg).
PATCH_RADIUS_RANGE_DEG = (10.0, 25.0)
#: ``thin``: a structured thin cloud over the ``quarter`` footprint, its
#: transmission varying between ``transmission`` and ``transmission_max``
#: as a sum of this many random plane waves on the sky ...
THIN_N_WAVES = 6
#: ... of this wavelength (deg): cloud structure of ~10 deg, as in real
#: moonlit cirrus and altocumulus seen by all-sky cameras.
THIN_WAVELENGTH_DEG = 20.0


@dataclasses.dataclass(frozen=True)
class Clouds:
    """A cloud layer for :func:`allsky_camera.sim.simulate.simulate`.

    Attributes
    ----------
    kind : str
        One of :data:`CLOUD_KINDS`: ``patches`` (:data:`N_CLOUD_PATCHES`
        round clouds at random places), ``band`` (a strip along a great
        circle through the zenith), ``quarter`` (one azimuth quadrant, a
        quarter of the sky), ``half`` and ``three-quarter`` (azimuth sectors
        of half and three quarters of the sky), ``overcast`` (the whole
        sky), ``thin`` (structured thin cloud over the ``quarter``
        footprint), ``haze`` (the whole sky, uniform), ``none``.
    transmission : float
        Fraction of the light (stars and sky above the cloud) that passes
        through the cloud, 0-1; 1 outside it.
    brightening : float
        Surface brightness of the cloud itself (moonlight, city light
        scattered toward the camera) over that of the clear sky it hides:
        a pixel's sky becomes ``sky * (t + brightening * (1 - t))``, so a
        cloud with ``brightening > 1`` brightens the sky beneath it
        everywhere, most where it is thickest.  The default, 1.25, is a
        modest brightening (0.24 mag under thick cloud); moonlit or city-lit
        clouds are brighter (2 and more), clouds at a dark site darker (< 1).
    az_deg : float
        Azimuth the cloud is centred on (``quarter``, ``band``, ``patches``,
        ``thin``), deg, north through east.
    transmission_max : float, optional
        ``thin`` only: the transmission varies with structure between
        ``transmission`` (thickest) and this (thinnest), e.g. 0.5 and 0.9.
        ``haze`` is a uniform ``transmission`` over the whole sky, without
        structure (give ``brightening`` 1: haze does not light up).
    """

    kind: str
    transmission: float = 0.2
    brightening: float = 1.25
    az_deg: float = 45.0
    transmission_max: float | None = None

    def __post_init__(self):
        if self.kind not in CLOUD_KINDS:
            raise ConfigError(f"clouds kind {self.kind!r}: choose one of "
                              f"{', '.join(CLOUD_KINDS)}")
        if not 0.0 <= self.transmission <= 1.0:
            raise ConfigError(f"clouds transmission {self.transmission}: give a fraction "
                              "between 0 and 1")
        if not (math.isfinite(self.brightening) and self.brightening >= 0.0):
            raise ConfigError(f"clouds brightening {self.brightening}: give a number >= 0")
        if self.kind == "thin" and not (self.transmission_max is not None
                                        and self.transmission <= self.transmission_max <= 1.0):
            raise ConfigError(f"thin clouds need transmission_max between the transmission "
                              f"{self.transmission} and 1, not {self.transmission_max}")


def _thin_transmission(clouds, alt, az, rng):
    """Structured thin cloud over the ``quarter`` footprint, 1 outside it."""
    daz = (az - clouds.az_deg + 180.0) % 360.0 - 180.0
    inside = np.abs(daz) < QUARTER_HALF_WIDTH_DEG
    # structure: random plane waves in the direction vector, squashed to [0, 1]
    a, z = np.radians(alt), np.radians(az)
    v = np.stack([np.cos(a) * np.sin(z), np.cos(a) * np.cos(z), np.sin(a)], axis=-1)
    k = 360.0 / THIN_WAVELENGTH_DEG
    field = np.zeros(alt.shape)
    for _ in range(THIN_N_WAVES):
        d = rng.normal(size=3)
        field += np.cos(k * (v @ (d / np.linalg.norm(d))) + rng.uniform(0, 2 * np.pi))
    f = 0.5 + 0.5 * np.tanh(field / np.sqrt(THIN_N_WAVES / 2.0))
    t = clouds.transmission + (clouds.transmission_max - clouds.transmission) * f
    return np.where(inside, t, 1.0)


def _inside(clouds, alt, az, rng):
    """Which positions a cloud of uniform transmission covers (kinds other than ``thin``)."""
    if clouds.kind in ("overcast", "haze"):
        return np.ones(alt.shape, dtype=bool)
    if clouds.kind in SECTOR_HALF_WIDTH_DEG:
        daz = (az - clouds.az_deg + 180.0) % 360.0 - 180.0
        return np.abs(daz) < SECTOR_HALF_WIDTH_DEG[clouds.kind]
    if clouds.kind == "band":
        # angular distance from the great circle through the zenith at az_deg
        a, z = np.radians(alt), np.radians(az - clouds.az_deg)
        dist = np.degrees(np.arcsin(np.abs(np.cos(a) * np.sin(z))))
        return dist < BAND_HALF_WIDTH_DEG
    # patches (Clouds validated the kind)
    from allsky_camera.camera.coords import angular_sep

    inside = np.zeros(alt.shape, dtype=bool)
    for _ in range(N_CLOUD_PATCHES):
        c_alt = rng.uniform(*PATCH_ALT_RANGE_DEG)
        c_az = clouds.az_deg + rng.uniform(-PATCH_AZ_SPREAD_DEG, PATCH_AZ_SPREAD_DEG)
        radius = rng.uniform(*PATCH_RADIUS_RANGE_DEG)
        inside |= angular_sep(az, alt, c_az, c_alt) < radius
    return inside


def cloud_transmission(clouds, alt_deg, az_deg, rng):
    """Transmission (0-1) of a cloud layer at sky positions.

    Parameters
    ----------
    clouds : Clouds or None
        None or kind ``none``: 1 everywhere.
    alt_deg, az_deg : ndarray
        Positions, deg (azimuth north through east).
    rng : numpy.random.Generator
        Draws the ``patches``' places and sizes and the ``thin`` cloud's
        structure; evaluate every position that must see the same clouds
        (sky pixels and stars) in one call (:func:`sky_and_star_transmission`).

    Returns
    -------
    ndarray of float, the shape of ``alt_deg``
        ``clouds.transmission`` inside the cloud (``thin``: between it and
        ``transmission_max``), 1 outside.
    """
    alt = np.asarray(alt_deg, dtype=float)
    az = np.asarray(az_deg, dtype=float)
    if clouds is None or clouds.kind == "none":
        return np.ones_like(alt)
    if clouds.kind == "thin":
        return _thin_transmission(clouds, alt, az, rng)
    return np.where(_inside(clouds, alt, az, rng), clouds.transmission, 1.0)


def sky_and_star_transmission(clouds, sky_altaz, star_altaz, rng):
    """One cloud layer's transmission at the sky pixels and at the stars.

    Parameters
    ----------
    clouds : Clouds or None
    sky_altaz, star_altaz : (ndarray, ndarray)
        Altitudes and azimuths of the sky pixels and of the stars, deg.
    rng : numpy.random.Generator
        Drawn from once, for both sets (they see the same clouds).

    Returns
    -------
    sky_t, star_t : ndarray
        Transmission (0-1) at the pixels and at the stars.
    """
    n = np.size(sky_altaz[0])
    both = cloud_transmission(clouds, np.r_[sky_altaz[0], star_altaz[0]],
                              np.r_[sky_altaz[1], star_altaz[1]], rng)
    return both[:n], both[n:]


def cloudy_sky(sky_adu, trans, brightening):
    """Sky under a cloud, ADU per pixel.

    Parameters
    ----------
    sky_adu : ndarray
        The clear sky, ADU per pixel.
    trans : ndarray, the shape of ``sky_adu``
        Cloud transmission, 0-1.
    brightening : float
        :attr:`Clouds.brightening`.

    Returns
    -------
    ndarray
        The clear sky dimmed by ``trans`` plus the cloud's own light,
        ``brightening`` times the clear sky times the opacity ``1 - trans``:
        ``sky_adu * (trans + brightening * (1 - trans))``.
    """
    return sky_adu * (trans + brightening * (1.0 - trans))
