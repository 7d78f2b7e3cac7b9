"""segreg.engine.hooks."""
from .dual_ascent_hook import DualAscentHook  # noqa: F401
from .loss_warmup_hook import LossWarmupHook  # noqa: F401
