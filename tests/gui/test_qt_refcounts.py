"""Guard for the PySide6 pin: 6.12.0 drops references to None (processEvents, repaint)
and to True (Signal.emit) until CPython aborts. The installed PySide6 must not."""

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QWidget


class _Emitter(QObject):
    ping = Signal(int)


def test_event_loop_and_signals_keep_singleton_references(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    widget.show()
    emitter = _Emitter()
    received = []
    emitter.ping.connect(received.append)
    app = QApplication.instance()
    before = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    for i in range(300):
        app.processEvents()
        widget.repaint()
        emitter.ping.emit(i)
    after = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}
    assert len(received) == 300
    for name in before:
        assert after[name] >= before[name] - 20, f"{name} lost {before[name] - after[name]} references"
