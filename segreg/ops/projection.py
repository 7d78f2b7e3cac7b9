"""Exact Euclidean projection onto C = {(tau, eps): tau_i <= eps, eps >= 0}.

This is the set the paper keeps as a projection when it partially dualizes
the reparameterized F-beta / IoU program (Ravi et al., AAAI 2020, eq. 4-5).
Derivation and proof: docs/regularizer_derivation.md, section 6.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

__all__ = ['project_tau_eps']


def _float_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def project_tau_eps(tau: Tensor, eps: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Project ``(tau, eps)`` onto ``C = {tau_i <= eps for all i, eps >= 0}``.

    Solves exactly

    .. math::

        \min_{t, e} \|t - \tau\|^2 + (e - \epsilon)^2
        \quad \text{s.t.}\quad t_i \le e,\ e \ge 0

    by one sort and a threshold. With :math:`\tau_{(1)} \ge \tau_{(2)} \ge
    \dots` and prefix sums :math:`S_k = \sum_{j \le k} \tau_{(j)}`, let
    :math:`k^*` be the number of indices with
    :math:`k\,\tau_{(k)} - S_{k-1} > \epsilon` (a prefix: that quantity does
    not increase with :math:`k`). Then

    .. math::

        e^* = \max\Big(0, \frac{\epsilon + S_{k^*}}{k^* + 1}\Big),
        \qquad t_i^* = \min(\tau_i, e^*).

    The divisor is :math:`k^* + 1` (eps itself is averaged with the
    :math:`k^*` entries it absorbs); the paper prints :math:`k^*`, which is
    wrong (docs/regularizer_derivation.md, section 6).

    Batched: any leading dimensions are independent problems, e.g. ``tau`` of
    shape (B, M) with ``eps`` of shape (B,). Fully vectorised (one sort along
    the last dimension). Differentiable almost everywhere, although callers
    (the dual-ascent step) normally run it under ``torch.no_grad()``.

    Args:
        tau (Tensor): Shape (..., M), M >= 0.
        eps (Tensor): Shape (...) (0-d for a 1-D ``tau``), broadcastable to
            ``tau.shape[:-1]``.

    Returns:
        tuple[Tensor, Tensor]: the projected ``tau`` (..., M) and ``eps``
        (...). float16/bfloat16 inputs are computed in float32 and returned in
        their input dtype; float64 stays float64.

    Shape:
        - tau: (..., M)
        - eps: (...)

    Reference:
        Ravi et al., "Optimizing Nondecomposable Data Dependent Regularizers
        via Lagrangian Reparameterization offers Significant Performance and
        Efficiency Gains", AAAI 2020, Sec. "The cheap projection".
    """
    if tau.dim() == 0:
        raise ValueError('tau must have at least one dimension (..., M)')
    out_dtype = tau.dtype if tau.is_floating_point() else torch.float32
    dt = _float_dtype(tau)
    t = tau.to(dt)
    e = (eps.to(device=tau.device, dtype=dt) if isinstance(eps, Tensor)
         else torch.as_tensor(eps, device=tau.device, dtype=dt))
    e = e.expand(t.shape[:-1])
    if t.shape[-1] == 0:
        return t.to(out_dtype), e.clamp(min=0).to(out_dtype)
    srt, order = torch.sort(t.detach(), dim=-1, descending=True)
    csum = torch.cumsum(srt, dim=-1)                      # S_k
    k = torch.arange(1, t.shape[-1] + 1, device=t.device, dtype=dt)
    # q_k = k tau_(k) - S_{k-1} = (k + 1) tau_(k) - S_k, non-increasing in k
    q = (k + 1) * srt - csum
    kstar = (q > e.detach().unsqueeze(-1)).sum(-1)          # (...)
    # differentiable S_{k*}: sum of the entries strictly in the top k*
    # (gather on the unsorted tensor keeps the autograd path simple)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order,
                  torch.arange(t.shape[-1], device=t.device).expand_as(order))
    top = rank < kstar.unsqueeze(-1)
    s_top = torch.where(top, t, torch.zeros_like(t)).sum(-1)
    e_new = ((e + s_top) / (kstar + 1).to(dt)).clamp(min=0)
    t_new = torch.minimum(t, e_new.unsqueeze(-1))
    return t_new.to(out_dtype), e_new.to(out_dtype)
