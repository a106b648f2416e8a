"""Raster IO: reading windows with validity, display stretch, thumbnails, prediction outputs."""
