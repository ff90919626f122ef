"""Camera configurations: one YAML file per camera in ``etc/``, validated once.

The schema is the set of frozen dataclasses below: a field without a default
is a required key, a field with a default is optional and the default lives
here and nowhere else.  Unknown keys, missing keys and wrong types are
:class:`~allsky_camera.exceptions.ConfigError` naming the file and the key.

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model` (0-based,
x fast axis, pixel centres at integers); pixel ranges are half-open
``[start, stop)``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
import typing
from pathlib import Path

from allsky_camera.camera.camera_model import CameraModel
from allsky_camera.exceptions import ConfigError

log = logging.getLogger(__name__)

#: Environment variable naming folders of the user's own camera YAMLs
#: (separated by ``os.pathsep``), searched before the stock configurations.
CAMERA_PATH_ENV = "ALLSKY_CAMERA_PATH"
#: Camera used when none is named and none matches the header.
DEFAULT_CAMERA = "MDM"


#: The package whose data folder ``etc`` holds the stock cameras when installed.
PACKAGE = "allsky_camera"

#: A source checkout's top folder: this file is ``py/allsky_camera/camera/config.py``.
CHECKOUT_ROOT = Path(__file__).resolve().parents[3]


def stock_dir(package=None):
    """Folder of the stock camera configurations shipped with the project.

    An installed package (wheel) carries them as package data in
    ``allsky_camera/etc``, found with :mod:`importlib.resources`.  A source
    checkout (run as ``python py/allsky_camera/ac_proc.py``, or installed
    editable) has no such folder: there they are the top-level ``etc/``
    beside ``py/``.

    Parameters
    ----------
    package : str, optional
        Package whose ``etc`` data folder is looked for (default: this one).

    Returns
    -------
    Path
    """
    from importlib import resources

    packaged = resources.files(package or PACKAGE) / "etc"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return CHECKOUT_ROOT / "etc"


#: Directory holding the camera configurations shipped with the project.
ETC_DIR = stock_dir()


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
    max_exptime_s: float = 3600.0            # longer exposure times are refused as corrupt, s


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
    # quality gate of every solution (allsky_camera.stages.astrometry_gate)
    gate_match_px: float = 2.0               # a predicted star is found within this, pixels
    gate_min_fraction: float = 0.5           # fewest found / predicted bright stars accepted
    gate_max_rms_px: float = 1.0             # largest RMS residual of the found stars, pixels
    gate_min_rank_corr: float = 0.3          # lowest rank correlation of flux with -V
    gate_max_scale_dev: float = 0.03         # largest |radial scale - 1|
    gate_max_tilt_deg: float = 2.0           # largest tilt of the optical axis, deg
    gate_cell_az_deg: float = 45.0           # azimuth width of the gate's sky cells, deg
    gate_cell_alt_deg: float = 30.0          # altitude height of the gate's sky cells, deg
    gate_cell_min_pred: int = 8              # a sky cell is judged with this many stars
    gate_clear_cell_fraction: float = 0.8    # a sky cell with this found fraction is clear
    gate_min_clear_stars: int = 30           # below gate_min_fraction: found in clear cells
    # recovery search when the template fails the gate (allsky_camera.stages.astrometry_recover)
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
    planet_exclusion_deg: float = 1.5        # stars nearer Venus, Mars, Jupiter or Saturn than
                                             # this are flagged PLANET (deg)
    apcor_radius_px: float = 5.0             # "total flux" aperture of the aperture correction
    apcor_vmax: float = 4.0                  # V limit of the aperture-correction stars
    apcor_min_stars: int = 8                 # fewer: use apcor_default_mag
    apcor_default_mag: float = 0.0           # total minus aperture zeropoint when not measured
    apcor_cloud_clip_mag: float = 0.5        # aperture-correction stars fainter than the frame's
                                             # median against the clear-sky model by more than
                                             # this (mag) look clouded: left out
    min_stars_zp: int = 5                    # fewer good stars: no zeropoint
    zp_vmax: float | None = None             # faintest star used for the zeropoint (None: vmax)
    zp_min_snr: float = 0.0                  # zeropoint stars must be EXPECTED (nominal zeropoint,
                                             # this frame's sky noise) to reach this S/N; 0: off
    neighbour_dv: float = 2.5                # neighbours fainter by more than this don't count
    max_contamination: float = 0.05          # flagged BLENDED above this: other catalog stars'
                                             # light in the aperture, or the bias left after
                                             # the annulus median, over the star's own flux
                                             # (0.05 ~ 0.05 mag)
    forced: bool = True                      # measure every star at the fitted astrometric
                                             # prediction (when the fit is good): centroids of
                                             # faint stars climb noise peaks and read bright
    # the photometric model m = V - ZP + k (X - 1) + c (B - V) + c2 (B - V - 0.6)^2 + v(zd)
    # + the tilt and ellipticity of v, see stages/photmodel.py;
    # zp_nominal is its clear-sky ZP at the zenith (X = 1)
    ext_coef: float = 0.15                   # site default extinction k, mag/airmass (V band)
    colour_term: float = 0.0                 # camera colour term c, mag per mag of B-V
    colour_term_err: float = 0.0             # its 1-sigma error (0: not measured)
    vignetting: tuple[float, ...] = ()       # v(zd) coefficients of (zd/90)^2, (zd/90)^4, ..., mag
    colour_quad: float = 0.0                 # colour curvature c2, mag per mag^2 of (B-V - 0.6)
    vignetting_tilt: tuple[float, ...] = ()  # [t_n, t_e]: v's tilt, mag,
                                             # (zd/90) (t_n cos az + t_e sin az); empty: none
    vignetting_ellipse: tuple[float, ...] = ()  # [e_c, e_s]: v's ellipticity, mag,
                                             # (zd/90)^2 (e_c cos 2az + e_s sin 2az); empty: none
    ext_min_stars: int = 30                  # fewer clear model stars: k is the default
    ext_min_airmass_span: float = 0.5        # ... or a smaller airmass span (10-90 percentile)
    model_clip_sigma: float = 3.0            # model fit: clip residuals beyond this, robust sigma
    model_faint_clip_mag: float = 0.3        # ... and stars this much fainter than the fit (cloud)
    model_floor_mag: float = 0.02            # model fit weights 1/(err^2 + floor^2), mag
    model_vmax: float = 5.0                  # model fit on stars to this V: fainter ones read
                                             # bright (centroids on noise, unlisted neighbours)
    model_cloud_radius_deg: float = 15.0     # model fit's cloud test: a star's neighbours are the
                                             # model stars within this, deg (0: no cloud test) ...
    model_cloud_sigma: float = 3.0           # ... it is left out when their median residual is
                                             # fainter than this many errors of that median ...
    model_cloud_min_mag: float = 0.05        # ... and fainter than this, mag ...
    model_cloud_min_stars: int = 5           # ... judged with at least this many neighbours
    missing_bv: float = 0.6                  # B-V assumed for stars without one (transparency only)


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
    texture_min_blocks: int = 3              # fewer unmasked blocks in a cell: no texture evidence
                                             # (the confidence counts the blocks: few, less sure)
    texture_cloud: float = 0.04              # cloud: block residual RMS above this fraction of sky
    texture_scatter: float = 0.3             # relative error of a cell's texture amplitude (the
                                             # MAD's own error from few blocks adds to it)
    texture_clear_conf_max: float = 0.6      # a smooth sky says clear with at most this confidence
    texture_clear_max_cloud: float = 0.5     # ... and only when at most this fraction of the
                                             # cells judged by stars is cloud ...
    texture_prior_min_cells: int = 10        # ... when stars judge at least this many cells
    lost_stars_conf: float = 0.6             # confidence of a cloud call from stars the failed
                                             # astrometry did not find on a night sky
    min_confidence: float = 0.3              # a cell whose best evidence is less sure is unknown
    cloud_corr_deg: float = 7.3              # correlation length of clouds on the sky, deg: a sky
                                             # cell without evidence borrows its neighbours' at
                                             # confidence x exp(-d^2 / 2 L^2) (0: none); one cell
                                             # of Nside 8, sqrt(4 pi / 768) rad, so it reaches its
                                             # next neighbours only (sky cover correlates over far
                                             # more of a sky dome: J. Appl. Meteor. 30, 1037, 1991)
    haze_min: float = 0.8                    # a grey offset of the whole frame down to this is
                                             # haze (reported as TRANSGRY), deeper is cloud
    min_voting_stars: int = 10               # fewer voting stars on a bright sky: 'sky too bright'


@dataclasses.dataclass(frozen=True)
class SkyStatus:
    """What lights the sky: SKYSTAT 'dark', 'moon', 'twilight' or 'day'."""

    sun_day_alt_deg: float = -0.833          # Sun above this: day (sunrise/sunset, the
                                             # almanac's refraction + semi-diameter)
    sun_twilight_alt_deg: float = -18.0      # Sun above this: twilight (astronomical)
    moon_min_alt_deg: float = 0.0            # Moon above this altitude ...
    moon_min_illum: float = 0.1              # ... and more illuminated than this: 'moon'
    dark_sky_mag: float = 20.5               # zenith sky fainter than this (V mag/arcsec^2) on a
                                             # twilight or moon frame: 'dark' (light negligible)
    zenith_zd_deg: float = 30.0              # sky level measured within this zenith distance


@dataclasses.dataclass(frozen=True)
class Streaks:
    """Satellite and aircraft streak detection (--detect_streaks)."""

    horizon_margin_px: float = 15.0          # search the lens circle less this margin, pixels
    bkg_kernel_px: int = 23                  # running-median width of the background, pixels
    bkg_step_px: int = 8                     # grid step of that median, pixels
    mask_grow_px: float = 12.0               # not searched within this of the obstruction mask
    moon_radius_deg: float = 20.0            # nor within this of the Moon, deg, ...
    halo_sky_factor: float = 1.5             # ... where the sky is this many times the median
    clip_sigma: float = 3.0                  # high-passed significance clipped to +-this
    bin_px: int = 6                          # block size of the line search, pixels
    window_min_px: int = 64                  # shortest window summed along a line, pixels
    window_max_px: int = 256                 # longest (doubling from the shortest), pixels
    angle_step_deg: float = 1.5              # angle step of the line search, deg
    search_snr: float = 9.0                  # a window's summed S/N must reach this
    max_candidates: int = 40                 # at most this many windows are measured
    refine_chunk_px: int = 24                # ridge fitted in chunks this long (half for arcs)
    max_curvature_px: float = 2.0            # sagitta off a line's and a great circle's, pixels
    max_width_px: float = 5.0                # a wider FWHM is not a streak, pixels
    min_length_px: int = 64                  # shortest streak, pixels
    line_gap_px: int = 12                    # largest gap bridged along a streak, pixels
    star_mask_px: int = 3                    # catalog stars are blanked within this radius
    star_mask_vmax: float = 6.5              # ... when brighter than this V (the catalog's depth)
    walk_sigma: float = 1.0                  # core over sides test: core beats this, noise sigma
    width_half_px: int = 8                   # half-width of the profile across the line
    min_core_sigma: float = 0.5              # core below this many local noise sigma: not a streak
    dedupe_px: float = 8.0                   # a streak along a longer one within this is a piece
    noise_block_px: int = 32                 # tiles of the local noise map, pixels
    side_contrast: float = 3.0               # core must beat both sides by this factor
    end_bin_px: int = 16                     # ends: the level is the median of bins this long, px
    end_iterations: int = 3                  # ends: level re-measured this many times
    end_outlier_sigma: float = 3.0           # ends: samples this far off count 0, sigma


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
    zp_true: float | None = None             # true total-flux zeropoint at the zenith; None:
                                             # from the config
    ext_coef: float = 0.0                    # true extinction k rendered, mag/airmass
    colour_term: float = 0.0                 # true colour term c rendered, mag per mag B-V
    vignetting: tuple[float, ...] = ()       # true v(zd) coefficients rendered, mag
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
    skystat: SkyStatus = SkyStatus()
    simulation: Simulation | None = None
    calibration: dict | None = None          # how the configuration was made (free form)
    source: str = ""                         # file it was read from (set by the loader)

    def resolve(self, relpath):
        """Path of a file named in the configuration, relative to its YAML."""
        base = Path(self.source).parent if self.source else ETC_DIR
        return base / relpath


# ------------------------------------------------------- key descriptions
#: One line per configuration key (dotted path), with units and conventions:
#: the comments written beside every key by :func:`allsky_camera.camera.camera_yaml.dump`
#: (``ac_calibrate`` writes its YAML with them).  Every field of the dataclasses
#: above needs one (a test checks).
KEY_DOCS = {
    "name": "short name of the camera (its YAML's stem)",
    "description": "one line for humans",
    "sensor": "detector geometry and data range",
    "sensor.nx": "image width (x, columns), pixels",
    "sensor.ny": "image height (y, rows), pixels",
    "sensor.saturation_adu": "raw level at or above which a pixel is saturated, ADU",
    "sensor.dark_region": "[x0, x1, y0, y1] never illuminated, pixels, half-open (null: none)",
    "sensor.bias_adu": "dark+bias level when there is no dark region, ADU",
    "sensor.bad_pixel_mask": "FITS image, nonzero = bad; path relative to this YAML",
    "sensor.obstruction_mask": "FITS image, nonzero = sky hidden; relative to this YAML",
    "sensor.hot_pixel_sigma": "repair pixels this many noise sigma above all 8 neighbours",
    "sensor.hot_pixel_ratio": "... and this many times their brightest neighbour's excess",
    "header": "where the exposure's metadata live in the raw FITS header",
    "header.exptime_card": "card holding the exposure time, s (null: none, give exptime_s)",
    "header.dateobs_card": "card holding the start time (or its date, see timeobs_card)",
    "header.timeobs_card": "card holding the time of day when dateobs_card has the date only",
    "header.time_format": "strptime format of the start time, any case (null: ISO 8601)",
    "header.utc_offset_hours": "DATE-OBS clock minus UTC, hours (MDM: -7)",
    "header.exptime_s": "exposure time when there is no exposure-time card, s",
    "header.instrume": "INSTRUME value that identifies this camera (null: none)",
    "header.max_exptime_s": "longer exposure times are refused as corrupt, s",
    "site": "observatory position and the air for refraction",
    "site.lon_deg": "east longitude, deg (west negative)",
    "site.lat_deg": "geodetic latitude, deg",
    "site.height_m": "height above the WGS84 ellipsoid, m",
    "site.pressure_bar": "air pressure for refraction, bar (0: no refraction)",
    "site.temperature_c": "air temperature for refraction, deg C",
    "site.humidity": "relative humidity for refraction, 0-1",
    "site.wavelength_um": "effective wavelength for refraction (V band), micron",
    "site.prefer_header": "take the site from the frame's header cards when present",
    "astrometry": "camera model template and how it is refitted on each exposure",
    "astrometry.model": "the static template (pixels 0-based, centres at integers)",
    "astrometry.model.x0": "optical-axis pixel x (column), 0-based",
    "astrometry.model.y0": "optical-axis pixel y (row), 0-based",
    "astrometry.model.rot_deg": "image rotation, deg, from +x toward +y",
    "astrometry.model.parity": "+1: sky seen from below (east left of north); -1: mirrored",
    "astrometry.model.projection": "poly, equidistant, equisolid, stereographic or orthographic",
    "astrometry.model.coeffs": "radial coefficients of the projection, pixels (see camera_model)",
    "astrometry.model.scale": "multiplicative radial scale (1 for a template)",
    "astrometry.model.tilt_n_deg": "tilt of the optical axis from the zenith toward north, deg",
    "astrometry.model.tilt_e_deg": "tilt of the optical axis from the zenith toward east, deg",
    "astrometry.model.version": "camera model format version",
    "astrometry.safe_radius_px": "stars farther than this from the zenith pixel are flagged, px",
    "astrometry.fit_params": "model parameters refitted on every exposure",
    "astrometry.fit_vmax": "V limit of the bright stars of the first fit, mag",
    "astrometry.search_half_px": "half-width of the first-pass search box, pixels",
    "astrometry.clip_sigma": "residual clip of the robust fit, sigma",
    "astrometry.min_stars": "fewer matched stars: keep the template",
    "astrometry.gate_match_px": "gate: a predicted bright star is found within this, pixels",
    "astrometry.gate_min_fraction": "gate: fewest found / predicted bright stars (0-1)",
    "astrometry.gate_max_rms_px": "gate: largest RMS residual of the found stars, pixels",
    "astrometry.gate_min_rank_corr": "gate: lowest rank correlation of their flux with -V",
    "astrometry.gate_max_scale_dev": "gate: largest |radial scale - 1| of an accepted model",
    "astrometry.gate_max_tilt_deg": "gate: largest axis tilt of an accepted model, deg",
    "astrometry.gate_cell_az_deg": "gate: azimuth width of its sky cells, deg",
    "astrometry.gate_cell_alt_deg": "gate: altitude height of its sky cells, deg",
    "astrometry.gate_cell_min_pred": "gate: fewest predicted stars of a judged sky cell",
    "astrometry.gate_clear_cell_fraction": "gate: found fraction of a clear sky cell (0-1)",
    "astrometry.gate_min_clear_stars": "gate: below gate_min_fraction, fewest stars found "
                                       "in clear cells (partly cloudy sky)",
    "astrometry.recover": "search wider when the template fails the gate",
    "astrometry.recover_offset_px": "recovery: zenith searched this far from the template, px",
    "astrometry.recover_step_px": "recovery: cell of the zenith-shift vote, pixels",
    "astrometry.recover_vmax": "recovery: V limit of the stars matched, mag",
    "astrometry.recover_min_alt_deg": "recovery: lowest altitude of the stars matched, deg",
    "astrometry.recover_n_detect": "recovery: brightest detections matched",
    "centroid": "iterative windowed centroiding",
    "centroid.box_half_px": "half-width of the centroid box, pixels",
    "centroid.window_sigma_px": "Gaussian window sigma, pixels",
    "centroid.n_iter": "centroid iterations",
    "centroid.max_shift_px": "larger shifts from the prediction are flagged, pixels",
    "centroid.edge_margin_px": "stars closer to the image edge are flagged, pixels",
    "centroid.blend_radius_px": "centroid nearer another star's prediction is flagged, px",
    "centroid.saturation_radius_px": "a saturated raw pixel this near is flagged, pixels",
    "centroid.min_snr": "windowed S/N below this: not detected (flag FAINT)",
    "photometry": "aperture photometry and zeropoints",
    "photometry.aper_radius_px": "photometric aperture radius, pixels",
    "photometry.annulus_px": "sky annulus [inner, outer] radius, pixels",
    "photometry.zp_nominal": "clear-sky zeropoint at the zenith (X = 1), mag for 1 ADU/s",
    "photometry.zp_nominal_scale": "'aperture' or 'total': the flux zp_nominal refers to",
    "photometry.vmax": "faintest catalog star used, V mag",
    "photometry.isolation_deg": "stars with a neighbour nearer than this are flagged, deg",
    "photometry.moon_exclusion_deg": "stars nearer the Moon than this are flagged, deg",
    "photometry.planet_exclusion_deg": "stars nearer Venus, Mars, Jupiter or Saturn are "
                                       "flagged PLANET, deg",
    "photometry.apcor_radius_px": "'total flux' aperture of the aperture correction, pixels",
    "photometry.apcor_vmax": "V limit of the aperture-correction stars, mag",
    "photometry.apcor_min_stars": "fewer: use apcor_default_mag",
    "photometry.apcor_default_mag": "total minus aperture zeropoint when not measured, mag",
    "photometry.apcor_cloud_clip_mag": "aperture-correction stars fainter than the median "
                                       "(clear-sky model) by more than this: clouded, mag",
    "photometry.min_stars_zp": "fewer good stars: no zeropoint",
    "photometry.zp_vmax": "faintest zeropoint star, V mag (null: vmax)",
    "photometry.zp_min_snr": "zeropoint stars must be expected to reach this S/N (0: off)",
    "photometry.neighbour_dv": "neighbours fainter by more than this do not count, mag",
    "photometry.max_contamination": "flagged BLENDED above this: other stars' light in the "
                                    "aperture (or its bias after the annulus) over its own flux",
    "photometry.forced": "measure every star at the fitted prediction (faint centroids read "
                         "bright)",
    "photometry.ext_coef": "site default extinction k, mag/airmass (fitted when it can be)",
    "photometry.colour_term": "camera colour term c, mag per mag of B-V",
    "photometry.colour_term_err": "its 1-sigma error, mag/mag (0: not measured)",
    "photometry.vignetting": "v(zd) coefficients of (zd/90)^2, (zd/90)^4, ..., mag",
    "photometry.colour_quad": "colour curvature c2, mag per mag^2 of (B-V - 0.6)",
    "photometry.vignetting_tilt": "[t_n, t_e]: v's tilt toward N, E at zd 90, mag ([]: none)",
    "photometry.vignetting_ellipse": "[e_c, e_s]: v's cos 2az, sin 2az at zd 90, mag ([]: none)",
    "photometry.ext_min_stars": "fewer clear model stars: k is the site default",
    "photometry.ext_min_airmass_span": "... or a smaller airmass span (10-90 percentile)",
    "photometry.model_clip_sigma": "model fit: clip residuals beyond this, robust sigma",
    "photometry.model_faint_clip_mag": "... and stars this much fainter than the fit, mag",
    "photometry.model_floor_mag": "model fit weights 1/(err^2 + floor^2), mag",
    "photometry.model_vmax": "model fit on stars to this V, mag (fainter read bright)",
    "photometry.model_cloud_radius_deg": "cloud test: neighbours within this, deg (0: none)",
    "photometry.model_cloud_sigma": "... out when their median is this many errors faint",
    "photometry.model_cloud_min_mag": "... and fainter than this, mag",
    "photometry.model_cloud_min_stars": "... with at least this many neighbours",
    "photometry.missing_bv": "B-V assumed for stars without one (transparency only), mag",
    "sbmap": "sky-brightness map",
    "sbmap.kernel_px": "median filter width, pixels (odd)",
    "sbmap.step_px": "grid step of the fast median, pixels",
    "transparency": "per-star transparency, the cloud map and the clear fraction",
    "transparency.nside": "HEALPix Nside of the cloud cells and maps (power of 2)",
    "transparency.clip": "per-star transparency clipped to [low, high]",
    "transparency.min_expected_snr": "stars that should reach a lower S/N do not vote",
    "transparency.clear_threshold": "a cell is clear above this median transparency",
    "transparency.cloudy_warning": "warn when the clear fraction is below this",
    "transparency.haze_min": "a grey offset of the frame down to this is haze (TRANSGRY)",
    "transparency.min_voting_stars": "fewer voting stars on a twilight/day sky: too bright",
    "transparency.min_cell_stars": "fewer voting stars in a cell: no star evidence there",
    "transparency.star_scatter": "per-star transparency scatter on a clear sky (star confidence)",
    "transparency.texture_block_px": "sky texture: block side, pixels (a multiple of the stride)",
    "transparency.texture_stride_px": "sky texture: blocks sampled every this many pixels",
    "transparency.texture_model_blocks": "smooth model: mean of the 4 blocks this // 2 away",
    "transparency.texture_ring_deg": "median residual removed in zenith-distance rings, deg",
    "transparency.texture_mask_grow_blocks": "masked blocks grow by this many blocks",
    "transparency.texture_min_blocks": "fewer unmasked blocks in a cell: no texture evidence "
                                      "(the confidence falls with fewer blocks)",
    "transparency.texture_cloud": "cloud: block residual RMS above this fraction of the sky",
    "transparency.texture_scatter": "relative error of a cell's texture amplitude, beyond the "
                                   "MAD's own error from few blocks",
    "transparency.texture_clear_conf_max": "a smooth sky says clear with at most this confidence",
    "transparency.texture_clear_max_cloud": "... only if at most this fraction of star cells "
                                            "is cloud",
    "transparency.texture_prior_min_cells": "... when stars judge at least this many cells",
    "transparency.lost_stars_conf": "confidence of cloud where a failed astrometry lost the stars",
    "transparency.min_confidence": "a cell whose best evidence is less sure (0-1) is unknown",
    "transparency.cloud_corr_deg": "correlation length of clouds, deg: a sky cell without "
                                   "evidence borrows its neighbours' at confidence x "
                                   "exp(-d^2/2L^2); 0: none",
    "skystat": "SKYSTAT: dark, moon, twilight or day",
    "skystat.sun_day_alt_deg": "Sun above this altitude: day, deg (sunrise/sunset)",
    "skystat.sun_twilight_alt_deg": "Sun above this: twilight, deg (astronomical)",
    "skystat.moon_min_alt_deg": "Moon above this altitude, deg ...",
    "skystat.moon_min_illum": "... and more lit than this fraction: moon",
    "skystat.dark_sky_mag": "zenith sky fainter than this: dark anyway, V mag/arcsec^2",
    "skystat.zenith_zd_deg": "sky level from star annuli within this zenith distance, deg",
    "streaks": "satellite and aircraft streaks (--detect_streaks)",
    "streaks.horizon_margin_px": "search the lens circle less this margin, pixels",
    "streaks.bkg_kernel_px": "running-median width of the background, pixels",
    "streaks.bkg_step_px": "grid step of that median, pixels",
    "streaks.mask_grow_px": "not searched within this of the obstruction mask, pixels",
    "streaks.moon_radius_deg": "nor within this of the Moon when it is up, deg, ...",
    "streaks.halo_sky_factor": "... where the sky is this many times the median sky",
    "streaks.clip_sigma": "significance clipped to +-this for the line search, sigma",
    "streaks.bin_px": "block size of the line search, pixels",
    "streaks.window_min_px": "shortest window summed along a line, pixels",
    "streaks.window_max_px": "longest window (doubling from the shortest), pixels",
    "streaks.angle_step_deg": "angle step of the line search, deg",
    "streaks.search_snr": "a window's summed S/N must reach this",
    "streaks.max_candidates": "at most this many windows are measured",
    "streaks.refine_chunk_px": "the ridge is fitted in chunks this long (half for arcs), pixels",
    "streaks.max_curvature_px": "a ridge's sagitta off a line's and a great circle's, pixels",
    "streaks.max_width_px": "a wider FWHM is not a streak, pixels",
    "streaks.min_length_px": "shortest streak, pixels",
    "streaks.line_gap_px": "largest gap bridged along a streak, pixels",
    "streaks.star_mask_px": "catalog stars are blanked within this radius, pixels",
    "streaks.star_mask_vmax": "... when brighter than this V, mag (stars confuse faint trails)",
    "streaks.walk_sigma": "the core must also beat its sides by this, sigma",
    "streaks.width_half_px": "half-width of the profile across the line, pixels",
    "streaks.min_core_sigma": "core below this many local noise sigma: not a streak",
    "streaks.dedupe_px": "a streak along a longer one within this is a piece, pixels",
    "streaks.noise_block_px": "tiles of the local noise map, pixels",
    "streaks.side_contrast": "the core must beat both sides by this factor",
    "streaks.end_bin_px": "ends: the streak's level is the median of bins this long, pixels",
    "streaks.end_iterations": "ends: the level is re-measured on the fitted segment this often",
    "streaks.end_outlier_sigma": "ends: samples this many sigma above the level or below 0 "
                                 "count 0 (stars on the line)",
    "simulation": "what the simulator renders for this camera (not the pipeline)",
    "simulation.exptime_s": "exposure time, s",
    "simulation.gain_e_per_adu": "electrons per ADU",
    "simulation.read_noise_e": "read noise, electrons",
    "simulation.bias_adu": "dark+bias level, ADU",
    "simulation.sky_zenith_mag": "sky at the zenith, V mag/arcsec^2",
    "simulation.sky_horizon_mag": "sky at the horizon, V mag/arcsec^2",
    "simulation.fwhm_zenith_px": "PSF FWHM at the zenith, pixels",
    "simulation.fwhm_horizon_px": "PSF FWHM at the horizon, pixels",
    "simulation.hot_pixel_fraction": "fraction of pixels that are hot",
    "simulation.vmax": "faintest star rendered, V mag",
    "simulation.zp_true": "true total-flux zeropoint, mag (null: from the config)",
    "simulation.ext_coef": "true extinction k rendered, mag/airmass",
    "simulation.colour_term": "true colour term c rendered, mag per mag of B-V",
    "simulation.vignetting": "true v(zd) coefficients rendered, mag",
    "simulation.horizon_alt_deg": "sky below this altitude is dark (lens edge), deg",
    "simulation.dateobs": "default DATE-OBS, ISO 8601 on the camera's clock",
    "calibration": "how this configuration was made (not used by the pipeline)",
    "calibration.frame": "the clear frame solved",
    "calibration.time": "its start time, UTC",
    "calibration.n_matched": "stars matched in the final fit",
    "calibration.rms_px": "residual RMS of the final fit, pixels",
    "calibration.projection": "the fisheye family that fitted best",
    "calibration.tool": "program and version that wrote this file",
    "calibration.made": "date written",
    "calibration.zp_stars": "stars of the nominal zeropoint",
    "calibration.phot_frames": "clear frames of the photometric terms (--photometry)",
    "calibration.phot_zp_frames": "their clear-sky zenith zeropoints, mag",
    "calibration.phot_k_held": "extinction held there, mag/airmass (v absorbs the rest)",
    "calibration.phot_n_stars": "stars of the photometric fit",
    "calibration.phot_rms_mag": "their robust scatter about the model, mag",
    "calibration.phot_made": "date the photometric terms were measured",
}


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


#: Allowed ranges of the numeric keys, ``"section.key": (low, high)``, both
#: inclusive; ``">0"`` as low means strictly positive.  Every other number of
#: a configuration must merely be finite.  Sources: geometry (latitudes,
#: fractions), the physics of the air (ERFA refraction, eraRefco, needs
#: 0-1 humidity and a pressure below 1.2 bar anywhere on Earth), UTC offsets
#: of real time zones (-12 to +14 h), and what each algorithm needs to work
#: at all (a centroid box of 1 pixel at least).
RANGES = {
    "sensor.nx": (1, None), "sensor.ny": (1, None),
    "sensor.saturation_adu": (">0", None), "sensor.hot_pixel_sigma": (">0", None),
    "sensor.hot_pixel_ratio": (">0", None),
    "header.utc_offset_hours": (-14.0, 14.0), "header.max_exptime_s": (">0", None),
    "site.lon_deg": (-180.0, 360.0), "site.lat_deg": (-90.0, 90.0),
    "site.height_m": (-1000.0, 10000.0), "site.pressure_bar": (0.0, 1.2),
    "site.temperature_c": (-100.0, 60.0), "site.humidity": (0.0, 1.0),
    "site.wavelength_um": (">0", None),
    "astrometry.safe_radius_px": (">0", None), "astrometry.search_half_px": (1, None),
    "astrometry.clip_sigma": (">0", None), "astrometry.min_stars": (1, None),
    "astrometry.model.scale": (">0", None),
    "centroid.box_half_px": (1, None), "centroid.window_sigma_px": (">0", None),
    "centroid.n_iter": (1, None), "centroid.max_shift_px": (">0", None),
    "centroid.edge_margin_px": (0, None), "centroid.blend_radius_px": (0.0, None),
    "centroid.saturation_radius_px": (0, None), "centroid.min_snr": (0.0, None),
    "photometry.aper_radius_px": (">0", None), "photometry.isolation_deg": (0.0, 180.0),
    "photometry.moon_exclusion_deg": (0.0, 180.0), "photometry.apcor_radius_px": (">0", None),
    "photometry.apcor_min_stars": (1, None),
    "photometry.apcor_cloud_clip_mag": (">0", None), "photometry.min_stars_zp": (1, None),
    "photometry.zp_min_snr": (0.0, None), "photometry.neighbour_dv": (0.0, None),
    "photometry.max_contamination": (">0", None),
    "sbmap.step_px": (1, None),
    "transparency.min_expected_snr": (0.0, None), "transparency.clear_threshold": (">0", None),
    "transparency.cloudy_warning": (0.0, 1.0),
    "transparency.haze_min": (">0", 1.0), "transparency.min_voting_stars": (0, None),
    "transparency.min_cell_stars": (1, None), "transparency.star_scatter": (">0", None),
    "transparency.texture_block_px": (2, None), "transparency.texture_stride_px": (1, None),
    "transparency.texture_model_blocks": (2, None), "transparency.texture_ring_deg": (">0", 90.0),
    "transparency.texture_mask_grow_blocks": (0, None),
    "transparency.texture_min_blocks": (1, None), "transparency.texture_cloud": (">0", None),
    "transparency.texture_scatter": (0.0, None),
    "transparency.texture_clear_conf_max": (0.0, 1.0),
    "transparency.texture_clear_max_cloud": (0.0, 1.0),
    "transparency.texture_prior_min_cells": (0, None),
    "transparency.lost_stars_conf": (0.0, 1.0), "transparency.min_confidence": (0.0, 1.0),
    "transparency.cloud_corr_deg": (0.0, 180.0),
    "photometry.ext_coef": (0.0, None), "photometry.ext_min_stars": (1, None),
    "photometry.ext_min_airmass_span": (0.0, None), "photometry.model_clip_sigma": (">0", None),
    "photometry.model_faint_clip_mag": (">0", None), "photometry.model_floor_mag": (">0", None),
    "photometry.model_cloud_radius_deg": (0.0, 180.0), "photometry.model_cloud_sigma": (">0", None),
    "photometry.model_cloud_min_mag": (0.0, None), "photometry.model_cloud_min_stars": (1, None),
    "skystat.moon_min_illum": (0.0, 1.0), "skystat.zenith_zd_deg": (">0", 90.0),
    "streaks.horizon_margin_px": (0.0, None), "streaks.bkg_kernel_px": (1, None),
    "streaks.bkg_step_px": (1, None), "streaks.mask_grow_px": (0.0, None),
    "streaks.moon_radius_deg": (0.0, 180.0), "streaks.halo_sky_factor": (">0", None),
    "streaks.clip_sigma": (">0", None), "streaks.bin_px": (1, None),
    "streaks.window_min_px": (1, None), "streaks.window_max_px": (1, None),
    "streaks.angle_step_deg": (">0", 90.0), "streaks.search_snr": (">0", None),
    "streaks.max_candidates": (1, None), "streaks.refine_chunk_px": (1, None),
    "streaks.max_curvature_px": (0.0, None), "streaks.max_width_px": (">0", None),
    "streaks.min_length_px": (1, None), "streaks.line_gap_px": (0, None),
    "streaks.star_mask_px": (0, None), "streaks.walk_sigma": (0.0, None),
    "streaks.width_half_px": (1, None), "streaks.min_core_sigma": (0.0, None),
    "streaks.dedupe_px": (0.0, None), "streaks.noise_block_px": (1, None),
    "streaks.side_contrast": (">0", None),
    "streaks.end_bin_px": (1, None), "streaks.end_iterations": (1, None),
    "streaks.end_outlier_sigma": (">0", None),
    "simulation.exptime_s": (">0", None), "simulation.gain_e_per_adu": (">0", None),
    "simulation.read_noise_e": (0.0, None), "simulation.fwhm_zenith_px": (">0", None),
    "simulation.fwhm_horizon_px": (">0", None), "simulation.hot_pixel_fraction": (0.0, 1.0),
}


def _numbers(obj, prefix):
    """``(dotted key, value)`` of every number in a configuration, depth first."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v):
            yield from _numbers(v, key + ".")
        elif isinstance(v, tuple):
            yield from ((f"{key}[{i}]", x) for i, x in enumerate(v)
                        if isinstance(x, (int, float)) and not isinstance(x, bool))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield key, v


def check_range(value, key, where, low=None, high=None):
    """Raise ConfigError unless ``value`` is finite and within ``[low, high]``.

    ``low`` may be ``">0"`` (strictly positive).  The message names the
    value and the allowed range, i.e. what to change.
    """
    import math

    if not math.isfinite(value):
        raise ConfigError(f"{where}: {key} = {value!r} is not a finite number; give a number")
    lo_open = low == ">0"
    lo = 0 if lo_open else low
    bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (
        high is not None and value > high)
    if bad:
        left = "(0" if lo_open else ("(-inf" if lo is None else f"[{lo:g}")
        right = "inf)" if high is None else f"{high:g}]"
        raise ConfigError(f"{where}: {key} = {value!r} is outside {left}, {right}; "
                          "set it within that range")


def _validate_ranges(cam, where):
    for key, value in _numbers(cam, ""):
        low, high = RANGES.get(key, (None, None))
        check_range(value, key, where, low, high)


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
    _validate_ranges(cam, where)
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
    for key in ("vignetting_tilt", "vignetting_ellipse"):
        if len(getattr(p, key)) not in (0, 2):
            raise ConfigError(f"{where}: photometry.{key} {list(getattr(p, key))} must be two "
                              "values in mag, or [] for none")
    if p.zp_nominal_scale not in ("aperture", "total"):
        raise ConfigError(f"{where}: photometry.zp_nominal_scale must be 'aperture' or "
                          f"'total', not {p.zp_nominal_scale!r}")
    if cam.sbmap.kernel_px < 3 or cam.sbmap.kernel_px % 2 == 0:
        raise ConfigError(f"{where}: sbmap.kernel_px must be an odd integer >= 3")
    from allsky_camera.stages.healpix import check_nside

    try:
        check_nside(cam.transparency.nside)
    except Exception as err:
        raise ConfigError(f"{where}: transparency.nside: {err}") from err
    if len(cam.transparency.clip) != 2 or cam.transparency.clip[0] >= cam.transparency.clip[1]:
        raise ConfigError(f"{where}: transparency.clip must be [low, high] with low < high")
    ast = cam.astrometry
    for key in ("gate_match_px", "gate_max_rms_px", "recover_step_px", "gate_cell_az_deg",
                "gate_cell_alt_deg", "gate_cell_min_pred", "gate_min_clear_stars"):
        if not getattr(ast, key) > 0:
            raise ConfigError(f"{where}: astrometry.{key} = {getattr(ast, key)} must be > 0")
    for key in ("gate_min_fraction", "gate_clear_cell_fraction"):
        if not 0.0 <= getattr(ast, key) <= 1.0:
            raise ConfigError(f"{where}: astrometry.{key} = {getattr(ast, key)} "
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


def camera_dirs(extra=(), *, env=None):
    """Folders searched for a camera named without a path, first match wins.

    Parameters
    ----------
    extra : sequence of str or Path
        Folders given on the command line (``--camera-dir``), searched first.
    env : str, optional
        Value of ``$ALLSKY_CAMERA_PATH`` (default: read from the environment):
        folders separated by ``os.pathsep``, searched next.

    Returns
    -------
    list of Path
        ``extra``, then the environment's folders, then :data:`ETC_DIR` (the
        stock configurations), without repeats.

    Raises
    ------
    ConfigError
        A folder given that is not a directory.
    """
    env = os.environ.get(CAMERA_PATH_ENV, "") if env is None else env
    given = [(Path(d).expanduser(), "--camera-dir") for d in extra]
    given += [(Path(d).expanduser(), f"${CAMERA_PATH_ENV}") for d in env.split(os.pathsep) if d]
    for d, src in given:
        if not d.is_dir():
            raise ConfigError(f"{d}: camera folder (from {src}) is not a directory; "
                              "give a folder of camera YAML files")
    dirs = []
    for d in [d for d, _ in given] + [ETC_DIR]:
        if d.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(d)
    return dirs


def camera_files(dirs=None):
    """Camera configurations found by name: ``{name: path}``.

    A name in an earlier folder of ``dirs`` hides the same name in a later
    one (a user's ``MDM.yaml`` replaces the stock one), as on a shell's PATH.

    Parameters
    ----------
    dirs : list of Path, optional
        Folders to search, in order (default: :func:`camera_dirs`).
    """
    found = {}
    for d in camera_dirs() if dirs is None else dirs:
        for p in sorted(Path(d).glob("*.yaml")):
            found.setdefault(p.stem, p)
    return dict(sorted(found.items()))


def camera_path(name_or_path, dirs=None):
    """Path of a configuration given a camera name or a YAML path.

    A name (no ``.yaml`` suffix, no directory) is looked for in ``dirs``
    (default: :func:`camera_dirs`); ``None`` if it is in none of them.
    """
    p = Path(name_or_path)
    if p.suffix.lower() in (".yaml", ".yml") or os.sep in str(name_or_path):
        return p
    return camera_files(dirs).get(str(name_or_path))


def load_camera(name_or_path, dirs=None):
    """Read and validate a camera configuration.

    Parameters
    ----------
    name_or_path : str or Path
        A camera name (``"MDM"``), looked for in ``dirs``, or a path to a
        YAML file.
    dirs : list of Path, optional
        Folders searched for a name (default: :func:`camera_dirs`: the
        ``$ALLSKY_CAMERA_PATH`` folders, then the stock configurations).

    Returns
    -------
    Camera
    """
    import yaml

    dirs = camera_dirs() if dirs is None else dirs
    path = camera_path(name_or_path, dirs)
    if path is None or not path.is_file():
        known = ", ".join(camera_files(dirs))
        where = ", ".join(str(d) for d in dirs)
        raise ConfigError(f"{path or name_or_path}: no such camera configuration "
                          f"(known cameras: {known}, in {where}; or give a YAML path)")
    try:
        with open(path) as fh:
            d = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err.__class__.__name__}: "
                          f"{str(err).splitlines()[0]})") from err
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (name:, "
                          f"sensor:, ...), not a {type(d).__name__}; see etc/MDM.yaml")
    return camera_from_dict(d, source=path)


def select_camera(header, shape, dirs=None):
    """The configuration that matches a raw frame.

    The one whose ``header.instrume`` equals the frame's INSTRUME card, else
    the one of the same sensor size (the first by name, with a warning naming
    the others), else MDM.

    Parameters
    ----------
    header : astropy.io.fits.Header
    shape : tuple of int
        ``(ny, nx)`` of the raw image.
    dirs : list of Path, optional
        Folders searched (default: :func:`camera_dirs`).

    Returns
    -------
    camera : Camera
    why : str
        How it was chosen, for the log.

    Raises
    ------
    ConfigError
        Two configurations declare the frame's INSTRUME: the choice is the
        user's (``--camera``), not the pipeline's.
    """
    ny, nx = shape
    inst = str(header.get("INSTRUME", "")).strip()
    dirs = camera_dirs() if dirs is None else dirs
    cams = [load_camera(p) for p in camera_files(dirs).values()]
    same = [c for c in cams if inst and c.header.instrume and c.header.instrume.strip() == inst]
    if len(same) > 1:
        raise ConfigError(f"INSTRUME = {inst!r} is declared by {len(same)} camera "
                          f"configurations ({', '.join(c.source for c in same)}): give "
                          "--camera NAME, or change header.instrume in all but one")
    if same:
        return same[0], f"INSTRUME = {inst!r}"
    sized = [c for c in cams if (c.sensor.nx, c.sensor.ny) == (nx, ny)]
    if len(sized) > 1:
        log.warning("image size %dx%d fits %d camera configurations (%s); using %s "
                    "(give --camera to choose)", nx, ny, len(sized),
                    ", ".join(c.source for c in sized), sized[0].name)
    if sized:
        return sized[0], f"image size {nx}x{ny}"
    return load_camera(DEFAULT_CAMERA, dirs), "default"


def known_cameras(dirs=None):
    """Names of the configurations found (see :func:`camera_files`)."""
    return list(camera_files(dirs))


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
