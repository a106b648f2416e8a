"""The Predict tab's jobs load torch and the model packages through the GIL-free loader
(``casdesk.gui.kit.torch_import``) before anything imports them the plain way: a first
prediction must not freeze the window while torch's libraries load (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from casdesk.core.jobs import CancelToken
from casdesk.gui.predict import jobs


class Loaded(Exception):
    pass


@pytest.fixture
def quiet_calls(monkeypatch) -> list[str]:
    calls: list[str] = []

    def quiet(name: str):
        def load():
            calls.append(name)
            raise Loaded(name)  # stop the job right there: nothing after it has run

        return load

    monkeypatch.setattr(jobs, "import_ml_quietly", quiet("ml"))
    monkeypatch.setattr(jobs, "import_torch_quietly", quiet("torch"))
    return calls


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: jobs.model_info_job(p / "m.pt"), "torch"),
        (lambda p: jobs.memory_job(p / "m.pt", p, {"overlap": 0.25, "batch_size": 2, "tta": False}), "ml"),
        (lambda p: jobs.predict_job(p / "m.pt", p, p / "out", {}, CancelToken()), "ml"),
        (lambda p: jobs.predict_tiles_job(p / "m.pt", p / "x.casdesk", None, None, {}, CancelToken()), "ml"),
    ],
)
def test_each_job_loads_torch_quietly_first(tmp_path: Path, quiet_calls: list[str], make, expected) -> None:
    job = make(tmp_path)
    with pytest.raises(Loaded):
        while True:
            next(job)
    assert quiet_calls == [expected]
