r"""Per-class pieces of the pixel metric regularizers (no module state).

What the loss classes of ``segreg.models.losses`` compute, as pure
functions: the direct form's per-class hinge sums, the per-class loss term
from a metric bound, the feasibility shift of the exact LP, the
persistent-dual Lagrangian and the projected dual step shared by every loss
that keeps dual variables. Derivations: docs/regularizer_derivation.md
(sections 9, 12, 15).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .fractional_lp import (SURROGATES, classwise_negative_hinge,
                            surrogate as _phi)
from .scores import softmax_log_odds

__all__ = [
    'HingeCounts', 'classwise_hinge_counts', 'metric_term', 'TERMS',
    'feasibility_shift', 'PersistentDualLagrangian',
    'persistent_dual_lagrangian', 'running_count', 'projected_dual_step'
]

TERMS = ('bound', 'log', 'inverse')


class HingeCounts(NamedTuple):
    """Per-class hinge sums of one (local) batch; all-reduce them under DDP.

    Attributes:
        tp_l (Tensor): (C,) ``sum_{i: y_i = c} w_i (1 - phi(1 - s_ic))``.
        fp_u (Tensor): (C,) ``sum_{j: y_j != c} w_j phi(1 + s_jc)``.
        n_pos (Tensor): (C,) ``sum_{i: y_i = c} w_i``.
    """
    tp_l: Tensor
    fp_u: Tensor
    n_pos: Tensor


def classwise_hinge_counts(logits: Tensor,
                           labels: Tensor,
                           weight: Optional[Tensor] = None,
                           surrogate: str = 'hinge') -> HingeCounts:
    r"""The direct bound's per-class sums, from the logits in one call.

    With the log-odds scores ``s`` (:func:`softmax_log_odds`) and the
    surrogate ``phi`` (hinge: ``max(0, t)``; paper, Remark 3):

    .. math::

        tp_c = \sum_{y_i = c} w_i\,(1 - \phi(1 - s_{ic})),\quad
        fp_c = \sum_{y_j \ne c} w_j\,\phi(1 + s_{jc}),\quad
        n_c = \sum_{y_i = c} w_i

    (hinge: ``tp_c = sum min(1, s)``, ``fp_c = sum max(0, 1 + s)``, Eban et
    al. 2017). This is the whole per-pixel cost of the default
    regularizer; a fused kernel with the same signature can replace it.

    Args:
        logits (Tensor): float32/float64 logits.
        labels (Tensor): Class indices; values outside ``[0, C)`` are
            ignored pixels (neither positive nor negative).
        weight (Tensor, optional): Pixel weights (0 leaves a pixel out).
        surrogate (str): ``'hinge'``, ``'square'`` or ``'logistic'``.

    Returns:
        HingeCounts: (C,) sums in the logits' dtype (float32 for half).

    Shape:
        logits (B, C, ...); labels and weight (B, ...).

    Reference:
        docs/regularizer_derivation.md, section 9 (the direct bound).
    """
    if surrogate not in SURROGATES:
        raise ValueError(f'surrogate must be one of {SURROGATES}, got '
                         f'{surrogate!r}')
    C = logits.shape[1]
    s = softmax_log_odds(logits)
    y = labels.reshape(s.shape[:1] + s.shape[2:]).long()
    valid = (y >= 0) & (y < C)
    w = valid.to(s.dtype) if weight is None else torch.where(
        valid, weight.reshape(y.shape).to(s.dtype), s.new_zeros(()))
    y0 = torch.where(valid, y, torch.zeros_like(y))
    s_own = s.gather(1, y0.unsqueeze(1)).squeeze(1)
    hit = w * (1.0 - _phi(1.0 - torch.where(valid, s_own,
                                            torch.zeros_like(s_own)),
                          surrogate))
    zc = s.new_zeros(C)
    tp = zc.index_add(0, y0.reshape(-1), hit.reshape(-1))
    n = zc.index_add(0, y0.reshape(-1), w.reshape(-1))
    y_neg = torch.where(valid, y, torch.full_like(y, C))
    fp = classwise_negative_hinge(s, y_neg, torch.ones_like(zc), w,
                                  surrogate=surrogate)
    return HingeCounts(tp, fp, n)


def metric_term(bound: Tensor, kind: str = 'bound',
                floor: float = 0.05) -> Tensor:
    r"""Per-class loss term from a metric lower bound ``m <= 1``.

    .. math::

        \text{bound}: 1 - m,\qquad
        \text{log}: -\log m,\qquad
        \text{inverse}: 1/m - 1\ (= V - 1 \text{ for IoU}),

    the last two continued linearly (C1) below ``floor`` ``m_0``:
    ``t(m_0) + t'(m_0) (m - m_0)``, so a bound near or below 0 (an
    infeasible class's direct bound) gives a finite, bounded gradient.

    Args:
        bound (Tensor): Any shape.
        kind (str): One of :data:`TERMS`.
        floor (float): ``m_0`` in (0, 1].

    Returns:
        Tensor: Same shape as ``bound``.
    """
    if kind == 'bound':
        return 1.0 - bound
    if kind not in TERMS:
        raise ValueError(f'term must be one of {TERMS}, got {kind!r}')
    m0 = float(floor)
    safe = bound.clamp(min=m0)
    if kind == 'log':
        main, slope, at_floor = -torch.log(safe), 1.0 / m0, -math.log(m0)
    else:
        main, slope, at_floor = 1.0 / safe - 1.0, 1.0 / m0**2, 1.0 / m0 - 1.0
    return torch.where(bound >= m0, main, at_floor + slope * (m0 - bound))


def feasibility_shift(sum_scores: Tensor, n_pos: Tensor, scale: Tensor,
                      need: Tensor, margin: float = 1.0) -> Tensor:
    r"""Constant per-class score shift that makes the class's LP feasible.

    The LP of class ``c`` is feasible iff ``w_c sum_{S+} s >= 1``; adding
    ``delta_c = (1 - w_c sum_{S+} s) / n_c + margin`` to every score of the
    class makes ``sum_{S+} (w_c s + delta_c) = 1 + n_c margin >= 1``.

    Args:
        sum_scores (Tensor): (C,) ``sum_{S+} w_i s_ic`` (pixel weights).
        n_pos (Tensor): (C,) positive weight.
        scale (Tensor): (C,) score scale ``w_c``.
        need (Tensor): (C,) bool, classes to shift (0 elsewhere).
        margin (float): Mean positive score above ``1/n`` after the shift.

    Returns:
        Tensor: (C,) ``delta``, detached (a constant, no gradient).
    """
    delta = (1.0 - scale.detach() * sum_scores.detach()) \
        / n_pos.detach().clamp(min=1e-12) + margin
    return torch.where(need, delta, torch.zeros_like(delta)).detach()


class PersistentDualLagrangian(NamedTuple):
    """Output of :func:`persistent_dual_lagrangian` (all (C,)).

    Attributes:
        value (Tensor): ``L_c`` (the per-class loss term).
        primal (Tensor): ``b^2 eps_c + fp_c / nbar_c``.
        slack (Tensor): ``1 - hit_c / n_c`` (``> 0``: violated).
        bound (Tensor): ``1 / primal`` (IoU) or ``(1 + b^2) / (1 + primal)``.
    """
    value: Tensor
    primal: Tensor
    slack: Tensor
    bound: Tensor


def persistent_dual_lagrangian(eps: Tensor, mu: Tensor, hit: Tensor,
                               fp: Tensor, n_pos: Tensor, n_bar: Tensor,
                               beta: float = 1.0,
                               metric: str = 'iou'
                               ) -> PersistentDualLagrangian:
    r"""Class-level Lagrangian of the LP normalised per positive.

    .. math::

        L_c = b^2 \epsilon_c + \frac{fp_c}{\bar n_c}
              + \mu_c\Big(1 - \frac{hit_c}{n_c}\Big),\quad
        hit_c = \sum_{S^+_c} w_i \min(\epsilon_c, f_{ic}),\quad
        fp_c = \sum_{S^-_c} w_j \max(0, \epsilon_c + f_{jc})

    with ``eps_c`` a primal variable, ``mu_c >= 0`` the persistent dual and
    ``nbar_c`` the running positive count. At a saddle point (slack 0,
    ``nbar = n``) ``L_c = V(f / n)`` and the metric bound is ``1 / L_c``
    (IoU) or ``(1 + b^2) / (1 + L_c)`` (F-beta).

    Args:
        eps, mu, hit, fp, n_pos, n_bar (Tensor): (C,); ``hit``, ``fp`` and
            ``n_pos`` are (global) pixel sums.
        beta (float): F-beta's beta (1 for IoU).
        metric (str): ``'iou'`` or ``'fbeta'``.

    Returns:
        PersistentDualLagrangian: (C,) tensors.

    Reference:
        docs/regularizer_derivation.md, section 12.
    """
    b2 = 1.0 if metric == 'iou' else float(beta)**2
    slack = 1.0 - hit / n_pos.clamp(min=1e-12)
    primal = b2 * eps + fp / n_bar.clamp(min=1e-12)
    value = primal + mu * slack
    bound = 1.0 / primal if metric == 'iou' else (1.0 + b2) / (1.0 + primal)
    return PersistentDualLagrangian(value, primal, slack, bound)


def running_count(count: Tensor, n_pos: Tensor, momentum: float,
                  present: Tensor) -> Tensor:
    r"""Running mean of the positive counts, ``nbar_c``.

    ``nbar <- (1 - m) nbar + m n`` for present classes seen before, ``n`` for
    a class's first batch, unchanged for absent classes.
    """
    new = torch.where(count > 0, (1.0 - momentum) * count + momentum * n_pos,
                      n_pos)
    return torch.where(present, new, count)


def projected_dual_step(dual: Tensor, slack: Tensor, lr: float,
                        active: Optional[Tensor] = None,
                        lower: Optional[float] = 0.0,
                        upper: Optional[float] = None) -> Tensor:
    r"""One projected dual ascent step, ``lambda <- max(l, lambda + lr g)``.

    ``g`` is the constraint slack (``dL/dlambda``, ``> 0``: violated), so
    the dual of a violated constraint grows. ``active`` (bool, shape of
    ``dual``) leaves the other entries unchanged; ``lower=None`` is the
    unconstrained step of an equality constraint's dual; a finite ``upper``
    bounds the dual domain (``[lower, upper]``), as stochastic saddle-point
    methods assume.

    Reference:
        Ravi et al. (AAAI 2020), Algorithm 1; docs/regularizer_derivation.md,
        sections 10 and 12.
    """
    step = lr * slack.to(dual)
    if active is not None:
        step = torch.where(active, step, torch.zeros_like(step))
    out = dual + step
    if lower is None and upper is None:
        return out
    return out.clamp(min=lower, max=upper)
