r"""The reparameterized F-beta / IoU linear program, solved in closed form.

For one binary problem with positive scores ``f_i`` (i in S+, weights
``w_i``) and negative scores ``f_j`` (j in S-, weights ``w_j``), the paper's
program (Ravi et al., AAAI 2020, Problem 2/3, after the Charnes-Cooper
change of variables, with pixel weights) is

.. math::

    V(f) = \min_{\tau, \epsilon, \phi}\;
           b^2 n \epsilon + \sum_{j\in S^-} w_j\phi_j
    \quad\text{s.t.}\quad \tau_i \le \epsilon,\ \tau_i \le f_i,\
    \sum_{i\in S^+} w_i\tau_i = 1,\ \phi_j \ge 0,\ \phi_j \ge \epsilon + f_j,\
    \epsilon \ge 0,

with ``n = sum_{S+} w_i``. Eliminating ``tau`` and ``phi`` leaves
``min_{eps >= eps_min} b^2 n eps + sum_{S-} w_j max(0, eps + f_j)``, whose
objective increases strictly in ``eps`` (slope >= b^2 n > 0), so the optimum
is ``eps* = eps_min``, the water-filling threshold with
``sum_{S+} w_i min(eps, f_i) = 1``. It exists iff ``sum_{S+} w_i f_i >= 1``.

Which metric: the same program serves both. IoU = tp/(n + fp) and
F_beta = (1+b^2) tp / (tp + b^2 n + fp) lead to minimising
``(a tp_l + b^2 n + fp_u) / tp_l`` with ``a = 0, b = 1`` (IoU) or ``a = 1``
(F_beta); after the change of variables ``a tp_l eps = a`` is a constant, so
the F_beta program is the IoU program with ``n`` replaced by ``b^2 n`` plus
the constant 1. ``V`` below never contains that constant; the metric lower
bounds are ``IoU >= 1 / V`` (b = 1) and ``F_beta >= (1 + b^2) / (1 + V)``
(:func:`lp_metric_bound`). ``metric='iou'`` is ``metric='fbeta', beta=1``.

Derivation, duals, the gradient argument, the class-wise and distributed
forms: docs/regularizer_derivation.md.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .water_filling import classwise_threshold

__all__ = [
    'fractional_lp', 'classwise_fractional_lp', 'classwise_negative_hinge',
    'classwise_lp_value', 'lp_metric_bound', 'ClasswiseLP'
]

_METRICS = ('fbeta', 'iou')


def _compute_dtype(*xs: Optional[Tensor]) -> torch.dtype:
    """float64 if any input is float64, else float32 (half/bf16 upcast)."""
    for x in xs:
        if x is not None and x.dtype == torch.float64:
            return torch.float64
    return torch.float32


def _beta_sq(beta: float, metric: str) -> float:
    """The coefficient ``b^2`` of ``n eps`` in the LP objective."""
    if metric not in _METRICS:
        raise ValueError(f'metric must be one of {_METRICS}, got {metric!r}')
    beta = float(beta)
    if metric == 'iou':
        if beta != 1.0:
            raise ValueError("metric='iou' has no beta (it is the b = 1 "
                             f'program); got beta={beta}')
        return 1.0
    if not beta >= 0 or math.isinf(beta):
        raise ValueError(f'beta must be finite and >= 0, got {beta}')
    return beta * beta


def _channel_view(x: Tensor, C: int, ndim: int) -> Tensor:
    """Reshape a (C,) vector to broadcast against (N, C) or (B, C, *)."""
    return x.view(1, C, *([1] * (ndim - 2)))


class ClasswiseLP(NamedTuple):
    """Per-class LP optimum (:func:`classwise_fractional_lp`).

    Attributes:
        value (Tensor): (C,) ``V_c``, ``+inf`` where infeasible.
        eps (Tensor): (C,) optimal ``eps_c``, ``+inf`` where infeasible.
        feasible (Tensor): (C,) bool.
        n_pos (Tensor): (C,) positive weight per class (0: class absent).
    """
    value: Tensor
    eps: Tensor
    feasible: Tensor
    n_pos: Tensor


def _pixel_weights(labels: Tensor, C: int, weight: Optional[Tensor],
                   dt: torch.dtype) -> Tuple[Tensor, Tensor]:
    """Valid-pixel weights (0 outside [0, C)) and labels clamped into range."""
    y = labels.long()
    valid = (y >= 0) & (y < C)
    w = valid.to(dt) if weight is None else \
        torch.where(valid, weight.reshape(y.shape).to(dt),
                    torch.zeros((), device=y.device, dtype=dt))
    return w, torch.where(valid, y, torch.zeros_like(y))


def _own_class_scores(scores: Tensor, labels: Tensor,
                      weight: Optional[Tensor]) -> Tuple[Tensor, ...]:
    """Scores in the compute dtype, pixel weights, and each pixel's own class.

    Returns ``(x, w, y, pos, y_pos)``: ``x`` the scores (compute dtype),
    ``w`` the valid-pixel weights (0 outside [0, C)), ``y`` the labels clamped
    into range, ``pos = x[i, y_i]`` and ``y_pos`` the labels with
    zero-weight pixels moved to the ignored segment ``C``.
    """
    C = scores.shape[1]
    dt = _compute_dtype(scores, weight)
    x = scores.to(dt)
    w, y = _pixel_weights(labels, C, weight, dt)
    pos = x.gather(1, y.unsqueeze(1)).squeeze(1)
    y_pos = torch.where(w > 0, y, torch.full_like(y, C))
    return x, w, y, pos, y_pos


def classwise_negative_hinge(scores: Tensor,
                             labels: Tensor,
                             eps: Tensor,
                             weight: Optional[Tensor] = None) -> Tensor:
    r"""``sum_{j: y_j != c} w_j max(0, eps_c + f_{jc})`` for every class c.

    Plain autograd over the (N, C) scores, no sort: the part that is
    all-reduced (summed) over ranks under DDP.

    Args:
        scores (Tensor): (N, C), or (B, C, d1, ...) with classes on dim 1.
            Must be finite at pixels of weight 0 (``0 * inf`` is NaN).
        labels (Tensor): (N,) or (B, d1, ...); labels outside [0, C) are
            ignored pixels.
        eps (Tensor): (C,) thresholds; classes whose ``eps`` is not finite
            (infeasible) get 0.
        weight (Tensor, optional): pixel weights, shape of ``labels``.

    Returns:
        Tensor: (C,), float32 (float64 for float64 scores).
    """
    C = scores.shape[1]
    dt = _compute_dtype(scores, eps)
    w, y = _pixel_weights(labels, C, weight, dt)
    ok = torch.isfinite(eps)
    e = torch.where(ok, eps.to(dt), torch.zeros((), device=eps.device,
                                                 dtype=dt))
    x = scores.to(dt)
    t = torch.relu(x + _channel_view(e, C, x.dim()))
    t = t * torch.ones_like(t).scatter(1, y.unsqueeze(1), 0.0)
    out = (t * w.reshape(y.shape).unsqueeze(1)).transpose(0, 1)
    out = out.reshape(C, -1).sum(1)
    return torch.where(ok, out, torch.zeros_like(out))


def classwise_lp_value(eps: Tensor,
                       n_pos: Tensor,
                       neg_hinge: Tensor,
                       feasible: Tensor,
                       beta: float = 1.0,
                       metric: str = 'fbeta') -> Tensor:
    """``V_c = b^2 n_c eps_c + neg_hinge_c``, ``+inf`` where infeasible.

    The last step of the class-wise solve; ``neg_hinge`` is the (possibly
    all-reduced) output of :func:`classwise_negative_hinge` at the same
    ``eps``. The graph never contains ``inf``: callers may mask with
    ``torch.where(feasible, value, 0)`` and get finite gradients.
    """
    b2 = _beta_sq(beta, metric)
    e = torch.where(feasible, eps, torch.zeros_like(eps))
    v = b2 * n_pos * e + neg_hinge
    return torch.where(feasible, v, torch.full_like(v, math.inf))


def classwise_fractional_lp(scores: Tensor,
                            labels: Tensor,
                            weight: Optional[Tensor] = None,
                            beta: float = 1.0,
                            metric: str = 'fbeta') -> ClasswiseLP:
    r"""The LP of every class of a batch at once (one-vs-rest).

    For class c the positives are the pixels labelled c (scores
    ``f_{i,c}``), the negatives every other valid pixel (scores ``f_{j,c}``),
    and ``V_c`` is :func:`fractional_lp` of that binary problem.
    Composition (the same three calls work under DDP)::

        pos = scores.gather(1, y[:, None])[:, 0]          # N values
        thr = classwise_threshold(pos, y, C, w)           # DDP: all-gather
        neg = classwise_negative_hinge(scores, y, thr.eps, w)  # all-reduce
        V = classwise_lp_value(thr.eps, thr.n_pos, neg, thr.feasible, beta)

    Under DDP: gather the positives (differentiably, e.g.
    ``torch.distributed.nn.functional.all_gather``) with their labels and
    weights, compute ``thr`` identically on every rank, compute ``neg`` on
    the local shard with the global ``thr.eps`` and all-reduce (sum) it
    differentiably; ``thr.n_pos`` is already global.

    Args:
        scores (Tensor): (N, C) or (B, C, d1, ...), finite at valid pixels.
        labels (Tensor): (N,) or (B, d1, ...). Labels outside [0, C) (e.g.
            255) are ignored pixels: neither positive nor negative.
        weight (Tensor, optional): pixel weights, shape of ``labels``;
            weights multiply counts, 0 leaves the pixel out.
        beta (float): F-beta's beta (``b^2`` multiplies ``n eps``).
        metric (str): ``'fbeta'`` or ``'iou'`` (= ``'fbeta'`` with beta 1).

    Returns:
        ClasswiseLP: ``value``, ``eps`` (C,) (``+inf`` where infeasible or
        absent: mask before reducing), ``feasible`` (C,), ``n_pos`` (C,).
        float32 for float32/float16/bfloat16 scores, float64 for float64.
    """
    _beta_sq(beta, metric)
    C = scores.shape[1]
    x, w, _, pos, y_pos = _own_class_scores(scores, labels, weight)
    thr = classwise_threshold(pos.reshape(-1), y_pos.reshape(-1), C,
                              w.reshape(-1))
    neg = classwise_negative_hinge(x, y_pos, thr.eps, w)
    value = classwise_lp_value(thr.eps, thr.n_pos, neg, thr.feasible, beta,
                               metric)
    return ClasswiseLP(value, thr.eps, thr.feasible, thr.n_pos)


def fractional_lp(pos_scores: Tensor,
                  neg_scores: Tensor,
                  beta: float = 1.0,
                  pos_weight: Optional[Tensor] = None,
                  neg_weight: Optional[Tensor] = None,
                  metric: str = 'fbeta') -> Tuple[Tensor, Tensor]:
    r"""Exact optimum ``(V, eps*)`` of the reparameterized F-beta / IoU LP.

    .. math::

        V = b^2 n\,\epsilon^* + \sum_{j \in S^-} w_j \max(0, \epsilon^* + f_j),
        \qquad \sum_{i \in S^+} w_i \min(\epsilon^*, f_i) = 1

    (module docstring; docs/regularizer_derivation.md). ``V`` equals the
    optimum of the original (tau, eps, phi) program; the optimal tau is
    ``tau_i = min(eps*, f_i)``. Objective per mode: ``metric='fbeta'``:
    ``beta^2 n eps + sum phi`` (F_beta >= (1 + beta^2) / (1 + V));
    ``metric='iou'``: ``n eps + sum phi`` (IoU >= 1 / V); the F_beta
    program's constant 1 (from its tp term) is not included in ``V``.

    ``V`` is convex and piecewise linear in the scores; autograd through the
    closed form returns the optimal duals where they are unique:
    ``dV/df_i = -lambda_i = -mu w_i`` for positives below ``eps*`` (0 above),
    ``dV/df_j = w_j [eps* + f_j > 0]`` for negatives, with
    ``mu = (b^2 n + sum_{j: eps*+f_j>0} w_j) / sum_{i: f_i > eps*} w_i``.

    Infeasible (no positive weight, or ``sum w_i f_i < 1``): ``V = eps =
    +inf``; callers must mask (the graph holds no ``inf``, so
    ``torch.where(torch.isfinite(V), V, 0)`` has finite gradients).

    Args:
        pos_scores (Tensor): (P,) scores of the positives.
        neg_scores (Tensor): (Q,) scores of the negatives.
        beta (float): beta >= 0 of F_beta. Default 1 (F1, same LP as IoU).
        pos_weight, neg_weight (Tensor, optional): (P,), (Q,) non-negative
            weights multiplying counts; weight 0 changes nothing.
        metric (str): ``'fbeta'`` (default) or ``'iou'`` (requires beta=1).

    Returns:
        tuple[Tensor, Tensor]: 0-d ``value`` and ``eps``; float32 for
        float32/half/bfloat16 inputs (computed in float32), float64 if any
        input is float64.
    """
    b2 = _beta_sq(beta, metric)
    dt = _compute_dtype(pos_scores, neg_scores, pos_weight, neg_weight)
    fp = pos_scores.reshape(-1).to(dt)
    fn = neg_scores.reshape(-1).to(dt)
    labels = torch.zeros(fp.numel(), dtype=torch.long, device=fp.device)
    thr = classwise_threshold(fp, labels, 1, pos_weight)
    eps, feasible = thr.eps[0], thr.feasible[0]
    e = torch.where(feasible, eps, torch.zeros_like(eps))
    hinge = torch.relu(fn + e)
    if neg_weight is not None:
        hinge = hinge * neg_weight.reshape(-1).to(dt)
    value = b2 * thr.n_pos[0] * e + hinge.sum()
    value = torch.where(feasible, value, torch.full_like(value, math.inf))
    return value, eps


def lp_metric_bound(value: Tensor, beta: float = 1.0,
                    metric: str = 'fbeta') -> Tensor:
    """Metric lower bound from the LP value: ``1/V`` (IoU) or
    ``(1 + b^2) / (1 + V)`` (F_beta). ``V = inf`` gives 0."""
    b2 = _beta_sq(beta, metric)
    if metric == 'iou':
        return 1.0 / value
    return (1.0 + b2) / (1.0 + value)
