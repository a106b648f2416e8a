"""`python -m casdesk` runs the command line (and, frozen, the app)."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from casdesk.cli import main

    raise SystemExit(main())
