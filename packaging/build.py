"""Build the casdesk one-folder app, check it with its own selftest, and archive it.

    python packaging/build.py [--cpu | --cuda] [--out DIR] [--no-selftest] [--no-archive]

Steps: PyInstaller with ``packaging/casdesk.spec`` (build and dist folders under ``--out``,
by default ``<temp>/casdesk-build``: several GB, keep them out of the repository), then
``<dist>/casdesk/casdesk selftest`` on the built app, then a ``.tar.gz`` (Linux, macOS) or
``.zip`` (Windows; the installer is made from the folder with ``packaging/casdesk.iss``).
Prints the build time, folder and archive sizes, the selftest output, and a JSON summary
as its last line. Exit status: 0 when the app was built and its selftest passed.

``--cpu`` / ``--cuda`` state which torch build the app must bundle. PyInstaller freezes the
torch installed in this environment, so the flag is checked against it: a CPU build needs
the CPU wheel (``pip install torch torchvision --index-url
https://download.pytorch.org/whl/cpu``) in the build environment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "casdesk.spec"
APP = "casdesk"


def torch_variant() -> str:
    """``cuda`` or ``cpu``: read from torch's package metadata (importing torch is slow)."""
    try:
        dist = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        raise SystemExit("torch is not installed in this environment") from None
    local = dist.version.partition("+")[2]
    if local.startswith("cpu"):
        return "cpu"
    if local.startswith(("cu", "rocm")):
        return "cuda"
    needs_nvidia = any(r.startswith("nvidia-") for r in dist.requires or [])
    # PyPI's Linux wheel is the CUDA build; its Windows/macOS wheels are CPU-only
    return "cuda" if needs_nvidia else "cpu"


def folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def human(n: float) -> str:
    """Binary units, labelled as such (du -h and file managers differ on GB vs GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def run_pyinstaller(dist: Path, work: Path, clean: bool) -> float:
    cmd = [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm",
           "--distpath", str(dist), "--workpath", str(work), "--log-level", "WARN"]
    if clean:
        cmd.append("--clean")
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - start


def executable(app_dir: Path, name: str) -> Path:
    return app_dir / (f"{name}.exe" if os.name == "nt" else name)


def run_selftest(app_dir: Path, timeout: float) -> tuple[int, str, float]:
    """Run the frozen CLI's selftest offscreen with its log in a temporary folder."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    with tempfile.TemporaryDirectory(prefix="casdesk-frozen-log-") as logs:
        env["CASDESK_LOG_DIR"] = logs
        start = time.perf_counter()
        proc = subprocess.run(
            [str(executable(app_dir, APP)), "selftest", "--device", "cpu"],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )
        seconds = time.perf_counter() - start
    return proc.returncode, proc.stdout + proc.stderr, seconds


def make_archive(app_dir: Path, variant: str) -> Path:
    from casdesk import __version__

    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    stem = f"{APP}-{__version__}-{system}-{platform.machine().lower()}-{variant}"
    if os.name == "nt":
        out = app_dir.parent / f"{stem}.zip"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in app_dir.rglob("*"):
                zf.write(p, Path(APP) / p.relative_to(app_dir))
        return out
    out = app_dir.parent / f"{stem}.tar.gz"
    tar = shutil.which("tar")
    if tar:  # GNU tar keeps symlinks and is faster than tarfile on GBs
        subprocess.run([tar, "-czf", str(out), "-C", str(app_dir.parent), app_dir.name], check=True)
    else:
        with tarfile.open(out, "w:gz") as tf:
            tf.add(app_dir, arcname=APP)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    variant_group = parser.add_mutually_exclusive_group()
    variant_group.add_argument("--cpu", dest="variant", action="store_const", const="cpu",
                               help="bundle the CPU-only torch (must be the one installed)")
    variant_group.add_argument("--cuda", dest="variant", action="store_const", const="cuda",
                               help="bundle the CUDA torch (must be the one installed)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "casdesk-build",
                        help="folder for PyInstaller's build/ and dist/ (default: %(default)s)")
    parser.add_argument("--clean", action="store_true", help="drop PyInstaller's cache first")
    parser.add_argument("--no-selftest", dest="selftest", action="store_false")
    parser.add_argument("--no-archive", dest="archive", action="store_false")
    parser.add_argument("--selftest-timeout", type=float, default=600.0, metavar="S")
    args = parser.parse_args(argv)

    installed = torch_variant()
    variant = args.variant or installed
    if variant != installed:
        print(f"error: --{variant} asked, but the installed torch is the {installed} build; "
              f"install the {variant} wheel in the build environment first "
              "(see packaging/README.md)", file=sys.stderr)
        return 2
    dist, work = args.out / "dist", args.out / "work"
    summary: dict[str, object] = {"variant": variant, "platform": sys.platform}

    build_s = run_pyinstaller(dist, work, args.clean)
    app_dir = dist / APP
    size = folder_size(app_dir)
    summary.update(build_s=round(build_s, 1), folder=str(app_dir), folder_bytes=size)
    print(f"built {app_dir} in {build_s:.0f} s: {human(size)}", flush=True)

    ok = True
    if args.selftest:
        rc, output, seconds = run_selftest(app_dir, args.selftest_timeout)
        print(output.rstrip(), flush=True)
        print(f"frozen selftest: exit {rc} after {seconds:.1f} s", flush=True)
        summary.update(selftest_rc=rc, selftest_s=round(seconds, 1))
        ok = rc == 0
    if args.archive:
        start = time.perf_counter()
        archive = make_archive(app_dir, variant)
        summary.update(archive=str(archive), archive_bytes=archive.stat().st_size,
                       archive_s=round(time.perf_counter() - start, 1))
        print(f"archive {archive}: {human(archive.stat().st_size)}", flush=True)
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
