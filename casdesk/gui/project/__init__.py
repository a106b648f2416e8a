"""The Project tab."""
