"""Dual ascent, projection and logging of segreg's dual-projected losses.

Every ``interval`` iterations (``'epoch'``: once per pass over the training
set; ``full_projections=True``: every iteration) the hook asks every
:class:`~segreg.models.losses.SMeasureLoss` of the model to project its
primal ``(tau, eps)`` onto ``C = {tau_i <= eps, eps >= 0}`` and take one
dual ascent step on ``lambda`` (clipped at 0) and ``mu`` (Ravi et al., AAAI
2020, Algorithm 1; the paper's step sizes are the defaults). Before each
iteration it hands the batch's data samples to those losses (the per-image
labels and sample indices they need; mmseg's decode heads do not pass them).

It also logs, as scalars of the message hub (``train/dual/...``; the
LoggerHook writes them to the text log and TensorBoard):

* SMeasureLoss: ``mu``, ``eps``, ``w``, the mean / max of ``lambda`` and of
  the constraint slack ``tau_i - w f_i`` over the known positives,
  ``sum tau - 1``, ``max(tau - eps)``;
* every :class:`~segreg.models.losses.PixelMetricLoss` (DualIoULoss /
  DualFbetaLoss forms, the rate losses): the mean metric bound and term of
  the present classes, where the form has them the per-class scales ``w_c``
  (mean/min/max), the mean LP threshold ``eps`` of the feasible classes and
  the fraction of present classes whose LP was feasible, the persistent
  duals ``mu`` / ``dual`` (mean / max); per class (``..._<class name>``) as
  well when the loss has at most ``per_class_max`` classes.

Pixel losses with dual variables (``has_duals``: ``solver='dual_ascent'``,
the rate losses) get their dual step here too, after every training
iteration (:meth:`PixelMetricLoss.dual_step`; without the hook such a loss
applies a pending step at its next training forward, the same sequence).

All dual state lives in module buffers and parameters, so mmengine's
checkpoints hold it and ``--resume`` continues with the same duals; the hook
itself keeps no state (its schedule follows ``runner.iter``).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

__all__ = ['DualAscentHook']


def _find(model, cls) -> List[tuple]:
    model = model.module if is_model_wrapper(model) else model
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, cls)]


@HOOKS.register_module()
class DualAscentHook(Hook):
    """Projection + dual ascent for SMeasureLoss; logging of dual losses.

    Args:
        interval (int | str): Iterations between dual steps, or ``'epoch'``
            (``ceil(len(train set) / (batch size * world size))``).
        full_projections (bool): Project and step every iteration (the
            paper's "full projections"); overrides ``interval``.
        eta_lambda (float): Step size of ``lambda``. Paper: 1e-3.
        eta_mu (float): Step size of ``mu``. Paper: 1e-5.
        log_interval (int): Iterations between scalar updates. Default 1.
        per_class_max (int): Log per-class scalars of the pixel losses when
            they have at most this many classes. Default 16.
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: Union[int, str] = 'epoch',
                 full_projections: bool = False,
                 eta_lambda: float = 1e-3,
                 eta_mu: float = 1e-5,
                 log_interval: int = 1,
                 per_class_max: int = 16) -> None:
        if not (interval == 'epoch' or (isinstance(interval, int)
                                        and interval >= 1)):
            raise ValueError("interval must be a positive int or 'epoch'")
        if eta_lambda < 0 or eta_mu < 0:
            raise ValueError('step sizes must be non-negative')
        self.interval = interval
        self.full_projections = full_projections
        self.eta_lambda = eta_lambda
        self.eta_mu = eta_mu
        self.log_interval = max(1, int(log_interval))
        self.per_class_max = per_class_max
        self._every: Optional[int] = None

    # -- discovery ------------------------------------------------------------
    @staticmethod
    def smeasure_losses(model) -> List[tuple]:
        from segreg.models.losses import SMeasureLoss
        return _find(model, SMeasureLoss)

    @staticmethod
    def pixel_losses(model) -> List[tuple]:
        from segreg.models.losses import PixelMetricLoss
        return _find(model, PixelMetricLoss)

    def dual_every(self, runner) -> int:
        """Iterations between dual steps for this runner."""
        if self.full_projections:
            return 1
        if self.interval != 'epoch':
            return int(self.interval)
        loader = runner.train_dataloader
        world = 1
        if torch.distributed.is_available() and \
                torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
        return max(1, math.ceil(
            len(loader.dataset) / (loader.batch_size * world)))

    # -- hooks ----------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._every = self.dual_every(runner)
        for name, loss in self.smeasure_losses(runner.model):
            n = len(runner.train_dataloader.dataset)
            if loss.num_samples < n:
                raise ValueError(
                    f'{name}: SMeasureLoss(num_samples={loss.num_samples}) is '
                    f'smaller than the training set ({n} images); set '
                    'num_samples to the training set length')
        runner.logger.info(
            f'DualAscentHook: dual step every {self._every} iteration(s), '
            f'eta_lambda={self.eta_lambda}, eta_mu={self.eta_mu}; '
            f'{len(self.smeasure_losses(runner.model))} SMeasureLoss, '
            f'{len(self.pixel_losses(runner.model))} pixel dual loss(es)')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        samples = None
        if isinstance(data_batch, dict):
            samples = data_batch.get('data_samples')
        for _, loss in self.smeasure_losses(runner.model):
            loss.set_batch_samples(samples)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        every = self._every or self.dual_every(runner)
        step_now = (runner.iter + 1) % every == 0
        log_now = (runner.iter + 1) % self.log_interval == 0
        hub = runner.message_hub
        for i, (_, loss) in enumerate(self.smeasure_losses(runner.model)):
            loss.set_batch_samples(None)
            loss.clamp_eps()
            if step_now:
                loss.dual_step(self.eta_lambda, self.eta_mu)
            if log_now or step_now:
                tag = loss.loss_name.replace('loss_', '') + (f'{i}' if i else
                                                             '')
                self._update(hub, tag, loss.dual_stats())
        names = self._class_names(runner)
        seen = set()
        for i, (_, loss) in enumerate(self.pixel_losses(runner.model)):
            if loss.has_duals:
                loss.dual_step()
            tag = loss.loss_name.replace('loss_', '')
            tag = f'{tag}{i}' if tag in seen else tag  # same name twice
            seen.add(tag)
            stats = loss.last_stats
            if not (log_now and stats):
                continue
            self._update(hub, tag, self._pixel_scalars(stats, names))
            if loss.num_skipped:
                hub.update_scalar(f'train/dual/{tag}_skipped',
                                  loss.num_skipped)

    @staticmethod
    def _class_names(runner) -> Optional[Sequence[str]]:
        try:
            return runner.train_dataloader.dataset.metainfo['classes']
        except (AttributeError, KeyError, TypeError):
            return None

    @staticmethod
    def _update(hub, tag: str, values: dict) -> None:
        for k, v in values.items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                hub.update_scalar(f'train/dual/{tag}_{k}', v)

    def _pixel_scalars(self, stats: dict,
                       names: Optional[Sequence[str]] = None) -> dict:
        out = {}
        present = stats['present']
        n_present = int(present.sum())
        for key in ('bound', 'term'):
            if key in stats:
                v = stats[key][present]
                out[f'{key}_mean'] = float(v.mean()) if v.numel() else \
                    float('nan')
        if 'scale' in stats:
            scale = stats['scale']
            out['scale_mean'] = float(scale.mean())
            out['scale_min'] = float(scale.min())
            out['scale_max'] = float(scale.max())
        if 'feasible' in stats:
            feasible = stats['feasible']
            out['feasible_frac'] = float(feasible.sum()) / max(1, n_present)
            eps = stats['eps'][feasible]
            out['eps_mean'] = float(eps.mean()) if eps.numel() else \
                float('nan')
        for key in ('mu', 'dual'):  # persistent duals
            if key in stats:
                out[f'{key}_max'] = float(stats[key].max())
                out[f'{key}_mean'] = float(stats[key].float().mean())
        C = present.numel()
        if C <= self.per_class_max:
            for c in range(C):
                name = _tag(names[c]) if names and c < len(names) else str(c)
                if 'scale' in stats:
                    out[f'scale_{name}'] = float(stats['scale'][c])
                if 'mu' in stats:
                    out[f'mu_{name}'] = float(stats['mu'][c])
                if bool(present[c]):
                    for key in ('bound', 'term'):
                        if key in stats:
                            out[f'{key}_{name}'] = float(stats[key][c])
        return out


def _tag(name: str) -> str:
    """A class name as a scalar tag (``'stop sign'`` -> ``stop_sign``)."""
    return ''.join(ch if ch.isalnum() else '_' for ch in str(name))
