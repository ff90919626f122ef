"""Simulated satellite and aircraft streaks: straight lines of Gaussian profile.

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`:
0-based, ``x`` is the column (fast axis, ``image[y, x]``), pixel centres at
integers.  Widths and lengths in pixels, signal in ADU per pixel.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from allsky_camera.exceptions import ConfigError
from allsky_camera.sim.psf import FWHM_PER_SIGMA, STAMP_SIGMAS

#: :func:`random_streaks`: every this-many-th streak (the first, the
#: fourth, ...) starts inside the frame and runs off an edge ...
RUN_OFF_EVERY = 3
#: ... with this length in frame sizes (the longer side), so it always leaves.
RUN_OFF_LENGTH_FRAMES = 1.5
#: The others are this fraction of the short side long (uniform) ...
SHORT_LENGTH_RANGE = (0.25, 0.6)
#: ... centred within these fractions of the frame in x and in y; a run-off
#: streak starts within ``RUN_OFF_START_RANGE`` of the frame in x and y.
SHORT_CENTRE_RANGE_X = (0.2, 0.8)
SHORT_CENTRE_RANGE_Y = (0.15, 0.85)
RUN_OFF_START_RANGE = (0.15, 0.85)


@dataclasses.dataclass(frozen=True)
class Streak:
    """A straight satellite or aircraft streak for :func:`allsky_camera.sim.simulate.simulate`.

    Attributes
    ----------
    x1, y1, x2, y2 : float
        End points, pixels (0-based, pixel centres at integers); they may lie
        off the image, so that the streak leaves it.
    width_px : float
        FWHM of the Gaussian profile across the streak, pixels.
    peak_adu : float
        Signal on the streak's centre line, ADU per pixel in the exposure.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    width_px: float
    peak_adu: float

    def __post_init__(self):
        if not (self.width_px > 0 and self.peak_adu >= 0):
            raise ConfigError(f"streak {self}: width_px must be > 0 and peak_adu >= 0")


def render_streaks(shape, streaks):
    """Noiseless image of straight streaks, ADU per pixel.

    Each streak has a Gaussian profile of FWHM ``width_px`` across it and
    ``peak_adu`` on its centre line, uniform along it and cut square at its
    end points (pixel centres sampled, no integration over the pixel), out
    to ``STAMP_SIGMAS`` sigma + 1 pixel across.  Parts off the image are
    dropped.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    streaks : sequence of Streak

    Returns
    -------
    ndarray of float64, shape ``shape``
    """
    ny, nx = shape
    img = np.zeros(shape)
    for s in streaks:
        dx, dy = s.x2 - s.x1, s.y2 - s.y1
        length = math.hypot(dx, dy)
        if length == 0:
            continue
        ux, uy = dx / length, dy / length
        sigma = s.width_px / FWHM_PER_SIGMA
        pad = STAMP_SIGMAS * sigma + 1.0
        x0 = max(math.floor(min(s.x1, s.x2) - pad), 0)
        x1 = min(math.ceil(max(s.x1, s.x2) + pad) + 1, nx)
        y0 = max(math.floor(min(s.y1, s.y2) - pad), 0)
        y1 = min(math.ceil(max(s.y1, s.y2) + pad) + 1, ny)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        px, py = xx - s.x1, yy - s.y1
        along = px * ux + py * uy
        across = py * ux - px * uy
        near = (along >= 0) & (along <= length) & (np.abs(across) <= pad)
        img[y0:y1, x0:x1][near] += s.peak_adu * np.exp(-0.5 * (across[near] / sigma) ** 2)
    return img


def random_streaks(n, shape, rng, *, peak_range=(15.0, 60.0), width_range=(1.5, 4.0)):
    """``n`` random straight streaks on an image of ``shape`` ``(ny, nx)``.

    Every third streak (the first, fourth, ...) starts inside the middle of
    the frame and runs 1.5 frame widths, off an edge; the others are 0.25-0.6
    of the short side long, centred in the middle of the frame.  Position
    angles are uniform; widths (FWHM, pixels) and peaks (ADU per pixel)
    uniform in ``width_range`` and ``peak_range``.

    Parameters
    ----------
    n : int
    shape : tuple of int
        ``(ny, nx)``.
    rng : numpy.random.Generator
    peak_range, width_range : (float, float)
        ADU per pixel, and FWHM in pixels.

    Returns
    -------
    tuple of Streak
    """
    ny, nx = shape
    out = []
    for i in range(n):
        length = rng.uniform(*SHORT_LENGTH_RANGE) * min(nx, ny)
        ang = rng.uniform(0, np.pi)
        if i % RUN_OFF_EVERY == 0:     # starts inside, runs off an edge
            cx, cy = rng.uniform(*RUN_OFF_START_RANGE) * nx, rng.uniform(*RUN_OFF_START_RANGE) * ny
            length = RUN_OFF_LENGTH_FRAMES * max(nx, ny)
            x1, y1 = cx, cy
        else:
            cx = rng.uniform(*SHORT_CENTRE_RANGE_X) * nx
            cy = rng.uniform(*SHORT_CENTRE_RANGE_Y) * ny
            x1, y1 = cx - 0.5 * length * np.cos(ang), cy - 0.5 * length * np.sin(ang)
        x2, y2 = x1 + length * np.cos(ang), y1 + length * np.sin(ang)
        out.append(Streak(float(x1), float(y1), float(x2), float(y2),
                          float(rng.uniform(*width_range)), float(rng.uniform(*peak_range))))
    return tuple(out)
