"""Every CLI error path ends in one line and exit 2, never a traceback (issue 13, items 5-6).

* every subcommand of :func:`casdesk.cli.build_parser` (nested ones included) is run with an
  unknown option, with paths that do not exist, and with a real project but garbage files;
* options are checked before any work, with the reason and the accepted range;
* a read-only project (an archive on a read-only share) is read by the reading commands and
  refused, in one sentence, by the writing ones.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from casdesk.cli import build_parser
from casdesk.core.project.catalog import Catalog

from .conftest import CliResult, small_scene

NOT_RUN = {"gui", "selftest", "models"}  # open a window / run the self-test / build every network


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaves(sub, (*prefix, name))


LEAVES = list(_leaves(build_parser()))
IDS = [" ".join(cmd) for cmd, _ in LEAVES]


def _run(cli: Callable[..., CliResult], argv: list[str | Path]) -> CliResult:
    try:
        return cli(*argv)
    except SystemExit as exc:  # argparse: usage line + one error line, exit 2
        return CliResult(int(exc.code or 0), "", "")


def _assert_one_line_error(result: CliResult, capsys: pytest.CaptureFixture[str] | None = None) -> None:
    text = result.text
    if capsys is not None:
        captured = capsys.readouterr()
        text += captured.out + captured.err
    assert "Traceback" not in text, text
    assert result.code == 2, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "an error must say something"
    last = lines[-1]
    assert last.startswith("casdesk") and "error" in last, text


def test_every_subcommand_is_walked() -> None:
    names = set(IDS)
    assert {"init", "crop", "export", "predict", "labels export", "split", "train"} <= names
    assert len(names) >= 20


@pytest.mark.parametrize(("cmd", "sub"), LEAVES, ids=IDS)
def test_unknown_option_is_one_line(cmd: tuple[str, ...], sub: argparse.ArgumentParser,
                                    cli: Callable[..., CliResult], capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(cli, [*cmd, "--no-such-option"])
    _assert_one_line_error(result, capsys)


def _argv(cmd: tuple[str, ...], sub: argparse.ArgumentParser, values: dict[str, str | Path]) -> list[str | Path]:
    argv: list[str | Path] = list(cmd)
    for action in sub._actions:
        if action.option_strings and action.required:
            argv += [action.option_strings[0], values.get(action.dest, values["out"])]
    for action in sub._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            n = action.nargs if isinstance(action.nargs, int) else 1
            argv += [values.get(action.dest, values["default"])] * n
    return argv


@pytest.mark.parametrize(("cmd", "sub"), [(c, s) for c, s in LEAVES if c[0] not in NOT_RUN],
                         ids=[i for i in IDS if i.split()[0] not in NOT_RUN])
def test_missing_files_are_one_line(cmd: tuple[str, ...], sub: argparse.ArgumentParser, tmp_path: Path,
                                    cli: Callable[..., CliResult], capsys: pytest.CaptureFixture[str]) -> None:
    gone = tmp_path / "missing" / "nothing"
    values: dict[str, str | Path] = {"default": gone, "out": tmp_path / "missing" / "out",
                                     "out_dir": tmp_path / "missing" / "out"}
    argv = _argv(cmd, sub, values)
    if cmd == ("demo",):
        argv += ["--dir", "/proc/casdesk-demo", "--no-gui"]  # cannot be created, even by root
    elif len(argv) == len(cmd):  # takes no file at all (`models` lists the architectures)
        result = _run(cli, argv)
        assert result.code == 0 and "Traceback" not in result.text
        return
    _assert_one_line_error(_run(cli, argv), capsys)


@pytest.fixture(scope="module")
def real_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from casdesk.cli import main

    root = tmp_path_factory.mktemp("real")
    project = root / "p.casdesk"
    assert main(["init", str(project)]) == 0
    assert main(["add-scene", str(project), str(small_scene(root / "s.tif", 128))]) == 0
    assert main(["crop", str(project), "--size", "64"]) == 0
    return project


@pytest.mark.parametrize(("cmd", "sub"), [(c, s) for c, s in LEAVES if c[0] not in NOT_RUN | {"init", "demo"}],
                         ids=[i for i in IDS if i.split()[0] not in NOT_RUN | {"init", "demo"}])
def test_garbage_files_with_a_real_project_are_one_line(
    cmd: tuple[str, ...], sub: argparse.ArgumentParser, real_project: Path, tmp_path: Path,
    cli: Callable[..., CliResult], capsys: pytest.CaptureFixture[str],
) -> None:
    garbage = tmp_path / "garbage.tif"
    garbage.write_text("this is not a raster, a model or a label file\n")
    folder = tmp_path / "empty"
    folder.mkdir()
    values: dict[str, str | Path] = {
        "default": garbage, "project": real_project, "folder": folder, "out": "/proc/casdesk-out/x",
        "out_dir": "/proc/casdesk-out", "model_file": garbage, "scene": garbage,
    }
    argv = _argv(cmd, sub, values)
    if cmd[0] in ("crop", "qc", "info", "qc-report", "split", "suspects", "export") and cmd != ("export",):
        argv += {"crop": ["--size", "100000", "--edge", "pad"], "qc": ["--fill-max", "2"],
                 "split": ["--kind", "spatial", "--block-px", "0"], "suspects": ["--top", "x"]}.get(cmd[0], [])
    if cmd == ("train",):
        argv += ["--split", "no-such-split"]  # (a real run would start training)
    result = _run(cli, argv)
    if result.code == 0:  # a command that accepts these (info of a real project): fine, but no traceback
        assert "Traceback" not in result.text
        return
    _assert_one_line_error(result, capsys)


# ---------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["crop", "{p}", "--size", "100000", "--edge", "pad"], "tile size 100000 is out of range: 8 to 32768"),
        (["crop", "{p}", "--size", "20000", "--edge", "pad"], "GiB of memory in flight"),
        (["crop", "{p}", "--workers", "-1"], "workers -1 is out of range: 1 to 64"),
        (["crop", "{p}", "--workers", "0"], "workers 0 is out of range"),
        (["crop", "{p}", "--stride", "0"], "stride 0 is out of range: 1 to"),
        (["crop", "{p}", "--size", "7"], "tile size 7 is out of range"),
        (["crop", "{p}", "--size", "abc"], "'abc' is not a whole number"),
        (["split", "{p}", "--block-px", "0"], "block size 0 is out of range: 8 or more"),
        (["split", "{p}", "--val-fraction", "1"], "validation fraction 1 is out of range (0, 1)"),
        (["split", "{p}", "--val-fraction", "nan"], "out of range"),
        (["qc", "{p}", "--fill-max", "1.5"], "--fill-max 1.5 is out of range [0, 1]"),
        (["qc", "{p}", "--workers", "-1"], "workers -1 is out of range"),
    ],
)
def test_options_are_checked_before_work(argv: list[str], says: str, real_project: Path,
                                         cli: Callable[..., CliResult], capsys: pytest.CaptureFixture[str]) -> None:
    before = Catalog.open(real_project, readonly=True)
    tiles = [(t.id, t.name) for t in before.tiles()]
    before.close()
    try:
        result = cli(*[a.format(p=real_project) for a in argv])
        text = result.text
    except SystemExit as exc:
        result = CliResult(int(exc.code or 0), "", "")
        captured = capsys.readouterr()
        text = captured.out + captured.err
    assert result.code == 2 and says in text and "Traceback" not in text, text
    after = Catalog.open(real_project, readonly=True)
    assert [(t.id, t.name) for t in after.tiles()] == tiles  # nothing started
    after.close()


def test_stride_larger_than_size_warns_about_gaps(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    project = tmp_path / "g.casdesk"
    cli("init", project)
    cli("add-scene", project, small_scene(tmp_path / "s.tif", 256))
    result = cli("crop", project, "--size", "64", "--stride", "100")
    assert result.code == 0
    assert "stride (100) is larger than the tile size (64)" in result.err and "36 pixels wide" in result.err


def test_spatial_split_without_validation_tiles_is_refused(real_project: Path, cli: Callable[..., CliResult]) -> None:
    """4 tiles of one scene and 4096-pixel blocks: one block, so no validation side."""
    result = cli("split", real_project, "--kind", "spatial", "--block-px", "4096", "--name", "nope")
    assert result.code == 2 and "would have 0 validation tiles (4 tiles in 1 spatial block(s))" in result.err
    with Catalog.open(real_project, readonly=True) as cat:
        assert cat.query("SELECT COUNT(*) FROM splits WHERE name = 'nope'")[0][0] == 0


# ---------------------------------------------------------------------- read-only projects
@pytest.fixture(scope="module")
def archived_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project only the read-only tests use (no other test leaves a connection open on it)."""
    from casdesk.cli import main

    root = tmp_path_factory.mktemp("archive")
    project = root / "archived.casdesk"
    assert main(["init", str(project)]) == 0
    assert main(["add-scene", str(project), str(small_scene(root / "s.tif", 128))]) == 0
    assert main(["crop", str(project), "--size", "64"]) == 0
    assert not Path(f"{project}-wal").exists()
    return project


@pytest.fixture()
def read_only_share(archived_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's folder as a read-only share: the tests run as root, so permissions
    would not stop a write; ``os.access`` says "not writable" for everything in it."""
    real_access = os.access
    real_project = archived_project
    root = real_project.parent

    def access(path: object, mode: int, *args: object, **kwargs: object) -> bool:
        if mode & os.W_OK and Path(os.fspath(path)).absolute().is_relative_to(root):  # type: ignore[arg-type]
            return False
        return real_access(path, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    return real_project


@pytest.mark.parametrize("argv", [["info", "--json"], ["export", "{out}"], ["qc-report", "{out}.csv"]],
                         ids=["info", "export", "qc-report"])
def test_read_only_project_is_readable(argv: list[str], read_only_share: Path, tmp_path: Path,
                                       cli: Callable[..., CliResult]) -> None:
    mtime = read_only_share.stat().st_mtime_ns
    args = [argv[0], read_only_share, *[a.format(out=tmp_path / "out") for a in argv[1:]]]
    result = cli(*args)
    assert result.code == 0, result.text
    assert "readonly database" not in result.text
    assert read_only_share.stat().st_mtime_ns == mtime
    assert not Path(f"{read_only_share}-wal").exists()


@pytest.mark.parametrize("argv", [["crop", "--size", "32"], ["split"], ["qc"], ["add-scene", "{scene}"]],
                         ids=["crop", "split", "qc", "add-scene"])
def test_read_only_project_refuses_writes_in_one_sentence(
    argv: list[str], read_only_share: Path, tmp_path: Path, cli: Callable[..., CliResult],
) -> None:
    scene = small_scene(tmp_path / "other.tif", 128)
    args = [argv[0], read_only_share, *[a.format(scene=scene) for a in argv[1:]]]
    result = cli(*args)
    _assert_one_line_error(result)
    assert "read-only" in result.err or "not writable" in result.err, result.err


def test_read_only_uri_reader_sees_everything(real_project: Path) -> None:
    """SQLite ``mode=ro`` (what a read-only share gets) reads the project, never writes."""
    with Catalog.open(real_project, readonly=True) as cat:
        assert cat.tile_count() == 4 and cat.readonly
        with pytest.raises(Exception, match="read-only"):
            cat.set_meta("x", "y")


def test_json_output_keeps_utf8_names(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    project = tmp_path / "p.casdesk"
    cli("init", project)
    scene = small_scene(tmp_path / "滑坡_Tiburón.tif", 128)
    assert cli("add-scene", project, scene).code == 0
    out = cli("info", project, "--json").out
    assert "滑坡_Tiburón" in out and "\\u" not in out
    assert json.loads(out)["scenes"][0]["name"] == "滑坡_Tiburón"


def test_demo_never_deletes_the_files_of_an_open_demo_project(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """`casdesk demo` rebuilds its project by deleting the files: with the demo open in the
    app (its lock held), that would delete the WAL under the running app (the trap of
    issue 13 item 0), so it refuses."""
    from casdesk.core.project.lock import acquire

    folder = tmp_path / "demo"
    folder.mkdir()
    wal = folder / "demo.casdesk-wal"
    wal.write_bytes(b"the app's uncheckpointed work")
    lock = acquire(folder / "demo.casdesk")
    assert lock is not None
    try:
        result = cli("demo", "--dir", folder, "--no-gui")
    finally:
        lock.release()
    _assert_one_line_error(result)
    assert "the demo project is open in casdesk" in result.err
    assert wal.read_bytes() == b"the app's uncheckpointed work"


def test_the_project_file_is_never_read_as_a_scene_or_labels(real_project: Path, tmp_path: Path,
                                                             cli: Callable[..., CliResult]) -> None:
    """GDAL or OGR opening the live database (and closing it) would drop the process's
    SQLite locks: refused before any library touches it."""
    as_scene = cli("add-scene", real_project, real_project)
    _assert_one_line_error(as_scene)
    assert "this is a casdesk project file, not a raster" in as_scene.err
    scene = small_scene(tmp_path / "s.tif", 128)
    wal = tmp_path / "other.casdesk-wal"  # as SQLite leaves it beside a project in use
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(28))
    as_labels = cli("add-scene", real_project, scene, "--labels", wal)
    _assert_one_line_error(as_labels)
    assert "this is a casdesk project file, not a label file" in as_labels.err
