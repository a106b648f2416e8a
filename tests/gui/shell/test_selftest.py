"""``casdesk selftest``: step isolation, and the real pipeline once (about 20-30 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from casdesk import selftest


def test_a_failing_step_is_reported_and_the_rest_still_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []

    def ok(state: selftest.SelftestState) -> str:
        calls.append("ok")
        state.values["thing"] = 1
        return "fine"

    def broken(state: selftest.SelftestState) -> str:
        raise OSError("disk on fire\nsecond line")

    def needs_missing(state: selftest.SelftestState) -> str:
        state.need("missing", "broken")
        return "unreachable"

    monkeypatch.setattr(selftest, "STEPS", [("ok", ok), ("broken", broken), ("after", needs_missing), ("ok2", ok)])
    seen: list[selftest.StepResult] = []
    results = selftest.run_selftest(on_result=seen.append)
    assert [r.ok for r in results] == [True, False, False, True] and seen == results
    assert results[1].detail == "OSError: disk on fire"
    assert "needs the broken step" in results[2].detail
    assert results[0].line().startswith("PASS") and results[1].line().startswith("FAIL")
    assert calls == ["ok", "ok"]


def test_temp_folder_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    folders: list[Path] = []

    def remember(state: selftest.SelftestState) -> str:
        folders.append(state.folder)
        (state.folder / "x.txt").write_text("x")
        return "ok"

    monkeypatch.setattr(selftest, "STEPS", [("remember", remember)])
    selftest.run_selftest()
    assert folders and not folders[0].exists()


def test_selftest_command_runs_the_pipeline(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CASDESK_LOG_DIR=str(tmp_path / "logs"),
               OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "casdesk", "selftest", "--device", "cpu"],
                          capture_output=True, text=True, timeout=280, env=env, cwd=tmp_path)
    lines = {line.split()[1]: line for line in proc.stdout.splitlines()
             if line.startswith(("PASS", "FAIL"))}
    assert list(lines) == [name for name, _ in selftest.STEPS], proc.stdout + proc.stderr[-3000:]
    for name in ("libraries", "gui", "scene", "add-scene", "crop", "qc", "train"):
        assert lines[name].startswith("PASS"), lines[name] + "\n" + proc.stderr[-3000:]
    try:
        import casdesk.ml.inference.scene  # noqa: F401
    except ImportError:
        assert lines["predict"].startswith("FAIL") and "not available" in lines["predict"]
        assert proc.returncode == 1
    else:
        assert lines["predict"].startswith("PASS"), lines["predict"]
        assert proc.returncode == 0
    assert (tmp_path / "logs" / "casdesk.log").is_file()
    assert not list(tmp_path.glob("casdesk-selftest-*"))
