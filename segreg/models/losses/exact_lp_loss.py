"""The paper's per-batch LP, solved exactly for every class.

For class ``c`` with scores ``f_ic = w_c s_ic`` (``w_c`` a learnable
per-class scale, the paper's free last-layer scale) the LP with ``tau``
eliminated is (docs/regularizer_derivation.md, sections 2-5)::

    V_c = min_{eps >= eps_min}  b^2 n_c eps + sum_{S-_c} w_j max(0, eps + f_jc)
    eps_min: the smallest eps with sum_{S+_c} w_i min(eps, f_ic) = 1

``eps_min`` is the water-filling threshold, found by Newton steps on
per-class sums (``segreg.ops.newton_threshold``; the same value and
gradient as the sort of ``segreg.ops.classwise_threshold``); autograd
through the closed form gives the optimal Lagrangian's gradient. The bound
is ``m_c = 1 / V_c`` (IoU) or ``(1 + b^2) / (1 + V_c)`` (F-beta). The LP is
infeasible when ``w_c sum_{S+} s < 1`` (every class at initialisation);
such a class contributes the direct hinge bound (as :class:`HingeBoundLoss`).
Under DDP only per-class sums travel: O(C x Newton steps).
"""
from __future__ import annotations

import math

import torch
from mmseg.registry import MODELS
from torch import nn

from segreg.ops import (class_gather, class_sum, classwise_lp_value,
                        hinge_bound_from_counts, log_odds_hinge,
                        lp_metric_bound, newton_threshold, own_log_odds,
                        pixel_weights)
from segreg.utils.dist import all_reduce_sum, all_reduce_sum_

from .pixel_metric_loss import (ClassTerms, PixelBatch, PixelMetricLoss,
                                check_metric)

__all__ = ['ExactLPLoss']


@MODELS.register_module()
class ExactLPLoss(PixelMetricLoss):
    """Class-wise IoU / F-beta LP solved exactly per batch.

    ``DualIoULoss`` / ``DualFbetaLoss`` with ``solver='exact'`` build this
    class.

    Args:
        metric (str): ``'iou'`` or ``'fbeta'``.
        beta (float): F-beta's beta. Default 1.
        learn_scale (bool): Learn ``log w_c`` (needs ``num_classes``);
            otherwise ``w_c = 1``. Default True.
        normalize (str): ``'sum'`` (the paper's ``sum_{S+} tau = 1``,
            default) or ``'mean'`` (``sum_{S+} tau = n_c``: the LP of
            ``f / n_c``, a scale that does not depend on the batch's class
            sizes; derivation, section 14).
        **kwargs: Of :class:`PixelMetricLoss`.
    """

    def __init__(self, metric: str = 'iou', beta: float = 1.0,
                 learn_scale: bool = True, normalize: str = 'sum',
                 loss_name: str = 'loss_dual_iou', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.metric, self.beta = check_metric(metric, beta)
        if normalize not in ('sum', 'mean'):
            raise ValueError(f"normalize must be 'sum' or 'mean', got "
                             f'{normalize!r}')
        if learn_scale and self.num_classes is None:
            raise ValueError(f'{type(self).__name__} learns one scale per '
                             'class and needs num_classes, or pass '
                             'learn_scale=False')
        self.normalize = normalize
        self.log_scale = nn.Parameter(torch.zeros(self.num_classes)) \
            if learn_scale else None

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        kw = dict(beta=self.beta, metric=self.metric)
        C = batch.logits.shape[1]
        w, y = pixel_weights(batch.labels, C, batch.weight,
                             batch.logits.dtype)
        own = own_log_odds(batch.logits, y)  # s_{i, y_i}
        n = class_sum(w, y, C)
        sum_s = class_sum(w * own.detach(), y, C)
        if batch.sync:  # global class sums (no gradient): O(C)
            n, sum_s = all_reduce_sum_(torch.stack([n, sum_s])).unbind()
        present = n > 0
        scales = torch.ones_like(n) if self.log_scale is None else \
            self.log_scale.to(n.dtype).exp()
        # the LP's score scale: w_c ('sum') or w_c / n_c ('mean')
        lp_factor = torch.where(present, 1.0 / n.clamp(min=1e-12), 1.0) \
            if self.normalize == 'mean' else torch.ones_like(n)
        solve = present & (scales.detach() * lp_factor * sum_s >= 1.0)
        # infeasible and absent classes do not train the scale
        w_eff = torch.where(solve, scales, scales.detach())
        w_lp = w_eff * lp_factor
        if bool(solve.any()):  # global: every rank takes the same branch
            thr = newton_threshold(
                own * class_gather(w_lp, y), y, C, w,
                all_reduce=all_reduce_sum_ if batch.sync else None,
                all_reduce_grad=all_reduce_sum if batch.sync else None)
            feasible = thr.feasible & solve
            eps = torch.where(feasible, thr.eps.clamp(min=0), 1.0)
        else:  # every class infeasible (at initialisation): no threshold
            feasible, eps = solve, torch.ones_like(n)
        # fp_c = sum_{S-} max(0, u_c s + eps_c); the direct bound's tp of
        # the infeasible classes: sum_{S+} min(1, w s)
        fp = log_odds_hinge(batch.logits, y, w, eps,
                            torch.where(feasible, w_lp, w_eff)).fp
        tp = class_sum(w * (own * class_gather(w_eff, y)).clamp(max=1.0), y,
                       C)
        if batch.sync:
            fp, tp = all_reduce_sum(torch.stack([fp, tp])).unbind()
        value = classwise_lp_value(eps, n, fp, feasible, **kw)
        m_lp = lp_metric_bound(torch.where(feasible, value, 1.0), **kw)
        m = torch.where(feasible, m_lp, torch.where(
            present, hinge_bound_from_counts(tp, fp, n, **kw), 1 / (1 + fp)))
        nan = torch.full_like(eps, math.nan)
        return ClassTerms(
            1.0 - m, present, None,
            dict(n=n.detach(), bound=m.detach(), scale=scales.detach(),
                 feasible=feasible.detach(),
                 eps=torch.where(feasible, eps, nan).detach(),
                 value=torch.where(feasible, value, nan).detach()))
