"""Tile browser: a virtualized thumbnail grid with overlays, filters and a detail view."""
