"""HEALPix maps of per-star quantities (zeropoint, transparency).

Pixel indices in the RING scheme are computed here with numpy (the
pixelisation of Gorski et al. 2005, ApJ 622, 759, section 4), so the default
run never pays for importing healpy; the tests check them against healpy.
Maps hold the median of the stars in each pixel, NaN where none.

Horizontal maps use theta = 90 deg - altitude and phi = azimuth (north
through east); equatorial maps use theta = 90 deg - Dec and phi = RA.
"""

from __future__ import annotations

import numpy as np

from allsky_camera.exceptions import AllskyError

#: Largest Nside accepted (12 * 1024^2 pixels is already far finer than the
#: stars of one exposure can fill).
MAX_NSIDE = 1024


def check_nside(nside, where="nside"):
    """Raise AllskyError unless ``nside`` is a power of two in [1, MAX_NSIDE]."""
    if (not isinstance(nside, (int, np.integer)) or isinstance(nside, bool) or nside < 1
            or nside > MAX_NSIDE or nside & (nside - 1)):
        raise AllskyError(f"{where} = {nside!r}: a HEALPix Nside must be a power of two "
                          f"from 1 to {MAX_NSIDE} (e.g. 8)")
    return int(nside)


def npix(nside):
    """Number of pixels, 12 Nside^2."""
    return 12 * nside * nside


def ang2pix_ring(nside, theta_deg, phi_deg):
    """RING-scheme pixel of colatitude ``theta_deg`` and longitude ``phi_deg``.

    Parameters
    ----------
    nside : int
        Power of two.
    theta_deg, phi_deg : array_like
        Colatitude (0 at the north pole) and longitude, degrees.

    Returns
    -------
    ndarray of int64
    """
    th = np.radians(np.asarray(theta_deg, dtype=float))
    z = np.cos(th)
    za = np.abs(z)
    tt = np.mod(np.radians(np.asarray(phi_deg, dtype=float)), 2 * np.pi) / (np.pi / 2)  # [0, 4)
    tt = np.where(tt >= 4.0, 0.0, tt)
    pix = np.empty(z.shape, dtype=np.int64)
    ncap = 2 * nside * (nside - 1)

    eq = za <= 2.0 / 3.0
    # equatorial belt: rings nside .. 3 nside, 4 nside pixels each
    t1 = nside * (0.5 + tt[eq])
    t2 = nside * z[eq] * 0.75
    jp = np.floor(t1 - t2).astype(np.int64)      # ascending edge line
    jm = np.floor(t1 + t2).astype(np.int64)      # descending edge line
    ir = nside + 1 + jp - jm                     # ring counted from z = 2/3, 1..2 nside + 1
    kshift = 1 - (ir & 1)
    ip = (jp + jm - nside + kshift + 1) // 2
    ip = np.mod(ip, 4 * nside)
    pix[eq] = ncap + (ir - 1) * 4 * nside + ip

    cap = ~eq
    tp = tt[cap] - np.floor(tt[cap])
    tmp = nside * np.sqrt(3.0 * (1.0 - za[cap]))
    jp = np.floor(tp * tmp).astype(np.int64)
    jm = np.floor((1.0 - tp) * tmp).astype(np.int64)
    ir = jp + jm + 1                             # ring counted from the nearest pole
    ip = np.floor(tt[cap] * ir).astype(np.int64)
    ip = np.mod(ip, 4 * ir)
    north = z[cap] > 0
    pix[cap] = np.where(north, 2 * ir * (ir - 1) + ip, npix(nside) - 2 * ir * (ir + 1) + ip)
    return pix


def pix2ang_ring(nside, pix):
    """Colatitude and longitude (deg) of the centres of RING-scheme pixels.

    The inverse of :func:`ang2pix_ring` for pixel centres (Gorski et al.
    2005, section 4: rings of constant z, the polar caps holding 4 i pixels
    in ring i, the equatorial belt 4 Nside per ring, alternate rings shifted
    by half a pixel).

    Parameters
    ----------
    nside : int
        Power of two.
    pix : array_like of int
        Pixel indices, 0 to ``npix(nside) - 1``.

    Returns
    -------
    theta_deg, phi_deg : ndarray
        Colatitude (0 at the north pole) and longitude in [0, 360), degrees.
    """
    p = np.asarray(pix, dtype=np.int64)
    n = npix(nside)
    if p.size and (p.min() < 0 or p.max() >= n):
        raise AllskyError(f"HEALPix pixel indices must lie in [0, {n - 1}] for Nside {nside}; "
                          f"got {int(p.min())} to {int(p.max())}")
    ncap = 2 * nside * (nside - 1)
    z = np.empty(p.shape)
    phi = np.empty(p.shape)
    north, south = p < ncap, p >= n - ncap
    belt = ~north & ~south
    # north cap: ring i (1 .. nside - 1) starts at pixel 2 i (i - 1)
    pn = p[north]
    i = np.floor(0.5 * (1.0 + np.sqrt(1.0 + 2.0 * pn))).astype(np.int64)
    j = pn - 2 * i * (i - 1) + 1
    z[north] = 1.0 - i * i / (3.0 * nside * nside)
    phi[north] = np.pi / (2.0 * i) * (j - 0.5)
    # equatorial belt: rings nside .. 3 nside, 4 nside pixels each
    pb = p[belt] - ncap
    i = pb // (4 * nside) + nside
    j = pb % (4 * nside) + 1
    s = (i - nside + 1) % 2
    z[belt] = 4.0 / 3.0 - 2.0 * i / (3.0 * nside)
    phi[belt] = np.pi / (2.0 * nside) * (j - 1.0 + 0.5 * s)
    # south cap: the north cap mirrored, counted from the last pixel
    ps = n - p[south]
    i = np.floor(0.5 * (1.0 + np.sqrt(2.0 * ps - 1.0))).astype(np.int64)
    j = 4 * i + 1 - (ps - 2 * i * (i - 1))
    z[south] = -1.0 + i * i / (3.0 * nside * nside)
    phi[south] = np.pi / (2.0 * i) * (j - 0.5)
    return np.degrees(np.arccos(np.clip(z, -1.0, 1.0))), np.degrees(phi) % 360.0


def median_map(nside, theta_deg, phi_deg, values):
    """Median of ``values`` in each RING pixel and the number of values.

    Returns
    -------
    med : ndarray of float32
        NaN where a pixel holds no finite value.
    count : ndarray of int32
    """
    from allsky_camera.stages.transparency import grouped_weighted_median

    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & np.isfinite(theta_deg) & np.isfinite(phi_deg)
    pix = np.full(v.shape, -1, dtype=np.int64)
    pix[ok] = ang2pix_ring(nside, np.asarray(theta_deg)[ok], np.asarray(phi_deg)[ok])
    med, count = grouped_weighted_median(pix, v, np.ones_like(v), npix(nside))
    return med.astype(np.float32), count.astype(np.int32)


#: The extensions of a -healpix.fits file: name -> (coordinates, quantity, unit).
EXTENSIONS = {
    "ZP_HOR": ("H", "median zeropoint of the stars in the pixel", "mag"),
    "N_ZP_HOR": ("H", "number of stars in ZP_HOR", ""),
    "ZP_EQU": ("C", "median zeropoint of the stars in the pixel", "mag"),
    "N_ZP_EQU": ("C", "number of stars in ZP_EQU", ""),
    "TRANSP_HOR": ("H", "median transparency of the stars in the pixel", ""),
    "TRANSP_EQU": ("C", "median transparency of the stars in the pixel", ""),
    "CLOUD_HOR": ("H", "cloud state: 0 clear 1 cloud 2 unknown 3 not sky", ""),
    "CLDCONF_HOR": ("H", "confidence of CLOUD_HOR, 0 (coin toss) to 1", ""),
    "CLDDIST_HOR": ("H", "distance to CLOUD_HOR's evidence: 0 own, >0 borrowed", "deg"),
}


def build_maps(nside, alt, az, ra, dec, zp_star, zp_ok, transp, transp_ok, cloud_state,
               cloud_conf, cloud_dist=None):
    """The maps of :data:`EXTENSIONS` from per-star values and the cloud map.

    Parameters
    ----------
    alt, az, ra, dec : ndarray
        Star positions, deg.
    zp_star : ndarray
        Per-star total-flux zeropoint (mag for 1 ADU/s).
    zp_ok, transp_ok : ndarray of bool
        Stars that enter the zeropoint and transparency maps.
    transp : ndarray
        Per-star transparency.
    cloud_state, cloud_conf : ndarray, ``npix(nside)``
        Cloud state and confidence per horizontal cell
        (:class:`allsky_camera.stages.clouds.CloudMap`, same Nside and RING order).
    cloud_dist : ndarray, ``npix(nside)``, optional
        Distance from each cell to the evidence behind its state, deg (0: its
        own; > 0: borrowed from cells around it; NaN: none;
        ``CloudMap.evidence_deg``).  None: 0 for clear and cloud cells.
    """
    alt, az, ra, dec = (np.asarray(v, dtype=float) for v in (alt, az, ra, dec))
    zp_h, n_h = median_map(nside, 90.0 - alt, az, np.where(zp_ok, zp_star, np.nan))
    zp_e, n_e = median_map(nside, 90.0 - dec, ra, np.where(zp_ok, zp_star, np.nan))
    t_h, _ = median_map(nside, 90.0 - alt, az, np.where(transp_ok, transp, np.nan))
    t_e, _ = median_map(nside, 90.0 - dec, ra, np.where(transp_ok, transp, np.nan))
    if len(cloud_state) != npix(nside) or len(cloud_conf) != npix(nside):
        raise AllskyError(f"cloud map has {len(cloud_state)} cells, not {npix(nside)} "
                          f"(Nside {nside}): build it with the same transparency.nside")
    if cloud_dist is None:
        from allsky_camera.stages.clouds import CLEAR, CLOUD
        cloud_dist = np.where(np.isin(cloud_state, (CLEAR, CLOUD)), 0.0, np.nan)
    return {"ZP_HOR": zp_h, "N_ZP_HOR": n_h, "ZP_EQU": zp_e, "N_ZP_EQU": n_e,
            "TRANSP_HOR": t_h, "TRANSP_EQU": t_e,
            "CLOUD_HOR": np.asarray(cloud_state).astype(np.int32),
            "CLDCONF_HOR": np.asarray(cloud_conf).astype(np.float32),
            "CLDDIST_HOR": np.asarray(cloud_dist).astype(np.float32)}


def write_maps(maps, nside, path, extra_cards=()):
    """Write maps as one binary-table extension each with standard HEALPix cards.

    Every extension reads back with ``healpy.read_map(path, hdu=k)``.
    """
    from astropy.io import fits

    from allsky_camera.stages.io import add_cards, write_fits_hdus

    hdus = [fits.PrimaryHDU()]
    add_cards(hdus[0].header, extra_cards)
    n = npix(nside)
    for name, (coord, desc, unit) in EXTENSIONS.items():
        data = np.asarray(maps[name])
        fmt = "J" if data.dtype.kind == "i" else "E"
        col = fits.Column(name=name, format=fmt, array=data, unit=unit or None)
        h = fits.BinTableHDU.from_columns([col], name=name)
        add_cards(h.header, [
            ("PIXTYPE", "HEALPIX", "HEALPix pixelisation"),
            ("ORDERING", "RING", "pixel ordering scheme"),
            ("NSIDE", nside, "resolution parameter"),
            ("NPIX", n, "number of pixels"),
            ("FIRSTPIX", 0, "first pixel index (0-based)"),
            ("LASTPIX", n - 1, "last pixel index (0-based)"),
            ("INDXSCHM", "IMPLICIT", "indexing: implicit"),
            ("OBJECT", "FULLSKY", "full sky map"),
            ("COORDSYS", coord, "C: equatorial (RA, Dec); H: horizontal (az, alt)"),
            ("TTYPEDSC", desc[:68], "what the map holds"),
            ("BADVAL", "NaN" if fmt == "E" else -1, "empty pixels"),
            *((("CLDCODE0", "clear", "state code 0"), ("CLDCODE1", "cloud", "state code 1"),
               ("CLDCODE2", "unknown", "state code 2: no usable evidence"),
               ("CLDCODE3", "not sky", "state code 3: obstruction, below horizon"))
              if name == "CLOUD_HOR" else ()),
        ])
        hdus.append(h)
    write_fits_hdus(fits.HDUList(hdus), path)
