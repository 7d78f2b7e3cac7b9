r"""Rate-constraint forms of the paper's appendix: P@R, R@P and ROC-AUC.

Precision at a fixed recall and recall at a fixed precision are not
linear-fractional after fixing the rate, so they need no Charnes-Cooper
transform: with the hinge bounds of Eban et al. (2017) at a threshold ``b``,

.. math::

    tp_l(b) = \sum_{S^+} w_i \min(1, f_i - b) \le tp, \qquad
    fp_u(b) = \sum_{S^-} w_j \max(0, 1 + f_j - b) \ge fp,

they are constrained problems whose Lagrangian (one dual ``lambda >= 0``
per constraint) is minimised over the network and ``b`` and maximised over
``lambda`` by projected dual ascent
``lambda <- max(0, lambda + lr * slack)`` (the hook's job). Each function
returns the Lagrangian ``value`` and the constraint ``slack`` (``> 0``:
violated; ``d value / d dual = slack``). All quantities are normalised by
the positive weight ``n`` (ROC: also by the negative weight ``m``), so step
sizes do not depend on the batch size.

ROC-AUC is approximated by K anchors ``t_k`` on the false-positive-rate
axis (Eban et al. 2017, Sec. 5): ``AUC ~ (1/K) sum_k TPR@(FPR <= t_k)``,
each anchor a rate-constrained problem with its own threshold ``b_k`` and
dual ``lambda_k``. (The paper's appendix phrases the anchors through R@P
problems; on the ROC axes the anchored quantity is TPR at a fixed FPR.)

Derivation: docs/regularizer_derivation.md, section 10.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    'hinge_rates', 'precision_at_recall', 'recall_at_precision',
    'roc_auc_lagrangian', 'precision_at_recall_threshold', 'HingeRates',
    'RateLagrangian', 'targeted_hinge_rates', 'precision_at_recall_from_rates',
    'recall_at_precision_from_rates', 'roc_auc_from_rates'
]

Number = Union[float, Tensor]


class HingeRates(NamedTuple):
    """Hinge bounds at threshold(s) ``b`` (shape of ``threshold``).

    Attributes:
        tp_l (Tensor): ``sum_{S+} w min(1, f - b)`` (<= true positives).
        fp_u (Tensor): ``sum_{S-} w max(0, 1 + f - b)`` (>= false positives).
        n_pos (Tensor): 0-d positive weight ``n``.
        n_neg (Tensor): 0-d negative weight ``m``.
    """
    tp_l: Tensor
    fp_u: Tensor
    n_pos: Tensor
    n_neg: Tensor


class RateLagrangian(NamedTuple):
    """A rate-constrained problem's Lagrangian.

    Attributes:
        value (Tensor): ``objective + dual * slack`` (summed/averaged over
            anchors as documented); minimise over scores and thresholds.
        slack (Tensor): constraint value, ``<= 0`` when satisfied; the dual
            ascent step is ``dual <- max(0, dual + lr * slack)``.
        objective (Tensor): the objective term alone (for logging).
    """
    value: Tensor
    slack: Tensor
    objective: Tensor


def _dtype(*xs) -> torch.dtype:
    for x in xs:
        if isinstance(x, Tensor) and x.dtype == torch.float64:
            return torch.float64
    return torch.float32


def _as(x: Optional[Number], like: Tensor) -> Optional[Tensor]:
    if x is None:
        return None
    if isinstance(x, Tensor):
        return x.to(device=like.device, dtype=like.dtype)
    return torch.as_tensor(x, device=like.device, dtype=like.dtype)


def _safe_div(a: Tensor, n: Tensor) -> Tensor:
    """a / n, and 0 where n == 0 (no positives / negatives: no constraint)."""
    ok = n > 0
    return torch.where(ok, a / torch.where(ok, n, torch.ones_like(n)),
                       torch.zeros_like(a))


def hinge_rates(pos_scores: Tensor,
                neg_scores: Tensor,
                threshold: Number = 0.0,
                pos_weight: Optional[Tensor] = None,
                neg_weight: Optional[Tensor] = None) -> HingeRates:
    """Hinge bounds ``tp_l(b)``, ``fp_u(b)`` (Eban et al. 2017, eq. 3-4).

    Args:
        pos_scores (Tensor): (P,) scores of the positives.
        neg_scores (Tensor): (Q,) scores of the negatives.
        threshold (float | Tensor): ``b``, any shape T (e.g. (K,) anchors).
        pos_weight, neg_weight (Tensor, optional): (P,), (Q,) weights.

    Returns:
        HingeRates: ``tp_l``, ``fp_u`` of shape T; ``n_pos``, ``n_neg`` 0-d.
        float32 (float64 if any input is float64).
    """
    dt = _dtype(pos_scores, neg_scores, threshold, pos_weight, neg_weight)
    fp = pos_scores.reshape(-1).to(dt)
    fn = neg_scores.reshape(-1).to(dt)
    b = _as(threshold, fp)
    wp = torch.ones_like(fp) if pos_weight is None else \
        pos_weight.reshape(-1).to(dt)
    wn = torch.ones_like(fn) if neg_weight is None else \
        neg_weight.reshape(-1).to(dt)
    bb = b.reshape(-1, 1)
    tp = ((fp - bb).clamp(max=1.0) * wp).sum(-1).reshape(b.shape)
    fpu = (torch.relu(1.0 + fn - bb) * wn).sum(-1).reshape(b.shape)
    return HingeRates(tp, fpu, wp.sum(), wn.sum())


def precision_at_recall(pos_scores: Tensor,
                        neg_scores: Tensor,
                        recall: float,
                        dual: Number,
                        threshold: Number = 0.0,
                        pos_weight: Optional[Tensor] = None,
                        neg_weight: Optional[Tensor] = None
                        ) -> RateLagrangian:
    r"""Lagrangian of precision at fixed recall ``r`` (P@R).

    At recall ``r`` precision is ``r n / (r n + fp)``, so maximising it is
    ``min fp_u(b)  s.t.  tp_l(b) >= r n``:

    .. math::

        \mathcal{L} = \frac{fp_u(b)}{n}
            + \lambda\Big(r - \frac{tp_l(b)}{n}\Big)

    Args:
        recall (float): target recall ``r`` in [0, 1].
        dual (float | Tensor): ``lambda >= 0``.
        threshold (float | Tensor): ``b`` (learnable in the caller).
        Others as in :func:`hinge_rates`.

    Returns:
        RateLagrangian: 0-d ``value``, ``slack = r - tp_l/n``,
        ``objective = fp_u/n``. With no positives all three are 0 (no
        recall to constrain, no precision to maximise).
    """
    h = hinge_rates(pos_scores, neg_scores, threshold, pos_weight,
                    neg_weight)
    return precision_at_recall_from_rates(h, recall, dual)


def recall_at_precision(pos_scores: Tensor,
                        neg_scores: Tensor,
                        precision: float,
                        dual: Number,
                        threshold: Number = 0.0,
                        pos_weight: Optional[Tensor] = None,
                        neg_weight: Optional[Tensor] = None
                        ) -> RateLagrangian:
    r"""Lagrangian of recall at fixed precision ``p`` (R@P).

    ``max tp_l(b)  s.t.  tp_l / (tp_l + fp_u) >= p``, i.e. the linear
    constraint ``p fp_u - (1 - p) tp_l <= 0``:

    .. math::

        \mathcal{L} = -\frac{tp_l(b)}{n}
            + \lambda\,\frac{p\,fp_u(b) - (1 - p)\,tp_l(b)}{n}

    Args:
        precision (float): target precision ``p`` in [0, 1].
        Others as in :func:`precision_at_recall`.

    Returns:
        RateLagrangian: 0-d ``value``, ``slack = (p fp_u - (1-p) tp_l)/n``,
        ``objective = -tp_l/n`` (minus the recall lower bound). 0 with no
        positives.
    """
    h = hinge_rates(pos_scores, neg_scores, threshold, pos_weight,
                    neg_weight)
    return recall_at_precision_from_rates(h, precision, dual)


def roc_auc_lagrangian(pos_scores: Tensor,
                       neg_scores: Tensor,
                       fpr_anchors: Tensor,
                       duals: Tensor,
                       thresholds: Tensor,
                       pos_weight: Optional[Tensor] = None,
                       neg_weight: Optional[Tensor] = None
                       ) -> RateLagrangian:
    r"""ROC-AUC lower bound by a grid of K false-positive-rate anchors.

    .. math::

        \mathcal{L} = \frac{1}{K}\sum_k \Big[-\frac{tp_l(b_k)}{n}
            + \lambda_k\Big(\frac{fp_u(b_k)}{m} - t_k\Big)\Big]

    ``-objective.mean()`` is the Riemann sum ``(1/K) sum_k TPR_l(b_k)`` of
    the ROC curve at anchors ``t_k`` (e.g. ``(k + 0.5) / K``), a lower
    bound on the AUC when every constraint holds.

    Args:
        fpr_anchors (Tensor): (K,) FPR anchors ``t_k`` in [0, 1].
        duals (Tensor): (K,) ``lambda_k >= 0``.
        thresholds (Tensor): (K,) ``b_k`` (learnable in the caller).
        Others as in :func:`hinge_rates`.

    Returns:
        RateLagrangian: 0-d ``value`` (mean over anchors), ``slack`` (K,)
        ``fp_u(b_k)/m - t_k``, ``objective`` (K,) ``-tp_l(b_k)/n``. Terms
        with no positives (objective) or no negatives (slack) are 0.
    """
    h = hinge_rates(pos_scores, neg_scores, thresholds.reshape(-1),
                    pos_weight, neg_weight)
    return roc_auc_from_rates(h, fpr_anchors, duals)


def precision_at_recall_threshold(pos_scores: Tensor,
                                  neg_scores: Tensor,
                                  recall: float,
                                  pos_weight: Optional[Tensor] = None,
                                  neg_weight: Optional[Tensor] = None
                                  ) -> Tuple[Tensor, Tensor]:
    r"""Exact per-batch optimum of the P@R hinge LP over the threshold.

    For fixed scores, ``min_b fp_u(b) s.t. tp_l(b) >= r n`` (an LP in
    ``b``, ``tau``, ``phi``). ``fp_u`` does not increase with ``b`` and
    ``tp_l`` decreases, so ``b*`` is the largest ``b`` with
    ``sum_{S+} w_i max(0, b - u_i) = (1 - r) n``, ``u_i = f_i - 1``: one
    sort, the same water-filling as the F-beta LP's ``eps_min``. With
    ``u`` ascending and weighted prefix sums ``W_k, U_k``, ``k*`` counts the
    ``k`` with ``W_k u_(k) - U_k <= (1 - r) n`` and
    ``b* = ((1 - r) n + U_{k*}) / W_{k*}``. Useful to initialise the
    threshold or as a dual-free per-batch objective (``fp_u(b*) / n``).

    Args:
        recall (float): ``r`` in [0, 1].
        Others as in :func:`hinge_rates`.

    Returns:
        tuple[Tensor, Tensor]: ``fp_u(b*)`` (unnormalised) and ``b*``, 0-d.
        With no positive weight: ``(0, +inf)``. Differentiable.
    """
    if not 0.0 <= recall <= 1.0:
        raise ValueError(f'recall must be in [0, 1], got {recall}')
    dt = _dtype(pos_scores, neg_scores, pos_weight, neg_weight)
    f = pos_scores.reshape(-1).to(dt)
    w = torch.ones_like(f) if pos_weight is None else \
        pos_weight.reshape(-1).to(dt)
    keep = w > 0
    f, w = f[keep], w[keep]
    n = w.sum()
    if f.numel() == 0:
        zero = neg_scores.sum().to(dt) * 0.0
        return zero, zero.detach() + math.inf
    u = f - 1.0
    with torch.no_grad():
        us, order = torch.sort(u.detach())
        ws = w.detach()[order]
        W = torch.cumsum(ws, 0)
        U = torch.cumsum(ws * us, 0)
        rhs = (1.0 - recall) * n.detach()
        tol = 1e-12 * (1.0 + rhs.abs() + U.abs())
        kstar = int((W * us - U <= rhs + tol).sum())
        low = torch.zeros(f.numel(), dtype=torch.bool, device=f.device)
        low[order[:kstar]] = True
    # differentiable: b* = ((1 - r) n + sum_{low} w u) / sum_{low} w
    b = ((1.0 - recall) * n + (w * u * low).sum()) / (w * low).sum()
    h = hinge_rates(pos_scores, neg_scores, b, pos_weight, neg_weight)
    return h.fp_u, b


# ---------------------------------------------------------------------------
# class-wise rates and the Lagrangians from (possibly all-reduced) rates
# ---------------------------------------------------------------------------
def targeted_hinge_rates(scores: Tensor,
                         labels: Tensor,
                         targets: Tensor,
                         thresholds: Tensor,
                         weight: Optional[Tensor] = None) -> HingeRates:
    r""":func:`hinge_rates` of target classes one-vs-rest, batched.

    For target ``t`` (a class index) the positives are the pixels labelled
    ``t``, the negatives every other valid pixel, the scores ``f_i = s_it``:

    .. math::

        tp_l[t, k] = \sum_{y_i = t} w_i \min(1, s_{it} - b_{tk}),\quad
        fp_u[t, k] = \sum_{y_j \ne t} w_j \max(0, 1 + s_{jt} - b_{tk})

    Plain pixel sums: under DDP all-reduce the four outputs.

    Args:
        scores (Tensor): (B, C, ...) per-class scores.
        labels (Tensor): (B, ...); values outside ``[0, C)`` are ignored.
        targets (Tensor): (T,) long target classes.
        thresholds (Tensor): (T, K) thresholds ``b``.
        weight (Tensor, optional): (B, ...) pixel weights.

    Returns:
        HingeRates: ``tp_l``, ``fp_u`` (T, K); ``n_pos``, ``n_neg`` (T,).
    """
    C = scores.shape[1]
    y = labels.reshape(scores.shape[:1] + scores.shape[2:]).long()
    valid = (y >= 0) & (y < C)
    w = valid.to(scores.dtype) if weight is None else torch.where(
        valid, weight.reshape(y.shape).to(scores.dtype),
        scores.new_zeros(()))
    f = scores.index_select(1, targets).movedim(1, -1).reshape(-1, len(
        targets))                                               # (N, T)
    pos = (y.reshape(-1, 1) == targets.view(1, -1)).to(f.dtype)
    wp, wn = w.reshape(-1, 1) * pos, w.reshape(-1, 1) * (1.0 - pos)
    t = f.unsqueeze(-1) - thresholds.to(f.dtype).unsqueeze(0)  # (N, T, K)
    tp = (t.clamp(max=1.0) * wp.unsqueeze(-1)).sum(0)
    fpu = (torch.relu(1.0 + t) * wn.unsqueeze(-1)).sum(0)
    return HingeRates(tp, fpu, wp.sum(0), wn.sum(0))


def _bcast(n: Tensor, like: Tensor) -> Tensor:
    return n.reshape(n.shape + (1, ) * (like.dim() - n.dim()))


def precision_at_recall_from_rates(h: HingeRates, recall: float,
                                   dual: Number) -> RateLagrangian:
    r"""P@R Lagrangian ``fp_u/n + lambda (r - tp_l/n)`` from rates.

    Elementwise over the rates' shape (``n_pos`` broadcast from the left);
    0 where there are no positives. See :func:`precision_at_recall`.
    """
    if not 0.0 <= recall <= 1.0:
        raise ValueError(f'recall must be in [0, 1], got {recall}')
    n = _bcast(h.n_pos, h.fp_u)
    obj = _safe_div(h.fp_u, n)
    slack = torch.where(n > 0, recall - _safe_div(h.tp_l, n),
                        torch.zeros_like(obj))
    lam = _as(dual, obj)
    return RateLagrangian(obj + lam * slack, slack, obj)


def recall_at_precision_from_rates(h: HingeRates, precision: float,
                                   dual: Number) -> RateLagrangian:
    r"""R@P Lagrangian ``-tp_l/n + lambda (p fp_u - (1-p) tp_l)/n`` from
    rates, elementwise; see :func:`recall_at_precision`."""
    if not 0.0 <= precision <= 1.0:
        raise ValueError(f'precision must be in [0, 1], got {precision}')
    n = _bcast(h.n_pos, h.fp_u)
    obj = -_safe_div(h.tp_l, n)
    slack = _safe_div(precision * h.fp_u - (1.0 - precision) * h.tp_l, n)
    lam = _as(dual, obj)
    return RateLagrangian(obj + lam * slack, slack, obj)


def roc_auc_from_rates(h: HingeRates, fpr_anchors: Tensor,
                       duals: Tensor) -> RateLagrangian:
    r"""ROC-AUC grid Lagrangian from rates of shape (..., K), the anchors on
    the last dim: ``value`` is the mean over the K anchors (shape ``...``),
    ``slack`` and ``objective`` keep (..., K). See
    :func:`roc_auc_lagrangian`."""
    n = _bcast(h.n_pos, h.tp_l)
    m = _bcast(h.n_neg, h.fp_u)
    t = _as(fpr_anchors, h.tp_l)
    obj = -_safe_div(h.tp_l, n)
    slack = torch.where(m > 0, _safe_div(h.fp_u, m) - t,
                        torch.zeros_like(obj))
    lam = _as(duals, obj)
    return RateLagrangian((obj + lam * slack).mean(-1), slack, obj)
