"""Header conventions of real cameras, read against astropy's Time for the UTC."""

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time, TimeDelta

from allsky_camera import ac_calibrate
from allsky_camera.camera import config
from allsky_camera.exceptions import ConfigError, InputFileError
from allsky_camera.stages import io

#: One second in days, and the agreement asked of the parsed instants (1 ms).
_TOL_DAYS = 1e-3 / 86400.0


@pytest.fixture(scope="module")
def mdm():
    return config.load_camera("MDM")


def header_cards(mdm, **changes):
    return dataclasses.replace(mdm.header, **changes)


def same_instant(t, astropy_time):
    """ObsTime ``t`` and an astropy Time agree in UTC and TT to 1 ms."""
    assert abs((t.utc1 - astropy_time.utc.jd1) + (t.utc2 - astropy_time.utc.jd2)) < _TOL_DAYS
    assert abs((t.tt1 - astropy_time.tt.jd1) + (t.tt2 - astropy_time.tt.jd2)) < _TOL_DAYS


def frame(mdm, cards, hc):
    hdr = fits.Header()
    for k, v in cards.items():
        hdr[k] = v
    data = np.ones((mdm.sensor.ny, mdm.sensor.nx), dtype=np.uint8)
    cam = dataclasses.replace(mdm, header=hc)
    config.check_header_cards(hc, "test")
    return io.exposure_from_data("f.fits", data, hdr, cam)


def test_date_and_time_in_separate_cards(mdm):
    hc = header_cards(mdm, timeobs_card="TIME-OBS", utc_offset_hours=0.0)
    exp = frame(mdm, {"DATE-OBS": "2019-03-06", "TIME-OBS": "08:30:37.250", "EXPOSURE": 30.0},
                hc)
    same_instant(exp.time, Time("2019-03-06T08:30:37.250", scale="utc"))
    assert exp.exptime == 30.0


def test_strptime_format_any_case_with_local_clock(mdm):
    hc = header_cards(mdm, time_format="%a %b %d %H:%M:%S %Y", utc_offset_hours=-7.0)
    exp = frame(mdm, {"DATE-OBS": "WED MAR 06 08:30:37 2019", "EXPOSURE": 60.0}, hc)
    # the clock runs 7 h behind UTC
    same_instant(exp.time, Time("2019-03-06T08:30:37", scale="utc") + TimeDelta(7 * 3600.0,
                                                                                format="sec"))
    exp = frame(mdm, {"DATE-OBS": "wed mar 06 08:30:37 2019", "EXPOSURE": 60.0}, hc)
    same_instant(exp.time, Time("2019-03-06T15:30:37", scale="utc"))


def test_strptime_format_of_date_and_time_cards(mdm):
    hc = header_cards(mdm, timeobs_card="UT", time_format="%d/%m/%Y %H:%M:%S",
                      utc_offset_hours=5.5)
    exp = frame(mdm, {"DATE-OBS": "31/12/2020", "UT": "23:10:05", "EXPOSURE": 60.0}, hc)
    same_instant(exp.time, Time("2020-12-31T17:40:05", scale="utc"))


def test_local_clock_across_a_leap_second(mdm):
    """UTC-7 at 17:00 local on 2016-12-31 is 00:00 UTC on 2017-01-01, after
    the leap second 23:59:60 (astropy's leap-second table)."""
    hc = header_cards(mdm, utc_offset_hours=-7.0)
    exp = frame(mdm, {"DATE-OBS": "2016-12-31T17:00:00", "EXPOSURE": 60.0}, hc)
    same_instant(exp.time, Time("2017-01-01T00:00:00", scale="utc"))


def test_no_exposure_time_card(mdm):
    hc = header_cards(mdm, exptime_card=None, exptime_s=12.5)
    exp = frame(mdm, {"DATE-OBS": "2020-10-11T21:38:23"}, hc)
    assert exp.exptime == 12.5


def test_missing_or_unreadable_cards_name_the_card(mdm):
    hc = header_cards(mdm, timeobs_card="TIME-OBS")
    with pytest.raises(InputFileError, match="TIME-OBS"):
        frame(mdm, {"DATE-OBS": "2019-03-06", "EXPOSURE": 1.0}, hc)
    hc = header_cards(mdm, time_format="%a %b %d %H:%M:%S %Y")
    with pytest.raises(InputFileError, match="time format"):
        frame(mdm, {"DATE-OBS": "2019-03-06T08:30:37", "EXPOSURE": 1.0}, hc)


@pytest.mark.parametrize("changes, word", [
    ({"exptime_card": None}, "neither"),
    ({"exptime_s": 10.0}, "both"),
    ({"exptime_card": None, "exptime_s": -1.0}, "positive"),
    ({"time_format": "%Y-%m-%d"}, "to the second"),
    ({"utc_offset_hours": 30.0}, "clock offset"),
])
def test_inconsistent_header_settings_are_refused(mdm, changes, word):
    with pytest.raises(ConfigError, match=word):
        config.check_header_cards(header_cards(mdm, **changes), "etc/X.yaml")


def test_yaml_header_section_is_validated(mdm):
    d = config.camera_to_dict(mdm)
    d["header"] = dict(d["header"], exptime_card=None, exptime_s=5.0, timeobs_card="TIME-OBS",
                       time_format="%Y-%m-%d %H:%M:%S")
    cam = config.camera_from_dict(d, source="x.yaml")
    assert cam.header.exptime_s == 5.0 and cam.header.timeobs_card == "TIME-OBS"
    d["header"]["time_format"] = "%H"
    with pytest.raises(ConfigError, match="time_format"):
        config.camera_from_dict(d, source="x.yaml")


def test_ac_calibrate_takes_the_same_settings():
    opts = ac_calibrate.build_parser().parse_args(
        ["f.fits", "--output", "x.yaml", "--dateobs-card", "DATE", "--timeobs-card", "UTC",
         "--time-format", "%a %b %d %Y %H:%M:%S", "--utc-offset", "-7", "--exptime", "8"])
    sec = ac_calibrate.header_section(opts)
    assert sec == {"exptime_card": None, "dateobs_card": "DATE", "timeobs_card": "UTC",
                   "time_format": "%a %b %d %Y %H:%M:%S", "utc_offset_hours": -7.0,
                   "exptime_s": 8.0}
    hdr = fits.Header({"DATE": "WED MAR 06 2019", "UTC": "08:30:37"})
    t = ac_calibrate._start_time(hdr, opts)
    same_instant(t, Time("2019-03-06T15:30:37", scale="utc"))
    bad = ac_calibrate.build_parser().parse_args(["f.fits", "--output", "x.yaml",
                                                  "--time-format", "%d"])
    with pytest.raises(ConfigError, match="time_format"):
        ac_calibrate.header_section(bad)
