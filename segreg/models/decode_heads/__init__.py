"""segreg.models.decode_heads."""
