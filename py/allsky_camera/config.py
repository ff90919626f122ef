"""Camera configurations: one YAML file per camera in ``etc/``, validated once.

The schema is the set of frozen dataclasses below: a field without a default
is a required key, a field with a default is optional and the default lives
here and nowhere else.  Unknown keys, missing keys and wrong types are
:class:`~allsky_camera.exceptions.ConfigError` naming the file and the key.

Pixel conventions are those of :mod:`allsky_camera.camera_model` (0-based,
x fast axis, pixel centres at integers); pixel ranges are half-open
``[start, stop)``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path

from .camera_model import CameraModel
from .exceptions import ConfigError

#: Directory holding the camera configurations shipped with the project.
ETC_DIR = Path(__file__).resolve().parents[2] / "etc"
#: Camera used when none is named and none matches the header.
DEFAULT_CAMERA = "MDM"


@dataclasses.dataclass(frozen=True)
class Sensor:
    """Detector geometry and data range."""

    nx: int                                  # image width (x, columns), pixels
    ny: int                                  # image height (y, rows), pixels
    saturation_adu: float                    # raw level at or above which a pixel is saturated
    dark_region: tuple[int, ...] | None = None   # [x0, x1, y0, y1] never illuminated, half-open
    bias_adu: float | None = None            # dark+bias level when there is no dark region
    bad_pixel_mask: str | None = None        # FITS image, nonzero = bad, path relative to etc/
    obstruction_mask: str | None = None      # FITS image, nonzero = sky hidden, relative to etc/
    hot_pixel_sigma: float | None = None     # repair single pixels this many noise sigma above
                                             # all 8 neighbours (None: off)
    hot_pixel_ratio: float = 3.0             # ... and this many times brighter, above the local
                                             # level, than their brightest neighbour (stars are not)


@dataclasses.dataclass(frozen=True)
class HeaderCards:
    """Where the exposure's metadata live in the raw FITS header."""

    exptime_card: str | None                 # card holding the exposure time in seconds;
                                             # null: the header has none, give exptime_s
    dateobs_card: str = "DATE-OBS"           # card holding the start time (or its date alone,
                                             # with the time of day in timeobs_card)
    timeobs_card: str | None = None          # card holding the time of day when dateobs_card
                                             # holds only the date (null: no such card)
    time_format: str | None = None           # strptime format of the start time (with
                                             # timeobs_card: of the two values joined by one
                                             # space), matched case-insensitively; null: ISO 8601
    utc_offset_hours: float = 0.0            # camera clock minus UTC, hours (MDM: -7)
    exptime_s: float | None = None           # exposure time, s, when exptime_card is null
    instrume: str | None = None              # INSTRUME value that identifies this camera


@dataclasses.dataclass(frozen=True)
class Site:
    """Observatory position and the air for refraction."""

    lon_deg: float                           # east longitude, deg (west negative)
    lat_deg: float                           # geodetic latitude, deg
    height_m: float                          # height above the WGS84 ellipsoid, m
    pressure_bar: float = 0.0                # air pressure for refraction, bar (0: none)
    temperature_c: float = 10.0              # air temperature for refraction, deg C
    humidity: float = 0.2                    # relative humidity for refraction, 0-1
    wavelength_um: float = 0.55              # effective wavelength (V band), micron
    prefer_header: bool = False              # take the site from header cards when present


@dataclasses.dataclass(frozen=True)
class Astrometry:
    """Camera model template and how it is refitted on each exposure."""

    model: CameraModel                       # the static template
    safe_radius_px: float                    # stars beyond this radius from the zenith are flagged
    fit_params: tuple[str, ...] = ("x0", "y0", "rot_deg", "scale")   # refitted per exposure
    fit_vmax: float = 4.5                    # V limit of the bright stars of the first fit
    search_half_px: int = 7                  # half-width of the first-pass search box, pixels
    clip_sigma: float = 4.0                  # residual clip in the robust fit, in sigma
    min_stars: int = 12                      # fewer matched stars: keep the template
    # quality gate of every solution (allsky_camera.astrometry_gate)
    gate_match_px: float = 2.0               # a predicted star is found within this, pixels
    gate_min_fraction: float = 0.5           # fewest found / predicted bright stars accepted
    gate_max_rms_px: float = 1.0             # largest RMS residual of the found stars, pixels
    gate_min_rank_corr: float = 0.3          # lowest rank correlation of flux with -V
    gate_max_scale_dev: float = 0.03         # largest |radial scale - 1|
    gate_max_tilt_deg: float = 2.0           # largest tilt of the optical axis, deg
    # recovery search when the template fails the gate (allsky_camera.astrometry_recover)
    recover: bool = True                     # search wider when the template fails the gate
    recover_offset_px: float = 48.0          # zenith searched this far from the template, pixels
    recover_step_px: float = 4.0             # grid step of that search, pixels
    recover_vmax: float = 3.0                # V limit of the stars of the search
    recover_min_alt_deg: float = 15.0        # lowest altitude of the stars of the search, deg
    recover_n_detect: int = 100              # brightest detections the search matches


@dataclasses.dataclass(frozen=True)
class Centroid:
    """Iterative windowed centroiding."""

    box_half_px: int = 4                     # half-width of the centroid box, pixels
    window_sigma_px: float = 1.2             # Gaussian window sigma, pixels
    n_iter: int = 8                          # iterations
    max_shift_px: float = 2.0                # larger shifts from the prediction are flagged
    edge_margin_px: int = 12                 # closer to the image edge is flagged
    blend_radius_px: float = 3.0             # nearer another star's prediction is flagged
    saturation_radius_px: int = 2            # saturated raw pixel this near is flagged
    min_snr: float = 5.0                     # windowed S/N below this: not detected (FAINT)


@dataclasses.dataclass(frozen=True)
class Photometry:
    """Aperture photometry and zeropoints."""

    aper_radius_px: float                    # photometric aperture radius, pixels
    annulus_px: tuple[float, ...]            # sky annulus [inner, outer] radius, pixels
    zp_nominal: float                        # nominal zeropoint, mag for 1 ADU/s
    zp_nominal_scale: str                    # 'aperture' or 'total': flux the nominal ZP refers to
    vmax: float                              # faintest catalog star used, V mag
    isolation_deg: float                     # stars with a neighbour nearer than this are flagged
    moon_exclusion_deg: float                # stars nearer the Moon than this are flagged
    apcor_radius_px: float = 5.0             # "total flux" aperture of the aperture correction
    apcor_vmax: float = 4.0                  # V limit of the aperture-correction stars
    apcor_min_stars: int = 8                 # fewer: use apcor_default_mag
    apcor_default_mag: float = 0.0           # total minus aperture zeropoint when not measured
    min_stars_zp: int = 5                    # fewer good stars: no zeropoint
    zp_vmax: float | None = None             # faintest star used for the zeropoint (None: vmax)
    zp_min_snr: float = 0.0                  # zeropoint stars must be EXPECTED (nominal zeropoint,
                                             # this frame's sky noise) to reach this S/N; 0: off
    neighbour_dv: float = 2.5                # neighbours fainter by more than this don't count


@dataclasses.dataclass(frozen=True)
class Sbmap:
    """Sky-brightness map."""

    kernel_px: int                           # median filter width, pixels (odd)
    step_px: int = 4                         # grid step of the fast median, pixels


@dataclasses.dataclass(frozen=True)
class Transparency:
    """Per-star transparency, the cloud map and the exposure's clear fraction."""

    nside: int = 8                           # HEALPix Nside of the cloud cells and maps
    clip: tuple[float, ...] = (0.0, 1.5)     # per-star transparency clipped to [low, high]
    min_expected_snr: float = 5.0            # stars that should reach a lower S/N do not vote
    clear_threshold: float = 0.7             # a cell is clear above this median transparency
    cloudy_warning: float = 0.5              # warn when the clear fraction is below this
    min_cell_stars: int = 1                  # fewer voting stars in a cell: no star evidence there
    star_scatter: float = 0.3                # per-star transparency scatter on a clear sky (for
                                             # the confidence of a cell's star call)
    texture_block_px: int = 12               # sky texture: block side, pixels
    texture_stride_px: int = 4               # ... sampled every this many pixels in a block
    texture_model_blocks: int = 5            # smooth model: mean of the 4 blocks this // 2 away
    texture_ring_deg: float = 5.0            # median residual removed in zenith-distance rings, deg
    texture_mask_grow_blocks: int = 1        # masked blocks grow by this many (obstruction edges)
    texture_min_blocks: int = 6              # fewer unmasked blocks in a cell: no texture evidence
    texture_cloud: float = 0.04              # cloud: block residual RMS above this fraction of sky
    texture_scatter: float = 0.3             # relative error of a cell's texture amplitude
    texture_clear_conf_max: float = 0.6      # a smooth sky says clear with at most this confidence
    texture_clear_max_cloud: float = 0.5     # ... and only when at most this fraction of the
                                             # cells judged by stars is cloud ...
    texture_prior_min_cells: int = 10        # ... when stars judge at least this many cells
    lost_stars_conf: float = 0.6             # confidence of a cloud call from stars the failed
                                             # astrometry did not find on a night sky
    min_confidence: float = 0.3              # a cell whose best evidence is less sure is unknown


@dataclasses.dataclass(frozen=True)
class Streaks:
    """Satellite and aircraft streak detection (--detect_streaks)."""

    horizon_margin_px: float = 15.0          # search the lens circle less this margin, pixels
    bkg_kernel_px: int = 23                  # running-median width of the background, pixels
    bkg_step_px: int = 8                     # grid step of that median, pixels
    threshold_sigma: float = 4.0             # threshold of the 3x3-smoothed significance
    min_blob_px: int = 30                    # connected pieces this small are stars or noise
    hough_threshold: int = 10                # probabilistic Hough accumulator threshold
    min_length_px: int = 40                  # shortest streak, pixels
    line_gap_px: int = 12                    # largest gap bridged along a streak, pixels
    merge_angle_deg: float = 2.0             # segments this parallel ...
    merge_dist_px: float = 5.0               # ... and this close to one line are one streak
    star_mask_px: int = 3                    # catalog stars are blanked within this radius
    star_mask_vmax: float = 5.0              # ... when brighter than this V
    walk_window_px: int = 9                  # running mean along the line, pixels
    walk_sigma: float = 1.0                  # the streak ends where that mean drops below this
    width_half_px: int = 8                   # half-width of the profile across the line
    min_core_sigma: float = 2.0              # core level below this many noise sigma: not a streak
    dedupe_px: float = 8.0                   # a streak along a longer one within this is a piece
    end_gap_px: int = 4                      # a streak's end: no gap in it wider than this
    noise_block_px: int = 32                 # tiles of the local noise map, pixels
    side_contrast: float = 3.0               # core must beat both sides by this factor


@dataclasses.dataclass(frozen=True)
class Simulation:
    """What the simulator renders for this camera (not used by the pipeline)."""

    exptime_s: float                         # exposure time, s
    gain_e_per_adu: float                    # electrons per ADU
    read_noise_e: float                      # read noise, electrons
    bias_adu: float                          # dark+bias level, ADU
    sky_zenith_mag: float                    # sky at the zenith, V mag/arcsec^2
    sky_horizon_mag: float                   # sky at the horizon, V mag/arcsec^2
    fwhm_zenith_px: float                    # PSF FWHM at the zenith, pixels
    fwhm_horizon_px: float                   # PSF FWHM at the horizon, pixels
    hot_pixel_fraction: float = 1e-4         # fraction of pixels that are hot
    vmax: float = 7.0                        # faintest star rendered, V mag
    zp_true: float | None = None             # true total-flux zeropoint; None: from the config
    horizon_alt_deg: float = 0.0             # sky below this altitude is dark (lens edge)
    dateobs: str = "2020-10-11T21:38:23"     # default DATE-OBS (camera's clock)


@dataclasses.dataclass(frozen=True)
class Camera:
    """Everything the pipeline knows about one camera."""

    name: str                                # short name, e.g. MDM
    description: str                         # one line for humans
    sensor: Sensor
    header: HeaderCards
    site: Site
    astrometry: Astrometry
    photometry: Photometry
    sbmap: Sbmap
    centroid: Centroid = Centroid()
    transparency: Transparency = Transparency()
    streaks: Streaks = Streaks()
    simulation: Simulation | None = None
    calibration: dict | None = None          # how the configuration was made (free form)
    source: str = ""                         # file it was read from (set by the loader)

    def resolve(self, relpath):
        """Path of a file named in the configuration, relative to its YAML."""
        base = Path(self.source).parent if self.source else ETC_DIR
        return base / relpath


# ---------------------------------------------------------------- validation
def _check_type(value, tp, where):
    """Coerce ``value`` to annotation ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is CameraModel:
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # a schema bug, not a user error


def _build(cls, mapping, where):
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} "
                          f"(allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        if name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing key {name!r}")
            continue
        kwargs[name] = _check_type(mapping[name], hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err


#: Largest clock offset from UTC, hours (the time zones span UTC-12 to UTC+14).
_MAX_UTC_OFFSET_H = 14.0


def check_header_cards(hc, where):
    """Raise ConfigError unless the header settings ``hc`` (HeaderCards) are consistent."""
    import datetime as dt

    if (hc.exptime_card is None) == (hc.exptime_s is None):
        raise ConfigError(f"{where}: header: give either exptime_card (the header card of the "
                          "exposure time) or exptime_s (seconds, when the header has no such "
                          f"card), not {'both' if hc.exptime_s is not None else 'neither'}")
    if hc.exptime_s is not None and not hc.exptime_s > 0:
        raise ConfigError(f"{where}: header.exptime_s = {hc.exptime_s} must be a positive "
                          "number of seconds")
    if not abs(hc.utc_offset_hours) <= _MAX_UTC_OFFSET_H:
        raise ConfigError(f"{where}: header.utc_offset_hours = {hc.utc_offset_hours} is not "
                          f"a clock offset (between -{_MAX_UTC_OFFSET_H:g} and "
                          f"+{_MAX_UTC_OFFSET_H:g} hours)")
    if hc.time_format is not None:
        probe = dt.datetime(2019, 3, 6, 8, 30, 37)
        try:
            back = dt.datetime.strptime(probe.strftime(hc.time_format), hc.time_format)
        except ValueError as err:
            raise ConfigError(f"{where}: header.time_format {hc.time_format!r} is not a "
                              f"usable strptime format ({err})") from err
        if back.replace(microsecond=0) != probe:
            raise ConfigError(f"{where}: header.time_format {hc.time_format!r} does not hold "
                              "the date and the time to the second (e.g. '%a %b %d %H:%M:%S "
                              "%Y' for 'WED MAR 06 08:30:37 2019')")


def _validate(cam, where):
    check_header_cards(cam.header, where)
    s = cam.sensor
    if s.dark_region is None and s.bias_adu is None:
        raise ConfigError(f"{where}: sensor needs dark_region or bias_adu")
    if s.dark_region is not None:
        x0, x1, y0, y1 = (*s.dark_region, 0, 0, 0, 0)[:4]
        if len(s.dark_region) != 4 or not (0 <= x0 < x1 <= s.nx and 0 <= y0 < y1 <= s.ny):
            raise ConfigError(f"{where}: sensor.dark_region {list(s.dark_region)} must be "
                              f"[x0, x1, y0, y1] inside the {s.nx}x{s.ny} sensor")
    p = cam.photometry
    if len(p.annulus_px) != 2 or not (p.aper_radius_px < p.annulus_px[0] < p.annulus_px[1]):
        raise ConfigError(f"{where}: photometry.annulus_px must be [inner, outer] with "
                          "aper_radius_px < inner < outer")
    if p.zp_nominal_scale not in ("aperture", "total"):
        raise ConfigError(f"{where}: photometry.zp_nominal_scale must be 'aperture' or "
                          f"'total', not {p.zp_nominal_scale!r}")
    if cam.sbmap.kernel_px < 3 or cam.sbmap.kernel_px % 2 == 0:
        raise ConfigError(f"{where}: sbmap.kernel_px must be an odd integer >= 3")
    from .healpix import check_nside

    try:
        check_nside(cam.transparency.nside)
    except Exception as err:
        raise ConfigError(f"{where}: transparency.nside: {err}") from err
    if len(cam.transparency.clip) != 2 or cam.transparency.clip[0] >= cam.transparency.clip[1]:
        raise ConfigError(f"{where}: transparency.clip must be [low, high] with low < high")
    ast = cam.astrometry
    for key in ("gate_match_px", "gate_max_rms_px", "recover_step_px"):
        if not getattr(ast, key) > 0:
            raise ConfigError(f"{where}: astrometry.{key} = {getattr(ast, key)} must be > 0")
    if not 0.0 <= ast.gate_min_fraction <= 1.0:
        raise ConfigError(f"{where}: astrometry.gate_min_fraction = {ast.gate_min_fraction} "
                          "must be a fraction between 0 and 1")
    if not -1.0 <= ast.gate_min_rank_corr <= 1.0:
        raise ConfigError(f"{where}: astrometry.gate_min_rank_corr = "
                          f"{ast.gate_min_rank_corr} must be a correlation between -1 and 1")
    if ast.recover_offset_px < 0:
        raise ConfigError(f"{where}: astrometry.recover_offset_px = {ast.recover_offset_px} "
                          "must be >= 0")
    allowed = {"x0", "y0", "rot_deg", "scale", "tilt_n_deg", "tilt_e_deg", "k1", "k2", "k3"}
    bad = sorted(set(cam.astrometry.fit_params) - allowed)
    if bad:
        raise ConfigError(f"{where}: astrometry.fit_params: {bad[0]!r} is not one of "
                          f"{', '.join(sorted(allowed))}")


def camera_from_dict(d, source=""):
    """Validate a configuration mapping and build a :class:`Camera`."""
    where = source or "camera configuration"
    d = dict(d)
    d.pop("source", None)
    cam = _build(Camera, d, where)
    _validate(cam, where)
    return dataclasses.replace(cam, source=str(source))


def camera_path(name_or_path):
    """Path of a configuration given a name in ``etc/`` or a YAML path."""
    p = Path(name_or_path)
    if p.suffix.lower() in (".yaml", ".yml") or os.sep in str(name_or_path):
        return p
    return ETC_DIR / f"{name_or_path}.yaml"


def load_camera(name_or_path):
    """Read and validate a camera configuration.

    Parameters
    ----------
    name_or_path : str or Path
        A name of a file in ``etc/`` (``"MDM"``) or a path to a YAML file.

    Returns
    -------
    Camera
    """
    import yaml

    path = camera_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in ETC_DIR.glob("*.yaml")))
        raise ConfigError(f"{path}: no such camera configuration "
                          f"(known cameras: {known}; or give a YAML path)")
    try:
        with open(path) as fh:
            d = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err.__class__.__name__}: "
                          f"{str(err).splitlines()[0]})") from err
    return camera_from_dict(d or {}, source=path)


def select_camera(header, shape):
    """The configuration in ``etc/`` that matches a raw frame.

    The one whose ``header.instrume`` equals the frame's INSTRUME card, else
    the one of the same sensor size (the first by name), else MDM.

    Returns
    -------
    camera : Camera
    why : str
        How it was chosen, for the log.
    """
    ny, nx = shape
    inst = str(header.get("INSTRUME", "")).strip()
    cams = [load_camera(n) for n in known_cameras()]
    for c in cams:
        if inst and c.header.instrume and c.header.instrume.strip() == inst:
            return c, f"INSTRUME = {inst!r}"
    for c in cams:
        if (c.sensor.nx, c.sensor.ny) == (nx, ny):
            return c, f"image size {nx}x{ny}"
    return load_camera(DEFAULT_CAMERA), "default"


def known_cameras():
    """Names of the configurations in ``etc/``."""
    return sorted(p.stem for p in ETC_DIR.glob("*.yaml"))


def camera_to_dict(cam):
    """Plain mapping of a :class:`Camera`, ready for ``yaml.safe_dump``."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v
    d = plain(cam)
    d.pop("source")
    return d
