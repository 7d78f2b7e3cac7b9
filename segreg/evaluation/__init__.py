"""Metrics of segmentation runs and the with/without comparison report."""
