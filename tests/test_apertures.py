"""Exact apertures against analytic truth, numerical integration and photutils."""

import numpy as np
import pytest
from scipy.integrate import trapezoid  # numpy < 2 has no np.trapezoid

from allsky_camera.stages import apertures
from allsky_camera.stages.apertures import annulus_median, aperture_sums, circle_pixel_overlap

RADII = [0.3, 1.0, 2.0, 2.3, 4.5]


def _segment(r, d):
    """Area of the part of a disc of radius r beyond a chord at distance d."""
    return r * r * np.arccos(d / r) - d * np.sqrt(r * r - d * d)


def _n_touching(x, y, r, keep):
    """Pixels whose square comes nearer than r to (x, y), among those where
    keep(i, j) is True (brute force over a generous box)."""
    n = 0
    for j in range(int(y) - 5, int(y) + 6):
        for i in range(int(x) - 5, int(x) + 6):
            gx = max(abs(i - x) - 0.5, 0.0)
            gy = max(abs(j - y) - 0.5, 0.0)
            n += bool(gx * gx + gy * gy < r * r and keep(i, j))
    return n


def _integrate(x0, x1, y0, y1, r, n=100_001):
    """Overlap by the trapezoid rule: the chord length inside [y0, y1]
    integrated over x = r sin(t) (which removes the square-root end points)."""
    t = np.linspace(*np.arcsin(np.clip([x0 / r, x1 / r], -1, 1)), n)
    s = r * np.cos(t)
    chord = np.clip(np.minimum(y1, s) - np.maximum(y0, -s), 0.0, None)
    return trapezoid(chord * r * np.cos(t), t)


# --- circle_pixel_overlap ----------------------------------------------------

@pytest.mark.parametrize("r", RADII)
def test_overlap_analytic(r):
    assert circle_pixel_overlap(-r - 1, r + 3, -r, r, r) == pytest.approx(np.pi * r * r, rel=1e-14)
    # a small rectangle well inside: its own area
    assert circle_pixel_overlap(-0.1 * r, 0.2 * r, 0.05 * r, 0.3 * r, r) == pytest.approx(
        0.3 * r * 0.25 * r, rel=1e-12)
    # quadrants and half planes
    for q in ((0, 9, 0, 9), (-9, 0, 0, 9), (-9, 0, -9, 0), (0, 9, -9, 0)):
        assert circle_pixel_overlap(*q, r) == pytest.approx(np.pi * r * r / 4, rel=1e-13)
    for d in (0.0, 0.3 * r, 0.9 * r):
        assert circle_pixel_overlap(d, 9, -9, 9, r) == pytest.approx(_segment(r, d), rel=1e-12)
        assert circle_pixel_overlap(-9, 9, -9, -d, r) == pytest.approx(_segment(r, d), rel=1e-12)
    # outside
    assert circle_pixel_overlap(r, r + 1, -1, 1, r) == 0.0
    assert circle_pixel_overlap(0.8 * r, 2 * r, 0.8 * r, 2 * r, r) == 0.0


def test_overlap_symmetries():
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(-3, 2, (2, 500))
    x1, y1 = x0 + rng.uniform(0, 2, 500), y0 + rng.uniform(0, 2, 500)
    r = rng.uniform(0.2, 3, 500)
    a = circle_pixel_overlap(x0, x1, y0, y1, r)
    for b in (circle_pixel_overlap(-x1, -x0, y0, y1, r),       # mirror in x
              circle_pixel_overlap(x0, x1, -y1, -y0, r),       # mirror in y
              circle_pixel_overlap(y0, y1, x0, x1, r),         # swap the axes
              circle_pixel_overlap(-y1, -y0, x0, x1, r)):      # rotate by 90 deg
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("r", [*RADII, 3.0])
def test_overlap_pixel_grid_sums_to_disc(r):
    rng = np.random.default_rng(int(10 * r))
    for _ in range(5):
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        g = np.arange(-int(r) - 2, int(r) + 2)
        gx, gy = np.meshgrid(g - 0.5 - cx, g - 0.5 - cy)
        w = circle_pixel_overlap(gx, gx + 1, gy, gy + 1, r)
        assert w.min() >= 0 and w.max() <= 1 + 1e-12
        assert w.sum() == pytest.approx(np.pi * r * r, abs=1e-10)


def test_overlap_against_numerical_integration():
    rng = np.random.default_rng(1)
    for _ in range(40):
        r = rng.uniform(0.3, 3.0)
        x0, y0 = rng.uniform(-1.3 * r, 1.0 * r, 2)
        x1, y1 = x0 + rng.uniform(0.01, 1.5 * r), y0 + rng.uniform(0.01, 1.5 * r)
        num = _integrate(x0, x1, y0, y1, r)
        assert circle_pixel_overlap(x0, x1, y0, y1, r) == pytest.approx(num, abs=1e-8)


def test_overlap_against_monte_carlo():
    rng = np.random.default_rng(2)
    r, rect = 1.7, (-0.4, 1.9, 0.6, 2.2)
    pts = rng.uniform((rect[0], rect[2]), (rect[1], rect[3]), (400_000, 2))
    frac = np.mean(np.hypot(pts[:, 0], pts[:, 1]) < r)
    box = (rect[1] - rect[0]) * (rect[3] - rect[2])
    sigma = box * np.sqrt(frac * (1 - frac) / len(pts))
    assert abs(circle_pixel_overlap(*rect, r) - frac * box) < 4 * sigma


def test_overlap_bad_arguments():
    with pytest.raises(ValueError, match="r"):
        circle_pixel_overlap(0, 1, 0, 1, 0.0)
    with pytest.raises(ValueError, match="dx0"):
        circle_pixel_overlap(1, 0, 0, 1, 1.0)


# --- aperture_sums -----------------------------------------------------------

@pytest.mark.parametrize("r", RADII)
def test_aperture_area_of_ones(r):
    rng = np.random.default_rng(3)
    x, y = rng.uniform(10, 20, 40), rng.uniform(10, 20, 40)
    s, area, nbad = aperture_sums(np.ones((30, 32)), x, y, r)
    np.testing.assert_allclose(area, np.pi * r * r, rtol=1e-12)
    np.testing.assert_allclose(s, np.pi * r * r, rtol=1e-12)
    assert (nbad == 0).all()


@pytest.mark.parametrize("r", [0.7, 2.0, 2.5, 4.5])
def test_aperture_sums_match_photutils(r):
    from photutils.aperture import CircularAperture, aperture_photometry

    rng = np.random.default_rng(4)
    img = rng.normal(10, 3, (120, 150))
    x, y = rng.uniform(6, 143, 300), rng.uniform(6, 113, 300)
    x[:4], y[:4] = [20.0, 20.5, 33.5, 40.0], [30.0, 30.5, 31.0, 41.5]   # on the grid
    s, area, nbad = aperture_sums(img, x, y, r)
    ref = aperture_photometry(img, CircularAperture(np.column_stack([x, y]), r), method="exact")
    np.testing.assert_allclose(s, np.asarray(ref["aperture_sum"]), rtol=1e-8)
    np.testing.assert_allclose(area, np.pi * r * r, rtol=1e-12)
    assert (nbad == 0).all()


def test_aperture_masked_pixels_match_photutils():
    from photutils.aperture import CircularAperture, aperture_photometry

    rng = np.random.default_rng(5)
    img = rng.normal(10, 3, (60, 70))
    mask = rng.random(img.shape) < 0.05
    x, y = rng.uniform(5, 64, 100), rng.uniform(5, 54, 100)
    s, area, nbad = aperture_sums(img, x, y, 2.5, mask=mask)
    ref = aperture_photometry(img, CircularAperture(np.column_stack([x, y]), 2.5),
                              mask=mask, method="exact")
    np.testing.assert_allclose(s, np.asarray(ref["aperture_sum"]), rtol=1e-8)
    # area: pi r^2 less the masked pixels' overlaps
    ones = aperture_sums(np.where(mask, 0.0, 1.0), x, y, 2.5)[0]
    np.testing.assert_allclose(area, ones, rtol=1e-12)
    assert (nbad > 0).sum() > 10


def test_aperture_single_masked_pixel():
    img = np.ones((20, 20))
    mask = np.zeros(img.shape, bool)
    mask[10, 10] = True
    s, area, nbad = aperture_sums(img, 10.0, 10.0, 2.0, mask=mask)
    assert area == pytest.approx(np.pi * 4 - 1.0, rel=1e-12)
    assert s == pytest.approx(area) and nbad == 1


def test_aperture_at_the_edge():
    """Only the on-image part counts: the edge x = -0.5 cuts the disc."""
    img = np.ones((20, 20))
    r = 2.0
    s, area, nbad = aperture_sums(img, [0.0, 1.2], [10.0, 10.0], r)
    for i, d in enumerate((0.5, 1.7)):
        assert area[i] == pytest.approx(np.pi * r * r - _segment(r, d), rel=1e-12)
        assert s[i] == pytest.approx(area[i], rel=1e-12)
    def off_image(i, j):
        return not (0 <= i < 20 and 0 <= j < 20)

    # off-image pixels the disc overlaps: 5 + 3 in columns -1, -2; then 3
    assert nbad.tolist() == [_n_touching(0.0, 10.0, r, off_image),
                             _n_touching(1.2, 10.0, r, off_image)] == [8, 3]
    # a corner: a quarter of the disc plus the rim on two sides
    _, area, _ = aperture_sums(img, 19.0, 19.0, r)
    assert area == pytest.approx(circle_pixel_overlap(-9, 0.5, -9, 0.5, r), rel=1e-12)
    # entirely off the image
    s, area, nbad = aperture_sums(img, -10.0, 5.0, r)
    assert s == 0 and area == 0 and nbad == _n_touching(-10.0, 5.0, r, off_image) == 21


def test_aperture_nan_pixel_is_bad_and_shapes_follow_x():
    img = np.ones((15, 15))
    img[7, 8] = np.nan
    s, area, nbad = aperture_sums(img, np.array([[7.0, 3.0]]), np.array([[7.0, 3.0]]), 1.5)
    assert s.shape == area.shape == nbad.shape == (1, 2)
    assert np.isfinite(s).all() and nbad.tolist() == [[1, 0]]
    s, area, nbad = aperture_sums(img, 3.0, 3.0, 1.5)
    assert np.ndim(s) == 0


@pytest.mark.parametrize("kwargs", [{"r": 0.0}, {"r": -1.0}, {"x": np.nan},
                                    {"mask": np.zeros((3, 3), bool)}])
def test_aperture_bad_arguments(kwargs):
    args = {"x": 5.0, "y": 5.0, "r": 2.0} | kwargs
    mask = args.pop("mask", None)
    with pytest.raises(ValueError):
        aperture_sums(np.ones((10, 10)), args["x"], args["y"], args["r"], mask=mask)
    with pytest.raises(ValueError, match="image"):
        aperture_sums(np.ones(10), 1.0, 1.0, 1.0)


# --- annulus_median ----------------------------------------------------------

def test_annulus_median_against_loop():
    rng = np.random.default_rng(6)
    img = rng.normal(5, 1, (80, 90))
    img[3, 4] = np.nan
    mask = rng.random(img.shape) < 0.1
    x, y = rng.uniform(-3, 93, 60), rng.uniform(-3, 83, 60)
    x[0], y[0] = 40.0, 40.5
    med, sig, n = annulus_median(img, x, y, 5.0, 10.0, mask=mask)
    yy, xx = np.mgrid[:80, :90]
    for i in range(x.size):
        d = np.hypot(xx - x[i], yy - y[i])
        v = img[(d >= 5) & (d < 10) & ~mask & np.isfinite(img)]
        assert n[i] == v.size
        assert med[i] == pytest.approx(np.median(v), rel=1e-14)
        mad = np.median(np.abs(v - np.median(v)))
        assert sig[i] == pytest.approx(1.4826 * mad, rel=1e-4)


def test_annulus_radii_exactly_on_pixels():
    # centres on pixels and half-pixels put pixel centres exactly on both
    # radii (3-4-5 and 6-8-10 triangles): the inner radius is in, the outer out
    img = np.arange(41 * 41, dtype=float).reshape(41, 41)
    yy, xx = np.mgrid[:41, :41]
    for cx, cy, r_in, r_out in ((20.0, 20.0, 5.0, 10.0), (20.5, 20.0, 2.5, 6.5),
                                (20.0, 19.5, 0.5, 12.5)):
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        want = img[(d2 >= r_in ** 2) & (d2 < r_out ** 2)]
        med, _, n = annulus_median(img, cx, cy, r_in, r_out)
        assert n == want.size and med == np.median(want)


def test_annulus_inner_radius_zero_is_a_disc():
    img = np.arange(400.0).reshape(20, 20)
    med, _, n = annulus_median(img, 10.0, 10.0, 0.0, 1.5)
    assert n == 9 and med == img[10, 10]


def test_annulus_empty():
    img = np.ones((30, 30))
    med, sig, n = annulus_median(img, np.array([-40.0, 15.0]), np.array([-40.0, 15.0]), 5, 10,
                                 mask=np.zeros(img.shape, bool))
    assert np.isnan(med[0]) and np.isnan(sig[0]) and n[0] == 0
    assert med[1] == 1.0 and sig[1] == 0.0 and n[1] > 0
    med, sig, n = annulus_median(img, 15.0, 15.0, 5, 10, mask=np.ones(img.shape, bool))
    assert np.isnan(med) and n == 0


def test_interpolated_median_removes_quantisation_bias():
    rng = np.random.default_rng(3)
    true = 12.3
    img = np.rint(rng.normal(true, 2.0, (400, 400)))
    x = rng.uniform(20, 380, 500)
    y = rng.uniform(20, 380, 500)
    plain, _, _ = annulus_median(img, x, y, 5, 10)
    interp, _, _ = annulus_median(img, x, y, 5, 10, quantum=1.0)
    assert abs(np.mean(plain) - true) > 0.15         # mostly snaps to the integer 12
    assert abs(np.mean(interp) - true) < 0.05


@pytest.mark.parametrize("args", [(5.0, 5.0), (6.0, 5.0), (-1.0, 5.0)])
def test_annulus_bad_radii(args):
    with pytest.raises(ValueError, match="r_in"):
        annulus_median(np.ones((10, 10)), 5.0, 5.0, *args)


def test_annulus_bad_quantum():
    with pytest.raises(ValueError, match="quantum"):
        annulus_median(np.ones((10, 10)), 5.0, 5.0, 1.0, 3.0, quantum=-1.0)


def test_mad_constant():
    from statistics import NormalDist

    assert apertures._MAD_TO_SIGMA == pytest.approx(1 / NormalDist().inv_cdf(0.75), rel=1e-12)


@pytest.mark.parametrize("quantum", [0.0, 1.0])
def test_annulus_statistics_are_numpys(quantum):
    """Median (and its quantised interpolation), MAD sigma and count of each
    annulus, against numpy on the pixels selected by a full distance grid."""
    rng = np.random.default_rng(31)
    img = rng.poisson(40.0, (60, 70)).astype(np.float32) - np.float32(3.3)
    mask = rng.random(img.shape) < 0.05
    x = np.r_[rng.uniform(12, 58, 25), 1.2, 68.4]
    y = np.r_[rng.uniform(12, 48, 25), 2.7, 57.9]
    r_in, r_out = 4.0, 9.0
    med, sig, n = annulus_median(img, x, y, r_in, r_out, mask=mask, quantum=quantum)
    yy, xx = np.mgrid[:60, :70]
    for k in range(x.size):
        d2 = (xx - x[k]) ** 2 + (yy - y[k]) ** 2
        v = img[(d2 >= r_in ** 2) & (d2 < r_out ** 2) & ~mask]
        m = float(np.median(v))
        if quantum:
            below = np.sum(v < m - quantum / 2)
            at = np.sum(np.abs(v - m) < quantum / 2)
            m = m - quantum / 2 + quantum * (v.size / 2 - below) / at
        assert n[k] == v.size
        assert med[k] == m
        dev = np.abs(v - np.float32(m)).astype(np.float64)   # float32 deviations
        assert sig[k] == pytest.approx(1.482602218505602 * np.median(dev), rel=1e-12)
