"""One reduction, two front ends: the API and the CLI give the same products."""

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from allsky_camera import ac_proc
from allsky_camera.camera import config
from allsky_camera.output import writers
from allsky_camera.output.products import Products, output_paths, wanted_paths
from allsky_camera.reduction import Reduction, reduce_exposure
from allsky_camera.sim import simulate
from allsky_camera.stages import io

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
SCRIPT = REPO / "py" / "allsky_camera" / "ac_proc.py"


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """A simulated frame on disk: (camera, path, simulation)."""
    camera = config.load_camera("MDM")
    d = tmp_path_factory.mktemp("raw")
    sim = simulate.simulate(camera, seed=21, zenith_shift=(1.0, -0.5), rotation_deg=0.1)
    path = d / "2020_10_11__22_00_00.fits"
    simulate.write_simulation(sim, path)
    return camera, path, sim


def test_products_follow_the_options():
    p = Products.from_options(ac_proc.build_parser().parse_args(
        ["x", "--skip_checkplots", "--write_sbmap", "--multiproc", "3", "--detect_streaks"]))
    assert (p.catalog, p.detrended, p.checkplots, p.sbmap, p.sbmap_fits, p.streaks) == (
        True, True, False, True, True, True)
    assert p.workers == 3 and p.centroid_workers == 1
    names = [q.name for q in wanted_paths(p, output_paths("o", "f"))]
    assert names == ["f-cat.fits", "f-detrended.fits", "f-sbmap.fits", "f-streaks.fits"]
    # thread counts do not change the science, product choices do
    assert Products(workers=4).science_hash() == Products().science_hash()
    assert Products(healpix=True).science_hash() != Products().science_hash()


@pytest.mark.slow
def test_api_and_cli_write_the_same_catalog(frame, tmp_path):
    camera, path, sim = frame
    before = set(os.listdir(path.parent))
    exp = io.read_exposure(str(path), camera)
    raw = exp.raw.copy()
    products = Products(detrended=False, checkplots=False)
    red = reduce_exposure(exp, camera, products)
    assert isinstance(red, Reduction)
    assert set(os.listdir(path.parent)) == before          # the reduction writes nothing
    np.testing.assert_array_equal(exp.raw, raw)             # nor changes its input
    api = tmp_path / "api"
    api.mkdir()
    written = writers.write_products(red, products, output_paths(api, exp.stem))
    assert [p.name for p in written] == [f"{exp.stem}-cat.fits"]

    cli = tmp_path / "cli"
    r = subprocess.run([sys.executable, str(SCRIPT), str(path), "--outdir", str(cli),
                        "--camera", "MDM", "--skip_checkplots", "--dont_write_detrended", "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a, b = api / f"{exp.stem}-cat.fits", cli / f"{exp.stem}-cat.fits"
    assert a.read_bytes() == b.read_bytes()
    with fits.open(a) as h:
        assert h[1].header["CAMERA"] == "MDM" and len(h[1].data) == len(red.stars)


def test_static_masks_are_cached_read_only_and_follow_the_file(tmp_path):
    """A night reads a mask file once; a rewritten file is read again."""
    from allsky_camera import reduction
    from allsky_camera.camera import masks

    path = tmp_path / "m.fits"
    a = np.zeros((20, 30), bool)
    a[3, 4] = True
    masks.write_mask(a, path)
    first = reduction._read_static_mask(path, a.shape)
    np.testing.assert_array_equal(first, a)
    assert reduction._read_static_mask(path, a.shape) is first
    with pytest.raises(ValueError):
        first[0, 0] = True                        # shared between frames: read-only
    b = a.copy()
    b[10, 20] = True
    masks.write_mask(b, path)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    np.testing.assert_array_equal(reduction._read_static_mask(path, a.shape), b)
    with pytest.raises(Exception, match="m2.fits"):
        reduction._read_static_mask(tmp_path / "m2.fits", a.shape)
