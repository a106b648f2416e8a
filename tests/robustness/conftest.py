"""Helpers for the robustness suite: run the CLI as a user would, build small projects,
and check a project after something went wrong (bad input, SIGKILL, disk full).

The invariants every test ends with (:func:`assert_project_sound`): the project opens,
SQLite's quick_check passes, and every registered tile's files open with rasterio (no
half-written tile is ever registered).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import rasterio

from casdesk.core.project.catalog import Catalog

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``cli("crop", project, "--size", "64")``: run ``casdesk`` in-process, as a user would
    type it; returns the exit code and what it printed."""
    from casdesk.cli import main

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def small_scene(path: Path, size: int = 256, **kwargs: object) -> Path:
    """A small synthetic GeoTIFF scene (scars, cloud, seam, fill border)."""
    from casdesk.core.dataset.synthetic import make_scene

    make_scene(path, width=size, height=size, **kwargs)  # type: ignore[arg-type]
    return path


def assert_project_sound(project: Path) -> Catalog:
    """The project opens, passes quick_check, and every registered tile's files are whole
    GeoTIFFs. Returns the open catalog (the caller closes it)."""
    cat = Catalog.open(project)
    assert cat.query("PRAGMA quick_check")[0][0] == "ok"
    for tile in cat.tiles():
        for path in (tile.image_path, tile.mask_path, tile.label_path):
            if path is None:
                continue
            with rasterio.open(path) as ds:
                ds.read()
    return cat


def python_subprocess(code: str, *args: str | Path, **kwargs: object) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` with line-buffered stdout, so the test reads what
    the child reports as saved the moment it reports it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
        **kwargs,  # type: ignore[arg-type]
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll until ``predicate()``; fail with the child's stderr when it died first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kill9(proc: subprocess.Popen[str]) -> str:
    """SIGKILL (no cleanup handlers run) and reap the child so its pid is really gone.

    Returns what the child printed that the test had not read yet: the child runs ahead of
    the test, so its last report is only known after the kill."""
    import signal

    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    rest = proc.stdout.read() if proc.stdout is not None else ""
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return rest
