"""A simulated night: frames every few minutes from dusk to dawn, with truth.

:func:`plan_night` lays out what each frame sees (time, Sun and Moon, sky
brightness, clouds, camera drift); :func:`write_night` renders the frames
with :func:`allsky_camera.sim.simulate.simulate` and writes them, each with its
truth file, plus ``night-truth.csv`` (one row per frame).

The sky brightens in twilight and when the Moon is up by simple laws (below,
rough approximations chosen to give a realistic range, not published
models); the cloud band is the simulator's ``band`` cloud; the camera drifts
linearly in zenith position and rotation over the night, farther by dawn
than the first-pass search box reaches from the static template.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Twilight: extra zenith sky, V mag/arcsec^2, at a Sun altitude of
#: TWILIGHT_REF_ALT_DEG, fading by TWILIGHT_SLOPE_MAG_PER_DEG per degree
#: lower (a rough linear law: ~12 mag at -6 deg, ~21.5 at -18 deg).
TWILIGHT_REF_ALT_DEG = -6.0
TWILIGHT_REF_MAG = 12.0
TWILIGHT_SLOPE_MAG_PER_DEG = 0.8
#: Moonlight: zenith sky of a full Moon at the zenith, V mag/arcsec^2
#: (rough: ~18 for a full Moon high up), scaled by illumination * sin(alt).
MOONLIGHT_FULL_MAG = 18.0


@dataclasses.dataclass(frozen=True)
class NightFrame:
    """What one frame of a simulated night is made of.

    Attributes
    ----------
    index : int
    dateobs : str
        Start, ISO on the camera's clock.
    dateobs_utc : str
        Start, ISO UTC.
    sun_alt, moon_alt : float
        deg.
    sky_zenith_mag : float
        Zenith sky, V mag/arcsec^2 (dark sky + twilight + Moon).
    cloudy : bool
        The cloud band is on this frame.
    cloud_az_deg : float
        Azimuth of the band (deg, north through east).
    dx, dy : float
        Zenith shift from the template, pixels.
    drot : float
        Rotation added to the template, deg.
    """

    index: int
    dateobs: str
    dateobs_utc: str
    sun_alt: float
    moon_alt: float
    sky_zenith_mag: float
    cloudy: bool
    cloud_az_deg: float
    dx: float
    dy: float
    drot: float


def add_mags(*mags):
    """Magnitude of the summed flux of surface brightnesses ``mags``."""
    return float(-2.5 * np.log10(sum(10 ** (-0.4 * m) for m in mags)))


def sky_brightness(dark_mag, sun_alt, moon_alt, moon_illum):
    """Zenith sky, V mag/arcsec^2: dark sky plus twilight plus moonlight."""
    parts = [dark_mag]
    parts.append(TWILIGHT_REF_MAG + TWILIGHT_SLOPE_MAG_PER_DEG * (TWILIGHT_REF_ALT_DEG - sun_alt))
    if moon_alt > 0 and moon_illum > 0:
        parts.append(MOONLIGHT_FULL_MAG
                     - 2.5 * np.log10(moon_illum * np.sin(np.radians(moon_alt))))
    return add_mags(*parts)


def plan_night(camera, *, start_utc, n_frames, step_min, cloud_frames=(), cloud_az_deg=(),
               drift_px=(9.0, -6.0), drift_rot_deg=0.3):
    """Lay out a simulated night.

    Parameters
    ----------
    camera : Camera
    start_utc : str
        First frame, ISO UTC.
    n_frames : int
    step_min : float
        Minutes between frames.
    cloud_frames : sequence of int
        Indices of the frames the cloud band is on...
    cloud_az_deg : sequence of float
        ...and its azimuth on each (deg), the band turning as it crosses.
    drift_px : (float, float)
        Zenith shift reached by the last frame (linear from 0), pixels.
    drift_rot_deg : float
        Rotation reached by the last frame, deg.

    Returns
    -------
    list of NightFrame
    """
    from allsky_camera.camera import coords

    site, _ = coords.site_from_config(camera.site)
    t0 = coords.parse_time(start_utc)
    offset_h = camera.header.utc_offset_hours
    clouds = dict(zip(cloud_frames, cloud_az_deg))
    frames = []
    for i in range(n_frames):
        mjd = t0.mjd_utc + i * step_min / 1440.0
        t = coords.parse_time(_iso_from_mjd(mjd))
        e = coords.sun_moon_altaz(t, site)
        f = i / max(n_frames - 1, 1)
        frames.append(NightFrame(
            index=i, dateobs=_iso_from_mjd(mjd + offset_h / 24.0), dateobs_utc=t.iso_utc,
            sun_alt=float(e["sun_alt"]), moon_alt=float(e["moon_alt"]),
            sky_zenith_mag=sky_brightness(camera.simulation.sky_zenith_mag, e["sun_alt"],
                                          e["moon_alt"], e["moon_illum"]),
            cloudy=i in clouds, cloud_az_deg=float(clouds.get(i, 0.0)),
            dx=drift_px[0] * f, dy=drift_px[1] * f, drot=drift_rot_deg * f))
    return frames


def _iso_from_mjd(mjd):
    """ISO 8601 (whole seconds) of a UTC MJD, without astropy.time."""
    import datetime
    epoch = datetime.datetime(1858, 11, 17)
    t = epoch + datetime.timedelta(seconds=round(mjd * 86400.0))
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def frame_name(frame):
    """File name in the camera's style: the camera-clock time, ``YYYY_MM_DD__hh_mm_ss``."""
    return frame.dateobs.replace("-", "_").replace("T", "__").replace(":", "_") + ".fits"


def write_night(camera, outdir, frames, *, seed=0, cloud_transmission=0.1, overwrite=False):
    """Render and write the frames of a night, and ``night-truth.csv``.

    Returns
    -------
    list of Path
        The frames written, in time order.
    """
    from astropy.table import Table

    from allsky_camera.sim import simulate

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths, rows = [], []
    for fr in frames:
        clouds = (simulate.Clouds("band", cloud_transmission, az_deg=fr.cloud_az_deg)
                  if fr.cloudy else None)
        sim = simulate.simulate(camera, seed=seed + fr.index, dateobs=fr.dateobs,
                                zenith_shift=(fr.dx, fr.dy), rotation_deg=fr.drot,
                                sky_zenith_mag=fr.sky_zenith_mag, clouds=clouds)
        path = outdir / frame_name(fr)
        simulate.write_simulation(sim, path, overwrite=overwrite)
        paths.append(path)
        m = sim.truth.model
        rows.append(dict(dataclasses.asdict(fr), file=path.name, x0=m.x0, y0=m.y0,
                         rot_deg=m.rot_deg))
        log.info("night frame %d/%d: %s", fr.index + 1, len(frames), path.name)
    Table(rows=rows).write(outdir / "night-truth.csv", overwrite=True)
    return paths


#: The demo night (MDM, Kitt Peak): 2020-10-10 UTC, the Moon (55 % lit)
#: rises near local midnight; frames from evening twilight (Sun near -12
#: deg) to morning twilight; a cloud band crosses in the middle.
DEMO_START_UTC = "2020-10-10T02:00:00"
DEMO_STEP_MIN = 25.0
DEMO_N_FRAMES = 26
DEMO_CLOUD_FRAMES = (9, 10, 11, 12)
DEMO_CLOUD_AZ_DEG = (20.0, 45.0, 70.0, 95.0)


def demo_night(camera, outdir, *, n_frames=DEMO_N_FRAMES, step_min=DEMO_STEP_MIN, seed=0):
    """Write the demo night's frames into ``outdir``; returns their paths."""
    frames = plan_night(camera, start_utc=DEMO_START_UTC, n_frames=n_frames, step_min=step_min,
                        cloud_frames=DEMO_CLOUD_FRAMES, cloud_az_deg=DEMO_CLOUD_AZ_DEG)
    return write_night(camera, outdir, frames, seed=seed)
