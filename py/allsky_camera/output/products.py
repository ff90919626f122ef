"""What a reduction is asked to produce, and where each product goes.

:class:`Products` is built once from the command-line options (of
``ac_proc.py`` or ``ac_night.py``) and handed to
:func:`allsky_camera.reduction.reduce_exposure` (what to compute) and to
:mod:`allsky_camera.output.writers` (what to write).  The layout stays flat for now
(``products``, ``reduction`` and ``writers`` beside the stage modules): the
split into subpackages waits until the parallel work on the stages has landed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

#: Product kind -> (file-name suffix, extension).  One place for the names.
_NAMES = {
    "cat": ("cat", "fits"),
    "detrended": ("detrended", "fits"),
    "zp": ("zp", "png"),
    "quiver": ("quiver", "png"),
    "sbmap": ("sbmap", "png"),
    "sbmap_fits": ("sbmap", "fits"),
    "detrended_png": ("detrended", "png"),
    "healpix": ("healpix", "fits"),
    "transp": ("transp", "png"),
    "streaks": ("streaks", "fits"),
    "clouds": ("clouds", "fits"),
}


@dataclasses.dataclass(frozen=True)
class Products:
    """The products wanted of one exposure.

    Attributes
    ----------
    catalog : bool
        Write the source catalog (``-cat.fits``).
    detrended : bool
        Write the detrended image (``-detrended.fits``).
    checkplots : bool
        Draw the zeropoint, residual-quiver and sky-map checkplots.
    sbmap : bool
        Compute the sky brightness map.
    sbmap_fits : bool
        Write the sky brightness map as FITS (needs ``sbmap``).
    centroid_plot : bool
        Draw the detrended image with the good centroids.
    healpix : bool
        Write the HEALPix zeropoint/transparency maps (and, with
        ``checkplots``, the transparency checkplot).
    streaks : bool
        Detect satellite streaks and write their table.
    clouds : bool
        Write the cloud map on the pixel grid (``-clouds.fits``).
    workers : int
        Threads for the heavy stages (sky median, streaks).
    mp_centroiding : bool
        Use ``workers`` threads for the centroiding too.
    """

    catalog: bool = True
    detrended: bool = True
    checkplots: bool = True
    sbmap: bool = True
    sbmap_fits: bool = False
    centroid_plot: bool = False
    healpix: bool = False
    streaks: bool = False
    clouds: bool = False
    workers: int = 1
    mp_centroiding: bool = False

    @classmethod
    def from_options(cls, opts):
        """The products asked for by parsed ``ac_proc.py`` options."""
        return cls(catalog=not opts.dont_write_catalog,
                   detrended=not opts.dont_write_detrended,
                   checkplots=not opts.skip_checkplots,
                   sbmap=not opts.skip_sbmap,
                   sbmap_fits=opts.write_sbmap and not opts.skip_sbmap,
                   centroid_plot=opts.oplot_centroids,
                   healpix=opts.write_healpix,
                   streaks=opts.detect_streaks,
                   clouds=getattr(opts, "write_clouds", False),
                   workers=max(opts.multiproc, 1),
                   mp_centroiding=opts.force_mp_centroiding)

    @property
    def centroid_workers(self):
        """Threads used by the centroiding."""
        return self.workers if self.mp_centroiding else 1

    def science_hash(self):
        """Short hash of the options that change what is computed or written.

        The thread counts are left out: results do not depend on them.
        """
        d = dataclasses.asdict(self)
        for k in ("workers", "mp_centroiding"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def output_paths(outdir, stem):
    """Names of every product of an exposure, by kind (``Path`` values)."""
    o = Path(outdir)
    return {k: o / f"{stem}-{suffix}.{ext}" for k, (suffix, ext) in _NAMES.items()}


def wanted_paths(products, paths):
    """The files written for ``products``, in the order they are written.

    Parameters
    ----------
    products : Products
    paths : dict
        From :func:`output_paths`.

    Returns
    -------
    list of Path
    """
    want = []
    if products.catalog:
        want.append(paths["cat"])
    if products.detrended:
        want.append(paths["detrended"])
    if products.checkplots:
        want += [paths["zp"], paths["quiver"]]
        if products.sbmap:
            want.append(paths["sbmap"])
    if products.sbmap_fits:
        want.append(paths["sbmap_fits"])
    if products.centroid_plot:
        want.append(paths["detrended_png"])
    if products.streaks:
        want.append(paths["streaks"])
    if products.clouds:
        want.append(paths["clouds"])
    if products.healpix:
        want.append(paths["healpix"])
        if products.checkplots:
            want.append(paths["transp"])
    return want
