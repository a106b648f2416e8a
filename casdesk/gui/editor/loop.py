"""The Label tab's model loop: predict the open tile, show the probability over it, accept
it as editable polygons; and "Train on these tiles" (a short run in the Train tab).

A part of :class:`~casdesk.gui.editor.panel.EditorPanel` (a QWidget base without state of
its own: the panel's ``__init__`` sets the attributes declared here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QWidget

from casdesk.core.jobs import CancelToken, Job, Progress
from casdesk.core.labels.store import EditTarget
from casdesk.gui.editor.canvas import EditorCanvas
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.torch_import import import_ml_quietly
from casdesk.gui.kit.workers import JobRunner
from casdesk.gui.predict.models import ModelChooser
from casdesk.gui.predict.view import probability_rgba
from casdesk.gui.shell.context import ProjectContext

QUICK_MAX_TILES = 400  # "Train on these tiles": at most this many tiles


@dataclass(frozen=True)
class TilePrediction:
    """The open tile's prediction: probability (rows, cols) float32 in view pixels."""

    target: EditTarget
    model: Path
    prob: np.ndarray
    valid: np.ndarray
    threshold: float



class PredictionLoop(QWidget):
    """Predict this tile -> accept as polygons, and train on these tiles (part of EditorPanel)."""

    # the panel's state this part uses (EditorPanel.__init__ sets it)
    context: ProjectContext
    canvas: EditorCanvas
    target: EditTarget | None
    status: QLabel
    model_chooser: ModelChooser
    predict_action: QAction
    accept_action: QAction
    train_action: QAction
    show_prob_action: QAction
    _prediction: TilePrediction | None
    _predict_runner: JobRunner | None
    _predictor_cache: tuple[Any, Any] | None

    if TYPE_CHECKING:  # the panel's other parts
        def _open(self, kind: str, target_id: int) -> None: ...
        def _update_status(self, note: str = "") -> None: ...
        def _on_saved(self, tile_ids: list[int]) -> None: ...

    def _update_loop_actions(self) -> None:
        tile_open = self.target is not None and self.target.tile_id is not None
        busy = self._predict_runner is not None and self._predict_runner.is_running()
        self.predict_action.setEnabled(tile_open and self.model_chooser.current_path() is not None and not busy)
        self.accept_action.setEnabled(self._prediction is not None and not busy)
        self.train_action.setEnabled(self.target is not None)
        self.show_prob_action.setEnabled(self._prediction is not None)

    def predict_busy(self) -> bool:
        return self._predict_runner is not None and self._predict_runner.is_running()

    def predict_tile(self) -> None:
        """Predict the open tile with the chosen model in a worker (casdesk.ml.inference.tiles,
        the code `casdesk predict-tiles` runs); the probability is shown over the tile."""
        target, path = self.target, self.model_chooser.current_path()
        if target is None or target.tile_id is None:
            self.status.setText("Open a tile to predict it (whole scenes are predicted in the Predict tab).")
            return
        if path is None or self.predict_busy():
            return
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            show_error(self, "Cannot predict this tile", f"model file not found: {path}")
            return
        cached = self._predictor_cache[1] if self._predictor_cache and self._predictor_cache[0] == key else None
        image_path = target.image_path

        def job(_token: CancelToken) -> Job:
            yield Progress(0, 1, "predicting the tile")
            import_ml_quietly()  # the window stays live while torch and the model packages load (first use)
            from casdesk.ml.inference.scene import load_predictor
            from casdesk.ml.inference.tiles import predict_tile
            from casdesk.ml.training.data import read_tile

            predictor = cached if cached is not None else load_predictor(path, "auto")
            image, valid, _ = read_tile(image_path, None)
            return predictor, predict_tile(predictor, image, valid), valid

        runner = JobRunner(job, self, name="predict-tile")
        runner.finished.connect(lambda result: self._on_tile_predicted(target, path, key, result))
        runner.failed.connect(lambda m, d: show_error(self, "Cannot predict this tile", m, d))
        runner.done.connect(self._update_loop_actions)
        self._predict_runner = runner
        self.status.setText(f"Predicting {target.title} with {path.name}...")
        runner.start()
        self._update_loop_actions()

    def _on_tile_predicted(self, target: EditTarget, path: Path, key: Any, result: Any) -> None:
        predictor, prob, valid = result
        self._predictor_cache = (key, predictor)
        if self.target != target:
            return  # the user moved on to another tile
        self._prediction = TilePrediction(target, path, prob, valid, float(predictor.threshold))
        stored = np.where(valid, np.rint(np.clip(prob, 0, 1) * 254), 255).astype(np.uint8)
        self.canvas.set_overlay(probability_rgba(stored))
        self.canvas.overlay.setVisible(self.show_prob_action.isChecked())
        share = float((prob[valid] > predictor.threshold).mean()) if valid.any() else 0.0
        self._update_loop_actions()
        self._update_status(f"Predicted with {predictor.name}: {100 * share:.1f} % of the tile above "
                            f"{predictor.threshold:g}. 'Accept as polygons' makes them labels.")

    def accept_prediction(self) -> None:
        """The shown prediction -> editable labels (casdesk.core.labels.from_prediction, as
        `casdesk labels from-prediction`), in a worker (polygonising and storing a tile takes
        tens of milliseconds); the tile is then reloaded with them."""
        pred, cat = self._prediction, self.context.catalog
        if pred is None or cat is None or self.target != pred.target or self.predict_busy():
            return
        project, target, name = cat.path, pred.target, self.canvas.current_label

        def job(_token: CancelToken) -> Job:
            yield Progress(0, 1, "accepting the prediction")
            from casdesk.core.labels.from_prediction import accept_probability
            from casdesk.core.project.catalog import Catalog

            with Catalog.open(project) as own:
                return accept_probability(own, target, pred.prob, pred.threshold, pred.valid, name=name)

        runner = JobRunner(job, self, name="accept-prediction")
        runner.finished.connect(lambda report: self._on_accepted(target, report))
        runner.failed.connect(lambda m, d: show_error(self, "Prediction not accepted", m, d))
        runner.done.connect(self._update_loop_actions)
        self._predict_runner = runner
        self.status.setText("Accepting the prediction...")
        runner.start()
        self._update_loop_actions()

    def _on_accepted(self, target: EditTarget, report: Any) -> None:
        if self.target == target:
            self._open(target.kind if target.tile_id is None else "tile", target.tile_id or 0)
        self._on_saved(report.tiles)
        replaced = f", replacing {report.removed} earlier predicted" if report.removed else ""
        self._update_status(f"Accepted {report.added} predicted polygon(s){replaced}: edit them like any shape.")

    # ---- train on these tiles
    def training_sample(self, limit: int = QUICK_MAX_TILES, seed: int = 0) -> tuple[list[int], str]:
        """The open scene's (or the open tile's subdataset's) labelled tiles and as many
        unlabelled ones at random (a model also learns what is not a landslide); at most ``limit``."""
        cat, t = self.context.catalog, self.target
        if cat is None or t is None:
            return [], ""
        if t.scene_id is not None:
            rows = cat.tile_rows.labelled_of_scene(t.scene_id)
            title = f"scene {cat.scene(t.scene_id).name}"
        elif t.tile_id is not None:
            title, rows = cat.tile_rows.labelled_of_subdataset_of(t.tile_id)
        else:
            return [], ""
        labelled = [r.id for r in rows if (r.label_pixels or 0) > 0][:limit]
        others = [r.id for r in rows if not (r.label_pixels or 0) > 0]
        n = min(len(others), max(len(labelled), 1), limit - len(labelled))
        picked = np.random.default_rng(seed).choice(others, size=n, replace=False).tolist() if n > 0 else []
        return sorted(labelled + [int(i) for i in picked]), title

    def train_on_these_tiles(self) -> str | None:
        """Start a short run in the Train tab on :meth:`training_sample` and show that tab."""
        window = self.window()
        trainer = getattr(window, "panels", {}).get("Train")
        if trainer is None:
            return None
        ids, title = self.training_sample()
        name = trainer.train_on_tiles(ids, title)
        if name is not None:
            tabs = getattr(window, "tabs", None)  # the main window's tab widget
            if tabs is not None:
                tabs.setCurrentWidget(trainer)
            self.context.status_message.emit(f"training on {len(ids)} tiles of {title} (split {name})")
        return name
