"""Cloud evidence with a spatial reach: cells without their own borrow their neighbours'.

Clouds are spatially correlated; the HEALPix cells of the cloud map are an
arbitrary grid.  A sky cell with no evidence of its own (no voting star, no
measurable texture: often a cell the obstruction mask mostly hides) takes
the evidence of the cells around it that have their own, each counted with
the Gaussian weight of its angular distance ``d``,
``k = exp(-d^2 / (2 L^2))``, ``L`` the correlation length of clouds on the
sky (``transparency.cloud_corr_deg``).  Each donor's evidence is its signed
confidence (+ for cloud, - for clear); the borrowed evidence is the
weighted mean of these, and its confidence that mean's size times the
weight of the nearest donor:

    e = sum_j k_j s_j c_j / sum_j k_j,    confidence = |e| max_j k_j,

so a cell between confident neighbours takes their call at a lower
confidence, disagreeing neighbours cancel, and a cell far from any
evidence keeps a confidence below ``transparency.min_confidence`` and stays
*unknown*.  Only evidence a cell holds itself is lent (no chains); a cell's
own call always wins over borrowed evidence; a cell or pixel that is not
sky stays not sky.

Angles in degrees; directions as altitude and azimuth (north through east).
"""

from __future__ import annotations

import numpy as np

#: Donors farther than this many correlation lengths are left out: their
#: Gaussian weight, exp(-4.5) = 0.011, could not lift a confidence of at
#: most 1 over any sensible ``min_confidence``.
CUTOFF_CORR_LENGTHS = 3.0
#: Directions per block of the target-by-donor distance matrix (memory:
#: this times the donors, 8 bytes each).
CHUNK = 4096
#: The pixel map evaluates borrowed evidence on a HEALPix grid this many
#: times finer than the cells (Nside 64 for cells of Nside 8: ~0.9 deg, a
#: small fraction of the correlation length, so the borrowed field is
#: smooth on it), each pixel taking the value of the fine cell it lies in.
FINE_NSIDE_FACTOR = 8


def unit_vectors(alt_deg, az_deg):
    """Unit vectors (x to north, y to east, z to the zenith) of directions, shape (n, 3)."""
    a = np.radians(np.asarray(alt_deg, dtype=float)).ravel()
    z = np.radians(np.asarray(az_deg, dtype=float)).ravel()
    return np.stack([np.cos(a) * np.cos(z), np.cos(a) * np.sin(z), np.sin(a)], axis=1)


def separation_deg(u, v):
    """Angular distance (deg) between every row of ``u`` (n, 3) and of ``v`` (m, 3): (n, m).

    From the chord, ``2 arcsin(|u - v| / 2)`` with ``|u - v|^2 = 2 - 2 u.v``
    (the rounding of ``u.v`` leaves errors of ~1e-6 deg, far below a cell).
    """
    return dot_to_deg(u @ v.T)


def dot_to_deg(dot):
    """Angular distance (deg) of unit vectors from their dot product, via the chord."""
    chord = np.sqrt(np.maximum(2.0 - 2.0 * np.asarray(dot, dtype=float), 0.0))
    return np.degrees(2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0)))


def borrow(target_alt, target_az, donor_alt, donor_az, donor_cloud, donor_conf, *, corr_deg):
    """Evidence lent to directions by the cells around them.

    Parameters
    ----------
    target_alt, target_az : array_like
        Directions that borrow, deg.
    donor_alt, donor_az : array_like
        Centres of the cells that lend (their own evidence), deg.
    donor_cloud : array_like of bool
        Each donor's call: True cloud, False clear.
    donor_conf : array_like
        Each donor's confidence, 0 to 1.
    corr_deg : float
        Correlation length ``L`` of the Gaussian weight, deg (> 0).

    Returns
    -------
    cloud : ndarray of bool
        The borrowed call (False where nothing is in reach).
    conf : ndarray of float
        Its confidence, ``|e| max k`` (0 where nothing is in reach).
    dist_deg : ndarray of float
        Distance to the nearest donor in reach, deg (NaN: none).
    """
    tu = unit_vectors(target_alt, target_az)
    n = tu.shape[0]
    cloud = np.zeros(n, dtype=bool)
    conf = np.zeros(n)
    dist = np.full(n, np.nan)
    du = unit_vectors(donor_alt, donor_az)
    if n == 0 or du.shape[0] == 0:
        return cloud, conf, dist
    signed = np.where(np.asarray(donor_cloud, dtype=bool).ravel(), 1.0, -1.0) * np.asarray(
        donor_conf, dtype=float).ravel()
    cutoff = CUTOFF_CORR_LENGTHS * corr_deg
    cos_cut = np.cos(np.radians(cutoff))
    for lo in range(0, n, CHUNK):
        # only the pairs within the cutoff (a small part of the sky each)
        dot = tu[lo:lo + CHUNK] @ du.T
        row, col = np.nonzero(dot >= cos_cut)
        if row.size == 0:
            continue
        d = dot_to_deg(dot[row, col])
        k = np.exp(-0.5 * (d / corr_deg) ** 2)
        m = dot.shape[0]
        ksum = np.bincount(row, weights=k, minlength=m)
        ke = np.bincount(row, weights=k * signed[col], minlength=m)
        # rows come sorted from nonzero: the maximum weight (nearest donor) of each
        has = np.flatnonzero(ksum > 0)
        starts = np.searchsorted(row, has)
        kmax = np.zeros(m)
        kmax[has] = np.maximum.reduceat(k, starts)
        dmin = np.full(m, np.nan)
        dmin[has] = np.minimum.reduceat(d, starts)
        e = np.where(ksum > 0, ke / np.where(ksum > 0, ksum, 1.0), 0.0)
        sl = slice(lo, lo + m)
        cloud[sl] = e > 0
        conf[sl] = np.abs(e) * kmax
        dist[sl] = dmin
    return cloud, conf, dist


def cell_centres(nside, cells):
    """Altitude and azimuth (deg) of the centres of RING cells (theta = 90 - alt, phi = az)."""
    from allsky_camera.stages.healpix import pix2ang_ring

    theta, phi = pix2ang_ring(nside, cells)
    return 90.0 - theta, phi


def own_evidence(state, evidence_deg):
    """True where a cell's clear or cloud state comes from its own evidence."""
    from allsky_camera.stages.clouds import CLEAR, CLOUD

    s = np.asarray(state)
    own = (s == CLEAR) | (s == CLOUD)
    if evidence_deg is not None:
        own &= np.asarray(evidence_deg) == 0
    return own


def reach_cells(state, conf, nside, *, corr_deg, min_confidence):
    """Unknown sky cells take the evidence of the cells around them.

    Parameters
    ----------
    state : ndarray of uint8
        Cell states from the cells' own evidence
        (:data:`allsky_camera.stages.clouds.CLEAR` ...), RING order.
    conf : ndarray
        Their confidence (0 for unknown and not-sky cells).
    nside : int
    corr_deg : float
        Correlation length, deg; 0: nothing is borrowed.
    min_confidence : float
        A borrowed call less sure than this leaves the cell unknown.

    Returns
    -------
    state : ndarray of uint8
        Unknown cells with borrowed evidence in reach now clear or cloud;
        the others as given (not-sky cells are never touched).
    conf : ndarray of float32
        The borrowed confidence where borrowed, as given elsewhere.
    evidence_deg : ndarray of float32
        Distance from each cell to the evidence behind its state, deg: 0 for
        its own, the nearest lending cell's for borrowed evidence, NaN for
        unknown and not-sky cells.
    """
    from allsky_camera.stages.clouds import CLEAR, CLOUD, UNKNOWN

    st = np.asarray(state).astype(np.uint8)
    cf = np.asarray(conf, dtype=np.float32).copy()
    own = own_evidence(st, None)
    evid = np.where(own, 0.0, np.nan).astype(np.float32)
    want = np.flatnonzero(st == UNKNOWN)
    give = np.flatnonzero(own)
    if corr_deg <= 0 or want.size == 0 or give.size == 0:
        return st, cf, evid
    t_alt, t_az = cell_centres(nside, want)
    d_alt, d_az = cell_centres(nside, give)
    cloud, bconf, dist = borrow(t_alt, t_az, d_alt, d_az, st[give] == CLOUD, cf[give],
                                corr_deg=corr_deg)
    ok = bconf >= min_confidence
    st = st.copy()
    st[want[ok]] = np.where(cloud[ok], CLOUD, CLEAR).astype(np.uint8)
    cf[want[ok]] = bconf[ok]
    evid[want[ok]] = dist[ok]
    return st, cf, evid


def reach_directions(alt_deg, az_deg, cmap):
    """Borrowed evidence at directions that lie in cells without their own.

    Evaluated on the fine HEALPix grid (:data:`FINE_NSIDE_FACTOR`): each
    direction takes the evidence lent to the centre of the fine cell it lies
    in, so the pixels of a mostly hidden cell that lie nearer another
    cell's evidence take more of it.

    Parameters
    ----------
    alt_deg, az_deg : ndarray
        Directions, deg.
    cmap : allsky_camera.stages.clouds.CloudMap
        With ``corr_deg > 0`` and ``evidence_deg``.

    Returns
    -------
    state : ndarray of uint8
        Clear or cloud where the borrowed call reaches
        ``cmap.min_confidence``, unknown elsewhere.
    conf : ndarray of float32
    """
    from allsky_camera.stages.clouds import CLEAR, CLOUD, UNKNOWN
    from allsky_camera.stages.healpix import ang2pix_ring

    alt = np.asarray(alt_deg, dtype=float).ravel()
    az = np.asarray(az_deg, dtype=float).ravel()
    state = np.full(alt.shape, UNKNOWN, dtype=np.uint8)
    conf = np.zeros(alt.shape, dtype=np.float32)
    give = np.flatnonzero(own_evidence(cmap.state, cmap.evidence_deg))
    if alt.size == 0 or give.size == 0:
        return state, conf
    fine_nside = cmap.nside * FINE_NSIDE_FACTOR
    fine, inverse = np.unique(ang2pix_ring(fine_nside, 90.0 - alt, az), return_inverse=True)
    f_alt, f_az = cell_centres(fine_nside, fine)
    d_alt, d_az = cell_centres(cmap.nside, give)
    cloud, bconf, _ = borrow(f_alt, f_az, d_alt, d_az, cmap.state[give] == CLOUD,
                             cmap.confidence[give], corr_deg=cmap.corr_deg)
    ok = bconf >= cmap.min_confidence
    fine_state = np.where(ok, np.where(cloud, CLOUD, CLEAR), UNKNOWN).astype(np.uint8)
    fine_conf = np.where(ok, bconf, 0.0).astype(np.float32)
    inverse = inverse.ravel()
    return fine_state[inverse], fine_conf[inverse]
