"""Project panel: what the project holds (scenes, subdatasets, tile counts)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from casdesk.gui.context import ProjectContext


class ProjectPanel(QWidget):
    def __init__(self, context: ProjectContext, parent: QWidget | None = None):
        super().__init__(parent)
        self.context = context
        self.heading = QLabel("No project open. File > New project or File > Open project.")
        self.heading.setWordWrap(True)
        self.subdatasets = QTableWidget(0, 5)
        self.subdatasets.setHorizontalHeaderLabels(
            ["Subdataset", "Sensor", "Resolution (m)", "Tiles", "Labelled %"]
        )
        self.subdatasets.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.subdatasets.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.scenes = QTableWidget(0, 6)
        self.scenes.setHorizontalHeaderLabels(["Scene", "Size", "Bands", "CRS", "Labels", "Tiles"])
        self.scenes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.scenes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(QLabel("Subdatasets"))
        layout.addWidget(self.subdatasets)
        layout.addWidget(QLabel("Scenes"))
        layout.addWidget(self.scenes)
        context.project_opened.connect(lambda _p: self.refresh())
        context.project_closed.connect(self.refresh)
        context.tiles_changed.connect(self.refresh)

    def refresh(self) -> None:
        catalog = self.context.catalog
        if catalog is None:
            self.heading.setText("No project open. File > New project or File > Open project.")
            self.subdatasets.setRowCount(0)
            self.scenes.setRowCount(0)
            return
        summary = catalog.summary()
        self.heading.setText(
            f"<b>{Path(summary['project']).stem}</b>: {len(summary['scenes'])} scenes, "
            f"{summary['tiles']} tiles, {100 * summary['labelled_fraction']:.2f} % of valid "
            "pixels labelled landslide"
        )
        subs = summary["subdatasets"]
        self.subdatasets.setRowCount(len(subs))
        for r, s in enumerate(subs):
            values = [
                s["name"],
                s["sensor"] or "",
                "" if s["resolution_m"] is None else f"{s['resolution_m']:g}",
                str(s["tiles"]),
                f"{100 * s['labelled_fraction']:.2f}",
            ]
            for c, v in enumerate(values):
                self.subdatasets.setItem(r, c, QTableWidgetItem(v))
        scenes = summary["scenes"]
        self.scenes.setRowCount(len(scenes))
        for r, s in enumerate(scenes):
            values = [
                s["name"],
                f"{s['size'][0]} x {s['size'][1]}",
                f"{s['bands']} x {s['dtype']}",
                s["crs"] or "none",
                str(s["labels"]),
                str(s["tiles"]),
            ]
            for c, v in enumerate(values):
                self.scenes.setItem(r, c, QTableWidgetItem(v))
