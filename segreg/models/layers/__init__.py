"""segreg.models.layers."""
