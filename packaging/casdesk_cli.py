"""Entry script of the frozen ``casdesk`` console executable (the command line)."""

import multiprocessing

if __name__ == "__main__":
    # First: a frozen DataLoader worker or spawned process re-enters here and must stop.
    multiprocessing.freeze_support()
    from casdesk.cli import main

    raise SystemExit(main())
