"""The application icon, found in a source checkout and in the frozen app alike."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon


def assets_dir() -> Path:
    """``casdesk/assets/``: package data in a checkout, a wheel and the frozen app alike."""
    return Path(__file__).resolve().parents[2] / "assets"


def app_icon() -> QIcon:
    """The casdesk icon (the SVG scales crisply on high-DPI screens; PNG as a fallback)."""
    icon = QIcon()
    for name in ("casdesk.svg", "casdesk.png"):
        path = assets_dir() / name
        if path.is_file():
            icon.addFile(str(path))
    return icon
