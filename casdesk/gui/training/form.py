"""The training job form. Defaults share the paper's optimiser (SGD, lr 0.01, momentum 0.9,
weight decay 5e-4), Dice loss and random 7:3 split; the "Paper defaults" preset selects the
paper recipe (:data:`casdesk.ml.training.config.PAPER_RECIPE`: two classes, ImageNet
encoder and normalisation, the authors' augmentation, drop_last). Presets are stored in
the project."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from casdesk.core.project.catalog import Catalog

PAPER_MODELS = [("deeplabv3plus", "DeepLabV3+ (ResNet50)"), ("unet", "U-Net (ResNet50)"),
                ("fcn", "FCN (VGG16)"), ("mffenet", "MFFENet (ResNet50)")]
MORE_MODELS = ["Unet", "FPN", "UnetPlusPlus", "PSPNet", "Linknet", "MAnet", "PAN", "DeepLabV3", "UPerNet", "Segformer"]
LOSSES = ["dice", "bce", "focal", "lovasz", "dice+bce"]
NEW_SPLITS = [("new:random", "New: random 7:3 per subdataset"), ("new:spatial", "New: spatial blocks 7:3"),
              ("new:holdout", "New: hold out subdatasets...")]
TILE_CHOICES = [("qc", "QC-accepted tiles"), ("all", "All tiles"), ("UAV", "UAV tiles (QC-accepted)"),
                ("SAT", "SAT tiles (QC-accepted)")]
PRESETS_KEY = "training_presets"
AUGMENT_TEXT = {"custom": "flips, rotations, brightness/contrast",
                "paper": "flip, random scale-crop, Gaussian blur (the authors')"}


class TrainingForm(QWidget):
    presets_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = QComboBox()
        for key, label in PAPER_MODELS:
            self.model.addItem(label, key)
        self.model.insertSeparator(len(PAPER_MODELS))
        self.model.addItem("FCN-8s (VGG16)", "fcn8s")  # the classic FCN, not the paper's
        for arch in MORE_MODELS:
            self.model.addItem(f"{arch} (smp)", f"smp:{arch}")
        self.encoder = QLineEdit()
        self.encoder.setPlaceholderText("model default (resnet50 / vgg16)")
        # the model names show the encoder that will really be used (not "(ResNet50)" beside resnet18)
        self.encoder.textChanged.connect(lambda _t: self._label_models())
        self.weights = QComboBox()
        self.weights.addItems(["none", "imagenet", "file..."])
        self.weights.activated.connect(self._pick_weights)
        self.weights_file: str | None = None
        self.split = QComboBox()
        self.holdout = QLineEdit()
        self.holdout.setPlaceholderText("subdatasets to hold out, comma-separated")
        self.tiles = QComboBox()
        for key, label in TILE_CHOICES:
            self.tiles.addItem(label, key)
        self.epochs = QSpinBox(minimum=1, maximum=10_000, value=50)
        self.batch_size = QSpinBox(minimum=1, maximum=1024, value=8)
        self.lr = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=10.0, value=0.01, singleStep=0.001)
        self.loss = QComboBox()
        self.loss.addItems(LOSSES)
        self.optimizer = QComboBox()
        self.optimizer.addItems(["sgd", "adamw"])
        self.amp = QComboBox()
        self.amp.addItems(["auto", "off", "bf16", "fp16"])
        self.device = QComboBox()
        self.device.addItem("auto (CUDA > MPS > CPU)", "auto")
        self.device.addItem("cpu", "cpu")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.augment = QCheckBox(AUGMENT_TEXT["custom"])
        self.augment.setChecked(True)
        self.recipe = QComboBox()
        self.recipe.addItem("Custom (casdesk defaults)", "custom")
        self.recipe.addItem("Paper (2 classes, ImageNet encoder, authors' augmentation)", "paper")
        self.recipe.setToolTip("Paper: two-class softmax, Dice over both classes, SGD 0.01/0.9/5e-4, "
                               "ImageNet-pretrained encoder and mean/std, flip + scale-crop + blur, "
                               "drop_last, best epoch by validation mIoU. The fields below still apply.")
        self.recipe.currentIndexChanged.connect(
            lambda _i: self.augment.setText(AUGMENT_TEXT[self.recipe.currentData() or "custom"]))
        self.preset = QComboBox()
        save = QPushButton("Save preset...")
        save.clicked.connect(self._save_preset)
        self.preset.activated.connect(lambda _i: self._load_preset())
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(save)
        self.catalog: Catalog | None = None

        form = QFormLayout(self)
        form.addRow("Preset", preset_row)
        form.addRow("Recipe", self.recipe)
        form.addRow("Model", self.model)
        form.addRow("Encoder", self.encoder)
        form.addRow("Encoder weights", self.weights)
        form.addRow("Split", self.split)
        form.addRow("Hold out", self.holdout)
        form.addRow("Tiles", self.tiles)
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Learning rate", self.lr)
        form.addRow("Loss", self.loss)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Mixed precision", self.amp)
        form.addRow("Device", self.device)
        form.addRow("Seed", self.seed)
        form.addRow("Augmentation", self.augment)
        self.split.currentIndexChanged.connect(self._split_changed)
        self._split_changed()
        self._label_models()

    def _label_models(self) -> None:
        from casdesk.gui.predict.models import model_title

        enc = self.encoder.text().strip() or None
        for i in range(self.model.count()):
            key = self.model.itemData(i)
            if key:
                self.model.setItemText(i, model_title(key, enc) + (" (smp)" if str(key).startswith("smp:") else ""))

    # ---- project
    def set_catalog(self, catalog: Catalog | None) -> None:
        self.catalog = catalog
        self.refresh_splits()
        self.refresh_presets()

    def refresh_splits(self) -> None:
        current = self.split.currentData()
        self.split.clear()
        for key, label in NEW_SPLITS:
            self.split.addItem(label, key)
        if self.catalog is not None:
            for name, kind in self.catalog.splits.names_and_kinds():  # no tile counts: cheap at 20k tiles
                self.split.addItem(f"{name} ({kind})", name)
        index = self.split.findData(current)
        self.split.setCurrentIndex(max(index, 0))

    def _split_changed(self) -> None:
        self.holdout.setEnabled(self.split.currentData() == "new:holdout")

    def set_devices(self, devices: list[tuple[str, str]]) -> None:
        """(key, label) pairs, e.g. ("cuda:0", "cuda:0 NVIDIA H100 (80 GB)")."""
        current = self.device.currentData()
        self.device.clear()
        self.device.addItem("auto (CUDA > MPS > CPU)", "auto")
        for key, label in devices:
            self.device.addItem(label, key)
        index = self.device.findData(current)
        self.device.setCurrentIndex(max(index, 0))

    def _pick_weights(self, index: int) -> None:
        if self.weights.itemText(index).startswith("file"):
            path, _ = QFileDialog.getOpenFileName(self, "Encoder weights", "", "Weights (*.pth *.pt *.safetensors *.bin)")
            if path:
                self.weights_file = path
                self.weights.setItemText(2, f"file: {path}")
            else:
                self.weights.setCurrentIndex(0)

    # ---- values
    def config_values(self) -> dict[str, Any]:
        """Keyword arguments for :class:`casdesk.ml.training.config.TrainConfig`: the recipe's
        settings (paper recipe), then the fields of the form."""
        from casdesk.ml.training.config import recipe_settings

        recipe = self.recipe.currentData() or "custom"
        weights = self.weights.currentText()
        values = recipe_settings(recipe)
        values.update({
            "model": self.model.currentData(),
            "encoder": self.encoder.text().strip() or None,
            "encoder_weights": None if weights == "none" else ("imagenet" if weights == "imagenet" else self.weights_file),
            "epochs": self.epochs.value(),
            "batch_size": self.batch_size.value(),
            "lr": self.lr.value(),
            "loss": self.loss.currentText(),
            "optimizer": self.optimizer.currentText(),
            "amp": self.amp.currentText(),
            "device": self.device.currentData(),
            "seed": self.seed.value(),
            "augment": self.augment.isChecked(),
            "qc_accepted_only": self.tiles.currentData() != "all",
            # DataLoader worker processes are not forked from a GUI process with threads
            "num_workers": 0,
        })
        if recipe == "paper":
            values["augment"] = "paper" if self.augment.isChecked() else "none"
        return values

    def split_choice(self) -> tuple[str, list[str]]:
        """("new:random" | "new:spatial" | "new:holdout" | existing name, holdout names)."""
        names = [n.strip() for n in self.holdout.text().split(",") if n.strip()]
        return self.split.currentData(), names

    def tile_choice(self) -> str:
        return self.tiles.currentData()

    def apply(self, values: dict[str, Any]) -> None:
        index = self.model.findData(values.get("model"))
        if index >= 0:
            self.model.setCurrentIndex(index)
        self.encoder.setText(values.get("encoder") or "")
        self.epochs.setValue(int(values.get("epochs", 50)))
        self.batch_size.setValue(int(values.get("batch_size", 8)))
        self.lr.setValue(float(values.get("lr", 0.01)))
        for combo, key in ((self.loss, "loss"), (self.optimizer, "optimizer"), (self.amp, "amp")):
            if key in values:
                combo.setCurrentText(str(values[key]))
        self.seed.setValue(int(values.get("seed", 0)))
        augment = values.get("augment", True)
        self.augment.setChecked(augment not in (False, "none"))
        self.recipe.setCurrentIndex(max(self.recipe.findData(values.get("recipe", "custom")), 0))
        if "encoder_weights" in values:
            weights = values["encoder_weights"]
            if weights in (None, "none"):
                self.weights.setCurrentIndex(0)
            elif str(weights).lower() == "imagenet":
                self.weights.setCurrentIndex(1)
            else:
                self.weights_file = str(weights)
                self.weights.setItemText(2, f"file: {weights}")
                self.weights.setCurrentIndex(2)

    # ---- presets
    def _presets(self) -> dict[str, dict[str, Any]]:
        if self.catalog is None:
            return {}
        return json.loads(self.catalog.get_meta(PRESETS_KEY, "{}") or "{}")

    def refresh_presets(self) -> None:
        self.preset.clear()
        self.preset.addItem("Paper defaults", "__paper__")
        for name in sorted(self._presets()):
            self.preset.addItem(name, name)

    def _load_preset(self) -> None:
        key = self.preset.currentData()
        if key == "__paper__":
            from casdesk.ml.training.config import PAPER_RECIPE

            self.apply({**PAPER_RECIPE, "model": "deeplabv3plus", "epochs": 50, "batch_size": 8,
                        "amp": "auto", "seed": 0})
        elif key in self._presets():
            self.apply(self._presets()[key])

    def save_preset(self, name: str) -> None:
        if self.catalog is None:
            return
        presets = self._presets()
        presets[name] = self.config_values()
        self.catalog.set_meta(PRESETS_KEY, json.dumps(presets))
        self.refresh_presets()
        self.preset.setCurrentIndex(self.preset.findData(name))
        self.presets_changed.emit()

    def _save_preset(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:")
        if ok and name.strip():
            self.save_preset(name.strip())
