"""Small shared widgets and helpers: job workers, panel base, dialogs."""
