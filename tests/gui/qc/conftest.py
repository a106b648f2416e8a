"""The QC tab's tests use the core QC fixtures (real CAS tiles, small generated projects);
loaded by path, since the tests run with ``--import-mode=importlib``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _core_qc_fixtures():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[2] / "core" / "qc" / "conftest.py"
    name = "_casdesk_core_qc_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


_fixtures = _core_qc_fixtures()
make_project = _fixtures.make_project
synthetic_rgb = _fixtures.synthetic_rgb
real_tile = _fixtures.real_tile
