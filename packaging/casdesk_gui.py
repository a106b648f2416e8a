"""Entry script of the frozen ``casdesk-gui`` windowed executable (no console window)."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    import sys

    from casdesk.gui.shell.app import gui_main

    raise SystemExit(gui_main(sys.argv[1:]))
