"""Reading raw exposures and writing the pipeline's products.

Every product is written to a hidden temporary name in the output directory
and renamed into place only when complete, so an interrupted or failed run
never leaves a half-written file under a product's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from allsky_camera.camera.coords import ObsTime, parse_time
from allsky_camera.exceptions import InputFileError, OutputError

log = logging.getLogger(__name__)

#: Largest file a raw frame may decompress to, bytes: 16 times a 16-bit
#: 6000x4000 sensor (48 MB); more is not an all-sky camera frame (a
#: decompression bomb, a wrong file) and is refused before it fills memory.
MAX_FRAME_BYTES = 2 ** 30
#: Decompression chunk, bytes.
_CHUNK = 2 ** 22
#: Magic numbers of the compressions read (RFC 1952 for gzip; bzip2's "BZh").
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
#: Longest file name when the file system does not say (POSIX NAME_MAX).
_NAME_MAX_DEFAULT = 255
#: Hex digits of the hash that names a temporary whose plain name is too long,
#: and the longest suffix (``.fits.gz``) kept after it, characters.
_HASH_DIGITS = 16
_MAX_SUFFIX = 16
#: Valid BITPIX values (FITS 4.0 table 8).
_BITPIX = (8, 16, 32, 64, -32, -64)
#: Characters of a raw card's keyword quoted in a HISTORY note (a HIERARCH
#: keyword can be long; the note must fit its card).
_NOTE_KEY_CHARS = 20
#: Raw cards never copied into a product: the checksums of the raw file
#: (a product gets fresh ones) and the data scaling (products are float32).
RAW_CARDS_DROPPED = ("CHECKSUM", "DATASUM", "BZERO", "BSCALE", "BLANK")

#: Comments of the checksum cards (FITS 4.0 appendix J), without astropy's
#: default time stamp.
CHECKSUM_COMMENT = "HDU checksum (FITS 4.0 appendix J)"
DATASUM_COMMENT = "data unit checksum (FITS 4.0 appendix J)"
#: astropy writes string values of this many characters or more as long
#: strings (CONTINUE cards, FITS 4.0 sec. 4.2.1.2), the comment on the last.
LONG_STRING_MIN = 69

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


def check_regular_file(path):
    """Refuse anything that is not an existing regular file (a directory, /dev/zero, a pipe)."""
    try:
        st = os.stat(path)
    except FileNotFoundError as err:
        raise InputFileError(f"{path}: no such file; check the path") from err
    except OSError as err:
        raise InputFileError(f"{path}: cannot be read ({err.strerror}); check the path "
                             "and its permissions") from err
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(f"{path}: is a directory; give a raw exposure FITS file")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(f"{path}: is not a regular file (a device, pipe or socket); "
                             "give a raw exposure FITS file")
    return st.st_size


def _decompressed(path):
    """The file's bytes, decompressed and CRC-checked if gzip or bzip2; else None.

    astropy stops reading a compressed file when it has the pixels it wants,
    before the gzip CRC at the end: a corrupt file would be reduced as if it
    were good.  Here the whole stream is decompressed and checked first.
    """
    import bz2
    import gzip
    import zlib

    with open(path, "rb") as fh:
        magic = fh.read(3)
    if magic[:2] == _GZIP_MAGIC:
        opener, kind = gzip.open, "gzip"
    elif magic == _BZIP2_MAGIC:
        opener, kind = bz2.open, "bzip2"
    else:
        return None
    chunks, total = [], 0
    try:
        with opener(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                total += len(chunk)
                if total > MAX_FRAME_BYTES:
                    raise InputFileError(
                        f"{path}: decompresses to more than {MAX_FRAME_BYTES >> 20} MB, "
                        "far more than a camera frame; give a raw exposure FITS file")
                chunks.append(chunk)
    except (OSError, EOFError, zlib.error) as err:
        raise InputFileError(f"{path}: corrupt {kind} file ({err}); copy it again from the "
                             "camera") from err
    return b"".join(chunks)


def _declared_bytes(header):
    """Bytes of data the HDU header declares (FITS 4.0 sec. 4.4.1.1), or None if malformed."""
    try:
        bitpix = int(header["BITPIX"])
        naxis = int(header["NAXIS"])
        dims = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
        pcount, gcount = int(header.get("PCOUNT", 0)), int(header.get("GCOUNT", 1))
    except (KeyError, TypeError, ValueError):
        return None
    if bitpix not in _BITPIX or min(dims, default=0) < 0 or naxis < 0:
        return None
    n = 1
    for d in dims:
        n *= d
    return abs(bitpix) // 8 * gcount * (pcount + (n if naxis else 0))


def _read_image_hdu(path):
    """Data and header of the first 2-D image HDU of a FITS file, checked.

    Refused with :class:`InputFileError`: anything not a regular file, a
    compressed file that fails its CRC, a header that declares more data
    than the file holds (before any allocation), a truncated file.
    """
    import io as _io

    from astropy.io import fits

    path = str(path)
    size = check_regular_file(path)
    raw = _decompressed(path)
    source = path if raw is None else _io.BytesIO(raw)
    size = size if raw is None else len(raw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(source, memmap=False) as hdul:
                for hdu in hdul:
                    if hdu.is_image and hdu.header.get("NAXIS", 0) == 2:
                        break
                else:
                    raise InputFileError(f"{path}: no 2-D image HDU in the file; "
                                         "give a raw all-sky camera exposure")
                declared = _declared_bytes(hdu.header)
                start = hdu.fileinfo()["datLoc"]
                if declared is None:
                    raise InputFileError(f"{path}: the image header's BITPIX/NAXISn cards "
                                         "are malformed; give a raw all-sky camera exposure")
                if start + declared > size:
                    raise InputFileError(
                        f"{path}: the header declares {declared} bytes of data but the file "
                        f"holds {max(size - start, 0)}; the file is truncated or its header "
                        "is wrong: copy it again from the camera")
                data = hdu.data
                header = hdu.header.copy()
        except InputFileError:
            raise
        except (OSError, ValueError, TypeError, EOFError, IndexError, KeyError) as err:
            raise InputFileError(f"{path}: not a readable FITS file ({err}); "
                                 "check that the file is complete") from err
    for w in caught:
        if "truncated" in str(w.message).lower():
            raise InputFileError(f"{path}: the FITS file is truncated; "
                                 "copy it again from the camera")
    for w in caught:
        log.warning("%s: %s", path, str(w.message).splitlines()[0])
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


def card_number(header, key, path, what="is not a number"):
    """The value of header card ``key`` as a float.

    Raises
    ------
    InputFileError
        Naming ``path``, the card and its value, followed by ``what``, when
        the value is not a number (a logical value counts as none).
    """
    value = header[key]
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError("a logical value")
        return float(value)
    except (TypeError, ValueError) as err:
        raise InputFileError(f"{path}: header card {key} = {value!r} {what}") from err


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
        The card is missing, not a number (a logical T counts as none), or
        outside ``(0, hc.max_exptime_s]``.
    """
    card = hc.exptime_card
    if card is None:
        return float(hc.exptime_s)
    if card not in header:
        raise InputFileError(f"{path}: header card {card} (exposure time) is missing; "
                             f"is this a raw frame of camera {camera_name}? (a camera without "
                             "the card: set header.exptime_card to null and give exptime_s)")
    exptime = card_number(header, card, path, "is not a number of seconds")
    hi = hc.max_exptime_s
    if not (np.isfinite(exptime) and 0 < exptime <= hi):
        raise InputFileError(f"{path}: exposure time {card} = {exptime:g} s is outside "
                             f"(0, {hi:g}] s; fix the header, or raise header.max_exptime_s "
                             f"in the camera configuration {camera_name}")
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
    probe = outdir / f".part{os.getpid()}.write_test"   # removed by a later run if killed
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


def name_max(directory):
    """Longest file name (bytes) the file system of ``directory`` allows."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return _NAME_MAX_DEFAULT


def hidden_name(prefix, name, directory):
    """``prefix + name``, or ``prefix + hash + suffix`` if that is too long for ``directory``.

    The suffix (``.fits``, ``.png``) is kept, so that writers which choose the
    format from the name still do.
    """
    full = prefix + name
    if len(os.fsencode(full)) <= name_max(directory):
        return full
    suffix = "".join(Path(name).suffixes[-2:])
    if len(os.fsencode(suffix)) > _MAX_SUFFIX:
        suffix = ""
    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:_HASH_DIGITS]
    return f"{prefix}{digest}{suffix}"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and the exception
    propagates, so ``path`` is either complete or untouched.  The temporary
    is hidden, ``.part<pid>.<name>`` (hashed if that name would be too long).
    """
    path = Path(path)
    # hidden, and ending like the product so writers that pick compression
    # from the name (.fits.gz) still do
    tmp = path.with_name(hidden_name(f".part{os.getpid()}.", path.name, path.parent))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_fits_hdus(hdus, path):
    """Write an ``HDUList`` atomically with fresh CHECKSUM/DATASUM cards (format FITS).

    The checksum cards' comments carry no time stamp, so the same products
    are the same bytes whenever they are written.
    """
    from astropy.io import fits

    hdus.verify("exception")
    # a tile-compressed HDU's checksum is only right when astropy computes it
    # while writing (astropy 6.0 cannot sum one before): those files get
    # astropy's own checksum cards, time-stamped
    compressed = any(isinstance(h, fits.CompImageHDU) for h in hdus)
    if not compressed:
        for hdu in hdus:
            hdu.add_datasum(when=DATASUM_COMMENT)
            hdu.add_checksum(when=CHECKSUM_COMMENT, override_datasum=True)
    with atomic_path(path) as tmp:
        try:
            hdus.writeto(tmp, overwrite=True, output_verify="exception", checksum=compressed)
        except OSError as err:
            raise OutputError(f"{path}: cannot write ({err.strerror or err}); check the disk "
                              "and the directory's permissions") from err
    log.info("wrote %s", path)


def fits_text(text):
    """``text`` as a FITS string value: printable ASCII, others as backslash escapes.

    FITS strings hold only characters 0x20-0x7E (FITS 4.0 sec. 4.2.1): a file
    name with an accent, a newline or a tab is written as ``\\xe9``,
    ``\\n``, ``\\t``.
    """
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def _fixed_card(card):
    """A valid version of an invalid card (upper-cased keyword, astropy's fix), or None."""
    from astropy.io import fits

    def tries():
        yield lambda: fits.Card(card.keyword.upper(), card.value, card.comment)
        yield lambda: fits.Card.fromstring(card.image)
    for make in tries():
        try:
            c = make()
            c.verify("fix")
            c.verify("exception")
            str(c)
            return c
        except Exception:   # astropy raises several types here
            continue
    return None


def clean_header(header, where):
    """A copy of a raw header that astropy can write, and what was changed.

    Cards that fail FITS verification are fixed if astropy can (a lower-case
    keyword, say) or dropped; raw checksums and scaling cards are removed.

    Returns
    -------
    header : astropy.io.fits.Header
    notes : list of str
        One line per card fixed or dropped, for HISTORY cards and the log.
    """
    from astropy.io import fits

    out = fits.Header()
    notes = []
    # recorded, not ignored: astropy's "fix" does not fix under an "ignore" filter
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for card in header.cards:
            key = card.keyword
            if key in RAW_CARDS_DROPPED:
                continue
            try:
                card.verify("exception")
                out.append(card, end=True)
                continue
            except Exception:   # astropy raises several types here
                pass
            fixed = _fixed_card(card)
            if fixed is None:
                notes.append(f"raw card {fits_text(key)[:_NOTE_KEY_CHARS]} dropped: not valid FITS")
            else:
                out.append(fixed, end=True)
                notes.append(f"raw card {fits_text(key)[:_NOTE_KEY_CHARS]} fixed")
    for n in notes:
        log.warning("%s: %s", where, n)
    return out, notes


class CardCommentWarning(UserWarning):
    """A header comment written by the pipeline did not fit its card (a bug to fix)."""


def _card_length(key, value, comment):
    """Characters a fixed-format card needs for ``value`` and the whole ``comment``."""
    from astropy.io import fits

    used = max(len(str(fits.Card(key, value)).rstrip()), 30)
    return used + (3 + len(comment) if comment else 0)


def _fit_comment(key, value, comment):
    """``comment``, cut (with a warning) if the card would exceed 80 characters."""
    from astropy.io import fits

    image = str(fits.Card(key, value))
    if len(image) > 80:      # a long string: astropy continues value and comment (CONTINUE)
        return comment
    # fixed format: the value field ends at column 30 at least, then " / "
    used = max(len(image.rstrip()), 30)
    room = max(80 - used - 3, 0)
    if len(comment) > room:
        warnings.warn(f"comment of card {key} cut to {room} characters: {comment!r}",
                      CardCommentWarning, stacklevel=3)
    return comment[:room]


def add_cards(header, cards):
    """Append ``(keyword, value, comment)`` cards, replacing existing keywords.

    String values are made printable ASCII (:func:`fits_text`).
    """
    for key, value, comment in cards:
        if key in ("COMMENT", "HISTORY"):
            value = fits_text(value)
            header.add_comment(value) if key == "COMMENT" else header.add_history(value)
            continue
        if isinstance(value, (np.floating, np.integer, np.bool_)):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = "NaN"
        if isinstance(value, str):
            value = fits_text(value)
            if _card_length(key, value, comment) > 80 and len(value) < LONG_STRING_MIN:
                # too long with its comment: written as a long string (CONTINUE
                # cards) so the comment is kept whole; trailing blanks of a FITS
                # string are not significant (FITS 4.0 sec. 4.2.1.1)
                value = value.ljust(LONG_STRING_MIN)
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
            add_cards(hdu.header, [(f"TCOMM{i}", desc, "")])
    add_cards(hdu.header, header_cards)
    primary = fits.PrimaryHDU()
    add_cards(primary.header, header_cards)
    write_fits_hdus(fits.HDUList([primary, hdu]), path)


def write_image(data, path, header=None, header_cards=(), where=None):
    """Write a 2-D image atomically as the primary HDU of a FITS file.

    ``header`` (a raw header, say) is cleaned first (:func:`clean_header`):
    cards that cannot be written are fixed or dropped and a HISTORY card says
    so; ``where`` names the source in those notes.
    """
    from astropy.io import fits

    notes = []
    if header is None:
        hdr = fits.Header()
    else:
        hdr, notes = clean_header(header, where or str(path))
    add_cards(hdr, header_cards)
    add_cards(hdr, [("HISTORY", n, "") for n in notes])
    write_fits_hdus(fits.HDUList([fits.PrimaryHDU(data=data, header=hdr)]), path)
