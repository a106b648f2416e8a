"""Render the README screenshots of every panel from a freshly built demo project.

Runs without a display (Qt's offscreen platform; ``QWidget.grab`` renders the real widgets),
so the pictures stay current with the code:

    python scripts/make_screenshots.py docs/img [--train-epochs 10]

The Train tab is shown after a short real training run on the demo tiles (10 epochs: about 20 minutes
on a 2-core CPU; 3 epochs leave a model too weak to show); the Label tab once more with that model's prediction over a tile ("Predict this
tile", ``label_predict.png``); the Predict tab after predicting the demo scene with it.
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
    ap.add_argument("--train-epochs", type=int, default=10)
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

    def shoot(title: str, settle: float = 1.5, name: str | None = None) -> None:
        index = [window.tabs.tabText(i) for i in range(window.tabs.count())].index(title)
        window.tabs.setCurrentIndex(index)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        path = args.out_dir / f"{name or title.lower()}.png"
        window.grab().save(str(path))
        print(f"wrote {path}")

    # the editor on the most labelled tile (fit to the window, its shapes listed, the scene's dimmed)
    editor = window.panels["Label"]
    cat = window.context.catalog
    tile_id = int(cat.query("SELECT id FROM tiles ORDER BY label_pixels DESC, id LIMIT 1")[0][0])
    window.tabs.setCurrentWidget(editor)
    editor.open_target("tile", tile_id)
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    for title in ("Project", "Browse", "QC", "Map", "Label"):
        if title in titles:
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
    if not wait(app, lambda: not train.busy and train.runner is None and not train.preview.busy, timeout=3600):
        print("training did not finish in an hour: the Train picture shows it running")
    shoot("Train")
    # the predict -> accept loop in the editor: the trained model's probability over the tile
    window.tabs.setCurrentWidget(editor)
    editor.model_chooser.refresh(window.context.catalog)
    editor.open_target("tile", tile_id)
    editor.predict_tile()
    wait(app, lambda: editor._prediction is not None and not editor.predict_busy(), timeout=120)
    shoot("Label", name="label_predict")
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
