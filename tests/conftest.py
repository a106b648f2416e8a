"""Shared fixtures: the public test data in ../shared and small generated projects."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.support.tiles import square_tile, write_raster

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def _log_to_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory):
    """Tests never write to the user's real log folder."""
    os.environ["CASDESK_LOG_DIR"] = str(tmp_path_factory.mktemp("logs"))
    yield

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run only when asked for (``-m slow``), so CI stays within budget."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _garbage_collected_on_the_main_thread():
    """As in the app (casdesk.gui.kit.gc_guard): no automatic cyclic collection, which could
    run in a worker thread and destroy Qt objects there (a deadlock seen in this suite); the
    main thread collects after every test instead."""
    import gc

    gc.disable()
    yield
    gc.enable()


_tests_run = [0]


@pytest.fixture(autouse=True)
def _collect_after_each_test():
    """Young generations after every test (microseconds), everything every 20 tests (a full
    collection costs about 0.3 s with torch and Qt loaded)."""
    yield
    import gc

    _tests_run[0] += 1
    gc.collect(2 if _tests_run[0] % 20 == 0 else 1)


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
    from casdesk.core.project.catalog import Catalog

    cat = Catalog.create(tmp_path / "test.casdesk")
    yield cat
    cat.close()


@pytest.fixture()
def tiny_project(tmp_path: Path) -> Path:
    """A tiny training project: 16 tiles of 64x64 in two subdatasets (UAV, SAT), bright
    square landslides on noise."""
    from casdesk.core.project.catalog import Catalog

    rng = np.random.default_rng(0)
    cat = Catalog.create(tmp_path / "tiny")
    rows = []
    for i in range(16):
        sub = "uav" if i % 2 else "sat"
        img, mask = square_tile(rng, 64, square=20, corners=(4, 36))
        ip, mp = tmp_path / "t" / sub / "img" / f"{i}.tif", tmp_path / "t" / sub / "mask" / f"{i}.tif"
        write_raster(ip, img)
        write_raster(mp, mask)
        rows.append({"name": f"t{i}", "subdataset": sub, "image_path": ip, "mask_path": mp, "width": 64,
                     "height": 64, "label_pixels": int(mask.sum()), "valid_pixels": 64 * 64})
    cat.add_tiles(rows)
    cat.ensure_subdataset("uav", sensor="UAV")
    cat.ensure_subdataset("sat", sensor="SAT")
    cat.close()
    return tmp_path / "tiny.casdesk"
