"""The QC panel: rule sliders with histograms, live counts, presets, the review queue."""
