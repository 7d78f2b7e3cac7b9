r"""Softmax log-odds and their per-class hinge sums: the default's math.

**Scores.** Every pixel regularizer of segreg scores pixel ``i`` for class
``c`` by the log-odds of its softmax probability,

.. math::

    s_{ic} = \log p_{ic} - \log(1 - p_{ic}),\qquad p_i = \mathrm{softmax}(z_i),

smooth, with a gradient to every class; ``s > 0`` iff ``p > 1/2``. ``log p``
is clamped at ``-tiny`` (``p`` rounds to 1, ``s`` about 16 in float32), where
the entry gets no gradient.

**Sums.** With pixel weights ``w_i`` (0 leaves a pixel out), and per class a
threshold ``t_c`` and a scale ``u_c > 0`` of the negatives,

.. math::

    own_i = s_{i, y_i},\qquad
    fp_c = \sum_{j:\, y_j \ne c} w_j \max(0,\ u_c s_{jc} + t_c).

Every pixel form is built from these two. The default (the direct hinge
bound, :func:`hinge_counts`) takes ``t = u = 1`` and

.. math::

    tp_c = \sum_{y_i = c} w_i \min(1, own_i),\qquad n_c = \sum_{y_i = c} w_i .

**Two implementations of** ``(own, fp)`` with one signature:

* :func:`log_odds_hinge_reference`: plain autograd over the dense (N, C)
  scores, the form to check against the paper and the tests' oracle;
* :func:`log_odds_hinge`: one autograd Function. The hinge is sparse: ``u s
  + t > 0`` iff ``p > sigmoid(-t / u)``, and the probabilities of a pixel sum
  to 1, so at most ``1 / sigmoid(-t/u)`` classes of a pixel are active (3 at
  ``t = u = 1``). Only those entries are evaluated, and the gradient of the
  scores is sparse too. With ``G = dL/ds`` and ``h = G / (1 - p)`` at those
  entries and ``H_i = sum_c h_ic``, the backward of the log-odds is
  log-softmax's, ``dz_k = h_k - p_k H``: one dense pass ``-p H`` plus
  scattered corrections. At an entry with ``p > 1/2`` (at most one per
  pixel) ``h`` is large and that form cancels, so there ``dz = G - p
  H_{rest}`` is written, with ``H_{rest}`` the sum over the pixel's other
  entries. It saves ``log p`` and per-entry vectors. It is the only fast
  path of the pixel forms: at COCO-Stuff's 171 classes it costs a fraction
  of the plain form (docs/performance.md).

Labels outside ``[0, C)`` are ignored pixels (neither positive nor
negative). Sums are in the logits' dtype; under DDP the caller all-reduces
the (C,) sums.

Reference: docs/regularizer_derivation.md, sections 9 (the direct bound) and
"scores" (why log-odds).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'softmax_log_odds', 'own_log_odds', 'pixel_weights', 'class_sum',
    'class_gather', 'LogOddsHinge', 'log_odds_hinge',
    'log_odds_hinge_reference', 'HingeCounts', 'hinge_counts'
]

_LN2 = math.log(2.0)


def _tiny(dtype: torch.dtype) -> float:
    """The clamp of ``log p`` below 0 (``p`` rounds to 1 above it)."""
    return 1e-15 if dtype == torch.float64 else 1e-7


def _log_odds(logp: Tensor, tiny: float) -> Tensor:
    """``s = log p - log(1 - p)`` from ``log p`` (clamped at ``-tiny``)."""
    logp = logp.clamp(max=-tiny)
    return logp - torch.log(-torch.expm1(logp))


def softmax_log_odds(logits: Tensor) -> Tensor:
    r"""Log-odds ``s_ic = log p_ic - log(1 - p_ic)`` of a softmax over dim 1.

    Plain autograd (the reference of the fused op).

    Args:
        logits (Tensor): (B, C, ...) or (N, C), float32 or float64.

    Returns:
        Tensor: The scores, same shape and dtype.
    """
    return _log_odds(F.log_softmax(logits, dim=1), _tiny(logits.dtype))


def own_log_odds(logits: Tensor, labels: Tensor) -> Tensor:
    r"""Each pixel's log-odds of its own class, ``s_{i, y_i}``.

    ``log p_{iy} = z_{iy} - logsumexp_k z_{ik}``: no (N, C) log-softmax is
    kept. Plain autograd.

    Args:
        logits (Tensor): (B, C, ...).
        labels (Tensor): (B, ...); pixels outside ``[0, C)`` get 0.

    Returns:
        Tensor: (B, ...) in the logits' dtype.
    """
    C = logits.shape[1]
    valid = (labels >= 0) & (labels < C)
    y = torch.where(valid, labels, 0).long().unsqueeze(1)
    logp = (logits.gather(1, y) - torch.logsumexp(logits, 1, keepdim=True))
    s = _log_odds(logp.squeeze(1), _tiny(logits.dtype))
    return torch.where(valid, s, torch.zeros_like(s))


def pixel_weights(labels: Tensor, num_classes: int, weight: Optional[Tensor],
                  dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """``(w, y)``: pixel weights with 0 at ignored pixels, and the labels
    with ``num_classes`` at ignored pixels (an extra bin that every
    :func:`class_sum` drops). Pixels of weight 0 count as ignored."""
    C = num_classes
    valid = (labels >= 0) & (labels < C)
    if weight is None:
        w = valid.to(dtype)
    else:
        w = weight.reshape(labels.shape).to(dtype)
        valid = valid & (w > 0)
        w = torch.where(valid, w, torch.zeros((), dtype=dtype,
                                               device=w.device))
    return w, torch.where(valid, labels, C).long()


def class_sum(values: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``out_c = sum_{i: y_i = c} v_i``, (C,); labels equal to ``C`` are
    dropped (as :func:`pixel_weights` marks them). Differentiable."""
    out = values.new_zeros(num_classes + 1)
    return out.index_add(0, labels.reshape(-1), values.reshape(-1))[:-1]


def class_gather(table: Tensor, labels: Tensor) -> Tensor:
    """``table[y_i]`` per pixel, 0 where ``y_i = C``. Differentiable."""
    return F.pad(table, (0, 1))[labels]


class LogOddsHinge(NamedTuple):
    """What :func:`log_odds_hinge` returns.

    Attributes:
        own (Tensor): (B, ...) ``s_{i, y_i}``; 0 at ignored pixels.
        fp (Tensor): (C,) ``sum_{y_j != c} w_j max(0, u_c s_jc + t_c)``.
    """
    own: Tensor
    fp: Tensor


def _inputs(logits: Tensor, labels: Tensor, weight: Optional[Tensor],
            thr, scale):
    """Labels in ``[0, C]`` (``C``: ignored), the weights (None if every
    pixel counts with weight 1), and ``t``, ``u`` as (C,) tensors."""
    C, dt = logits.shape[1], logits.dtype
    w, y = pixel_weights(labels, C, weight, dt)
    if weight is None and bool((y < C).all()):
        w = None
    t = torch.as_tensor(thr, dtype=dt, device=logits.device).expand(C)
    u = torch.as_tensor(scale, dtype=dt, device=logits.device).expand(C)
    return y, w, t, u


def log_odds_hinge_reference(logits: Tensor, labels: Tensor,
                             weight: Optional[Tensor] = None,
                             thr=1.0, scale=1.0) -> LogOddsHinge:
    r"""``(own, fp)`` (module docstring) in plain autograd, dense in (N, C).

    Args:
        logits (Tensor): (B, C, ...) float32 or float64.
        labels (Tensor): (B, ...) class indices; others are ignored.
        weight (Tensor, optional): (B, ...) pixel weights.
        thr (float | Tensor): ``t_c``, a scalar or (C,).
        scale (float | Tensor): ``u_c > 0``, a scalar or (C,).

    Returns:
        LogOddsHinge: ``own`` (B, ...) and ``fp`` (C,).
    """
    C = logits.shape[1]
    y, w, t, u = _inputs(logits, labels, weight, thr, scale)
    s = softmax_log_odds(logits)
    valid = y < C
    w = valid.to(s.dtype) if w is None else w
    y0 = torch.where(valid, y, 0)
    own = torch.where(valid, s.gather(1, y0.unsqueeze(1)).squeeze(1), 0.0)
    view = (1, C) + (1, ) * (s.dim() - 2)
    not_own = torch.ones_like(s).scatter(1, y0.unsqueeze(1), 0.0)
    neg_w = not_own * w.unsqueeze(1)
    hinge = torch.relu(u.view(view) * s + t.view(view))
    fp = (neg_w * hinge).transpose(0, 1).reshape(C, -1).sum(1)
    return LogOddsHinge(own, fp)


class _LogOddsHinge(torch.autograd.Function):
    """``(own, fp)`` from the active entries only (module docstring).

    Inputs: ``z`` (B, C, L); ``y`` (B, L) in ``[0, C]`` (``C``: ignored);
    ``w`` (B, L) or None; ``t``, ``u`` (C,).
    """

    @staticmethod
    def forward(ctx, z: Tensor, y: Tensor, w: Optional[Tensor], t: Tensor,
                u: Tensor) -> Tuple[Tensor, Tensor]:
        C, tiny = z.shape[1], _tiny(z.dtype)
        logp = F.log_softmax(z, dim=1)
        valid = y < C
        y0 = torch.where(valid, y, 0).unsqueeze(1)
        lp_own = logp.gather(1, y0).squeeze(1)
        own = torch.where(valid, _log_odds(lp_own, tiny), 0.0)
        # u s + t > 0 iff log p > log sigmoid(-t / u); the limit is lowered
        # by 1e-4 (a superset), and the hinge is then evaluated exactly
        with torch.no_grad():
            lim = F.logsigmoid(-(t.double() / u.double())) - 1e-4
        cand = logp > lim.to(z.dtype).view(1, C, 1)
        cand.scatter_(1, y0, False)  # a pixel is no negative of its class
        if w is not None:
            cand &= (w > 0).unsqueeze(1)
        b, c, l = cand.nonzero(as_tuple=True)
        lp = logp[b, c, l]
        s = _log_odds(lp, tiny)
        v = u[c] * s + t[c]
        wk = (v > 0).to(z.dtype)  # w_j [u s + t > 0]: the hinge's slope
        if w is not None:
            wk = wk * w[b, l]
        fp = z.new_zeros(C).index_add_(0, c, wk * v)
        ctx.save_for_backward(logp, y0, lp_own, valid, b, c, l, lp, s, wk,
                              u)
        return own, fp

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_own: Tensor, g_fp: Tensor):
        logp, y0, lp_own, valid, b, c, l, lp, s, wk, u = ctx.saved_tensors
        C, tiny = logp.shape[1], _tiny(logp.dtype)
        gk = g_fp[c] * wk  # dL/dv of each active entry
        g_t = g_u = g_z = None
        if ctx.needs_input_grad[3]:
            g_t = g_fp.new_zeros(C).index_add_(0, c, gk)
        if ctx.needs_input_grad[4]:
            g_u = g_fp.new_zeros(C).index_add_(0, c, gk * s)
        if ctx.needs_input_grad[0]:
            # G = dL/ds, 0 where log p was clamped (no gradient there)
            G_own = torch.where(valid & (lp_own <= -tiny), g_own, 0.0)
            G_neg = torch.where(lp <= -tiny, gk * u[c], 0.0)
            # h = G / (1 - p); H_rest sums h over the entries with p <= 1/2,
            # H_big the one entry with p > 1/2 (if any)
            h_own = G_own / -torch.expm1(lp_own.clamp(max=-tiny))
            h_neg = G_neg / -torch.expm1(lp.clamp(max=-tiny))
            big_own, big_neg = lp_own > -_LN2, lp > -_LN2
            H_rest = torch.where(big_own, 0.0, h_own).index_put_(
                (b, l), torch.where(big_neg, 0.0, h_neg), accumulate=True)
            H_big = torch.where(big_own, h_own, 0.0).index_put_(
                (b, l), torch.where(big_neg, h_neg, 0.0), accumulate=True)
            H = H_rest + H_big
            g_z = logp.exp().mul_(-H.unsqueeze(1))  # dense: -p H
            p_own = lp_own.exp()
            val = torch.where(big_own, G_own - p_own * H_rest,
                              h_own - p_own * H)
            g_z.scatter_(1, y0, val.unsqueeze(1))
            p_neg = lp.exp()
            val = torch.where(big_neg, G_neg - p_neg * H_rest[b, l],
                              h_neg - p_neg * H[b, l])
            g_z.index_put_((b, c, l), val)
        return g_z, None, None, g_t, g_u


def log_odds_hinge(logits: Tensor, labels: Tensor,
                   weight: Optional[Tensor] = None, thr=1.0,
                   scale=1.0) -> LogOddsHinge:
    r"""``(own, fp)`` (module docstring) by the sparse fused op.

    The same values and gradients (in ``logits``, ``thr`` and ``scale``) as
    :func:`log_odds_hinge_reference`; arguments and shapes as there.
    """
    B, C = logits.shape[:2]
    L = math.prod(logits.shape[2:])
    y, w, t, u = _inputs(logits, labels, weight, thr, scale)
    own, fp = _LogOddsHinge.apply(logits.reshape(B, C, L), y.reshape(B, L),
                                  None if w is None else w.reshape(B, L), t,
                                  u)
    return LogOddsHinge(own.reshape(y.shape), fp)


class HingeCounts(NamedTuple):
    """Per-class hinge counts of one (local) batch; all-reduce them under
    DDP. All (C,).

    Attributes:
        tp (Tensor): ``sum_{y_i = c} w_i min(1, s_ic)`` (<= true positives).
        fp (Tensor): ``sum_{y_j != c} w_j max(0, 1 + s_jc)`` (>= false
            positives).
        n (Tensor): ``sum_{y_i = c} w_i`` (no gradient).
    """
    tp: Tensor
    fp: Tensor
    n: Tensor


def hinge_counts(logits: Tensor, labels: Tensor,
                 weight: Optional[Tensor] = None,
                 reference: bool = False) -> HingeCounts:
    r"""The default regularizer's per-class sums, from the logits.

    .. math::

        tp_c = \sum_{y_i = c} w_i \min(1, s_{ic}),\quad
        fp_c = \sum_{y_j \ne c} w_j \max(0, 1 + s_{jc}),\quad
        n_c = \sum_{y_i = c} w_i

    (Eban et al. 2017: ``tp <= TP``, ``fp >= FP``), with ``s`` the softmax
    log-odds. The metric bound follows from them in
    :func:`segreg.ops.hinge_bound_from_counts`.

    Args:
        logits (Tensor): (B, C, ...) float32 or float64.
        labels (Tensor): (B, ...); values outside ``[0, C)`` are ignored.
        weight (Tensor, optional): (B, ...) pixel weights.
        reference (bool): Plain autograd (:func:`log_odds_hinge_reference`)
            instead of the fused op; the same values and gradients.

    Returns:
        HingeCounts: (C,) sums in the logits' dtype.
    """
    C = logits.shape[1]
    op = log_odds_hinge_reference if reference else log_odds_hinge
    own, fp = op(logits, labels, weight)
    w, y = pixel_weights(labels, C, weight, logits.dtype)
    tp = class_sum(w * own.clamp(max=1.0), y, C)
    return HingeCounts(tp, fp, class_sum(w, y, C))
