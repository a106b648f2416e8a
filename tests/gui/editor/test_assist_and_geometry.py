"""Assisted labelling on a synthetic scar, geometry edits, and autosave kill-safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import shapely

from casdesk.core.labels import assist
from casdesk.core.labels import geometry as ge
from casdesk.core.project.catalog import Catalog


def iou(poly, truth: np.ndarray) -> float:
    from casdesk.core.labels.io import rasterize_polygons

    m = rasterize_polygons([poly], truth.shape).astype(bool)
    return (m & truth).sum() / (m | truth).sum()


def test_grabcut_box_finds_the_scar(scar) -> None:
    rgb, truth = scar
    ys, xs = np.nonzero(truth)
    box = (xs.min() - 6, ys.min() - 6, xs.max() + 6, ys.max() + 6)
    polys = assist.mask_polygons(assist.grabcut_box(rgb, box), fill_holes_below=16)
    assert iou(assist.largest_polygon(polys), truth) > 0.85


def test_grabcut_scribbles_and_magic_wand(scar) -> None:
    rgb, truth = scar
    fg = np.zeros_like(truth)
    fg[55:60, 60:68] = True
    polys = assist.mask_polygons(assist.grabcut_scribbles(rgb, fg, np.zeros_like(truth)))
    assert iou(assist.largest_polygon(polys), truth) > 0.8
    wand = assist.mask_polygons(assist.magic_wand(rgb, (64, 57), tolerance=30), offset=(0, 0))
    assert iou(assist.largest_polygon(wand), truth) > 0.85
    # offsets put polygons in scene pixels
    moved = assist.mask_polygons(truth.astype(np.uint8), offset=(1000, 2000))
    assert moved[0].bounds[0] >= 1000 and moved[0].bounds[1] >= 2000


def test_vertex_ops_holes_brush_and_snap() -> None:
    square = shapely.box(0, 0, 10, 10)
    parts = ge.parts_from_geometry(square)
    ref = ge.nearest_vertex(parts, (10.2, 10.1), 1.0)
    assert ref is not None
    old = ge.move_vertex(parts, ref, (12, 12))
    assert old == (10.0, 10.0)
    edge, at = ge.nearest_edge(parts, (5, -0.2), 1.0)
    ge.insert_vertex(parts, edge, at)
    assert ge.vertex_count(parts) == 5
    ge.remove_vertex(parts, edge)
    assert ge.vertex_count(parts) == 4
    holed = ge.cut_area(square, shapely.box(4, 4, 6, 6))
    assert len(holed.interiors) == 1
    assert len(ge.parts_from_geometry(holed)[0]) == 2
    assert ge.geometry_from_parts(ge.parts_from_geometry(holed)).equals(holed)
    grown = ge.add_area(square, ge.brush_footprint([(10, 5), (15, 5)], 1.0))
    assert grown.bounds[2] == 16
    split = ge.cut_area(square, shapely.box(4, -1, 6, 11))
    assert split.geom_type == "MultiPolygon"
    # a bow-tie dragged by the user is saved as valid polygons
    bow = ge.geometry_from_parts([[ge.open_ring([(0, 0), (10, 10), (10, 0), (0, 10)])]])
    assert bow.is_valid and bow.area > 0
    idx = ge.SnapIndex([(1, ge.parts_from_geometry(square)), (2, ge.parts_from_geometry(shapely.box(50, 50, 60, 60)))])
    assert idx.snap((10.5, 10.4), 1.0) == (10.0, 10.0)
    assert idx.snap((10.5, 10.4), 1.0, exclude=1) is None
    assert idx.snap((30, 30), 1.0) is None


EDITOR_PROCESS = textwrap.dedent(
    """
    import sys, shapely
    from casdesk.core.project.catalog import Catalog
    from casdesk.core.labels.store import LabelStore, scene_target
    cat = Catalog.open(sys.argv[1])
    store = LabelStore(cat, scene_target(cat, int(sys.argv[2])))
    lid = store.create(shapely.box(0, 0, 10, 10), "landslide")
    i = 0
    while True:
        i += 1
        store.update(lid, shapely.box(0, 0, 10 + i, 10))
        print(i, flush=True)
    """
)


def test_killed_editor_keeps_the_last_saved_edit(editor_project) -> None:
    """SIGKILL in the middle of autosaving: the project opens, with the last reported edit
    (or the one after it, if that commit landed) intact."""
    proc = subprocess.Popen(
        [sys.executable, "-c", EDITOR_PROCESS, str(editor_project.path), str(editor_project.scene_id)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        last = 0
        while last < 40:
            line = proc.stdout.readline()
            assert line, "the editing process died"
            last = int(line)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
        proc.stdout.close()
    with Catalog.open(editor_project.path) as cat:
        [lab] = cat.labels(scene_id=editor_project.scene_id)
        width = shapely.from_wkt(lab.geometry_px).bounds[2] - 10
        assert width >= last
        assert lab.geometry_crs is not None
        edits = cat.query("SELECT COUNT(*) FROM label_edits WHERE label_id = ?", (lab.id,))[0][0]
        assert edits == width + 1  # every committed edit is in the history, nothing half-done
