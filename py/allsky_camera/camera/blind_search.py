"""Fast blind hypothesis search for any fisheye: vote, then verify.

The geometry of an unknown all-sky camera is a zenith pixel, a rotation, a
parity, a projection family and a radial scale.  :func:`search` finds the
first four and the scale without a prior:

1. **vote**: for a trial zenith (a grid around the lens circle's centre),
   parity and family, a detection at radius ``rho`` and position angle
   ``psi`` pairs with a bright catalog star of azimuth ``az`` and zenith
   distance ``zd`` when ``|rho - R s h(zd)| <= tol`` for a scale ``s``
   (``R`` the lens circle's radius, ``h`` the family's radial function
   normalised to 1 at the horizon); each such pair votes for the rotation
   that brings the star onto the detection.  All scales are voted at once
   into a (scale, rotation) histogram, smoothed over neighbouring rotation
   bins; its peak is the hypothesis' vote;
2. **verify**: the best-voted hypotheses are scored exactly, as
   :func:`allsky_camera.camera.calibrate.search` does (catalog stars projected by
   the hypothesis that land within ``tol`` pixels of a detection, one
   look-up each in a distance map), on a fine local grid of rotation,
   scale and zenith.

Voting costs ``n_stars x n_detections`` per trial zenith instead of one
projection per rotation step, so all four families are searched in less
time than the exhaustive equidistant-only scan took for one.  The family
matters on a small lens: a stereographic or orthographic radial law
differs from the equidistant one by more than the match tolerance (10 to
30 px at 60 deg from the zenith on a 250 px circle), so the equidistant
scan alone verifies only a few stars there.

Pixel convention: 0-based, x = column, pixel centres at integers; the
rotation as in :mod:`allsky_camera.camera.camera_model` (image turned by R from +x
toward +y after the parity flip).  Angles in degrees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Fisheye families searched, and their radial laws g(theta), theta in rad
#: (the same laws as :mod:`allsky_camera.camera.camera_model`).
FAMILIES = ("equidistant", "equisolid", "stereographic", "orthographic")
#: Width of the rotation bins of the vote (deg) and the half-width of the
#: smoothing window, in bins (+-1.5 deg: 6.5 px at 250 px from the zenith).
VOTE_BIN_DEG = 1.0
VOTE_WINDOW_BINS = 1
#: Hypotheses verified exactly after the vote.
N_VERIFY = 12
#: Fine local grid of the verification: rotation half-range and step (deg),
#: scale steps either side and step, zenith half-range and step (pixels).
VERIFY_ROT_HALF_DEG = 1.5
VERIFY_ROT_STEP_DEG = 0.25
VERIFY_SCALE_STEPS = 2
VERIFY_SCALE_STEP = 0.01
VERIFY_CENTRE_HALF_PX = 4
VERIFY_CENTRE_STEP_PX = 2


@dataclass(frozen=True)
class Hypothesis:
    """A blind geometry: what :func:`search` returns."""

    parity: int          # +1: east left of north (sky seen from below), -1 mirrored
    rot_deg: float       # rotation, deg, from +x toward +y
    scale: float         # radius at the horizon over the lens circle's radius
    x0: float            # zenith pixel x
    y0: float            # zenith pixel y
    family: str          # projection family
    radius_px: float     # the lens circle's radius used, pixels

    def model(self):
        """The :class:`~allsky_camera.camera.camera_model.CameraModel` of this hypothesis."""
        from allsky_camera.camera.camera_model import _G, CameraModel

        f = self.radius_px * self.scale / float(_G[self.family](np.pi / 2))
        return CameraModel(x0=self.x0, y0=self.y0, rot_deg=self.rot_deg % 360.0,
                           parity=self.parity, projection=self.family, coeffs=(f,))


def radial_shape(family, zd_deg):
    """``g(zd) / g(90 deg)``: the family's radius as a fraction of the horizon's."""
    from allsky_camera.camera.camera_model import _G

    g = _G[family]
    return g(np.radians(np.asarray(zd_deg, dtype=float))) / float(g(np.pi / 2))


def _votes(det_x, det_y, cx, cy, h, az, radius, parity, scales, tol, nbins):
    """(n_scale, nbins) smoothed vote histogram of one trial zenith, parity and family."""
    dx, dy = det_x - cx, det_y - cy
    rho = np.hypot(dx, dy)
    psi = np.degrees(np.arctan2(-parity * dx, dy))
    r_pred = radius * scales[:, None] * h[None, :]                    # (ns, nc)
    k, i, j = np.nonzero(np.abs(rho[None, None, :] - r_pred[:, :, None]) <= tol)
    rot = (parity * (psi[j] - az[i])) % 360.0
    b = np.minimum((rot / VOTE_BIN_DEG).astype(int), nbins - 1)
    hist = np.bincount(k * nbins + b, minlength=scales.size * nbins).reshape(scales.size,
                                                                             nbins)
    out = hist.copy()
    for w in range(1, VOTE_WINDOW_BINS + 1):
        out += np.roll(hist, w, axis=1) + np.roll(hist, -w, axis=1)
    return out


def _exact(near, shape, h, az, radius, parity, scale, rots_deg, cx, cy):
    """Catalog stars within the tolerance of a detection, per rotation (exact scores)."""
    ny, nx = shape
    rr = radius * scale * h
    psi = np.radians(az)[None, :] + parity * np.radians(rots_deg)[:, None]
    x = cx - parity * rr[None, :] * np.sin(psi)
    y = cy + rr[None, :] * np.cos(psi)
    xi = np.rint(x).astype(int)
    yi = np.rint(y).astype(int)
    ok = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
    return (near[np.clip(yi, 0, ny - 1), np.clip(xi, 0, nx - 1)] & ok).sum(axis=1)


def search(det_xy, shape, alt, az, circle, *, families=FAMILIES, scales=None,
           centre_search_px=30, centre_step_px=6, tol_px=4.0):
    """Best blind hypothesis and its exact number of matched bright stars.

    Parameters
    ----------
    det_xy : (ndarray, ndarray)
        Detected sources x, y, pixels.
    shape : tuple
        Image shape (ny, nx).
    alt, az : ndarray
        Observed altitude and azimuth of the bright catalog stars, deg.
    circle : (float, float, float)
        Lens circle centre x, y and radius, pixels.
    families : sequence of str
        Projection families to try.
    scales : ndarray, optional
        Horizon radius over the circle's radius to try; default 0.80-1.20
        in steps of 0.02.
    centre_search_px, centre_step_px : float
        Half-size and step of the grid of trial zeniths about the circle's
        centre, pixels.
    tol_px : float
        Match tolerance of the exact score, pixels.  The vote widens it by
        half the grid's diagonal step so that a zenith between grid points
        still gathers its votes.

    Returns
    -------
    score : int
        Bright stars matched by the best hypothesis (-1: no detection).
    hypothesis : Hypothesis or None
    """
    from scipy import ndimage

    ny, nx = shape
    det_x, det_y = (np.asarray(v, dtype=float) for v in det_xy)
    if det_x.size == 0 or np.size(alt) == 0:
        return -1, None
    alt = np.asarray(alt, dtype=float)
    az = np.asarray(az, dtype=float)
    scales = np.arange(0.80, 1.2001, 0.02) if scales is None else np.asarray(scales, float)
    cx0, cy0, radius = circle
    nbins = round(360.0 / VOTE_BIN_DEG)
    tol_vote = tol_px + centre_step_px / np.sqrt(2.0)
    offs = np.arange(-centre_search_px, centre_search_px + 1e-9, centre_step_px)
    shapes = {f: radial_shape(f, 90.0 - alt) for f in families}
    cands = []      # (votes, family, parity, scale, rot, cx, cy)
    for family in families:
        h = shapes[family]
        for parity in (1, -1):
            for ox in offs:
                for oy in offs:
                    v = _votes(det_x, det_y, cx0 + ox, cy0 + oy, h, az, radius, parity,
                               scales, tol_vote, nbins)
                    k, b = np.unravel_index(int(np.argmax(v)), v.shape)
                    cands.append((int(v[k, b]), family, parity, float(scales[k]),
                                  (b + 0.5) * VOTE_BIN_DEG, cx0 + ox, cy0 + oy))
    cands.sort(key=lambda c: -c[0])
    hit = np.zeros(shape, dtype=bool)
    hit[np.clip(np.rint(det_y).astype(int), 0, ny - 1),
        np.clip(np.rint(det_x).astype(int), 0, nx - 1)] = True
    near = ndimage.distance_transform_edt(~hit) <= tol_px
    rot_offs = np.arange(-VERIFY_ROT_HALF_DEG, VERIFY_ROT_HALF_DEG + 1e-9, VERIFY_ROT_STEP_DEG)
    s_offs = np.arange(-VERIFY_SCALE_STEPS, VERIFY_SCALE_STEPS + 1) * VERIFY_SCALE_STEP
    c_offs = np.arange(-VERIFY_CENTRE_HALF_PX, VERIFY_CENTRE_HALF_PX + 1e-9,
                       VERIFY_CENTRE_STEP_PX)
    best = (-1, None)
    for _, family, parity, s, rot, cx, cy in cands[:N_VERIFY]:
        h = shapes[family]
        rots = rot + rot_offs
        for ds in s_offs:
            for ox in c_offs:
                for oy in c_offs:
                    sc = _exact(near, shape, h, az, radius, parity, s + ds, rots, cx + ox,
                                cy + oy)
                    k = int(np.argmax(sc))
                    if sc[k] > best[0]:
                        best = (int(sc[k]), Hypothesis(parity, float(rots[k] % 360.0),
                                                       float(s + ds), float(cx + ox),
                                                       float(cy + oy), family,
                                                       float(radius)))
    log.debug("blind search: %d trial zeniths x %d families x 2 parities; best votes %s; "
              "best %s", offs.size ** 2, len(families), cands[0][0] if cands else None, best)
    return best
