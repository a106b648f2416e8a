"""Qt-free, torch-free core: raster and label IO, tiling, catalog, QC, metrics."""
