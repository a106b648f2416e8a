"""The Predict tab: whole-scene inference and project-tile predictions from the GUI."""
