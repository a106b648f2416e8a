"""Landslide labels: vector and raster sources, LabelMe files, the label store, editing geometry."""
