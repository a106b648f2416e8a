"""Render ``casdesk/assets/casdesk.svg`` into the PNG and ICO files the app and the installers use.

Run after editing the SVG: ``python assets/make_icon.py``. Qt renders the SVG (so the
result matches what the app shows); Pillow, when present, writes a multi-size ICO for
Windows (Explorer picks the size it needs), else Qt writes a single 256 px ICO.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "casdesk" / "assets"
SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(size: int):  # -> QImage
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(HERE / "casdesk.svg")).render(painter)
    painter.end()
    return image


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts/plugins
    render(256).save(str(HERE / "casdesk.png"))
    render(48).save(str(HERE / "casdesk-48.png"))
    try:
        from PIL import Image
    except ImportError:
        render(256).save(str(HERE / "casdesk.ico"))
    else:
        Image.open(HERE / "casdesk.png").save(HERE / "casdesk.ico", sizes=[(s, s) for s in SIZES])
    print(f"wrote {HERE / 'casdesk.png'}, {HERE / 'casdesk.ico'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
