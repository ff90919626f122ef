"""Partly cloudy skies keep their astrometry and their cloud map.

Half and three quarters of the sky under thick cloud (transmission 0.01,
5 magnitudes: no star left there): the astrometry must be a FIT and the
cloud map must read the clear cells clear and the clouded ones cloudy.
The cell positions come from healpy (``pix2ang``), the cloud from the
simulator's azimuth sectors.
"""

import numpy as np
import pytest

from allsky_camera import ac_proc
from allsky_camera.camera import config
from allsky_camera.sim import simulate
from allsky_camera.stages import io

#: cells whose centre lies within this of a cloud edge are not judged (an
#: Nside-8 cell is ~7 deg across), deg
EDGE_DEG = 8.0
CLOUD_AZ_DEG = 45.0


@pytest.fixture(scope="module")
def camera():
    return config.load_camera("MDM")


def _reduce(camera, outdir, kind, seed):
    sim = simulate.simulate(camera, seed=seed,
                            clouds=simulate.Clouds(kind, 0.01, az_deg=CLOUD_AZ_DEG))
    exp = io.exposure_from_data(str(outdir / f"{kind}.fits"), sim.image, sim.header, camera)
    opts = ac_proc.build_parser().parse_args(["x", "--outdir", str(outdir), "--skip_checkplots",
                                              "--skip_sbmap", "--dont_write_detrended"])
    return ac_proc.process(exp, camera, opts)


@pytest.fixture(scope="module", params=[("half", 90.0), ("three-quarter", 135.0)],
            ids=["half", "three-quarter"])
def cloudy(request, camera, tmp_path_factory):
    kind, half_width = request.param
    return _reduce(camera, tmp_path_factory.mktemp(kind), kind, 41), half_width


@pytest.mark.slow
def test_partly_cloudy_sky_is_fit(cloudy):
    res, _ = cloudy
    assert res["solution"].status == "FIT", res["solution"].gate.message


@pytest.mark.slow
def test_cloud_map_cells_read_right(cloudy, camera):
    import healpy as hp

    res, half_width = cloudy
    tr = res["transparency"]
    per_cell = tr.per_cell
    theta, phi = hp.pix2ang(camera.transparency.nside, np.arange(per_cell.size))
    daz = np.abs((np.degrees(phi) - CLOUD_AZ_DEG + 180.0) % 360.0 - 180.0)
    sampled = np.isfinite(per_cell) & (np.abs(daz - half_width) > EDGE_DEG)
    clouded = sampled & (daz < half_width)
    clear = sampled & (daz > half_width)
    assert clouded.sum() > 20 and clear.sum() > 10
    assert np.mean(per_cell[clouded] < 0.5) >= 0.95
    assert np.mean(per_cell[clear] > 0.8) >= 0.9
    truth = 1.0 - half_width / 180.0            # clear fraction of the sky by azimuth
    assert tr.summary.clear_fraction == pytest.approx(truth, abs=0.08)
