"""``casdesk selftest``: run a tiny version of the whole workflow and report PASS/FAIL.

Why: after an install (above all the frozen app, where a missing GDAL data file, Qt
plug-in or torch library only shows at run time) a user or CI needs one command that
says whether every part works, without a display and without their data. Each step runs
in its own ``try``: a failure is reported with its message and the next steps still run
(those that need its output report what they are missing). Everything happens in a
temporary folder that is removed afterwards (unless ``keep``).

Steps: libraries (GDAL/PROJ data, vector drivers) -> GUI (offscreen main window) ->
synthetic scene + labels -> project + add-scene -> crop -> QC metrics + rules -> one
training step of a tiny model -> prediction on the scene.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

log = logging.getLogger(__name__)

SCENE_SIZE = 256
TILE_SIZE = 128
TINY_MODEL: dict[str, Any] = {"model": "smp:Unet", "encoder": "tu-resnet10t"}


class StepSkipped(Exception):
    """A step cannot run because an earlier step it needs failed (reported as FAIL)."""


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name:<10s} {self.seconds:6.1f} s  {self.detail}"


@dataclass
class SelftestState:
    """What the steps hand to each other."""

    folder: Path
    device: str
    gui: bool
    values: dict[str, Any] = field(default_factory=dict)

    def need(self, key: str, step: str) -> Any:
        if key not in self.values:
            raise StepSkipped(f"not run: needs the {step} step, which failed")
        return self.values[key]


# --------------------------------------------------------------------------- steps
def step_libraries(state: SelftestState) -> str:
    import numpy as np
    import pyogrio
    import rasterio
    from pyproj import CRS as ProjCRS
    from rasterio.crs import CRS

    wkt = CRS.from_epsg(32648).to_wkt()  # needs PROJ's proj.db (rasterio's proj_data)
    if "UTM" not in wkt:
        raise RuntimeError("rasterio's PROJ returned an unexpected WKT for EPSG:32648")
    ProjCRS.from_epsg(4326)  # pyproj's own PROJ data
    drivers = pyogrio.list_drivers()
    missing = [d for d in ("GPKG", "ESRI Shapefile", "GeoJSON") if d not in drivers]
    if missing:
        raise RuntimeError(f"pyogrio's GDAL lacks the vector driver(s) {', '.join(missing)}")
    return (f"numpy {np.__version__}, rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), "
            f"pyogrio {pyogrio.__version__}")


def step_gui(state: SelftestState) -> str:
    if not state.gui:
        return "skipped (--no-gui)"
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # this process only: no display needed
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QSettings, QtMsgType, qInstallMessageHandler

    from casdesk.gui.shell.main_window import MainWindow

    def to_log(mode: QtMsgType, context: object, message: str) -> None:
        log.debug("Qt: %s", message)  # offscreen-platform chatter stays out of the report

    previous = qInstallMessageHandler(to_log)
    try:
        app = cast(QApplication, QApplication.instance() or QApplication(["casdesk-selftest"]))
        settings = QSettings(str(state.folder / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window.show()
        app.processEvents()
        tabs = window.tabs.count()
        window.close()
        window.deleteLater()
        app.processEvents()
    finally:
        qInstallMessageHandler(previous)
    return f"main window with {tabs} tabs (PySide6 {pyside_version}, platform {app.platformName()})"


def step_scene(state: SelftestState) -> str:
    from rasterio.crs import CRS

    from casdesk.core.dataset.synthetic import make_scene
    from casdesk.core.labels.io import write_vector_labels

    scene = make_scene(state.folder / "scene.tif", width=SCENE_SIZE, height=SCENE_SIZE, seed=3, n_scars=3)
    labels = write_vector_labels(
        scene.scars_crs, state.folder / "labels.gpkg", CRS.from_user_input(scene.crs).to_wkt(),
        {"label": ["landslide"] * len(scene.scars_px)},
    )
    state.values.update(scene=scene.path, labels=labels)
    return f"{SCENE_SIZE}x{SCENE_SIZE} GeoTIFF, {len(scene.scars_px)} landslide polygons (GeoPackage)"


def step_add_scene(state: SelftestState) -> str:
    from casdesk.core.dataset.scenes import add_scene
    from casdesk.core.project.catalog import Catalog

    scene, labels = state.need("scene", "scene"), state.need("labels", "scene")
    project = state.folder / "selftest.casdesk"
    with Catalog.create(project) as cat:
        added = add_scene(cat, scene, labels=labels, subdataset="selftest", sensor="UAV")
    state.values.update(project=project, scene_id=added.scene_id)
    return f"project created, scene {added.scene_id} with {added.labels} labels"


def step_crop(state: SelftestState) -> str:
    from casdesk.core.dataset.tiling import CropParams, crop_scene
    from casdesk.core.jobs import run_job
    from casdesk.core.project.catalog import Catalog

    project, scene_id = state.need("project", "add-scene"), state.need("scene_id", "add-scene")
    with Catalog.open(project) as cat:
        ids = run_job(crop_scene(cat, scene_id, CropParams(TILE_SIZE, TILE_SIZE, "shift"), workers=1))
        labelled = sum(1 for t in cat.tiles(ids=ids) if (t.label_pixels or 0) > 0)
    if not ids:
        raise RuntimeError("cropping wrote no tile")
    state.values["tiles"] = len(ids)
    return f"{len(ids)} tiles of {TILE_SIZE} px, {labelled} with landslide pixels"


def step_qc(state: SelftestState) -> str:
    from casdesk.core.jobs import run_job
    from casdesk.core.project.catalog import Catalog

    project = state.need("project", "add-scene")
    state.need("tiles", "crop")
    try:
        qc = importlib.import_module("casdesk.core.qc.rules")
    except ImportError as exc:
        raise RuntimeError(f"casdesk.core.qc.rules is not available ({exc})") from exc
    with Catalog.open(project) as cat:
        measured = run_job(qc.compute_metrics(cat, workers=1))
        table = qc.load_table(cat)
        states, _ = qc.evaluate(table, qc.current_rules(cat))
        counts = qc.count_states(table, states)["total"]
    if measured != len(table):
        raise RuntimeError(f"metrics computed for {measured} of {len(table)} tiles")
    return (f"{measured} tiles measured; accepted {counts['accepted']}, flagged {counts['flagged']}, "
            f"rejected {counts['rejected']}")


def step_train(state: SelftestState) -> str:
    from casdesk.core.jobs import Progress
    from casdesk.ml.training.config import TrainConfig
    from casdesk.ml.training.trainer import train

    project = state.need("project", "add-scene")
    tiles = state.need("tiles", "crop")
    config = TrainConfig(
        **TINY_MODEL, encoder_weights=None, epochs=1, batch_size=max(2, tiles), num_workers=0,
        device=state.device, amp="off", augment=False, qc_accepted_only=False, lr=1e-3,
        optimizer="adamw", out_dir=str(state.folder / "run"), name="selftest", log_every=1,
    )
    job = train(project, config)
    losses: list[float] = []
    while True:
        try:
            event: Progress = next(job)
        except StopIteration as stop:
            result = stop.value
            break
        if event.data.get("event") == "batch" and "loss" in event.data:
            losses.append(float(event.data["loss"]))
    if result.model_path is None or not Path(result.model_path).is_file():
        raise RuntimeError(f"training ended ({result.status}) without a model file")
    if losses and not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"the training loss is not finite: {losses}")
    state.values["model"] = Path(result.model_path)
    loss = f", loss {losses[-1]:.3f}" if losses else ""
    return f"{TINY_MODEL['model']} ({TINY_MODEL['encoder']}), {result.epochs_done} epoch on {result.device}{loss}"


def step_predict(state: SelftestState) -> str:
    from casdesk.core.jobs import run_job

    model = state.need("model", "train")
    scene = state.need("scene", "scene")
    try:
        predict = importlib.import_module("casdesk.ml.inference.scene")
    except ImportError as exc:
        raise RuntimeError(f"casdesk.ml.inference.scene is not available ({exc})") from exc
    result = run_job(predict.predict_scene(model, scene, state.folder / "prediction",
                                           device=state.device, overlap=16, batch_size=8))
    written = [p for p in (result.prob_path, result.mask_path, result.vector_path) if p is not None]
    missing = [p.name for p in written if not Path(p).is_file()]
    if missing:
        raise RuntimeError(f"prediction did not write {', '.join(missing)}")
    return (f"{', '.join(Path(p).name for p in written)}; {result.windows} windows, "
            f"{result.polygons} polygons")


STEPS: list[tuple[str, Callable[[SelftestState], str]]] = [
    ("libraries", step_libraries),
    ("gui", step_gui),
    ("scene", step_scene),
    ("add-scene", step_add_scene),
    ("crop", step_crop),
    ("qc", step_qc),
    ("train", step_train),
    ("predict", step_predict),
]


def run_selftest(
    device: str = "auto",
    gui: bool = True,
    keep: bool = False,
    folder: str | Path | None = None,
    on_result: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Run every step; return one :class:`StepResult` per step (``on_result`` sees each)."""
    work = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="casdesk-selftest-"))
    work.mkdir(parents=True, exist_ok=True)
    state = SelftestState(work, device, gui)
    results: list[StepResult] = []
    try:
        for name, func in STEPS:
            start = time.perf_counter()
            try:
                detail, ok = func(state), True
            except StepSkipped as exc:
                detail, ok = str(exc), False
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the run
                log.exception("selftest step %s failed", name)
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                detail, ok = f"{type(exc).__name__}: {text}"[:400], False
            result = StepResult(name, ok, time.perf_counter() - start, detail)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if not keep and folder is None:
            shutil.rmtree(work, ignore_errors=True)
    return results
