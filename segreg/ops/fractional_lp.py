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

__all__ = [
    'fractional_lp', 'classwise_fractional_lp', 'classwise_threshold',
    'classwise_negative_hinge', 'classwise_lp_value', 'lp_metric_bound',
    'hinge_bound', 'classwise_hinge_bound', 'hinge_bound_from_counts',
    'ClasswiseThreshold', 'ClasswiseLP', 'HingeBound', 'surrogate',
    'SURROGATES'
]

_METRICS = ('fbeta', 'iou')


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
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


class ClasswiseThreshold(NamedTuple):
    """Per-class water-filling thresholds (:func:`classwise_threshold`).

    Attributes:
        eps (Tensor): (C,) ``eps_min`` per class, ``+inf`` where infeasible.
        feasible (Tensor): (C,) bool, ``n_pos > 0`` and ``total >= 1``.
        n_pos (Tensor): (C,) ``n_c = sum of the weights of class c's
            positives``.
        total (Tensor): (C,) ``T_c = sum_{S+_c} w_i f_i``.
    """
    eps: Tensor
    feasible: Tensor
    n_pos: Tensor
    total: Tensor


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
# the class-wise water-filling threshold: one segmented sort
# ---------------------------------------------------------------------------
def _class_then_score_desc_order(f: Tensor, y: Tensor) -> Tensor:
    """Permutation sorting by class ascending, then score descending.

    float32 scores: ONE stable sort of an int64 key ``class * 2^32 +
    (2^31 - 1 - b)``, with ``b`` the order-preserving integer image of the
    float's bits (about 2.5x faster on CPU than two argsorts). float64
    scores do not fit such a key: two stable argsorts.
    """
    if f.dtype == torch.float32:
        bits = f.contiguous().view(torch.int32).to(torch.int64)
        mono = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
        key = y.to(torch.int64) * (1 << 32) + ((1 << 31) - 1 - mono)
        return torch.argsort(key, stable=True)
    o1 = torch.argsort(f, descending=True, stable=True)
    o2 = torch.argsort(y.index_select(0, o1), stable=True)
    return o1.index_select(0, o2)


def classwise_threshold(pos_scores: Tensor,
                        pos_labels: Tensor,
                        num_classes: int,
                        pos_weight: Optional[Tensor] = None
                        ) -> ClasswiseThreshold:
    r"""Smallest ``eps_c`` with ``sum_{i: y_i = c} w_i min(eps_c, f_i) = 1``.

    Every positive pixel belongs to exactly one class, so all classes are
    solved by ONE segmented sort of the P positive scores (sort by score
    descending, then stable sort by label) and prefix sums. Within class c,
    with scores sorted :math:`f_{(1)} \ge f_{(2)} \ge \dots`, weighted prefix
    sums :math:`W_k, S_k` and total :math:`T_c`,
    :math:`h(f_{(k)}) = W_k f_{(k)} - S_k + T_c` does not increase with k;
    ``k*`` is the number of k with :math:`h(f_{(k)}) \ge 1` and

    .. math::

        \epsilon_c = \frac{1 - \sum_{i \in B_c} w_i f_i}{\sum_{i \in A_c} w_i},

    where :math:`A_c` are the k* largest scores (``tau_i = eps``) and
    :math:`B_c` the rest (``tau_i = f_i``: the positives whose dual
    ``lambda_i`` is non-zero). The selection of ``A_c`` is piecewise
    constant; the formula is evaluated with differentiable scatter sums, so
    ``d eps_c / d f_i = -w_i / W_{A_c}`` for ``i in B_c`` and 0 otherwise.

    Under DDP, all-gather the positives (scores differentiably, labels,
    weights) of every rank and call this on the concatenation: P values,
    not N x C. See :func:`classwise_fractional_lp` for the composition.

    Args:
        pos_scores (Tensor): (P,) score of each positive pixel for its own
            class, ``f_{i, y_i}``.
        pos_labels (Tensor): (P,) int class of each positive. Entries outside
            ``[0, num_classes)`` (e.g. ignore_index, padding) are ignored.
        num_classes (int): C.
        pos_weight (Tensor, optional): (P,) non-negative weights; 0 ignores
            the entry. Default 1.

    Returns:
        ClasswiseThreshold: ``eps`` (C,) (``+inf`` where infeasible or
        absent), ``feasible`` (C,) bool, ``n_pos`` (C,), ``total`` (C,).
        Computed in float32 (float64 if the scores are float64); sums are
        accumulated in float64.
    """
    C = int(num_classes)
    dev = pos_scores.device
    dt = _compute_dtype(pos_scores, pos_weight)
    acc = torch.float64
    f = pos_scores.reshape(-1).to(dt)
    y = pos_labels.reshape(-1).long()
    w = (torch.ones_like(f) if pos_weight is None
         else pos_weight.reshape(-1).to(dt))
    valid = (y >= 0) & (y < C) & (w > 0)
    y = torch.where(valid, y, torch.full_like(y, C))      # segment C: ignored
    zero = torch.zeros((), device=dev, dtype=dt)
    w = torch.where(valid, w, zero)
    f = torch.where(valid, f, zero)          # inf/nan at ignored entries: gone
    P = f.numel()

    # --- selection of the k* largest per class (no gradient needed) -------
    with torch.no_grad():
        fd = f.detach()
        perm = _class_then_score_desc_order(fd, y)
        fs = fd.index_select(0, perm).to(acc)
        ys = y.index_select(0, perm)
        ws = w.detach().index_select(0, perm).to(acc)
        counts = torch.zeros(C + 1, device=dev, dtype=torch.long
                             ).index_add_(0, ys, torch.ones_like(ys))
        starts = torch.cumsum(counts, 0) - counts          # (C+1,)
        z1 = torch.zeros(1, device=dev, dtype=acc)
        pre_w = torch.cat([z1, torch.cumsum(ws, 0)])
        pre_s = torch.cat([z1, torch.cumsum(ws * fs, 0)])
        seg0 = starts.index_select(0, ys)
        W = pre_w[1:] - pre_w.index_select(0, seg0)         # W_k in segment
        S = pre_s[1:] - pre_s.index_select(0, seg0)         # S_k in segment
        T_seg = torch.zeros(C + 1, device=dev, dtype=acc).index_add_(
            0, ys, ws * fs)
        cond = (W * fs - S + T_seg.index_select(0, ys) >= 1.0) & (ys < C)
        kstar = torch.zeros(C + 1, device=dev, dtype=torch.long).index_add_(
            0, ys, cond.long())
        rank = torch.arange(P, device=dev) - seg0
        above_sorted = rank < kstar.index_select(0, ys)
        above = torch.empty_like(above_sorted)
        above[perm] = above_sorted

    # --- differentiable closed form -----------------------------------------
    wf = (w * f).to(acc)
    zc = torch.zeros(C + 1, device=dev, dtype=acc)
    total = zc.index_add(0, y, wf)[:C]
    n_pos = zc.index_add(0, y, w.to(acc))[:C]
    w_above = zc.index_add(0, y, torch.where(above, w, zero).to(acc))[:C]
    s_below = zc.index_add(0, y, torch.where(above, zero.to(acc), wf))[:C]
    feasible = (n_pos > 0) & (total >= 1.0) & (kstar[:C] > 0)
    one = torch.ones((), device=dev, dtype=acc)
    eps = (1.0 - s_below) / torch.where(feasible, w_above, one)
    eps = torch.where(feasible, eps, torch.full_like(eps, math.inf))
    return ClasswiseThreshold(eps.to(dt), feasible, n_pos.to(dt),
                              total.to(dt))


# ---------------------------------------------------------------------------
# the class-wise negative part and value
# ---------------------------------------------------------------------------
def _pixel_weights(labels: Tensor, C: int, weight: Optional[Tensor],
                   dt: torch.dtype) -> Tuple[Tensor, Tensor]:
    """Valid-pixel weights (0 outside [0, C)) and labels clamped into range."""
    y = labels.long()
    valid = (y >= 0) & (y < C)
    w = valid.to(dt) if weight is None else \
        torch.where(valid, weight.reshape(y.shape).to(dt),
                    torch.zeros((), device=y.device, dtype=dt))
    return w, torch.where(valid, y, torch.zeros_like(y))


SURROGATES = ('hinge', 'square', 'logistic')


def surrogate(t: Tensor, kind: str = 'hinge') -> Tensor:
    r"""The upper bound ``phi(t)`` of the step ``[t > 0]`` (paper, Remark 3).

    ``'hinge'``: ``max(0, t)`` (the LP's); ``'square'``: ``max(0, t)^2``;
    ``'logistic'``: ``log(1 + e^t)``. All are non-decreasing, so the
    class-wise LP threshold stays the water-filling ``eps_min``; with a
    threshold ``>= 1`` each bounds the indicator of ``f >= 0`` from above.
    """
    if kind == 'hinge':
        return torch.relu(t)
    if kind == 'square':
        return torch.relu(t).square()
    if kind == 'logistic':
        return torch.nn.functional.softplus(t)
    raise ValueError(f'surrogate must be one of {SURROGATES}, got {kind!r}')


class _NegativeHinge(torch.autograd.Function):
    """``out_c = sum_j w_j phi(x_jc + e_c) [y_j != c]`` with a lean backward.

    Saves only its inputs and recomputes the mask in backward: one (N, C)
    temporary in forward and one in backward (plain autograd needs about
    four). ``x`` is (N, C) or (B, C, *); ``w``, ``y`` have ``x``'s shape
    without dim 1; ``y`` must be in [0, C). ``phi`` is :func:`surrogate`.
    """

    @staticmethod
    def forward(ctx, x: Tensor, e: Tensor, w: Tensor, y: Tensor,
                kind: str) -> Tensor:
        C = x.shape[1]
        t = x + _channel_view(e, C, x.dim())
        t.scatter_(1, y.unsqueeze(1), float('-inf'))  # not its own negative
        if kind == 'hinge':
            t.clamp_(min=0)
        elif kind == 'square':
            t.clamp_(min=0).square_()
        else:
            t = torch.nn.functional.softplus(t)
        if x.dim() == 2:
            out = w @ t
        else:
            # flatten (not reshape(B, -1)): also valid for an empty batch
            out = torch.einsum('bs,bcs->c', w.flatten(1), t.flatten(2))
        ctx.kind = kind
        ctx.save_for_backward(x, e, w, y)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        x, e, w, y = ctx.saved_tensors
        C = x.shape[1]
        need_x, need_e = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_e):
            return None, None, None, None, None
        t = x + _channel_view(e, C, x.dim())
        if ctx.kind == 'hinge':
            t.gt_(0)                                    # phi' = [t > 0]
        elif ctx.kind == 'square':
            t.clamp_(min=0).mul_(2.0)                   # phi' = 2 max(0, t)
        else:
            t.sigmoid_()                                # phi' = sigmoid(t)
        t.scatter_(1, y.unsqueeze(1), 0.0)
        t.mul_(w.unsqueeze(1))                          # w_j phi'
        ge = None
        if need_e:
            ge = t.sum(dim=[d for d in range(t.dim()) if d != 1]) * g
        gx = t.mul_(_channel_view(g, C, x.dim())) if need_x else None
        return gx, ge, None, None, None


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
                             weight: Optional[Tensor] = None,
                             surrogate: str = 'hinge') -> Tensor:
    r"""``sum_{j: y_j != c} w_j max(0, eps_c + f_{jc})`` for every class c.

    Elementwise over the (N, C) scores, no sort: this is the part that is
    all-reduced (summed) over ranks under DDP. Differentiable in ``scores``
    and ``eps`` (first order; a custom autograd function keeps the memory
    at one (N, C) temporary per pass).

    Args:
        scores (Tensor): (N, C), or (B, C, d1, ...) with classes on dim 1.
            Must be finite at pixels of weight 0 (``0 * inf`` is NaN).
        labels (Tensor): (N,) or (B, d1, ...); labels outside [0, C) are
            ignored pixels.
        eps (Tensor): (C,) thresholds; classes whose ``eps`` is not finite
            (infeasible) get 0.
        weight (Tensor, optional): pixel weights, shape of ``labels``.
        surrogate (str): ``phi`` in place of ``max(0, .)``: ``'hinge'``
            (default), ``'square'`` or ``'logistic'`` (:func:`surrogate`).

    Returns:
        Tensor: (C,), float32 (float64 for float64 scores).
    """
    if surrogate not in SURROGATES:
        raise ValueError(f'surrogate must be one of {SURROGATES}, got '
                         f'{surrogate!r}')
    C = scores.shape[1]
    dt = _compute_dtype(scores, eps)
    w, y = _pixel_weights(labels, C, weight, dt)
    ok = torch.isfinite(eps)
    e = torch.where(ok, eps.to(dt), torch.zeros((), device=eps.device,
                                                 dtype=dt))
    # the (N, C) contraction must not run in bf16/fp16 under autocast
    with torch.autocast(device_type=scores.device.type, enabled=False):
        out = _NegativeHinge.apply(scores.to(dt), e, w.reshape(y.shape), y,
                                   surrogate)
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


# ---------------------------------------------------------------------------
# one binary problem
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# the direct hinge bound (defined also when the LP is infeasible)
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
