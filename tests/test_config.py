"""Camera configurations: validation errors name the key; selection from the header."""

import copy

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera.camera import config
from allsky_camera.exceptions import ConfigError


@pytest.fixture(scope="module")
def mdm_dict():
    return config.camera_to_dict(config.load_camera("MDM"))


def test_round_trip(mdm_dict):
    cam = config.camera_from_dict(mdm_dict)
    assert config.camera_to_dict(cam) == mdm_dict


def test_every_shipped_camera_loads():
    names = config.known_cameras()
    assert "MDM" in names
    for name in names:
        assert config.load_camera(name).name == name


@pytest.mark.parametrize("path, key", [(("sensor",), "pixel_size"),
                                       (("photometry",), "zp_nominl"),
                                       ((), "camera_name")])
def test_unknown_key_is_named(mdm_dict, path, key):
    d = copy.deepcopy(mdm_dict)
    sub = d
    for p in path:
        sub = sub[p]
    sub[key] = 1
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        config.camera_from_dict(d, source="test.yaml")


@pytest.mark.parametrize("path", [("sensor", "nx"), ("header", "exptime_card"),
                                  ("astrometry", "model", "x0"), ("site",)])
def test_missing_key_is_named(mdm_dict, path):
    d = copy.deepcopy(mdm_dict)
    sub = d
    for p in path[:-1]:
        sub = sub[p]
    del sub[path[-1]]
    with pytest.raises(ConfigError, match=f"missing key '{path[-1]}'"):
        config.camera_from_dict(d, source="test.yaml")


@pytest.mark.parametrize("path, value", [(("sensor", "nx"), "1600"),
                                         (("sensor", "nx"), 1600.5),
                                         (("site", "lat_deg"), "31.9"),
                                         (("site", "prefer_header"), "yes"),
                                         (("photometry", "annulus_px"), 8.0)])
def test_wrong_type_is_named(mdm_dict, path, value):
    d = copy.deepcopy(mdm_dict)
    sub = d
    for p in path[:-1]:
        sub = sub[p]
    sub[path[-1]] = value
    with pytest.raises(ConfigError, match=r"test\.yaml\." + r"\.".join(path)):
        config.camera_from_dict(d, source="test.yaml")


def test_unknown_camera_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known cameras: .*MDM"):
        config.load_camera("NO_SUCH_CAMERA")


def test_bad_yaml_is_reported(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load_camera(p)


def _header(**cards):
    h = fits.Header()
    for k, v in cards.items():
        h[k] = v
    return h


def test_select_by_instrume():
    names = config.known_cameras()
    cams = [config.load_camera(n) for n in names]
    tagged = [c for c in cams if c.header.instrume]
    if not tagged:
        pytest.skip("no configuration in etc/ declares header.instrume")
    c = tagged[0]
    # INSTRUME wins over a size that matches nothing
    cam, why = config.select_camera(_header(INSTRUME=c.header.instrume), (17, 23))
    assert cam.name == c.name and "INSTRUME" in why


def test_select_by_size():
    mdm = config.load_camera("MDM")
    cam, why = config.select_camera(_header(INSTRUME="SOMETHING ELSE"),
                                    (mdm.sensor.ny, mdm.sensor.nx))
    assert (cam.sensor.nx, cam.sensor.ny) == (mdm.sensor.nx, mdm.sensor.ny)
    assert "size" in why


def test_select_falls_back_to_mdm():
    cam, why = config.select_camera(_header(), (17, 23))
    assert cam.name == config.DEFAULT_CAMERA and "default" in why


def test_masks_resolve_beside_the_yaml(tmp_path, mdm_dict):
    from allsky_camera.camera import masks

    d = copy.deepcopy(mdm_dict)
    ny, nx = d["sensor"]["ny"], d["sensor"]["nx"]
    m = np.zeros((ny, nx), dtype=np.uint8)
    m[10, 20] = 1
    fits.PrimaryHDU(m).writeto(tmp_path / "X_bpm.fits")
    d["sensor"]["bad_pixel_mask"] = "X_bpm.fits"
    cam = config.camera_from_dict(d, source=str(tmp_path / "X.yaml"))
    got = masks.read_mask(cam.resolve(cam.sensor.bad_pixel_mask), (ny, nx))
    assert got.dtype == bool and got.sum() == 1 and got[10, 20]
