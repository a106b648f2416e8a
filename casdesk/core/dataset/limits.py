"""Accepted ranges of the dataset options, shared by the core checks and the CLI's argument
types (a light module: the CLI imports it at start-up)."""

MAX_TILE_SIZE = 32768
"""Largest tile side (pixels); memory in flight is checked per scene as well."""
MAX_WORKERS = 64
"""Most writer threads a crop or export may use."""
MAX_INFLIGHT_BYTES = 2 << 30
"""Tiles in flight (two per worker, each image + mask + label) must fit in this much memory."""
