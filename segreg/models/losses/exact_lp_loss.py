"""The paper's per-batch LP, solved exactly for every class.

For class ``c`` with scores ``f_ic = w_c s_ic`` (``w_c`` a learnable
per-class scale, the paper's free last-layer scale) the LP with ``tau``
eliminated is (docs/regularizer_derivation.md, sections 2-5)::

    V_c = min_{eps >= eps_min}  b^2 n_c eps + sum_{S-_c} w_j max(0, eps + f_jc)
    eps_min: the smallest eps with sum_{S+_c} w_i min(eps, f_ic) = 1

``eps_min`` is a water-filling threshold, found by Newton steps on
per-class sums (``segreg.ops.newton_threshold``; the same value and
gradient as the segmented sort of ``segreg.ops.classwise_threshold``);
autograd through the closed form gives the optimal Lagrangian's gradient. The bound
is ``m_c = 1 / V_c`` (IoU) or ``(1 + b^2) / (1 + V_c)`` (F-beta). The LP is
infeasible when ``w_c sum_{S+} s < 1`` (every class at initialisation);
``infeasible`` chooses what such a class contributes (no Newton step is
taken when no class is solved, and no direct-bound ``tp`` is summed when
every present class is feasible). Under DDP only per-class sums travel: an
all-reduce of a (2, 2, C + 1) tensor per Newton step (4-7 steps measured)
and of a few C-vectors for n, fp and tp, so the communication is O(C x
steps) whatever the number of pixels or ranks.
"""
from __future__ import annotations

import math

import torch
from mmseg.registry import MODELS
from torch import nn

from segreg.ops import (class_gather, class_sum, classwise_lp_value,
                        feasibility_shift, hinge_bound_from_counts,
                        log_odds_scores, lp_metric_bound, metric_term,
                        negative_hinge_sums, newton_threshold,
                        positive_hinge_sums)
from segreg.ops.metric_terms import TERMS
from segreg.utils.dist import all_reduce_sum, all_reduce_sum_

from .pixel_metric_loss import (ClassTerms, PixelBatch, PixelMetricLoss,
                                check_metric)

__all__ = ['ExactLPLoss']

_INFEASIBLE = ('direct', 'shift', 'skip')


@MODELS.register_module()
class ExactLPLoss(PixelMetricLoss):
    """Class-wise IoU / F-beta LP solved exactly per batch.

    ``DualIoULoss`` / ``DualFbetaLoss`` with ``solver='exact'`` build this
    class.

    Args:
        metric (str): ``'iou'`` or ``'fbeta'``.
        beta (float): F-beta's beta. Default 1.
        learn_scale (bool): Learn ``log w_c`` (needs ``num_classes``).
            Default True.
        init_scale (float): Initial (or, without learn_scale, fixed)
            ``w_c``. Default 1.
        normalize (str): ``'sum'`` (the paper's ``sum_{S+} tau = 1``,
            default) or ``'mean'`` (``sum_{S+} tau = n_c``: the LP of
            ``f / n_c``, a scale that does not depend on the batch's class
            sizes; derivation, section 14).
        infeasible (str): A class whose LP is infeasible: ``'direct'``
            (default; the hinge bound at threshold 1, as
            :class:`HingeBoundLoss`), ``'shift'`` (its scores shifted by a
            constant until the LP is feasible; ``normalize='sum'`` only) or
            ``'skip'`` (left out).
        term (str): ``'bound'`` (``1 - m``, default), ``'log'``
            (``-log m``) or ``'inverse'`` (``1/m - 1``); see
            ``segreg.ops.metric_term``.
        **kwargs: Of :class:`PixelMetricLoss`.
    """

    kernels = ('sparse', 'compiled')

    def __init__(self, metric: str = 'iou', beta: float = 1.0,
                 learn_scale: bool = True,
                 init_scale: float = 1.0, normalize: str = 'sum',
                 infeasible: str = 'direct', term: str = 'bound',
                 loss_name: str = 'loss_dual_iou', **kwargs) -> None:
        super().__init__(loss_name=loss_name, **kwargs)
        self.metric, self.beta = check_metric(metric, beta)
        if normalize not in ('sum', 'mean'):
            raise ValueError(f"normalize must be 'sum' or 'mean', got "
                             f'{normalize!r}')
        if infeasible not in _INFEASIBLE:
            raise ValueError(f'infeasible must be one of {_INFEASIBLE}, got '
                             f'{infeasible!r}')
        if infeasible == 'shift' and normalize == 'mean':
            raise ValueError("infeasible='shift' is defined for "
                             "normalize='sum' only")
        if term not in TERMS:
            raise ValueError(f'term must be one of {TERMS}, got {term!r}')
        if learn_scale and self.num_classes is None:
            raise ValueError(f'{type(self).__name__} learns one scale per '
                             'class and needs num_classes, or pass '
                             'learn_scale=False')
        self.normalize, self.infeasible, self.term = normalize, infeasible, \
            term
        if not init_scale > 0:
            raise ValueError(f'init_scale must be positive, got {init_scale}')
        self.init_scale = float(init_scale)
        self.log_scale = nn.Parameter(torch.full(
            (self.num_classes, ), math.log(init_scale))) if learn_scale \
            else None

    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        kw = dict(beta=self.beta, metric=self.metric)
        C = batch.logits.shape[1]
        # the fused log-odds op (segreg.ops.hinge_sums): scores, positives,
        # and the negative hinge sums with a hand-written backward
        sc = log_odds_scores(batch.logits, batch.labels, batch.weight,
                             self.kernel, checked=True)
        n = sc.n_pos
        scales = n.new_full((C, ), self.init_scale) if self.log_scale is None \
            else self.log_scale.to(n.dtype).exp()
        sum_s = class_sum((sc.pos_weight * sc.pos_scores).detach(), sc.index)
        if batch.sync:  # global class sums (no gradient): O(C)
            n, sum_s = all_reduce_sum_(torch.stack([n, sum_s])).unbind()
        present = n > 0
        # the LP's score scale: w_c ('sum') or w_c / n_c ('mean')
        lp_factor = torch.where(present, 1.0 / n.detach().clamp(min=1e-12),
                                torch.ones_like(n)) \
            if self.normalize == 'mean' else torch.ones_like(n)
        feasible_now = present & (scales.detach() * lp_factor * sum_s >= 1.0)
        if self.infeasible == 'shift':
            shift = feasibility_shift(sum_s, n, scales,
                                      present & ~feasible_now)
            solve = present
        else:
            shift, solve = torch.zeros_like(n), feasible_now
        # infeasible and absent classes do not train the scale
        w_eff = torch.where(solve, scales, scales.detach())
        w_lp = w_eff * lp_factor
        # w s: the direct bound's scores, and the LP's for normalize='sum'
        # (one product and its backward, not two)
        f_scaled = sc.pos_scores * class_gather(w_eff, sc.index)
        if bool(solve.any()):
            f_pos = f_scaled if self.normalize == 'sum' else \
                sc.pos_scores * class_gather(w_lp, sc.index)
            if self.infeasible == 'shift':  # else shift = 0: 2 passes saved
                f_pos = f_pos + class_gather(shift, sc.index)
            # the water-filling threshold of the global batch by Newton
            # steps on all-reduced class sums (O(C) per step, no gather of
            # positives); n_c and T_c = sum w f from the sums at hand
            thr = newton_threshold(
                f_pos, sc.index, C, sc.pos_weight,
                all_reduce=all_reduce_sum_ if batch.sync else None,
                all_reduce_grad=all_reduce_sum if batch.sync else None,
                checked=True,
                totals=(n, w_lp.detach() * sum_s + shift * n))
            feasible = thr.feasible & solve
            eps = torch.where(feasible, thr.eps.clamp(min=0),
                              torch.ones_like(n))
        else:  # no class to solve (all of them at initialisation): no
            # threshold to find; solve is global, so every rank skips
            feasible, eps = solve, torch.ones_like(n)
        # fp_c = sum_{S-} max(0, w s + eps + shift)
        fp = negative_hinge_sums(sc, eps + shift,
                                 torch.where(feasible, w_lp, w_eff))
        # direct bound of the infeasible: min(1, w s) = 1 - max(0, 1 - w s);
        # not needed when every present class is feasible (feasible and
        # present are global: every rank takes the same branch)
        if bool((present & ~feasible).any()):
            tp = positive_hinge_sums(sc, cap=1.0, scores=f_scaled)
        else:
            tp = torch.zeros_like(n)
        if batch.sync:
            fp, tp = all_reduce_sum(torch.stack([fp, tp])).unbind()
        value = classwise_lp_value(eps, n, fp, feasible, **kw)
        m_lp = lp_metric_bound(torch.where(feasible, value,
                                           torch.ones_like(value)), **kw)
        m = torch.where(feasible, m_lp, torch.where(
            present, hinge_bound_from_counts(tp, fp, n, **kw), 1.0 / (1 + fp)))
        eligible = (feasible | ~present) if self.infeasible == 'skip' else None
        nan = torch.full_like(eps, math.nan)
        return ClassTerms(
            metric_term(m, self.term), present, eligible,
            dict(n=n.detach(), bound=m.detach(), scale=scales.detach(),
                 feasible=feasible.detach(),
                 eps=torch.where(feasible, eps, nan).detach(),
                 value=torch.where(feasible, value, nan).detach()))
