"""Training and inference panel: job form, live plots, runs table, paper experiments."""
