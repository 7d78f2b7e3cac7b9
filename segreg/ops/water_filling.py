r"""The class-wise water-filling threshold by Newton's method: no sort, O(C) sync.

The exact LP of every class needs (docs/regularizer_derivation.md, sections
2-5)

.. math::

    \epsilon_c = \min\{\epsilon :\ g_c(\epsilon) = 1\},\qquad
    g_c(\epsilon) = \sum_{i: y_i = c} w_i \min(\epsilon, f_i),

where ``g_c`` is concave, increasing and piecewise linear, with slope
:math:`W_c(\epsilon) = \sum_{f_i > \epsilon} w_i` and
:math:`g_c(\infty) = T_c = \sum w_i f_i` (feasible iff :math:`T_c \ge 1`).
:func:`segreg.ops.classwise_threshold` finds it with one segmented sort of
the positives; under DDP that needs every rank's positives. Here Newton's
method does it with per-class sums only. From :math:`\epsilon`, with the
active set :math:`A = \{i: f_i \ge \epsilon\}`,

.. math::

    \epsilon' = \epsilon + \frac{1 - g_c(\epsilon)}{W_c(\epsilon)}
              = \frac{1 - \sum_{i \notin A} w_i f_i}{\sum_{i \in A} w_i},

the closed form of :func:`classwise_threshold` evaluated at the current
active set. Start: :math:`\epsilon_1 = 1 / n_c` (the step from
:math:`-\infty`, where every positive is active). Because ``g`` is concave,
its tangent lies above it, so every iterate stays left of the root
(:math:`g(\epsilon_k) \le 1`) and the sequence increases; each step that
does not stop removes at least one positive from ``A``, so it ends, in
finitely many steps, when ``A`` no longer changes, and the last iterate is
the root itself (not an approximation: the same closed form on the same
set as the sort). Measured on 73 728 positives of 12 classes: 4-7
iterations (tests/test_ops/test_water_filling.py records the counts).

Every iteration needs two per-class sums, :math:`W_A` and
:math:`S_B = \sum_{\notin A} w f` (the next iterate is a function of them,
so the loop stops when they repeat bitwise: the same set, summed in the
same order), split by the mask in one laned scatter each
(:func:`segreg.ops.class_sums.split_class_sums`). ``all_reduce`` sums them
over ranks, so the threshold of the *global* batch costs one all-reduce of
a (2, 2, C + 1) tensor per iteration: O(C x iterations) bytes, whatever the
number of pixels or ranks.

After the first step the root is bracketed below :math:`U = 2
\epsilon_2`: with :math:`K` the positives of :math:`A_1` that score below
:math:`U`, :math:`g(U) = S_B(\epsilon_1) + \sum_K w f + U (W_A(\epsilon_1)
- \sum_K w)`. Where :math:`g(U) > 1` for every feasible class the root
lies in :math:`[\epsilon_2, U)` and every later step can only move
positives of :math:`K`, so those steps run on :math:`K` alone (compacted
once; on the benchmark batch of docs/loss_cost.md about 4 % of the
positives) and add their sums to those of :math:`B_1`. Where the bracket
fails they run on every positive.

The final closed form is evaluated differentiably
(``d eps_c / d f_i = -w_i / W_A`` for ``i`` outside ``A``, 0 inside),
with the sum over ranks supplied by ``all_reduce_grad`` (a differentiable
all-reduce).

Why by hand: no library offers a segmented, distributed water-filling
threshold; the loop is a handful of per-class sums.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from .class_sums import (ClassIndex, class_index, class_sum,
                         split_class_sums)

__all__ = ['NewtonThreshold', 'newton_threshold']

Reduce = Callable[[Tensor], Tensor]


class NewtonThreshold(NamedTuple):
    """The water-filling threshold of every class (:func:`newton_threshold`).

    Attributes:
        eps (Tensor): (C,) ``eps_c``; ``+inf`` where infeasible or absent.
        feasible (Tensor): (C,) bool, ``n_c > 0`` and ``T_c >= 1``.
        n_pos (Tensor): (C,) ``n_c = sum w_i`` (no gradient).
        total (Tensor): (C,) ``T_c = sum w_i f_i`` (no gradient).
        iterations (int): Newton steps taken (active-set evaluations).
    """
    eps: Tensor
    feasible: Tensor
    n_pos: Tensor
    total: Tensor
    iterations: int


def _identity(x: Tensor) -> Tensor:
    return x


def _class_sums(index: ClassIndex, *weights: Tensor) -> Tensor:
    """(len(weights), bins) per-class sums (laned 1-D sums,
    segreg.ops.class_sums: a (P, 3) scatter is ~5x slower on CPU, and
    bincount reads the labels twice more for their range)."""
    return torch.stack([class_sum(wt, index) for wt in weights])


def _below(f: Tensor, w: Tensor, wf: Tensor, index: ClassIndex,
           eps: Tensor, reduce: Reduce) -> Tuple[Tensor, Tensor]:
    """The mask of ``f < eps_{y}`` and the (global) sums of ``w`` and
    ``w f`` outside / inside it: ``(b, sums)``, ``sums`` (2, 2, bins)."""
    # a full-length pass, no compaction of B (boolean indexing costs more
    # than it saves on CPU); float32 scores against float64 thresholds
    # rounded up: the same mask in half the bytes
    b = f < _cast_up(eps, f.dtype).index_select(0, index.labels)
    return b, reduce(split_class_sums((w, wf), index, b))


def _same(cur: Tensor, prev: Tensor, feasible: Tensor) -> bool:
    """Equal sums in every feasible class (no boolean indexing: an
    ``or`` with the mask costs one small op instead of a ``nonzero``)."""
    return bool(((cur == prev) | ~feasible).all())


def _step(sums: Tensor, w_above: Tensor, feasible: Tensor) -> Tensor:
    """The next iterate ``(1 - S_B) / W_A`` (``inf`` where infeasible)."""
    return torch.where(feasible, (1.0 - sums[1]) / w_above.clamp(min=1e-300),
                       torch.full_like(w_above, math.inf))


class _ClosedForm(torch.autograd.Function):
    """``eps`` (its value computed) with the gradient of the closed form
    ``eps_c = (1 - S_B) / W_A``: ``d eps_c / d f_i = -w_i / W_A`` for ``i``
    in ``B`` (below the threshold), 0 in ``A``.

    By hand: the value needs no pass over the positives (the loop has the
    sums), and the backward is one gather and two products; through
    autograd the same gradient took a masked sum of ``w f`` in the forward
    and three passes back. The incoming gradient is summed over ranks with
    ``reduce_grad`` (every rank's loss depends on the global threshold).
    """

    @staticmethod
    def forward(ctx, f: Tensor, eps: Tensor, w: Tensor, b: Tensor,
                index: ClassIndex, w_above: Tensor, feasible: Tensor,
                reduce_grad: Reduce) -> Tensor:
        ctx.save_for_backward(w, b, w_above, feasible)
        ctx.index, ctx.reduce_grad = index, reduce_grad
        return eps.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        w, b, w_above, feasible = ctx.saved_tensors
        g = ctx.reduce_grad(g)
        coef = torch.where(feasible, -g / w_above.clamp(min=1e-300),
                           torch.zeros_like(g)).to(w.dtype)
        grad = torch.where(b, coef.index_select(0, ctx.index.labels) * w,
                           torch.zeros((), dtype=w.dtype, device=w.device))
        return grad, None, None, None, None, None, None, None


class _Candidates(NamedTuple):
    """The positives of ``A_1`` with scores below ``U`` (compacted)."""
    entries: Tensor   # (K,) their positions
    f: Tensor
    w: Tensor
    wf: Tensor
    index: ClassIndex
    sums: Tensor      # (2, bins) (W_B, S_B) of B_1
    w_above: Tensor   # (bins,) W_A of A_1


def _bracket(f: Tensor, w: Tensor, wf: Tensor, index: ClassIndex,
             b: Tensor, eps: Tensor, upper: Tensor, sums: Tensor,
             w_above: Tensor, feasible: Tensor,
             reduce: Reduce) -> Optional[_Candidates]:
    """The candidates of the steps after the first, or None.

    From ``eps <= root`` (``eps`` = eps_2) the iterates stay in ``[eps,
    root]``, so only positives of ``A_1`` (outside the mask ``b`` of
    ``B_1``) with ``f < root`` can still join ``B``. ``upper`` bounds the
    root of class ``c`` iff ``g_c(U) >= 1``, and with ``K = A_1 and [f <
    U]``: ``g(U) = S_B1 + sum_K w f + U (W_A1 - sum_K w)``. None (every
    positive in every step) unless ``g(U) > 1`` for every feasible class
    (strictly: the root then lies below ``U``, with room for rounding).
    """
    # (entries of weight 0 change no sum: left out, so that checked and
    # unchecked inputs give the same candidates, summed in the same order)
    k = (~b & (w > 0) &
         (f < _cast_up(upper, f.dtype).index_select(0, index.labels))
         ).nonzero().squeeze(1)
    kf, kw, kwf = (t.index_select(0, k) for t in (f, w, wf))
    kindex = class_index(index.labels.index_select(0, k), index.bins)
    w_k, s_k = reduce(_class_sums(kindex, kw, kwf)).unbind()
    g_upper = sums[1] + s_k + upper * (w_above - w_k)
    if not bool(((g_upper > 1.0) | ~feasible).all()):
        return None
    return _Candidates(k, kf, kw, kwf, kindex, sums, w_above)


def _cast_up(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` in ``dtype``, rounded up: for any ``x`` of ``dtype``, ``x < t``
    iff ``x < _cast_up(t)`` (no value of ``dtype`` lies between ``t`` and
    its upward rounding), so the comparison of float32 scores with float64
    thresholds runs in float32, reading half the bytes."""
    if t.dtype == dtype:
        return t
    r = t.to(dtype)
    up = torch.nextafter(r, torch.full_like(r, math.inf))
    return torch.where(r.to(t.dtype) < t, up, r)


def newton_threshold(pos_scores: Tensor,
                     pos_labels: Union[Tensor, ClassIndex],
                     num_classes: int, pos_weight: Optional[Tensor] = None,
                     all_reduce: Optional[Reduce] = None,
                     all_reduce_grad: Optional[Reduce] = None,
                     max_iter: int = 200,
                     checked: bool = False,
                     totals: Optional[Tuple[Tensor, Tensor]] = None
                     ) -> NewtonThreshold:
    r"""Smallest ``eps_c`` with ``sum_{y_i = c} w_i min(eps_c, f_i) = 1``.

    The same threshold (value and gradient) as
    :func:`segreg.ops.classwise_threshold`, found by Newton's method on
    per-class sums (module docstring) instead of a sort, so that under DDP
    only (2, 2, C + 1) sums travel per step.

    Args:
        pos_scores (Tensor): (P,) each positive's score of its own class,
            ``f_{i, y_i}`` (differentiable).
        pos_labels (Tensor | ClassIndex): (P,) classes; entries outside
            ``[0, num_classes)`` are ignored. With ``checked``, also the
            caller's :class:`segreg.ops.ClassIndex` of them (no index to
            build).
        num_classes (int): C.
        pos_weight (Tensor, optional): (P,) non-negative weights (0: left
            out). Default 1.
        all_reduce (callable, optional): Sums a tensor over ranks (no
            gradient), e.g. ``torch.distributed.all_reduce`` in place;
            None: one process.
        all_reduce_grad (callable, optional): The same, differentiable
            (``segreg.utils.dist.all_reduce_sum``); defaults to
            ``all_reduce``'s absence (identity).
        max_iter (int): Guard on the iterations; the loop ends by itself
            (module docstring) and a run that reaches the guard raises.
        checked (bool): The caller guarantees finite scores, labels in
            ``[0, num_classes)`` and a non-negative ``pos_weight`` (0 for
            the entries left out), as :func:`segreg.ops.log_odds_scores`
            returns them; then nothing is tested or remapped (the entries
            of weight 0 add 0 to every sum).
        totals (tuple[Tensor, Tensor], optional): ``(n_c, T_c)``, (C,)
            each, ``sum w_i`` and ``sum w_i f_i`` of the *global* batch
            (already summed over ranks), when the caller has them (the
            exact LP loss does): two class sums and an all-reduce fewer.
            No gradient flows through them.

    Returns:
        NewtonThreshold: float32 (float64 for float64 scores); the sums are
        accumulated in float64.

    Raises:
        RuntimeError: The active sets did not settle within ``max_iter``
            (not observed; it would mean non-finite scores).
    """
    C = int(num_classes)
    reduce = all_reduce or _identity
    reduce_grad = all_reduce_grad or _identity
    dt = torch.float64 if pos_scores.dtype == torch.float64 else \
        torch.float32
    acc = torch.float64
    f = pos_scores.reshape(-1).to(dt)
    w = torch.ones_like(f) if pos_weight is None else \
        pos_weight.reshape(-1).to(dt)
    if checked:
        # a 0 weight already removes an entry from every sum (every sum
        # below is weighted): the labels are used as they are
        index = pos_labels if isinstance(pos_labels, ClassIndex) else \
            class_index(pos_labels, C)
    else:
        y = pos_labels.reshape(-1).long()
        valid = (y >= 0) & (y < C) & (w > 0)
        y = torch.where(valid, y, C)  # bin C: the entries left out
        zero = torch.zeros((), dtype=dt, device=f.device)
        w = torch.where(valid, w, zero)
        f = torch.where(valid, f, zero)
        index = class_index(y, C + 1)

    with torch.no_grad():
        # f stays in its dtype: the product with float64 weights promotes
        # element-wise (no converted copy of the scores)
        fd = f.detach()
        wd = w.detach().to(acc)

        wf = wd * fd
        if totals is None:
            n_pos, total = reduce(_class_sums(index, wd, wf)).unbind()
        else:  # bin C (the ignored entries) holds nothing
            n_pos, total = torch.nn.functional.pad(
                torch.stack(totals).detach().to(acc),
                (0, index.bins - C)).unbind()
        feasible = (n_pos > 0) & (total >= 1.0)
        feasible[C:] = False
        inf = torch.full_like(n_pos, math.inf)
        # the step from -inf (every positive active): eps_1 = 1 / n
        eps = torch.where(feasible, 1.0 / n_pos.clamp(min=1e-300), inf)
        # each step sums w and w f over the positives below eps_k, B_k
        # (the complement of A), and above it: W_A and 1 - S_B need no T,
        # and B_1 is empty at the root eps_1 = 1 / n, so the first step is
        # also the check for it
        prev = torch.zeros(2, index.bins, dtype=acc, device=f.device)
        b, both = _below(fd, wd, wf, index, eps, reduce)
        sums, w_above = both[:, 1], both[0, 0]  # (W_B, S_B), W_A
        it = 1
        if not _same(sums, prev, feasible):
            eps = _step(sums, w_above, feasible)
            # the bracket [eps_2, U], U = 2 eps_2: every later step moves
            # only positives of A_1 with scores below the root; where
            # g(U) > 1 for every class the root is below U, and those
            # steps run on the few candidates A_1 and [f < U] (compacted
            # once) instead of every positive
            cand = _bracket(fd, wd, wf, index, b, eps, 2.0 * eps, sums,
                            w_above, feasible, reduce)
            prev = torch.zeros_like(prev) if cand is not None else sums
            while True:
                it += 1
                if it > max_iter:
                    raise RuntimeError(
                        f'newton_threshold: the active sets did not settle '
                        f'in {max_iter} iterations (non-finite scores?)')
                if cand is None:  # every positive, every step
                    b, both = _below(fd, wd, wf, index, eps, reduce)
                    cur, w_above = both[:, 1], both[0, 0]
                    sums = cur
                else:  # the candidates' part of B_k, added to B_1's
                    kb, kboth = _below(cand.f, cand.w, cand.wf, cand.index,
                                       eps, reduce)
                    cur = kboth[:, 1]
                    sums = cand.sums + cur
                    w_above = cand.w_above - cur[0]
                # the next iterate is a function of these sums: equal sums
                # (bitwise: the same set summed in the same order) give
                # eps_{k+1} = eps_k, the root
                if _same(cur, prev, feasible):
                    break
                eps = _step(sums, w_above, feasible)
                prev = cur
            if cand is not None:  # B = B_1 and the candidates below
                b = b.index_copy(0, cand.entries, kb)
    if it == 1:
        # no positive of a feasible class below eps_1 = 1 / n (g(eps_1) =
        # eps_1 n = 1): eps = 1 / n, whose gradient in f is 0; no closed
        # form to evaluate (the benchmark batch of docs/loss_cost.md with
        # a weak logit signal)
        eps = eps[:C].to(dt)
        if f.requires_grad:  # in the graph, with its zero gradient
            eps = eps + f.narrow(0, 0, min(1, f.numel())).sum() * 0.0
        return NewtonThreshold(eps, feasible[:C], n_pos[:C].to(dt),
                               total[:C].to(dt), 1)

    # eps is already the closed form at the final active set, (1 - S_B) /
    # W_A from the loop's float64 sums (global already): the loop stopped
    # because the step from these sums repeats it. Differentiable in f:
    if f.requires_grad:
        eps = _ClosedForm.apply(f, eps, w, b, index, w_above, feasible,
                                reduce_grad)
    eps = eps[:C]
    return NewtonThreshold(eps.to(dt), feasible[:C], n_pos[:C].to(dt),
                           total[:C].to(dt), it)
