"""segreg.datasets.transforms."""
