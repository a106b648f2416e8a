"""Browse > "Train on these tiles": a short training run on the selected tiles or a random
sample of the shown ones (ilastik's tight loop).

The tiles go into a new manual split (train/val by a seeded shuffle); the Train tab runs it
with its form's model and settings and a few epochs (the main window passes the request on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from casdesk.core.dataset import tile_table as ti
from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import Catalog, utc_now

MIN_TILES = 4
"""Fewest tiles a quick run accepts (at least one for validation, a few to train on)."""


@dataclass(frozen=True)
class TrainRequest:
    """What the Train tab should run: ``split`` (made from the chosen tiles), a few epochs."""

    split: str
    epochs: int
    train_tiles: int
    val_tiles: int

    @property
    def run_name(self) -> str:
        return f"quick-{self.split}"


def divide(tile_ids: list[int], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train ids, val ids): a seeded shuffle, at least one tile on each side."""
    ids = np.array(sorted(set(tile_ids)), np.int64)
    if ids.size < 2:
        raise CasdeskError(f"a training run needs at least {MIN_TILES} tiles; {ids.size} chosen")
    rng = np.random.default_rng(seed)
    ids = ids[rng.permutation(ids.size)]
    n_val = min(ids.size - 1, max(1, round(ids.size * val_fraction)))
    return sorted(ids[n_val:].tolist()), sorted(ids[:n_val].tolist())


def sample(tile_ids: list[int], k: int, seed: int = 0) -> list[int]:
    """``k`` of ``tile_ids`` at random (all of them when there are fewer)."""
    if k >= len(tile_ids):
        return list(tile_ids)
    rng = np.random.default_rng(seed)
    return sorted(np.asarray(tile_ids, np.int64)[rng.choice(len(tile_ids), k, replace=False)].tolist())


def make_split(catalog: Catalog, tile_ids: list[int], val_fraction: float, epochs: int,
               seed: int = 0) -> TrainRequest:
    """Create the split ``browse-<time>`` of these tiles; return the run request."""
    if len(set(tile_ids)) < MIN_TILES:
        raise CasdeskError(f"a training run needs at least {MIN_TILES} tiles; {len(set(tile_ids))} chosen")
    train, val = divide(tile_ids, val_fraction, seed)
    stamp = utc_now().replace(":", "").replace("-", "")[:15]
    name, n = f"browse-{stamp}", 1
    existing = set(ti.split_names(catalog))
    while name in existing:
        n += 1
        name = f"browse-{stamp}-{n}"
    ti.assign_split(catalog, name, train, "train")
    ti.assign_split(catalog, name, val, "val")
    return TrainRequest(name, epochs, len(train), len(val))


class TrainOnTilesDialog(QDialog):
    """Which tiles (the selection, or a random sample of the shown tiles), how many epochs,
    which share for validation."""

    def __init__(self, selected: int, shown: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train on these tiles")
        self.use_selection = QRadioButton(f"The {selected:,} selected tile(s)")
        self.use_sample = QRadioButton("A random sample of the shown tiles:")
        group = QButtonGroup(self)
        group.addButton(self.use_selection)
        group.addButton(self.use_sample)
        self.sample_size = QSpinBox(minimum=MIN_TILES, maximum=max(MIN_TILES, shown), value=min(max(shown, MIN_TILES), 200))
        self.sample_size.setSuffix(f" of {shown:,}")
        self.use_selection.setEnabled(selected >= MIN_TILES)
        (self.use_selection if selected >= MIN_TILES else self.use_sample).setChecked(True)
        self.epochs = QSpinBox(minimum=1, maximum=500, value=3)
        self.val_fraction = QDoubleSpinBox(minimum=0.05, maximum=0.9, singleStep=0.05, value=0.3)
        form = QFormLayout()
        form.addRow(self.use_selection)
        form.addRow(self.use_sample, self.sample_size)
        form.addRow("Epochs", self.epochs)
        form.addRow("Validation share", self.val_fraction)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("A short run with the Train tab's model and settings, on a new split of these tiles."))
        layout.addLayout(form)
        layout.addWidget(buttons)
