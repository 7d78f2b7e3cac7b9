"""The dataset-level form: the paper's Lagrangian over the whole training set.

Per class ``c`` (``segreg.ops.dataset_lagrangian``;
docs/regularizer_derivation.md, section 16)::

    L_c = b^2 eps_c + fp_c / nref_c + mu_c (1 - hit_c / nref_c)
    hit_c = sum_{y = c} min(eps_c, s_c),  fp_c = sum_{y != c} max(0, eps_c + s_c)
    nref_c = pi_c * (valid pixels of the batch)

``pi_c`` is the class's pixel share counted over every training batch seen
so far (exact after an epoch: labels do not change), so ``L_c`` of a batch
is an unbiased estimate of the dataset-level Lagrangian and its gradient a
stochastic gradient of it. The per-batch forms divide by the batch's own
positive count instead, a ratio estimator biased for small batches and rare
classes. ``eps_c = exp(log_eps_c)`` is trained by the optimizer, ``mu_c`` by
projected dual ascent in ``[0, mu_max]`` after every training iteration
(DualAscentHook). Every seen class counts in every batch, present or not:
its negatives are pushed even when it is absent. Under DDP the class sums
and counts are all-reduced: O(C) communication.
"""
from __future__ import annotations

import math

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from segreg.ops import (class_gather, class_sum, dataset_lagrangian,
                        log_odds_hinge, pixel_weights, projected_dual_step)
from segreg.utils.dist import all_reduce_sum

from .pixel_metric_loss import (ClassTerms, PixelBatch, PixelMetricLoss,
                                check_metric)

__all__ = ['DatasetDualLoss']


@MODELS.register_module()
class DatasetDualLoss(PixelMetricLoss):
    """Class-wise IoU / F-beta over the training set, at per-batch cost.

    ``DualIoULoss`` / ``DualFbetaLoss`` with ``solver='dataset'`` build this
    class. Needs DualAscentHook (or ``loss.dual_step()`` after each
    optimizer step). State, all checkpointed: ``log_eps`` (parameter),
    ``mu``, ``seen_pos`` (weighted positives seen per class) and
    ``seen_pix`` (valid pixels seen) (buffers).

    Args:
        num_classes (int): Required (class-level state).
        metric (str): ``'iou'`` or ``'fbeta'``.
        beta (float): F-beta's beta. Default 1.
        eta_mu (float): Dual step size. Default 0.01: ``mu`` and the slack
            are dimensionless (mean normalisation), so the step does not
            depend on the dataset or the crop.
        mu_max (float): Upper end of the dual domain. Default 10.
        classes (str | list[int]): Default ``'all'`` (every class seen so
            far, present in the batch or not: the unbiased estimate needs
            them all).
        **kwargs: Of :class:`PixelMetricLoss`.
    """

    has_duals = True

    def __init__(self, num_classes: int = None, metric: str = 'iou',
                 beta: float = 1.0, eta_mu: float = 0.01,
                 mu_max: float = 10.0, classes='all',
                 loss_name: str = 'loss_dual_iou', **kwargs) -> None:
        if num_classes is None:
            raise ValueError("solver='dataset' keeps per-class state and "
                             'needs num_classes')
        super().__init__(num_classes=num_classes, classes=classes,
                         loss_name=loss_name, **kwargs)
        self.metric, self.beta = check_metric(metric, beta)
        if not (eta_mu >= 0 and mu_max > 0):
            raise ValueError(f'need eta_mu >= 0 and mu_max > 0, got '
                             f'eta_mu={eta_mu}, mu_max={mu_max}')
        self.eta_mu, self.mu_max = float(eta_mu), float(mu_max)
        self.log_eps = nn.Parameter(torch.zeros(num_classes))
        self.register_buffer('mu', torch.ones(num_classes))
        self.register_buffer('seen_pos',
                             torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer('seen_pix', torch.zeros((), dtype=torch.float64))

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        C = batch.logits.shape[1]
        w, y = pixel_weights(batch.labels, C, batch.weight,
                             batch.logits.dtype)
        eps = self.log_eps.to(w.dtype).exp()
        # hit_c = sum_{S+} min(eps_c, s), fp_c = sum_{S-} max(0, s + eps_c)
        own, fp = log_odds_hinge(batch.logits, y, w, eps)
        hit = class_sum(w * torch.minimum(own, class_gather(eps, y)), y, C)
        n = class_sum(w, y, C)
        pixels = w.sum().reshape(1)
        if batch.sync:
            # one all-reduce of (3C + 1) values forward, one backward
            hit, fp, n, pixels = all_reduce_sum(torch.cat(
                [hit, fp, n, pixels])).split([C, C, C, 1])
        with torch.no_grad():
            if self.training:
                self.seen_pos += n.to(self.seen_pos)
                self.seen_pix += pixels.squeeze(0).to(self.seen_pix)
            # the share seen in training; a module that never trained uses
            # the batch's own share
            share = (self.seen_pos / self.seen_pix).to(n) \
                if self.seen_pix > 0 else n / pixels.clamp(min=1e-12)
            n_ref = share * pixels
        lag = dataset_lagrangian(hit, fp, eps, self.mu.to(eps.dtype), n_ref,
                                 self.beta)
        seen = n_ref > 0
        self.defer_dual_step(lag.slack, seen)
        b2 = self.beta**2
        bound = 1.0 / lag.primal if self.metric == 'iou' else \
            (1.0 + b2) / (1.0 + lag.primal)
        nan = torch.full_like(eps, math.nan)
        return ClassTerms(
            lag.value, n > 0, seen,
            dict(n=n.detach(), n_ref=n_ref.detach(),
                 bound=torch.where(seen, bound, nan).detach(),
                 eps=eps.detach(), mu=self.mu.detach().clone(),
                 slack=lag.slack, feasible=(seen & (lag.slack <= 0))))

    def _dual_update(self, slack: Tensor, active: Tensor) -> None:
        if self.eta_mu > 0:
            self.mu.copy_(projected_dual_step(self.mu, slack, self.eta_mu,
                                              active, upper=self.mu_max))
