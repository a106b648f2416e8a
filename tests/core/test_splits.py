"""Splits: reproducible, stored by name, spatial splits keep overlapping tiles together."""

from __future__ import annotations

from pathlib import Path

import pytest

from casdesk.core.dataset.splits import (
    SplitError,
    list_splits,
    load_split,
    make_split,
    spatial_groups,
)
from casdesk.core.project.catalog import Catalog


def _catalog(tmp_path: Path, name: str = "s") -> Catalog:
    cat = Catalog.create(tmp_path / f"{name}.casdesk")
    rows = []
    for sub, n in (("A", 40), ("B", 20)):
        for i in range(n):
            rows.append({"name": f"{sub}{i}", "subdataset": sub, "image_path": tmp_path / f"{sub}{i}.tif",
                         "mask_path": tmp_path / f"{sub}{i}_m.tif", "width": 512, "height": 512})
    cat.add_tiles(rows)
    return cat


def _scene_catalog(tmp_path: Path, stride: int = 256) -> Catalog:
    """One 4096 x 4096 scene cropped into 512 px tiles with 50 % overlap."""
    cat = Catalog.create(tmp_path / "scene.casdesk")
    sid = cat.add_scene(tmp_path / "scene.tif", crs=None, transform=[1, 0, 0, 0, -1, 0], width=4096,
                        height=4096, bands=3, dtype="uint8", nodata=None, subdataset="S")
    rows = []
    for r in range(0, 4096 - 511, stride):
        for c in range(0, 4096 - 511, stride):
            rows.append({"name": f"r{r}_c{c}", "subdataset": "S", "scene_id": sid, "row_off": r, "col_off": c,
                         "image_path": tmp_path / f"r{r}_c{c}.tif", "width": 512, "height": 512})
    cat.add_tiles(rows)
    return cat


def test_random_split_is_seeded_per_subdataset(tmp_path: Path) -> None:
    cat = _catalog(tmp_path)
    make_split(cat, "random", "a", seed=1)
    make_split(cat, "random", "b", seed=1)
    make_split(cat, "random", "c", seed=2)
    a, b, c = load_split(cat, "a"), load_split(cat, "b"), load_split(cat, "c")
    assert a == b and a != c
    tiles = {t.id: t.subdataset for t in cat.tiles()}
    for sub, n in (("A", 40), ("B", 20)):
        val = sum(1 for tid, part in a.items() if tiles[tid] == sub and part == "val")
        assert val == round(0.3 * n)
    assert {s["name"] for s in list_splits(cat)} == {"a", "b", "c"}
    assert list_splits(cat)[0]["counts"] == {"train": 42, "val": 18}


def test_same_split_in_another_project_copy(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    a, b = _catalog(tmp_path / "1"), _catalog(tmp_path / "2")
    make_split(a, "random", "x", seed=5)
    make_split(b, "random", "x", seed=5)
    assert load_split(a, "x") == load_split(b, "x")


def test_existing_name_needs_overwrite(tmp_path: Path) -> None:
    cat = _catalog(tmp_path)
    make_split(cat, "random", "x")
    with pytest.raises(SplitError, match="already exists"):
        make_split(cat, "random", "x")
    make_split(cat, "random", "x", seed=3, overwrite=True)
    assert len(list_splits(cat)) == 1
    with pytest.raises(SplitError, match="no split named"):
        load_split(cat, "nope")


def test_holdout_split(tmp_path: Path) -> None:
    cat = _catalog(tmp_path)
    make_split(cat, "holdout", "h", holdout=["B"])
    parts = load_split(cat, "h")
    subs = {t.id: t.subdataset for t in cat.tiles()}
    assert all((part == "val") == (subs[tid] == "B") for tid, part in parts.items())
    with pytest.raises(SplitError, match="no tiles in subdataset"):
        make_split(cat, "holdout", "h2", holdout=["Z"])


def test_spatial_split_never_splits_overlapping_tiles(tmp_path: Path) -> None:
    cat = _scene_catalog(tmp_path)
    tiles = cat.tiles()
    for seed in range(3):
        make_split(cat, "spatial", f"sp{seed}", seed=seed, block_px=1024)
        parts = load_split(cat, f"sp{seed}")
        assert set(parts.values()) == {"train", "val"}
        assert 0.15 < sum(p == "val" for p in parts.values()) / len(tiles) < 0.45
        for a in tiles:
            if a.id not in parts:
                continue
            for b in tiles:
                overlap = (a.row_off < b.row_off + 512 and b.row_off < a.row_off + 512
                           and a.col_off < b.col_off + 512 and b.col_off < a.col_off + 512)
                if overlap and b.id in parts:
                    assert parts[a.id] == parts[b.id]
    assert load_split(cat, "sp0") == load_split(cat, "sp0")


def test_spatial_groups_without_overlap_use_blocks(tmp_path: Path) -> None:
    cat = _scene_catalog(tmp_path, stride=512)  # 8 x 8 tiles, no overlap
    groups = spatial_groups(cat.tiles(), block_px=1024)
    assert len(groups) == 16 and all(len(g) == 4 for g in groups)
    (tmp_path / "x").mkdir()
    cat2 = _catalog(tmp_path / "x")
    assert all(len(g) == 1 for g in spatial_groups(cat2.tiles()))
    make_split(cat2, "spatial", "s")
    assert set(load_split(cat2, "s").values()) == {"train", "val"}
