"""Measurements of trained models beyond the scores (run as post-stages of the runner)."""
