"""segreg.engine.hooks."""
from .dual_ascent_hook import DualAscentHook  # noqa: F401
from .loss_warmup_hook import LossWarmupHook  # noqa: F401
from .bad_sample_hook import BadSampleHook  # noqa: F401
from .checkpoint_hook import SafeCheckpointHook  # noqa: F401
from .iter_seed_hook import IterSeedHook  # noqa: F401
from .preemption_hook import (  # noqa: F401
    PREEMPTED_EXIT_STATUS, PreemptionHook, StopTraining)
