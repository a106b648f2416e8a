"""The QC tab's tests use the core QC fixtures (real CAS tiles, small generated projects);
loaded by path, since the tests run with ``--import-mode=importlib``."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


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


def fill_strip_specs(n: int, seed: int) -> list[dict]:
    """``n`` tiles (96 px) with a white strip along the left edge covering 0 to 80 % of the
    tile (fill fractions spread evenly), sparse masks, alternating subdatasets A/B, UAV."""
    rng = np.random.default_rng(seed)
    specs = []
    for i, frac in enumerate(np.linspace(0.0, 0.8, n)):
        img = synthetic_rgb(96, i)
        img[:, :, : int(96 * frac)] = 255
        mask = (rng.random((96, 96)) < 0.05).astype(np.uint8)
        specs.append({"subdataset": "A" if i % 2 else "B", "image": img, "mask": mask, "sensor": "UAV"})
    return specs


@contextmanager
def qc_panel_on(qtbot, catalog) -> Iterator:  # type: ignore[no-untyped-def]
    """A QC panel on ``catalog``'s project (closed here and opened by the panel's context),
    loaded; shut down and closed afterwards."""
    from casdesk.gui.qc.panel import QCPanel
    from casdesk.gui.shell.context import ProjectContext

    path = catalog.path
    catalog.close()
    ctx = ProjectContext()
    panel = QCPanel(ctx)
    qtbot.addWidget(panel)
    ctx.open(path)
    assert panel.wait_loaded()
    try:
        yield panel
    finally:
        panel.shutdown()
        ctx.close()
