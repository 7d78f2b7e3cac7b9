r"""The direct hinge bound on IoU / F-beta: defined for any scores, no sort.

With ``tp_l = sum_{S+} w min(1, f)`` and ``fp_u = sum_{S-} w max(0, 1 + f)``
(Eban et al. 2017), ``tp_l <= TP`` and ``fp_u >= FP``, so

.. math::

    IoU \ge \frac{tp_l}{n + fp_u},\qquad
    F_\beta \ge \frac{(1 + b^2)\, tp_l}{tp_l + b^2 n + fp_u}

(for ``tp_l >= 0``; :func:`hinge_bound_from_counts` for the rest). This is
the relaxation of the paper's LP (:mod:`segreg.ops.fractional_lp`) at the
fixed threshold 1, and ``1 - bound`` is the default regularizer
(docs/regularizer_derivation.md, section 9). :func:`hinge_bound` and
:func:`classwise_hinge_bound` are plain references on given scores; the
loss computes the counts from the logits with
:func:`segreg.ops.hinge_counts`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from torch import Tensor
import torch

from .fractional_lp import (_beta_sq, _compute_dtype, _own_class_scores,
                            classwise_negative_hinge)

__all__ = ['HingeBound', 'hinge_bound_from_counts', 'hinge_bound',
           'classwise_hinge_bound']


class HingeBound(NamedTuple):
    """Direct hinge bounds at the current score scale.

    Attributes:
        bound (Tensor): metric lower bound (IoU or F_beta); 0 where
            ``n_pos == 0``.
        tp_l (Tensor): ``sum_{S+} w_i min(1, f_i)``.
        fp_u (Tensor): ``sum_{S-} w_j max(0, 1 + f_j)``.
        n_pos (Tensor): ``sum_{S+} w_i``.
    """
    bound: Tensor
    tp_l: Tensor
    fp_u: Tensor
    n_pos: Tensor


# ---------------------------------------------------------------------------
def hinge_bound_from_counts(tp_l: Tensor,
                            fp_u: Tensor,
                            n_pos: Tensor,
                            beta: float = 1.0,
                            metric: str = 'fbeta') -> Tensor:
    r"""Metric lower bound from (possibly all-reduced) hinge counts.

    For ``tp_l >= 0`` the classical bounds ``tp_l / (n + fp_u)`` (IoU) and
    ``(1 + b^2) tp_l / (tp_l + b^2 n + fp_u)`` (F_beta). For ``tp_l < 0``
    the denominator is frozen at its ``tp_l = fp_u = 0`` value (``n``,
    resp. ``b^2 n``; ``n`` if ``b = 0``): ``tp_l / n`` resp.
    ``(1 + b^2) tp_l / (b^2 n)``. Otherwise ``tp_l / (n + fp_u)`` would
    *increase* with ``fp_u`` when ``tp_l < 0`` and reward false positives.
    The result is a valid lower bound everywhere (<= 0 <= metric when
    ``tp_l < 0``), continuous, non-decreasing in ``tp_l`` and
    non-increasing in ``fp_u``. 0 where ``n_pos == 0``.

    Shapes: any, broadcast together.
    """
    b2 = _beta_sq(beta, metric)
    present = n_pos > 0
    one = torch.ones_like(n_pos)
    if metric == 'iou':
        num, den_pos, den_neg = tp_l, n_pos + fp_u, n_pos
    else:
        num = (1.0 + b2) * tp_l
        den_pos = tp_l.clamp(min=0) + b2 * n_pos + fp_u
        den_neg = b2 * n_pos if b2 > 0 else n_pos
    den = torch.where(tp_l >= 0, den_pos, den_neg)
    den = torch.where(present & (den > 0), den, one)
    return torch.where(present, num / den, torch.zeros_like(num))


def hinge_bound(pos_scores: Tensor,
                neg_scores: Tensor,
                beta: float = 1.0,
                pos_weight: Optional[Tensor] = None,
                neg_weight: Optional[Tensor] = None,
                metric: str = 'fbeta') -> HingeBound:
    r"""The hinge lower bound on IoU / F_beta at the current score scale.

    With ``tp_l = sum_{S+} w min(1, f)`` and ``fp_u = sum_{S-} w max(0,
    1 + f)`` (Eban et al. 2017):

    - ``metric='iou'``: ``tp_l / (n + fp_u)``,
    - ``metric='fbeta'``: ``(1 + b^2) tp_l / (tp_l + b^2 n + fp_u)``,

    for ``tp_l >= 0``, and ``tp_l / n`` resp. ``(1 + b^2) tp_l / (b^2 n)``
    for ``tp_l < 0`` (:func:`hinge_bound_from_counts`). Valid lower bounds
    for every score, continuous, monotone, with a non-zero gradient even
    when the LP is infeasible; ``1 - bound`` is the "direct"
    loss of docs/regularizer_derivation.md, section 9. At the LP's scale they equal the
    LP bound: ``hinge_bound(f / eps*)`` is ``1 / V`` (IoU) or
    ``(1 + b^2) / (1 + V)`` (F_beta). ``bound`` is 0 when there is no
    positive weight.

    Args and dtypes as in :func:`fractional_lp`.

    Returns:
        HingeBound: 0-d ``bound``, ``tp_l``, ``fp_u``, ``n_pos``.
    """
    _beta_sq(beta, metric)
    dt = _compute_dtype(pos_scores, neg_scores, pos_weight, neg_weight)
    fp = pos_scores.reshape(-1).to(dt)
    fn = neg_scores.reshape(-1).to(dt)
    wp = torch.ones_like(fp) if pos_weight is None else \
        pos_weight.reshape(-1).to(dt)
    wn = torch.ones_like(fn) if neg_weight is None else \
        neg_weight.reshape(-1).to(dt)
    tp = (wp * fp.clamp(max=1.0)).sum()
    fpu = (wn * torch.relu(1.0 + fn)).sum()
    n = wp.sum()
    bound = hinge_bound_from_counts(tp, fpu, n, beta, metric)
    return HingeBound(bound, tp, fpu, n)


def classwise_hinge_bound(scores: Tensor,
                          labels: Tensor,
                          weight: Optional[Tensor] = None,
                          beta: float = 1.0,
                          metric: str = 'fbeta') -> HingeBound:
    """:func:`hinge_bound` of every class one-vs-rest, without any sort.

    ``tp_l`` sums over the N positives (scatter), ``fp_u`` is
    :func:`classwise_negative_hinge` at ``eps = 1``. Under DDP all-reduce
    the returned ``tp_l``, ``fp_u`` and ``n_pos`` (plain sums over pixels)
    and recompute the bound with :func:`hinge_bound_from_counts`.

    Args and shapes as in :func:`classwise_fractional_lp`.

    Returns:
        HingeBound: (C,) ``bound`` (0 for absent classes), ``tp_l``,
        ``fp_u``, ``n_pos``.
    """
    _beta_sq(beta, metric)
    C = scores.shape[1]
    x, w, y, pos, y_pos = _own_class_scores(scores, labels, weight)
    dt = x.dtype
    wf = (w * torch.where(w > 0, pos, torch.zeros_like(pos)).clamp(max=1.0))
    zc = torch.zeros(C, device=x.device, dtype=dt)
    tp = zc.index_add(0, y.reshape(-1), wf.reshape(-1))
    n = zc.index_add(0, y.reshape(-1), w.reshape(-1))
    fpu = classwise_negative_hinge(x, y_pos, torch.ones(C, device=x.device,
                                                        dtype=dt), w)
    bound = hinge_bound_from_counts(tp, fpu, n, beta, metric)
    return HingeBound(bound, tp, fpu, n)
