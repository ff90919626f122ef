"""Analytic test images shared by the tests."""

import logging

import numpy as np
from scipy.special import erf


def gaussian_image(shape, xs, ys, fluxes, sigma, sky=0.0):
    """Pixel-integrated circular Gaussians (exact), pixel centres at integers."""
    img = np.full(shape, sky, dtype=float)
    yy = np.arange(shape[0])
    xx = np.arange(shape[1])
    s2 = np.sqrt(2) * sigma
    for x, y, f in zip(xs, ys, fluxes):
        px = 0.5 * (erf((xx + 0.5 - x) / s2) - erf((xx - 0.5 - x) / s2))
        py = 0.5 * (erf((yy + 0.5 - y) / s2) - erf((yy - 0.5 - y) / s2))
        img += f * np.outer(py, px)
    return img


def grid_positions(rng, nx, ny, spacing=20):
    """Isolated stars: one per grid cell, random sub-pixel offsets."""
    gx, gy = np.meshgrid(np.arange(spacing, nx - spacing + 1, spacing),
                         np.arange(spacing, ny - spacing + 1, spacing))
    return (gx.ravel() + rng.uniform(-0.5, 0.5, gx.size),
            gy.ravel() + rng.uniform(-0.5, 0.5, gy.size))


def shared_data(*parts):
    """A folder of the read-only data beside the project (``../shared/data/...``).

    Looked for beside the checkout, then beside the folder holding it (a git
    worktree under ``wt/``); the first candidate is returned when neither
    exists, so the caller's skip message names where it looked.
    """
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    candidates = [base / "shared" / "data" / Path(*parts) for base in (repo.parent,
                                                                      repo.parent.parent)]
    return next((c for c in candidates if c.is_dir()), candidates[0])


class RecordingHandler(logging.Handler):
    """Collects the log records sent to it (the pipeline's logger may not
    propagate to pytest's caplog once a CLI run has set its handlers)."""

    def __init__(self, level=logging.DEBUG):
        super().__init__(level)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    @property
    def messages(self):
        return [r.getMessage() for r in self.records]
