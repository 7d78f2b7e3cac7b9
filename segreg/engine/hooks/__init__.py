"""segreg.engine.hooks."""
