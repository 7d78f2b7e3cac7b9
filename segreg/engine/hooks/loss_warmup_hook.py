"""Linear warm-up of the weight of chosen losses.

mmengine's parameter schedulers act on optimizer hyper-parameters, not on a
loss's ``loss_weight``, hence this small hook: it scales the configured
weight of every loss module of the chosen types by

    factor(it) = start_factor + (1 - start_factor) * min(1, it / warmup_iters)

before each training iteration. The hook keeps no state (the factor follows
``runner.iter``), so ``--resume`` continues the ramp where it stopped; the
configured weight is remembered on the loss module itself.
"""
from __future__ import annotations

from typing import Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

__all__ = ['LossWarmupHook']


@HOOKS.register_module()
class LossWarmupHook(Hook):
    """Ramp the ``loss_weight`` of some losses linearly over the first iters.

    Args:
        warmup_iters (int): Iterations until the full weight. Must be >= 1.
        loss_types (Sequence[str]): Class names of the losses to ramp (also
            matches subclasses). Default: every segreg pixel regularizer
            (subclasses of the public base ``PixelMetricLoss``).
        start_factor (float): Fraction of the weight at iteration 0, in
            [0, 1]. Default 0.

    Example:
        >>> custom_hooks = [dict(type='LossWarmupHook', warmup_iters=200)]
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup_iters: int,
                 loss_types: Sequence[str] = ('PixelMetricLoss', ),
                 start_factor: float = 0.0) -> None:
        if not (isinstance(warmup_iters, int) and warmup_iters >= 1):
            raise ValueError(f'warmup_iters must be an int >= 1, got '
                             f'{warmup_iters!r}')
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f'start_factor must be in [0, 1], got '
                             f'{start_factor}')
        self.warmup_iters = warmup_iters
        self.loss_types = tuple(loss_types)
        self.start_factor = float(start_factor)

    def factor(self, it: int) -> float:
        """Weight multiplier at iteration ``it`` (0-based)."""
        frac = min(1.0, it / self.warmup_iters)
        return self.start_factor + (1.0 - self.start_factor) * frac

    def _losses(self, model) -> list:
        model = model.module if is_model_wrapper(model) else model
        return [m for m in model.modules()
                if any(c.__name__ in self.loss_types for c in type(m).__mro__)
                and hasattr(m, 'loss_weight')]

    def before_train(self, runner) -> None:
        losses = self._losses(runner.model)
        if not losses:
            raise ValueError(
                f'LossWarmupHook found no loss of the types {self.loss_types} '
                'in the model; check loss_types against the loss_decode '
                'config')
        for m in losses:
            if not hasattr(m, '_configured_loss_weight'):
                m._configured_loss_weight = float(m.loss_weight)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        f = self.factor(runner.iter)
        for m in self._losses(runner.model):
            m.loss_weight = m._configured_loss_weight * f
        runner.message_hub.update_scalar('train/loss_warmup_factor', f)
