"""Quality flags of catalog stars: named bits, defined once.

A star with ``flags == 0`` is usable for astrometry and photometry.  The
definitions are written to the catalog header as ``FLAGBnn`` cards.
"""

#: name -> (bit value, description)
FLAGS = {
    "SHIFT": (1, "centroid too far from the fitted prediction"),
    "OTHER_STAR": (2, "centroid nearer another star's prediction"),
    "SATURATED": (4, "saturated raw pixel at or near the centroid"),
    "EDGE": (8, "too near the image edge"),
    "NOT_ISOLATED": (16, "catalog neighbour within the isolation radius"),
    "MOON": (32, "within the Moon exclusion radius"),
    "OUTSIDE_SAFE": (64, "outside the safe radius from the zenith"),
    "NO_FLUX": (128, "no centroid or aperture flux not positive"),
    "BAD_PIXEL": (256, "masked or obstructed pixel in the aperture"),
    "FAINT": (512, "not detected: S/N below centroid.min_snr"),
    "PLANET": (1024, "within planet_exclusion_deg of a bright planet"),
    "BLENDED": (2048, "other stars' light > max_contamination of flux"),
}


def bit(name):
    """Value of the flag called ``name``."""
    return FLAGS[name][0]


def header_cards():
    """``(keyword, value, comment)`` cards describing every flag bit."""
    # a description must fit its card: 47 characters after "FLAGBnn = 'NAME    ' / "
    return [(f"FLAGB{value.bit_length() - 1:02d}", name, desc)
            for name, (value, desc) in FLAGS.items()]


def describe(flags):
    """Names of the bits set in the integer ``flags``."""
    return [name for name, (value, _) in FLAGS.items() if int(flags) & value]
