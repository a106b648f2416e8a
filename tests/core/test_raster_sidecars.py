"""casdesk opens rasters without GDAL's folder listing (``GDAL_DISABLE_READDIR_ON_OPEN``,
set by :mod:`casdesk.core.raster.io`): side-car files must still count exactly as with the
listing: an external mask (.msk), PAM metadata (.aux.xml nodata) and a world file (.pgw)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio

from casdesk.core.raster.io import open_raster, raster_info, read_window


def _side_cars(folder: Path) -> tuple[Path, Path]:
    # a GeoTIFF with an external .msk mask (left half valid)
    tif = folder / "tile.tif"
    data = np.full((3, 32, 32), 120, np.uint8)
    with (
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False),
        rasterio.open(tif, "w", driver="GTiff", width=32, height=32, count=3, dtype="uint8") as dst,
    ):
        dst.write(data)
        mask = np.zeros((32, 32), np.uint8)
        mask[:, :16] = 255
        dst.write_mask(mask)
    # a PNG with nodata in its .aux.xml and a world file
    png = folder / "tile.png"
    with rasterio.open(png, "w", driver="PNG", width=32, height=32, count=1, dtype="uint8") as dst:
        dst.write(np.arange(32 * 32, dtype=np.uint32).reshape(1, 32, 32).astype(np.uint8) % 50)
    for extra in folder.glob("tile.png.aux.xml"):
        extra.unlink()
    (folder / "tile.png.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><NoDataValue>7</NoDataValue></PAMRasterBand></PAMDataset>'
    )
    (folder / "tile.pgw").write_text("2.0\n0.0\n0.0\n-2.0\n500001.0\n4000001.0\n")
    # many other files in the folder (what the listing would have found them among)
    for i in range(50):
        (folder / f"other_{i}.tif").write_bytes(b"")
    return tif, png


def _read(tif: Path, png: Path) -> tuple:
    with open_raster(tif) as ds:
        _, valid = read_window(ds)
    with open_raster(png) as ds:
        nodata, transform = ds.nodata, ds.transform
    return int(valid.sum()), nodata, tuple(transform)[:6], raster_info(png).transform


def test_side_cars_count_without_the_folder_listing(tmp_path: Path) -> None:
    assert os.environ.get("GDAL_DISABLE_READDIR_ON_OPEN") == "TRUE"
    tif, png = _side_cars(tmp_path)
    assert (tmp_path / "tile.tif.msk").exists()
    quiet = _read(tif, png)
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="FALSE"):  # GDAL's default: the listing
        listed = _read(tif, png)
    assert quiet == listed
    valid, nodata, transform, _ = quiet
    assert valid == 32 * 16  # the .msk mask: the left half
    assert nodata == 7  # the .aux.xml
    assert transform[0] == 2.0 and transform[2] == 500000.0  # the world file (pixel corner)
