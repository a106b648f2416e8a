"""Building datasets: scenes, cropping, importers, export, splits, the columnar tile table."""
