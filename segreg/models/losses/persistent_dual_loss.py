"""Persistent class-level duals: the paper's dual ascent across batches.

With the constraint normalised per positive (``mean_{S+} tau = 1``; the
learnable scale absorbs the factor) class ``c``'s Lagrangian is
(``segreg.ops.persistent_dual_lagrangian``; docs/regularizer_derivation.md,
section 12)::

    L_c = b^2 eps_c + fp_c / nbar_c + mu_c (1 - mean_{S+} min(eps_c, f_i)),
    fp_c = sum_{S-} max(0, eps_c + f_j)

``eps_c = exp(log_eps_c)`` is trained by the optimizer; ``mu_c >= 0`` is
raised after every training iteration by ``eta_mu`` times the constraint
violation (``segreg.ops.projected_dual_step``, in ``dual_step()``);
``nbar_c`` is a running mean of the class's positive count. No sort. Under
DDP the three class sums are all-reduced: O(C) communication.
"""
from __future__ import annotations

import math

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from segreg.ops import (class_gather, class_sum, log_odds_hinge,
                        persistent_dual_lagrangian, pixel_weights,
                        projected_dual_step, running_count)
from segreg.utils.dist import all_reduce_sum, all_reduce_sum_

from .pixel_metric_loss import (ClassTerms, PixelBatch, PixelMetricLoss,
                                check_metric)

__all__ = ['PersistentDualLoss']


@MODELS.register_module()
class PersistentDualLoss(PixelMetricLoss):
    """Class-wise IoU / F-beta with persistent duals ``mu_c``.

    ``DualIoULoss`` / ``DualFbetaLoss`` with ``solver='dual_ascent'`` build
    this class. DualAscentHook takes the dual step after each iteration
    (without it, the next training forward does). State: ``log_eps``
    (parameter), ``mu``, ``count``
    (buffers), all checkpointed.

    Args:
        num_classes (int): Required (one dual per class).
        metric (str): ``'iou'`` or ``'fbeta'``.
        beta (float): F-beta's beta. Default 1.
        learn_scale (bool): Learn ``log w_c`` (else ``w_c = 1``). Default
            True.
        eta_mu (float): Dual step size. Default 0.01 (the paper's 1e-5 is
            per epoch on dataset sums).
        **kwargs: Of :class:`PixelMetricLoss`.
    """

    has_duals = True
    #: momentum of the running positive count ``nbar``
    count_momentum = 0.1

    def __init__(self, num_classes: int = None, metric: str = 'iou',
                 beta: float = 1.0, learn_scale: bool = True,
                 eta_mu: float = 0.01,
                 loss_name: str = 'loss_dual_iou', **kwargs) -> None:
        if num_classes is None:
            raise ValueError("solver='dual_ascent' keeps per-class duals and "
                             'needs num_classes')
        super().__init__(num_classes=num_classes, loss_name=loss_name,
                         **kwargs)
        self.metric, self.beta = check_metric(metric, beta)
        if not eta_mu >= 0:
            raise ValueError(f'need eta_mu >= 0, got {eta_mu}')
        self.eta_mu = float(eta_mu)
        self.log_eps = nn.Parameter(torch.zeros(num_classes))
        self.register_buffer('mu', torch.ones(num_classes))
        self.register_buffer('count', torch.zeros(num_classes))
        self.log_scale = nn.Parameter(torch.zeros(num_classes)) \
            if learn_scale else None

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        C = batch.logits.shape[1]
        w, y = pixel_weights(batch.labels, C, batch.weight,
                             batch.logits.dtype)
        n = class_sum(w, y, C)
        if batch.sync:
            n = all_reduce_sum_(n)  # no gradient: labels only
        scales = torch.ones_like(n) if self.log_scale is None else \
            self.log_scale.to(n.dtype).exp()
        eps = self.log_eps.to(n.dtype).exp()
        present = n > 0
        w_eff = torch.where(present, scales, scales.detach())
        # hit_c = sum_{S+} min(eps_c, w_c s), fp_c = sum_{S-} max(0, w_c s
        # + eps_c)
        own, fp = log_odds_hinge(batch.logits, y, w, eps, w_eff)
        hit = class_sum(w * torch.minimum(own * class_gather(w_eff, y),
                                          class_gather(eps, y)), y, C)
        if batch.sync:
            hit, fp = all_reduce_sum(torch.stack([hit, fp])).unbind()
        with torch.no_grad():
            if self.training:
                self.count.copy_(running_count(self.count, n,
                                               self.count_momentum, present))
            nbar = torch.where(self.count > 0, self.count.to(n), n)
        lag = persistent_dual_lagrangian(eps, self.mu.to(n.dtype).clone(),
                                         hit, fp, n, nbar, self.beta,
                                         self.metric)
        self.defer_dual_step(lag.slack, present)
        eps_stat = torch.where(present, eps, torch.full_like(eps, math.nan))
        return ClassTerms(
            lag.value, present, present,
            dict(n=n.detach(), bound=lag.bound.detach(),
                 scale=scales.detach(), eps=eps_stat.detach(),
                 feasible=(present & (lag.slack <= 0)).detach(),
                 mu=self.mu.detach().clone(), slack=lag.slack.detach(),
                 value=(lag.primal * n).detach()))

    def _dual_update(self, slack: Tensor, active: Tensor) -> None:
        if self.eta_mu > 0:
            self.mu.copy_(projected_dual_step(self.mu, slack, self.eta_mu,
                                              active))
