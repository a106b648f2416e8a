"""The project's trained models by name, for every "which model?" question in the app
(the Predict tab, the editor's "Predict this tile"): runs whose ``model.pt`` exists, newest
first, plus a file picker for a model from elsewhere. No torch here: names come from the
catalog's runs table, so listing is instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QWidget

from casdesk.core.project.catalog import Catalog

# the encoder each architecture uses when the run's config leaves it empty
# (mirrors casdesk.ml.models.registry, which imports torch; a test keeps them equal)
DEFAULT_ENCODERS = {"fcn": "vgg16", "fcn8s": "vgg16", "unet": "resnet50", "deeplabv3plus": "resnet50",
                    "mffenet": "resnet50"}
SMP_DEFAULT_ENCODER = "resnet34"
ARCH_NAMES = {"fcn": "FCN", "fcn8s": "FCN-8s", "unet": "U-Net", "deeplabv3plus": "DeepLabV3+", "mffenet": "MFFENet"}
FILE_ITEM = "__file__"


def effective_encoder(model: str | None, encoder: str | None) -> str:
    """The encoder a run really used: its configured one, else the architecture's default."""
    if encoder:
        return str(encoder)
    key = str(model or "")
    if key.startswith("smp:"):
        return SMP_DEFAULT_ENCODER
    return DEFAULT_ENCODERS.get(key, "?")


def model_title(model: str | None, encoder: str | None) -> str:
    """"DeepLabV3+ (resnet18)": the architecture with the encoder actually used."""
    key = str(model or "?")
    arch = ARCH_NAMES.get(key, key.removeprefix("smp:"))
    return f"{arch} ({effective_encoder(model, encoder)})"


@dataclass(frozen=True)
class ModelChoice:
    label: str
    path: Path
    run_id: int | None = None


def project_models(catalog: Catalog | None) -> list[ModelChoice]:
    """Trained runs of the project whose model file exists, newest first."""
    if catalog is None:
        return []
    from casdesk.core.evaluation.runs import list_runs

    out = []
    for run in list_runs(catalog):
        stored = run.model_path or (str(Path(run.out_dir) / "model.pt") if run.out_dir else None)
        path = catalog.resolve(stored)
        if path is None or not path.is_file():
            continue
        miou = run.best.get("miou")
        score = "" if miou is None else f", mIoU {100 * miou:.1f} %"
        out.append(ModelChoice(f"{run.name} (run {run.id}: {model_title(run.model, run.encoder)}{score})",
                               path, run.id))
    return out


class ModelChooser(QComboBox):
    """Project runs by name, then "Model file..." (a file dialog). ``model_chosen`` carries
    the model file's Path, or None when nothing usable is chosen."""

    model_chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(24)
        self._files: list[Path] = []
        self._last = -1
        self.activated.connect(self._on_activated)
        self.refresh(None)

    def refresh(self, catalog: Catalog | None) -> None:
        current = self.current_path()
        self.blockSignals(True)
        self.clear()
        choices = project_models(catalog)
        if not choices:
            self.addItem("(no trained model in this project)", None)
        for c in choices:
            self.addItem(c.label, str(c.path))
            self.setItemData(self.count() - 1, str(c.path), Qt.ItemDataRole.ToolTipRole)
        for f in self._files:
            self.addItem(f"file: {f.name}", str(f))
            self.setItemData(self.count() - 1, str(f), Qt.ItemDataRole.ToolTipRole)
        self.addItem("Model file...", FILE_ITEM)
        self.view().setMinimumWidth(self.view().sizeHintForColumn(0) + 24)  # the popup shows whole names
        index = self.findData(str(current)) if current is not None else -1
        self.setCurrentIndex(index if index >= 0 else 0)
        self._last = self.currentIndex()
        self.blockSignals(False)
        if self.current_path() != current:
            self.model_chosen.emit(self.current_path())

    def paths(self) -> list[Path]:
        return [Path(d) for i in range(self.count()) if (d := self.itemData(i)) not in (None, FILE_ITEM)]

    def current_path(self) -> Path | None:
        data = self.currentData()
        return None if data in (None, FILE_ITEM) else Path(data)

    def set_path(self, path: str | Path) -> None:
        """Select a model file (adding it as "file: NAME" when it is not a project run)."""
        p = Path(path)
        index = self.findData(str(p))
        if index < 0:
            self._files.append(p)
            index = self.count() - 1  # before "Model file..."
            self.insertItem(index, f"file: {p.name}", str(p))
            self.setItemData(index, str(p), Qt.ItemDataRole.ToolTipRole)
        self.setCurrentIndex(index)
        self._last = index
        self.model_chosen.emit(p)

    def _on_activated(self, index: int) -> None:
        if self.itemData(index) == FILE_ITEM:
            start = str(self.current_path() or "")
            path, _ = QFileDialog.getOpenFileName(self, "Model file", start, "casdesk model (*.pt);;All files (*)")
            if path:
                self.set_path(path)
            else:
                self.setCurrentIndex(max(self._last, 0))
            return
        self._last = index
        self.model_chosen.emit(self.current_path())
