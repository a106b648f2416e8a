"""The review dialog shows the reviewer what the seam detector found: the line of a step
(dashed magenta over the image), or the displacement of a repeated band; found in a worker,
only for tiles whose seam score fails the rule or lies within its margin."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor

from casdesk.core.jobs import run_job
from casdesk.core.qc import rules as qc
from casdesk.gui.qc.review import SEAM_COLOUR

from .conftest import make_project, qc_panel_on, real_tile  # noqa: F401 - make_project is a fixture

STEP_ROW = 330


@pytest.fixture
def review(qtbot, make_project):  # noqa: F811 - the fixture imported above
    clean = real_tile("Hokkaido1238.tiff")
    seamed = clean.astype(np.int16)
    seamed[:, STEP_ROW:, :] += 45  # a brightness seam along row 330
    seamed = np.clip(seamed, 0, 255).astype(np.uint8)
    mask = np.zeros(clean.shape[1:], np.uint8)
    mask[40:90, 40:90] = 1
    catalog = make_project([
        {"subdataset": "S", "image": seamed, "mask": mask, "sensor": "UAV"},
        {"subdataset": "S", "image": clean, "mask": mask, "sensor": "UAV"},
    ])
    run_job(qc.compute_metrics(catalog, processes=False))
    with qc_panel_on(qtbot, catalog) as panel:
        yield panel


def magenta_rows(dialog) -> set[int]:  # type: ignore[no-untyped-def]
    image = dialog.image.pixmap().toImage()
    rows = set()
    for y in range(image.height()):
        for x in range(0, image.width(), 8):
            c = QColor(image.pixel(x, y))
            if abs(c.red() - SEAM_COLOUR.red()) < 40 and c.green() < 60 and abs(c.blue() - SEAM_COLOUR.blue()) < 40:
                rows.add(y)
    return rows


def test_the_found_seam_line_is_drawn_where_the_seam_is(review, qtbot) -> None:
    panel = review
    seam_value = panel.table.metrics["seam_score"]
    assert seam_value[0] > 26.5 > seam_value[1]  # the seamed tile is rejected, its source is not
    dialog = panel.open_review("rejected")
    qtbot.addWidget(dialog)
    assert dialog.current == int(panel.table.tile_ids[0])
    assert not magenta_rows(dialog)  # the image first, the line when the worker has found it
    qtbot.waitUntil(lambda: dialog.seam is not None, timeout=20_000)
    tid, found = dialog.seam
    assert tid == dialog.current and found.kind == "step"
    assert "magenta: the seam line found" in dialog.info.text()
    scale = dialog.image.pixmap().height() / 512
    rows = magenta_rows(dialog)
    assert rows and all(abs(y / scale - STEP_ROW) <= 4 for y in rows), sorted(rows)


def test_no_seam_search_for_a_tile_the_seam_rule_does_not_question(review, qtbot) -> None:
    panel = review
    panel.set_threshold("label_fraction", 0.5)  # both tiles now fail the label rule
    dialog = panel.open_review("rejected")
    qtbot.addWidget(dialog)
    clean = int(panel.table.tile_ids[1])
    dialog.index = dialog.queue.index(clean)
    dialog.show_current()
    assert dialog._shown is None and not dialog._seam_call.is_busy()
    assert not magenta_rows(dialog)
