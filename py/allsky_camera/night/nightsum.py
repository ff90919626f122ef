"""The night summary table: one row per input, sorted by time.

Written as ``night-summary.fits`` (binary table, first extension) and
``night-summary.csv``, both atomically.
"""

from __future__ import annotations

import math

#: Columns of the summary, in order: name -> (unit, description).
COLUMNS = {
    "file": ("", "input file name"),
    "date_obs": ("", "UTC start of exposure, ISO 8601"),
    "mjd": ("d", "UTC MJD start of exposure"),
    "status": ("", "ok, degraded (part of the products) or failed"),
    "message": ("", "why degraded or failed"),
    "exptime": ("s", "exposure time"),
    "sun_alt": ("deg", "Sun altitude"),
    "moon_alt": ("deg", "Moon altitude"),
    "zp_total": ("mag", "zeropoint, total flux, 1 ADU/s"),
    "ext_coef": ("mag", "extinction per airmass (NaN: not fitted)"),
    "transparency": ("", "median transparency of the voting stars"),
    "clear_fraction": ("", "clear fraction of the sampled sky"),
    "sb_zenith": ("mag / arcsec2", "V sky brightness at the zenith"),
    "n_stars": ("", "stars matched with no quality flag"),
    "ast_stat": ("", "astrometry: FIT, RECOVERED, TEMPLATE or FAILED"),
    "ast_rms": ("pix", "RMS residual of the fitted model"),
    "dzenx": ("pix", "fitted minus static-template zenith x"),
    "dzeny": ("pix", "fitted minus static-template zenith y"),
    "drot": ("deg", "fitted minus static-template rotation"),
    "n_streaks": ("", "streaks found (-1: not searched)"),
}

#: Summary file names in the output directory.
FITS_NAME = "night-summary.fits"
CSV_NAME = "night-summary.csv"


def sort_rows(rows):
    """Rows sorted by time; rows without a time (failed) last, by file name."""
    def key(r):
        t = r["mjd"]
        return (0, t, r["file"]) if isinstance(t, float) and math.isfinite(t) else (1, 0.0,
                                                                                  r["file"])
    return sorted(rows, key=key)


def table(rows):
    """The summary as an astropy Table (every column, even with no rows)."""
    import astropy.units as u
    import numpy as np
    from astropy.table import Table

    rows = sort_rows(rows)
    t = Table()
    for name, (unit, desc) in COLUMNS.items():
        values = [r[name] for r in rows]
        if name in ("file", "date_obs", "status", "message", "ast_stat"):
            col = np.array(values, dtype=str) if values else np.array([], dtype="U1")
        elif name in ("n_stars", "n_streaks"):
            col = np.array(values, dtype=np.int32)
        else:
            col = np.array(values, dtype=float)
        t[name] = col
        if unit:
            t[name].unit = u.Unit(unit)
        t[name].description = desc
    return t


def write(rows, outdir, *, extra_cards=()):
    """Write the summary FITS and CSV files; returns the table."""
    from pathlib import Path

    from allsky_camera.stages import io
    t = table(rows)
    outdir = Path(outdir)
    io.write_table(t, outdir / FITS_NAME, extname="NIGHT", header_cards=extra_cards)
    with io.atomic_path(outdir / CSV_NAME) as tmp:
        t.write(tmp, format="ascii.csv", overwrite=True)
    return t


def counts(rows):
    """Frames by status: dict ok/degraded/failed -> count."""
    out = {"ok": 0, "degraded": 0, "failed": 0}
    for r in rows:
        out[r["status"]] += 1
    return out


#: Sun altitude below which a frame counts toward the night's clear hours
#: (astronomical twilight ends at -18 deg).
DARK_SUN_ALT_DEG = -18.0


def clear_hours(rows):
    """Hours of dark, clear sky: each dark frame's share of the night times
    its clear fraction (a frame stands for half the gap to each neighbour,
    at most the median gap)."""
    import numpy as np
    ok = [r for r in sort_rows(rows) if r["status"] != "failed"
          and math.isfinite(r["mjd"])]
    if len(ok) < 2:
        return 0.0
    t = np.array([r["mjd"] for r in ok]) * 24.0
    gaps = np.diff(t)
    cap = float(np.median(gaps))
    left = np.concatenate([[cap], np.minimum(gaps, cap)])
    right = np.concatenate([np.minimum(gaps, cap), [cap]])
    share = 0.5 * (left + right)
    cf = np.array([r["clear_fraction"] for r in ok])
    dark = np.array([r["sun_alt"] < DARK_SUN_ALT_DEG for r in ok])
    return float(np.sum(np.where(dark & np.isfinite(cf), share * np.nan_to_num(cf), 0.0)))
