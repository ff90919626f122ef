"""What small, cheap all-sky cameras add to the sky: planets, a dome, burned-in text.

Rendering pieces that :func:`allsky_camera.sim.simulate.simulate` applies when
given an :class:`Extras`:

* **planets** (:func:`planet_sources`): Venus, Mars, Jupiter and Saturn as
  point sources with the stars' PSF, placed by
  :func:`allsky_camera.camera.coords.planets_altaz`, with full-phase V magnitudes
  (:func:`planet_vmag`);
* a **dome or telescope** (:class:`Dome`): a dark silhouette rising from the
  horizon over a range of azimuths, where neither sky nor stars reach the
  sensor;
* **text** (:class:`TextOverlay`): a time stamp burned into the digitised
  frame by the camera's software, in a 5x7 dot font, at a fixed level
  (saturated by default).

Pixel conventions are those of :mod:`allsky_camera.camera.camera_model`: 0-based,
``x`` is the column (``image[y, x]``), pixel centres at integers.  Angles
in degrees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from allsky_camera.exceptions import ConfigError

log = logging.getLogger(__name__)

#: Absolute magnitudes V(1, 0) (Sun and Earth distances 1 au, phase 0) of the
#: planets, from Mallama & Hilton (2018), "Computing apparent planetary
#: magnitudes for The Astronomical Almanac", Astron. Comput. 25, 10
#: (Saturn: the globe alone, rings ignored).
PLANET_ABS_VMAG = {"Venus": -4.384, "Mars": -1.601, "Jupiter": -9.395, "Saturn": -8.914}

#: A 5x7 dot font (rows top to bottom, ``#`` = lit) for time stamps.
_FONT = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    "-": ("     ", "     ", "     ", "#####", "     ", "     ", "     "),
    ":": ("     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "),
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
    " ": ("     ",) * 7,
    "T": ("#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "),
    "U": ("#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "),
    "C": (" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "),
}
#: Glyph size in font dots, and the gap between glyphs (dots).
_GLYPH_W, _GLYPH_H, _GLYPH_GAP = 5, 7, 1


@dataclass(frozen=True)
class TextOverlay:
    """Text burned into the digitised frame.

    Attributes
    ----------
    text : str or None
        Characters of :data:`_FONT` (digits, ``- : .``, space, ``U T C``);
        None: the exposure's UTC time, ``YYYY-MM-DD HH:MM:SS UTC``.
    x0, y0 : int
        Pixel of the first glyph's top-left dot (0-based); the text runs
        toward +x, its rows toward -y (row ``y0`` is the top of the glyphs as
        the image is displayed with the origin at the lower left).
    scale : int
        Pixels per font dot.
    level_adu : float or None
        Raw value of the lit pixels; None: the saturation level.
    """

    text: str | None = None
    x0: int = 6
    y0: int = 472
    scale: int = 2
    level_adu: float | None = None


@dataclass(frozen=True)
class Dome:
    """A dark dome or telescope in front of the lens.

    Its outline is ``alt < top_alt_deg * sqrt(1 - (daz / half_width_deg)**2)``,
    ``daz`` the azimuth from ``az_deg``: a round top on the horizon.

    Attributes
    ----------
    az_deg : float
        Azimuth of its middle, deg (north through east).
    half_width_deg : float
        Half its width in azimuth at the horizon, deg.
    top_alt_deg : float
        Altitude of its top, deg.
    level_adu : float
        Light it sends to the sensor, ADU per pixel (0: black).
    """

    az_deg: float = 200.0
    half_width_deg: float = 30.0
    top_alt_deg: float = 30.0
    level_adu: float = 0.0


@dataclass(frozen=True)
class Extras:
    """What :func:`allsky_camera.sim.simulate.simulate` adds to a frame (all off by default)."""

    planets: bool = False
    dome: Dome | None = None
    text: TextOverlay | None = None

    def __post_init__(self):
        if self.dome is not None and not isinstance(self.dome, Dome):
            raise ConfigError(f"Extras.dome = {self.dome!r}; give a sim_extras.Dome or None")
        if self.text is not None and not isinstance(self.text, TextOverlay):
            raise ConfigError(f"Extras.text = {self.text!r}; give a sim_extras.TextOverlay "
                              "or None")


@dataclass(frozen=True)
class ExtrasTruth:
    """What the extras put in a frame."""

    planets: object            # astropy Table: name, VMAG, alt_deg, az_deg, x, y, flux_adu
    dome: np.ndarray | None    # bool (ny, nx): pixels behind the dome
    text: np.ndarray | None    # bool (ny, nx): pixels of the burned-in text


def planet_vmag(dist_au, helio_au, name):
    """Full-phase V magnitude of a planet: ``V(1,0) + 5 log10(r delta)``.

    The phase term is ignored, so Venus away from superior conjunction is
    drawn up to about a magnitude too bright; a simulator needs a bright
    point, not the almanac's magnitude.
    """
    return PLANET_ABS_VMAG[name] + 5.0 * np.log10(helio_au * dist_au)


def planet_sources(model, t, site, shape, *, min_alt_deg=0.0):
    """Planets above ``min_alt_deg`` that fall on the sensor.

    Returns
    -------
    astropy.table.Table
        Columns ``name``, ``VMAG``, ``alt_deg``, ``az_deg``, ``x``, ``y``
        (pixels, by ``model``).
    """
    from astropy.table import Table

    from allsky_camera.camera.coords import PLANETS, planet_radec, planets_altaz

    ny, nx = shape
    pos = planets_altaz(t, site)
    rows = []
    for name in PLANETS:
        alt, az = pos[name]
        if alt <= min_alt_deg:
            continue
        x, y = (float(v) for v in model.altaz_to_xy(alt, az))
        if not (-0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5):
            continue
        _, _, dist, helio = planet_radec(t, name)
        rows.append((name, float(planet_vmag(dist, helio, name)), alt, az, x, y))
    return Table(rows=rows or None, names=("name", "VMAG", "alt_deg", "az_deg", "x", "y"),
                 dtype=(str, float, float, float, float, float))


def dome_mask(model, shape, dome):
    """Pixels (bool, ``(ny, nx)``) whose line of sight ends on ``dome``."""
    yy, xx = np.indices(shape, dtype=float)
    alt, az = model.xy_to_altaz(xx, yy)
    daz = (az - dome.az_deg + 180.0) % 360.0 - 180.0
    u = np.clip(1.0 - (daz / dome.half_width_deg) ** 2, 0.0, None)
    with np.errstate(invalid="ignore"):
        return (np.abs(daz) < dome.half_width_deg) & (alt < dome.top_alt_deg * np.sqrt(u))


def text_mask(shape, overlay, text):
    """Pixels (bool, ``(ny, nx)``) lit by ``text`` drawn as ``overlay`` says.

    Raises
    ------
    ConfigError
        A character has no glyph in the font.
    """
    bad = sorted(set(text) - set(_FONT))
    if bad:
        raise ConfigError(f"TextOverlay: no glyph for {bad[0]!r}; use digits, '-', ':', '.', "
                          "space, U, T, C")
    ny, nx = shape
    s = int(overlay.scale)
    mask = np.zeros(shape, dtype=bool)
    for i, ch in enumerate(text):
        for row, line in enumerate(_FONT[ch]):
            for col, c in enumerate(line):
                if c != "#":
                    continue
                x = overlay.x0 + (i * (_GLYPH_W + _GLYPH_GAP) + col) * s
                y = overlay.y0 - (row + 1) * s + 1        # rows go down the displayed image
                x1, y1 = max(x, 0), max(y, 0)
                mask[y1:max(y + s, 0), x1:max(x + s, 0)] = True
    return mask[:ny, :nx]


def add_to_signal(signal, extras, *, model, time, site, zp, exptime, sigma_at, render):
    """Planets and the dome in the expected signal (ADU per pixel, bias excluded).

    Parameters
    ----------
    signal : ndarray, shape (ny, nx)
        Sky and stars; not changed.
    extras : Extras
    model : CameraModel
        The true model.
    time : ObsTime
    site : coords.Site
    zp : float
        True total-flux zeropoint, mag for 1 ADU/s.
    exptime : float
        s.
    sigma_at : callable
        Gaussian PSF sigma (pixels) at a zenith distance (deg).
    render : callable
        ``render(shape, x, y, flux, sigma) -> (image, peak)``, the stars' renderer.

    Returns
    -------
    signal : ndarray
        A new array.
    planets : astropy Table
        :func:`planet_sources` plus ``flux_adu``.
    dome : ndarray of bool or None
    """
    out = np.array(signal, dtype=float, copy=True)
    planets = planet_sources(model, time, site, out.shape)
    planets["flux_adu"] = np.zeros(len(planets))
    if extras.planets and len(planets):
        flux = 10.0 ** (-0.4 * (np.asarray(planets["VMAG"]) - zp)) * exptime
        sigma = np.asarray(sigma_at(90.0 - np.asarray(planets["alt_deg"])), dtype=float)
        img, _ = render(out.shape, planets["x"], planets["y"], flux, sigma)
        out += img
        planets["flux_adu"] = flux
        log.info("sim_extras: planets %s", ", ".join(f"{n} V={v:.1f}" for n, v in
                                                   zip(planets["name"], planets["VMAG"])))
    elif not extras.planets:
        planets = planets[:0]
    dome = None
    if extras.dome is not None:
        dome = dome_mask(model, out.shape, extras.dome)
        out[dome] = extras.dome.level_adu
    return out, planets, dome


def burn_text(raw, extras, *, utc_iso, saturation_adu):
    """The digitised frame with the text overlay burned in (a new array) and its mask.

    ``utc_iso`` (``YYYY-MM-DDThh:mm:ss...``) is written when the overlay's
    text is None.
    """
    if extras.text is None:
        return raw, None
    ov = extras.text
    text = ov.text if ov.text is not None else f"{utc_iso[:10]} {utc_iso[11:19]} UTC"
    mask = text_mask(raw.shape, ov, text)
    out = raw.copy()
    level = saturation_adu if ov.level_adu is None else ov.level_adu
    out[mask] = np.asarray(level).astype(raw.dtype)
    return out, mask


def add_arguments(parser):
    """The extras' command-line options (for ``ac_simulate.py``)."""
    parser.add_argument("--planets", action="store_true",
                        help="render Venus, Mars, Jupiter and Saturn as bright points")
    parser.add_argument("--dome", type=float, nargs=3, default=None,
                        metavar=("AZ", "HALF_WIDTH", "TOP_ALT"),
                        help="a dark dome centred at azimuth AZ, HALF_WIDTH deg wide either "
                             "side at the horizon, rising to TOP_ALT deg")
    parser.add_argument("--text", action="store_true",
                        help="burn the UTC time stamp into the top-left corner (saturated)")


def from_options(opts):
    """:class:`Extras` from the options of :func:`add_arguments`, or None when none is set."""
    if not (opts.planets or opts.dome or opts.text):
        return None
    dome = None
    if opts.dome:
        az, half, top = opts.dome
        if not (0.0 < half <= 180.0 and 0.0 < top <= 90.0):
            raise ConfigError(f"--dome {az} {half} {top}: HALF_WIDTH must be in (0, 180] and "
                              "TOP_ALT in (0, 90] deg")
        dome = Dome(az_deg=az, half_width_deg=half, top_alt_deg=top)
    return Extras(planets=opts.planets, dome=dome, text=TextOverlay() if opts.text else None)
