"""Released CAS subdatasets are recognised by folder name or tile prefix (issue 16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from casdesk.cli import main
from casdesk.core.dataset import cas_metadata as cm
from casdesk.core.dataset.importers import import_cas, subdataset_metadata
from casdesk.core.jobs import run_job
from casdesk.core.project.catalog import Catalog

CAS_TILES = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "public" / "cas_tiles"

# folder names as released (full-width parentheses), and spacing / bracket variants
RELEASED = {
    "palu": "Palu",
    "Lombok": "Lombok",
    "Hokkaido Iburi-Tobu": "Hokkaido Iburi-Tobu",
    "Tiburon Peninsula（Sentinel）": "Tiburon Peninsula (Sentinel)",
    "Tiburon Peninsula（planet）": "Tiburon Peninsula (Planet)",
    "Mengdong Township": "Mengdong",
    "Moxitaidi (SAT)": "Moxitaidi (SAT)",
    "Moxitaidi (UAV-0.6m)": "Moxitaidi (UAV-0.6 m)",
    "Moxitaidi (UAV-1m)": "Moxitaidi (UAV-1 m)",
    "Moxi town（UAV-0.2m）": "Moxi town (0.2m)",
    "Moxi town（UAV-1m）": "Moxi town (1 m)",
    "Longxi River(SAT)": "Longxi River (SAT)",
    "Longxi River（UAV）": "Longxi River (UAV)",
    "Jiuzhai valley (UAV-0.2m)": "Jiuzhai valley (0.2 m)",
    "Jiuzhai valley (UAV-0.5m)": "Jiuzhai valley (0.5 m)",
    "Wenchuan": "Wenchuan",
}


def test_table_holds_the_papers_16_subdatasets() -> None:
    table = cm.load_table()
    assert len(table) == 16
    assert sum(r.amount for r in table) == 20865
    assert sum(r.amount for r in table if r.platform == "UAV") == 13443
    assert {r.platform for r in table} == {"UAV", "SAT"}


@pytest.mark.parametrize("folder", sorted(RELEASED))
def test_every_released_folder_name_is_recognised(folder: str) -> None:
    row = cm.match_folder(folder)
    assert row is not None and row.name == RELEASED[folder]
    meta = subdataset_metadata(folder)
    assert meta["sensor"] == row.platform and meta["resolution_m"] == row.resolution_m
    assert meta["licence"] and meta["source"] and meta["region"] and meta["trigger"]
    assert row.acquisition_time in meta["notes"]


@pytest.mark.parametrize(
    "variant, name",
    [
        ("Moxi town (UAV-0.2m)", "Moxi town (0.2m)"),  # ASCII parentheses
        ("moxi_town（UAV 0.2 m）", "Moxi town (0.2m)"),  # spacing, underscore, full width
        ("Longxi River (SAT)", "Longxi River (SAT)"),
        ("Tiburon Peninsula (Planet)", "Tiburon Peninsula (Planet)"),
        ("JIUZHAI VALLEY（UAV－0.5m）", "Jiuzhai valley (0.5 m)"),  # full-width hyphen
    ],
)
def test_spelling_variants(variant: str, name: str) -> None:
    row = cm.match_folder(variant)
    assert row is not None and row.name == name


def test_tile_prefix_and_unknown_folders() -> None:
    assert cm.lookup("batch 3", ["Haiti_Planet286", "Haiti_Planet001"]).name == "Tiburon Peninsula (Planet)"
    assert cm.lookup("batch 3", ["Haiti146", "Haiti002"]).name == "Tiburon Peninsula (Sentinel)"
    assert cm.lookup("x", ["jiuzzhaigou_0.2m_UVA0155"]).name == "Jiuzhai valley (0.2 m)"
    assert cm.lookup("my own data", ["a1", "b2"]) is None
    assert cm.match_folder("Moxitaidi UAV") is None  # two UAV Moxitaidi sets: ambiguous
    assert subdataset_metadata("my own data") == {}  # unknown: today's behaviour


def test_import_released_folders_fills_metadata_and_info_json(tmp_path: Path, capsys) -> None:
    if not CAS_TILES.is_dir():
        pytest.skip("shared CAS tiles not found")
    root = tmp_path / "CAS"
    layout = {
        "Longxi River(SAT)": "LongxiheSAT0459.tiff",
        "Tiburon Peninsula（planet）": "Haiti_Planet286.tiff",
        "unnamed batch": "jiuzzhaigou_0.2m_UVA5388.tiff",  # recognised by the tile prefix
        "my survey": "Palu0117.tiff",  # renamed: still the Palu prefix
    }
    for folder, name in layout.items():
        (root / folder / "img").mkdir(parents=True)
        shutil.copy(CAS_TILES / name, root / folder / "img" / name)
    (root / "other" / "img").mkdir(parents=True)
    shutil.copy(CAS_TILES / "Palu0117.tiff", root / "other" / "img" / "tile_a.tiff")
    cat = Catalog.create(tmp_path / "p")
    assert run_job(import_cas(cat, root)) == 5
    subs = {s["name"]: s for s in cat.subdatasets()}
    cat.close()
    assert subs["Longxi River(SAT)"]["sensor"] == "SAT" and subs["Longxi River(SAT)"]["resolution_m"] == 0.5
    assert subs["Tiburon Peninsula（planet）"]["licence"] == "Planet education and research program"
    assert subs["unnamed batch"]["sensor"] == "UAV" and subs["unnamed batch"]["resolution_m"] == 0.2
    assert subs["my survey"]["region"] == "Palu" and subs["my survey"]["trigger"] == "Earthquake"
    assert subs["other"]["sensor"] is None  # unknown folder, unknown tiles
    assert main(["info", str(tmp_path / "p"), "--json"]) == 0
    info = {d["name"]: d for d in json.loads(capsys.readouterr().out)["subdatasets"]}
    longxi = info["Longxi River(SAT)"]
    assert longxi["sensor"] == "SAT" and longxi["trigger"] == "Rainfall"
    assert longxi["source"] == "China Centre for Resources Satellite Data and Application"
    assert "2015.03-2015.12" in longxi["notes"]
