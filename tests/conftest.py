"""Shared test set-up: import the package from the source tree, fail on warnings,
keep the Hipparcos cache in a temporary folder (never the user's ~/.cache)."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "py"))
sys.path.insert(0, str(REPO / "tests"))


@pytest.fixture(scope="session", autouse=True)
def temporary_cache(tmp_path_factory):
    """$ALLSKY_CAMERA_CACHE set to a fresh folder for the whole session (subprocesses too)."""
    folder = tmp_path_factory.mktemp("allsky_camera_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALLSKY_CAMERA_CACHE", str(folder))
        mp.delenv("ALLSKY_CAMERA_PATH", raising=False)   # the stock cameras only
        yield folder


@pytest.fixture(autouse=True)
def restore_logging():
    """Each test starts and ends with the package's loggers as Python left them.

    A command-line ``main()`` run in-process sets its own stderr handler, level
    and ``propagate = False`` on these loggers (right for a program that owns
    its process); without this reset, later tests' ``caplog`` would see nothing.
    """
    import logging

    names = ("allsky_camera", "py.warnings")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                 logging.getLogger(n).propagate) for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
