"""Checkplots.  Plot functions only draw results computed elsewhere.

Each ``plot_*`` function draws on a given matplotlib ``Axes``;
:func:`save_figure` renders a figure made by :func:`new_figure` to PNG
atomically.  No pyplot global state is used (figures are created with the
Agg canvas directly), so the module is safe in loops and threads.
matplotlib is imported only when a figure is made.
"""

from __future__ import annotations

import logging

import numpy as np

from allsky_camera.exceptions import OutputError
from allsky_camera.stages.io import atomic_path

log = logging.getLogger(__name__)

#: Figure sizes (inches) and resolution (dots per inch) of the checkplots.
ZP_FIGSIZE = (6.4, 4.8)
#: The zeropoint checkplot with the model's residual panels (against B-V
#: and airmass): figure size (inches) and the gap between panels (fraction
#: of a panel's width).
ZP_MODEL_FIGSIZE = (16.0, 4.8)
ZP_MODEL_WSPACE = 0.3
ZP_MODEL_MARGINS = (0.05, 0.11, 0.98, 0.9)
#: Residual panels: the x range is that of the used stars, padded by this
#: fraction on each side.
RESID_XPAD = 0.05
#: Residual panels: the vertical range shown (mag) about 0, and the number
#: of bins of the running median drawn over the used stars.
RESID_RANGE_MAG = 1.0
RESID_BINS = 8
MAP_FIGSIZE = (8.0, 6.6)
DPI = 110
#: Detrended-image rendering: stretch percentiles of the sky pixels, and the
#: radius (pixels) of the circles that mark centroids.
DETRENDED_PERCENTILES = (1.0, 99.7)
CENTROID_MARKER_PX = 6.0


#: Figure margins (fractions of the figure): left, bottom, right, top.  Fixed
#: margins instead of tight_layout, which would render every figure twice.
MARGINS = (0.11, 0.09, 0.86, 0.91)


def new_figure(figsize):
    """A matplotlib Figure attached to an Agg canvas (no pyplot), fixed margins."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    left, bottom, right, top = MARGINS
    fig.subplots_adjust(left=left, bottom=bottom, right=right, top=top)
    return fig


def save_figure(fig, path):
    """Write ``fig`` to ``path`` as PNG, atomically.

    Raises
    ------
    OutputError
        The file cannot be written (disk full, permissions).
    """
    with atomic_path(path) as tmp:
        try:
            fig.savefig(tmp, format="png", dpi=DPI)
        except OSError as err:
            raise OutputError(f"{path}: cannot write ({err.strerror or err}); check the disk "
                              "and the directory's permissions") from err
    log.info("wrote %s", path)


def _finish_map(fig, ax, im, *, label, title):
    """Colour bar beside ``ax`` for ``im``, pixel axis labels and the title."""
    box = ax.get_position()
    cax = fig.add_axes((box.x1 + 0.02, box.y0, 0.025, box.height))
    fig.colorbar(im, cax=cax).set_label(label)
    ax.set_xlabel("x pixel")
    ax.set_ylabel("y pixel")
    ax.set_title(title, fontsize=10, parse_math=False)


def plot_zeropoint(ax, vmag, m_inst, zp, *, title, used=None):
    """Instrumental magnitude against catalog V with the zeropoint line.

    Parameters
    ----------
    ax : matplotlib Axes
    vmag, m_inst : ndarray
        Catalog V and instrumental magnitude ``-2.5 log10(ADU/s)``.
    zp : float
        Zeropoint (mag for 1 ADU/s) drawn as ``m_inst = V - zp``; NaN: no line.
    used : ndarray of bool, optional
        Stars that entered the zeropoint (drawn solid, others faint).
    """
    ok = np.isfinite(m_inst)
    if used is None:
        used = ok
    ax.scatter(vmag[ok & ~used], m_inst[ok & ~used], s=4, c="0.7", lw=0,
               label="flagged")
    ax.scatter(vmag[ok & used], m_inst[ok & used], s=5, c="tab:blue", lw=0,
               label="used for the zeropoint")
    if np.isfinite(zp):
        lo, hi = (np.nanmin(vmag), np.nanmax(vmag)) if vmag.size else (0.0, 1.0)
        xx = np.array([lo - 0.2, hi + 0.2])
        ax.plot(xx, xx - zp, c="tab:red", lw=1.5, label=f"zeropoint {zp:.3f}")
    ax.set_xlabel("catalog V magnitude")
    ax.set_ylabel("−2.5 log10(ADU/s)")   # plain text: mathtext costs 0.2 s to load
    ax.set_title(title, fontsize=10, parse_math=False)
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def zp_model_axes(fig):
    """The three panels of the zeropoint checkplot (V, B-V, airmass) on ``fig``."""
    left, bottom, right, top = ZP_MODEL_MARGINS
    fig.subplots_adjust(left=left, bottom=bottom, right=right, top=top, wspace=ZP_MODEL_WSPACE)
    return fig.subplots(1, 3)


def plot_model_residuals(ax, xval, resid, *, used, xlabel, title):
    """Residuals of the stars about the fitted photometric model against one variable.

    Parameters
    ----------
    ax : matplotlib Axes
    xval : ndarray
        The variable (B-V, airmass, ...), one per star.
    resid : ndarray
        Measured minus model instrumental magnitude, mag (NaN: unmeasured).
    used : ndarray of bool
        Stars kept by the model fit (solid; others faint).
    xlabel, title : str
    """
    ok = np.isfinite(xval) & np.isfinite(resid)
    used = np.asarray(used, bool) & ok
    ax.scatter(xval[ok & ~used], resid[ok & ~used], s=4, c="0.75", lw=0, label="not used")
    ax.scatter(xval[used], resid[used], s=5, c="tab:blue", lw=0, label="used by the fit")
    if used.sum() >= 2 * RESID_BINS:
        edges = np.quantile(xval[used], np.linspace(0.0, 1.0, RESID_BINS + 1))
        idx = np.clip(np.searchsorted(edges, xval[used], side="right") - 1, 0, RESID_BINS - 1)
        mids = [np.median(xval[used][idx == i]) for i in range(RESID_BINS) if (idx == i).any()]
        meds = [np.median(resid[used][idx == i]) for i in range(RESID_BINS) if (idx == i).any()]
        ax.plot(mids, meds, c="tab:red", lw=1.5, marker="o", ms=3, label="running median")
    ax.axhline(0.0, c="k", lw=0.8)
    ax.set_ylim(RESID_RANGE_MAG, -RESID_RANGE_MAG)     # brighter up, as magnitudes go
    if used.any():
        lo, hi = float(np.min(xval[used])), float(np.max(xval[used]))
        pad = RESID_XPAD * max(hi - lo, 1e-3)
        ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("measured - model (mag)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8, frameon=False)


def plot_quiver(ax, x, y, dx, dy, *, title, key_px, nx, ny, exaggerate):
    """Astrometric residual vectors at star positions, with a scale key.

    Parameters
    ----------
    x, y : ndarray
        Star positions (pixels).
    dx, dy : ndarray
        Measured minus model position (pixels).
    key_px : float
        Length of the key arrow, pixels of residual.
    nx, ny : int
        Image size, for the axis limits.
    exaggerate : float
        Residuals are drawn this many times longer than the axes' pixels.
    """
    ax.quiver(x, y, dx, dy, angles="xy", scale_units="xy", scale=1.0 / exaggerate,
              width=0.002, color="k")
    q = ax.quiver([0.0], [0.0], [0.0], [0.0], angles="xy", scale_units="xy",
                  scale=1.0 / exaggerate)
    ax.quiverkey(q, 0.02, -0.11, key_px, f"{key_px:g} pixel residual", labelpos="E",
                 coordinates="axes")
    ax.set_xlim(0, nx)
    ax.set_ylim(0, ny)
    ax.set_aspect("equal")
    ax.set_xlabel("x pixel")
    ax.set_ylabel("y pixel")
    ax.set_title(title, fontsize=10, parse_math=False)


def plot_sbmap(fig, ax, mag, *, title):
    """Sky-brightness map (V mag/arcsec^2) with a colour bar.

    The image is shown with y increasing upward (FITS orientation), darker
    sky darker.
    """
    # draw at about the figure's resolution: a full-size map would only be
    # resampled down by the renderer, at many times the cost
    ny, nx = mag.shape
    axes_px = ax.get_position().width * fig.get_figwidth() * fig.dpi
    stride = max(1, int(np.ceil(nx / axes_px)))
    shown = mag[::stride, ::stride]
    finite = np.isfinite(shown)
    vmin, vmax = (np.percentile(shown[finite], [1, 99]) if finite.any() else (0.0, 1.0))
    im = ax.imshow(shown, origin="lower", cmap="gray_r", vmin=vmin, vmax=vmax,
                   interpolation="nearest", extent=(-0.5, nx - 0.5, -0.5, ny - 0.5))
    ax.set_facecolor("#b4d0ff")
    _finish_map(fig, ax, im, label="V mag / arcsec²", title=title)


def plot_detrended(ax, image, *, sky_mask, x=None, y=None, title, percentiles, marker_px):
    """Detrended image with a percentile stretch inside the sky, centroids marked.

    Parameters
    ----------
    image : ndarray
        Detrended image, ADU.
    sky_mask : ndarray of bool
        Pixels whose values set the stretch (the sky circle).
    x, y : ndarray, optional
        Centroids to mark with open circles.
    percentiles : (float, float)
        Lower and upper percentile of the sky pixels mapped to black and white.
    marker_px : float
        Radius of the circles, pixels.
    """
    from matplotlib.collections import EllipseCollection

    vals = image[sky_mask] if sky_mask is not None and sky_mask.any() else image.ravel()
    lo, hi = np.percentile(vals, percentiles)
    ny, nx = image.shape
    ax.imshow(image, origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
              extent=(-0.5, nx - 0.5, -0.5, ny - 0.5))
    if x is not None and len(x):
        d = 2 * marker_px
        ax.add_collection(EllipseCollection(
            np.full(len(x), d), np.full(len(x), d), np.zeros(len(x)), units="xy",
            offsets=np.column_stack([x, y]), offset_transform=ax.transData,
            facecolors="none", edgecolors="tab:orange", linewidths=0.6))
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(-0.5, image.shape[0] - 0.5)
    ax.set_xlabel("x pixel")
    ax.set_ylabel("y pixel")
    ax.set_title(title, fontsize=10, parse_math=False)


#: The transparency map is drawn every this many pixels (it varies on the
#: scale of HEALPix cells, tens of pixels).
TRANSP_STRIDE = 4
#: Colours of the cloud states, by code (clear, cloud, unknown, not sky):
#: blue, red, pale yellow, dark grey (distinct also for red-green blindness).
STATE_COLOURS = ("#2c7bb6", "#d7191c", "#ffffbf", "#404040")
#: Compass arrows: altitude (deg) of their tips, and their colour.
COMPASS_ALT_DEG = 60.0
COMPASS_COLOUR = "white"


def plot_cloud_states(ax, state_img, *, stride, names, compass, title, x=None, y=None, t=None):
    """Cloud states over the sky as the camera sees it, with a compass.

    Parameters
    ----------
    state_img : ndarray of uint8
        State codes on the pixel grid every ``stride`` pixels (0 clear,
        1 cloud, 2 unknown, 3 not sky), from :func:`clouds.pixel_maps`.
    names : dict
        Code -> state name, for the legend.
    compass : dict
        Pixel positions ``zenith``, ``north``, ``east`` (:func:`clouds.compass`).
    x, y, t : ndarray, optional
        Voting stars' pixel positions and transparencies, drawn as dots.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ny, nx = state_img.shape
    extent = (-0.5, nx * stride - 0.5, -0.5, ny * stride - 0.5)
    ax.imshow(state_img, origin="lower", cmap=ListedColormap(STATE_COLOURS), vmin=-0.5,
              vmax=len(STATE_COLOURS) - 0.5, interpolation="nearest", extent=extent)
    if x is not None and len(x):
        ax.scatter(x, y, c=t, cmap="RdYlBu", vmin=0.0, vmax=1.0, s=3, lw=0.2, edgecolors="k")
    zx, zy = compass["zenith"]
    ax.plot([zx], [zy], marker="+", ms=12, mew=1.5, color=COMPASS_COLOUR)
    ax.annotate("zenith", (zx, zy), xytext=(6, 6), textcoords="offset points",
                color=COMPASS_COLOUR, fontsize=8)
    for key, label in (("north", "N"), ("east", "E")):
        tx, ty = compass[key]
        ax.annotate("", xy=(tx, ty), xytext=(zx, zy),
                    arrowprops={"arrowstyle": "->", "color": COMPASS_COLOUR, "lw": 1.5})
        ax.annotate(label, (tx, ty), xytext=(3, 3), textcoords="offset points",
                    color=COMPASS_COLOUR, fontsize=11, fontweight="bold")
    ax.legend(handles=[Patch(facecolor=c, edgecolor="k", label=names[k])
                       for k, c in enumerate(STATE_COLOURS)],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x pixel")
    ax.set_ylabel("y pixel")
    ax.set_title(title, fontsize=10)
