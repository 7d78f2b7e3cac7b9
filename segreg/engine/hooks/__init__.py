"""segreg.engine.hooks."""
from .dual_ascent_hook import DualAscentHook  # noqa: F401
