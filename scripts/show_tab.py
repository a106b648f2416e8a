"""Open the app on a project with one tab selected (used for screenshots under Xvfb).

Usage: python scripts/show_tab.py PROJECT.casdesk TAB_TITLE
"""

import sys

from PySide6.QtWidgets import QApplication

from casdesk.gui.shell.main_window import MainWindow


def main() -> int:
    app = QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1580, 960)
    window.show()
    window.open_project(sys.argv[1])
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    window.tabs.setCurrentIndex(titles.index(sys.argv[2]))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
