"""The night's pictures: summary against time, keogram, clouds.

The ``plot_*`` functions only draw arrays computed elsewhere (the frames'
summary rows, keogram columns and cloud cells from
:mod:`allsky_camera.night.night_frame`); :func:`write_all` gathers them and saves
the three PNG files atomically.  Time runs left to right in UTC hours from
the midnight (UTC) before the first frame.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: File names in the output directory.
SUMMARY_PNG = "night-summary.png"
KEOGRAM_PNG = "night-keogram.png"
CLOUDS_PNG = "night-clouds.png"
#: Figure sizes, inches.
SUMMARY_FIGSIZE = (9.0, 11.0)
KEOGRAM_FIGSIZE = (9.0, 5.0)
CLOUDS_FIGSIZE = (9.0, 3.8)
#: Bottom margin of the (short) cloud figure, fraction of its height.
CLOUDS_BOTTOM = 0.15
#: Twilight shading: Sun altitude limits (deg) of civil, nautical and
#: astronomical twilight (standard definitions), and their grey levels.
TWILIGHT_LIMITS_DEG = (0.0, -6.0, -12.0, -18.0)
TWILIGHT_ALPHAS = (0.45, 0.3, 0.15)
#: Keogram: altitudes labelled on the axis, deg.
KEOGRAM_TICK_ALT_DEG = (10.0, 30.0, 60.0)
#: Keogram stretch: percentiles of the log sky signal shown black and white.
KEOGRAM_PERCENTILES = (2.0, 98.0)


def _figure(figsize):
    from allsky_camera.output import plotting
    fig = plotting.new_figure(figsize)
    return fig


def _save(fig, path):
    from allsky_camera.output import plotting
    plotting.save_figure(fig, path)


def time_axis(mjd):
    """UTC hours from the midnight before the first frame (NaN kept)."""
    mjd = np.asarray(mjd, dtype=float)
    ok = np.isfinite(mjd)
    if not ok.any():
        return mjd, 0.0
    day0 = math.floor(np.nanmin(mjd))
    return (mjd - day0) * 24.0, day0


def _edges(t):
    """Cell edges around sorted times (half way between neighbours)."""
    t = np.asarray(t, dtype=float)
    if len(t) == 1:
        return np.array([t[0] - 0.25, t[0] + 0.25])
    mid = 0.5 * (t[1:] + t[:-1])
    return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])


def shade_twilight(ax, hours, sun_alt):
    """Shade the times when the Sun is above -18 deg (darker the higher)."""
    if len(hours) < 2:
        return
    tt = np.linspace(hours[0], hours[-1], 400)
    sa = np.interp(tt, hours, sun_alt)
    for (hi, lo), alpha in zip(itertools.pairwise(TWILIGHT_LIMITS_DEG), TWILIGHT_ALPHAS):
        ax.fill_between(tt, 0, 1, where=(sa <= hi) & (sa > lo), color="0.5", alpha=alpha,
                        lw=0, transform=ax.get_xaxis_transform())
    ax.fill_between(tt, 0, 1, where=sa > TWILIGHT_LIMITS_DEG[0], color="0.4", alpha=0.6, lw=0,
                    transform=ax.get_xaxis_transform())


def plot_summary(fig, hours, cols, status, *, title):
    """Night summary: one panel per quantity against time.

    Parameters
    ----------
    fig : Figure
    hours : ndarray
        Frame times, UTC hours (see :func:`time_axis`), sorted.
    cols : dict
        Arrays (one value per frame): zp_total, ext_coef, clear_fraction,
        sb_zenith, n_stars, dzenx, dzeny, drot, sun_alt, moon_alt.
    status : ndarray of str
        'ok', 'degraded' per frame (failed frames are not given).
    title : str
    """
    panels = [("zp_total", "zeropoint\n[mag, 1 ADU/s]"),
              ("ext_coef", "extinction\n[mag/airmass]"),
              ("clear_fraction", "clear fraction"),
              ("sb_zenith", "zenith sky\n[mag/arcsec²]"),
              ("n_stars", "stars matched"),
              ("drift", "zenith drift [px]"),
              ("altitudes", "altitude [deg]")]
    axes = fig.subplots(len(panels), 1, sharex=True)
    fig.subplots_adjust(left=0.13, right=0.88, top=0.95, bottom=0.05, hspace=0.12)
    deg = status == "degraded"
    for ax, (key, label) in zip(axes, panels):
        shade_twilight(ax, hours, cols["sun_alt"])
        if key == "drift":
            ax.plot(hours, cols["dzenx"], "o-", ms=3, label="dzenx")
            ax.plot(hours, cols["dzeny"], "s-", ms=3, label="dzeny")
            ax.legend(loc="upper left", fontsize=7, ncol=2)
            ax2 = ax.twinx()
            ax2.plot(hours, cols["drot"], "^-", ms=3, color="C3")
            ax2.set_ylabel("rotation\n[deg]", color="C3", fontsize=8)
        elif key == "altitudes":
            ax.plot(hours, cols["sun_alt"], "-", color="orange", label="Sun")
            ax.plot(hours, cols["moon_alt"], "-", color="C0", label="Moon")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_ylim(-90, 90)
            ax.legend(loc="upper left", fontsize=7, ncol=2)
        else:
            v = np.asarray(cols[key], dtype=float)
            ax.plot(hours, v, "o-", ms=3, color="k")
            if deg.any():
                ax.plot(hours[deg], v[deg], "x", color="C3", ms=6, label="degraded")
                ax.legend(loc="upper left", fontsize=7)
            if not np.isfinite(v).any():
                ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center",
                        va="center", color="0.4")
            if key == "sb_zenith" and np.isfinite(v).any():
                ax.invert_yaxis()
            if key == "clear_fraction":
                ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(label, fontsize=8)
    axes[0].set_title(title)
    axes[-1].set_xlabel("UTC hours (shaded: twilight, Sun above -18 deg)")
    return axes


def keogram_ticks(alt_samples):
    """Row positions and labels of the keogram's altitude axis (north first)."""
    n = len(alt_samples)
    half = n // 2                       # the zenith row
    pos, lab = [half], ["Z 90°"]
    for a in KEOGRAM_TICK_ALT_DEG:
        k = int(np.argmin(np.abs(alt_samples[:half] - a)))
        pos += [k, n - 1 - k]
        lab += [f"N {a:g}°", f"S {a:g}°"]
    return pos, lab


def plot_keogram(fig, hours, columns, alt_samples, *, title):
    """Keogram: sky along the north-south meridian (north up) against time.

    Parameters
    ----------
    hours : ndarray
        Frame times, UTC hours, sorted.
    columns : ndarray, shape (n_alt, n_frames)
        Sky signal (ADU/s per pixel) along the meridian, north first.
    alt_samples : ndarray
        Altitude of each row, deg.
    """
    ax = fig.add_subplot()
    with np.errstate(divide="ignore", invalid="ignore"):
        img = np.log10(np.where(columns > 0, columns, np.nan))
    ok = np.isfinite(img)
    lo, hi = (np.percentile(img[ok], KEOGRAM_PERCENTILES) if ok.any() else (0.0, 1.0))
    rows = np.arange(columns.shape[0] + 1) - 0.5
    m = ax.pcolormesh(_edges(hours), rows, img, cmap="gray", vmin=lo, vmax=hi,
                      shading="flat")
    ax.set_ylim(rows[-1], rows[0])          # north (row 0) at the top
    pos, lab = keogram_ticks(np.asarray(alt_samples))
    ax.set_yticks(pos, lab)
    ax.set_xlabel("UTC hours")
    ax.set_ylabel("meridian: altitude (N up)")
    ax.set_title(title)
    fig.colorbar(m, ax=ax, pad=0.02).set_label("log10 sky [ADU/s/pix]")
    return ax


def plot_clouds(fig, hours, cells, names, *, title):
    """Clear fraction of each sky cell (rows) against time (columns)."""
    fig.subplots_adjust(bottom=CLOUDS_BOTTOM)
    ax = fig.add_subplot()
    m = ax.pcolormesh(_edges(hours), np.arange(len(names) + 1) - 0.5, cells, cmap="viridis",
                      vmin=0, vmax=1, shading="flat")
    ax.set_facecolor("0.8")
    ax.set_yticks(np.arange(len(names)), names, fontsize=8)
    ax.set_xlabel("UTC hours (grey: no star to judge)")
    ax.set_ylabel("sky cell (az, alt deg)")
    ax.set_title(title)
    fig.colorbar(m, ax=ax, pad=0.02).set_label("clear fraction")
    return ax


def gather(results):
    """Arrays of the frames that were reduced (not failed), sorted by time."""
    good = [r for r in results if r["row"]["status"] != "failed"]
    good.sort(key=lambda r: r["row"]["mjd"])
    keys = ("mjd", "zp_total", "ext_coef", "clear_fraction", "sb_zenith", "n_stars", "dzenx",
            "dzeny", "drot", "sun_alt", "moon_alt")
    cols = {k: np.array([r["row"][k] for r in good], dtype=float) for k in keys}
    status = np.array([r["row"]["status"] for r in good], dtype=str)
    keo = np.array([r["keogram"] for r in good], dtype=float).T if good else None
    clouds = np.array([r["clouds"] for r in good], dtype=float).T if good else None
    return cols, status, keo, clouds


def write_all(results, outdir):
    """Write the three nightly pictures (nothing when no frame was reduced)."""
    from allsky_camera.night import night_frame

    cols, status, keo, clouds = gather(results)
    if keo is None:
        log.warning("no frame reduced: no nightly pictures")
        return []
    hours, day0 = time_axis(cols["mjd"])
    date = _date_of_mjd(day0)
    out = Path(outdir)
    fig = _figure(SUMMARY_FIGSIZE)
    plot_summary(fig, hours, cols, status, title=f"night of {date} UTC: {len(hours)} frames")
    _save(fig, out / SUMMARY_PNG)
    fig = _figure(KEOGRAM_FIGSIZE)
    alt, _ = night_frame.meridian_altaz()
    plot_keogram(fig, hours, keo, alt, title=f"keogram, {date} UTC (true N-S meridian)")
    _save(fig, out / KEOGRAM_PNG)
    fig = _figure(CLOUDS_FIGSIZE)
    plot_clouds(fig, hours, clouds, night_frame.cloud_cell_names(),
                title=f"clear sky by cell, {date} UTC")
    _save(fig, out / CLOUDS_PNG)
    return [out / SUMMARY_PNG, out / KEOGRAM_PNG, out / CLOUDS_PNG]


def _date_of_mjd(day0):
    import datetime
    return (datetime.date(1858, 11, 17) + datetime.timedelta(days=int(day0))).isoformat()
