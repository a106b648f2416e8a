"""The Map tab: the project's tiles on their scenes (or as a grid per subdataset)."""
