"""segreg.models.losses."""
