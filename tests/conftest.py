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
