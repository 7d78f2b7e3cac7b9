r"""Dataset-level IoU / F-beta at per-batch cost: a running ratio of sums.

Class ``c``'s hinge bound over the whole training set is a ratio of two
dataset sums of the per-batch hinge counts (:func:`segreg.ops.hinge_counts`):

.. math::

    M_c = \frac{P_c}{Q_c},\qquad
    P_c = \alpha \sum_t tp_{tc},\qquad
    Q_c = \sum_t \big(\kappa\, tp_{tc} + b^2 n_{tc} + fp_{tc}\big),

with ``alpha = 1, kappa = 0, b = 1`` for IoU and ``alpha = 1 + b^2,
kappa = 1`` for F-beta (for a dataset ``tp`` sum below 0 the denominator is
frozen at ``b^2 N``, as :func:`segreg.ops.hinge_bound_from_counts` does per
batch). Its gradient is

.. math::

    \nabla M_c = \frac{\nabla P_c - \lambda_c \nabla Q_c}{Q_c},
    \qquad \lambda_c = P_c / Q_c ,

a sum of per-batch terms once ``lambda_c`` and ``Q_c`` are known.
:func:`running_sums` keeps running means ``u`` of the batch sums (tp, fp, n;
so ``u`` estimates the dataset sums divided by the number of batches), and
:func:`dataset_ratio_terms` uses them for ``lambda`` and ``Q``: the batch's
direction ``(p_t - lambda q_t) / q_u`` has the dataset gradient as its mean
over an epoch when ``u`` is exact (stochastic compositional gradients: Wang,
Fang & Liu 2017; moving-average estimators: Qi et al. 2021, Wang & Yang
2022). ``lambda_c`` is Dinkelbach's parameter of the fractional program: a
ratio of two running sums, so there is no constraint to violate. Under DDP
the batch sums are all-reduced first: O(C) numbers.

Derivation: docs/regularizer_derivation.md, section 17.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ['running_sums', 'DatasetRatio', 'dataset_ratio_terms',
           'ratio_parts']


def running_sums(u: Tensor, sums: Tensor, step: int,
                 gamma_min: float) -> Tensor:
    r"""``u <- (1 - g) u + g sums`` with ``g = max(1 / step, gamma_min)``.

    The exact mean of the first ``1 / gamma_min`` batches (``step`` counts
    from 1; the first batch sets ``u``), then an exponential average that
    forgets the scores of earlier parameters.

    Args:
        u (Tensor): (K, C) running means.
        sums (Tensor): (K, C) this batch's sums (no gradient).
        step (int): Batches seen, this one included (>= 1).
        gamma_min (float): The averaging floor in (0, 1].

    Returns:
        Tensor: The new ``u`` (a new tensor).
    """
    g = max(1.0 / step, float(gamma_min))
    return torch.lerp(u, sums.to(u.dtype), g)


def ratio_parts(tp: Tensor, fp: Tensor, n: Tensor, ref_tp: Tensor,
                beta: float = 1.0, metric: str = 'iou'):
    """``(p, q)``: numerator and denominator of the bound from (C,) sums,
    with the denominator frozen at ``b^2 n`` where ``ref_tp < 0``."""
    b2 = 1.0 if metric == 'iou' else float(beta)**2
    alpha, kappa = (1.0, 0.0) if metric == 'iou' else (1.0 + b2, 1.0)
    q = torch.where(ref_tp >= 0, kappa * tp + b2 * n + fp, b2 * n)
    return alpha * tp, q


class DatasetRatio(NamedTuple):
    """Output of :func:`dataset_ratio_terms` (all (C,)).

    Attributes:
        term (Tensor): ``1 - lambda_c`` in value; its gradient is
            ``-(grad p_t - lambda_c grad q_t) / q_u``.
        bound (Tensor): ``lambda_c``, the running dataset-level bound
            (detached).
        seen (Tensor): bool, ``u_n > 0`` (the class has had positives).
    """
    term: Tensor
    bound: Tensor
    seen: Tensor


def dataset_ratio_terms(tp: Tensor, fp: Tensor, n: Tensor, u: Tensor,
                        beta: float = 1.0,
                        metric: str = 'iou') -> DatasetRatio:
    r"""Per-class terms whose gradient estimates that of ``1 - M_c``.

    .. math::

        \lambda_c = \frac{p(u)}{q(u)},\qquad
        term_c = (1 - \lambda_c)
            - \frac{p_t - \lambda_c q_t}{q(u)}
            + \mathrm{sg}\Big[\frac{p_t - \lambda_c q_t}{q(u)}\Big],

    ``sg`` a stop-gradient: the value is ``1 - lambda_c``, the gradient
    ``-(grad p_t - lambda_c grad q_t) / q(u)``. The denominator is frozen at
    ``b^2 n`` for classes whose running ``tp`` is negative (in the batch
    sums too, so that the frozen form is differentiated consistently).

    Args:
        tp, fp, n (Tensor): (C,) this batch's hinge counts (global under
            DDP); ``tp`` and ``fp`` differentiable.
        u (Tensor): (3, C) running means of (tp, fp, n), this batch
            included (:func:`running_sums`).
        beta (float): F-beta's beta (1 for IoU).
        metric (str): ``'iou'`` or ``'fbeta'``.

    Returns:
        DatasetRatio: (C,) terms, bounds and the seen mask.
    """
    u = u.to(tp.dtype)
    u_tp, u_fp, u_n = u.unbind()
    seen = u_n > 0
    p_u, q_u = ratio_parts(u_tp, u_fp, u_n, u_tp, beta, metric)
    q_u = torch.where(seen & (q_u > 0), q_u, torch.ones_like(q_u))
    lam = torch.where(seen, p_u / q_u, torch.zeros_like(p_u))
    p_t, q_t = ratio_parts(tp, fp, n, u_tp, beta, metric)
    g = (p_t - lam * q_t) / q_u
    term = (1.0 - lam) - (g - g.detach())
    return DatasetRatio(term, lam, seen)
