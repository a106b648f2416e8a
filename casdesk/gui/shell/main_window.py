"""The main window: a tab per workflow step, project menu, log dock, status bar.

Thin on purpose: panels (see :mod:`casdesk.gui.kit.panels`) do the work; this class opens and
closes projects, shows the log, and keeps settings.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QTabWidget,
    QWidget,
)

from casdesk.core.errors import CasdeskError
from casdesk.core.project.lock import LockInfo, ProjectLockedError
from casdesk.gui.kit.dialogs import show_error
from casdesk.gui.kit.panels import PANELS
from casdesk.gui.shell.appicon import app_icon
from casdesk.gui.shell.context import ProjectContext
from casdesk.gui.shell.settings import PreferencesDialog, last_folder, remember_folder

if TYPE_CHECKING:
    from casdesk.gui.browser.quick_train import TrainRequest

log = logging.getLogger(__name__)
MAX_RECENT = 8


class _LogBridge(QObject):
    message = Signal(str)


class _QtLogHandler(logging.Handler):
    """Forwards log records to the log dock (thread-safe through a queued signal)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.bridge = _LogBridge()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bridge.message.emit(self.format(record))
        except RuntimeError:  # the dock is gone (shutdown)
            pass


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("casdesk")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.settings = settings or QSettings("casdesk", "casdesk")
        self.context = ProjectContext(self)
        self.context.project_opened.connect(self._on_project_opened)
        self.context.project_closed.connect(self._on_project_closed)
        self.context.status_message.connect(lambda m: self.statusBar().showMessage(m, 5000))
        self.context.tile_requested.connect(self.show_tile)
        self.context.train_requested.connect(self.train_on_split)
        self.context.opening.connect(self._on_opening)
        self.context.open_failed.connect(self._on_open_failed)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.panels: dict[str, QWidget] = {}
        for title, target in PANELS:
            module, cls = target.split(":")
            panel = getattr(importlib.import_module(module), cls)(self.context, self)
            self.panels[title] = panel
            self.tabs.addTab(panel, title)

        self._build_log_dock()
        self._build_menus()
        self._scope_tab_shortcuts()
        self._bridge_events()
        self.project_label = QLabel("No project")
        self.load_label = QLabel("")
        self.load_bar = QProgressBar()
        self.load_bar.setRange(0, 0)  # busy: the panels load in workers, their size is unknown
        self.load_bar.setMaximumWidth(120)
        self.load_bar.setMaximumHeight(14)
        self.load_bar.hide()
        self.statusBar().addPermanentWidget(self.load_label)
        self.statusBar().addPermanentWidget(self.load_bar)
        self.statusBar().addPermanentWidget(self.project_label)
        self._load_timer = QTimer(self, interval=150)
        self._load_timer.timeout.connect(self._poll_loading)
        self.resize(1400, 900)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)

    # ---- building
    def _build_log_dock(self) -> None:
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_view.setMaximumBlockCount(5000)
        dock = QDockWidget("Log", self)
        dock.setObjectName("logDock")
        dock.setWidget(self.log_view)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        dock.hide()
        self.log_dock = dock
        self._log_handler = _QtLogHandler()
        self._log_handler.bridge.message.connect(self.log_view.appendPlainText)
        logging.getLogger("casdesk").addHandler(self._log_handler)
        logging.getLogger("casdesk").setLevel(logging.INFO)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        new = QAction("&New project...", self)
        new.setShortcut(QKeySequence.StandardKey.New)
        new.triggered.connect(self.new_project_dialog)
        opn = QAction("&Open project...", self)
        opn.setShortcut(QKeySequence.StandardKey.Open)
        opn.triggered.connect(self.open_project_dialog)
        file_menu.addActions([new, opn])
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._refresh_recent()
        close = QAction("&Close project", self)
        close.triggered.connect(self.context.close)
        file_menu.addAction(close)
        file_menu.addSeparator()
        prefs = QAction("&Preferences...", self, shortcut=QKeySequence("Ctrl+,"))
        prefs.triggered.connect(lambda: PreferencesDialog(self.settings, self).open())
        file_menu.addAction(prefs)
        file_menu.addSeparator()
        quit_ = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"))  # StandardKey.Quit is empty on Windows
        quit_.triggered.connect(self.close)
        file_menu.addAction(quit_)

        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.log_dock.toggleViewAction())
        for i, title in enumerate(self.panels):
            act = QAction(title, self, shortcut=QKeySequence(f"Alt+{i + 1}"))
            act.triggered.connect(lambda _=False, i=i: self.tabs.setCurrentIndex(i))
            view_menu.addAction(act)

        help_menu = self.menuBar().addMenu("&Help")
        keys = QAction("&Keyboard shortcuts", self, shortcut=QKeySequence("F1"))
        keys.triggered.connect(self.show_shortcuts)
        about = QAction("&About casdesk", self)
        about.triggered.connect(self.show_about)
        help_menu.addActions([keys, about])

    def _scope_tab_shortcuts(self) -> None:
        """A key a tab uses (the editor's Ctrl+N: polygon) means that inside the tab, whatever
        has the focus there, and the window's meaning (New project) everywhere else: while
        such a tab is current, the colliding window action keeps its menu entry but gives
        its shortcut to the tab."""
        self._window_keys: dict[str, tuple[QAction, QKeySequence]] = {}
        for action in self.findChildren(QAction):
            for key in action.shortcuts():
                text = key.toString(QKeySequence.SequenceFormat.PortableText)
                if text:
                    self._window_keys[text] = (action, action.shortcut())
        self._tab_claims: dict[QWidget, set[str]] = {}
        for panel in self.panels.values():
            claimed = {k: f for k, f in tab_shortcuts(panel).items() if k in self._window_keys}
            for claimed_key, func in claimed.items():
                shortcut = QShortcut(QKeySequence(claimed_key), panel)
                shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                shortcut.activated.connect(func)
            self._tab_claims[panel] = set(claimed)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self._on_tab_changed(self.tabs.currentIndex())

    def _on_tab_changed(self, _index: int) -> None:
        stale = getattr(self, "_stale", {}).pop(self.tabs.currentWidget(), None)
        if stale is not None:
            stale()
        claimed = self._tab_claims.get(self.tabs.currentWidget(), set())
        for key, (action, sequence) in self._window_keys.items():
            action.setShortcut(QKeySequence() if key in claimed else sequence)

    def _bridge_events(self) -> None:
        """Until every panel listens to ``context.events`` itself: refresh the split lists of
        the Train and Predict tabs when a split is made anywhere (e.g. Browse > Assign split),
        and reload the QC tab after mask edits when it is next shown (its labelled-fraction
        column follows the masks; reloading a hidden tab would stall every edit)."""
        self._stale: dict[QWidget, Callable[[], None]] = {}
        for panel in self.panels.values():
            for owner in (panel, getattr(panel, "form", None)):
                refresh = getattr(owner, "refresh_splits", None)
                if callable(refresh):
                    self.context.events.splits_changed.connect(lambda _c, f=refresh: f())
        qc = self.panels.get("QC")
        reload = getattr(qc, "reload", None)
        if qc is not None and callable(reload) and not hasattr(qc, "on_masks_changed"):
            self.context.events.masks_changed.connect(lambda _c: self._mark_stale(qc, reload))
        self.context.project_closed.connect(self._stale.clear)

    def _mark_stale(self, panel: QWidget, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` when ``panel`` is next shown (now, if it is the current tab)."""
        if self.tabs.currentWidget() is panel:
            refresh()
        else:
            self._stale[panel] = refresh

    def show_tile(self, tile_id: int, where: str = "browse") -> None:
        """Open a tile in Browse's detail view ("browse") or in the editor ("label")."""
        title = "Label" if where == "label" else "Browse"
        panel = self.panels.get(title)
        if panel is None:
            return
        self.tabs.setCurrentWidget(panel)
        if where == "label":
            opener = getattr(panel, "open_target", None)
            if opener is not None:
                opener("tile", tile_id)
        else:
            opener = getattr(panel, "show_tile_id", None)
            if opener is not None:
                opener(tile_id)

    def train_on_split(self, request: TrainRequest) -> bool:
        """Start a short run in the Train tab on ``request.split`` (Browse > Train on these
        tiles), with the Train form's model and settings and ``request.epochs`` epochs."""
        panel = self.panels.get("Train")
        enqueue, form = getattr(panel, "enqueue", None), getattr(panel, "form", None)
        if panel is None or enqueue is None or form is None:
            return False
        from casdesk.core.evaluation.experiments import PlannedRun

        name = request.run_name
        config = {**form.config_values(), "epochs": request.epochs,
                  "qc_accepted_only": False, "name": name}
        planned = PlannedRun(name=name, model=config["model"], qc_accepted_only=False)
        self.tabs.setCurrentWidget(panel)
        enqueue(planned, config, existing_split=str(request.split))
        return True

    # ---- projects
    def open_project(self, path: str | Path) -> bool:
        """Open a project and return once it is open (scripts and tests); False when it
        could not be (after a dialog saying why). The window's own ways to open a project
        (menu, recent list, drop, command line) use :meth:`start_open_project`, which does
        not block the window while the database is checked."""
        return self._open_with(self.context.open, path)

    def _open_with(self, opener: Callable[..., object], path: str | Path) -> bool:
        """Open with ``opener`` (the context's blocking or background open); a project
        locked by another casdesk is offered read-only. False when not opened (a dialog said
        why, or the user declined)."""
        try:
            try:
                opener(path)
            except ProjectLockedError as exc:
                if not self._ask_readonly(exc.holder):
                    return False
                opener(path, readonly=True)
        except CasdeskError as exc:
            show_error(self, "Cannot open project", str(exc))
            return False
        return True

    def start_open_project(self, path: str | Path) -> bool:
        """Open a project without blocking the window: the database is opened and checked in
        a thread (:meth:`ProjectContext.open_in_background`), the tabs load it in theirs.
        False when refused at once (the user declined to open a locked project read-only,
        or the lock could not be taken); a failure found later is shown in a dialog."""
        return self._open_with(self.context.open_in_background, path)

    def _on_opening(self, path: Path) -> None:
        self.load_label.setText(f"Opening {path.name}\u2026")
        self.load_bar.show()

    def _on_open_failed(self, _path: Path, message: str) -> None:
        self.load_label.setText("")
        self.load_bar.hide()
        show_error(self, "Cannot open project", message)

    def _ask_readonly(self, holder: LockInfo | None) -> bool:
        """Another casdesk holds the project: open it read-only (True) or cancel (False).

        A separate method so tests can answer without a modal dialog."""
        who = holder.describe() if holder is not None else "another program (its lock file cannot be written)"
        answer = QMessageBox.question(
            self,
            "Project in use",
            f"This project is open in another casdesk window:\n{who}\n\n"
            "Two windows editing one project would overwrite each other's work. "
            "Open it read-only?",
            QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Open

    def new_project_dialog(self) -> None:
        start = last_folder(self.settings, "project")
        path, _ = QFileDialog.getSaveFileName(self, "New project", start, "casdesk project (*.casdesk)")
        if path:
            try:
                self.context.create(path)
            except CasdeskError as exc:
                show_error(self, "Cannot create project", str(exc))

    def open_project_dialog(self) -> None:
        start = last_folder(self.settings, "project")
        path, _ = QFileDialog.getOpenFileName(self, "Open project", start, "casdesk project (*.casdesk)")
        if path:
            self.start_open_project(path)

    def _on_project_opened(self, path: Path) -> None:
        suffix = " (read-only)" if self.context.readonly else ""
        self.setWindowTitle(f"{path.stem}{suffix} - casdesk")
        self.project_label.setText(f"{path}{suffix}")
        remember_folder(self.settings, "project", path)
        recent = [p for p in self._recent() if p != str(path)]
        self.settings.setValue("recent/projects", [str(path), *recent][:MAX_RECENT])
        self._refresh_recent()
        self._load_timer.start()  # the panels start their loads after this slot
        self.load_label.setText("Loading the project\u2026")
        self.load_bar.show()
        log.info("opened project %s", path)

    def loading_panels(self) -> list[str]:
        """Titles of the tabs still reading the project in a worker."""
        busy = []
        for title, panel in self.panels.items():
            is_loading = getattr(panel, "is_loading", None)
            if callable(is_loading) and is_loading():
                busy.append(title)
        return busy

    def _poll_loading(self) -> None:
        busy = self.loading_panels() if self.context.catalog is not None else []
        self.load_bar.setVisible(bool(busy))
        self.load_label.setText(f"Loading {', '.join(busy)}\u2026" if busy else "")
        if not busy:
            self._load_timer.stop()

    def _on_project_closed(self) -> None:
        self.setWindowTitle("casdesk")
        self.project_label.setText("No project")

    def _recent(self) -> list[str]:
        value = self.settings.value("recent/projects", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value] if isinstance(value, list | tuple) else []

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for p in self._recent():
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self.start_open_project(p))
        self.recent_menu.setEnabled(bool(self._recent()))

    # ---- misc
    def show_about(self) -> None:
        from casdesk.gui.shell.about import AboutDialog

        AboutDialog(self).open()

    def show_shortcuts(self) -> None:
        from casdesk.gui.shell.shortcuts import ShortcutsDialog

        ShortcutsDialog(self).open()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if path.suffix == ".casdesk":
                self.start_open_project(path)
                return
            handler = getattr(self.panels.get("Project"), "import_path", None)
            if handler is not None:
                handler(path)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        for panel in self.panels.values():
            can_close = getattr(panel, "can_close", None)
            if can_close is not None and not can_close():
                event.ignore()
                return
        for panel in self.panels.values():
            shutdown = getattr(panel, "shutdown", None)
            if shutdown is not None:
                shutdown()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        logging.getLogger("casdesk").removeHandler(self._log_handler)
        self.context.close()
        super().closeEvent(event)


def tab_shortcuts(panel: QWidget) -> dict[str, Callable[[], None]]:
    """Keys (portable text) a tab answers to itself, with what they do: the panel's
    ``tab_shortcuts()`` when it has one, else the Ctrl keys of a canvas with a ``KEYMAP``
    (the editor)."""
    own = getattr(panel, "tab_shortcuts", None)
    if callable(own):
        return dict(own())
    canvas = getattr(panel, "canvas", None)
    keymap = getattr(sys.modules.get(type(canvas).__module__), "KEYMAP", None) if canvas is not None else None
    run = getattr(canvas, "run_action", None)
    if not isinstance(keymap, dict) or not callable(run):
        return {}
    def runner(action: str) -> Callable[[], None]:
        return lambda: run(action)

    return {key: runner(action) for key, action in keymap.items() if key.startswith("Ctrl+")}
