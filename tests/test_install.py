"""Install and run: stock configurations as package data, the camera search path,
duplicate INSTRUME, commented YAML, console scripts (--version, conflicting flags)."""

import copy
import dataclasses
import fnmatch
import logging
import tomllib
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from allsky_camera import __version__, ac_calibrate, ac_proc, ac_simulate
from allsky_camera.camera import camera_yaml, config
from allsky_camera.exceptions import ConfigError
from tests_helpers import RecordingHandler

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def mdm_dict():
    return config.camera_to_dict(config.load_camera("MDM"))


def _write_camera(folder, d):
    """A camera YAML (commented) in ``folder``, named after ``d['name']``."""
    path = Path(folder) / f"{d['name']}.yaml"
    path.write_text(camera_yaml.dump(d))
    return path


def _one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# ------------------------------------------------------------ package data
def test_stock_dir_found_with_importlib_resources(tmp_path, monkeypatch):
    # an installed package: its etc/ data folder, as importlib.resources sees it
    pkg = tmp_path / "fake_allsky_pkg"
    (pkg / "etc").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "etc" / "X.yaml").write_text("name: X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert config.stock_dir("fake_allsky_pkg") == pkg / "etc"
    # a package without one (this source tree): the checkout's top-level etc/
    (tmp_path / "bare_allsky_pkg").mkdir()
    (tmp_path / "bare_allsky_pkg" / "__init__.py").write_text("")
    assert config.stock_dir("bare_allsky_pkg") == REPO / "etc"


def test_checkout_uses_top_level_etc():
    assert config.ETC_DIR == REPO / "etc"
    assert config.camera_dirs(env="") == [REPO / "etc"]


def test_wheel_ships_every_stock_file_the_configurations_need():
    st = PYPROJECT["tool"]["setuptools"]
    assert st["package-dir"]["allsky_camera.etc"] == "etc"
    assert "allsky_camera.etc" in st["packages"]
    patterns = st["package-data"]["allsky_camera.etc"]
    shipped = {p.name for p in (REPO / "etc").iterdir()
               if any(fnmatch.fnmatch(p.name, pat) for pat in patterns)}
    for name in config.known_cameras(dirs=[REPO / "etc"]):
        cam = config.load_camera(REPO / "etc" / f"{name}.yaml")
        assert f"{name}.yaml" in shipped
        for mask in (cam.sensor.bad_pixel_mask, cam.sensor.obstruction_mask):
            if mask:
                assert mask in shipped, f"{mask} of {name} is not package data"


def test_declared_scripts_and_version():
    assert PYPROJECT["project"]["version"] == __version__
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) == {"ac_proc", "ac_calibrate", "ac_simulate", "ac_night"}
    for target in scripts.values():
        mod, func = target.split(":")
        module = __import__(mod, fromlist=[func])
        assert callable(getattr(module, func))
    # healpy and photutils are test references only
    deps = " ".join(PYPROJECT["project"]["dependencies"])
    assert "healpy" not in deps and "photutils" not in deps
    test_extra = " ".join(PYPROJECT["project"]["optional-dependencies"]["test"])
    assert "healpy" in test_extra and "photutils" in test_extra


# ------------------------------------------------------------ search path
def test_environment_folder_adds_and_shadows_cameras(tmp_path, monkeypatch, mdm_dict):
    mine = copy.deepcopy(mdm_dict)
    mine["name"] = "MYCAM"
    _write_camera(tmp_path, mine)
    shadow = copy.deepcopy(mdm_dict)
    shadow["description"] = "my own MDM"
    _write_camera(tmp_path, shadow)
    monkeypatch.setenv(config.CAMERA_PATH_ENV, str(tmp_path))
    assert config.camera_dirs() == [tmp_path, config.ETC_DIR]
    names = config.known_cameras()
    assert "MYCAM" in names and "DCT" in names
    assert config.load_camera("MYCAM").source == str(tmp_path / "MYCAM.yaml")
    assert config.load_camera("MDM").description == "my own MDM"


def test_camera_dir_comes_before_the_environment(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv(config.CAMERA_PATH_ENV, str(b))
    assert config.camera_dirs([a]) == [a, b, config.ETC_DIR]


def test_missing_camera_folder_is_one_line(tmp_path, capsys):
    status = ac_proc.main(["--demo", "--camera-dir", str(tmp_path / "nope"),
                           "--outdir", str(tmp_path)])
    assert status == 2
    line = _one_line(capsys.readouterr().err)
    assert "nope" in line and "--camera-dir" in line and "not a directory" in line


def test_unknown_camera_names_the_folders_searched(tmp_path):
    with pytest.raises(ConfigError, match=f"known cameras: .*MDM.*in {tmp_path}"):
        config.load_camera("NOT_A_CAMERA", config.camera_dirs([tmp_path]))


def test_demo_and_simulator_use_camera_dir(tmp_path, capsys, mdm_dict):
    mine = copy.deepcopy(mdm_dict)
    mine["name"] = "MYCAM"
    folder = tmp_path / "cams"
    folder.mkdir()
    _write_camera(folder, mine)
    out = tmp_path / "out"
    out.mkdir()
    assert ac_proc.main(["--demo", "--camera", "MYCAM", "--camera-dir", str(folder), "-q",
                         "--outdir", str(out), "--skip_checkplots", "--skip_sbmap",
                         "--dont_write_detrended"]) == 0
    with fits.open(out / "demo_MYCAM-cat.fits") as h:
        assert h[1].header["CAMERA"] == "MYCAM"
    assert ac_simulate.main([str(tmp_path / "sim.fits"), "--camera", "MYCAM", "--camera-dir",
                          str(folder)]) == 0
    assert "MYCAM" in capsys.readouterr().out


# ------------------------------------------------------------ selection
def _tagged(d, name, instrume, nx=None, ny=None):
    d = copy.deepcopy(d)
    d["name"] = name
    d["header"]["instrume"] = instrume
    if nx:
        d["sensor"].update(nx=nx, ny=ny, dark_region=[0, 10, 0, 10])
    return d


def test_two_cameras_with_one_instrume_is_an_error(tmp_path, mdm_dict):
    p1 = _write_camera(tmp_path, _tagged(mdm_dict, "CAM_A", "TWIN"))
    p2 = _write_camera(tmp_path, _tagged(mdm_dict, "CAM_B", "TWIN"))
    h = fits.Header({"INSTRUME": "TWIN"})
    with pytest.raises(ConfigError) as err:
        config.select_camera(h, (1200, 1600), config.camera_dirs([tmp_path]))
    assert str(p1) in str(err.value) and str(p2) in str(err.value)
    assert "--camera" in str(err.value)
    # another INSTRUME is not ambiguous: the one tagged camera is chosen
    _write_camera(tmp_path, _tagged(mdm_dict, "CAM_C", "SOLO"))
    cam, why = config.select_camera(fits.Header({"INSTRUME": "SOLO"}), (1, 1),
                                    config.camera_dirs([tmp_path]))
    assert cam.name == "CAM_C" and "INSTRUME" in why


def test_ambiguous_instrume_on_the_command_line(tmp_path, capsys, mdm_dict):
    folder = tmp_path / "cams"
    folder.mkdir()
    for n in ("CAM_A", "CAM_B"):
        _write_camera(folder, _tagged(mdm_dict, n, "TWIN", nx=64, ny=48))
    frame = tmp_path / "f.fits"
    fits.PrimaryHDU(np.ones((48, 64), np.uint16),
                    fits.Header({"INSTRUME": "TWIN", "EXPOSURE": 1.0,
                                 "DATE-OBS": "2020-10-11T21:38:23"})).writeto(frame)
    assert ac_proc.main([str(frame), "--camera-dir", str(folder), "--outdir",
                         str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "CAM_A.yaml" in line and "CAM_B.yaml" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cams", "f.fits"]


def test_same_size_cameras_warn_naming_both(tmp_path, mdm_dict):
    for n in ("SIZE_A", "SIZE_B"):
        _write_camera(tmp_path, _tagged(mdm_dict, n, None, nx=64, ny=48))
    rec = RecordingHandler(logging.WARNING)
    logger = logging.getLogger("allsky_camera.camera.config")
    logger.addHandler(rec)
    try:
        cam, why = config.select_camera(fits.Header(), (48, 64), config.camera_dirs([tmp_path]))
    finally:
        logger.removeHandler(rec)
    assert cam.name == "SIZE_A" and "size" in why
    text = " ".join(rec.messages)
    assert "SIZE_A.yaml" in text and "SIZE_B.yaml" in text


# ------------------------------------------------------------ console scripts
@pytest.mark.parametrize("main", [ac_proc.main, ac_calibrate.main, ac_simulate.main])
def test_version_on_every_script(main, capsys):
    with pytest.raises(SystemExit) as ex:
        main(["--version"])
    assert ex.value.code == 0
    assert capsys.readouterr().out.strip() == f"allsky_camera {__version__}"


def test_camera_help_states_the_automatic_default():
    text = " ".join(ac_proc.build_parser().format_help().split())
    assert "(default MDM)" not in text
    assert "INSTRUME" in text and "image size" in text


@pytest.mark.parametrize("argv, names", [
    (["x.fits", "--skip_sbmap", "--write_sbmap"], ("--skip_sbmap", "--write_sbmap")),
    (["x.fits", "-v", "-q"], ("--verbose", "--quiet")),
    (["x.fits", "--demo"], ("--demo", "file name")),
])
def test_conflicting_flags_are_one_line(argv, names, tmp_path, capsys):
    assert ac_proc.main([*argv, "--outdir", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert all(n in line for n in names) and "contradict" in line
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ commented YAML
def _fields(cls, prefix=""):
    """Dotted keys of every field of a configuration dataclass, recursively."""
    from allsky_camera.camera.camera_model import CameraModel

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "source" and cls is config.Camera:
            continue
        yield prefix + f.name
        tps = [hints[f.name], *typing.get_args(hints[f.name])]
        for tp in tps:
            if dataclasses.is_dataclass(tp) or tp is CameraModel:
                yield from _fields(tp, f"{prefix}{f.name}.")


def test_every_configuration_key_has_a_description():
    missing = [k for k in _fields(config.Camera) if k not in config.KEY_DOCS]
    assert not missing, f"add these to config.KEY_DOCS: {missing}"


@pytest.mark.parametrize("name", ["MDM", "DCT"])
def test_commented_yaml_reads_back_the_same(name, tmp_path):
    d = config.camera_to_dict(config.load_camera(name))
    text = camera_yaml.dump(d, preamble=["a test"])
    assert yaml.safe_load(text) == d          # PyYAML sees the comments as comments
    for line in text.splitlines():
        assert "  # " in line or line.startswith("# "), line
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    assert config.camera_to_dict(config.load_camera(p)) == d


def test_awkward_strings_stay_on_their_line():
    docs = {"a": "x", "b": "y", "c": "z"}
    d = {"a": "two\nlines # and a hash", "b": "key: value", "c": [1.5, None, "q # r"]}
    text = camera_yaml.dump(d, docs=docs)
    assert len(text.splitlines()) == 3
    assert yaml.safe_load(text) == d


def test_a_key_without_description_is_refused():
    with pytest.raises(ValueError, match="'sensor.pixel_size'"):
        camera_yaml.dump({"sensor": {"nx": 3, "pixel_size": 1}})


def test_stock_dct_yaml_has_a_comment_on_every_key():
    for line in (REPO / "etc" / "DCT.yaml").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert " # " in line, line


def test_mask_names_are_set_in_place():
    text = (REPO / "etc" / "MDM.yaml").read_text()
    docs = config.KEY_DOCS
    new = ac_calibrate.set_mask_names(text, ("M_bpm.fits", "M_obs.fits"), docs)
    d_old, d_new = yaml.safe_load(text), yaml.safe_load(new)
    assert d_new["sensor"]["bad_pixel_mask"] == "M_bpm.fits"
    assert d_new["sensor"]["obstruction_mask"] == "M_obs.fits"
    d_new["sensor"]["bad_pixel_mask"] = d_new["sensor"]["obstruction_mask"] = None
    assert d_new == d_old
    changed = [b for a, b in zip(text.splitlines(), new.splitlines()) if a != b]
    assert len(changed) == 2 and all("# FITS image" in c for c in changed)


def test_build_masks_refuses_to_replace_masks(tmp_path, capsys, mdm_dict):
    d = copy.deepcopy(mdm_dict)
    d["name"] = "MASKED"
    d["sensor"]["bad_pixel_mask"] = "MASKED_bpm.fits"
    yml = _write_camera(tmp_path, d)
    bpm = tmp_path / "MASKED_bpm.fits"
    bpm.write_bytes(b"not touched")
    status = ac_calibrate.main([str(tmp_path / "frame.fits"), "--build-masks",
                                "--output", str(yml)])
    assert status == 2
    line = _one_line(capsys.readouterr().err)
    assert "MASKED_bpm.fits" in line and "--overwrite" in line
    assert bpm.read_bytes() == b"not touched"


def test_readme_flag_table_matches_flags():
    from allsky_camera.flags import FLAGS

    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].startswith("`") and cells[0].isdigit():
            rows[cells[2].strip("`")] = (int(cells[0]), int(cells[1]), cells[3])
    assert rows == {n: (v.bit_length() - 1, v, d) for n, (v, d) in FLAGS.items()}


@pytest.mark.parametrize("argv, says", [
    (["f.fits"], "--camera-dir DIR and --name NAME"),
    (["f.fits", "--build-masks"], "--build-masks: give --output"),
])
def test_calibrate_says_where_to_write(argv, says, tmp_path, capsys):
    assert ac_calibrate.main([str(tmp_path / a) if a.endswith(".fits") else a
                              for a in argv]) == 2
    assert says in _one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
