"""Datasets (the embedded synthetic catalogue) and the grain input pipeline."""
