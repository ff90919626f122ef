"""The reduction's stages, one module each: read, detrend, catalog, centroid, astrometry,
photometry, sky brightness, clouds, streaks."""
