"""Quality control: detectors, the paper's rules and decisions, the label-error finder."""
