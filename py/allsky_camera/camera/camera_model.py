"""The camera's astrometric model: horizontal coordinates <-> pixels.

Pixel convention (used throughout the package): 0-based, ``x`` is the column
(the fast axis of a numpy image ``img[y, x]``), ``y`` the row, and pixel
centres sit at integer coordinates, so pixel ``(0, 0)`` covers
``-0.5 <= x, y < 0.5``.  Angles are in degrees unless a name says otherwise;
azimuth runs from north (0) through east (90).

The mapping is

1. a unit vector in the local (east, north, up) frame is turned into the
   camera frame by two small tilts of the optical axis (toward north by
   ``tilt_n_deg``, then toward east by ``tilt_e_deg``);
2. its angle ``theta`` from the optical axis maps to a radius ``r`` in pixels
   by the projection (``poly`` or one of the standard fisheye families, with
   radial distortion terms), times ``scale``;
3. its azimuth ``phi`` in the camera frame places the unrotated offset at
   ``dx' = -parity * r * sin(phi)``, ``dy' = r * cos(phi)`` (north along +y;
   with ``parity = +1`` east along -x, the sky as seen from below), and the
   image is then rotated by ``R = rot_deg`` in the pixel plane, from +x
   toward +y::

       x = x0 + cos(R) dx' - sin(R) dy'
       y = y0 + sin(R) dx' + cos(R) dy'

   This is the original pipeline's published MDM formula (``R = +3.5506619``
   deg for its template), and it holds for every camera: a mirrored camera
   (``parity = -1``) only flips the sign of ``dx'``.  Equivalently
   ``dx = -parity r sin(phi + parity R)``, ``dy = r cos(phi + parity R)``.

The model is a frozen, versioned dataclass that serialises to a plain dict
(for YAML) and to FITS header cards with 8-character keywords.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from allsky_camera.exceptions import ConfigError

MODEL_VERSION = 1

#: Projections known to the model.  ``poly``: r = sum_k c_k * theta_deg**(k+1)
#: (the MDM template's form).  The others: r = f * g(theta) * (1 + k1 theta^2 +
#: k2 theta^4 + ...), theta in radians, with g from the standard fisheye
#: families; ``coeffs = (f, k1, k2, ...)`` with f in pixels per radian.
PROJECTIONS = ("poly", "equidistant", "equisolid", "stereographic", "orthographic")

_G = {
    "equidistant": lambda t: t,
    "equisolid": lambda t: 2.0 * np.sin(t / 2.0),
    "stereographic": lambda t: 2.0 * np.tan(t / 2.0),
    "orthographic": np.sin,
}

#: Zenith distance (deg) up to which the radial function is tabulated for its
#: inverse; beyond 100 deg nothing of the sky is imaged by an all-sky lens.
_THETA_MAX_DEG = 100.0
#: Step of that table (deg); Newton steps refine the interpolated guess.
_THETA_STEP_DEG = 0.05
#: Step (rad) of the central difference used for dr/dtheta.
_DTHETA = 1e-6
#: Parameters that :meth:`CameraModel.replace` changes without the full
#: validation (none of them can make the radial function invalid but a
#: scale <= 0, which is checked).
_CHEAP_CHANGES = frozenset({"x0", "y0", "rot_deg", "tilt_n_deg", "tilt_e_deg", "scale"})


@dataclasses.dataclass(frozen=True)
class CameraModel:
    """Astrometric model of a fixed all-sky camera.

    Parameters
    ----------
    x0, y0 : float
        Pixel position of the optical axis (the zenith when untilted),
        0-based, pixel centres at integers.
    rot_deg : float
        Rotation of the image in the pixel plane, deg, counted from +x
        toward +y (the original pipeline's ``R``); see the module docstring.
    parity : int
        +1 for the sky as seen from below (east to the left of north when
        north is up), -1 for a mirror-reversed image.
    projection : str
        One of :data:`PROJECTIONS`.
    coeffs : tuple of float
        Radial coefficients, see :data:`PROJECTIONS`.
    scale : float
        Multiplicative radial scale (1 for a template; fitted per exposure).
    tilt_n_deg, tilt_e_deg : float
        Tilt of the optical axis from the zenith toward north and east (deg).
    version : int
        Model format version.
    """

    x0: float
    y0: float
    rot_deg: float
    parity: int
    projection: str
    coeffs: tuple[float, ...]
    scale: float = 1.0
    tilt_n_deg: float = 0.0
    tilt_e_deg: float = 0.0
    version: int = MODEL_VERSION

    def __post_init__(self):
        if self.projection not in PROJECTIONS:
            raise ConfigError(
                f"camera model: projection {self.projection!r} is not one of "
                f"{', '.join(PROJECTIONS)}; set astrometry.model.projection")
        if self.parity not in (1, -1):
            raise ConfigError(
                f"camera model: parity {self.parity!r} must be +1 or -1; set "
                "astrometry.model.parity")
        if len(self.coeffs) == 0:
            raise ConfigError("camera model: coeffs is empty; give at least one "
                              "radial coefficient in astrometry.model.coeffs")
        object.__setattr__(self, "coeffs", tuple(float(c) for c in self.coeffs))
        if self.version != MODEL_VERSION:
            raise ConfigError(
                f"camera model: version {self.version} is not supported "
                f"(this pipeline reads version {MODEL_VERSION})")
        r = self.radius(np.array([1.0, 45.0, 89.0]))
        if not np.all(np.diff(r) > 0) or r[0] <= 0:
            raise ConfigError(
                "camera model: the radial function is not increasing with "
                "zenith distance; check astrometry.model.coeffs and scale")

    # ------------------------------------------------------------------ radial
    def radius(self, theta_deg):
        """Radius in pixels from the optical axis for angle ``theta_deg`` (deg)."""
        return self.scale * self.unscaled_radius(theta_deg)

    def unscaled_radius(self, theta_deg):
        """:meth:`radius` before the factor ``scale`` (pixels; deg in)."""
        theta_deg = np.asarray(theta_deg, dtype=float)
        c = self.coeffs
        if self.projection == "poly":
            r = np.zeros_like(theta_deg)
            for k in range(len(c) - 1, -1, -1):   # Horner, no constant term
                r = (r + c[k]) * theta_deg
        else:
            t = np.radians(theta_deg)
            dist = np.ones_like(t)
            t2 = t * t
            for k, kk in enumerate(c[1:]):
                dist = dist + kk * t2 ** (k + 1)
            r = c[0] * _G[self.projection](t) * dist
        return r

    def dradius_dtheta(self, theta_deg):
        """Derivative of :meth:`radius` in pixels per radian."""
        h = np.degrees(_DTHETA)
        theta_deg = np.asarray(theta_deg, dtype=float)
        return (self.radius(theta_deg + h) - self.radius(theta_deg - h)) / (2 * _DTHETA)

    @functools.cached_property
    def _radius_table(self):
        t = np.arange(0.0, _THETA_MAX_DEG + _THETA_STEP_DEG, _THETA_STEP_DEG)
        r = self.radius(t)
        good = np.concatenate([[True], np.diff(r) > 0])
        last = np.argmin(good) if not good.all() else len(t)
        return t[:last], r[:last]

    def theta(self, r_pix):
        """Angle from the optical axis (deg) for radius ``r_pix`` (pixels).

        Inverse of :meth:`radius` by table interpolation and two Newton
        steps; radii beyond the tabulated range (100 deg) give NaN.
        """
        r_pix = np.asarray(r_pix, dtype=float)
        tt, rr = self._radius_table
        t = np.interp(r_pix, rr, tt, right=np.nan)
        for _ in range(2):
            t = t - np.degrees((self.radius(t) - r_pix) / self.dradius_dtheta(t))
        return t

    # ------------------------------------------------------------------ frames
    def _tilt_matrix(self):
        a = np.radians(self.tilt_n_deg)
        b = np.radians(self.tilt_e_deg)
        # rotation about the east axis by a (takes an axis tilted north to up)
        re = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        # rotation about the north axis by b (takes an axis tilted east to up)
        rn = np.array([[np.cos(b), 0, -np.sin(b)], [0, 1, 0], [np.sin(b), 0, np.cos(b)]])
        return rn @ re

    @property
    def tilted(self):
        """True when the optical axis is tilted from the zenith."""
        return self.tilt_n_deg != 0.0 or self.tilt_e_deg != 0.0

    def altaz_to_xy(self, alt_deg, az_deg):
        """Pixel position of horizontal coordinates.

        Parameters
        ----------
        alt_deg, az_deg : array_like
            Apparent altitude and azimuth (deg; azimuth north through east).

        Returns
        -------
        x, y : ndarray
            Pixel coordinates (0-based, pixel centres at integers).
        """
        theta, phi = self.camera_angles(alt_deg, az_deg)
        return self.radial_to_xy(self.radius(theta), phi)

    def camera_angles(self, alt_deg, az_deg):
        """Angle from the optical axis (deg) and azimuth in the camera frame
        (radians, north through east) of horizontal coordinates (deg): step 1
        of the mapping; depends on the tilts only."""
        alt = np.radians(np.asarray(alt_deg, dtype=float))
        az = np.radians(np.asarray(az_deg, dtype=float))
        if self.tilted:
            v = np.stack([np.cos(alt) * np.sin(az), np.cos(alt) * np.cos(az), np.sin(alt)])
            e, n, u = np.tensordot(self._tilt_matrix(), v, axes=1)
            return np.degrees(np.arctan2(np.hypot(e, n), u)), np.arctan2(e, n)
        return 90.0 - np.degrees(alt), az

    def radial_to_xy(self, r_pix, phi):
        """Pixel position of radius ``r_pix`` (pixels, from :meth:`radius`) at
        camera-frame azimuth ``phi`` (radians, from :meth:`camera_angles`):
        step 3 of the mapping (x0, y0, rot_deg and parity)."""
        psi = phi + self.parity * np.radians(self.rot_deg)
        return self.x0 - self.parity * r_pix * np.sin(psi), self.y0 + r_pix * np.cos(psi)

    def xy_to_altaz(self, x, y):
        """Horizontal coordinates (deg) of pixel positions; inverse of :meth:`altaz_to_xy`."""
        dx = np.asarray(x, dtype=float) - self.x0
        dy = np.asarray(y, dtype=float) - self.y0
        theta = np.radians(self.theta(np.hypot(dx, dy)))
        phi = np.arctan2(-self.parity * dx, dy) - self.parity * np.radians(self.rot_deg)
        if self.tilted:
            v = np.stack([np.sin(theta) * np.sin(phi), np.sin(theta) * np.cos(phi), np.cos(theta)])
            e, n, u = np.tensordot(self._tilt_matrix().T, v, axes=1)
            alt = np.degrees(np.arctan2(u, np.hypot(e, n)))
            az = np.degrees(np.arctan2(e, n))
        else:
            alt = 90.0 - np.degrees(theta)
            az = np.degrees(phi)
        return alt, np.mod(az, 360.0)

    def pixel_solid_angle(self, x, y):
        """Solid angle of one pixel at ``(x, y)`` in steradians.

        For a radial mapping the area element is ``r dr dphi`` in pixels and
        ``sin(theta) dtheta dphi`` on the sky, so one pixel subtends
        ``sin(theta) / (r * dr/dtheta)`` sr (tilts do not change areas).
        """
        r = np.hypot(np.asarray(x, dtype=float) - self.x0, np.asarray(y, dtype=float) - self.y0)
        t = self.theta(r)
        with np.errstate(invalid="ignore", divide="ignore"):
            omega = np.sin(np.radians(t)) / (r * self.dradius_dtheta(t))
        # at the axis itself the limit is 1 / (dr/dtheta)^2
        at_axis = r < 1e-6
        if np.any(at_axis):
            omega = np.where(at_axis, 1.0 / self.dradius_dtheta(0.0) ** 2, omega)
        return omega

    # ------------------------------------------------------------ serialising
    def replace(self, **changes):
        """A copy with some parameters changed (the model is immutable).

        Changes of the position, rotation, tilts and scale alone skip the full
        validation (a fit makes hundreds of such copies): the radial function
        stays valid exactly when the new scale is positive.
        """
        if not changes.keys() <= _CHEAP_CHANGES:
            return dataclasses.replace(self, **changes)
        if "scale" in changes and not changes["scale"] > 0:
            raise ConfigError(
                "camera model: the radial function is not increasing with "
                "zenith distance; check astrometry.model.coeffs and scale")
        new = object.__new__(type(self))
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state.update(changes)
        if "scale" not in changes and "_radius_table" in self.__dict__:
            state["_radius_table"] = self._radius_table   # the radial function is unchanged
        new.__dict__.update(state)
        return new

    def to_dict(self):
        """Plain dict of the parameters, for YAML."""
        d = dataclasses.asdict(self)
        d["coeffs"] = [float(c) for c in self.coeffs]
        return d

    @classmethod
    def from_dict(cls, d, where="camera model"):
        """Build from a dict as written by :meth:`to_dict`."""
        try:
            return cls(**d)
        except TypeError as err:
            raise ConfigError(f"{where}: {err}; see etc/MDM.yaml for the keys") from err

    def header_cards(self, prefix=""):
        """FITS header cards ``(keyword, value, comment)`` describing the model.

        ``prefix`` (at most 2 characters, e.g. ``'T'`` for the template) is
        put before each keyword so that two models can share a header.
        """
        p = prefix
        cards = [
            (p + "ZENX", self.x0, "[pix] optical axis x (0-based)"),
            (p + "ZENY", self.y0, "[pix] optical axis y (0-based)"),
            (p + "ROT", self.rot_deg, "[deg] image rotation, +x toward +y"),
            (p + "PARITY", self.parity, "+1 sky seen from below, -1 mirrored"),
            (p + "PROJ", self.projection, "radial projection family"),
            (p + "RSCALE", self.scale, "radial scale factor"),
            (p + "TILTN", self.tilt_n_deg, "[deg] optical axis tilt toward north"),
            (p + "TILTE", self.tilt_e_deg, "[deg] optical axis tilt toward east"),
        ]
        for k, c in enumerate(self.coeffs):
            cards.append((f"{p}RC{k + 1}", c, f"radial coefficient {k + 1}"))
        return cards
