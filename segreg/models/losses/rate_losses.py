"""The paper's rate constraints as pixel losses (Ravi et al., appendix 6).

For each target class ``t`` (one-vs-rest: positives the pixels labelled
``t``, negatives every other valid pixel; scores the log-odds ``s_it``) and
a learned threshold ``b``, the hinge rates (Eban et al. 2017;
``segreg.ops.targeted_hinge_rates``) are::

    tp_l(b) = sum_{S+} w min(1, s - b),  fp_u(b) = sum_{S-} w max(0, 1 + s - b)

and each loss is the Lagrangian of one constrained problem
(``segreg.ops.*_from_rates``; docs/regularizer_derivation.md, section 10):

* :class:`PrecisionAtRecallLoss`: ``fp_u/n + lambda (r - tp_l/n)``;
* :class:`RecallAtPrecisionLoss`: ``-tp_l/n + lambda (p fp_u - (1-p) tp_l)/n``;
* :class:`ROCAUCLoss`: ``mean_k [-tp_l(b_k)/n + lambda_k (fp_u(b_k)/m - t_k)]``
  over K false-positive-rate anchors ``t_k = (k + 1/2) / K``.

The thresholds are parameters (trained by the optimizer), the duals
``lambda >= 0`` buffers raised by DualAscentHook after every training
iteration (``segreg.ops.projected_dual_step``). Every quantity is a pixel
sum, so under DDP four (T, K) tensors are all-reduced. The metric each
optimizes is computed by ``segreg.evaluation.rate_metrics``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmseg.registry import MODELS
from torch import Tensor, nn

from segreg.ops import (precision_at_recall_from_rates, projected_dual_step,
                        recall_at_precision_from_rates, roc_auc_from_rates,
                        softmax_log_odds, targeted_hinge_rates)
from segreg.ops.rate_constraints import HingeRates
from segreg.utils.dist import all_reduce_sum

from .pixel_metric_loss import ClassTerms, PixelBatch, PixelMetricLoss

__all__ = ['PrecisionAtRecallLoss', 'RecallAtPrecisionLoss', 'ROCAUCLoss']


class _RateLoss(PixelMetricLoss):
    """Shared by the three: targets, thresholds ``b`` (T, K), duals (T, K).

    Args:
        target_classes (list[int]): The classes whose rate is optimised.
        dual_lr (float): Step of the projected dual ascent. Default 0.01.
        **kwargs: Of :class:`PixelMetricLoss` (``classes`` is the targets).
    """

    has_duals = True
    num_anchors = 1

    def __init__(self, target_classes: Sequence[int], dual_lr: float = 0.01,
                 **kwargs) -> None:
        if 'classes' in kwargs:
            raise TypeError(f'{type(self).__name__} averages over its '
                            'target_classes; it has no classes option')
        targets = [int(t) for t in target_classes]
        if not targets or len(set(targets)) != len(targets):
            raise ValueError('target_classes must be a non-empty list of '
                             f'distinct class indices, got {target_classes}')
        super().__init__(classes=targets, **kwargs)
        if self.num_classes is not None and max(targets) >= self.num_classes:
            raise ValueError(f'target class {max(targets)} >= num_classes '
                             f'{self.num_classes}')
        if not dual_lr >= 0:
            raise ValueError(f'dual_lr must be >= 0, got {dual_lr}')
        self.dual_lr = float(dual_lr)
        shape = (len(targets), self.num_anchors)
        self.register_buffer('targets', torch.tensor(targets),
                             persistent=False)
        self.threshold = nn.Parameter(torch.zeros(shape))
        self.register_buffer('dual', torch.ones(shape))

    def lagrangian(self, rates: HingeRates):
        """The :class:`~segreg.ops.RateLagrangian` of (T, K) rates."""
        raise NotImplementedError

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        C = batch.logits.shape[1]
        s = softmax_log_odds(batch.logits)
        h = targeted_hinge_rates(s, batch.labels, self.targets,
                                 self.threshold, batch.weight)
        if batch.sync:
            h = HingeRates(*(all_reduce_sum(x) for x in h))
        lag = self.lagrangian(h)
        value = lag.value.reshape(len(self.targets), -1).mean(1)
        present = h.n_pos > 0
        self.defer_dual_step(lag.slack, present.unsqueeze(1).expand_as(
            lag.slack))
        full = s.new_zeros(C)
        term = full.index_copy(0, self.targets, value)
        pres = torch.zeros(C, dtype=torch.bool, device=s.device).index_copy(
            0, self.targets, present)
        return ClassTerms(term, pres, pres, dict(
            slack=lag.slack.detach(), objective=lag.objective.detach(),
            dual=self.dual.detach().clone(),
            threshold=self.threshold.detach().clone()))

    def _dual_update(self, slack: Tensor, active: Tensor) -> None:
        self.dual.copy_(projected_dual_step(self.dual, slack, self.dual_lr,
                                            active))


@MODELS.register_module()
class PrecisionAtRecallLoss(_RateLoss):
    """Precision at recall >= ``recall`` of each target class (P@R).

    Args:
        recall (float): Target recall ``r`` in [0, 1]. Default 0.8.
        **kwargs: ``target_classes``, ``dual_lr`` and the base options.
    """

    def __init__(self, recall: float = 0.8,
                 loss_name: str = 'loss_p_at_r', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        if not 0.0 <= recall <= 1.0:
            raise ValueError(f'recall must be in [0, 1], got {recall}')
        self.recall = float(recall)

    def lagrangian(self, rates: HingeRates):
        return precision_at_recall_from_rates(rates, self.recall, self.dual)


@MODELS.register_module()
class RecallAtPrecisionLoss(_RateLoss):
    """Recall at precision >= ``precision`` of each target class (R@P).

    Args:
        precision (float): Target precision ``p`` in [0, 1]. Default 0.8.
        **kwargs: ``target_classes``, ``dual_lr`` and the base options.
    """

    def __init__(self, precision: float = 0.8,
                 loss_name: str = 'loss_r_at_p', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        if not 0.0 <= precision <= 1.0:
            raise ValueError(f'precision must be in [0, 1], got {precision}')
        self.precision = float(precision)

    def lagrangian(self, rates: HingeRates):
        return recall_at_precision_from_rates(rates, self.precision,
                                              self.dual)


@MODELS.register_module()
class ROCAUCLoss(_RateLoss):
    """ROC-AUC of each target class, a grid of K FPR anchors.

    Args:
        num_anchors (int): K (anchors ``(k + 1/2) / K``). Default 5.
        **kwargs: ``target_classes``, ``dual_lr`` and the base options.
    """

    def __init__(self, num_anchors: int = 5,
                 loss_name: str = 'loss_roc_auc', **kwargs) -> None:
        if not (isinstance(num_anchors, int) and num_anchors >= 1):
            raise ValueError(f'num_anchors must be an int >= 1, got '
                             f'{num_anchors!r}')
        self.num_anchors = num_anchors
        super().__init__(loss_name=loss_name, **kwargs)

    def lagrangian(self, rates: HingeRates):
        K = self.num_anchors
        anchors = (torch.arange(K, dtype=rates.tp_l.dtype,
                                device=rates.tp_l.device) + 0.5) / K
        return roc_auc_from_rates(rates, anchors, self.dual)
