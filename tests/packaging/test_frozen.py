"""Build the one-folder app with PyInstaller and run its own selftest (opt-in: slow, GBs).

Run with ``CASDESK_BUILD_TEST=1 pytest tests/packaging/test_frozen.py -m slow``.
``CASDESK_BUILD_DIR`` picks the build folder (default: pytest's temporary folder); it
needs several GB free. Measured on the 2-core development VM: see packaging/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CASDESK_BUILD_TEST") != "1",
                       reason="builds the frozen app (minutes, GBs): set CASDESK_BUILD_TEST=1"),
]


@pytest.mark.timeout(3600)
def test_frozen_app_builds_and_passes_its_selftest(tmp_path: Path) -> None:
    keep = bool(os.environ.get("CASDESK_BUILD_DIR"))
    out = Path(os.environ.get("CASDESK_BUILD_DIR") or tmp_path / "build")
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "packaging" / "build.py"), "--out", str(out), "--no-archive"],
            capture_output=True, text=True, timeout=3500, cwd=ROOT,
        )
        _check(proc, out)
    finally:
        if not keep:  # ~5 GB: pytest keeps its last three temporary folders
            shutil.rmtree(out, ignore_errors=True)


def _check(proc: subprocess.CompletedProcess[str], out: Path) -> None:
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["selftest_rc"] == 0, tail
    app = out / "dist" / "casdesk"
    exe = ".exe" if os.name == "nt" else ""
    assert (app / f"casdesk{exe}").is_file() and (app / f"casdesk-gui{exe}").is_file()
    assert "selftest PASS" in proc.stdout
