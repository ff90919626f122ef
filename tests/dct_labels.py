"""The human cloud labels of the shared DCT frames (``../shared/data/dct/labels.md``).

The subregion geometry is implemented here exactly as labels.md defines it,
on the raw 1392x1040 frame (0-based pixels, x = column, y = row).
"""

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: labels.md: the subregions' centre and ring width (pixels), the pixel box
#: used, and the number of rings and sectors.
CENTRE = (700, 485)
RING_PX = 96
X_RANGE = (220, 1190)
Y_RANGE = (0, 960)
N_RINGS = 4
N_SECTORS = 8
N_SUBREGIONS = 1 + N_RINGS * N_SECTORS
#: labels.md's table: cloudy subregions of each frame.
CLOUDY = {"002": set(), "005": set(), "010": set(),
          "006": {17, 18, *range(24, 33)},
          "019": {10, 11, 12, *range(18, 22), *range(25, 33)},
          "007": set(range(N_SUBREGIONS))}


def dct_dir():
    """The shared DCT folder beside the checkout (or beside the worktrees' folder), or None."""
    for base in (REPO.parent, REPO.parent.parent):
        d = base / "shared" / "data" / "dct"
        if d.is_dir():
            return d
    return None


def subregions(shape):
    """Subregion number of every pixel (-1: none), per labels.md."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    r = np.sqrt((x - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2).astype(int)
    phi = np.arctan2(y - CENTRE[1], x - CENTRE[0])
    out = np.full(shape, -1, dtype=int)
    box = (x >= X_RANGE[0]) & (x < X_RANGE[1]) & (y >= Y_RANGE[0]) & (y < Y_RANGE[1])
    out[box & (r < RING_PX)] = 0
    for i in range(1, N_RINGS + 1):
        ring = box & (r > RING_PX * i) & (r < RING_PX * (i + 1))
        for j in range(N_SECTORS):
            lo = -np.pi + j * np.pi / 4
            sec = ring & (phi > lo) & (phi < lo + np.pi / 4)
            out[sec] = (i - 1) * N_SECTORS + j + 1
    return out


def call_subregions(state, regions, *, clear=0, cloud=1, not_sky=3):
    """Each subregion's call from a -clouds.fits state image.

    The call is the state held by the majority of the subregion's sky pixels
    (those whose state is clear or cloud); a subregion with no clear or
    cloud pixel, or whose 'unknown' pixels outnumber its clear and cloud ones
    together, gets no call (None), and counts as wrong.

    Returns
    -------
    list of (1: cloudy, 0: clear, None: no call), one per subregion
    """
    calls = []
    for k in range(N_SUBREGIONS):
        s = state[regions == k]
        n_clear, n_cloud = int(np.sum(s == clear)), int(np.sum(s == cloud))
        n_unknown = int(np.sum((s != clear) & (s != cloud) & (s != not_sky)))
        if n_clear + n_cloud == 0 or n_unknown > n_clear + n_cloud:
            calls.append(None)
        else:
            calls.append(1 if n_cloud > n_clear else 0)
    return calls


def score(frame, calls):
    """Number of subregions whose call matches the label, and the wrong ones."""
    truth = [1 if k in CLOUDY[frame] else 0 for k in range(N_SUBREGIONS)]
    wrong = [k for k, (c, t) in enumerate(zip(calls, truth)) if c != t]
    return N_SUBREGIONS - len(wrong), wrong
