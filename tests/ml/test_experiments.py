"""The paper's experiments from the command line: plans on a generated project holding the 16
CAS subdatasets (tiny tiles, folder names as released), and a real one-epoch Table 7 run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from rasterio.errors import NotGeoreferencedWarning

from casdesk.cli import main
from casdesk.core.evaluation import experiments as ex
from casdesk.core.evaluation.paper import CAS_SUBDATASETS, MOXITAIDI, match_cas_subdataset
from casdesk.core.project.catalog import Catalog
from tests.support.tiles import square_tile, write_raster

pytestmark = pytest.mark.filterwarnings("ignore", category=NotGeoreferencedWarning)

UAV = [s for s in CAS_SUBDATASETS if s.sensor == "UAV"]
SAT = [s for s in CAS_SUBDATASETS if s.sensor == "SAT"]


def build_cas_project(folder: Path, per_sub: int = 4, size: int = 32) -> Path:
    """A project with the 16 CAS subdatasets under their released folder names, ``per_sub``
    tiles each, bright square "landslides" on noise. No sensor is set: casdesk must
    recognise the subdatasets by name (one is set explicitly, as a user would)."""
    rng = np.random.default_rng(0)
    cat = Catalog.create(folder / "cas")
    rows = []
    for sub in CAS_SUBDATASETS:
        name = sub.folder_names[0]
        for i in range(per_sub):
            img, mask = square_tile(rng, size, square=size // 3, corners=(2, size // 2))
            ip = write_raster(folder / "t" / name / "img" / f"{i}.tif", img)
            mp = write_raster(folder / "t" / name / "mask" / f"{i}.tif", mask)
            rows.append({"name": f"{sub.tile_prefix or 'tile'}_{i}", "subdataset": name, "image_path": ip,
                         "mask_path": mp, "width": size, "height": size, "label_pixels": int(mask.sum()),
                         "valid_pixels": size * size})
    cat.add_tiles(rows)
    cat.update_subdataset("Lombok", sensor="SAT")
    cat.close()
    return folder / "cas.casdesk"


@pytest.fixture(scope="module")
def cas_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cas_project(tmp_path_factory.mktemp("cas"))


def dry_run(capsys: pytest.CaptureFixture[str], table: str, project: Path, *extra: str) -> dict:
    assert main(["experiment", table, str(project), "--dry-run", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_subdataset_names_match_the_release_and_its_variants() -> None:
    assert match_cas_subdataset("Moxitaidi (UAV-0.6m)").name == "Moxitaidi (UAV-0.6 m)"
    assert match_cas_subdataset("moxitaidi_uav_0.6m").name == "Moxitaidi (UAV-0.6 m)"
    assert match_cas_subdataset("Moxitaidi（UAV-1 m）").name == "Moxitaidi (UAV-1 m)"
    assert match_cas_subdataset("Tiburon Peninsula（planet）").sensor == "SAT"
    assert match_cas_subdataset("Moxi town（UAV-0.2m）").name == "Moxi town (0.2m)"
    assert match_cas_subdataset("luding_UAV").name == "Moxitaidi (UAV-0.6 m)"  # tile prefix
    assert match_cas_subdataset("Longxi River(SAT)").sensor == "SAT"
    assert match_cas_subdataset("Longxi River（UAV）").sensor == "UAV"
    assert match_cas_subdataset("my own scene") is None
    assert sum(s.amount for s in CAS_SUBDATASETS) == 20865
    assert sum(s.amount for s in CAS_SUBDATASETS if s.name in MOXITAIDI) == 2119


def test_real_cas_tile_prefixes_are_recognised(public_data: Path) -> None:
    """The tile names of the released archives (``<prefix><number>.tif``) name their subdataset."""
    tiles = sorted((public_data / "cas_tiles").glob("*.tif*"))
    assert tiles
    for tile in tiles:
        prefix = re.sub(r"\d+$", "", tile.stem)
        match = match_cas_subdataset(prefix)
        assert match is not None, tile.name
        assert match.sensor == ("UAV" if "UAV" in prefix or "UVA" in prefix else "SAT"), tile.name


def test_table5_plan_is_twelve_runs_with_a_seeded_7_3_split(capsys, cas_project: Path) -> None:
    plan = dry_run(capsys, "table5", cas_project)
    runs = plan["runs"]
    assert len(runs) == 12
    assert {r["model"] for r in runs} == {"fcn", "unet", "deeplabv3plus", "mffenet"}
    by = {(r["model"], r["training_set"]): r for r in runs}
    # 4 tiles per subdataset: 3 train, 1 validation in every subdataset
    assert by[("fcn", "UAV")]["train_tiles"] == 3 * len(UAV) and by[("fcn", "UAV")]["val_tiles"] == len(UAV)
    assert by[("fcn", "SAT")]["train_tiles"] == 3 * len(SAT) and by[("fcn", "SAT")]["val_tiles"] == len(SAT)
    both = by[("mffenet", "UAV+SAT")]
    assert both["train_tiles"] == 48 and both["val_tiles"] == 16 and len(both["subdatasets"]) == 16
    assert all(c == {"train": 3, "val": 1} for c in both["subdatasets"].values())
    assert by[("deeplabv3plus", "SAT")]["paper"]["miou"] == pytest.approx(0.82397)
    # the same split for the four models of a set, another seed gives another split
    assert len({r["split"] for r in runs}) == 3
    assert dry_run(capsys, "table5", cas_project, "--seed", "1")["runs"][0]["split"].endswith("-s1")


def test_uav_plus_sat_split_is_the_union_of_uav_and_sat(cas_project: Path) -> None:
    with Catalog.open(cas_project, readonly=True) as cat:
        runs = {r.training_set: r for r in ex.table5(("fcn",))}
        uav, sat, both = (ex.plan_tiles(cat, runs[k], seed=3) for k in ("UAV", "SAT", "UAV+SAT"))
    assert both == {**uav, **sat}


def test_table6_plan_compares_qc_kept_with_all_sat_tiles(capsys, tmp_path: Path) -> None:
    from casdesk.core.qc.rules import set_decision

    project = build_cas_project(tmp_path, per_sub=4)
    with Catalog.open(project) as cat:
        sat = [t.id for t in cat.tiles() if match_cas_subdataset(t.subdataset).sensor == "SAT"]
        set_decision(cat, sat, "accept")
        set_decision(cat, sat[:2], "reject")
    runs = dry_run(capsys, "table6", project)["runs"]
    assert [r["name"] for r in runs] == ["T6 deeplabv3plus SAT QC-kept", "T6 deeplabv3plus SAT all"]
    kept, every = runs
    assert every["train_tiles"] + every["val_tiles"] == len(sat) == 36
    assert kept["train_tiles"] + kept["val_tiles"] == len(sat) - 2
    assert kept["paper"]["number"] == 7413 and every["paper"]["number"] == 8658


def test_table7_plan_validates_on_the_three_moxitaidi_subdatasets(capsys, cas_project: Path) -> None:
    plan = dry_run(capsys, "table7", cas_project)
    runs = {r["training_set"]: r for r in plan["runs"]}
    assert len(runs) == 3
    for run in runs.values():
        assert run["val_tiles"] == 3 * 4  # every tile of the three Moxitaidi subdatasets
        assert sorted(run["holdout"]) == sorted(s.folder_names[0] for s in CAS_SUBDATASETS if s.name in MOXITAIDI)
        assert all(("moxitaidi" in name.lower()) == (c["train"] == 0) for name, c in run["subdatasets"].items())
    assert runs["UAV outside Moxitaidi"]["train_tiles"] == 4 * (len(UAV) - 2)
    assert runs["SAT outside Moxitaidi"]["train_tiles"] == 4 * (len(SAT) - 1)
    assert runs["UAV+SAT outside Moxitaidi"]["train_tiles"] == 4 * (16 - 3)
    assert runs["UAV+SAT outside Moxitaidi"]["paper"]["number"] == 18734


def test_table7_needs_moxitaidi(capsys, tiny_project: Path) -> None:
    assert main(["experiment", "table7", str(tiny_project), "--dry-run"]) == 2
    assert "moxitaidi" in capsys.readouterr().err.lower()


def test_only_selects_runs(capsys, cas_project: Path) -> None:
    runs = dry_run(capsys, "table5", cas_project, "--only", "mffenet")["runs"]
    assert [r["model"] for r in runs] == ["mffenet"] * 3
    assert main(["experiment", "table5", str(cas_project), "--dry-run", "--only", "nothing"]) == 2


def test_gui_presets_use_the_same_plans(cas_project: Path) -> None:
    with Catalog.open(cas_project, readonly=True) as cat:
        for title, table in zip(ex.EXPERIMENTS, ex.TABLES):
            assert ex.EXPERIMENTS[title](cat) == ex.plan_experiment(cat, table)


def test_prepare_split_stores_the_plan_and_reuses_it(tmp_path: Path) -> None:
    project = build_cas_project(tmp_path, per_sub=3)
    from casdesk.core.dataset.splits import list_splits, load_split

    with Catalog.open(project) as cat:
        run = ex.table7(cat)[0]
        name = ex.prepare_split(cat, run, seed=0)
        assert load_split(cat, name) == ex.plan_tiles(cat, run)
        assert ex.prepare_split(cat, run, seed=0) == name
        assert len(list_splits(cat)) == 1


@pytest.fixture
def small_deeplab(monkeypatch: pytest.MonkeyPatch) -> None:
    """DeepLabV3+ on a small encoder, so a CPU run of a whole table takes seconds (the
    experiment itself is unchanged: same planning, trainer, recipe and report)."""
    from dataclasses import replace

    from casdesk.ml.models import registry

    spec = registry.REGISTRY["deeplabv3plus"]
    monkeypatch.setitem(registry.REGISTRY, "deeplabv3plus", replace(spec, default_encoder="mobilenet_v2"))


@pytest.mark.slow  # three real one-epoch runs: about 30 s on 2 CPU cores
def test_table7_runs_one_epoch_on_cpu_and_writes_the_comparison(capsys, tmp_path: Path, small_deeplab: None) -> None:
    project = build_cas_project(tmp_path, per_sub=2)
    out = tmp_path / "t7.md"
    code = main(["experiment", "table7", str(project), "--epochs", "1", "--encoder-weights", "none",
                 "--device", "cpu", "--workers", "0", "--batch-size", "4", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["report"] == str(out) and len(result["runs"]) == 3
    assert all(r["status"] == "finished" and r["metrics"]["miou"] > 0 for r in result["runs"])
    text = out.read_text(encoding="utf-8")
    assert "F1 (class mean, paper)" in text and "F1 (landslide)" in text
    assert text.count("| paper |") == 3 and text.count("| difference |") == 3
    assert "68.73" in text  # the paper's UAV mIoU, next to casdesk's
    with Catalog.open(project, readonly=True) as cat:
        from casdesk.core.evaluation.runs import list_runs

        runs = list_runs(cat)
    assert sorted(r.name for r in runs) == sorted(r["name"] for r in result["runs"])
    assert all(r.config["recipe"] == "paper" and r.config["classes"] == 2 for r in runs)
    assert all(r.split.startswith("holdout-moxitaidi-") for r in runs)
    # the table again from the stored runs, without training
    assert main(["experiment", "table7", str(project), "--report-only", "--out", str(tmp_path / "again.md")]) == 0
    again = (tmp_path / "again.md").read_text(encoding="utf-8")
    strip = lambda t: re.sub(r"Written by casdesk on \S+", "", t).split("Settings")[1].split("\n", 1)[1]  # noqa: E731
    assert strip(again) == strip(text)


def test_offline_weights_stop_the_experiment_before_any_split(capsys, monkeypatch, tmp_path: Path) -> None:
    import torch

    from casdesk.ml.models import weights as W

    project = build_cas_project(tmp_path, per_sub=2)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(W, "_smp_cached", lambda encoder: None)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("no network")

    monkeypatch.setattr(W, "_download_torchvision", no_network)
    assert main(["experiment", "table7", str(project), "--epochs", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "resnet50-0676ba61.pth" in err and "--encoder-weights none" in err and "Traceback" not in err
    with Catalog.open(project, readonly=True) as cat:
        from casdesk.core.dataset.splits import list_splits

        assert list_splits(cat) == []


def test_models_command(capsys) -> None:
    assert main(["models", "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert models["mffenet"]["default_encoder"] == "resnet50"
    assert abs(models["mffenet"]["parameters"] - 52.36e6) / 52.36e6 < 0.03
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "Aizu0/Code-" in text and "resnet101" in text
