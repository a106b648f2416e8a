"""casdesk: landslide mapping desktop: GeoTIFF scenes to CAS-layout datasets, QC, labels, models."""

__version__ = "0.1.0"
