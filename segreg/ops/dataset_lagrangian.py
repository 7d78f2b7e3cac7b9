r"""The dataset-level Lagrangian of the IoU / F-beta program, one batch at a time.

Per class ``c`` (index dropped), over a *finite training set* ``D`` with
positives ``P`` (``|P| = N``) and negatives ``Q``, scores ``f`` and the
mean-normalised reparameterized program of Ravi et al. (AAAI 2020, Problem 3
with ``sum tau = N`` instead of 1; docs/regularizer_derivation.md, sections 3
and 14)::

    V/N = min_{eps >= 0}  b^2 eps + (1/N) sum_{j in Q} max(0, eps + f_j)
          s.t.            (1/N) sum_{i in P} min(eps, f_i) >= 1

Partial dualization of the normalisation constraint (multiplier ``mu >= 0``)
gives the Lagrangian::

    L(eps, mu; f) = b^2 eps + FP(eps)/N + mu (1 - HIT(eps)/N)
    FP(eps)  = sum_{j in Q} max(0, eps + f_j),   HIT(eps) = sum_{i in P} min(eps, f_i)

For fixed class-level state ``(eps, mu)`` both sums run over pixels, so ``L``
*decomposes over the data*: with ``pi = N / |D|`` the class's pixel share and
a batch ``B`` of ``m`` valid pixels drawn uniformly,
``n_ref = pi m`` is the expected positive count of the batch and

    L_B = b^2 eps + fp_B / n_ref + mu (1 - hit_B / n_ref)

is an unbiased estimate of ``L`` (``E[fp_B] = m FP / |D|``). Its gradients
in the scores, in ``eps`` and in ``mu`` are unbiased stochastic (sub)gradients
of the dataset-level ``L``, so SGD on the network and ``eps`` together with
projected ascent on ``mu`` is stochastic primal-dual on the *dataset-level*
program (the paper's Algorithm 1, with class-level instead of per-sample
duals). Contrast the per-batch forms, which normalise by the batch's own
positive count ``n_B``: ``E[fp_B / n_B] != FP / N``, a ratio estimator whose
bias grows as batches shrink and classes get rarer. The derivation, the bias
and variance of ``pi``'s estimate, and the convergence test are in
docs/regularizer_derivation.md, section 16.
The loss over these ops is ``segreg.models.losses.DatasetDualLoss``
(``DualIoULoss(solver='dataset')``).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ['HingeSums', 'DatasetLagrangian', 'dataset_hinge_sums',
           'dataset_lagrangian']


class HingeSums(NamedTuple):
    """Per-class sums of one batch at the thresholds ``eps`` (all (C,)).

    Attributes:
        hit (Tensor): ``sum_{y_i = c} w_i min(eps_c, f_ic)``.
        fp (Tensor): ``sum_{y_j != c} w_j max(0, eps_c + f_jc)``.
        n (Tensor): ``sum_{y_i = c} w_i``, the batch's positive count.
        pixels (Tensor): 0-d, ``sum w`` over the valid pixels.
    """

    hit: Tensor
    fp: Tensor
    n: Tensor
    pixels: Tensor


class DatasetLagrangian(NamedTuple):
    """One batch's estimate of the dataset-level Lagrangian, per class.

    Attributes:
        value (Tensor): (C,) ``L_B``, differentiable in the sums and
            ``eps``; 0 for classes with ``n_ref = 0`` (never seen).
        primal (Tensor): (C,) ``b^2 eps + fp_B / n_ref``, the objective
            part (detached); at the saddle point ``V / N``.
        slack (Tensor): (C,) ``1 - hit_B / n_ref``, the unbiased estimate of
            the constraint violation (``d L / d mu``), detached.
    """

    value: Tensor
    primal: Tensor
    slack: Tensor


def dataset_hinge_sums(scores: Tensor,
                       labels: Tensor,
                       eps: Tensor,
                       weight: Optional[Tensor] = None) -> HingeSums:
    r"""The per-class sums of one batch that the dataset-level form needs.

    .. math::

        hit_c = \sum_{y_i = c} w_i \min(\epsilon_c, f_{ic}), \quad
        fp_c = \sum_{y_j \ne c} w_j \max(0, \epsilon_c + f_{jc})

    A plain reference (one (M, C) mask); the loss computes the same sums with
    the fused op (:func:`segreg.ops.positive_hinge_sums` with cap ``eps``,
    :func:`segreg.ops.negative_hinge_sums` with threshold ``eps``). Every output is a sum over pixels: under DDP each is
    all-reduced (one C-vector each), which makes the estimate that of the
    global batch.

    Args:
        scores (Tensor): (M, C) per-pixel class scores, or (B, C, d1, ...)
            with classes on dim 1.
        labels (Tensor): (M,) or (B, d1, ...); values outside [0, C) are
            ignored pixels.
        eps (Tensor): (C,) thresholds.
        weight (Tensor, optional): Pixel weights, shape of ``labels``.

    Returns:
        HingeSums: hit and fp differentiable in ``scores`` and ``eps``.
    """
    C = scores.shape[1]
    if scores.dim() != 2:
        scores = scores.movedim(1, -1).reshape(-1, C)
    y = labels.reshape(-1)
    dt = torch.float64 if scores.dtype == torch.float64 else torch.float32
    f = scores.to(dt)
    zero = torch.zeros((), dtype=dt, device=f.device)
    valid = (y >= 0) & (y < C)
    w = valid.to(dt) if weight is None else \
        torch.where(valid, weight.reshape(-1).to(dt), zero)
    y_safe = torch.where(valid, y, torch.zeros_like(y)).long()
    own = torch.nn.functional.one_hot(y_safe, C).to(torch.bool) \
        & valid.unsqueeze(1)
    wcol = w.unsqueeze(1)
    pos_w = torch.where(own, wcol, zero)
    e = eps.to(dt)
    hit = (pos_w * torch.minimum(f, e)).sum(0)
    fp = ((wcol - pos_w) * (f + e).clamp(min=0)).sum(0)
    return HingeSums(hit, fp, pos_w.sum(0).detach(), w.sum().detach())


def dataset_lagrangian(hit: Tensor,
                       fp: Tensor,
                       eps: Tensor,
                       mu: Tensor,
                       n_ref: Tensor,
                       beta: float = 1.0) -> DatasetLagrangian:
    r"""The batch estimate ``L_B`` of the dataset-level Lagrangian, every class.

    .. math::

        L_{B,c} = b^2 \epsilon_c + \frac{fp_c}{\bar n_c}
        + \mu_c \Big(1 - \frac{hit_c}{\bar n_c}\Big)

    with ``bar n_c = n_ref_c`` the *expected* positive count of the batch
    (the class's pixel share times the batch's valid pixels), not the
    batch's own count. Gradients (autograd): ``dL/df_j = w_j / n_ref`` for
    active negatives (``eps + f_j > 0``), ``dL/df_i = -mu w_i / n_ref`` for
    positives below the threshold (``f_i < eps``), and
    ``dL/deps = b^2 + (A_neg - mu A_pos) / n_ref`` (``A``: weighted counts of
    the active negatives and of the positives above ``eps``).

    Args:
        hit, fp (Tensor): (C,) sums of :func:`dataset_hinge_sums` (or the
            same sums from the lean ops), all-reduced under DDP.
        eps (Tensor): (C,) thresholds ``eps_c >= 0``.
        mu (Tensor): (C,) multipliers ``mu_c >= 0`` (state; no gradient).
        n_ref (Tensor): (C,) expected positive count of this batch; classes
            with ``n_ref <= 0`` (never seen) contribute 0.
        beta (float): F-beta's ``b`` (1 for IoU).

    Returns:
        DatasetLagrangian: value (differentiable), primal, slack.

    Reference:
        Ravi, Venkatesh, Fung, Singh. Optimizing Nondecomposable Data
        Dependent Regularizers via Lagrangian Reparameterization offers
        Significant Performance and Efficiency Gains. AAAI 2020, eq. 4-5
        and Algorithm 1.
    """
    dt = hit.dtype
    m, nr = mu.to(dt).detach(), n_ref.to(dt).detach()
    seen = nr > 0
    inv = torch.where(seen, 1.0 / nr.clamp(min=1e-12), torch.zeros_like(nr))
    primal = float(beta)**2 * eps.to(dt) + fp * inv
    slack = 1.0 - hit * inv
    value = torch.where(seen, primal + m * slack, torch.zeros_like(nr))
    zero = torch.zeros_like(nr)
    return DatasetLagrangian(value, torch.where(seen, primal, zero).detach(),
                             torch.where(seen, slack, zero).detach())
