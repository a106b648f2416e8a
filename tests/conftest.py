"""Shared fixtures: the public test data in ../shared and small generated projects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def _log_to_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory):
    """Tests never write to the user's real log folder."""
    os.environ["CASDESK_LOG_DIR"] = str(tmp_path_factory.mktemp("logs"))
    yield

REPO = Path(__file__).resolve().parents[1]
PUBLIC = (REPO / ".." / "shared" / "data" / "public").resolve()


@pytest.fixture(scope="session")
def public_data() -> Path:
    """The read-only public test data (real Landsat scene, CAS tiles, ...)."""
    if not (PUBLIC / "RGB.byte.tif").exists():
        pytest.skip(f"public test data not found at {PUBLIC} (needs the shared/ folder beside the repo)")
    return PUBLIC


@pytest.fixture()
def project(tmp_path: Path):
    """An empty project in a temporary folder."""
    from casdesk.core.catalog import Catalog

    cat = Catalog.create(tmp_path / "test.casdesk")
    yield cat
    cat.close()
