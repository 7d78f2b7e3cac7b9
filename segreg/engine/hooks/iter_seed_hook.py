"""Re-seed the global generators before every training iteration.

Dropout, the pixel subsampling of segreg's losses and anything else the
training step draws come from the process-global generators (torch CPU and
CUDA, NumPy, ``random``). Their states after iteration ``k`` depend on what
ran in between (validation, a DataLoader iterator being created, a resume),
and rank 0's checkpoint could not hold the other ranks' states anyway. This
hook makes them a function of the position instead: before iteration ``it``
every generator is seeded with ``derive_seed(seed, it)`` (plus the rank when
``randomness.diff_rank_seed=True``), so a resumed run draws exactly what the
uninterrupted run drew. ``SegregRunner`` registers it; see
docs/reliability.md.
"""
from __future__ import annotations

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from segreg.utils.rng import derive_seed, seed_global_rngs

#: Recorded in checkpoint meta; a resume checks it.
RNG_SCHEME = 'segreg-iter-seed-v1'


@HOOKS.register_module()
class IterSeedHook(Hook):
    """Seed torch / NumPy / ``random`` from (run seed, iteration[, rank]).

    Args:
        seed (int, optional): Base seed. Default: the runner's seed
            (``randomness.seed``, or the random seed mmengine chose and
            checkpointed when it is None).
    """

    priority = 'HIGHEST'

    def __init__(self, seed=None) -> None:
        self.seed = seed

    def _base(self, runner) -> int:
        seed = self.seed if self.seed is not None else runner.seed
        return int(seed if seed is not None else 0)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        keys = [self._base(runner), runner.iter]
        if runner._randomness_cfg.get('diff_rank_seed', False):
            keys.append(get_rank())
        seed_global_rngs(derive_seed(*keys))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['rng_scheme'] = RNG_SCHEME

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {}) if isinstance(checkpoint,
                                                        dict) else {}
        if runner._resume and 'iter' in meta and \
                meta.get('rng_scheme') != RNG_SCHEME:
            runner.logger.warning(
                'resuming a checkpoint written without segreg\'s per-'
                'iteration seeding: the run continues, but not exactly as '
                'an uninterrupted run would (docs/reliability.md)')
