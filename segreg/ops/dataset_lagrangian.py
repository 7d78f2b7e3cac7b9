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
docs/regularizer_derivation.md, section 15.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ['DatasetLagrangian', 'dataset_lagrangian', 'primal_dual_step']


class DatasetLagrangian(NamedTuple):
    """One batch's estimate of the dataset-level Lagrangian, per class.

    Attributes:
        value (Tensor): (C,) ``L_B`` per class, differentiable in the scores;
            0 for classes with ``n_ref = 0`` (never seen).
        slack (Tensor): (C,) ``1 - hit_B / n_ref``, the unbiased estimate of
            the constraint violation (``d L / d mu``), detached.
        grad_eps (Tensor): (C,) ``d L_B / d eps``, detached.
        n (Tensor): (C,) positive count of the batch (weights summed).
        hit (Tensor): (C,) ``sum_{P cap B} w min(eps, f)``, detached.
        fp (Tensor): (C,) ``sum_{Q cap B} w max(0, eps + f)``, detached.
    """

    value: Tensor
    slack: Tensor
    grad_eps: Tensor
    n: Tensor
    hit: Tensor
    fp: Tensor


def dataset_lagrangian(scores: Tensor,
                       labels: Tensor,
                       eps: Tensor,
                       mu: Tensor,
                       n_ref: Tensor,
                       beta: float = 1.0,
                       weight: Optional[Tensor] = None) -> DatasetLagrangian:
    r"""The batch estimate ``L_B`` of the dataset-level Lagrangian, every class.

    .. math::

        L_{B,c} = b^2 \epsilon_c + \frac{1}{\bar n_c}\sum_{j \in B, y_j \ne c}
        w_j \max(0, \epsilon_c + f_{jc}) + \mu_c \Big(1 - \frac{1}{\bar n_c}
        \sum_{i \in B, y_i = c} w_i \min(\epsilon_c, f_{ic})\Big)

    with ``bar n_c = n_ref_c`` the expected positive count of the batch
    (class share times valid pixels). Gradients (first order, through
    autograd in the scores; returned in closed form for ``eps``):
    ``dL/df_j = w_j / n_ref`` for active negatives (``eps + f_j > 0``),
    ``dL/df_i = -mu w_i / n_ref`` for positives below the threshold
    (``f_i < eps``), ``dL/deps = b^2 + A_Q / n_ref - mu A_P / n_ref`` with
    ``A_Q``, ``A_P`` the weighted counts of active negatives / positives
    above the threshold.

    Args:
        scores (Tensor): (M, C) per-pixel class scores, or (B, C, d1, ...)
            with classes on dim 1.
        labels (Tensor): (M,) or (B, d1, ...); values outside [0, C) are
            ignored pixels.
        eps (Tensor): (C,) thresholds ``eps_c >= 0`` (state, not trained
            through this graph).
        mu (Tensor): (C,) multipliers ``mu_c >= 0`` (state).
        n_ref (Tensor): (C,) expected positive count of this batch; classes
            with ``n_ref <= 0`` contribute 0.
        beta (float): F-beta's ``b`` (1 for IoU).
        weight (Tensor, optional): Pixel weights, shape of ``labels``.

    Returns:
        DatasetLagrangian: value (differentiable), slack, grad_eps, n, hit,
        fp (all (C,)).

    Reference:
        Ravi, Venkatesh, Fung, Singh. Optimizing Nondecomposable Data
        Dependent Regularizers via Lagrangian Reparameterization offers
        Significant Performance and Efficiency Gains. AAAI 2020, eq. 4-5
        and Algorithm 1.
    """
    C = scores.shape[1]
    if scores.dim() != 2:
        scores = scores.movedim(1, -1).reshape(-1, C)
    y = labels.reshape(-1)
    dt = torch.float64 if scores.dtype == torch.float64 else torch.float32
    f = scores.to(dt)
    valid = (y >= 0) & (y < C)
    w = valid.to(dt) if weight is None else \
        torch.where(valid, weight.reshape(-1).to(dt), torch.zeros((), dtype=dt,
                                                                  device=f.device))
    y_safe = torch.where(valid, y, torch.zeros_like(y)).long()
    e, m, nr = eps.to(dt), mu.to(dt), n_ref.to(dt)
    own = torch.nn.functional.one_hot(y_safe, C).to(torch.bool) \
        & valid.unsqueeze(1)
    wcol = w.unsqueeze(1)
    pos_w = torch.where(own, wcol, torch.zeros((), dtype=dt, device=f.device))
    neg_w = wcol - pos_w
    hit = (pos_w * torch.minimum(f, e)).sum(0)
    fp = (neg_w * (f + e).clamp(min=0)).sum(0)
    n = pos_w.sum(0)
    seen = nr > 0
    inv = torch.where(seen, 1.0 / nr.clamp(min=1e-12), torch.zeros_like(nr))
    b2 = float(beta)**2
    value = torch.where(seen, b2 * e + fp * inv + m * (1.0 - hit * inv),
                        torch.zeros_like(nr))
    with torch.no_grad():
        act_q = (neg_w * (f + e > 0)).sum(0)
        act_p = (pos_w * (f > e)).sum(0)
        grad_eps = torch.where(seen, b2 + (act_q - m * act_p) * inv,
                               torch.zeros_like(nr))
        slack = torch.where(seen, 1.0 - hit.detach() * inv,
                            torch.zeros_like(nr))
    return DatasetLagrangian(value, slack, grad_eps, n.detach(), hit.detach(),
                             fp.detach())


def primal_dual_step(eps: Tensor, mu: Tensor, grad_eps: Tensor, slack: Tensor,
                     lr_eps: float, lr_mu: float,
                     mu_max: float = float('inf')) -> tuple:
    r"""One projected primal-dual step on the class-level state.

    .. math::

        \epsilon \leftarrow \Pi_{\epsilon \ge 0}(\epsilon - \eta_\epsilon
        \, \partial_\epsilon L), \qquad
        \mu \leftarrow \Pi_{[0, \mu_{max}]}(\mu + \eta_\mu \, s)

    The first is the paper's projection ``Pi_C`` with ``tau`` eliminated
    (``tau_i = min(eps, f_i)`` is feasible for ``tau_i <= eps`` once
    ``eps >= 0``); the second its projected dual ascent (``lambda`` of the
    coupling constraints is eliminated with ``tau``). A finite ``mu_max``
    bounds the dual domain, as stochastic saddle-point methods require (and
    keeps the multiplier of a class whose constraint cannot be met yet from
    growing without end).

    Args:
        eps, mu, grad_eps, slack (Tensor): (C,) state and the estimates of
            :func:`dataset_lagrangian`.
        lr_eps, lr_mu (float): Step sizes.
        mu_max (float): Upper end of the dual domain.

    Returns:
        tuple[Tensor, Tensor]: the new ``(eps, mu)``.
    """
    new_eps = (eps - lr_eps * grad_eps.to(eps)).clamp(min=0)
    new_mu = (mu + lr_mu * slack.to(mu)).clamp(min=0, max=mu_max)
    return new_eps, new_mu
