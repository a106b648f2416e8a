"""Train/validation splits, stored by name in the project catalog (tables ``splits`` and
``split_tiles``) so that every run says exactly which tiles it saw.

Three kinds:

``random``
    The paper's protocol: each subdataset is shuffled with the seed and 30 % of its tiles
    go to validation (``val_fraction``). Each subdataset gets its own random stream
    derived from (seed, subdataset name), so adding a subdataset leaves the others alone.
``spatial``
    Tiles cropped from the same scene with overlap share pixels; a random split would put
    the same ground in both parts and inflate validation scores. Here tiles are grouped
    into spatial blocks of a scene by their centre (``block_px`` pixels a side, default 4
    tile sizes); whole blocks are assigned to validation until ``val_fraction`` of the
    subdataset's tiles is reached. Training tiles that still overlap a validation tile
    (across a block border) are left out of the split as a buffer, so no pixel is on both
    sides. A tile without a scene (or without offsets) is its own group.
``holdout``
    Every tile of the named subdatasets goes to validation, the rest to training: tests
    generalisation to an unseen region/sensor.

All results are reproducible: the same catalog, kind, parameters and seed give the same
split.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from casdesk.core.errors import CasdeskError
from casdesk.core.project.catalog import Catalog, Tile

KINDS = ("random", "spatial", "holdout")
PARTS = ("train", "val", "test")


class SplitError(CasdeskError):
    """A split cannot be made or found with the requested parameters."""


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def _by_subdataset(tiles: Iterable[Tile]) -> dict[str, list[Tile]]:
    groups: dict[str, list[Tile]] = defaultdict(list)
    for t in sorted(tiles, key=lambda t: t.id):
        groups[t.subdataset].append(t)
    return dict(sorted(groups.items()))


def random_parts(tiles: Sequence[Tile], val_fraction: float, seed: int) -> dict[int, str]:
    """tile id -> part for a seeded per-subdataset random split."""
    parts: dict[int, str] = {}
    for sub, members in _by_subdataset(tiles).items():
        order = _rng(seed, sub).permutation(len(members))
        n_val = int(round(len(members) * val_fraction))
        for rank, idx in enumerate(order):
            parts[members[idx].id] = "val" if rank < n_val else "train"
    return parts


def _has_offsets(t: Tile) -> bool:
    return t.scene_id is not None and t.row_off is not None and t.col_off is not None


def spatial_groups(tiles: Sequence[Tile], block_px: int | None = None) -> list[list[Tile]]:
    """Groups of tiles that go to one side of a split together: per scene, the tiles whose
    centres fall in the same ``block_px`` square block (default: four times the largest
    tile side of the scene). A tile without a scene or offsets is its own group."""
    groups: list[list[Tile]] = []
    by_scene: dict[int, list[Tile]] = defaultdict(list)
    for t in sorted(tiles, key=lambda t: t.id):
        if _has_offsets(t):
            by_scene[int(t.scene_id)].append(t)  # type: ignore[arg-type]
        else:
            groups.append([t])
    for scene_id in sorted(by_scene):
        members = by_scene[scene_id]
        block = block_px or 4 * max(max(t.width, t.height) for t in members)
        blocks: dict[tuple[int, int], list[Tile]] = defaultdict(list)
        for t in members:
            r0, c0 = int(t.row_off), int(t.col_off)  # type: ignore[arg-type]
            blocks[((r0 + t.height // 2) // block, (c0 + t.width // 2) // block)].append(t)
        groups.extend(blocks[k] for k in sorted(blocks))
    return groups


def _overlap(a: Tile, b: Tile) -> bool:
    ar, ac, br, bc = int(a.row_off), int(a.col_off), int(b.row_off), int(b.col_off)  # type: ignore[arg-type]
    return ar < br + b.height and br < ar + a.height and ac < bc + b.width and bc < ac + a.width


def straddling_tiles(tiles: Sequence[Tile], parts: dict[int, str]) -> set[int]:
    """Ids of training tiles that overlap a validation tile of the same scene."""
    out: set[int] = set()
    by_scene: dict[int, list[Tile]] = defaultdict(list)
    for t in tiles:
        if _has_offsets(t) and t.id in parts:
            by_scene[int(t.scene_id)].append(t)  # type: ignore[arg-type]
    for members in by_scene.values():
        size = max(max(t.width, t.height) for t in members)
        cells: dict[tuple[int, int], list[Tile]] = defaultdict(list)
        for t in members:
            if parts[t.id] == "val":
                for key in _cells(t, size):
                    cells[key].append(t)
        for t in members:
            if parts[t.id] == "train" and any(
                _overlap(t, v) for key in _cells(t, size) for v in cells.get(key, ())
            ):
                out.add(t.id)
    return out


def _cells(t: Tile, size: int) -> list[tuple[int, int]]:
    r0, c0 = int(t.row_off), int(t.col_off)  # type: ignore[arg-type]
    return [
        (cr, cc)
        for cr in range(r0 // size, (r0 + t.height - 1) // size + 1)
        for cc in range(c0 // size, (c0 + t.width - 1) // size + 1)
    ]


def spatial_parts(
    tiles: Sequence[Tile], val_fraction: float, seed: int, block_px: int | None = None
) -> dict[int, str]:
    """tile id -> part; whole spatial blocks go to one side, per subdataset.

    Training tiles that overlap a validation tile (they straddle a block border) are left
    out of the split, a buffer that keeps shared pixels out of training.
    """
    parts: dict[int, str] = {}
    for sub, members in _by_subdataset(tiles).items():
        groups = spatial_groups(members, block_px)
        target = len(members) * val_fraction
        n_val = 0
        for gi in _rng(seed, sub).permutation(len(groups)):
            group = groups[gi]
            # take a group when it brings the validation count closer to the target
            to_val = abs(n_val + len(group) - target) < abs(n_val - target)
            n_val += len(group) if to_val else 0
            for t in group:
                parts[t.id] = "val" if to_val else "train"
    for tid in straddling_tiles(tiles, parts):
        del parts[tid]
    return parts


def holdout_parts(tiles: Sequence[Tile], holdout: Sequence[str]) -> dict[int, str]:
    """tile id -> part; tiles of the ``holdout`` subdatasets go to validation."""
    held = set(holdout)
    known = {t.subdataset for t in tiles}
    missing = sorted(held - known)
    if missing:
        raise SplitError(
            f"no tiles in subdataset(s) {', '.join(missing)}",
            hint=f"known subdatasets: {', '.join(sorted(known)) or 'none'}",
        )
    return {t.id: ("val" if t.subdataset in held else "train") for t in tiles}


def default_name(kind: str, val_fraction: float, seed: int, holdout: Sequence[str] = ()) -> str:
    if kind == "holdout":
        return "holdout-" + "+".join(sorted(holdout))
    return f"{kind}-{round(100 * (1 - val_fraction))}-{round(100 * val_fraction)}-s{seed}"


def make_split(
    catalog: Catalog,
    kind: str,
    name: str | None = None,
    val_fraction: float = 0.3,
    seed: int = 0,
    holdout: Sequence[str] = (),
    tile_ids: Sequence[int] | None = None,
    *,
    block_px: int | None = None,
    overwrite: bool = False,
) -> int:
    """Make a split of ``tile_ids`` (default: every tile), store it as ``name``, return its id.

    ``name`` defaults to e.g. ``random-70-30-s0``. An existing split of that name is an
    error unless ``overwrite`` (then it is replaced in the same transaction).
    """
    if kind not in KINDS:
        raise SplitError(f"unknown split kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    if not 0.0 < val_fraction < 1.0 and kind != "holdout":
        raise SplitError(f"the validation fraction must be between 0 and 1, not {val_fraction}")
    if kind == "holdout" and not holdout:
        raise SplitError("a holdout split needs subdataset names", hint="pass --holdout NAME")
    name = name or default_name(kind, val_fraction, seed, holdout)
    tiles = catalog.tiles(ids=list(tile_ids)) if tile_ids is not None else catalog.tiles()
    if not tiles:
        raise SplitError("the project has no tiles to split", catalog.path, "import or crop tiles first")
    if kind == "random":
        parts = random_parts(tiles, val_fraction, seed)
    elif kind == "spatial":
        parts = spatial_parts(tiles, val_fraction, seed, block_px)
    else:
        parts = holdout_parts(tiles, holdout)
    empty = [p for p in ("train", "val") if p not in parts.values()]
    if empty:  # checked before anything is stored: a split without one side trains or validates nothing
        how = (f"{len(tiles)} tiles in {len(spatial_groups(tiles, block_px))} spatial block(s)"
               if kind == "spatial" else f"{len(tiles)} tiles")
        raise SplitError(
            f"the split would have 0 {'validation' if 'val' in empty else 'training'} tiles ({how})",
            catalog.path,
            "use a smaller --block-px, another --val-fraction, or --kind random" if kind == "spatial"
            else "use another --val-fraction or more tiles",
        )
    params: dict[str, Any] = {"seed": seed, "val_fraction": val_fraction}
    if kind == "holdout":
        params = {"holdout": sorted(holdout)}
    if kind == "spatial" and block_px:
        params["block_px"] = block_px
    if tile_ids is not None:
        params["tiles"] = len(tiles)
    with catalog.transaction():
        existing = catalog.splits.find(name)
        if existing is not None:
            if not overwrite:
                raise SplitError(
                    f"a split named {name!r} already exists",
                    catalog.path,
                    "pick another --name, or replace it (--overwrite)",
                )
            catalog.splits.delete(existing)
        split_id = catalog.splits.create(name, kind, params, parts)
    return split_id


def split_id(catalog: Catalog, name: str) -> int:
    sid = catalog.splits.find(name)
    if sid is None:
        names = [s["name"] for s in list_splits(catalog)]
        raise SplitError(
            f"no split named {name!r}",
            catalog.path,
            f"make one with `casdesk split`; existing: {', '.join(names) or 'none'}",
        )
    return sid


def load_split(catalog: Catalog, name: str) -> dict[int, str]:
    """tile id -> part ("train", "val" or "test") of the split ``name``."""
    sid = split_id(catalog, name)
    return catalog.splits.parts(sid)


def list_splits(catalog: Catalog) -> list[dict[str, Any]]:
    """Every split, newest last: id, name, kind, params, created and tile counts per part."""
    return [
        {"id": r.id, "name": r.name, "kind": r.kind, "params": r.params, "created": r.created,
         "counts": r.counts}
        for r in catalog.splits.list_all()
    ]


def delete_split(catalog: Catalog, name: str) -> None:
    sid = split_id(catalog, name)
    catalog.splits.delete(sid)
