"""Render the README screenshots of every panel from a freshly built demo project.

Runs without a display (Qt's offscreen platform; ``QWidget.grab`` renders the real widgets),
so the pictures stay current with the code:

    python scripts/make_screenshots.py docs/img [--train-epochs 3]

The Train tab is shown after a short real training run on the demo tiles (CPU, a minute
or two); the Predict tab (when present) after predicting the demo scene with that model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def wait(app, condition, timeout: float = 600.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--train-epochs", type=int, default=3)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from casdesk.commands.project import build_demo
    from casdesk.gui.shell.main_window import MainWindow

    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp(prefix="casdesk-shots-"))
    project = build_demo(tmp / "demo")
    window = MainWindow(settings=QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1600, 1000)
    window.show()
    window.open_project(project)

    def shoot(title: str, settle: float = 1.5) -> None:
        index = [window.tabs.tabText(i) for i in range(window.tabs.count())].index(title)
        window.tabs.setCurrentIndex(index)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        path = args.out_dir / f"{title.lower()}.png"
        window.grab().save(str(path))
        print(f"wrote {path}")

    for title in ("Project", "Browse", "QC", "Label"):
        shoot(title, settle=3.0)

    train = window.panels["Train"]
    form = train.form
    form.model.setCurrentIndex(form.model.findData("smp:Unet"))
    form.encoder.setText("resnet18")
    form.epochs.setValue(args.train_epochs)
    form.batch_size.setValue(4)
    form.tiles.setCurrentIndex(form.tiles.findData("all"))
    window.tabs.setCurrentWidget(train)
    train.start_from_form()
    wait(app, lambda: not train.busy and train.runner is None)
    shoot("Train")
    predict = window.panels.get("Predict")
    if predict is not None:
        from casdesk.core.evaluation.runs import list_runs

        run = list_runs(window.context.catalog)[0]
        window.tabs.setCurrentWidget(predict)
        predict.set_model(run.model_path or Path(run.out_dir or "") / "model.pt")
        wait(app, lambda: predict.model_info is not None, timeout=120)
        predict.set_source(tmp / "demo" / "demo_scene.tif")
        predict.run()
        wait(app, lambda: not predict.busy and predict.current_result() is not None)
        shoot("Predict")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
