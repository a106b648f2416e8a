"""Dataset: any band count/dtype, normalisation from valid pixels, nodata -> ignore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from casdesk.core.project.catalog import Catalog
from casdesk.ml.errors import DataError
from casdesk.ml.training.data import (
    IGNORE_INDEX,
    Augment,
    Normalization,
    TileDataset,
    accepted_tile_ids,
    compute_normalization,
    select_tiles,
)


def _tiles(project: Path) -> list[Any]:
    with Catalog.open(project) as cat:
        return select_tiles(cat, None, None)


def test_uint16_fourteen_bands_normalised_not_divided(make_project: Any) -> None:
    tiles = _tiles(make_project(n=5, bands=14, dtype="uint16", size=48))
    norm = compute_normalization(tiles)
    assert norm.bands == 14 and min(norm.mean) > 255  # raw uint16 units, no /255
    ds = TileDataset(tiles, norm)
    raw, target, params = ds[0]
    assert raw.dtype == torch.int16 and target.dtype == torch.uint8  # 2 + 1 bytes per pixel on the wire
    assert raw.shape == (14, 64, 64) and target.shape == (64, 64)  # padded to 32 multiple
    assert (target[48:, :] == IGNORE_INDEX).all() and (target[:, 48:] == IGNORE_INDEX).all()
    image, y = ds.transform()(raw[None], target[None], params[None])
    assert y.dtype == torch.int64 and image.dtype == torch.float32
    valid = target != IGNORE_INDEX
    assert abs(float(image[0][:, valid].mean())) < 1.5
    assert float(image[0][:, ~valid].abs().max()) == 0.0  # padding is 0 after normalisation


def test_nodata_pixels_are_ignored_and_excluded_from_stats(make_project: Any) -> None:
    tiles = _tiles(make_project(n=5, size=64))
    border_tile = tiles[4]  # the fixture gives every 5th tile a nodata strip on the left
    ds = TileDataset([border_tile], Normalization([10.0] * 3, [2.0] * 3))
    raw, target, params = ds[0]
    assert raw.dtype == torch.uint8  # uint8 tiles cross the loader as one byte per pixel
    assert (target[:, :16] == IGNORE_INDEX).all() and (target[:, 16:] != IGNORE_INDEX).all()
    image, _ = ds.transform()(raw[None], target[None], params[None])
    assert (image[0, :, :, :16] == 0).all()
    assert torch.allclose(image[0, :, :, 16:], (raw[:, :, 16:].float() - 10.0) / 2.0)
    with_border = compute_normalization([border_tile])
    assert min(with_border.mean) > 30  # zeros of the nodata strip did not drag the mean down


def test_augmentation_is_reproducible_per_epoch(make_project: Any) -> None:
    tiles = _tiles(make_project(n=3))
    norm = compute_normalization(tiles)
    ds = TileDataset(tiles, norm, augment=Augment(), seed=1)
    transform = ds.transform()
    ds.set_epoch(2)
    a = transform(*(t[None] for t in ds[1]))
    b = transform(*(t[None] for t in ds[(2, 1)]))  # the sampler's (epoch, index) key: same stream
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    outs = set()
    for epoch in range(6):
        outs.add(transform(*(t[None] for t in ds[(epoch, 1)]))[1].numpy().tobytes())
    assert len(outs) > 1
    image, target = a
    assert image.shape[2:] == target.shape[1:]


def test_band_mismatch_is_a_clear_error(make_project: Any) -> None:
    tiles = _tiles(make_project(n=2, bands=4))
    ds = TileDataset(tiles, Normalization([0.0] * 3, [1.0] * 3))
    with pytest.raises(DataError, match="4 bands but the model expects 3"):
        ds[0]


def test_qc_filter_only_when_qc_ran(make_project: Any) -> None:
    project = make_project(n=4)
    with Catalog.open(project) as cat:
        assert accepted_tile_ids(cat) is None
        assert len(select_tiles(cat, None, None)) == 4
        ids = [t.id for t in cat.tiles()]
        with cat.transaction() as db:
            db.execute("INSERT INTO qc_decisions(tile_id, decision, decided) VALUES (?, 'reject', 'now')",
                       (ids[0],))
        accepted = accepted_tile_ids(cat)
        if accepted is not None:  # casdesk.core.qc.rules decides once QC information exists
            selected = {t.id for t in select_tiles(cat, None, None)}
            assert ids[0] not in selected
            assert len(select_tiles(cat, None, None, qc_accepted_only=False)) == 4


def test_normalization_roundtrip() -> None:
    n = Normalization([1.0, 2.0], [3.0, 0.5])
    assert Normalization.from_dict(n.to_dict()) == n
    out = n.apply(np.ones((2, 2, 2), dtype=np.float32))
    assert out[0, 0, 0] == 0.0 and out[1, 0, 0] == -2.0
