"""Inference: whole scenes to GeoTIFFs and polygons, predictions on project tiles."""
