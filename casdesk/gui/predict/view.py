"""The prediction viewer: the decimated scene with the probability or the mask over it.

Two pyqtgraph ImageItems in one aspect-locked view; the overlay is a precomputed RGBA
array, so the opacity slider and the probability/mask toggle never touch the data again.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from casdesk.gui.predict.jobs import OverlayImages

PROB_NODATA = 255
MASK_RGB = (255, 40, 40)


def probability_rgba(prob: np.ndarray) -> np.ndarray:
    """uint8 probability (0..254, 255 nodata) -> RGBA: yellow to red, alpha grows with p, so
    low probabilities barely tint the scene and nodata is transparent."""
    p = np.where(prob == PROB_NODATA, 0, prob).astype(np.float32) / 254.0
    rgba = np.zeros((*prob.shape, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = (230 * (1.0 - p)).astype(np.uint8)
    rgba[..., 3] = (255 * np.clip(p * 1.3, 0, 1)).astype(np.uint8)
    return rgba


def mask_rgba(mask: np.ndarray) -> np.ndarray:
    """uint8 mask (0/1, 255 nodata) -> opaque red where landslide, transparent elsewhere."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    hit = mask == 1
    rgba[hit, :3] = MASK_RGB
    rgba[hit, 3] = 255
    return rgba


def probability_legend(width: int = 90, height: int = 14) -> QPixmap:
    """A colour bar "0 ... 1" for the probability overlay (the same colours over dark grey)."""
    ramp = np.repeat((np.linspace(0, 254, width)).astype(np.uint8)[None, :], height, axis=0)
    rgba = probability_rgba(ramp).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    rgb = (rgba[..., :3] * alpha + 90 * (1 - alpha)).astype(np.uint8)
    image = QImage(np.ascontiguousarray(rgb).data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    pix = QPixmap(width + 28, height)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.drawText(QRectF(0, 0, 12, height), Qt.AlignmentFlag.AlignCenter, "0")
    painter.drawImage(14, 0, image)
    painter.drawText(QRectF(width + 15, 0, 12, height), Qt.AlignmentFlag.AlignCenter, "1")
    painter.end()
    return pix


def mask_legend(height: int = 14) -> QPixmap:
    """A red swatch "landslide" for the mask overlay."""
    pix = QPixmap(90, height)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.fillRect(QRectF(0, 1, height - 2, height - 2), QColor(*MASK_RGB))
    painter.drawText(QRectF(height + 2, 0, 90 - height, height), Qt.AlignmentFlag.AlignVCenter, "landslide")
    painter.end()
    return pix


class PredictionView(QWidget):
    """Scene + prediction overlay with an opacity slider and a probability/mask toggle."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.images: OverlayImages | None = None
        self._layers: dict[str, np.ndarray] = {}
        self.plot = pg.GraphicsLayoutWidget()
        self.plot.setBackground(QColor(25, 25, 25))
        self.viewbox = self.plot.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.scene_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.viewbox.addItem(self.scene_item)
        self.viewbox.addItem(self.overlay_item)

        self.show_prob = QRadioButton("Probability")
        self.show_mask = QRadioButton("Mask")
        self.show_prob.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.show_prob)
        group.addButton(self.show_mask)
        group.buttonToggled.connect(lambda *_: self._show_layer())
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setMaximumWidth(200)
        self.opacity.valueChanged.connect(lambda v: self.overlay_item.setOpacity(v / 100))
        self.overlay_item.setOpacity(0.6)
        self.caption = QLabel("Run a prediction to see it here")
        self.legend = QLabel()
        self.legend.setObjectName("probabilityLegend")
        self.legend.setToolTip("Overlay colours: the probability of landslide from 0 (transparent) to 1 (red); "
                               "the mask shows pixels above the threshold in red")

        controls = QHBoxLayout()
        controls.addWidget(self.show_prob)
        controls.addWidget(self.show_mask)
        controls.addSpacing(16)
        controls.addWidget(QLabel("Opacity"))
        controls.addWidget(self.opacity)
        controls.addSpacing(16)
        controls.addWidget(self.legend)
        controls.addStretch(1)
        controls.addWidget(self.caption)
        self.legend.setPixmap(probability_legend())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.plot, 1)

    @property
    def layer(self) -> str:
        return "mask" if self.show_mask.isChecked() else "prob"

    def set_images(self, images: OverlayImages) -> None:
        self.images = images
        self._layers = {"prob": probability_rgba(images.prob), "mask": mask_rgba(images.mask)}
        self.scene_item.setImage(images.rgb, levels=(0, 255), autoLevels=False)
        self._show_layer()
        self.viewbox.autoRange(padding=0.02)
        h, w = images.rgb.shape[:2]
        shown = "" if images.scale <= 1 else f", shown at 1:{images.scale:.1f}"
        self.caption.setText(f"{images.scene.name} ({w}x{h} px{shown})")

    def clear(self) -> None:
        self.images = None
        self._layers = {}
        self.scene_item.clear()
        self.overlay_item.clear()
        self.caption.setText("Run a prediction to see it here")

    def _show_layer(self) -> None:
        self.legend.setPixmap(probability_legend() if self.layer == "prob" else mask_legend())
        rgba = self._layers.get(self.layer)
        if rgba is not None:
            self.overlay_item.setImage(rgba, levels=(0, 255), autoLevels=False)
