"""Cheap checks of the packaging inputs (the real build is test_frozen.py, opt-in)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def test_spec_hooks_and_entry_scripts_are_valid_python() -> None:
    files = [PACKAGING / "casdesk.spec", PACKAGING / "build.py", PACKAGING / "casdesk_cli.py",
             PACKAGING / "casdesk_gui.py", *sorted((PACKAGING / "hooks").glob("hook-*.py"))]
    for path in files:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    hooks = {p.name for p in (PACKAGING / "hooks").glob("hook-*.py")}
    assert {"hook-rasterio.py", "hook-pyogrio.py", "hook-casdesk.py"} <= hooks


def test_spec_makes_two_executables_without_upx_or_other_qt_bindings() -> None:
    spec = (PACKAGING / "casdesk.spec").read_text(encoding="utf-8")
    assert spec.count("EXE(") == 2 and "COLLECT(" in spec
    assert 'name="casdesk"' in spec and 'name="casdesk-gui"' in spec
    assert "console=True" in spec and "console=False" in spec
    assert "upx=True" not in spec
    for binding in ("PyQt5", "PyQt6", "PySide2", "tkinter"):
        assert f'"{binding}"' in spec


def test_entry_scripts_call_freeze_support_first() -> None:
    for name in ("casdesk_cli.py", "casdesk_gui.py"):
        tree = ast.parse((PACKAGING / name).read_text(encoding="utf-8"))
        main_block = next(n for n in tree.body if isinstance(n, ast.If))
        first = main_block.body[0]
        assert "freeze_support" in ast.unparse(first), name
    main_src = (ROOT / "casdesk" / "__main__.py").read_text(encoding="utf-8")
    assert "multiprocessing.freeze_support()" in main_src


def test_rasterio_hook_collects_hidden_submodules_and_gdal_proj_data() -> None:
    code = (
        "import runpy; ns = runpy.run_path(r'%s'); "
        "assert 'rasterio.serde' in ns['hiddenimports'], 'serde'; "
        "dests = {d for _, d in ns['datas']}; "
        "assert any(d.startswith('rasterio/gdal_data') for d in dests); "
        "assert any(d.startswith('rasterio/proj_data') for d in dests); "
        "names = {s.rsplit('/', 1)[-1] for s, _ in ns['datas']}; assert 'proj.db' in names"
    ) % (PACKAGING / "hooks" / "hook-rasterio.py")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_icon_files_exist() -> None:
    for name in ("casdesk.svg", "casdesk.png", "casdesk.ico"):
        assert (ROOT / "casdesk" / "assets" / name).stat().st_size > 500, name


def test_build_script_help_and_variant_check() -> None:
    proc = subprocess.run([sys.executable, str(PACKAGING / "build.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--cuda" in proc.stdout and "--cpu" in proc.stdout
    sys.path.insert(0, str(PACKAGING))
    try:
        import build  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(PACKAGING))
    assert build.torch_variant() in ("cpu", "cuda")


def test_cli_reference_generator_covers_every_command(tmp_path: Path) -> None:
    code = ("import sys; sys.path.insert(0, r'%s'); import gen_cli_docs as g; "
            "text = g.render(); from casdesk.cli import build_parser; "
            "names = list(g.subcommands(build_parser())); "
            "missing = [n for n in names if f'## casdesk {n}' not in text]; "
            "assert names and not missing, missing") % (ROOT / "scripts")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
