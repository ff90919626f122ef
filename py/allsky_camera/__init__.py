"""allsky_camera: reduction of all-sky camera exposures.

Stages (one module each, wired in order by ``ac_proc.py``): io, detrend,
catalog, astrometry, centroid, photometry, sbmap, streaks, plotting.
Heavy packages (matplotlib, scipy) are imported only
by the functions that need them.
"""

__version__ = "0.1.0"
