"""255 (ignore) in a casdesk mask is ignored by training, never read as landslide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio


def test_ignore_pixels_are_not_landslide_in_training(tmp_path: Path) -> None:
    from casdesk.ml.training.data import read_tile_raw

    img, msk = tmp_path / "i.tif", tmp_path / "m.tif"
    with rasterio.open(img, "w", driver="GTiff", width=8, height=6, count=3, dtype="uint8") as ds:
        ds.write(np.full((3, 6, 8), 90, np.uint8))
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 1:3] = 1
    mask[4:, :] = 255  # unsurveyed ground / __ignore__
    with rasterio.open(msk, "w", driver="GTiff", width=8, height=6, count=1, dtype="uint8", nodata=255) as ds:
        ds.write(mask[None])
    _image, valid, target = read_tile_raw(img, msk)
    assert int(target.sum()) == 4 and not valid[4:].any() and valid[:4].all()
