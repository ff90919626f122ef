"""Camera model: forward and inverse projections agree for every family, tilt and parity."""

import numpy as np
import pytest

from allsky_camera.camera.camera_model import PROJECTIONS, CameraModel
from allsky_camera.exceptions import ConfigError

#: Radial coefficients of a 1.5 mm-class fisheye on ~800x600 pixels per
#: family (poly: pixels per degree powers; others: f in px/rad, k1, k2).
COEFFS = {"poly": (3.3, -2e-3, 1e-5),
          "equidistant": (330.0, 0.01, -0.002),
          "equisolid": (330.0, 0.01),
          "stereographic": (250.0, -0.02),
          "orthographic": (450.0,)}


def model(projection, parity, tilt):
    return CameraModel(x0=400.3, y0=300.7, rot_deg=100.0, parity=parity,
                       projection=projection, coeffs=COEFFS[projection], scale=1.01,
                       tilt_n_deg=tilt[0], tilt_e_deg=tilt[1])


@pytest.fixture(scope="module")
def sky():
    rng = np.random.default_rng(3)
    # uniform on the sky above 0.5 deg altitude
    alt = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(0.5)), 1.0, 4000)))
    return alt, rng.uniform(0.0, 360.0, alt.size)


@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("parity", [1, -1])
@pytest.mark.parametrize("tilt", [(0.0, 0.0), (1.0, -0.7)])
def test_round_trip(sky, projection, parity, tilt):
    m = model(projection, parity, tilt)
    alt, az = sky
    x, y = m.altaz_to_xy(alt, az)
    alt2, az2 = m.xy_to_altaz(x, y)
    x2, y2 = m.altaz_to_xy(alt2, az2)
    assert np.all(np.isfinite(x2))
    assert np.max(np.hypot(x2 - x, y2 - y)) < 0.01
    # and from pixels: a grid inside the image circle
    gx, gy = np.meshgrid(np.arange(150.0, 650.0, 37.0), np.arange(60.0, 540.0, 37.0))
    a, z = m.xy_to_altaz(gx, gy)
    ok = a > 0
    xb, yb = m.altaz_to_xy(a[ok], z[ok])
    assert np.max(np.hypot(xb - gx[ok], yb - gy[ok])) < 0.01


def test_parity_mirrors_the_image():
    """Parity -1 mirrors the unrotated image (x' -> -x'); rot_deg then turns
    both the same way in the pixel plane."""
    m = model("equisolid", 1, (0.0, 0.0))
    m0, mm0 = m.replace(rot_deg=0.0), m.replace(rot_deg=0.0, parity=-1)
    x, y = m0.altaz_to_xy(40.0, 30.0)
    xm, ym = mm0.altaz_to_xy(40.0, 30.0)
    assert xm - m.x0 == pytest.approx(-(x - m.x0))
    assert ym == pytest.approx(y)
    # the rotated mirrored camera is the mirrored image turned by rot_deg
    rr = np.radians(m.rot_deg)
    dx, dy = xm - m.x0, ym - m.y0
    xr, yr = m.replace(parity=-1).altaz_to_xy(40.0, 30.0)
    assert xr == pytest.approx(m.x0 + np.cos(rr) * dx - np.sin(rr) * dy)
    assert yr == pytest.approx(m.y0 + np.sin(rr) * dx + np.cos(rr) * dy)


def test_original_pipeline_reference_pixels():
    """The stock MDM template against numbers computed outside the project
    from the original pipeline's published formula (dx = -sin(az) r,
    dy = cos(az) r, x = x0 + cos R dx - sin R dy, y = y0 + sin R dx + cos R dy,
    R = +3.5506619 deg), to 0.01 px; and back."""
    from allsky_camera.camera import config

    m = config.load_camera("MDM").astrometry.model
    ref = {(45.0, 0.0): (782.63, 829.55), (45.0, 90.0): (484.18, 491.61),
           (30.0, 180.0): (828.72, 86.89), (60.0, 270.0): (1013.82, 524.48),
           (20.0, 45.0): (430.93, 839.41)}
    for (alt, az), (xr, yr) in ref.items():
        x, y = m.altaz_to_xy(alt, az)
        assert abs(x - xr) <= 0.01 and abs(y - yr) <= 0.01, (alt, az, x, y)
        a2, z2 = m.xy_to_altaz(x, y)
        assert a2 == pytest.approx(alt, abs=1e-6)
        assert (z2 - az + 180.0) % 360.0 - 180.0 == pytest.approx(0.0, abs=1e-6)


def test_tilt_moves_the_zenith():
    """A tilt toward north puts the zenith on the optical axis' south side."""
    m = model("equidistant", 1, (1.0, 0.0))
    t = m.replace(tilt_n_deg=0.0)
    xz, yz = m.altaz_to_xy(90.0, 0.0)
    assert np.hypot(xz - m.x0, yz - m.y0) == pytest.approx(t.radius(1.0), rel=1e-6)
    # the zenith lies where the untilted model puts the point 1 deg south of it
    xs, ys = t.altaz_to_xy(89.0, 180.0)
    assert (xz, yz) == pytest.approx((xs, ys), abs=1e-6)


@pytest.mark.parametrize("projection", ["equidistant", "equisolid", "stereographic",
                                        "orthographic"])
def test_standard_families_at_small_angles(projection):
    """Every family is r = f theta to first order."""
    m = CameraModel(0.0, 0.0, 0.0, 1, projection, (300.0,))
    assert m.radius(0.1) == pytest.approx(300.0 * np.radians(0.1), rel=1e-5)
    assert m.radius(90.0) == pytest.approx(300.0 * {
        "equidistant": np.pi / 2, "equisolid": np.sqrt(2), "stereographic": 2.0,
        "orthographic": 1.0}[projection], rel=1e-9)


def test_pixel_solid_angle_sums_to_the_hemisphere():
    m = model("equisolid", -1, (0.0, 0.0))
    gx, gy = np.meshgrid(np.arange(-200, 1000), np.arange(-300, 900))
    alt, _ = m.xy_to_altaz(gx, gy)
    omega = m.pixel_solid_angle(gx, gy)
    assert np.sum(omega[alt > 0]) == pytest.approx(2 * np.pi, rel=2e-3)


def test_serialisation_round_trip():
    m = model("stereographic", -1, (0.5, 0.2))
    assert CameraModel.from_dict(m.to_dict()) == m
    cards = {k: v for k, v, _ in m.header_cards("T")}
    assert all(len(k) <= 8 for k in cards)
    assert cards["TPARITY"] == -1 and cards["TPROJ"] == "stereographic"


@pytest.mark.parametrize("change, word", [({"projection": "fisheye"}, "projection"),
                                          ({"parity": 0}, "parity"),
                                          ({"coeffs": ()}, "coeffs"),
                                          ({"coeffs": (-300.0,)}, "coeffs")])
def test_bad_models_are_refused(change, word):
    d = model("equidistant", 1, (0.0, 0.0)).to_dict() | change
    d["coeffs"] = change.get("coeffs", (330.0,))
    with pytest.raises(ConfigError, match=word):
        CameraModel.from_dict(d)


@pytest.mark.parametrize("change", [{"x0": 401.0, "rot_deg": 99.5}, {"scale": 0.98},
                                    {"tilt_n_deg": 0.3, "tilt_e_deg": -0.1, "y0": 299.0}])
def test_cheap_replace_equals_a_validated_copy(sky, change):
    # replace() skips the validation for geometry-only changes: the copy must
    # be the dataclass that a validated construction gives, and project alike
    import dataclasses
    m = model("equidistant", -1, (1.0, -0.7))
    m.theta(np.array([100.0]))               # fills the cached inverse table
    fast, slow = m.replace(**change), dataclasses.replace(m, **change)
    assert fast == slow and fast is not m
    alt, az = sky
    np.testing.assert_array_equal(fast.altaz_to_xy(alt, az), slow.altaz_to_xy(alt, az))
    r = np.linspace(0.0, 500.0, 50)
    np.testing.assert_array_equal(fast.theta(r), slow.theta(r))   # no stale table
    assert m == model("equidistant", -1, (1.0, -0.7))             # the original is unchanged


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_cheap_replace_still_refuses_a_bad_scale(scale):
    with pytest.raises(ConfigError, match="scale"):
        model("poly", 1, (0.0, 0.0)).replace(scale=scale)
