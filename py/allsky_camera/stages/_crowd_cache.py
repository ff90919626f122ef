"""Per-process caches behind :mod:`allsky_camera.stages.crowding`.

What the crowding measure needs that changes slowly or not at all between
the exposures of a night is kept here, each under a key naming all it
depends on, in a small least-recently-used store (so memory stays bounded
and no result depends on which frame came first):

* :func:`sky_neighbours`: for a catalogue star, the other catalogue stars
  within an angle on the sky.  Key: the catalogue, the angle and the epoch
  rounded to a Julian year (the positions searched are those at that
  rounded epoch; the angle searched is widened by what the fastest star of
  the catalogue moves in a year, so no pair within the asked angle at any
  epoch of that year is missed).  Computed star by star as the stars are
  asked for, and the same for a star whenever it is asked for.
* :func:`apparent_places`: the catalogue stars' CIRS positions (proper
  motion, light deflection, aberration, precession-nutation; ERFA
  ``eraAtciqz``) at the start of each UTC hour, each star computed when
  first asked for.  Key: the catalogue, the site and the hour.  A frame's
  positions are interpolated linearly between its hour's two ends: < 0.003
  arcsec from the exact ones, 1e-5 pixel at the DCT's 4.5 px/deg (see
  there).
* :func:`catalogue_flux`: the catalogue stars' fluxes ``10^(-0.4 V)``, and
  the fastest proper motion (fixed; key: the catalogue).

Both are plain numpy.  A worker process (``ac_night --jobs``, Dask) builds
its own; threads take turns (a lock).  A night on the DCT camera holds
~34 MB (``benchmarks/bench_crowding.py``); the number of keys kept bounds
it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

log = logging.getLogger(__name__)

#: Keys kept of the neighbour lists: the current and the previous value (a
#: night's frames move through one epoch year at a time).
_MAX_KEYS = 2
#: Hour starts kept of the apparent places (3.8 MB each): a frame needs
#: two, and a worker may take a night's frames a little out of order.
_MAX_HOURS = 4
#: Hours per day: the apparent places are kept per UTC hour.
_HOURS_PER_DAY = 24.0
#: JD of MJD 0 (the Modified Julian Date's definition, IAU 1973).
_MJD_ZERO_JD = 2400000.5
#: Days per Julian year.
_DAYS_PER_YEAR = 365.25
#: Milliarcseconds per degree.
_MAS_PER_DEG = 3.6e6
#: Width of a declination zone of the neighbour search, in units of the
#: angle searched (a zone as tall as it: a star's neighbours are in its own
#: zone and the two beside it).
_ZONE_PER_ANGLE = 1.0
#: Relative widening of the right-ascension window of the zone search, so
#: a neighbour exactly at the window's edge is not lost to rounding.
_WINDOW_SLACK = 1e-9
#: Right ascension span of a declination zone, deg.
_RA_SPAN = 360.0
#: Spacing of the stars' blocks in the sorted key of the separations, deg
#: (more than any separation: 180).
_SLOT_SPAN = 360.0


class _Lru:
    """At most ``size`` values, the least recently used one dropped first."""

    def __init__(self, size):
        self._size = size
        self._data = OrderedDict()

    def get(self, key, build):
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        value = build()
        self._data[key] = value
        while len(self._data) > self._size:
            self._data.popitem(last=False)
        return value

    def clear(self):
        self._data.clear()


#: Catalogues whose fluxes and fastest motion are kept (:func:`_derived`; a
#: run uses one).
_MAX_CATALOGUES = 2

_NEIGHBOURS = _Lru(_MAX_KEYS)
_PLACES = _Lru(_MAX_HOURS)
_DERIVED = _Lru(_MAX_CATALOGUES)
#: One thread at a time in the stores (a Dask worker runs tasks in threads;
#: worker processes each have their own stores).
_LOCK = threading.Lock()


def clear():
    """Empty both stores (tests; memory)."""
    with _LOCK:
        _NEIGHBOURS.clear()
        _PLACES.clear()
        _DERIVED.clear()


def _unit(ra_deg, dec_deg):
    """Unit vectors (3, n) of directions (deg)."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)])


@dataclass(frozen=True)
class _Derived:
    """What a catalogue gives once: each star's flux ``10^(-0.4 V)``
    (read-only) and the fastest star's proper motion, deg per year."""

    flux: np.ndarray
    max_pm_deg: float


def _derived(cat):
    """:class:`_Derived` of ``cat``, computed once per catalogue."""

    def build():
        flux = 10.0 ** (-0.4 * np.asarray(cat["vmag"], dtype=float))
        flux.flags.writeable = False
        pm = float(np.max(np.hypot(cat["pmra_masyr"], cat["pmdec_masyr"]), initial=0.0))
        return _Derived(flux, pm / _MAS_PER_DEG)

    with _LOCK:
        return _DERIVED.get(_catalogue_key(cat), build)


def catalogue_flux(cat):
    """``10^(-0.4 V)`` of every star of a catalogue from
    :func:`allsky_camera.stages.catalog.load_catalog` (float64, read-only),
    computed once per catalogue: the crowding's flux unit."""
    return _derived(cat).flux


def _catalogue_key(cat):
    """What identifies a catalogue from :func:`catalog.load_catalog` in this
    process: its size and its faintest and first and last stars."""
    hip = cat["hip"]
    return (int(hip.size), int(hip[0]) if hip.size else 0, int(hip[-1]) if hip.size else 0,
            float(np.max(cat["vmag"])) if hip.size else 0.0)


class _NeighbourLists:
    """Sky neighbours of catalogue stars, found as they are asked for."""

    def __init__(self, cat, angle_deg, jd_tt):
        from allsky_camera.stages import catalog

        self.angle = float(angle_deg)
        ra, dec = catalog.positions_at(cat, jd_tt)
        self.dec = dec
        self.ra = ra
        self.vec = _unit(ra, dec)
        self.zone_h = self.angle * _ZONE_PER_ANGLE
        zone = np.floor((dec + 90.0) / self.zone_h)
        keys = zone * _RA_SPAN + ra
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        n = ra.size
        self.start = np.full(n, -1, dtype=np.int64)
        self.count = np.zeros(n, dtype=np.int64)
        self.slot = np.zeros(n, dtype=np.int64)
        self.n_slots = 0
        self.nbr = np.zeros(0, dtype=np.int32)
        self.sepkey = np.zeros(0)

    def _search(self, q):
        """Neighbours (index into the catalogue) of the stars ``q``: (qi, j)
        with ``qi`` the position in ``q``, grouped by it."""
        ang = self.angle
        d, a = self.dec[q], self.ra[q]
        zq = np.floor((d + 90.0) / self.zone_h)
        # the RA extent of a small circle of radius ang about dec d:
        # asin(sin ang / cos d) (all of it when the circle holds a pole)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.sin(np.radians(ang)) / np.cos(np.radians(d))
        half = np.where(s < 1.0, np.degrees(np.arcsin(np.minimum(s, 1.0))), _RA_SPAN)
        half = half * (1.0 + _WINDOW_SLACK) + _WINDOW_SLACK
        whole = half >= _RA_SPAN / 2
        lo, hi = a - half, a + half
        out_q, out_j = [], []
        for dz in (-1.0, 0.0, 1.0):
            base = (zq + dz) * _RA_SPAN
            # [max(lo, 0), min(hi, 360)) and the part that wraps past 0 or
            # 360 (half < 180 deg: never both, and the two never overlap)
            a0 = np.where(whole, 0.0, np.maximum(lo, 0.0))
            a1 = np.where(whole, _RA_SPAN, np.minimum(hi, _RA_SPAN))
            w0 = np.where(~whole & (lo < 0.0), lo + _RA_SPAN, 0.0)
            w1 = np.where(whole, 0.0, np.where(lo < 0.0, _RA_SPAN,
                                               np.where(hi > _RA_SPAN, hi - _RA_SPAN, 0.0)))
            for r0, r1 in ((a0, a1), (w0, w1)):
                first = np.searchsorted(self.keys, base + r0, side="left")
                last = np.searchsorted(self.keys, base + r1, side="left")
                cnt = np.maximum(last - first, 0)
                qi = np.repeat(np.arange(q.size), cnt)
                pos = np.repeat(first - np.cumsum(cnt) + cnt, cnt) + np.arange(qi.size)
                j = self.order[pos]
                out_q.append(qi)
                out_j.append(j)
        qi, j = np.concatenate(out_q), np.concatenate(out_j)
        qj = q[qi]
        ux, uy, uz = self.vec
        cos_sep = ux[qj] * ux[j]
        cos_sep += uy[qj] * uy[j]
        cos_sep += uz[qj] * uz[j]
        keep = (cos_sep > np.cos(np.radians(ang))) & (j != qj)
        qi, j = qi[keep], j[keep]
        sep = np.degrees(np.arccos(np.minimum(cos_sep[keep], 1.0)))
        # by star, then nearest first (ties in the order found: the same
        # whichever other stars are searched with it)
        by_q = np.argsort(qi * _SLOT_SPAN + sep, kind="stable")
        return qi[by_q], j[by_q], sep[by_q]

    def pairs(self, q, within=None):
        """(i, j): the neighbours ``j`` (catalogue index) of each ``q[i]``
        (those nearer than ``within[i]`` deg if given), grouped by ``i``."""
        q = np.asarray(q, dtype=np.intp)
        todo = np.unique(q[self.start[q] < 0])
        if todo.size:
            qi, j, sep = self._search(todo)
            cnt = np.bincount(qi, minlength=todo.size)
            self.start[todo] = self.nbr.size + np.cumsum(cnt) - cnt
            self.count[todo] = cnt
            slots = self.n_slots + np.arange(todo.size)
            self.slot[todo] = slots
            self.n_slots += todo.size
            self.nbr = np.concatenate([self.nbr, j.astype(np.int32)])
            # increasing over the whole array: slot, then separation
            self.sepkey = np.concatenate([self.sepkey, slots[qi] * _SLOT_SPAN + sep])
            log.debug("crowding cache: neighbours of %d more stars (%d pairs, %.1f MB held)",
                      todo.size, j.size, self.nbytes / 1e6)
        start = self.start[q]
        if within is None:
            cnt = self.count[q]
        else:
            cnt = np.searchsorted(self.sepkey, self.slot[q] * _SLOT_SPAN
                                  + np.minimum(within, self.angle), side="left") - start
        i = np.repeat(np.arange(q.size), cnt)
        pos = np.repeat(start - np.cumsum(cnt) + cnt, cnt) + np.arange(i.size)
        return i, self.nbr[pos].astype(np.intp)

    @property
    def nbytes(self):
        return sum(a.nbytes for a in (self.dec, self.ra, self.vec, self.order, self.keys,
                                      self.start, self.count, self.slot, self.nbr,
                                      self.sepkey))


def sky_neighbours(cat, q, angle_deg, jd_tt, within_deg=None):
    """Pairs of catalogue stars nearer than ``angle_deg`` on the sky.

    Parameters
    ----------
    cat : dict of ndarray
        A catalogue from :func:`allsky_camera.stages.catalog.load_catalog`.
    q : ndarray of int
        Indices (into ``cat``) of the stars whose neighbours are wanted.
    angle_deg : float
        Angular radius, deg.  Pass a value from a coarse set (the key).
    jd_tt : float
        Epoch, TT Julian date; rounded to a Julian year.
    within_deg : ndarray, shape like ``q``, optional
        A smaller radius for each star, deg (at most ``angle_deg``).

    Returns
    -------
    i, j : ndarray of intp
        ``j`` (index into ``cat``) is within ``angle_deg`` (or
        ``within_deg[i]``) of ``q[i]`` at every epoch of the year, a star not
        being its own neighbour; grouped by ``i``, nearest first.  Pairs up
        to the fastest star's motion in a year further apart may be
        included.
    """
    from allsky_camera.stages import catalog

    years = round((float(jd_tt) - catalog.HIPPARCOS_EPOCH_JD) / _DAYS_PER_YEAR)
    epoch = catalog.HIPPARCOS_EPOCH_JD + _DAYS_PER_YEAR * years
    # within the year two stars move apart or together by at most twice the
    # fastest motion over half a year
    pm_deg = _derived(cat).max_pm_deg
    key = (_catalogue_key(cat), float(angle_deg), years)
    within = None
    if within_deg is not None:
        # a radius that is not a number (a star without a position) keeps all
        w = np.asarray(within_deg, dtype=float)
        within = np.clip(np.where(np.isfinite(w), w, float(angle_deg)), 0.0,
                         float(angle_deg)) + pm_deg
    with _LOCK:
        lists = _NEIGHBOURS.get(key, lambda: _NeighbourLists(cat, float(angle_deg) + pm_deg,
                                                             epoch))
        return lists.pairs(q, within)


@dataclass(frozen=True)
class Places:
    """Catalogue positions at one time (see :func:`apparent_places`).

    Attributes
    ----------
    ra_deg, dec_deg : ndarray
        ICRS positions at the start of the hour, deg.
    ri_rad, di_rad : ndarray
        CIRS positions at the time, radians.
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    ri_rad: np.ndarray
    di_rad: np.ndarray

    @property
    def nbytes(self):
        return sum(a.nbytes for a in (self.ra_deg, self.dec_deg, self.ri_rad, self.di_rad))


def _hour_start(k, time):
    """ObsTime of the start of UTC hour ``k`` (hours since MJD 0), TT moved
    with UTC from ``time``."""
    mjd = (time.utc1 - _MJD_ZERO_JD) + time.utc2
    start = k / _HOURS_PER_DAY
    return replace(time, utc1=_MJD_ZERO_JD, utc2=float(start), tt1=_MJD_ZERO_JD,
                   tt2=float((time.tt1 - _MJD_ZERO_JD) + time.tt2 + (start - mjd)))


def apparent_places(cat, idx, time, site):
    """Stars ``idx`` of ``cat`` at ``time``: linear between the hour's ends.

    The CIRS positions are computed (and kept, for the whole catalogue as
    its stars are asked for) at the start of each UTC hour, and
    interpolated linearly in time.  The motions
    in it (annual aberration 0.35 arcsec/day, precession 0.14, nutation
    < 0.15, the site's diurnal velocity in the aberration, 0.26 arcsec at
    the DCT turning once a day, proper motion) are straight over an hour to
    < 0.003 arcsec (the diurnal term's curvature, 0.26 (2 pi / 24)^2 / 8):
    1e-5 pixel at 4.5 px/deg.

    Parameters
    ----------
    cat : dict of ndarray
        From :func:`allsky_camera.stages.catalog.load_catalog`.
    idx : ndarray of int
        The stars wanted (indices into ``cat``).
    time : ObsTime
    site : Site

    Returns
    -------
    Places
        Of the stars ``idx``.
    """
    from allsky_camera.camera import coords
    from allsky_camera.stages import catalog

    hours = ((time.utc1 - _MJD_ZERO_JD) + time.utc2) * _HOURS_PER_DAY
    k = float(np.floor(hours))

    def at(kk):
        """The hour start ``kk``'s places, the stars ``idx`` filled in."""
        t = _hour_start(kk, time)
        n = cat["hip"].size
        places = _PLACES.get((_catalogue_key(cat), kk, site), lambda: Places(
            *(np.full(n, np.nan) for _ in range(4))))
        todo = idx[np.isnan(places.ri_rad[idx])]
        if todo.size:
            sub = {key: cat[key][todo] for key in ("ra_deg", "dec_deg", "pmra_masyr",
                                                   "pmdec_masyr")}
            ra, dec = catalog.positions_at(sub, t.jd_tt)
            ri, di = coords.icrs_to_cirs(ra, dec, t, site)
            places.ra_deg[todo], places.dec_deg[todo] = ra, dec
            places.ri_rad[todo], places.di_rad[todo] = ri, di
            log.debug("crowding cache: apparent places of %d more stars at MJD %.4f "
                      "(%.1f MB)", todo.size, t.utc2, places.nbytes / 1e6)
        return places

    idx = np.asarray(idx, dtype=np.intp)
    with _LOCK:
        p0, p1 = at(k), at(k + 1.0)
        ri0, ri1 = p0.ri_rad[idx], p1.ri_rad[idx]
        di0, di1 = p0.di_rad[idx], p1.di_rad[idx]
        ra0, dec0 = p0.ra_deg[idx], p0.dec_deg[idx]
    f = hours - k
    dri = np.mod(ri1 - ri0 + np.pi, 2.0 * np.pi) - np.pi       # across 0 / 2 pi
    return Places(ra0, dec0, ri0 + f * dri, di0 + f * (di1 - di0))
