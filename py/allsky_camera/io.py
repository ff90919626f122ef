"""Reading raw exposures and writing the pipeline's products.

Every product is written to a hidden temporary name in the output directory
and renamed into place only when complete, so an interrupted or failed run
never leaves a half-written file under a product's name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .coords import ObsTime, parse_time
from .exceptions import InputFileError, OutputError

log = logging.getLogger(__name__)

#: Filename endings stripped to make the output stem (longest first).
FITS_SUFFIXES = (".fits.bz2", ".fits.gz", ".fit.bz2", ".fit.gz", ".fts.gz",
                 ".fits", ".fit", ".fts")


@dataclass(frozen=True)
class Exposure:
    """A raw exposure as read from disk.

    Attributes
    ----------
    path : str
        The file read.
    raw : ndarray
        Image as stored (BSCALE/BZERO applied), shape (ny, nx), indexed
        ``raw[y, x]``.
    header : astropy.io.fits.Header
        Header of the image HDU.
    exptime : float
        Exposure time, s.
    time : ObsTime
        Start of the exposure, UTC.
    """

    path: str
    raw: np.ndarray
    header: object
    exptime: float
    time: ObsTime

    @property
    def stem(self):
        """Output name stem: the file name without directory and FITS suffix."""
        return output_stem(self.path)


def output_stem(path):
    """``/d/2020_10_11__21_38_23.fits.bz2`` -> ``2020_10_11__21_38_23``."""
    name = Path(path).name
    for suf in FITS_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(name).stem


def _read_image_hdu(path):
    from astropy.io import fits

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False) as hdul:
                for hdu in hdul:
                    if hdu.is_image and hdu.header.get("NAXIS", 0) == 2:
                        data = hdu.data
                        header = hdu.header.copy()
                        break
                else:
                    raise InputFileError(f"{path}: no 2-D image HDU in the file; "
                                         "give a raw all-sky camera exposure")
        except InputFileError:
            raise
        except (OSError, ValueError, TypeError, EOFError, IndexError, KeyError) as err:
            raise InputFileError(f"{path}: not a readable FITS file ({err}); "
                                 "check that the file is complete") from err
    for w in caught:
        if "truncated" in str(w.message).lower():
            raise InputFileError(f"{path}: the FITS file is truncated; "
                                 "copy it again from the camera")
    if data is None:
        raise InputFileError(f"{path}: the image HDU holds no data")
    expected = header["NAXIS1"] * header["NAXIS2"]
    if data.size != expected:
        raise InputFileError(f"{path}: the FITS file is truncated ({data.size} of "
                             f"{expected} pixels); copy it again from the camera")
    return np.asarray(data), header


def read_exposure(path, camera):
    """Read a raw exposure and its metadata.

    Parameters
    ----------
    path : str or Path
        ``.fits``, ``.fits.gz`` or ``.fits.bz2``; any integer or float BITPIX,
        BZERO/BSCALE applied.
    camera : Camera
        Gives the image size and the header cards of exposure time and start
        time, with the clock's offset from UTC.

    Returns
    -------
    Exposure

    Raises
    ------
    InputFileError
        Missing or unreadable file, wrong image size, bad or missing header
        cards, empty image.
    """
    path = str(path)
    if not os.path.exists(path):
        raise InputFileError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise InputFileError(f"{path}: is a directory; give a raw exposure FITS file")
    data, header = _read_image_hdu(path)
    return exposure_from_data(path, data, header, camera)


def exposure_from_data(path, data, header, camera):
    """Validate an image and its header against ``camera`` and build an :class:`Exposure`.

    ``path`` is used for naming outputs and in error messages.
    """
    ny, nx = data.shape
    s = camera.sensor
    if (nx, ny) != (s.nx, s.ny):
        raise InputFileError(
            f"{path}: image is {nx}x{ny} pixels but camera {camera.name} is "
            f"{s.nx}x{s.ny}; choose the right camera with --camera")
    finite = np.isfinite(data) if data.dtype.kind == "f" else None
    if finite is not None and not finite.any():
        raise InputFileError(f"{path}: every pixel is NaN or infinite; the exposure holds no data")
    if not np.any(data):
        raise InputFileError(f"{path}: every pixel is zero; the exposure holds no data")

    exptime = exposure_time(header, camera.header, path, camera.name)
    t = start_time(header, camera.header, path)
    return Exposure(path=path, raw=data, header=header, exptime=exptime, time=t)


def exposure_time(header, hc, path, camera_name="this camera"):
    """Exposure time (s) of a raw frame: its ``hc.exptime_card``, else ``hc.exptime_s``.

    Parameters
    ----------
    header : astropy.io.fits.Header
    hc : config.HeaderCards
    path : str
        Named in the error messages.
    camera_name : str
        Named in the error messages.

    Raises
    ------
    InputFileError
        The card is missing, not a number or not positive.
    """
    card = hc.exptime_card
    if card is None:
        return float(hc.exptime_s)
    if card not in header:
        raise InputFileError(f"{path}: header card {card} (exposure time) is missing; "
                             f"is this a raw frame of camera {camera_name}? (a camera without "
                             "the card: set header.exptime_card to null and give exptime_s)")
    try:
        exptime = float(header[card])
    except (TypeError, ValueError) as err:
        raise InputFileError(f"{path}: header card {card} = {header[card]!r} is not a "
                             "number of seconds") from err
    if not np.isfinite(exptime) or exptime <= 0:
        raise InputFileError(f"{path}: exposure time {card} = {exptime} s must be positive")
    return exptime


def start_time(header, hc, path):
    """UTC start of a raw frame from its header, by the camera's conventions.

    ``hc.dateobs_card`` holds the date and time, or the date alone with the
    time of day in ``hc.timeobs_card`` (the two values are then joined by
    one space); the text is ISO 8601 or follows the strptime format
    ``hc.time_format``; the clock runs ``hc.utc_offset_hours`` ahead of UTC.

    Parameters
    ----------
    header : astropy.io.fits.Header
    hc : config.HeaderCards
    path : str
        Named in the error messages.

    Returns
    -------
    coords.ObsTime

    Raises
    ------
    InputFileError
        A card is missing or its text does not parse.
    """
    cards = [hc.dateobs_card] + ([hc.timeobs_card] if hc.timeobs_card else [])
    for c in cards:
        if c not in header:
            raise InputFileError(f"{path}: header card {c} (start "
                                 f"{'date' if hc.timeobs_card and c == cards[0] else 'time'}) "
                                 "is missing; check the camera's header section")
    text = " ".join(str(header[c]).strip() for c in cards)
    return parse_time(text, hc.utc_offset_hours, where=f"{path}: {'+'.join(cards)}",
                      fmt=hc.time_format)


# ------------------------------------------------------------------ writing
def check_outdir(outdir):
    """Create ``outdir`` if needed and check it is writable, or raise OutputError."""
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{outdir}: cannot create the output directory "
                          f"({err.strerror}); choose another --outdir") from err
    if not outdir.is_dir():
        raise OutputError(f"{outdir}: is not a directory; choose another --outdir")
    probe = outdir / f".allsky_write_test_{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OutputError(f"{outdir}: output directory is not writable "
                          f"({err.strerror}); choose another --outdir") from err
    return outdir


def check_not_existing(paths, overwrite):
    """Refuse outputs that exist already unless ``overwrite``."""
    if overwrite:
        return
    for p in paths:
        if os.path.exists(p):
            raise OutputError(f"{p}: output exists already; remove it or pass --overwrite")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and the exception
    propagates, so ``path`` is either complete or untouched.
    """
    path = Path(path)
    # hidden, and ending like the product so writers that pick compression
    # from the name (.fits.gz) still do
    tmp = path.with_name(f".part{os.getpid()}.{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_fits_hdus(hdus, path):
    """Write an ``HDUList`` atomically (the format is FITS whatever the name)."""
    with atomic_path(path) as tmp:
        try:
            hdus.writeto(tmp, overwrite=True, output_verify="exception")
        except OSError as err:
            raise OutputError(f"{path}: cannot write ({err}); check the disk and "
                              "the directory's permissions") from err
    log.info("wrote %s", path)


def _fit_comment(key, value, comment):
    """Shorten ``comment`` so that the card fits in 80 characters."""
    from astropy.io import fits

    # fixed format: the value field ends at column 30 at least, then " / "
    used = max(len(str(fits.Card(key, value)).rstrip()), 30)
    room = 80 - used - 3
    return comment[:max(room, 0)]


def add_cards(header, cards):
    """Append ``(keyword, value, comment)`` cards, replacing existing keywords."""
    for key, value, comment in cards:
        if key in ("COMMENT", "HISTORY"):
            header.add_comment(value) if key == "COMMENT" else header.add_history(value)
            continue
        if isinstance(value, (np.floating, np.integer, np.bool_)):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = "NaN"
        header[key] = (value, _fit_comment(key, value, comment))


def write_table(table, path, header_cards=(), extname="CATALOG"):
    """Write an astropy Table as a FITS binary table, atomically.

    Column units go to TUNITn and column descriptions to TCOMMn; the cards
    ``(keyword, value, comment)`` go to the table header.
    """
    from astropy.io import fits

    hdu = fits.table_to_hdu(table)
    hdu.name = extname
    for i, name in enumerate(table.colnames, start=1):
        desc = table[name].description
        if desc:
            hdu.header[f"TCOMM{i}"] = desc[:68]
    add_cards(hdu.header, header_cards)
    primary = fits.PrimaryHDU()
    add_cards(primary.header, header_cards)
    write_fits_hdus(fits.HDUList([primary, hdu]), path)


def write_image(data, path, header=None, header_cards=()):
    """Write a 2-D image atomically as the primary HDU of a FITS file."""
    from astropy.io import fits

    hdr = fits.Header() if header is None else header.copy()
    for key in ("BZERO", "BSCALE", "BLANK"):   # the data are float32 now
        hdr.remove(key, ignore_missing=True, remove_all=True)
    add_cards(hdr, header_cards)
    write_fits_hdus(fits.HDUList([fits.PrimaryHDU(data=data, header=hdr)]), path)
