r"""The class-wise water-filling threshold by Newton's method: no sort, O(C) sync.

The exact LP of every class needs (docs/regularizer_derivation.md, sections
2-5)

.. math::

    \epsilon_c = \min\{\epsilon :\ g_c(\epsilon) = 1\},\qquad
    g_c(\epsilon) = \sum_{i: y_i = c} w_i \min(\epsilon, f_i),

where ``g_c`` is concave, increasing and piecewise linear, with slope
:math:`W_c(\epsilon) = \sum_{f_i \ge \epsilon} w_i` and
:math:`g_c(\infty) = T_c = \sum w_i f_i` (feasible iff :math:`T_c \ge 1`).
:func:`segreg.ops.classwise_threshold` (the reference) finds it with one
segmented sort of the positives; under DDP that needs every rank's
positives. Newton's method needs per-class sums only. From
:math:`\epsilon`, with the active set :math:`A = \{i: f_i \ge \epsilon\}`
and :math:`B` its complement,

.. math::

    \epsilon' = \frac{1 - \sum_{i \in B} w_i f_i}{\sum_{i \in A} w_i},

the closed form of the sort at the current set. Start: :math:`\epsilon_1 =
1 / n_c` (every positive active). ``g`` is concave, so its tangent lies above
it: every iterate stays left of the root and the sequence increases; each
step that does not stop removes at least one positive from ``A``. The loop
ends when the sums repeat (the same set), and the last iterate is the root
itself: the same closed form on the same set as the sort. Each step
all-reduces two (C,) sums, so the threshold of the *global* batch costs
O(C x steps) bytes, whatever the number of pixels or ranks.

The closed form at the final set is evaluated with autograd
(``d eps_c / d f_i = -w_i / W_A`` for ``i`` in ``B``, 0 in ``A``), its sum
over ranks by a differentiable all-reduce.

Why by hand: no library offers a segmented, distributed water-filling
threshold; the loop is a handful of per-class sums.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor

from .hinge_sums import class_gather, class_sum

__all__ = ['ClasswiseThreshold', 'classwise_threshold', 'NewtonThreshold',
           'newton_threshold']

Reduce = Callable[[Tensor], Tensor]


class NewtonThreshold(NamedTuple):
    """The water-filling threshold of every class (:func:`newton_threshold`).

    Attributes:
        eps (Tensor): (C,) ``eps_c``; ``+inf`` where infeasible or absent.
        feasible (Tensor): (C,) bool, ``n_c > 0`` and ``T_c >= 1``.
        n_pos (Tensor): (C,) ``n_c = sum w_i`` (no gradient).
        total (Tensor): (C,) ``T_c = sum w_i f_i`` (no gradient).
        iterations (int): Active-set evaluations.
    """
    eps: Tensor
    feasible: Tensor
    n_pos: Tensor
    total: Tensor
    iterations: int


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


def _class_then_score_desc_order(f: Tensor, y: Tensor) -> Tensor:
    """Permutation sorting by class ascending, then score descending (two
    stable argsorts)."""
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
    dt = torch.float64 if torch.float64 in (
        pos_scores.dtype, getattr(pos_weight, 'dtype', None)) else torch.float32
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


def _identity(x: Tensor) -> Tensor:
    return x


def newton_threshold(pos_scores: Tensor,
                     pos_labels: Tensor,
                     num_classes: int,
                     pos_weight: Optional[Tensor] = None,
                     all_reduce: Optional[Reduce] = None,
                     all_reduce_grad: Optional[Reduce] = None,
                     max_iter: int = 200) -> NewtonThreshold:
    r"""Smallest ``eps_c`` with ``sum_{y_i = c} w_i min(eps_c, f_i) = 1``.

    The same threshold (value and gradient) as
    :func:`segreg.ops.classwise_threshold`, by Newton's method on per-class
    sums (module docstring).

    Args:
        pos_scores (Tensor): (P,) or any shape: each positive's score of its
            own class, ``f_{i, y_i}`` (differentiable).
        pos_labels (Tensor): Classes, shape of ``pos_scores``; entries
            outside ``[0, num_classes)`` are left out.
        num_classes (int): C.
        pos_weight (Tensor, optional): Non-negative weights (0: left out).
        all_reduce (callable, optional): Sums a tensor over ranks (no
            gradient), e.g. :func:`segreg.utils.dist.all_reduce_sum_`.
        all_reduce_grad (callable, optional): The same, differentiable
            (:func:`segreg.utils.dist.all_reduce_sum`).
        max_iter (int): Guard; the loop ends by itself, a run that reaches
            the guard raises (non-finite scores).

    Returns:
        NewtonThreshold: in the scores' dtype (float32 for half); the sums
        are accumulated in float64.
    """
    C = int(num_classes)
    reduce = all_reduce or _identity
    reduce_grad = all_reduce_grad or _identity
    dt = torch.float64 if pos_scores.dtype == torch.float64 else \
        torch.float32
    f = pos_scores.reshape(-1).to(dt)
    y = pos_labels.reshape(-1).long()
    w = torch.ones_like(f) if pos_weight is None else \
        pos_weight.reshape(-1).to(dt)
    keep = (y >= 0) & (y < C) & (w > 0)
    y = torch.where(keep, y, C)
    f = torch.where(keep, f, 0.0)
    w = torch.where(keep, w, 0.0).detach().double()

    def below_sums(below: Tensor) -> Tensor:
        """(2, C): the global W_A and S_B of the set ``f < eps``."""
        return reduce(torch.stack([class_sum(w * ~below, y, C),
                                   class_sum(w * fd * below, y, C)]))

    with torch.no_grad():
        fd = f.detach().double()
        n_pos, total = reduce(torch.stack([class_sum(w, y, C),
                                           class_sum(w * fd, y, C)]))
        feasible = (n_pos > 0) & (total >= 1.0)
        inf = torch.full_like(n_pos, math.inf)
        eps = torch.where(feasible, 1.0 / n_pos.clamp(min=1e-300), inf)
        prev = None
        for it in range(1, max_iter + 1):
            below = fd < class_gather(eps, y)
            sums = below_sums(below)
            if prev is not None and bool(((sums == prev) | ~feasible).all()):
                break  # the same set: eps is the root
            eps = torch.where(feasible, (1.0 - sums[1]) /
                              sums[0].clamp(min=1e-300), inf)
            prev = sums
        else:
            raise RuntimeError(f'newton_threshold: the active sets did not '
                               f'settle in {max_iter} iterations '
                               '(non-finite scores?)')
    if f.requires_grad:  # the closed form at the final set, differentiable
        s_below = reduce_grad(class_sum(w * f.double() * below, y, C))
        eps = torch.where(feasible, (1.0 - s_below) /
                          sums[0].clamp(min=1e-300), inf)
    return NewtonThreshold(eps.to(dt), feasible, n_pos.to(dt),
                           total.to(dt), it)
