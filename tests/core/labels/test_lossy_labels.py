"""Label rasters saved as JPEG: no pixel is exactly black or white, so the exact reading
took a CAS label (landslide black on white) for "landslide = any non-black pixel" and
inverted it (93 % landslide for 8 %), and a one-band 0/255 mask gained a rim of ringing.
Readers now pass ``lossy`` from the file's compression (``casdesk.core.raster.io.is_lossy``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio

from casdesk.core.labels.io import binarize_label_array, read_label_raster


def _truth() -> np.ndarray:
    mask = np.zeros((512, 512), np.uint8)
    cv2.circle(mask, (256, 256), 80, 1, -1)
    cv2.rectangle(mask, (20, 30), (140, 90), 1, -1)
    return mask


def _write(path: Path, data: np.ndarray, **extra: object) -> Path:
    profile = {"driver": "GTiff", "width": 512, "height": 512, "count": data.shape[0], "dtype": "uint8", **extra}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


@pytest.mark.parametrize("quality", [95, 75, 50])
def test_a_cas_label_saved_as_jpeg_is_read_the_right_way_round(tmp_path: Path, quality: int) -> None:
    truth = _truth()
    label = np.where(truth[None] == 1, 0, 255).repeat(3, axis=0).astype(np.uint8)  # landslide black on white
    path = _write(tmp_path / "label.tif", label, compress="jpeg", jpeg_quality=quality)
    mask = read_label_raster(path)
    assert abs(float(mask.mean()) - float(truth.mean())) < 0.005  # exact reading: 0.93 for 0.08
    assert (mask != truth).mean() < 0.005


@pytest.mark.parametrize("quality", [95, 75])
def test_a_one_band_mask_saved_as_jpeg_keeps_its_outline(tmp_path: Path, quality: int) -> None:
    truth = _truth()
    path = _write(tmp_path / "mask.tif", truth[None] * 255, compress="jpeg", jpeg_quality=quality)
    mask = read_label_raster(path)
    assert (mask != truth).mean() < 0.002


def test_exact_labels_are_read_as_before(tmp_path: Path) -> None:
    """Uncompressed or losslessly compressed labels keep the exact conventions: a dark red
    landslide on black is landslide, however dark."""
    truth = _truth()
    red = np.zeros((3, 512, 512), np.uint8)
    red[0][truth == 1] = 30
    path = _write(tmp_path / "red.tif", red, compress="deflate")
    assert np.array_equal(read_label_raster(path), truth)
    assert np.array_equal(binarize_label_array(red), truth)
