r"""Per-pixel class scores of a softmax classifier: the log-odds.

Every pixel regularizer of segreg scores pixel ``i`` for class ``c`` by the
log-odds of the softmax probability,

.. math::

    s_{ic} = \log p_{ic} - \log(1 - p_{ic})
           = z_{ic} - \log\sum_{k \ne c} e^{z_{ik}},

smooth, with a gradient to every class; it saturates at about +16 in
float32, where ``p`` rounds to 1 (such entries get no gradient). A class is
predicted (argmax) iff its log-odds is the largest, and ``s > 0`` iff
``p > 1/2``. Derivation: docs/regularizer_derivation.md (scores).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['softmax_log_odds']


class _LogOdds(torch.autograd.Function):
    """``s = log p - log(1 - p)`` of a softmax over dim 1, lean in memory.

    Forward keeps one saved tensor (the clamped ``log p``) instead of the
    four of plain autograd. With ``ds_c / dlog p_c = 1 / (1 - p_c)`` the
    backward is log-softmax's with ``g = G / (1 - p)``,
    ``dz_k = g_k - p_k sum_c g_c``, evaluated without cancellation: for the
    most probable class ``a`` of a pixel ``dz_a = G_a - p_a sum_{c != a} g_c``
    (``g_a (1 - p_a) = G_a`` exactly), for the others ``g_a`` enters only
    multiplied by ``p_k <= 1 - p_a``. Entries clamped at ``log p = -tiny``
    (``p`` rounds to 1) get no gradient, as with ``clamp`` under autograd.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, tiny: float) -> Tensor:
        logp = F.log_softmax(logits, dim=1).clamp_(max=-tiny)
        s = torch.expm1(logp).neg_().log_().neg_().add_(logp)
        ctx.tiny = tiny
        ctx.save_for_backward(logp)
        return s

    @staticmethod
    def backward(ctx, grad: Tensor):
        logp, = ctx.saved_tensors
        live = logp < -ctx.tiny  # not clamped
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        grad = torch.where(live, grad, zero)
        g = torch.expm1(logp)  # p - 1 < 0
        torch.div(grad, g, out=g).neg_()  # g = G / (1 - p)
        # The class with p > 1/2 (at most one per pixel) plays the role of
        # the most probable class: only there is 1 - p small. A mask instead
        # of argmax over dim 1, which is a slow strided reduction on CPU.
        big = logp > -math.log(2.0)
        g_big = torch.where(big, g, zero)
        g_a = g_big.sum(dim=1, keepdim=True)
        rest = g.sub_(g_big).sum(dim=1, keepdim=True)  # sum_{c != a} g_c
        p = logp.exp()
        out = g.sub_(p * (rest + g_a))
        return torch.where(big, grad - p * rest, out), None


def softmax_log_odds(logits: Tensor) -> Tensor:
    r"""Log-odds ``s_ic = log p_ic - log(1 - p_ic)`` of a softmax over dim 1.

    Args:
        logits (Tensor): float32 or float64 logits.

    Returns:
        Tensor: The scores, same shape and dtype.

    Shape:
        logits (B, C, ...) or (N, C); classes on dim 1.

    Reference:
        docs/regularizer_derivation.md, "scores" (why log-odds).
    """
    tiny = 1e-7 if logits.dtype != torch.float64 else 1e-15
    return _LogOdds.apply(logits, tiny)
