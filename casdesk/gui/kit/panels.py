"""The main window's panels, one per workflow step, in tab order.

Adding a panel is adding one line: ``(title, "module:Class")``. A panel class takes
``(context: ProjectContext, parent=None)`` and reacts to the context's signals; it may
define ``shutdown()`` (stop its workers) and ``can_close() -> bool`` (ask before closing).
"""

PANELS: list[tuple[str, str]] = [
    ("Project", "casdesk.gui.project.panel:ProjectPanel"),
    ("Browse", "casdesk.gui.browser.panel:BrowserPanel"),
    ("QC", "casdesk.gui.qc.panel:QCPanel"),
    ("Map", "casdesk.gui.map.panel:MapPanel"),
    ("Label", "casdesk.gui.editor.panel:EditorPanel"),
    ("Train", "casdesk.gui.training.panel:TrainingPanel"),
    ("Predict", "casdesk.gui.predict.panel:PredictPanel"),
]
