"""sim.truth: the raw header, the camera clock, the truth's star table and file names."""

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from allsky_camera.camera import config
from allsky_camera.sim import clouds, sky, truth

SMALL = Path(__file__).resolve().parent / "data" / "SMALL640.yaml"


@pytest.mark.parametrize("offset", [0.0, -7.0, 5.5])
def test_camera_clock_rounds_to_whole_seconds(offset):
    clock, t = truth.camera_clock("2020-10-12T04:38:23.6", offset)
    assert clock == "2020-10-12T04:38:24"
    utc = dt.datetime(2020, 10, 12, 4, 38, 24) - dt.timedelta(hours=offset)
    assert dt.datetime.fromisoformat(t.iso_utc).replace(tzinfo=None) == utc


def test_raw_header_is_valid_fits_with_short_keys():
    cam = config.load_camera(SMALL)
    h = truth.raw_header(cam, clock="2020-10-12T04:38:24", exptime=10.0, seed=3, zp_true=7.5,
                         zenith_shift=(1.5, -2.0), rotation_deg=0.3,
                         clouds=clouds.Clouds("thin", 0.5, transmission_max=0.9), n_streaks=2,
                         ext_coef=0.15, colour_term=-0.1, vignetting=(0.3, 0.05),
                         sky_light=sky.SkyLight("moon", 2.0))
    for card in h.cards:
        assert len(card.keyword) <= 8
        card.verify("exception")                       # astropy's FITS standard checks
        assert len(str(card)) == 80 and "..." not in str(card)
    assert (h["SIMCLOUD"], h["SIMCLTR"], h["SIMNSTRK"], h["SIMLIGHT"]) == ("thin", 0.5, 2, "moon")
    assert (h["SIMDX"], h["SIMDY"], h["SIMVIG2"], h["SIMVIG4"]) == (1.5, -2.0, 0.3, 0.05)
    fits.Header.fromstring(h.tostring())                 # round trip
    clear = truth.raw_header(cam, clock="2020-10-12T04:38:24", exptime=10.0, seed=3,
                             zp_true=7.5, zenith_shift=(0.0, 0.0), rotation_deg=0.0, clouds=None,
                             n_streaks=0, ext_coef=0.0, colour_term=0.0, vignetting=(),
                             sky_light=None)
    assert clear["SIMCLOUD"] == "none" and "SIMCLTR" not in clear and "SIMVIG2" not in clear


def test_star_table_describes_every_column_even_when_empty():
    cat = Table({"HIP": np.zeros(0, int), "RA": np.zeros(0), "DEC": np.zeros(0),
                 "VMAG": np.zeros(0), "BV": np.zeros(0)})
    e = np.zeros(0)
    t = truth.star_table(cat, x=e, y=e, alt_deg=e, az_deg=e, airmass=e, flux_adu=e, fwhm_px=e,
                         ef_aper=e, peak_adu=e, saturated=np.zeros(0, bool), transmission=e)
    assert len(t) == 0 and t.colnames == [c[0] for c in truth.STAR_COLUMNS]
    assert all(t[c].description for c in t.colnames)
    assert t["x"].unit == "pix" and t["flux_adu"].unit == "adu"


def test_truth_path():
    assert truth.truth_path("a/b.fits.gz") == Path("a/b-truth.fits")
    assert truth.truth_path(Path("c.fits")) == Path("c-truth.fits")
