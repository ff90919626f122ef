"""One frame of a night, as a task: read, reduce, write, summarise.

:func:`run_task` is what a worker process (or a Dask worker) runs for each
input file.  It never raises for a bad file: the result says 'failed' with
the same one-line reason ``ac_proc.py`` prints.  Everything it returns is
plain data (numbers, strings, lists), so it travels between processes and
into the ledger as JSON.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: Keogram: altitudes sampled along the meridian, from this altitude (deg)
#: on the north side up to the zenith and down to it on the south side,
#: one sample per KEOGRAM_STEP_DEG; each sample is the median of a square of
#: side 2 * KEOGRAM_HALF_PX + 1 pixels (so stars do not show).
KEOGRAM_MIN_ALT_DEG = 10.0
KEOGRAM_STEP_DEG = 1.0
KEOGRAM_HALF_PX = 3
#: Cloud cells of the night's cloud figure: altitude bands (deg) times
#: azimuth quadrants centred on N, E, S, W (deg, north through east).
CLOUD_ALT_BANDS_DEG = ((20.0, 50.0), (50.0, 90.01))
CLOUD_QUADRANTS = (("N", 0.0), ("E", 90.0), ("S", 180.0), ("W", 270.0))

#: glibc's malloc variable that distributed's Nanny sets (65536 bytes) in the
#: workers it starts (its config ``distributed.nanny.pre-spawn-environ``).
#: Setting it also fixes glibc's mmap threshold at 128 KiB (mallopt(3)), so
#: every large temporary array is a fresh mmap: measured 0.34 s of system
#: time per frame against 0.04 s unset (README, "A night").
MALLOC_TRIM_ENV = "MALLOC_TRIM_THRESHOLD_"
#: The dask config a cluster for nights should start its workers with (None
#: unsets the variable: distributed 2026.8.0, nanny._get_env_variables).
DASK_WORKER_CONFIG = {f"distributed.nanny.pre-spawn-environ.{MALLOC_TRIM_ENV}": None}

#: The cameras loaded by this process, by option value (a worker reads a
#: configuration once and reuses it for every frame).
_CAMERAS = {}


@dataclasses.dataclass(frozen=True)
class Task:
    """One input of the night, as sent to a worker.

    Attributes
    ----------
    path : str
        Input file.
    outdir : str
        Where products are written.
    camera : str or None
        ``--camera`` (None: chosen per frame from its header and size).
    products : Products
    start_model : dict or None
        ``CameraModel.to_dict()`` of the last good fit before this frame.
    clear_zp_total : float or None
        Clear-sky zeropoint for transparency (None: the camera's nominal).
    camera_dirs : tuple of str
        Folders of camera configurations (``--camera-dir``, stock); empty:
        the default search.
    """

    path: str
    outdir: str
    camera: str | None
    products: object
    start_model: dict | None = None
    clear_zp_total: float | None = None
    camera_dirs: tuple = ()


def _camera(name, dirs):
    from allsky_camera.camera import config
    if (name, dirs) not in _CAMERAS:
        _CAMERAS[name, dirs] = config.load_camera(name, list(dirs) or None)
    return _CAMERAS[name, dirs]


def read(path, camera_name, dirs=()):
    """Read an input as ``ac_proc.py`` does; returns (exposure, camera)."""
    import os

    from allsky_camera.camera import config
    from allsky_camera.exceptions import InputFileError
    from allsky_camera.stages import io
    if camera_name is not None:
        camera = _camera(camera_name, tuple(dirs))
        return io.read_exposure(path, camera), camera
    if not os.path.exists(path):
        raise InputFileError(f"{path}: no such file; check the path")
    data, header = io._read_image_hdu(path)
    camera, why = config.select_camera(header, data.shape, list(dirs) or None)
    log.debug("%s: camera %s chosen by %s", path, camera.name, why)
    return io.exposure_from_data(path, data, header, camera), camera


def meridian_altaz():
    """The keogram's samples: (alt, az) in deg, from the north horizon through
    the zenith to the south horizon (north first)."""
    import numpy as np
    up = np.arange(KEOGRAM_MIN_ALT_DEG, 90.0, KEOGRAM_STEP_DEG)
    alt = np.concatenate([up, [90.0], up[::-1]])
    az = np.concatenate([np.zeros(len(up) + 1), np.full(len(up), 180.0)])
    return alt, az


def keogram_column(image, model, exptime):
    """Sky along the true north-south meridian of one frame.

    Parameters
    ----------
    image : ndarray
        Detrended image, ADU, ``image[y, x]``.
    model : CameraModel
        The frame's fitted model (gives where the meridian falls).
    exptime : float
        s.

    Returns
    -------
    ndarray
        Median ADU/s per pixel at each :func:`meridian_altaz` sample (NaN
        off the image).
    """
    import numpy as np
    alt, az = meridian_altaz()
    x, y = model.altaz_to_xy(alt, az)
    ny, nx = image.shape
    h = KEOGRAM_HALF_PX
    out = np.full(len(alt), np.nan)
    for i, (xi, yi) in enumerate(zip(np.rint(x), np.rint(y))):
        if h <= xi < nx - h and h <= yi < ny - h:
            xi, yi = int(xi), int(yi)
            out[i] = np.nanmedian(image[yi - h:yi + h + 1, xi - h:xi + h + 1]) / exptime
    return out


def cloud_cells(alt, az, transparency, weight, clear_threshold):
    """Clear fraction in each (altitude band, azimuth quadrant) cell.

    The vote-weighted fraction of the voting stars in the cell whose
    transparency exceeds ``clear_threshold``; NaN where no star votes.
    Cells are ordered band by band (low first), N, E, S, W within a band.
    """
    import numpy as np
    out = []
    daz = (np.asarray(az)[:, None] - np.array([q for _, q in CLOUD_QUADRANTS]) + 180.0) % 360.0
    quad = np.argmin(np.abs(daz - 180.0), axis=1)
    votes = np.asarray(weight) > 0
    for lo, hi in CLOUD_ALT_BANDS_DEG:
        band = (alt >= lo) & (alt < hi) & votes
        for k in range(len(CLOUD_QUADRANTS)):
            sel = band & (quad == k)
            w = np.asarray(weight)[sel]
            out.append(float(np.sum(w * (transparency[sel] > clear_threshold)) / w.sum())
                       if w.sum() > 0 else float("nan"))
    return out


def cloud_cell_names():
    """Labels of :func:`cloud_cells`, e.g. ``'N 20-50'``."""
    return [f"{q} {lo:g}-{min(hi, 90):g}" for lo, hi in CLOUD_ALT_BANDS_DEG
            for q, _ in CLOUD_QUADRANTS]


def summary_row(red):
    """The night-summary row of a reduced frame (plain Python values)."""
    import math

    import numpy as np
    sol, zp, tr = red.solution, red.zeropoint, red.transparency.summary
    why = []
    if not sol.fit.ok:
        why.append(f"astrometry: {sol.message}")
    if not zp.ok:
        why.append(f"photometry: {zp.message}")
    if tr.n_cells == 0:
        why.append("transparency: no star bright enough to judge the sky")
    t, m = sol.template, sol.model

    def f(v):
        return float(v) if v is not None and math.isfinite(float(v)) else float("nan")

    return {
        "file": Path(red.exposure.path).name,
        "date_obs": red.exposure.time.iso_utc,
        "mjd": float(red.exposure.time.mjd_utc),
        "status": "degraded" if why else "ok",
        "message": "; ".join(why),
        "exptime": f(red.exposure.exptime),
        "sun_alt": f(red.ephem["sun_alt"]),
        "moon_alt": f(red.ephem["moon_alt"]),
        "zp_total": f(zp.zp_total),
        "ext_coef": f(_ext_coef(zp)),
        "transparency": f(tr.median),
        "clear_fraction": f(tr.clear_fraction),
        "sb_zenith": f(red.skymap.zenith_mag) if red.skymap is not None else float("nan"),
        "n_stars": int(np.sum(red.flags == 0)),
        "ast_stat": str(getattr(sol, "status", "fit" if sol.fit.ok else "template")),
        "ast_rms": f(sol.fit.rms_px) if sol.fit.ok else float("nan"),
        "dzenx": f(m.x0 - t.x0),
        "dzeny": f(m.y0 - t.y0),
        "drot": f(m.rot_deg - t.rot_deg),
        "n_streaks": len(red.streaks) if red.streaks is not None else -1,
    }


def _ext_coef(zp):
    """The frame's fitted extinction (mag/airmass), NaN when not fitted."""
    fit = getattr(zp, "model_fit", None)
    if fit is None or getattr(fit, "k_source", "") != "fitted":
        return float("nan")
    return float(fit.model.k)


def failed_row(path, message):
    """The summary row of an input that could not be reduced."""
    nan = float("nan")
    row = {k: nan for k in ("mjd", "exptime", "sun_alt", "moon_alt", "zp_total", "ext_coef",
                            "transparency", "clear_fraction", "sb_zenith", "ast_rms",
                            "dzenx", "dzeny", "drot")}
    return dict(row, file=Path(path).name, date_obs="", status="failed", message=message,
                n_stars=0, ast_stat="", n_streaks=-1)


def run_task(task):
    """Reduce one input and write its products; never raises for a bad input.

    Returns
    -------
    dict
        ``row`` (summary row), ``model`` (the fitted camera model as a dict
        when the fit is good, else None), ``keogram`` and ``clouds`` (lists,
        empty for a failed frame), ``products`` (file names written),
        ``peak_rss_kib`` (peak memory of the worker process so far).
    """
    from allsky_camera.exceptions import AllskyError
    from allsky_camera.output import writers
    from allsky_camera.output.products import output_paths
    from allsky_camera.reduction import reduce_exposure

    written = []
    try:
        exposure, camera = read(task.path, task.camera, task.camera_dirs)
        start = None
        if task.start_model is not None:
            start = type(camera.astrometry.model).from_dict(task.start_model,
                                                            where="ledger seed model")
        red = reduce_exposure(exposure, camera, task.products, start_model=start,
                              clear_zp_total=task.clear_zp_total)
        writers.write_products(red, task.products, output_paths(task.outdir, exposure.stem),
                               written=written)
    except Exception as err:   # a bad file (or a bug on it) never stops the night
        for p in written:
            Path(p).unlink(missing_ok=True)
        if isinstance(err, AllskyError):
            message = str(err)
        else:
            log.exception("%s: unexpected error", task.path)
            message = f"{task.path}: {type(err).__name__}: {err}"
        log.warning("%s", message)
        return {"row": failed_row(task.path, message), "model": None, "keogram": [],
                "clouds": [], "products": [], "peak_rss_kib": _peak_rss_kib()}
    tcfg = camera.transparency
    tr = red.transparency
    return {"row": summary_row(red),
            "model": red.solution.model.to_dict() if red.solution.fit.ok else None,
            "keogram": [float(v) for v in keogram_column(red.detrended.image,
                                                         red.solution.model,
                                                         exposure.exptime)],
            "clouds": cloud_cells(red.alt, red.az, tr.transparency, tr.weight,
                                  tcfg.clear_threshold),
            "products": [Path(p).name for p in written], "peak_rss_kib": _peak_rss_kib()}


def _peak_rss_kib():
    """Peak resident memory of this (worker) process so far, KiB (Linux)."""
    import resource
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
